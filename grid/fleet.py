"""The worker fleet: the scaling policy, and the fleets it sizes (EC2 Auto Scaling, local processes)."""
from __future__ import annotations

import abc
import collections
import logging
import math
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from grid.errors import EXIT_CONFIG, ConfigError, GridError
from grid.launch import Process, WorkerCommand
from grid.queues.base import QueueCounts

log = logging.getLogger(__name__)

SCALE_MODES = ("target", "direct")  # target: the ASG's target tracking sizes; direct: set_desired_capacity
DEFAULT_STOP_TIMEOUT = 30.0  # seconds a SIGTERMed worker may take to drain before SIGKILL


class FleetError(GridError):
    """A fleet operation failed, e.g. a transient Auto Scaling error (the supervisor retries it)."""


@dataclass(frozen=True)
class FleetSize:
    """What a fleet holds now: `desired` as last set, `running` all members, `in_service` those doing work."""

    desired: int
    running: int
    in_service: int


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


class Fleet(abc.ABC):
    """A set of workers the supervisor sizes."""

    name: str

    @abc.abstractmethod
    def size(self) -> FleetSize: ...

    @abc.abstractmethod
    def set_desired(self, count: int) -> None: ...

    def close(self, wait: bool = True) -> None:
        """Release what the fleet holds: a local fleet stops its workers (and, with `wait`, lets them drain)."""


class AsgFleet(Fleet):
    """An EC2 Auto Scaling group of workers.

    In `target` mode the group's target tracking policy does the sizing from the published
    `backlog_per_instance`; the supervisor sizes the group only when it is at zero, since target
    tracking cannot scale out from zero (capacity x ratio stays 0). In `direct` mode the supervisor
    sets the desired capacity itself, which reacts within one metric interval. Either way the
    group's own MinSize..MaxSize bound what the supervisor asks for.
    """

    def __init__(self, group_name: str, *, client=None, mode: str = "target"):
        if mode not in SCALE_MODES:
            raise ConfigError(f"scale_mode={mode!r}: must be one of {', '.join(SCALE_MODES)}")
        if client is None:
            from grid import aws

            client = aws.client("autoscaling")
        self.name = group_name
        self.mode = mode
        self._client = client
        self._bounds = (0, 0)

    def size(self) -> FleetSize:
        group = self._describe()
        self._bounds = (group["MinSize"], group["MaxSize"])
        instances = group.get("Instances", [])
        in_service = sum(1 for i in instances if i.get("LifecycleState") == "InService")
        return FleetSize(desired=group["DesiredCapacity"], running=len(instances), in_service=in_service)

    def set_desired(self, count: int) -> None:
        current = self.size().desired
        low, high = self._bounds
        count = min(max(count, low), high)
        if count == current or (self.mode == "target" and current > 0):
            return
        self._call("set_desired_capacity", AutoScalingGroupName=self.name, DesiredCapacity=count, HonorCooldown=False)
        log.info("worker group %s: desired capacity %d -> %d", self.name, current, count)

    def _describe(self) -> dict:
        groups = self._call("describe_auto_scaling_groups", AutoScalingGroupNames=[self.name])["AutoScalingGroups"]
        if not groups:
            raise ConfigError(f"worker_asg_name={self.name!r}: no such Auto Scaling group in this account and region")
        return groups[0]

    def _call(self, operation: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return getattr(self._client, operation)(**kwargs)
        except NoCredentialsError as exc:
            raise ConfigError(f"Auto Scaling {operation} on {self.name!r}: no AWS credentials found") from exc
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, text = error.get("Code", "?"), error.get("Message", str(exc))
            if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "InvalidClientTokenId"):
                raise ConfigError(f"Auto Scaling {operation} on {self.name!r} denied: {code}: {text}") from exc
            raise FleetError(f"Auto Scaling {operation} on {self.name!r} failed: {code}: {text}") from exc
        except BotoCoreError as exc:
            raise FleetError(f"Auto Scaling {operation} on {self.name!r} failed: {exc}") from exc


class ProcessFleet(Fleet):
    """Local worker processes, started by the supervisor and stopped with SIGTERM so they drain.

    `command` is each worker's command line (run with `env`, its output to `output`), or a launcher that starts a
    worker and returns it, such as a `Zygote`.
    """

    def __init__(
        self,
        command: Sequence[str] | Callable[[], Process],
        *,
        env: Mapping[str, str] | None = None,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        output=None,
        name: str = "local",
    ):
        self.name = name
        self._launch = command if callable(command) else WorkerCommand(command, env, output)
        self._stop_timeout = stop_timeout
        self._desired = 0
        self._running: list[Process] = []
        self._stopping: dict[Process, float] = {}  # process -> monotonic deadline
        self.started = 0
        self.exits: list[int] = []  # return codes of reaped workers, in order

    def size(self) -> FleetSize:
        self._reap()
        return FleetSize(desired=self._desired, running=len(self._running) + len(self._stopping),
                         in_service=len(self._running))

    def set_desired(self, count: int) -> None:
        if count < 0:
            raise ValueError(f"desired workers={count}: must be >= 0")
        self._reap()
        self._desired = count
        while len(self._running) < count:
            self._start()
        while len(self._running) > count:
            self._stop(self._running.pop())

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._running]

    def close(self, wait: bool = True) -> None:
        self.set_desired(0)
        if not wait:
            return
        deadline = time.monotonic() + self._stop_timeout
        for proc in list(self._stopping):
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not drain in time: killing it", proc.pid)
                proc.kill()
                proc.wait()
        self._reap()

    def _start(self) -> None:
        proc = self._launch()
        self._running.append(proc)
        self.started += 1
        log.info("started worker pid %d", proc.pid)

    def _stop(self, proc: Process) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            log.info("stopping worker pid %d (SIGTERM: it drains)", proc.pid)
        self._stopping[proc] = time.monotonic() + self._stop_timeout

    def _reap(self) -> None:
        for proc in [p for p in self._running if p.poll() is not None]:
            self._running.remove(proc)
            self.exits.append(proc.returncode)
            if proc.returncode == EXIT_CONFIG:  # restarting it would fail the same way, forever
                raise ConfigError(f"local worker pid {proc.pid} stopped with exit code {EXIT_CONFIG}: its "
                                  f"configuration is bad (its error is logged above); command: {' '.join(proc.args)}")
            log.warning("worker pid %d exited unexpectedly with %d: it will be replaced", proc.pid, proc.returncode)
        now = time.monotonic()
        for proc, deadline in list(self._stopping.items()):
            if proc.poll() is None and now >= deadline:
                log.warning("worker pid %d did not drain in time: killing it", proc.pid)
                proc.kill()
                proc.wait()
            if proc.poll() is not None:
                del self._stopping[proc]
                self.exits.append(proc.returncode)
