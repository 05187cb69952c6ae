"""A zygote: forks grid processes from a copy of its owner made before the owner opened anything (Linux).

ProcessFleet (grid.fleet.processes) takes `Zygote.fork` as the launcher of its workers; `grid local` starts its
daemons with it. Its owner hands it what each role runs (its `main`), so it imports no daemon itself.
"""
from __future__ import annotations

import encodings.idna  # noqa: F401  # a role's first name lookup (its statsd client's) imports it: once here for all
import gc
import json
import logging
import os
import select
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from grid.fleet.processes import PR_SET_PDEATHSIG, Forked, Process, grid_command, new_process, prctl, \
    sigterm_on_parent_death

log = logging.getLogger("grid.fleet")

PR_SET_NAME = 15  # prctl option: the process's name (/proc/<pid>/comm, what ps and top show), 15 bytes at most
PR_SET_CHILD_SUBREAPER = 36  # prctl option: orphaned descendants become this process's children
SPARE_REFILL = 5.0  # seconds without a request before a spare taken is replaced: not while the roles it started
# begin their work (a fork costs them CPU), nor between the starts of a scale-out
Main = Callable[[list[str]], int | None]  # a role's entry: its arguments -> its exit code


class Zygote:
    """Forks grid processes (`grid <role> ...`) from a copy of its owner made before the owner opened anything (Linux).

    A new interpreter spends a good part of a second starting and importing a role's modules (docs/benchmarks.md);
    a fork of a process that has them imported is ready at once. The zygote is that process: forked from its owner
    (the supervisor for its workers, `grid local` for its daemons), which hands it `mains`, each role's entry point
    (`grid.daemons.worker.main`, ...), imported already, and which has no thread, log file, socket or database
    connection yet (a fork must not share an open SQLite connection). It opens nothing itself and forks a process on
    each request. The owner is their subreaper, so each is its child as with subprocess: it reaps them and reads
    their exit codes. A forked process runs in its own session with stdin from /dev/null, the environment and output
    it was given, as a new interpreter would; with `stop_with_parent` it gets SIGTERM if the owner dies. The zygote
    dies with its owner.

    With `spares`, it keeps that many processes forked ahead, each already its owner's child in its own session and
    waiting for a request, and hands the next request to one of them (it forks another when no request waits): a
    role then starts without the two forks and the wait for the process in between (~10-20 ms each here) on its
    path, as an Auto Scaling warm pool keeps instances booted. A spare is named grid-spare; it exits when the zygote
    goes, and `close` returns once the zygote and its spares are gone.
    """

    def __init__(self, mains: Mapping[str, Main], *, stop_with_parent: bool = True, spares: int = 0):
        self.mains = dict(mains)
        self.stop_with_parent = stop_with_parent
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        requests_r, self._requests = os.pipe()
        self._replies, replies_w = os.pipe()
        owner = os.getpid()
        sys.stdout.flush()  # or the zygote's copy of what is buffered would be written again by each child
        sys.stderr.flush()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(self._requests)
            os.close(self._replies)
            _zygote(owner, self.mains, stop_with_parent, requests_r, replies_w, spares)
        os.close(requests_r)
        os.close(replies_w)

    def fork(self, argv: Sequence[str], env: Mapping[str, str] | None = None, output: str | None = None) -> Process:
        """`grid <argv>` with `env` as its environment (None: ours) and its stdout and stderr appended to the file
        `output` (None: ours); a new interpreter if the zygote is gone."""
        request = json.dumps({"argv": list(argv), "env": None if env is None else dict(env), "output": output}).encode()
        try:
            if self._requests is None:
                raise OSError("closed")
            _write_all(self._requests, len(request).to_bytes(8, "little") + request)
            return Forked(_read_int(self._replies), grid_command(argv))
        except OSError as e:
            log.warning("the zygote (pid %d) is gone (%s): starting the %s as a new process", self.pid, e, argv[0])
            return new_process(argv, env, output, self.stop_with_parent)

    def close(self) -> None:
        """End the zygote: it ends its spares and names them, each reaped here (they are this process's children),
        then exits. Later forks start new interpreters."""
        if self._requests is None:
            return
        os.close(self._requests)
        self._requests = None
        try:
            while len(pid := os.read(self._replies, 8)) == 8:
                _reap(int.from_bytes(pid, "little"))
        finally:
            os.close(self._replies)
            _reap(self.pid)


def make_zygote(mains: Mapping[str, Main], *, stop_with_parent: bool = True, spares: int = 0) -> Zygote | None:
    """A zygote for the roles of `mains` on Linux; None elsewhere, or where this process cannot be a subreaper."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return Zygote(mains, stop_with_parent=stop_with_parent, spares=spares)
    except OSError:
        return None


def _reap(pid: int) -> None:
    """Wait for a child of this process to exit (one reaped already is passed over)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


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


def _zygote(owner: int, mains: Mapping[str, Main], stop_with_parent: bool, requests: int, replies: int,
            spares: int) -> None:
    """The zygote's life: fork a process for each request (or hand it to a spare) until its owner goes (the requests
    pipe closes)."""
    code = 0
    ready: deque[tuple[int, int]] = deque()  # the spares: pid, the write end of its request pipe
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C at the terminal is the owner's to handle
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        gc.freeze()  # a child's collections then pass over what it shares with the zygote, instead of copying it
        refill = 0.0  # seconds without a request before a spare is forked: none for the first ones
        while True:
            if len(ready) < spares and not select.select([requests], [], [], refill)[0]:
                ready.append(_fork_spare(owner, mains, stop_with_parent, _open_fds(requests, replies, ready)))
                continue
            if (request := _next_request(requests)) is None:
                _end_spares(ready, replies)
                break
            refill = SPARE_REFILL
            pid = _hand_to_spare(ready, request)
            if pid is None:  # no spare left (ready is empty)
                pid = _fork(lambda middle: _run_child(json.loads(request), owner, middle, mains, stop_with_parent,
                                                      (requests, replies)))
            os.write(replies, pid.to_bytes(8, "little"))
    except BaseException:  # noqa: BLE001 - the zygote must not return into its owner's code
        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)


