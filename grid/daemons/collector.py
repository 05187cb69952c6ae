"""The collector: drains the results queue into the result store, deleting a result message only once it is stored.

Duplicates (a task answered twice after a redelivery) are dropped by task id in the store (grid.store: a SQLite file,
or objects in S3). A store that cannot be written (S3 unreachable) raises StoreError: the step's messages stay in the
queue and come back after their visibility timeout, and the daemon retries with backoff. A result message that
cannot be decoded is not deleted: it comes back until the queue's redrive policy moves it to the dead-letter
queue, where `grid dlq peek` shows it.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from grid.errors import MessageError, QueueError
from grid.queues.base import MAX_BATCH, Message
from grid.daemons import lifecycle
from grid.daemons.batching import Ahead, receive_while_full
from grid.daemons.pace import Pace, clocks
from grid.store import Store, open_store
from grid.wire import REQUEST_MESSAGE_ID, Results, decode_results

RECEIVES_PER_STEP = 10  # receives stored with one commit when the results come fast: a commit costs about as much
# as storing a receive's results
LATENCY_SAMPLES = 100  # latency timings sent per step at most, evenly spread over its results: enough for the
# percentiles of a live view, where a timing per result cost CPU the workers need (docs/benchmarks.md)
RECEIVES_AHEAD = 2  # receives on their way while the queue's calls wait (SQS) and results come fast: while one's
# request travels, the other waits in its long poll, so the last results of a run come at once, not a round trip later
# (benchmarks/phases.py at 50 ms: the drain 0.094 -> 0.064 s; harness 1 at 20 ms: ~0.0003 more requests a task)


class Collector(lifecycle.Daemon):
    """Store every result of the results queue once."""

    role = "collector"

    def __init__(self, cfg, broker, metrics, *, store: Store | None = None):
        super().__init__(cfg, broker, metrics)
        self.store = store
        self.stored = 0
        self.duplicates = 0
        self._ahead = Ahead(cfg.batch_size, cfg.visibility_timeout, self.log, "results")
        self._more = False  # the last receive came full: more are waiting
        self._pace = Pace()  # a step's store against a delete's wait
        self._network = ThreadPoolExecutor(RECEIVES_AHEAD + 2, thread_name_prefix="grid-network")  # made when used
        self._deleting: deque[Future] = deque()  # the background deletes: one at a time, each of what waited for it
        self._to_delete: list[str] = []  # receipts stored, waiting for the delete on its way
        self._deleter_on = False  # a delete loop runs on a network thread
        self._delete_lock = threading.Lock()

    def setup(self) -> None:
        self.results = self.open_queue(self.cfg.results_queue_name)
        if self.store is None:
            source = f"result_store from {self.cfg.source('result_store')}"
            self.store = open_store(self.cfg.result_store, source=source)
        self.log.info("collecting %s into %s", self.cfg.results_queue_name, self.store.location)

    def run_once(self) -> bool:
        self._collect(wait=False)
        messages = self._receive()
        if not messages:
            return False
        results, receipts = [], []
        for message in messages:
            decoded = self._decode(message)
            if decoded is not None:
                results.append(decoded)
                receipts.append(message.receipt)
        if receipts:
            self._store(results, receipts)
        return True

    def _receive(self) -> list[Message]:
        """A receive (or the one taken ahead) and, while they come full, more: where the queue's calls wait, the next
        on a network thread while this step stores; else at once, up to RECEIVES_PER_STEP, for one store commit."""
        cfg = self.cfg
        depth = self._pace.depth(RECEIVES_AHEAD + 1)
        messages = self._ahead.take()
        if not messages:
            self.metrics.flush()  # the receive may wait: what was counted goes out first, not a long poll later
            messages = self._ahead.take(wait=True) or self.results.receive(
                cfg.batch_size, wait_seconds=cfg.queue_polling_wait_time, visibility_timeout=cfg.visibility_timeout)
        if depth > 1:
            if messages:  # results come: the next receive waits for more while this step stores
                self._receive_ahead(depth - 1)
            return messages
        more, self._more = receive_while_full(self.broker, self.results, messages, cfg.batch_size,
                                              cfg.visibility_timeout, RECEIVES_PER_STEP - 1)
        return messages + more

    def _receive_ahead(self, receives: int) -> None:
        """While the queue's calls wait: `receives` on the network threads, at once (the embedded queue's
        receive_while_full makes them one after the other in a commit; on SQS that would be a round trip each). Each
        is a long poll, the one the next step would make: a result sent while it waits comes at once (at the end of a
        run, the last ones a round trip sooner)."""
        while self._ahead.held() < receives and not self.stopping:
            self._ahead.expect()
            self._network.submit(self._ahead.receive, self.results, True, self.cfg.queue_polling_wait_time)

    def _collect(self, wait: bool) -> None:
        """The deletes made in the background, done; with `wait`, all of them. One that failed raises here, in the
        daemon's own thread (its results are stored: the messages come back as duplicates, which the store drops)."""
        while self._deleting and (wait or self._deleting[0].done()):
            self._deleting.popleft().result()

    def teardown(self) -> None:
        if not self.forced:  # the deletes on their way, then what a failed one left
            rest = [lambda: self._to_delete and self._delete(self._to_delete, False)]
            for finish in [future.result for future in self._deleting] + rest:
                try:
                    finish()
                except QueueError as e:
                    self.log.warning("stored result messages not deleted (they will come back as duplicates): %s", e)
        ahead = self._ahead.take_all(not self.forced)  # the receives on their way come in first (none is cancelled)
        self._network.shutdown(wait=False)
        if ahead:
            try:
                self.results.change_visibility([m.receipt for m in ahead], 0)
            except QueueError as e:
                self.log.warning("could not give back %d result messages taken ahead: %s", len(ahead), e)
        if self.store is not None:
            self.store.close()
        self.log.info("collector stopping: %d results stored, %d duplicates dropped", self.stored, self.duplicates)

    def _delete_later(self, receipts: list[str]) -> None:
        """Delete on a network thread: at once if no delete is on its way, else right after it, together with every
        receipt that waited for it (small steps would otherwise each make a request)."""
        with self._delete_lock:
            self._to_delete += receipts
            if self._deleter_on:
                return
            self._deleter_on = True
        self._deleting.append(self._network.submit(self._delete_waiting))

    def _delete_waiting(self) -> None:
        """On a network thread: delete what waits until nothing does. A failed call raises (in the daemon's thread,
        at its next step); what waited after it goes with the next delete."""
        while True:
            with self._delete_lock:
                receipts, self._to_delete = self._to_delete, []
                self._deleter_on = bool(receipts)
                if not receipts:
                    return
            try:
                self._delete(receipts, False)
            except BaseException:
                with self._delete_lock:
                    self._deleter_on = False
                raise

    def _delete(self, receipts: list[str], ahead: bool) -> None:
        """Delete the stored messages; with `ahead`, receive the next batch in the same commit (the embedded queue)."""
        since = clocks()
        with self.broker.atomic():
            failed = [reason for start in range(0, len(receipts), MAX_BATCH)
                      for reason in self.results.delete_batch(receipts[start:start + MAX_BATCH]).failed.values()]
            if ahead:
                self._ahead.receive(self.results)
        self._pace.waited_since(since)
        for reason in failed:
            self.log.warning("stored result message not deleted (it will come back as a duplicate): %s", reason)

    def _decode(self, message: Message) -> Results | None:
        try:
            return decode_results(message.body, default_id=message.attributes.get(REQUEST_MESSAGE_ID,
                                                                                  message.message_id))
        except MessageError as e:
            self.log.error("result message %s (receive %d) left for the dead-letter queue: %s",
                           message.message_id, message.receive_count, e)
            return None

    def _store(self, results: list[Results], receipts: list[str]) -> None:
        with self.metrics.timer("store_time"):
            began = time.monotonic()
            added = self.store.add(results)  # raises, and deletes nothing, when the results are not stored
            self._pace.computed(time.monotonic() - began)
            if self._pace.depth(2) > 1:  # the queue's calls wait: the deletes go on while the next step stores
                self._delete_later(receipts)
            else:
                self._delete(receipts, self._more and not self.stopping)
        self.stored += added.stored
        self.duplicates += added.duplicates
        self.metrics.incr("results_stored", added.stored)
        self.metrics.incr("duplicates", added.duplicates)
        latencies = [s for item in results for s in item.latencies()]
        for seconds in latencies[:: -(-len(latencies) // LATENCY_SAMPLES) or 1]:
            self.metrics.timing("latency", seconds * 1000.0)
        self.log.debug("stored %d results (%d duplicates) from %d messages", added.stored, added.duplicates,
                       len(receipts))


def main(argv: list[str] | None = None) -> int:
    return lifecycle.main(Collector, argv)
