"""The worker: receives task messages, factorizes on kernel threads, sends results, deletes what was answered.

Rules: a task message is deleted only after all its results were accepted by the results queue. Bad input (400,
413) and work over the budget (422) are answered with an error result and deleted: they would never succeed. A
worker fault (500) is neither answered nor deleted, so the message is retried and reaches the DLQ after
max_receive_count receives. Messages still in work are kept invisible by heartbeats; on stop, the batch's unstarted
messages are released (visibility 0).
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from grid import primes
from grid.errors import MessageError, QueueError
from grid.messages import (ATTRIBUTE_ALLOWANCE, REQUEST_MESSAGE_ID, Code, Rejected, Result, Task, TaskRun,
                           encode_result_run, pack_results, read_tasks, unchecked_result)
from grid.queues.base import MAX_BATCH, Message, SendEntry
from grid.daemons import lifecycle
from grid.daemons.batching import Ahead, receive_while_full
from grid.daemons.heartbeat import Heartbeat

SMALL_BATCH_TASKS = 100  # a step takes more receives while its messages hold fewer tasks than this ...
MAX_MESSAGES_PER_STEP = 100  # ... and at most this many messages: one commit answers them
# What a result message's requestMessageId may hold: the attribute's share of the message size limit.
_REQUEST_IDS_ROOM = ATTRIBUTE_ALLOWANCE - len(REQUEST_MESSAGE_ID) - len("String")
HEARTBEAT_FRACTION = 3  # heartbeats per visibility timeout when no interval is configured
CHUNKS_PER_THREAD = 4  # pieces of a batch per kernel thread: few, since a hand-off costs as much as a few tiny tasks
# (docs/benchmarks.md), and one thread takes the batch whole; enough to balance the load


@dataclass
class InHand:
    """One received task message and what became of it."""

    message: Message
    tasks: list[Task] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    run: TaskRun | None = None  # a compact bundle, answered by columns, without a Task or Result per task
    answer: tuple[list, list, list] | None = None  # run's factors, started_at and completed_at, all computed
    started: bool = False  # a task of it began: it is finished, not released, on stop
    skipped: bool = False  # stop came before any task began: released
    fault: bool = False  # a task failed inside the worker: not deleted, so it is retried

    @property
    def size(self) -> int:
        """Tasks in the message."""
        return len(self.run.numbers) if self.run is not None else len(self.tasks) + len(self.results)

    @property
    def answered(self) -> int:
        return len(self.run.numbers) if self.answer is not None else len(self.results)


class Worker(lifecycle.Daemon):
    """Factorize tasks from the tasks queue and send the results to the results queue."""

    role = "worker"

    def __init__(self, cfg, broker, metrics):
        super().__init__(cfg, broker, metrics)
        self.pool: ThreadPoolExecutor | None = None
        self._batch: list[InHand] = []
        self._ahead = Ahead(cfg.batch_size, cfg.visibility_timeout, self.log, "batch")
        self._lock = threading.Lock()

    def setup(self) -> None:
        cfg = self.cfg
        self.tasks = self.open_queue(cfg.tasks_queue_name)
        self.results = self.open_queue(cfg.results_queue_name)
        self.concurrency = cfg.concurrency or cpu_count()
        if self.concurrency > 1:
            self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="grid-kernel")
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.heartbeat_interval = _heartbeat_interval(cfg)
        self.heartbeat = Heartbeat(self._heartbeat, self.heartbeat_interval)
        if cfg.queue_repolling_sleep_time > 0 or cfg.queue_polling_wait_time > 0:
            self.idle_backoff = (cfg.queue_repolling_sleep_time, cfg.queue_repolling_sleep_time)
        self.log.info("worker %s: %d kernel threads, heartbeat every %.1f s", self.worker_id, self.concurrency,
                      self.heartbeat_interval)

    def run_once(self) -> bool:
        messages = self._ahead.take() or self._receive()
        if not messages:
            return False
        if self.stopping:
            self._release([m.receipt for m in messages])
            return True
        self._batch = [self._open(m) for m in messages]
        full = len(messages) == self.cfg.batch_size
        if full:
            full = self._take_more(self._batch)
        self.metrics.incr("tasks_handled", sum(h.size for h in self._batch))  # once a batch
        try:
            self.heartbeat.hold(self._batch)
            try:
                self._compute(self._batch)
            finally:
                self.heartbeat.release()
            self._answer(self._batch, more=full)
        except Exception:
            self._batch = []
            raise
        self._batch = []  # not on a second signal (ForcedExit): teardown gives the batch back
        return True

    def teardown(self) -> None:
        ahead = self._ahead.take()
        if self._batch or ahead:  # left mid-batch by a second signal, or a batch ahead: give them back now
            self._release([h.message.receipt for h in self._batch] + [m.receipt for m in ahead])
        if self.pool is not None:
            self.pool.shutdown(wait=not self.forced, cancel_futures=True)
        if getattr(self, "heartbeat", None) is not None:
            self.heartbeat.close()
        counts = self.metrics.counts
        self.log.info("worker stopping: %d tasks answered, %d errors, %d faults, %d messages released",
                      counts.get("tps", 0), counts.get("task_errors", 0), counts.get("worker_faults", 0),
                      counts.get("released", 0))

    # -- receive and decode ------------------------------------------------------------------------------------
    def _receive(self) -> list[Message]:
        cfg = self.cfg
        self.metrics.flush()  # this receive may wait: what was counted goes out first, not a long poll later
        with self.metrics.timer("read_time"):
            return self.tasks.receive(
                cfg.batch_size, wait_seconds=cfg.queue_polling_wait_time, visibility_timeout=cfg.visibility_timeout
            )

    def _take_more(self, batch: list[InHand]) -> bool:
        """After a full receive of small messages, more receives in one write transaction while they come full, up to
        about SMALL_BATCH_TASKS tasks: one commit answers them all (on SQS, the calls the next steps would make).
        Whether the last receive came full."""
        cfg = self.cfg
        per_message = max(1.0, sum(h.size for h in batch) / len(batch))
        most = min(MAX_MESSAGES_PER_STEP, int(SMALL_BATCH_TASKS / per_message))
        more, full = receive_while_full(self.broker, self.tasks, batch, cfg.batch_size, cfg.visibility_timeout,
                                        max(0, (most - len(batch)) // cfg.batch_size), lambda: self.stopping)
        batch += [self._open(m) for m in more]
        return full

    def _open(self, message: Message) -> InHand:
        hand = InHand(message)
        try:
            items = read_tasks(message.body, default_id=message.message_id)
        except MessageError as e:
            items = [Rejected(id=message.message_id, code=e.code, message=str(e))]
        if isinstance(items, TaskRun):
            hand.run = items
            return hand
        for item in items:
            if isinstance(item, Task):
                hand.tasks.append(item)
            else:
                hand.results.append(self._rejected(item))
        return hand

    def _rejected(self, item: Rejected) -> Result:
        self.log.warning("task %s: rejected (%d): %s", item.id, item.code, item.message)
        now = time.time()
        return item.to_result(self.worker_id, started_at=now, completed_at=now)

    # -- compute -----------------------------------------------------------------------------------------------
    def _compute(self, batch: Sequence[InHand]) -> None:
        """Solve the batch: in this thread with one kernel thread, else in pieces on the pool's threads."""
        work = [(hand, task) for hand in batch for task in hand.tasks]
        parts = 1 if self.concurrency == 1 else self.concurrency * CHUNKS_PER_THREAD
        jobs = [(self._solve_all, chunk, chunk) for chunk in _split(work, parts)]
        jobs += [(self._solve_run, hand, [(hand, None)]) for hand in batch if hand.run]
        with self.metrics.timer("execution_time"):
            if self.pool is None:
                outputs = [solve(arg) for solve, arg, _ in jobs]
            else:
                outputs = [f.result() for f in [self.pool.submit(solve, arg) for solve, arg, _ in jobs]]
        for (_, _, chunk), output in zip(jobs, outputs):
            for (hand, _), result in zip(chunk, output):
                if result is not None:
                    hand.results.append(result)

    def _heartbeat(self, hands) -> None:
        receipts = [h.message.receipt for h in hands]
        failed: dict[str, str] = {}
        try:
            for chunk in _chunks(receipts):
                failed.update(self.tasks.change_visibility(chunk, self.cfg.visibility_timeout).failed)
        except QueueError as e:
            self.log.error("heartbeat for %d messages failed: %s", len(receipts), e)
            return
        for receipt, reason in failed.items():
            self.log.warning("heartbeat failed for a message in work (it may be delivered again): %s", reason)

    def _solve_all(self, chunk: list[tuple[InHand, Task]]) -> list[Result | None]:
        budget = self.cfg.work_budget
        return [self._solve(hand, task, budget) for hand, task in chunk]

    def _solve_run(self, hand: InHand) -> list[None]:
        """Answer a TaskRun by columns; at its first failure, turn it into Tasks and Results for the usual path. Runs
        where _solve runs: on a kernel thread, or the worker's own with one."""
        if not self._start(hand):
            return [None]
        run, budget, began = hand.run, self.cfg.work_budget, time.time()
        try:  # the loop in C: less work a task than in Python (docs/benchmarks.md)
            factors, started, completed, over = primes.factor_run(run.numbers, budget, began)
            factors = [[str(p) for p in found] for found in factors]  # the wire's decimal strings
        except Exception:  # it failed as a whole: the loop below says which task and why
            factors, started, completed, over = [], [], [], None
        began = completed[-1] if completed else began
        failure = (began, over) if over is not None else self._solve_rest(run.numbers[len(factors):], budget, began,
                                                                         (factors, started, completed))
        if failure is None:
            hand.answer = (factors, started, completed)
            return [None]
        self._unbundle(hand, factors, started, completed, failure, budget)
        return [None]

    @staticmethod
    def _solve_rest(numbers: list[int], budget: float, began: float,
                    columns: tuple[list, list, list]) -> tuple[float, Exception] | None:
        """Solve what factor_run left (beyond 64 bits, say) into the columns; (start, exception) of a failure."""
        factors, started, completed = columns
        for n in numbers:
            try:
                found = primes.factorize(n, budget=budget)
            except Exception as e:
                return began, e
            done = time.time()
            factors.append([str(f) for f in found])
            started.append(began)
            completed.append(done)
            began = done
        return None

    def _unbundle(self, hand: InHand, factors: list, started: list, completed: list,
                  failure: tuple[float, Exception] | None, budget: float) -> None:
        """Results for the tasks of hand.run: the first len(factors) computed already (as decimal strings), the next
        one's `failure`, the rest solved one by one."""
        tasks, hand.run = hand.run.tasks(), None
        done = len(factors)
        hand.results = [unchecked_result(t.id, t.job, str(t.n), tuple(map(int, fs)), None, None, self.worker_id,
                                         t.submitted_at, s, c)
                        for t, fs, s, c in zip(tasks, factors, started, completed)]
        if failure is not None:
            hand.results += [r for r in [self._failed(hand, tasks[done], *failure)] if r is not None]
            done += 1
        hand.results += [r for t in tasks[done:] if (r := self._solve(hand, t, budget)) is not None]

    def _start(self, hand: InHand) -> bool:
        """Mark `hand` started, unless a stop came first (then it is skipped and released)."""
        if not hand.started:  # once started, a message is finished: only its first task needs the lock
            with self._lock:
                if not hand.started and self.stopping:
                    hand.skipped = True
                    return False
                hand.started = True
        return True

    def _solve(self, hand: InHand, task: Task, budget: float) -> Result | None:
        """Runs on a kernel thread: the task's result, or None when skipped on stop or failed inside the worker."""
        if not self._start(hand):
            return None
        started = time.time()
        try:
            factors = primes.factorize(task.n, budget=budget)
        except Exception as e:
            return self._failed(hand, task, started, e)
        return unchecked_result(task.id, task.job, str(task.n), tuple(factors), None, None, self.worker_id,
                                task.submitted_at, started, time.time())

    def _failed(self, hand: InHand, task: Task, started: float, e: Exception) -> Result | None:
        """The error result of a task that raised `e`; None for a worker fault (the message is kept for a retry)."""
        if isinstance(e, primes.BudgetExceeded):
            return self._error(task, started, Code.OVER_BUDGET, f"over the work budget of {self.cfg.work_budget} s")
        if isinstance(e, (ValueError, TypeError)):
            return self._error(task, started, Code.BAD_INPUT, str(e))
        self.log.error("task %s: worker fault; the message is left for retry", task.id, exc_info=e)
        hand.fault = True
        return None

    def _error(self, task: Task, started: float, code: Code, message: str) -> Result:
        self.log.warning("task %s: error %d: %s", task.id, code, message)
        return Result(
            task_id=task.id, job=task.job, n=str(task.n), factors=None, error_code=int(code), error_message=message,
            worker=self.worker_id, submitted_at=task.submitted_at, started_at=started, completed_at=time.time(),
        )

    # -- answer ------------------------------------------------------------------------------------------------
    def _answer(self, batch: Sequence[InHand], more: bool) -> None:
        """Send the results, delete what was answered and, after a full batch (`more`), take the next batch: on the
        embedded queue in one commit; on SQS in three calls, the last one the receive the next step would make."""
        released = [h.message.receipt for h in batch if h.skipped]
        if released:
            self._release(released)
        answered = [h for h in batch if not h.skipped]
        outgoing, unsent = self._outgoing(answered)
        with self.metrics.timer("send_time"), self.broker.atomic():
            unsent |= self._send_results(outgoing)
            done = [h for h in answered if not h.fault and id(h) not in unsent]
            with self.metrics.timer("delete_time"):
                deleted = self._delete(done)
            if more and not self.stopping:
                self._ahead.receive(self.tasks)
        self._count(batch, deleted)

    def _outgoing(self, hands: Sequence[InHand]) -> tuple[list[tuple[SendEntry, list[InHand]]], set[int]]:
        """The result messages of `hands`, each with the hands it answers, and the ids of hands that cannot be
        answered. Compact bundles whose ids continue one another are answered together: one message for many small
        task messages, its requestMessageId their message ids, comma-separated."""
        unsent: set[int] = set()
        out = [answer for group in _answer_groups([h for h in hands if h.answer is not None])
               for answer in self._run_bodies(group, unsent)]
        out += [(body, [hand]) for hand in hands if hand.answer is None for body in self._bodies(hand, unsent)]
        entries = [(SendEntry(str(i), body, {REQUEST_MESSAGE_ID: ",".join(h.message.message_id for h in group)}),
                    group) for i, (body, group) in enumerate(out)]
        return entries, unsent

    def _run_bodies(self, group: list[InHand], unsent: set[int]) -> list[tuple[str, list[InHand]]]:
        """One compact body for the runs of `group`, halved where it would be over the size limit; a run alone
        over it is answered result by result."""
        try:
            return [(encode_result_run(*_joined(group), self.worker_id), group)]
        except MessageError:
            if len(group) > 1:
                half = len(group) // 2
                return self._run_bodies(group[:half], unsent) + self._run_bodies(group[half:], unsent)
        [hand] = group
        (factors, started, completed), hand.answer = hand.answer, None
        self._unbundle(hand, factors, started, completed, None, self.cfg.work_budget)
        return [(body, [hand]) for body in self._bodies(hand, unsent)]

    def _send_results(self, outgoing: list[tuple[SendEntry, list[InHand]]]) -> set[int]:
        """Send the result messages; the ids of the hands they answer that the results queue did not accept."""
        unsent: set[int] = set()
        for start in range(0, len(outgoing), MAX_BATCH):
            chunk = outgoing[start : start + MAX_BATCH]
            outcome = self.results.send_batch([entry for entry, _ in chunk])
            for entry_id, reason in outcome.failed.items():
                entry, hands = outgoing[int(entry_id)]
                self.log.error("result of message %s not sent (kept for retry): %s",
                               entry.attributes[REQUEST_MESSAGE_ID], reason)
                unsent.update(id(hand) for hand in hands)
        return unsent

    def _bodies(self, hand: InHand, unsent: set[int]) -> list[str]:
        try:
            return pack_results(hand.results) if hand.results else []
        except MessageError as e:  # one result over the size limit: nothing to send, so keep the message
            self.log.error("results of message %s cannot be encoded: %s", hand.message.message_id, e)
            unsent.add(id(hand))
            return []

    def _delete(self, hands: Sequence[InHand]) -> list[InHand]:
        failed: dict[str, str] = {}
        for receipts in _chunks([h.message.receipt for h in hands]):
            failed.update(self.tasks.delete_batch(receipts).failed)
        for receipt, reason in failed.items():
            self.log.warning("task message not deleted (its result may arrive twice): %s", reason)
        return [h for h in hands if h.message.receipt not in failed]

    def _release(self, receipts: list[str]) -> None:
        try:
            for chunk in _chunks(receipts):
                self.tasks.change_visibility(chunk, 0)
        except QueueError as e:
            self.log.error("could not release %d messages (they return after their visibility timeout): %s",
                           len(receipts), e)
            return
        self.metrics.incr("released", len(receipts))
        self.log.info("released %d messages for others to take", len(receipts))

    def _count(self, batch: Sequence[InHand], deleted: Sequence[InHand]) -> None:
        answered = sum(h.answered for h in deleted)
        errors = sum(r.error_code is not None for h in deleted for r in h.results)
        faults = sum(h.fault for h in batch)
        self.metrics.incr("tps", answered)
        if errors:
            self.metrics.incr("task_errors", errors)
        if faults:
            self.metrics.incr("worker_faults", faults)
        self.log.debug("batch: %d messages, %d tasks answered (%d errors), %d released, %d with faults",
                       len(batch), answered, errors, sum(h.skipped for h in batch), faults)


