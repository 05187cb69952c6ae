"""The embedded queue's broker: connections (one per thread and process, never across a fork), the retry of a
statement on a locked database, `atomic()` (several queue calls in one write transaction), WAL checkpoints, and the
schema.

Durability: WAL with synchronous=NORMAL, so a commit is in the OS before `send_batch` returns and survives a SIGKILL
of any process; `synchronous="full"` also fsyncs each commit (survives power loss).

Schema: its version is the database's user_version; a database of another version is a ConfigError that says what
to do, never a traceback.
"""
from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager

from grid import sqlite
from grid.errors import ConfigError, QueueError, QueueNotFound
from grid.queues.base import DEFAULT_MAX_RECEIVE_COUNT, DLQ_SUFFIX, Broker, Queue, check_max_receive_count, \
    check_queue_name
from grid.queues.sqlite.queue import SqliteQueue
from grid.queues.sqlite.waking import Wakeups

BUSY_TIMEOUT = 30.0  # seconds a statement waits for a locked database before the call fails
RETRY_FIRST, RETRY_MAX = 0.0001, 0.002  # seconds between retries of a statement on a locked database
CHECKPOINT_INTERVAL = 1.0  # seconds between WAL checkpoints of one process (each costs two fsyncs)
WAL_RESTART_FRAMES = 4096  # WAL pages (16 MiB) past which a checkpoint makes the WAL start over
RESTART_WAIT_MS = 200  # how long that checkpoint waits for writers and readers to let it finish
WAL_SIZE_LIMIT = 64 << 20  # bytes the WAL file is truncated to when it starts over
MMAP_SIZE = 256 << 20  # bytes of the database read through mmap instead of a read() per page
_CANNOT_WRITE = {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY}  # primary result codes

_QUEUE = (
    "SELECT q.id, d.id, d.name, q.max_receive_count FROM queues q LEFT JOIN queues d ON d.id = q.dead_letter"
    " WHERE q.name = ?"
)

SCHEMA_VERSION = 2  # the database's user_version; 0 with tables in it: the first schema (queue names in every row)
# Run one statement at a time, split at ";": no ";" in a comment.
SCHEMA = f"""
CREATE TABLE queues (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    dead_letter INTEGER,                   -- queues.id of its dead-letter queue
    max_receive_count INTEGER,
    sent_total INTEGER NOT NULL DEFAULT 0  -- messages ever sent: tells a supervisor the queue was used
);
-- What a receive reads and changes comes before the body: a large body spills to overflow pages, which a column
-- after it would have to read.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY,                -- may be reused: a receipt is (id, token), never id alone
    queue INTEGER NOT NULL,                -- queues.id
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    token INTEGER,                         -- names the latest receive
    sent_at REAL NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT                        -- JSON object, NULL when there are none
);
CREATE INDEX messages_by_visibility ON messages (queue, visible_at);
CREATE TABLE waiters (
    address BLOB PRIMARY KEY,
    queue TEXT NOT NULL
);
CREATE INDEX waiters_by_queue ON waiters (queue);
PRAGMA user_version = {SCHEMA_VERSION};
"""

_forks = 0  # forks this process descends from: a connection is never used across a fork (SQLite forbids it)


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class _Group:
    """The state of one atomic(): statements kept for its transaction, the queues to poke after its commit."""

    def __init__(self):
        self.pending: list[tuple[str, Sequence]] = []
        self.poke: set[str] = set()
        self.begun = False
        self.failed = False


