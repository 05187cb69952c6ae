"""What the worker and the collector share when messages come fast: more receives in one write transaction while
they come full, and the next batches received early, inside the commit that answers the last one or beside it.

On the embedded queue one commit then does what took several (a receive, and the sends and deletes of the answers);
on SQS the receive taken ahead is the one the next step would make anyway, and while it is on the network the
kernel threads compute.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence

from grid.errors import QueueError
from grid.queues.base import Broker, Message, Queue


def receive_while_full(broker: Broker, queue: Queue, last: Sequence, batch_size: int, visibility_timeout: int,
                       receives: int, stopping: Callable[[], bool] = lambda: False) -> tuple[list[Message], bool]:
    """After `last`, up to `receives` more receives in one write transaction while each comes full (`batch_size`
    messages) and no stop is requested: the messages they took, and whether the last receive came full."""
    more: list[Message] = []
    if receives <= 0:  # no commit either: its end may checkpoint the WAL (fsyncs), which the worker's compute would wait
        return more, len(last) == batch_size
    with broker.atomic():  # read once the lock is let go
        while len(last) == batch_size and receives > 0 and not stopping():
            last = queue.receive(batch_size, visibility_timeout=visibility_timeout)
            more += last
            receives -= 1
    return more, len(last) == batch_size


class Ahead:
    """Batches received early, oldest first: `expect()` when a receive is decided, `receive(queue)` to make it (inside
    the commit of the last batch's answers, or on a thread of its own), `take()` at a next step, `take_all()` at the
    end to give them back. Safe between threads."""

    def __init__(self, batch_size: int, visibility_timeout: int, log: logging.Logger, what: str,
                 on_receive: Callable[[list[Message]], None] = lambda messages: None):
        self._batch_size, self._visibility_timeout, self._log, self._what = batch_size, visibility_timeout, log, what
        self._on_receive = on_receive
        self._batches: deque[list[Message]] = deque()
        self._expected = 0  # receives decided and not yet in
        self._changed = threading.Condition()
        self.full = True  # the last receive made here came full: the queue may have more

    def held(self) -> int:
        """Batches here and on their way."""
        with self._changed:
            return len(self._batches) + self._expected

    def expect(self) -> None:
        """Count a receive decided now and made later (by `receive` or given up by `cancel`)."""
        with self._changed:
            self._expected += 1

    def cancel(self) -> None:
        """An expected receive that will not be made."""
        self._arrived([], expected=True)

    def receive(self, queue: Queue, expected: bool = False, wait_seconds: float = 0) -> None:
        """Receive the next batch now (an `expected` one: see `expect`), in a long poll of `wait_seconds` if given (off a
        commit); a queue error leaves it to a later step's own receive (a commit goes on)."""
        messages: list[Message] = []
        try:
            messages = queue.receive(self._batch_size, wait_seconds=wait_seconds,
                                     visibility_timeout=self._visibility_timeout)
        except QueueError as e:
            self._log.warning("could not take the next %s ahead: %s", self._what, e)
        finally:
            if messages:
                self._on_receive(messages)
            self._arrived(messages, expected)

    def take(self, wait: bool = False) -> list[Message]:
        """The oldest batch received ahead, no longer held here ([] if none); with `wait`, waits for one on its way."""
        with self._changed:
            while wait and not self._batches and self._expected:
                self._changed.wait()
            return self._batches.popleft() if self._batches else []

    def take_all(self, wait: bool = True) -> list[Message]:
        """Every message received ahead, once the receives on their way are in (unless not `wait`)."""
        with self._changed:
            while wait and self._expected:
                self._changed.wait()
            taken = [m for batch in self._batches for m in batch]
            self._batches.clear()
            return taken

    def _arrived(self, messages: list[Message], expected: bool) -> None:
        with self._changed:
            self._expected -= expected
            if messages:
                self._batches.append(messages)
            self.full = len(messages) == self._batch_size
            self._changed.notify_all()
