"""The producer: generates task numbers with the kernel and sends them to the tasks queue in batches.

It runs forever, or until `--count` tasks were accepted by the queue, at most `--rate` tasks per second, and
draws the same numbers again for the same `--seed`. Entries the queue refuses are sent again, never counted.
"""
from __future__ import annotations

import argparse
import random
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from grid import config, primes
from grid.client import new_job_id
from grid.errors import QueueError
from grid.queues.base import BatchResult, SendEntry
from grid.daemons import lifecycle
from grid.daemons.pace import Pace, clocks
from grid.wire import Tasks, pack_tasks

PACE_SLICE = 0.1  # seconds of tasks sent at once when a rate is set, so the flow is smooth, not bursty
SENDS_PER_COMMIT = 10  # send_batch calls committed together on the embedded queue ...
TASKS_PER_COMMIT = 2000  # ... as long as they carry at most this many tasks: the first send is not held back
# Most send_batch calls on the network at once, where a call waits (SQS: 5-50 ms): one at a time, the producer fed the
# workers a batch per round trip (at 50 ms, 32,000 tasks/s: docs/benchmarks.md). How many: grid.daemons.pace.
SENDS_IN_FLIGHT = 8

Pending = list[tuple[str, int]]  # message bodies not yet accepted, with their task counts


