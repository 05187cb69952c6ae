"""Helpers more than one test module uses (fixtures are in conftest.py)."""
from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import hcl2
import pytest
import sympy
from hypothesis import strategies as st

from grid.errors import StoreEmpty
from grid.wire import Code, Ids, Result, Results, Same, Tasks, decode_results, encode_results
from grid.store import Added, open_store


def eventually(condition, what: str, patience: float = 60.0) -> None:
    """Wait until `condition()` holds; fail naming `what` after `patience` seconds."""
    deadline = time.monotonic() + patience
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {patience} s"
        time.sleep(0.01)


def alive(pid: int) -> bool:
    """The process runs (it exists and is not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def record_statsd_before_waiting(queue, sock) -> list[str]:
    """Make `queue`'s receives that may wait first read what reached the statsd socket `sock`; the list they fill."""
    real, sent = queue.receive, []

    def receive(*args, wait_seconds=0, **kwargs):
        if wait_seconds:
            sent.append(sock.recv(65536).decode())
        return real(*args, **kwargs)

    queue.receive = receive
    return sent


# ---- the grid's daemons as processes


@dataclass
class Grid:
    """The role processes of one run and their logs."""

    env: dict
    logs: str
    procs: dict = field(default_factory=dict)
    killed: dict = field(default_factory=dict)  # processes the test SIGKILLed, by name: their exit codes

    def start(self, role: str, *args: str, name: str | None = None, **popen) -> subprocess.Popen:
        name = name or role
        log = open(os.path.join(self.logs, f"{name}.log"), "ab")
        self.procs[name] = subprocess.Popen([sys.executable, "-m", "grid.cli", role, *args], env=self.env,
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **popen)
        log.close()
        return self.procs[name]

    def stop(self) -> dict[str, int]:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        return {role: proc.wait(60) for role, proc in self.procs.items()}

    def sigkill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.kill()
        self.killed[name] = proc.wait()

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def log(self, role: str) -> str:
        with open(os.path.join(self.logs, f"{role}.log"), errors="replace") as f:
            return f.read()


# ---- an endpoint that stops answering