def _answer_groups(hands: list[InHand]) -> list[list[InHand]]:
    """The answered runs in groups whose ids continue one another, each small enough that the message ids it answers
    fit in its requestMessageId."""
    groups: list[list[InHand]] = []
    room = 0
    for hand in sorted(hands, key=lambda h: (h.run.id_prefix, h.run.id_start)):
        room -= len(hand.message.message_id) + 1
        if not (groups and room >= 0 and _continues(groups[-1][-1].run, hand.run)):
            groups.append([])
            room = _REQUEST_IDS_ROOM - len(hand.message.message_id)
        groups[-1].append(hand)
    return groups


def _continues(last: TaskRun, run: TaskRun) -> bool:
    return (run.id_prefix == last.id_prefix and run.id_start == last.id_start + len(last.numbers)
            and run.job == last.job and run.submitted_at == last.submitted_at)


def _joined(group: list[InHand]) -> tuple[TaskRun, list, list, list]:
    """The runs of `group` as one, with their answers' columns."""
    if len(group) == 1:
        return (group[0].run, *group[0].answer)
    first = group[0].run
    run = TaskRun(first.id_prefix, first.id_start, [n for h in group for n in h.run.numbers],
                  [text for h in group for text in h.run.inputs], first.job, first.submitted_at)
    return (run, *([value for h in group for value in h.answer[k]] for k in range(3)))


def _chunks(items: list) -> list[list]:
    """`items` in pieces of at most MAX_BATCH: one queue call each."""
    return [items[i : i + MAX_BATCH] for i in range(0, len(items), MAX_BATCH)]


def _split(items: list, parts: int) -> list[list]:
    """`items` in at most `parts` contiguous pieces of nearly equal size."""
    size = max(1, -(-len(items) // max(parts, 1)))
    return [items[i : i + size] for i in range(0, len(items), size)]


def _heartbeat_interval(cfg) -> float:
    return cfg.heartbeat_interval or cfg.visibility_timeout / HEARTBEAT_FRACTION


def cpu_count() -> int:
    """CPUs this process may run on: a worker's default kernel threads, `grid local`'s default workers."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    return lifecycle.main(Worker, argv)


if __name__ == "__main__":
    raise SystemExit(main())
