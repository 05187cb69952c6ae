"""How local grid processes start: a new interpreter running `grid <role>`, or a fork of a zygote (Linux).

ProcessFleet (grid.fleet) takes either as the launcher of its workers; `grid local` (grid.local) starts its roles
with either.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies
PR_SET_NAME = 15  # prctl option: the process's name (/proc/<pid>/comm, what ps and top show), 15 bytes at most
PR_SET_CHILD_SUBREAPER = 36  # prctl option: orphaned descendants become this process's children
# What a local role imports only as it starts (encodings.idna: the statsd client's first name lookup, ~4 ms): a
# zygote imports them for all its forks.
PRELOAD = ("ctypes", "encodings.idna", "grid.logs", "grid.queues.sqlite")


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
                            start_new_session=True, preexec_fn=_stop_with_parent if stop_with_parent else None)


def _stop_with_parent() -> None:
    """In the new process: get SIGTERM (and drain) if its parent dies without stopping it (Linux only)."""
    if sys.platform.startswith("linux"):
        _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _prctl(option: int, value: int | bytes) -> None:
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")


class Forked:
    """A process that a `Zygote` forked, a child of the zygote's owner, with the part of subprocess.Popen's interface
    ProcessFleet and `grid local` use."""

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
    """Forks grid processes (`grid <role> ...`) from a copy of its owner made before the owner opened anything (Linux).

    A new interpreter spends about 0.3 s, more on a busy machine, starting and importing a role's modules; a fork of
    a process that has them imported is ready in a few hundredths of that. The zygote is that process: forked from
    its owner (the supervisor for its workers, `grid local` for its roles) once the roles' modules are imported and
    before the owner has a thread, a log file, a socket or a database connection (a fork must not share an open
    SQLite connection). It opens nothing itself and forks a process on each request. The owner is their subreaper,
    so each is its child as with subprocess: it reaps them and reads their exit codes. A forked process runs in its
    own session with stdin from /dev/null, the environment and output it was given, as a new interpreter would;
    with `stop_with_parent` it gets SIGTERM if the owner dies. The zygote dies with its owner.
    """

    def __init__(self, roles: Sequence[str], *, stop_with_parent: bool = True):
        import importlib

        for module in (*PRELOAD, *(f"grid.daemons.{role}" for role in roles)):
            importlib.import_module(module)
        self.stop_with_parent = stop_with_parent
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        requests_r, self._requests = os.pipe()
        self._replies, replies_w = os.pipe()
        owner = os.getpid()
        sys.stdout.flush()  # or the zygote's copy of what is buffered would be written again by each child
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self._requests)
            os.close(self._replies)
            _zygote(owner, stop_with_parent, requests_r, replies_w)
        os.close(requests_r)
        os.close(replies_w)

    def fork(self, argv: Sequence[str], env: Mapping[str, str] | None = None, output: str | None = None) -> Process:
        """`grid <argv>` with `env` as its environment (None: ours) and its stdout and stderr appended to the file
        `output` (None: ours); a new interpreter if the zygote is gone."""
        request = json.dumps({"argv": list(argv), "env": None if env is None else dict(env), "output": output}).encode()
        try:
            _write_all(self._requests, len(request).to_bytes(8, "little") + request)
            return Forked(_read_int(self._replies), grid_command(argv))
        except OSError as e:
            log.warning("the zygote (pid %d) is gone (%s): starting the %s as a new process", self.pid, e, argv[0])
            return new_process(argv, env, output, self.stop_with_parent)


def make_zygote(roles: Sequence[str], *, stop_with_parent: bool = True) -> Zygote | None:
    """A zygote for `roles` on Linux; None elsewhere, or where this process cannot be a subreaper."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return Zygote(roles, stop_with_parent=stop_with_parent)
    except OSError:
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise OSError("end of pipe")
        data += chunk
    return data


def _read_int(fd: int) -> int:
    return int.from_bytes(_read_exactly(fd, 8), "little")


def _zygote(owner: int, stop_with_parent: bool, requests: int, replies: int) -> None:
    """The zygote's life: fork a process for each request until its owner goes (the requests pipe closes)."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C at the terminal is the owner's to handle
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        while (request := _next_request(requests)) is not None:
            pid = _fork_child(request, owner, stop_with_parent, (requests, replies))
            os.write(replies, pid.to_bytes(8, "little"))
    except BaseException:  # noqa: BLE001 - the zygote must not return into its owner's code
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)


def _next_request(fd: int) -> dict | None:
    """The next request on the pipe; None once its owner closed it."""
    head = os.read(fd, 8)
    if not head:
        return None
    size = int.from_bytes(head + _read_exactly(fd, 8 - len(head)), "little")
    return json.loads(_read_exactly(fd, size))


def _fork_child(request: dict, owner: int, stop_with_parent: bool, fds: tuple[int, ...]) -> int:
    """Fork a process through one that exits at once, so that it becomes the owner's child; its pid."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(read_end)
        me = os.getpid()
        child = os.fork()
        if child == 0:
            _run_child(request, owner, me, stop_with_parent, (*fds, write_end))
        os.write(write_end, child.to_bytes(8, "little"))
        os._exit(0)
    os.close(write_end)
    try:
        return _read_int(read_end)
    finally:
        os.close(read_end)
        os.waitpid(middle, 0)  # once it is reaped, the child is the owner's


def _run_child(request: dict, owner: int, middle: int, stop_with_parent: bool, fds: tuple[int, ...]) -> None:
    """In the forked process: what `python -m grid.cli <argv>` started as a new process does, then exit."""
    code = 1
    try:
        for fd in fds:
            os.close(fd)
        _redirect(request["output"])
        while os.getppid() == middle:  # until the process in between has exited
            time.sleep(0.0005)
        if stop_with_parent:
            _stop_with_parent()
        if os.getppid() != owner:  # it died meanwhile
            os._exit(0)
        os.setsid()
        code = _become(request["argv"], request["env"])
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


def _redirect(output: str | None) -> None:
    """stdin from /dev/null; stdout and stderr appended to `output` (None: kept)."""
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    if output is not None:
        fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


def _become(argv: list[str], env: dict[str, str] | None) -> int:
    """Take the role's environment, arguments, name and signals, and run it; its exit code."""
    import importlib

    if env is not None:  # in place: modules keep a reference to os.environ (e.g. as a default argument)
        os.environ.clear()
        os.environ.update(env)
    sys.argv = [sys.argv[0], *argv]
    _prctl(PR_SET_NAME, f"grid-{argv[0]}".encode())
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = importlib.import_module(f"grid.daemons.{argv[0]}").main(argv[1:])
    return 0 if code is None else code
