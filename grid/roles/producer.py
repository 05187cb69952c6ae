"""The producer: generates task numbers with the kernel and sends them to the tasks queue in batches.

It runs forever, or until `--count` tasks were accepted by the queue, at most `--rate` tasks per second, and
draws the same numbers again for the same `--seed`. Entries the queue refuses are sent again, never counted.
"""
from __future__ import annotations

import argparse
import math
import random
import time
import uuid

from grid import primes
from grid.errors import QueueError
from grid.messages import Task, decode_tasks, pack_tasks, unchecked_task
from grid.queues.base import SendEntry
from grid.roles import lifecycle

PACE_SLICE = 0.1  # seconds of tasks sent at once when a rate is set, so the flow is smooth, not bursty


class Producer(lifecycle.Daemon):
    """Generate factorization tasks (n = a product of random primes) and send them to the tasks queue."""

    role = "producer"

    def __init__(self, cfg, broker, metrics, *, count: int | None = None, rate: float | None = None,
                 seed: int | None = None, job: str | None = None):
        super().__init__(cfg, broker, metrics)
        self.count, self.rate = count, rate
        self.job = job or f"job-{uuid.uuid4().hex[:12]}"
        self.rng = random.Random(seed)
        self.generated = self.sent = 0
        self._pending: list[tuple[str, int]] = []  # message bodies not yet accepted, with their task counts

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--count", type=_positive(int), metavar="N", help="send N tasks, then exit "
                            "(default: run until stopped)")
        parser.add_argument("--rate", type=_positive(float), metavar="R", help="send at most R tasks per second")
        parser.add_argument("--seed", type=int, metavar="S", help="seed of the random numbers: the same S, "
                            "the same tasks")
        parser.add_argument("--job", metavar="ID", help="the job id the tasks carry (default: a new one)")

    @classmethod
    def from_args(cls, cfg, broker, metrics, args: argparse.Namespace) -> Producer:
        return cls(cfg, broker, metrics, count=args.count, rate=args.rate, seed=args.seed, job=args.job)

    def setup(self) -> None:
        self.tasks = self.open_queue(self.cfg.tasks_queue_name)
        self._start = time.monotonic()
        self.log.info("producing job %s (%s tasks)", self.job, self.count or "unbounded")

    def run_once(self) -> bool:
        if not self._pending:
            if self.count is not None and self.generated >= self.count:
                self.log.info("sent %d tasks of job %s: done", self.sent, self.job)
                self.request_stop()
                return False
            self._pace()
            if self.stopping:
                return False
            self._pending = self._generate()
        return self._send() > 0

    def teardown(self) -> None:
        if self._pending:  # the batch in hand: one more try
            try:
                self._send()
            except QueueError as e:
                self.log.error("could not send the last batch: %s", e)
        unsent = sum(n for _, n in self._pending)
        self.log.info("job %s: %d tasks sent, %d generated but not sent", self.job, self.sent, unsent)

    def _pace(self) -> None:
        if self.rate:
            self.sleep_until(self._start + self.generated / self.rate)

    def _batch_tasks(self) -> int:
        k = self.cfg.batch_size * self.cfg.tasks_per_message
        if self.rate:
            k = min(k, max(1, int(self.rate * PACE_SLICE)))
        if self.count is not None:
            k = min(k, self.count - self.generated)
        return k

    def _generate(self) -> list[tuple[str, int]]:
        cfg, job, rng = self.cfg, self.job, self.rng
        low, high, factors = cfg.prime_min_bits, cfg.prime_max_bits, cfg.factors_per_task
        now = time.time()  # one time for the batch: its tasks go out together, and share it in a compact bundle
        first = self.generated + 1
        with self.metrics.timer("exec_time"):  # the kernel draws valid numbers, the id is well formed: no checks
            tasks = [unchecked_task(primes.task_number(low, high, factors, rng=rng), f"{job}-{i}", job, now)
                     for i in range(first, first + self._batch_tasks())]
        if tasks:  # the longest id is the last: Task checks it (and the job) as it checked every task before
            Task(tasks[-1].n, tasks[-1].id, job, now)
        self.generated += len(tasks)
        return _messages(tasks, cfg.tasks_per_message)

    def _send(self) -> int:
        """Send up to a batch of pending messages; the number of tasks the queue accepted."""
        batch, rest = self._pending[: self.cfg.batch_size], self._pending[self.cfg.batch_size :]
        entries = [SendEntry(str(i), body) for i, (body, _) in enumerate(batch)]
        with self.metrics.timer("send_msg_time"):
            outcome = self.tasks.send_batch(entries)
        for entry_id, reason in outcome.failed.items():
            self.log.error("a task message was refused (sent again): %s", reason)
        failed = {int(i) for i in outcome.failed}
        accepted = sum(n for i, (_, n) in enumerate(batch) if i not in failed)
        self._pending = [batch[i] for i in sorted(failed)] + rest
        self.sent += accepted
        self.metrics.incr("throughput", accepted)
        self.log.debug("sent %d messages (%d tasks), %d refused", len(batch) - len(failed), accepted, len(failed))
        return accepted


def _messages(tasks: list[Task], per_message: int) -> list[tuple[str, int]]:
    """Message bodies of `per_message` tasks each, with their task counts (a body split for size is recounted)."""
    out = []
    for chunk in (tasks[i : i + per_message] for i in range(0, len(tasks), per_message)):
        bodies = pack_tasks(chunk, per_message)
        if len(bodies) == 1:
            out.append((bodies[0], len(chunk)))
        else:
            out.extend((body, len(decode_tasks(body, default_id="-"))) for body in bodies)
    return out


def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of type {kind.__name__}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{text!r} must be a finite number > 0")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    return lifecycle.main(Producer, argv)


if __name__ == "__main__":
    raise SystemExit(main())
