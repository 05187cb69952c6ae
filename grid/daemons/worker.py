"""The worker: receives task messages, factorizes on kernel threads, sends results, deletes what was answered.

Rules: a task message is deleted only after all its results were accepted by the results queue. Bad input (400,
413) and work over the budget (422) are answered with an error result and deleted: they would never succeed. A
worker fault (500) is neither answered nor deleted, so the message is retried and reaches the DLQ after
max_receive_count receives. Messages still in work are kept invisible by heartbeats; on stop, the batch's unstarted
messages are released (visibility 0).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from grid import primes
from grid.errors import MessageError, QueueError
from grid.queues.base import MAX_BATCH, Message, SendEntry
from grid.daemons import lifecycle, protection
from grid.daemons.answers import InHand, result_messages
from grid.daemons.batching import Ahead, receive_while_full
from grid.daemons.heartbeat import Heartbeat
from grid.daemons.pace import Pace, clocks, wait_since
from grid.wire import REQUEST_MESSAGE_ID, Code, Rejected, Result, Tasks, decode_tasks

SMALL_BATCH_TASKS = 100  # a step takes more receives while its messages hold fewer tasks than this ...
MAX_MESSAGES_PER_STEP = 100  # ... and at most this many messages: one commit answers them
HEARTBEAT_FRACTION = 3  # heartbeats per visibility timeout when no interval is configured
CHUNKS_PER_THREAD = 4  # pieces of a batch per kernel thread: few, since a hand-off costs as much as a few tiny tasks
# (docs/benchmarks.md), and one thread takes the batch whole; enough to balance the load
MAX_DEPTH = 16  # most batches ahead and being answered (pipeline_depth's maximum)


class Worker(lifecycle.Daemon):
    """Factorize tasks from the tasks queue and send the results to the results queue."""

    role = "worker"

    def __init__(self, cfg, broker, metrics):
        super().__init__(cfg, broker, metrics)
        self.pool: ThreadPoolExecutor | None = None
        self._batch: list[InHand] = []
        self._ahead = Ahead(cfg.batch_size, cfg.visibility_timeout, self.log, "batch", self._hold)
        self._answering: deque[Future] = deque()
        self.network = ThreadPoolExecutor(2 * MAX_DEPTH, thread_name_prefix="grid-network")  # threads made when used
        self._pace = Pace()  # an answer's calls against a batch's computing: the answers in flight
        self._receives = Pace()  # a receive's wait against a batch's computing: the batches received ahead
        self._polled = False  # the first receive was made
        self._last_depth = 1
        self._lock = threading.Lock()
        self.protection: protection.Protection | None = None

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
        self.protection = protection.for_worker(cfg)
        self.log.info("worker %s: %d kernel threads, heartbeat every %.1f s, scale-in protection %s", self.worker_id,
                      self.concurrency, self.heartbeat_interval,
                      "off" if self.protection is None else f"of {self.protection.what} while busy")

    def run_once(self) -> bool:
        self._collect(wait=False)
        messages = self._ahead.take(wait=True)
        if not messages:
            messages = self._receive()
            self._ahead.full = len(messages) == self.cfg.batch_size  # what the queue said last
        if not messages:
            if self.protection is not None and not self._answering:
                self.protection.idle()
            return False
        if self.stopping:
            self._release([m.receipt for m in messages])
            return True
        if self.protection is not None:
            self.protection.busy()  # before any task starts: a scale-in from now on leaves this instance
        self._batch = [self._open(m) for m in messages]
        full = len(messages) == self.cfg.batch_size
        if full:
            full = self._take_more(self._batch)
        self.metrics.incr("tasks_handled", sum(h.size for h in self._batch))  # once a batch
        self._hold([h.message for h in self._batch])
        depth = self._depth()
        self._prefetch(self._batches_ahead(depth), full)
        began = time.monotonic()
        self._compute(self._batch)
        computed = time.monotonic() - began
        for pace in (self._pace, self._receives):
            pace.computed(computed)
        batch, self._batch = self._batch, []  # not on a second signal (ForcedExit): teardown gives the batch back
        ahead = depth == 1 and full and self._ahead.full and not self._ahead.held() and not self.stopping
        if ahead:
            self._ahead.expect()
        if depth == 1:
            self._count(*self._answer(batch, ahead))
        else:
            self._answering.append(self.network.submit(self._answer, batch, ahead))
            self._collect(wait=len(self._answering) >= self._answers_at_once(depth))
        return True

    def _depth(self) -> int:
        """Batches in hand and being answered at once (those received ahead: `_batches_ahead`, fewer): pipeline_depth,
        or as many as the time an answer waits (for its queue calls) over the time a batch computes asks, within what
        the visibility timeout allows."""
        if self.cfg.pipeline_depth:
            return self.cfg.pipeline_depth
        pace = self._pace
        allowed = int(self.cfg.visibility_timeout / (2 * max(pace.compute, 1e-4)))
        depth = max(1, min(pace.depth(MAX_DEPTH), allowed))
        if depth != self._last_depth:
            self.log.info("pipeline depth %d: answers wait %.1f ms, a batch computes in %.1f ms", depth,
                          pace.wait * 1000, pace.compute * 1000)
            self._last_depth = depth
        return depth

    def _answers_at_once(self, depth: int) -> int:
        """Answers on the network at most: pipeline_depth's, else MAX_DEPTH (a bound on threads and memory): they hold
        no work another worker could take, and each waits for its own calls only, so one slow call (the long tail of
        SQS's latency) does not hold up the computing."""
        return depth if self.cfg.pipeline_depth else MAX_DEPTH

    def _batches_ahead(self, depth: int) -> int:
        """Batches to keep received ahead: none at depth 1 (the next comes in the commit of the last one's answers);
        depth - 1 at a fixed pipeline_depth; else as many as a receive's own wait asks and one more for its spread
        (one made as a batch starts comes in before those ahead are computed, though SQS's latency has a long tail),
        within what the visibility timeout allows. Held beyond that, they would wait in this worker while another
        finds the queue empty at its end."""
        if depth == 1:
            return 0
        if self.cfg.pipeline_depth:
            return depth - 1
        allowed = int(self.cfg.visibility_timeout / (2 * max(self._receives.compute, 1e-4)))
        return max(1, min(self._receives.depth(MAX_DEPTH), allowed - 1))

    def _prefetch(self, batches: int, full: bool) -> None:
        """Receives on the network threads until `batches` are ahead, while the queue came full."""
        while full and self._ahead.full and self._ahead.held() < batches and not self.stopping:
            self._ahead.expect()
            self.network.submit(self._receive_ahead)

    def _receive_ahead(self) -> None:
        since = clocks()
        self._ahead.receive(self.tasks, expected=True)
        self._receives.waited_since(since)

    def _collect(self, wait: bool) -> None:
        """Count the answers made in the background; with `wait`, wait for the oldest first. An answer that failed
        raises here, in the daemon's own thread, as if it had failed in it."""
        while self._answering and (self._answering[0].done() or wait):
            self._count(*self._answering.popleft().result())
            wait = False

    def _hold(self, messages: Sequence[Message]) -> None:
        self.heartbeat.hold(m.receipt for m in messages)

    def teardown(self) -> None:
        if not self.forced:
            self._finish_answers()
        left = [h.message.receipt for h in self._batch] + [m.receipt for m in self._ahead.take_all(not self.forced)]
        if left:  # left mid-batch by a second signal, or batches ahead: give them back now
            self._release(left)
        self.network.shutdown(wait=not self.forced, cancel_futures=True)
        if self.pool is not None:
            self.pool.shutdown(wait=not self.forced, cancel_futures=True)
        if getattr(self, "heartbeat", None) is not None:
            self.heartbeat.close()
        if self.protection is not None and not self.forced:
            self.protection.release()
        counts = self.metrics.counts
        self.log.info("worker stopping: %d tasks answered, %d errors, %d faults, %d messages released",
                      counts.get("tps", 0), counts.get("task_errors", 0), counts.get("worker_faults", 0),
                      counts.get("released", 0))

    def _finish_answers(self) -> None:
        """The answers still in the background, sent and counted; one that fails is logged (its messages come back)."""
        while self._answering:
            try:
                self._count(*self._answering.popleft().result())
            except Exception as e:
                self.log.error("answers of a batch not sent (its messages come back after their timeout): %s", e)

    # -- receive and decode ------------------------------------------------------------------------------------
    def _receive(self) -> list[Message]:
        cfg = self.cfg
        self.metrics.flush()  # this receive may wait: what was counted goes out first, not a long poll later
        with self.metrics.timer("read_time"):
            if not self._polled and (messages := self._first_receive()):
                return messages
            return self.tasks.receive(
                cfg.batch_size, wait_seconds=cfg.queue_polling_wait_time, visibility_timeout=cfg.visibility_timeout
            )

    def _first_receive(self) -> list[Message]:
        """The worker's first receive, without a long poll: the time of one that brings messages is a queue call's
        wait alone, which sets the pipeline's depth from the first batch (at the start of a run, on SQS, the first
        answers would otherwise hold up the next batches for their round trips)."""
        self._polled = True
        since = clocks()
        messages = self.tasks.receive(self.cfg.batch_size, visibility_timeout=self.cfg.visibility_timeout)
        if messages:
            waited = wait_since(since)
            for pace in (self._pace, self._receives):
                pace.waited(waited)
        return messages

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
        try:
            tasks = decode_tasks(message.body, default_id=message.message_id, sent_at=message.sent_at)
        except MessageError as e:
            tasks = Tasks([], [], [], [], {0: Rejected(id=message.message_id, code=e.code, message=str(e),
                                                       submitted_at=message.sent_at)})
        return InHand(message, tasks, tuple(self._rejected(item) for item in tasks.rejected.values()))

    def _rejected(self, item: Rejected) -> Result:
        self.log.warning("task %s: rejected (%d): %s", item.id, item.code, item.message)
        now = time.time()
        return item.to_result(self.worker_id, started_at=now, completed_at=now)

    # -- compute -----------------------------------------------------------------------------------------------
    def _compute(self, batch: Sequence[InHand]) -> None:
        """Solve the batch's numbers: in this thread with one kernel thread, else in pieces on the pool's threads. A
        message delivered before is tried alone first (`_survives`); one that kills its process is left unanswered."""
        again = [h for h in batch if h.message.receive_count > 1 and h.tasks.numbers and not self.stopping]
        for hand in again:
            self._solve_alone(hand)
        parts = 1 if self.concurrency == 1 else self.concurrency * CHUNKS_PER_THREAD
        chunks = _split([hand for hand in batch if not hand.started], parts)
        with self.metrics.timer("execution_time"):
            if self.pool is None:
                for chunk in chunks:
                    self._solve_all(chunk)
            else:
                for future in [self.pool.submit(self._solve_all, chunk) for chunk in chunks]:
                    future.result()

    def _solve_alone(self, hand: InHand) -> None:
        """Answer `hand` in a process of its own, a fork of this one, and take its answers. A message delivered again
        may have killed the worker that had it (a crash in the kernel): tried alone, it takes only itself to the
        dead-letter queue (left unanswered here), not the messages that were in hand with it, nor this worker."""
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: this thread only; no queue call; leaves without clean-up
            try:
                os.close(read)
                self._lock = threading.Lock()  # the parent's may have been held by another thread at the fork
                self._solve(hand, 0, len(hand.tasks.numbers))
                with os.fdopen(write, "wb") as out:
                    out.write(_answers_of(hand))
            finally:
                os._exit(0)
        os.close(write)
        try:
            with os.fdopen(read, "rb") as answers:
                found = answers.read()
            status = os.waitpid(pid, 0)[1]
        except BaseException:  # a second signal (ForcedExit): the child goes too
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        hand.started = True
        if status == 0 and found:
            self._take_answers(hand, found)
            return
        code = os.waitstatus_to_exitcode(status)
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        self.log.error("message %s (received %d times) killed the process that computed it alone (%s): it is left "
                       "unanswered, and after max_receive_count receives it goes to the dead-letter queue",
                       hand.message.message_id, hand.message.receive_count, how)
        hand.faults = set(range(len(hand.tasks.numbers)))

    def _take_answers(self, hand: InHand, found: bytes) -> None:
        """The answers `_answers_of` wrote, in `hand`."""
        hand.factors, hand.started_at, hand.completed_at, errors, faults = json.loads(found)
        hand.errors = {int(i): self._error(hand, int(i), code, message, started, completed)
                       for i, (code, message, started, completed) in errors.items()} or None
        hand.faults = set(faults) or None

    def _heartbeat(self, receipts: list[str]) -> None:
        failed: dict[str, str] = {}
        try:
            for chunk in _chunks(receipts):
                failed.update(self.tasks.change_visibility(chunk, self.cfg.visibility_timeout).failed)
        except QueueError as e:
            self.log.error("heartbeat for %d messages failed: %s", len(receipts), e)
            return
        for receipt, reason in failed.items():
            self.log.warning("heartbeat failed for a message in work (it may be delivered again): %s", reason)

    def _solve_all(self, chunk: list[tuple[InHand, int, int]]) -> None:
        for hand, lo, hi in chunk:
            self._solve(hand, lo, hi)

    def _solve(self, hand: InHand, lo: int, hi: int) -> None:
        """Answer hand's tasks lo..hi-1 into its columns, unless a stop came before the message began. Runs on a
        kernel thread (or the worker's own with one): the kernel's loop in C while the numbers fit 64 bits (less work a
        task than a call each: docs/benchmarks.md), one call each for the others and for a task that failed."""
        if not self._start(hand):
            return
        numbers, budget, began = hand.tasks.numbers, self.cfg.work_budget, time.time()
        i = lo
        while i < hi:
            try:
                factors, started, completed, over = primes.factor_run(numbers[i:hi], budget, began)
            except Exception:  # it failed as a whole: the call below says which task and why
                factors, started, completed, over = [], [], [], None
            done = i + len(factors)
            hand.factors[i:done], hand.started_at[i:done], hand.completed_at[i:done] = factors, started, completed
            began = completed[-1] if completed else began
            if done == hi:
                return
            try:
                if over is not None:
                    raise over
                found = primes.factorize(numbers[done], budget=budget)
            except Exception as e:
                self._failed(hand, done, began, e)
            else:
                hand.factors[done], hand.started_at[done] = found, began
                began = hand.completed_at[done] = time.time()
            i = done + 1

    def _start(self, hand: InHand) -> bool:
        """Mark `hand` started, unless a stop came first (then it is skipped and released)."""
        if not hand.started:  # once started, a message is finished: only its first task needs the lock
            with self._lock:
                if not hand.started and self.stopping:
                    hand.skipped = True
                    return False
                hand.started = True
        return True

    def _failed(self, hand: InHand, i: int, started: float, e: Exception) -> None:
        """Record the error result of task i, which raised `e`; or its fault (the message is kept for a retry)."""
        task_id = hand.tasks.ids[i]
        if isinstance(e, primes.BudgetExceeded):
            code, message = Code.OVER_BUDGET, f"over the work budget of {self.cfg.work_budget} s"
        elif isinstance(e, (ValueError, TypeError)):
            code, message = Code.BAD_INPUT, str(e)
        else:
            self.log.error("task %s: worker fault; the message is left for retry", task_id, exc_info=e)
            with self._lock:  # another kernel thread may record one of the same message's
                hand.faults = (hand.faults or set()) | {i}
            return
        self.log.warning("task %s: error %d: %s", task_id, code, message)
        error = self._error(hand, i, int(code), message, started, time.time())
        with self._lock:
            hand.errors = {**(hand.errors or {}), i: error}

    def _error(self, hand: InHand, i: int, code: int, message: str, started: float, completed: float) -> Result:
        """The error result of hand's task i."""
        tasks = hand.tasks
        return Result(tasks.ids[i], tasks.jobs[i], str(tasks.numbers[i]), None, code, message, self.worker_id,
                      tasks.submitted_at[i], started, completed)

    # -- answer ------------------------------------------------------------------------------------------------
    def _answer(self, batch: Sequence[InHand], ahead: bool) -> tuple[Sequence[InHand], list[InHand]]:
        """Send the results, delete what was answered and, if `ahead` (an expected receive, at depth 1), take the next
        batch, in one commit on the embedded queue (where calls wait, batches ahead are received on their own, by
        `_prefetch`). Runs in the daemon's thread or on a network thread; returns the batch and the messages deleted,
        for `_count` in the daemon's thread."""
        since = clocks()
        self.heartbeat.release(h.message.receipt for h in batch)  # the beats' third of the timeout covers what is left
        try:
            released = [h.message.receipt for h in batch if h.skipped]
            if released:
                self._release(released)
            answered = [h for h in batch if not h.skipped]
            outgoing, unsent = result_messages(answered, self.worker_id, self.log, self.cfg.format_version)
            with self.metrics.timer("send_time"), self._answer_commit():
                unsent |= self._send_results(outgoing)
                done = [h for h in answered if not h.faults and id(h) not in unsent]
                with self.metrics.timer("delete_time"):
                    deleted = self._delete(done)
                if ahead and not self.stopping:
                    ahead = False
                    self._ahead.receive(self.tasks, expected=True)
        finally:
            if ahead:
                self._ahead.cancel()
        self._pace.waited_since(since)
        return batch, deleted

    def _answer_commit(self) -> contextlib.AbstractContextManager:
        """One commit for an answer's calls while the queue gives full batches (the embedded queue's lock once). Once
        it came short, these may be the run's last answers: their results commit before the deletes are made, so the
        collector has them a call's round trip sooner (on SQS the calls are apart anyway)."""
        return self.broker.atomic() if self._ahead.full else contextlib.nullcontext()

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

    def _delete(self, hands: Sequence[InHand]) -> list[InHand]:
        failed: dict[str, str] = {}
        for receipts in _chunks([h.message.receipt for h in hands]):
            failed.update(self.tasks.delete_batch(receipts).failed)
        for receipt, reason in failed.items():
            self.log.warning("task message not deleted (its result may arrive twice): %s", reason)
        return [h for h in hands if h.message.receipt not in failed]

    def _release(self, receipts: list[str]) -> None:
        if getattr(self, "heartbeat", None) is not None:
            self.heartbeat.release(receipts)
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
        answered = sum(h.answers for h in deleted)
        errors = sum(len(h.errors or ()) + len(h.rejected) for h in deleted)
        faults = sum(bool(h.faults) for h in batch)
        self.metrics.incr("tps", answered)
        if errors:
            self.metrics.incr("task_errors", errors)
        if faults:
            self.metrics.incr("worker_faults", faults)
        self.log.debug("batch: %d messages, %d tasks answered (%d errors), %d released, %d with faults",
                       len(batch), answered, errors, sum(h.skipped for h in batch), faults)


def _chunks(items: list) -> list[list]:
    """`items` in pieces of at most MAX_BATCH: one queue call each."""
    return [items[i : i + MAX_BATCH] for i in range(0, len(items), MAX_BATCH)]


def _answers_of(hand: InHand) -> bytes:
    """A hand's answers as JSON, for the process that computed it alone to give them to its parent."""
    errors = {i: (r.error_code, r.error_message, r.started_at, r.completed_at) for i, r in (hand.errors or {}).items()}
    return json.dumps([hand.factors, hand.started_at, hand.completed_at, errors, sorted(hand.faults or ())]).encode()


def _split(batch: Sequence[InHand], parts: int) -> list[list[tuple[InHand, int, int]]]:
    """The batch's tasks in at most `parts` contiguous chunks of nearly equal size, each a list of (hand, first task,
    last task + 1)."""
    total = sum(len(hand.tasks.numbers) for hand in batch)
    size = max(1, -(-total // max(parts, 1)))
    chunks: list[list[tuple[InHand, int, int]]] = [[]]
    room = size
    for hand in batch:
        lo, count = 0, len(hand.tasks.numbers)
        while lo < count:
            if room == 0:
                chunks.append([])
                room = size
            hi = min(count, lo + room)
            chunks[-1].append((hand, lo, hi))
            room -= hi - lo
            lo = hi
    return [chunk for chunk in chunks if chunk]


def _heartbeat_interval(cfg) -> float:
    return cfg.heartbeat_interval or cfg.visibility_timeout / HEARTBEAT_FRACTION


def cpu_count() -> int:
    """CPUs this process may run on: a worker's default kernel threads, `grid local`'s default workers."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    return lifecycle.main(Worker, argv)


if __name__ == "__main__":
    raise SystemExit(main())
