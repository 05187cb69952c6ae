"""The Python API's own cost (`python benchmarks/client.py`): what `Job.wait` adds to a job's latency, and what one
of its reads of the result store costs.

1. Round trip: a worker and a collector run as processes on an embedded queue; jobs of one small task are submitted
   one after another and waited for. For each, the time from `submit` to `wait` returning, against the task's own
   latency as the store records it (submitted to answered): the difference is the collector's step and the wait's
   polling. The first pause between reads (POLL_FIRST) is varied, the jobs alternating between the values.
2. A read: `counts(job)`, what `wait` reads each time, on a SQLite store of one result per row (the worst case:
   tasks sent one per message), for stores of growing size.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from grid import client  # noqa: E402
from grid.wire import Result  # noqa: E402
from grid.store.sqlite import ResultStore  # noqa: E402

DAEMON_SETTINGS = {"GRID_STATSD_HOST": "", "GRID_LOG_FILENAME": "-", "GRID_CONCURRENCY": "1"}


def round_trips(jobs: int, poll_firsts: list[float]) -> None:
    folder = tempfile.mkdtemp(prefix="bench-client-")
    env = {**os.environ, **DAEMON_SETTINGS, "GRID_BROKER_URL": f"sqlite://{folder}/grid.db",
           "GRID_RESULT_STORE": f"{folder}/results.db"}
    os.environ.update(env)
    procs = [subprocess.Popen([sys.executable, "-m", "grid.cli", role], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for role in ("worker", "collector")]
    trips: dict[float, list[float]] = {p: [] for p in poll_firsts}
    stored: dict[float, list[float]] = {p: [] for p in poll_firsts}
    try:
        with client.Client() as grid:
            grid.submit([91]).wait(timeout=60)  # the daemons are up
            for i in range(jobs * len(poll_firsts)):
                poll_first = poll_firsts[i % len(poll_firsts)]
                client.POLL_FIRST = poll_first
                began = time.perf_counter()
                (answer,) = grid.submit([91]).wait(timeout=60)
                trips[poll_first].append(time.perf_counter() - began)
                stored[poll_first].append(answer.completed_at - answer.submitted_at)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
    print(f"round trip of a job of one task, {jobs} jobs per row, ms (median, p95):")
    print("| POLL_FIRST | submit to wait's return | the task's stored latency | wait and collector add |")
    print("| --- | --- | --- | --- |")
    for p in poll_firsts:
        t, s = sorted(trips[p]), sorted(stored[p])
        print(f"| {p * 1000:g} ms | {ms(statistics.median(t))}, {ms(t[int(0.95 * len(t))])} | "
              f"{ms(statistics.median(s))}, {ms(s[int(0.95 * len(s))])} | "
              f"{ms(statistics.median(t) - statistics.median(s))} |")


def read_costs(sizes: list[int], reads: int) -> None:
    print(f"\ncounts(job) on a SQLite store of one result per row, median of {reads} reads:")
    print("| results stored | one read |")
    print("| --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        store = ResultStore(f"{folder}/results.db")
        have = 0
        for size in sizes:
            store.add(Result(f"job-{i // 1000}-{i % 1000 + 1}", f"job-{i // 1000}", "15", (3, 5), submitted_at=1.0,
                             completed_at=2.0) for i in range(have, size))
            have = size
            times = []
            for _ in range(reads):
                began = time.perf_counter()
                store.counts("job-0")
                times.append(time.perf_counter() - began)
            print(f"| {size:,} | {ms(statistics.median(times))} |")
        store.close()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100, help="jobs per POLL_FIRST value")
    parser.add_argument("--poll-first", default="0.05,0.005,0.001", help="comma-separated seconds")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="store sizes for the read cost")
    args = parser.parse_args()
    round_trips(args.jobs, [float(p) for p in args.poll_first.split(",")])
    read_costs([int(s) for s in args.sizes.split(",")], 30)


if __name__ == "__main__":
    main()