def _open_fds(requests: int, replies: int, ready: deque[tuple[int, int]]) -> tuple[int, ...]:
    """The zygote's pipes, which a process it forks closes: its own, and the spares' request pipes."""
    return (requests, replies, *(fd for _, fd in ready))


def _next_request(fd: int) -> bytes | None:
    """The next request on the pipe (JSON); None once its writer closed it."""
    head = os.read(fd, 8)
    if not head:
        return None
    size = int.from_bytes(head + _read_exactly(fd, 8 - len(head)), "little")
    return _read_exactly(fd, size)


def _hand_to_spare(ready: deque[tuple[int, int]], request: bytes) -> int | None:
    """Give the request to the oldest spare that takes it; its pid, or None if there is none (a spare killed
    meanwhile is passed over)."""
    while ready:
        pid, fd = ready.popleft()
        try:
            _write_all(fd, len(request).to_bytes(8, "little") + request)
            return pid
        except OSError:
            continue
        finally:
            os.close(fd)
    return None


def _end_spares(ready: deque[tuple[int, int]], replies: int) -> None:
    """Close the spares' request pipes (each exits) and tell the owner their pids, to reap them."""
    for pid, fd in ready:
        os.close(fd)
        os.write(replies, pid.to_bytes(8, "little"))


def _fork_spare(owner: int, mains: Mapping[str, Main], stop_with_parent: bool, fds: tuple[int, ...]) -> tuple[int, int]:
    """A spare: a process forked ahead that waits for its request on a pipe of its own; its pid and the pipe's write
    end."""
    read_end, write_end = os.pipe()
    pid = _fork(lambda middle: _run_spare(read_end, owner, middle, mains, stop_with_parent, (*fds, write_end)))
    os.close(read_end)
    return pid, write_end


def _fork(run: Callable[[int], None]) -> int:
    """Fork a process that runs `run(pid of the process in between)` through one that exits at once, so that it
    becomes the owner's child; its pid."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(read_end)
        me = os.getpid()
        child = os.fork()
        if child == 0:
            os.close(write_end)
            run(me)
        os.write(write_end, child.to_bytes(8, "little"))
        os._exit(0)
    os.close(write_end)
    try:
        return _read_int(read_end)
    finally:
        os.close(read_end)
        os.waitpid(middle, 0)  # once it is reaped, the child is the owner's


def _run_child(request: dict, owner: int, middle: int, mains: Mapping[str, Main], stop_with_parent: bool,
               fds: tuple[int, ...]) -> None:
    """In the forked process: what `python -m grid.cli <argv>` started as a new process does, then exit."""
    def run() -> int:
        _redirect(request["output"])
        _become_owners_child(owner, middle, stop_with_parent)
        return _become(mains, request["argv"], request["env"])
    _child(fds, run)


def _run_spare(requests: int, owner: int, middle: int, mains: Mapping[str, Main], stop_with_parent: bool,
               fds: tuple[int, ...]) -> None:
    """In a spare: become the owner's child, then wait for the request and run it as `_run_child` does; exit 0 if
    the zygote goes first."""
    def run() -> int:
        _become_owners_child(owner, middle, stop_with_parent)
        prctl(PR_SET_NAME, b"grid-spare")
        request = _next_request(requests)
        if request is None:
            return 0
        request = json.loads(request)
        _redirect(request["output"])
        return _become(mains, request["argv"], request["env"])
    _child(fds, run)


def _child(fds: tuple[int, ...], run: Callable[[], int]) -> None:
    """A forked process's life: close the zygote's `fds`, `run`, exit with its code; never return into the zygote."""
    code = 1
    try:
        for fd in fds:
            os.close(fd)
        code = run()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    except BaseException:  # noqa: BLE001 - report it, and never return into the zygote's loop
        traceback.print_exc()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _become_owners_child(owner: int, middle: int, stop_with_parent: bool) -> None:
    """Wait until the process in between has exited (this one is then the owner's child), then take SIGTERM on the
    owner's death if asked and a session of its own; exit if the owner died meanwhile."""
    while os.getppid() == middle:
        time.sleep(0.0005)
    if stop_with_parent:
        sigterm_on_parent_death()
    if os.getppid() != owner:
        os._exit(0)
    os.setsid()


def _redirect(output: str | None) -> None:
    """stdin from /dev/null; stdout and stderr appended to `output` (None: kept)."""
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    if output is not None:
        fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)


def _become(mains: Mapping[str, Main], argv: list[str], env: dict[str, str] | None) -> int:
    """Take the role's environment, arguments, name and signals, and run its main; its exit code."""
    if env is not None:  # in place: modules keep a reference to os.environ (e.g. as a default argument)
        os.environ.clear()
        os.environ.update(env)
    sys.argv = [sys.argv[0], *argv]
    prctl(PR_SET_NAME, f"grid-{argv[0]}".encode())
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = mains[argv[0]](argv[1:])
    return 0 if code is None else code
