"""Heartbeats: a thread that keeps the messages a worker has in hand invisible while it computes them.

Apart from the computing thread, so that a worker with one kernel thread computes in its main thread (a hand-off to
a pool cost 60-300 us a batch, as much as ten tiny tasks) and still extends its messages' visibility in time.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence


log = logging.getLogger("grid.worker")


class Heartbeat:
    """Calls `extend(items)` every `interval` seconds while `items` are held (see `hold`), from a thread of its own."""

    def __init__(self, extend: Callable[[Sequence], None], interval: float):
        self._extend, self._interval = extend, interval
        self._cond = threading.Condition()
        self._items: Sequence = ()
        self._due = math.inf
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="grid-heartbeat", daemon=True)
        self._thread.start()

    def hold(self, items: Sequence) -> None:
        """Beat for `items` from `interval` seconds from now, until `release`."""
        with self._cond:
            self._items, self._due = items, time.monotonic() + self._interval
            self._cond.notify()

    def release(self) -> None:
        """No more beats for the items held; waits for a beat in progress, so none follows this call."""
        with self._cond:
            self._items, self._due = (), math.inf

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                wait = self._due - time.monotonic()
                if wait > 0:
                    self._cond.wait(None if math.isinf(wait) else wait)
                    continue
                self._due = time.monotonic() + self._interval
                try:
                    self._extend(self._items)  # under the lock: release() waits for it
                except Exception:  # the thread lives on: the next beat may succeed
                    log.exception("heartbeat failed")
