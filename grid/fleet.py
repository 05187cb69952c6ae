"""The worker fleet: the scaling policy, and the fleets it sizes (EC2 Auto Scaling, local processes)."""
from __future__ import annotations

import abc
import collections
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from grid.errors import EXIT_CONFIG, ConfigError, GridError
from grid.queues.base import QueueCounts

log = logging.getLogger(__name__)

SCALE_MODES = ("target", "direct")  # target: the ASG's target tracking sizes; direct: set_desired_capacity
PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies
PR_SET_CHILD_SUBREAPER = 36  # prctl option: orphaned descendants become this process's children
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
            import boto3
            from botocore.config import Config as BotoConfig

            client = boto3.client("autoscaling", config=BotoConfig(retries={"mode": "standard"}))
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


def worker_argv(broker_url: str, extra_args: Sequence[str] = ()) -> list[str]:
    """The `grid` arguments of one local worker process on `broker_url`."""
    return ["worker", "--broker-url", broker_url, *extra_args]


def worker_command(broker_url: str, extra_args: Sequence[str] = ()) -> list[str]:
    """The command line of one local worker process on `broker_url`."""
    return [sys.executable, "-m", "grid.cli", *worker_argv(broker_url, extra_args)]


class _Command:
    """Starts a worker process from its command line."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None, output):
        self.command, self.env, self.output = list(command), dict(env) if env is not None else None, output

    def __call__(self) -> subprocess.Popen:
        # Own session: a Ctrl-C at the terminal reaches only the supervisor, which stops each worker once.
        return subprocess.Popen(self.command, env=self.env, stdout=self.output, stderr=self.output,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_stop_with_parent)


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
        self._launch = command if callable(command) else _Command(command, env, output)
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


def _stop_with_parent() -> None:
    """In the new worker: get SIGTERM (and drain) if the supervisor dies without stopping it (Linux only)."""
    if sys.platform.startswith("linux"):
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _prctl(option: int, value: int) -> None:
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")


class Forked:
    """A worker that a `Zygote` forked, a child of the supervisor, with the part of subprocess.Popen's interface
    ProcessFleet uses."""

    def __init__(self, pid: int, args: list[str]):
        self.pid, self.args = pid, args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


Process = subprocess.Popen | Forked


class Zygote:
    """Forks local workers from a copy of the supervisor made before it opened anything (Linux).

    A new interpreter spends about 0.3 s, more on a busy machine, starting and importing a worker's modules before
    its first receive; a fork of a process that has them imported is ready in a few hundredths of that. The zygote
    is that process: forked from the supervisor once the role's modules are imported and before its logging, metrics
    and broker exist (a fork must not share an open SQLite connection), it opens no queue, takes no task, and forks
    a worker only when the fleet starts one. The supervisor is the workers' subreaper, so each worker is its child
    as with subprocess: it reaps them and reads their exit codes, and they get SIGTERM if it dies. The zygote dies
    with the supervisor.
    """

    def __init__(self, argv: Sequence[str]):
        import importlib

        self.argv = list(argv)
        importlib.import_module(f"grid.roles.{self.argv[0]}")
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        requests_r, self._requests = os.pipe()
        self._replies, replies_w = os.pipe()
        supervisor = os.getpid()
        sys.stdout.flush()  # or the zygote's copy of what is buffered would be written again by each worker
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self._requests)
            os.close(self._replies)
            _zygote(self.argv, supervisor, requests_r, replies_w)
        os.close(requests_r)
        os.close(replies_w)

    def __call__(self) -> Process:
        command = [sys.executable, "-m", "grid.cli", *self.argv]
        try:
            os.write(self._requests, b"w")
            return Forked(_read_pid(self._replies), command)
        except OSError as e:
            log.warning("the workers' zygote (pid %d) is gone (%s): starting a worker as a new process", self.pid, e)
            return _Command(command, None, None)()


def _read_pid(fd: int) -> int:
    data = b""
    while len(data) < 8:
        chunk = os.read(fd, 8 - len(data))
        if not chunk:
            raise OSError("end of pipe")
        data += chunk
    return int.from_bytes(data, "little")


def _zygote(argv: list[str], supervisor: int, requests: int, replies: int) -> None:
    """The zygote's life: fork a worker for each request until the supervisor goes."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C at the terminal is the supervisor's to handle
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        while os.read(requests, 1):
            os.write(replies, _fork_worker(argv, supervisor, (requests, replies)).to_bytes(8, "little"))
    except BaseException:  # noqa: BLE001 - the zygote must not return into the supervisor's code
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)


def _fork_worker(argv: list[str], supervisor: int, fds: tuple[int, ...]) -> int:
    """Fork a worker through a process that exits at once, so the worker becomes the supervisor's child; its pid."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(read_end)
        me = os.getpid()
        worker = os.fork()
        if worker == 0:
            _run_worker(argv, supervisor, me, (*fds, write_end))
        os.write(write_end, worker.to_bytes(8, "little"))
        os._exit(0)
    os.close(write_end)
    try:
        return _read_pid(read_end)
    finally:
        os.close(read_end)
        os.waitpid(middle, 0)  # once it is reaped, the worker is the supervisor's


def _run_worker(argv: list[str], supervisor: int, middle: int, fds: tuple[int, ...]) -> None:
    """In the worker: what `python -m grid.cli <argv>` under ProcessFleet does, then exit."""
    code = 1
    try:
        for fd in fds:
            os.close(fd)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        while os.getppid() == middle:  # until the process in between has exited
            time.sleep(0.0005)
        _stop_with_parent()
        if os.getppid() != supervisor:  # it died meanwhile
            os._exit(0)
        os.setsid()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        import importlib

        code = importlib.import_module(f"grid.roles.{argv[0]}").main(argv[1:])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    except BaseException:  # noqa: BLE001 - report it, and never return into the zygote's loop
        import traceback

        traceback.print_exc()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
