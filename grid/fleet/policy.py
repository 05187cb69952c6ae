"""The scaling policy: how many workers a backlog needs, and how fast a fleet may shrink. Pure functions of what
the supervisor observed; the same for an Auto Scaling group and for local processes."""
from __future__ import annotations

import collections
import math
from dataclasses import dataclass

from grid.queues.base import QueueCounts


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def workers_needed(backlog: int, in_flight: int, target: int) -> int:
    """Enough workers for `target` tasks each, in-flight tasks included."""
    return _ceil_div(backlog + in_flight, target)


def desired_workers(backlog: int, in_flight: int, size: int, target: int, min_size: int, max_size: int, *,
                    recent_need: int = 0, idle_for: float = math.inf, cooldown: float = 0.0) -> int:
    """The fleet size for this backlog: enough workers for `target` tasks each, in-flight tasks included.

    Counting in-flight tasks keeps at least one worker while any task is in work, so a drained
    queue never scales in a fleet still computing. Scale-out is immediate. Scale-in is held back:
    the fleet keeps the most workers needed at any step of the last `cooldown` seconds
    (`recent_need`, see `NeedWindow`), so a backlog that comes and goes does not start and stop
    workers at every step; it then removes at most half the fleet per step; and the last worker
    stays until the queue has been idle (`idle_for` seconds, see `Activity`) for `cooldown`: below
    capacity the queue looks empty at almost every step, and a fleet that stopped on that would
    restart for the next task. The result lies in [min_size, max_size].
    """
    _check_policy_args(backlog, in_flight, size, target, min_size, max_size)
    if recent_need < 0 or idle_for < 0 or cooldown < 0:
        raise ValueError(f"recent_need={recent_need}, idle_for={idle_for}, scale_in_cooldown={cooldown}: "
                         "each must be >= 0")
    wanted = max(workers_needed(backlog, in_flight, target), recent_need)
    if wanted < size:
        wanted = max(wanted, size - _ceil_div(size, 2))
    if idle_for < cooldown:
        wanted = max(wanted, 1)
    return min(max(wanted, min_size), max_size)


class NeedWindow:
    """The workers needed at each step of the last `seconds`: their peak holds scale-in back."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._steps: collections.deque[tuple[float, int]] = collections.deque()

    def add(self, now: float, need: int) -> int:
        """Record this step's need; the peak of the steps at most `seconds` before `now`, this one included."""
        self._steps.append((now, need))
        while now - self._steps[0][0] > self.seconds:
            self._steps.popleft()
        return max((n for _, n in self._steps), default=0)


@dataclass(frozen=True)
class Activity:
    """What the supervisor remembers of the tasks queue between steps, to tell how long it has been idle."""

    last_used: float  # monotonic seconds when the queue was last seen in use; -inf: never
    sent_total: int | None  # the queue's count of messages ever sent, where the backend keeps one
    held: bool  # it held messages (waiting, in work or delayed)

    def idle_for(self, now: float) -> float:
        return max(0.0, now - self.last_used)


def observe_activity(previous: Activity | None, counts: QueueCounts, now: float) -> Activity:
    """The queue was in use since the previous step if it holds messages now, held some then (they were
    received since), or its `sent_total` moved. A snapshot alone misses tasks sent and done between two
    steps (below capacity, most of them); `sent_total` does not. Without it (SQS), snapshots must do."""
    held = counts.total > 0
    used = held or (previous is not None and (previous.held or _moved(previous.sent_total, counts.sent_total)))
    last_used = now if used else (previous.last_used if previous is not None else -math.inf)
    return Activity(last_used, counts.sent_total, held)


def _moved(before: int | None, after: int | None) -> bool:
    return before is not None and after is not None and after != before


def backlog_per_instance(backlog: int, in_flight: int, in_service: int) -> float:
    """The AWS pattern's metric: tasks waiting or in work per in-service instance (all of them when none is)."""
    return (backlog + in_flight) / max(in_service, 1)


def _check_policy_args(backlog, in_flight, size, target, min_size, max_size) -> None:
    for name, value in (("backlog", backlog), ("in_flight", in_flight), ("size", size), ("min_workers", min_size)):
        if value < 0:
            raise ValueError(f"{name}={value}: must be >= 0")
    if target < 1:
        raise ValueError(f"backlog_per_instance target={target}: must be >= 1")
    if max_size < min_size:
        raise ValueError(f"max_workers={max_size} is below min_workers={min_size}: max_workers must be >= min_workers")
