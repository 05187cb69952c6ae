"""The rollout's ledger: once the tasks queue is empty, every task the producer sent was answered exactly once.

usage: ledger.py BROKER_URL PRODUCER_LOG. Reads (without deleting) every result message on the results queue and
compares their task ids with the ids the producer's job sent (its log's last line names the job and the count).
"""
import re
import sys
import time
from collections import Counter

from grid import config
from grid.wire import decode_results
from grid.queues import open_broker

DRAIN_SECONDS = 120  # for the workers left to answer what is in the queue


def main(url: str, log_path: str) -> int:
    with open(log_path) as f:
        job, sent = re.findall(r"job (\S+): (\d+) tasks sent", f.read())[-1]
    expected = {f"{job}-{i}" for i in range(1, int(sent) + 1)}
    cfg = config.load("worker", flags={"broker_url": url})
    with open_broker(url) as broker:
        tasks = broker.queue(cfg.tasks_queue_name)
        deadline = time.monotonic() + DRAIN_SECONDS
        while (left := tasks.counts().total) and time.monotonic() < deadline:
            time.sleep(0.5)
        seen = Counter()
        results = broker.queue(cfg.results_queue_name)
        while batch := results.receive(10, wait_seconds=0, visibility_timeout=3600):
            seen.update(r.task_id for m in batch for r in decode_results(m.body) if r.job == job)
    lost, twice = expected - set(seen), sorted(t for t, n in seen.items() if n > 1)
    print(f"job {job}: {sent} tasks sent, {len(seen)} answered, {len(lost)} lost, {len(twice)} answered twice, "
          f"{left} left in the tasks queue")
    return 0 if sent != "0" and not lost and not twice and not left and set(seen) == expected else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
