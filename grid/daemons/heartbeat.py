"""Heartbeats: a thread that keeps the messages a worker has in hand invisible while it computes them.

Apart from the computing thread, so that a worker with one kernel thread computes in its main thread (a hand-off to
a pool costs as much as several tiny tasks: docs/benchmarks.md) and still extends its messages' visibility in time.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

log = logging.getLogger("grid.worker")


class Heartbeat:
    """Calls `extend(items)` from a thread of its own while `items` are held (see `hold`): first one to one and a half
    `interval`s after `hold`, then as often.

    The thread wakes every `interval / 2` whatever happens, so `hold` and `release` wake nobody: a worker takes a
    batch every millisecond or so when tasks are small, and a thread switch per batch would cost more than a task.
    """

    def __init__(self, extend: Callable[[Sequence], None], interval: float):
        self._extend, self._interval = extend, interval
        self._lock = threading.Lock()
        self._items: Sequence = ()
        self._due = 0.0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grid-heartbeat", daemon=True)
        self._thread.start()

    def hold(self, items: Sequence) -> None:
        """Beat for `items` from `interval` seconds from now, until `release`."""
        with self._lock:
            self._items, self._due = items, time.monotonic() + self._interval

    def release(self) -> None:
        """No more beats for the items held; waits for a beat in progress, so none follows this call."""
        with self._lock:
            self._items = ()

    def close(self) -> None:
        self._closed.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._closed.wait(self._interval / 2):
            with self._lock:
                if self._items and time.monotonic() >= self._due:
                    self._due = time.monotonic() + self._interval
                    self._beat()

    def _beat(self) -> None:
        try:
            self._extend(self._items)  # under the lock: release() waits for it
        except Exception:  # the thread lives on: the next beat may succeed
            log.exception("heartbeat failed")
