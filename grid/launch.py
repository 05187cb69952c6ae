"""How local worker processes start: a new interpreter running `grid worker`, or a fork of a zygote (Linux).

ProcessFleet (grid.fleet) takes either as the launcher of its workers.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies
PR_SET_CHILD_SUBREAPER = 36  # prctl option: orphaned descendants become this process's children


def worker_argv(broker_url: str, extra_args: Sequence[str] = ()) -> list[str]:
    """The `grid` arguments of one local worker process on `broker_url`."""
    return ["worker", "--broker-url", broker_url, *extra_args]


def worker_command(broker_url: str, extra_args: Sequence[str] = ()) -> list[str]:
    """The command line of one local worker process on `broker_url`."""
    return [sys.executable, "-m", "grid.cli", *worker_argv(broker_url, extra_args)]


class WorkerCommand:
    """Starts a worker process from its command line."""

    def __init__(self, command: Sequence[str], env: Mapping[str, str] | None, output):
        self.command, self.env, self.output = list(command), dict(env) if env is not None else None, output

    def __call__(self) -> subprocess.Popen:
        # Own session: a Ctrl-C at the terminal reaches only the supervisor, which stops each worker once.
        return subprocess.Popen(self.command, env=self.env, stdout=self.output, stderr=self.output,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_stop_with_parent)


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
            return WorkerCommand(command, None, None)()


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
