"""Local worker processes (`ProcessFleet`), and how a local grid process starts: a new interpreter running
`grid <role>` (here), or a fork of a zygote (grid.fleet.zygote, Linux). `grid local` starts its daemons the same ways.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from grid.errors import EXIT_CONFIG, ConfigError
from grid.fleet import Fleet, FleetSize

log = logging.getLogger("grid.fleet")

DEFAULT_STOP_TIMEOUT = 30.0  # seconds a SIGTERMed worker may take to drain before SIGKILL
PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies


def worker_argv(broker_url: str, extra_args: Sequence[str] = ()) -> list[str]:
    """The `grid` arguments of one local worker process on `broker_url`."""
    return ["worker", "--broker-url", broker_url, *extra_args]


def worker_command(broker_url: str, extra_args: Sequence[str] = ()) -> list[str]:
    """The command line of one local worker process on `broker_url`."""
    return grid_command(worker_argv(broker_url, extra_args))


def grid_command(argv: Sequence[str]) -> list[str]:
    """The command line of `grid <argv>` as a new interpreter."""
    return [sys.executable, "-m", "grid.cli", *argv]


class WorkerCommand:
    """Starts a worker process from its command line."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None, output):
        self.command, self.env, self.output = list(command), dict(env) if env is not None else None, output

    def __call__(self) -> subprocess.Popen:
        return _popen(self.command, self.env, self.output, stop_with_parent=True)


def new_process(argv: Sequence[str], env: Mapping[str, str] | None = None, output: str | None = None,
                stop_with_parent: bool = True) -> subprocess.Popen:
    """`grid <argv>` as a new interpreter, its stdout and stderr appended to the file `output` (None: ours)."""
    if output is None:
        return _popen(grid_command(argv), env, None, stop_with_parent)
    with open(output, "ab") as out:
        return _popen(grid_command(argv), env, out, stop_with_parent)


def _popen(command: list[str], env: Mapping[str, str] | None, output, stop_with_parent: bool) -> subprocess.Popen:
    # Own session: a Ctrl-C at the terminal reaches only the parent, which stops each child once.
    return subprocess.Popen(command, env=env, stdout=output, stderr=output, stdin=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=sigterm_on_parent_death if stop_with_parent else None)


def sigterm_on_parent_death() -> None:
    """In the new process: get SIGTERM (and drain) if its parent dies without stopping it (Linux only)."""
    if sys.platform.startswith("linux"):
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def prctl(option: int, value: int | bytes) -> None:
    """Linux's prctl(2)."""
    if ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")


class Forked:
    """A process that a `Zygote` (grid.fleet.zygote) forked, a child of the zygote's owner, with the part of
    subprocess.Popen's interface ProcessFleet and `grid local` use."""

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
    def processes(self) -> list[Process]:
        """The workers in service."""
        return list(self._running)

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
