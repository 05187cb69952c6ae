"""What the worker and the collector share when messages come fast: more receives in one write transaction while
they come full, and the next batch received early, inside the commit that answers the last one.

On the embedded queue one commit then does what took several (a receive, and the sends and deletes of the answers);
on SQS the receive taken ahead is the one the next step would make anyway.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from grid.errors import QueueError
from grid.queues.base import Broker, Message, Queue


def receive_while_full(broker: Broker, queue: Queue, last: Sequence, batch_size: int, visibility_timeout: int,
                       receives: int, stopping: Callable[[], bool] = lambda: False) -> tuple[list[Message], bool]:
    """After `last`, up to `receives` more receives in one write transaction while each comes full (`batch_size`
    messages) and no stop is requested: the messages they took, and whether the last receive came full."""
    more: list[Message] = []
    with broker.atomic():  # read once the lock is let go
        while len(last) == batch_size and receives > 0 and not stopping():
            last = queue.receive(batch_size, visibility_timeout=visibility_timeout)
            more += last
            receives -= 1
    return more, len(last) == batch_size


class Ahead:
    """The next batch, received early: `receive(queue)` inside the commit of the last batch's answers, `take()` at
    the next step, or at the end to give it back."""

    def __init__(self, batch_size: int, visibility_timeout: int, log: logging.Logger, what: str):
        self._batch_size, self._visibility_timeout, self._log, self._what = batch_size, visibility_timeout, log, what
        self._messages: list[Message] = []

    def receive(self, queue: Queue) -> None:
        """Receive the next batch now; a queue error leaves it to the next step's own receive (the commit goes on)."""
        try:
            self._messages = queue.receive(self._batch_size, visibility_timeout=self._visibility_timeout)
        except QueueError as e:
            self._log.warning("could not take the next %s ahead: %s", self._what, e)
            self._messages = []

    def take(self) -> list[Message]:
        """The batch received ahead, no longer held here ([] if none)."""
        taken, self._messages = self._messages, []
        return taken
