"""How deep a role's pipeline goes: running averages of the seconds a unit of its work computes and its queue calls
wait (wall time less their CPU time), and the depth their ratio asks. The worker keeps batches ahead and answers in
flight by it; the producer, its sends."""
from __future__ import annotations

import math
import time

PIPELINE_FROM = 0.005  # seconds a queue call waits, on average, from which work goes to the background: below it (the
# embedded queue, whose calls wait 1-3 ms for its write lock when busy) a step makes its calls in its own thread, which
# the tiny tasks need (docs/benchmarks.md); SQS waits 10 ms and more
WEIGHT = 0.3  # weight of the newest measure in the running averages; the first measure is the average


class Pace:
    """Running averages of the seconds a unit of work computes and its queue calls wait."""

    def __init__(self):
        self.compute = self.wait = 0.0
        self._computed = self._waited = False

    def computed(self, seconds: float) -> None:
        self.compute = _average(self.compute, seconds, self._computed)
        self._computed = True

    def waited(self, seconds: float) -> None:  # from the network threads: one float assigned at a time
        self.wait = _average(self.wait, max(seconds, 0.0), self._waited)
        self._waited = True

    def waited_since(self, clocks: tuple[float, float], units: int = 1) -> None:
        """What the calls made since `clocks` (see `clocks()`) waited, for each of `units`: the wall time less the
        thread's CPU time (the call's own work is not a wait: on the embedded queue it is all there is)."""
        self.waited(wait_since(clocks) / units)

    def depth(self, most: int) -> int:
        """Units in hand and on the network at once: 1 while the calls wait less than PIPELINE_FROM (or no wait was
        measured yet), else as many as cover a call's wait with computing, at most `most` (2 before a unit was
        computed: its time is not known yet)."""
        if not self._waited or self.wait < PIPELINE_FROM:
            return 1
        if not self._computed:
            return min(most, 2)
        return max(1, min(most, 1 + math.ceil(self.wait / max(self.compute, 1e-4))))


def clocks() -> tuple[float, float]:
    """The wall clock and this thread's CPU clock now, for `Pace.waited_since`."""
    return time.monotonic(), time.thread_time()


def wait_since(clocks: tuple[float, float]) -> float:
    """Seconds the calls made since `clocks` waited: the wall time less the thread's CPU time."""
    began, cpu = clocks
    return time.monotonic() - began - (time.thread_time() - cpu)


def _average(average: float, measure: float, before: bool) -> float:
    """The running average with a new measure; the first measure alone, so the depth is right from the start."""
    return average + WEIGHT * (measure - average) if before else measure