class FlakyProxy:
    """A TCP proxy on loopback in front of `target_url` (moto's server), whose link the test cuts and restores.

    `cut("drop")`: every open connection is closed, and new ones are closed as soon as they come (a refused or reset
    connection); `cut("stall")`: open connections are closed, new ones are accepted and never answered (a black hole)
    until `restore()`, which closes them. The server behind keeps its state.
    """

    def __init__(self, target_url: str):
        target = urlsplit(target_url)
        self.target = (target.hostname, target.port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.mode: str | None = None  # None: up; else "drop" or "stall"
        self.outages = 0
        self._open: set[socket.socket] = set()
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self, mode: str = "drop") -> None:
        assert mode in ("drop", "stall"), mode
        with self._lock:
            self.mode, self.outages = mode, self.outages + 1
            open_, self._open = self._open, set()
        for sock in open_:
            _close(sock)

    def restore(self) -> None:
        with self._lock:
            self.mode, held, self._held = None, self._held, []
        for sock in held:
            _close(sock)

    def close(self) -> None:
        self._closed = True
        self.restore()
        self.cut()
        self.mode = None
        _close(self.listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                mode = self.mode
                if mode == "stall":
                    self._held.append(client)
            if mode == "drop":
                _close(client)
            elif mode is None:
                try:
                    server = socket.create_connection(self.target, timeout=5)
                except OSError:
                    _close(client)
                    continue
                server.settimeout(None)
                with self._lock:
                    self._open.update((client, server))
                for a, b in ((client, server), (server, client)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


PATIENCE = 240.0  # seconds before a stage of a run of real processes that should finish is declared stuck


def wait_for_roles(what: str, condition, grid: Grid, poll=0.1, allowed=()):
    """Wait until `condition()` holds (its value); fail with the logs when a role crashed (but those in `allowed`) or
    it takes longer than PATIENCE."""
    deadline = time.monotonic() + PATIENCE
    while not (value := condition()):
        crashed = {r: p.returncode for r, p in grid.procs.items() if r not in allowed and p.poll() not in (None, 0)}
        if crashed or time.monotonic() > deadline:
            logs = "\n".join(f"--- {r}\n{grid.log(r)[-3000:]}" for r in grid.procs)
            pytest.fail(f"{what}: {'crashed ' + str(crashed) if crashed else 'stuck'}\n{logs}")
        time.sleep(poll)
    return value


def stored_count(location: str) -> int:
    """Results in the store at `location` (0 before the collector made it)."""
    try:
        with open_store(location, create=False) as store:
            return store.counts().total
    except StoreEmpty:
        return 0


# ---- results, as the store tests and the S3 store's own tests make them


def ok(task_id, n=15, factors=(3, 5), job="j1", submitted=100.0, completed=101.5, worker="w1"):
    return Result(task_id, job, str(n), tuple(factors), worker=worker, submitted_at=submitted,
                  started_at=submitted, completed_at=completed)


def error(task_id, code, job="j1"):
    return Result(task_id, job, None, None, int(code), f"failed with {int(code)}", submitted_at=1.0, completed_at=2.0)


def run(start, count, worker="w1", prefix="t-", job="j1"):
    """The Results the collector reads from a worker's answers to tasks prefix + start, ... (a compact bundle)."""
    numbers = [15 + 2 * i for i in range(count)]
    tasks = Tasks(Ids(prefix, start, count), numbers, Same(job, count), Same(100.0, count))
    factors = [sympy.factorint(n, multiple=True) for n in numbers]
    return decode_results(encode_results(Results.answers(tasks, factors, [100.0] * count, [101.5] * count, worker)))


ids = st.sampled_from(["a", "b", "t-0", "t-1", "t-2", "t-3", "t-5", "t-8", "t-13"])
answers = st.one_of(
    st.builds(ok, ids, worker=st.sampled_from(["w1", "w2", "w3"])),
    st.builds(error, ids, st.sampled_from(list(Code))),
    st.builds(run, st.integers(0, 12), st.integers(1, 5), worker=st.sampled_from(["w1", "w2"])),
)


@dataclass
class Expected:
    results: dict[str, Result]
    added: list[Added]


def reference_model(batches) -> Expected:
    """What a store holds after adding `batches`, and what each add returns: a dict by task id."""
    expected = Expected({}, [])
    for batch in batches:
        stored = offered = 0
        for r in (r for item in batch for r in (item if isinstance(item, Results) else [item])):
            offered += 1
            if r.task_id not in expected.results or expected.results[r.task_id].error_code == Code.WORKER_FAULT:
                expected.results[r.task_id] = r
                stored += 1
        expected.added.append(Added(stored, offered - stored))
    return expected


# ---- a SQLite file another connection holds


class WriteLock:
    """A connection holding the write lock of a new, empty file (BEGIN IMMEDIATE), as another process that is making
    it: SQLite then refuses a connection's switch to WAL at once, without a busy wait, until the lock is let go."""

    def __init__(self, path):
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("BEGIN IMMEDIATE")
        self.released = False
        self._timer: threading.Timer | None = None

    def release_after(self, seconds: float) -> None:
        self._timer = threading.Timer(seconds, self.release)
        self._timer.start()

    def release(self) -> None:
        self.released = True  # before the commit: whoever opens the file after it sees this set
        self.db.execute("COMMIT")


@contextlib.contextmanager
def holding_the_write_lock(path):
    lock = WriteLock(path)
    try:
        yield lock
    finally:
        if lock._timer is not None:
            lock._timer.join()
        elif not lock.released:
            lock.release()
        lock.db.close()


# ---- the Packer template, as python-hcl2 reads it

PACKER = Path(__file__).resolve().parent.parent / "packer"


def plain(value):
    """python-hcl2's parse with the quotes around strings and its block markers taken off."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def load_packer(name: str) -> dict:
    """packer/<name>.pkr.hcl, parsed."""
    with open(PACKER / f"{name}.pkr.hcl") as f:
        return plain(hcl2.load(f))


def check_results(grid, job: str, count: int) -> None:
    """Every task of `job` (ids job-1 .. job-count) has exactly one stored, correct result in `grid`'s result store."""
    with open_store(grid.env["GRID_RESULT_STORE"], create=False) as store:
        results = list(store.results(job))
        assert store.counts(job).errors == 0
    assert sorted(r.task_id for r in results) == sorted(f"{job}-{i}" for i in range(1, count + 1))
    for r in results:
        assert r.ok and math.prod(r.factors) == int(r.n) and all(sympy.isprime(f) for f in r.factors), r


def slowed(*queues, seconds=0.02, calls=("send_batch", "delete_batch", "receive"), threads=None) -> None:
    """Each call of the queues waits `seconds` first, as a call to SQS does; with `threads`, the name of the thread that
    made each call is appended to it, as (queue, call, thread)."""
    for queue in queues:
        for name in calls:
            def wait_first(*a, _call=getattr(queue, name), _name=name, _queue=queue.name, **k):
                if threads is not None:
                    threads.append((_queue, _name, threading.current_thread().name))
                time.sleep(seconds)
                return _call(*a, **k)
            setattr(queue, name, wait_first)
