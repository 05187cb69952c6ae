"""Heartbeats: a thread that keeps the messages a worker has in hand invisible until it lets them go.

Apart from the computing thread, so that a worker with one kernel thread computes in its main thread (a hand-off to
a pool costs as much as several tiny tasks: docs/benchmarks.md) and still extends its messages' visibility in time.
A worker holds messages at several stages at once (received ahead, computing, being answered), each from its own
time: every message is extended once it has been held an interval since it was taken or last extended.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence

log = logging.getLogger("grid.worker")


class Heartbeat:
    """Calls `extend(items)` from a thread of its own for the items held (see `hold`) an `interval` or more since they
    were taken or last extended: first one to one and a half intervals after `hold`, then as often.

    The thread wakes every `interval / 2` whatever happens, so `hold` and `release` wake nobody: a worker takes a
    batch every millisecond or so when tasks are small, and a thread switch per batch would cost more than a task.
    """

    def __init__(self, extend: Callable[[Sequence], None], interval: float):
        self._extend, self._interval = extend, interval
        self._lock = threading.Lock()
        self._held: dict[Hashable, float] = {}  # item -> when its next beat is due (time.monotonic())
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grid-heartbeat", daemon=True)
        self._thread.start()

    def hold(self, items: Iterable[Hashable]) -> None:
        """Beat for `items` from `interval` seconds from now, until they are released; an item held already keeps
        its time (it was taken earlier)."""
        due = time.monotonic() + self._interval
        with self._lock:
            for item in items:
                self._held.setdefault(item, due)

    def release(self, items: Iterable[Hashable] | None = None) -> None:
        """No more beats for `items` (default: all held); waits for a beat in progress, so none follows this call."""
        with self._lock:
            if items is None:
                self._held.clear()
            else:
                for item in items:
                    self._held.pop(item, None)

    def close(self) -> None:
        self._closed.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._closed.wait(self._interval / 2):
            with self._lock:
                now = time.monotonic()
                due = [item for item, at in self._held.items() if at <= now]
                if due:
                    self._held.update(dict.fromkeys(due, now + self._interval))
                    self._beat(due)

    def _beat(self, items: list) -> None:
        try:
            self._extend(items)  # under the lock: release() waits for it
        except Exception:  # the thread lives on: the next beat may succeed
            log.exception("heartbeat failed")