class SqliteBroker(Broker):
    """Queues in one SQLite file; safe to share between threads and processes (and across fork)."""

    transactional = True
    makes_queues = True

    def __init__(self, path: str, *, url: str | None = None, synchronous: str = "normal"):
        self.path = os.path.abspath(path)
        self.url = url or f"sqlite://{self.path}"
        self._synchronous = synchronous.upper()
        self._local = threading.local()
        self.answered = 0.0
        self._connect()

    def queue(self, name: str, *, create: bool = False, max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT) -> Queue:
        check_queue_name(name, create=create)
        if create:
            check_max_receive_count(max_receive_count)
            dead_letter = name + DLQ_SUFFIX
            with self.transaction() as db:
                db.execute("INSERT OR IGNORE INTO queues (name) VALUES (?)", (dead_letter,))
                db.execute("INSERT OR IGNORE INTO queues (name, dead_letter, max_receive_count)"
                           " SELECT ?, id, ? FROM queues WHERE name = ?", (name, max_receive_count, dead_letter))
        row = self.execute(_QUEUE, (name,)).fetchone()
        if row is None:
            raise QueueNotFound(f"queue {name!r} does not exist in {self.path} (broker {self.url}); create it first")
        key, dead_letter_key, dead_letter, max_receive_count = row
        return SqliteQueue(self, name, key, dead_letter=dead_letter, dead_letter_key=dead_letter_key,
                           max_receive_count=max_receive_count)

    def close(self) -> None:
        local = self._state()
        if addresses := local.wake.close():
            self._forget(addresses)
        local.conn.close()
        self._local = threading.local()

    # -- connections: one per thread and process -------------------------------------------------

    def _state(self) -> threading.local:
        if getattr(self._local, "forks", -1) != _forks:
            self._connect()
        return self._local

    def _connect(self) -> None:
        try:  # the embedded queue makes what it needs on first use: its folder too (the default is under ~/.local)
            conn = sqlite.connect(self.path, timeout=BUSY_TIMEOUT, synchronous=self._synchronous,
                                  prepare=self._prepare, check_same_thread=False)
        except OSError as e:
            folder = os.path.dirname(self.path)
            why = "a file of that name is in the way" if isinstance(e, FileExistsError) else e.strerror
            raise ConfigError(f"cannot create the folder {folder} of the queue database (broker {self.url}): "
                              f"{why}") from e
        except sqlite3.Error as e:
            raise ConfigError(f"cannot open the queue database {self.path} (broker {self.url}): {e}") from e
        local = self._local
        local.forks, local.conn, local.wake = _forks, conn, Wakeups()
        local.checkpointed = time.monotonic()
        local.grouped = None  # inside atomic(): its _Group

    def _prepare(self, conn: sqlite3.Connection) -> None:
        self._check_schema(conn)
        conn.execute("PRAGMA busy_timeout = 0")  # from here on, execute() retries
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # see checkpoint()
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
        conn.execute("PRAGMA temp_store = MEMORY")  # RETURNING's rows: less work in a receive

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        """Make the tables of a new database; a database of another schema is a ConfigError that says what to do."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            conn.execute("BEGIN IMMEDIATE")  # another process may be making them too
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0 and conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0] == 0:
                    for statement in filter(str.strip, SCHEMA.split(";")):  # executescript() would commit first
                        conn.execute(statement)
                    version = SCHEMA_VERSION
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        if version != SCHEMA_VERSION:
            made_by = "an older version of grid" if version < SCHEMA_VERSION else "a newer version of grid"
            raise ConfigError(
                f"the queue database {self.path} (broker {self.url}) has schema version {version}, made by {made_by}"
                f" or another program; this grid reads version {SCHEMA_VERSION}: drain its queues with the grid that"
                " made it, or use a new file (deleting this one loses its messages)")

    @contextmanager
    def atomic(self):
        """The queue calls made inside commit together, or not at all; their waiters are poked after the commit.

        One write transaction instead of one per call: a worker sends its results and deletes their tasks with one
        write lock and one commit, and the deletes are never seen without the results. A receive inside takes the
        next batch in the same commit (wait_seconds=0: a wait would hold the lock).

        The write lock is taken late: sends and deletes, whose callers need nothing back from the database, are
        kept as statements and run together at the first statement that reads (a receive) or at the end. The
        checks and the Python between calls then run before the lock, not while every other process waits for it.
        """
        local = self._state()
        if local.grouped is not None:
            yield
            return
        group = local.grouped = _Group()
        try:
            try:
                yield
                if group.pending or group.begun:
                    self._begin(group)
                    self._flush(group)
                    if group.failed:
                        raise QueueError(f"queue database {self.path}: a statement of this atomic() failed, so none"
                                         " of its calls took effect")
                    local.conn.execute("COMMIT")
            except BaseException:
                if group.begun and local.conn.in_transaction:  # a failed COMMIT (disk full) may have rolled back
                    local.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise self._failed(e) from e
        finally:
            local.grouped = None
        for queue in group.poke:
            self.poke(queue)
        self.checkpoint()

    def in_atomic(self) -> bool:
        return self._state().grouped is not None

    def write(self, statements: Sequence[tuple[str, Sequence]]) -> None:
        """Statements whose outcome the caller does not read, in one transaction; inside atomic(), kept for its
        commit."""
        group = self._state().grouped
        if group is not None:
            group.pending.extend(statements)
        elif len(statements) == 1:
            self.execute(*statements[0])
        else:
            with self.transaction() as db:
                for sql, params in statements:
                    db.execute(sql, params)

    def _begin(self, group: _Group) -> None:
        if not group.begun:
            self._run("BEGIN IMMEDIATE")
            group.begun = True

    def _flush(self, group: _Group) -> None:
        """Run the statements kept so far; a failure dooms the atomic() even if its caller goes on."""
        pending, group.pending = group.pending, []
        conn = self._local.conn
        try:
            for sql, params in pending:
                conn.execute(sql, params)
        except sqlite3.Error as e:
            group.failed = True
            raise self._failed(e) from e
        except BaseException:
            group.failed = True
            raise

    @contextmanager
    def transaction(self):
        """A write transaction (BEGIN IMMEDIATE): commits on success, rolls back on error; inside atomic(), its part."""
        group = self._state().grouped
        if group is not None:
            self._begin(group)
            self._flush(group)
            yield self._local.conn
            return
        db = self._run("BEGIN IMMEDIATE").connection
        try:
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as e:
            raise self._failed(e) from e

    def checkpoint(self) -> None:
        """Copy the WAL into the database at most every CHECKPOINT_INTERVAL per process and thread.

        SQLite's automatic checkpoint runs on every commit once the WAL is over its size and a reader
        keeps it from restarting: with several processes that is an fsync per commit. And under steady
        writes a PASSIVE checkpoint never catches up, so the WAL never restarts and grows without bound:
        past WAL_RESTART_FRAMES, a RESTART checkpoint holds writers back briefly until it has caught up.
        """
        local = self._state()
        if local.grouped is not None or time.monotonic() - local.checkpointed < CHECKPOINT_INTERVAL:
            return
        local.checkpointed = time.monotonic()
        [(_, frames, _)] = self.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        if frames > WAL_RESTART_FRAMES:
            local.conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
            try:
                self.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
            finally:
                local.conn.execute("PRAGMA busy_timeout = 0")

    def _failed(self, e: sqlite3.Error) -> QueueError:
        """The queue's error for SQLite's `e` on this database; one that cannot write says where to look. Transient:
        the daemons retry with backoff and go on once the file can be written again (a commit that failed took no
        effect)."""
        hint = ""
        if getattr(e, "sqlite_errorcode", 0) & 0xFF in _CANNOT_WRITE:
            hint = (" (the file cannot be written: is its file system full or read-only, or the file over this "
                    "process's size limit? It is retried until it can)")
        return QueueError(f"queue database {self.path}: {e}{hint}")

    def execute(self, sql: str, params: Sequence = ()) -> sqlite3.Cursor:
        """One statement (its own transaction, unless one is open); inside atomic(), after the statements kept."""
        group = self._state().grouped
        if group is not None:
            self._begin(group)
            self._flush(group)
        return self._run(sql, params)

    def _run(self, sql: str, params: Sequence = ()) -> sqlite3.Cursor:
        """One statement, retried while the database is locked.

        SQLite's own busy handler sleeps at least 1 ms per retry, far longer than a queue transaction
        holds the lock; this retries after RETRY_FIRST, doubling up to RETRY_MAX, for BUSY_TIMEOUT.
        """
        conn = self._local.conn
        delay, give_up, began = RETRY_FIRST, None, time.monotonic()
        while True:
            try:
                cursor = conn.execute(sql, params)
                self.answered = began
                return cursor
            except sqlite3.OperationalError as e:
                give_up = give_up or time.monotonic() + BUSY_TIMEOUT
                if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > give_up:
                    raise self._failed(e) from e
            except sqlite3.Error as e:
                raise self._failed(e) from e
            time.sleep(delay)
            delay = min(2 * delay, RETRY_MAX)

    # -- waking receivers (grid.queues.sqlite.waking): the sockets are this thread's, the addresses the database's

    def waiter(self, queue: str) -> socket.socket | None:
        """This thread's wake-up socket for `queue`, registered in the database; None where unsupported."""
        return self._state().wake.waiter(queue, self._register)

    def poll_period(self, queue: str) -> float:
        """Seconds between the polls of this thread's waiter on `queue` (see waking.Wakeups.poll_period)."""
        return self._state().wake.poll_period(queue)

    def poke(self, queue: str) -> None:
        """Wake the receivers waiting on `queue`, after the commit when inside atomic()."""
        local = self._state()
        if local.grouped is not None:
            local.grouped.poke.add(queue)
            return
        local.wake.poke(queue, self._waiting, self._forget)

    def _register(self, address: bytes, queue: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO waiters VALUES (?, ?)", (address, queue))

    def _waiting(self, queue: str) -> list[bytes]:
        return [row[0] for row in self.execute("SELECT address FROM waiters WHERE queue = ?", (queue,))]

    def _forget(self, addresses: list[bytes]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM waiters WHERE address = ?", [(a,) for a in addresses])