class Producer(lifecycle.Daemon):
    """Generate factorization tasks (n = a product of random primes) and send them to the tasks queue."""

    role = "producer"

    def __init__(self, cfg, broker, metrics, *, count: int | None = None, rate: float | None = None,
                 seed: int | None = None, job: str | None = None):
        super().__init__(cfg, broker, metrics)
        self.count, self.rate = count, rate
        self.job = job or new_job_id()
        self.rng = random.Random(seed)
        self.generated = self.sent = 0
        self._pending: Pending = []
        self._sending: deque[tuple[Pending, Future[BatchResult]]] = deque()  # oldest first
        self._network = ThreadPoolExecutor(SENDS_IN_FLIGHT, thread_name_prefix="grid-send")  # threads made when used
        self._pace = Pace()  # a batch's generation against its send's wait
        self._depth = 1  # sends in flight at once, this step

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--count", type=config.positive(int), metavar="N", help="send N tasks, then exit "
                            "(default: run until stopped)")
        parser.add_argument("--rate", type=config.positive(float), metavar="R", help="send at most R tasks per second")
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
        self._depth = self._pace.depth(SENDS_IN_FLIGHT)
        self._collect(wait=len(self._sending) >= self._depth)
        if not self._pending:
            if self.count is not None and self.generated >= self.count:
                if self._sending:  # the last sends are on their way
                    self._collect(wait=True)
                    return True
                self.log.info("sent %d tasks of job %s: done", self.sent, self.job)
                self.request_stop()
                return False
            self._keep_to_the_rate()
            if self.stopping:
                return False
            self._pending = self._generate()
        if self._depth == 1:
            return self._send() > 0
        batch, self._pending = self._pending[: self.cfg.batch_size], self._pending[self.cfg.batch_size :]
        self._sending.append((batch, self._network.submit(self._send_batch, batch)))
        return True

    def teardown(self) -> None:
        if not self.forced:  # a second signal leaves at once
            self._finish_sends()
            try:
                while self._pending and self._send():  # what is in hand: one more try
                    pass
            except QueueError as e:
                self.log.error("could not send the last batch: %s", e)
        self._network.shutdown(wait=not self.forced, cancel_futures=True)
        unsent = sum(n for _, n in self._pending)
        self.log.info("job %s: %d tasks sent, %d generated but not sent", self.job, self.sent, unsent)

    def _collect(self, wait: bool) -> None:
        """Count the sends made in the background that are done; with `wait`, wait for the oldest first. A send that
        failed puts its batch back to be sent again and raises here, in the daemon's thread, as if it had failed in
        it."""
        while self._sending and (wait or self._sending[0][1].done()):
            batch, sending = self._sending.popleft()
            wait = False
            try:
                outcome = sending.result()
            except QueueError:
                self._pending = batch + self._pending
                raise
            self._accepted([batch], [outcome])

    def _finish_sends(self) -> None:
        """The sends still on their way, counted; the batches of those that failed kept for one more try."""
        while self._sending:
            try:
                self._collect(wait=True)
            except QueueError as e:
                self.log.warning("a batch of tasks was not sent: %s", e)

    def _keep_to_the_rate(self) -> None:
        if self.rate:
            self.sleep_until(self._start + self.generated / self.rate)

    def _batch_tasks(self) -> int:
        k = self.cfg.batch_size * self.cfg.tasks_per_message * self._sends_per_step()
        if self.rate:
            k = min(k, max(1, int(self.rate * PACE_SLICE)))
        if self.count is not None:
            k = min(k, self.count - self.generated)
        return k

    def _generate(self) -> list[tuple[str, int]]:
        cfg, job = self.cfg, self.job
        now = time.time()  # one time for the batch: its tasks go out together, and share it in a compact bundle
        first = self.generated + 1
        began = time.monotonic()
        with self.metrics.timer("exec_time"):
            numbers = primes.task_numbers(self._batch_tasks(), cfg.prime_min_bits, cfg.prime_max_bits,
                                          cfg.factors_per_task, self.rng)
        self.generated += len(numbers)
        bodies = pack_tasks(Tasks.numbered(job, first, numbers, now), cfg.tasks_per_message, cfg.format_version)
        self._pace.computed((time.monotonic() - began) * cfg.batch_size / len(bodies))  # per batch of messages
        return bodies

    def _sends_per_step(self) -> int:
        """send_batch calls a step makes: on the embedded queue several in one commit, a write lock that every role
        waits for; elsewhere one, so that an error leaves no call of the step sent and uncounted. Paced, one: the
        rate is the limit, and a bigger burst waits longer for the workers (latency: docs/benchmarks.md). Sending in
        the background (calls that wait), one: each is a call of its own."""
        if not self.broker.transactional or self.rate or self._depth > 1:
            return 1
        return max(1, min(SENDS_PER_COMMIT, TASKS_PER_COMMIT // (self.cfg.batch_size * self.cfg.tasks_per_message)))

    def _send(self) -> int:
        """Send pending messages, a batch per call (on the embedded queue several in one commit); the number of tasks
        the queue accepted."""
        size = self.cfg.batch_size
        batches = [self._pending[i : i + size] for i in range(0, size * self._sends_per_step(), size)]
        batches = [batch for batch in batches if batch]
        since = clocks()
        with self.broker.atomic():
            outcomes = [self._send_batch(batch, timed=False) for batch in batches]
        self._pace.waited_since(since, len(batches))
        self._pending = self._pending[sum(map(len, batches)) :]  # not before: a call that raised leaves them pending
        return self._accepted(batches, outcomes)

    def _send_batch(self, batch: Pending, timed: bool = True) -> BatchResult:
        """One send_batch call; `timed`, its wait counts in the pace (a call in a commit is timed with the commit)."""
        since = clocks()
        with self.metrics.timer("send_msg_time"):
            outcome = self.tasks.send_batch([SendEntry(str(i), body) for i, (body, _) in enumerate(batch)])
        if timed:
            self._pace.waited_since(since)
        return outcome

    def _accepted(self, batches: list[Pending], outcomes: list[BatchResult]) -> int:
        """Count the tasks each batch's outcome accepted; what was refused goes first of what is pending."""
        refused, accepted = [], 0
        for batch, outcome in zip(batches, outcomes):
            for reason in outcome.failed.values():
                self.log.error("a task message was refused (sent again): %s", reason)
            failed = {int(i) for i in outcome.failed}
            accepted += sum(n for i, (_, n) in enumerate(batch) if i not in failed)
            refused += [batch[i] for i in sorted(failed)]
        self._pending = refused + self._pending
        self.sent += accepted
        self.metrics.incr("throughput", accepted)
        self.log.debug("sent %d batches (%d tasks), %d messages refused", len(batches), accepted, len(refused))
        return accepted


def main(argv: list[str] | None = None) -> int:
    return lifecycle.main(Producer, argv)


if __name__ == "__main__":
    raise SystemExit(main())
