"""The embedded queue: SQS semantics on one SQLite file that many processes share.

Durability: WAL with synchronous=NORMAL, so a commit is in the OS before `send_batch` returns and
survives a SIGKILL of any process; `synchronous="full"` also fsyncs each commit (survives power loss).

Speed: each call is one transaction of one or two statements (send: one multi-row INSERT and the queue's
sent count; receive: one UPDATE ... RETURNING; delete: one DELETE), retried after 0.1 ms on a locked
database rather than SQLite's 1 ms busy sleep, and the WAL is checkpointed once a second per process rather
than on every commit. Queues are small integers in the rows and the index, receipts' tokens are integers,
message ids are made from one read of the system's randomness per batch. `SqliteBroker.atomic()` commits
several calls in one transaction (a worker's results, the deletes of their tasks and the receive of the
next batch): one write lock and one commit instead of three. The cost of a call is mostly SQLite's per
transaction floor (WAL locks, re-reading pages another process changed, two writes per changed page), so
fewer commits per task, or more tasks per message, is what moves throughput most.

Schema: its version is the database's user_version; a database of another version is a ConfigError that
says what to do, never a traceback.

Waking: a receiver that waits binds a Linux abstract UNIX datagram socket and records its address in
the `waiters` table; a sender pokes the waiters of its queue after commit. The receiver also wakes when
the next in-flight or delayed message becomes visible, and polls every POLL_FALLBACK seconds in case
a poke was lost (or where abstract sockets do not exist).
"""
from __future__ import annotations

import os
import select
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import contextmanager

import orjson

from grid.errors import ConfigError, QueueError, QueueNotFound
from grid.queues.base import (
    DEFAULT_MAX_RECEIVE_COUNT,
    DEFAULT_VISIBILITY_TIMEOUT,
    DLQ_SUFFIX,
    MAX_ATTRIBUTES,
    MAX_BATCH,
    MAX_MESSAGE_BYTES,
    BatchResult,
    Broker,
    Message,
    Queue,
    QueueCounts,
    SendEntry,
    check_batch,
    check_max_receive_count,
    check_queue_name,
    check_receive,
    check_redrive_limit,
    check_visibility_timeout,
    entry_problem,
)

BUSY_TIMEOUT = 30.0  # seconds a statement waits for a locked database before the call fails
RETRY_FIRST, RETRY_MAX = 0.0001, 0.002  # seconds between retries of a statement on a locked database
CHECKPOINT_INTERVAL = 1.0  # seconds between WAL checkpoints of one process (each costs two fsyncs)
WAL_RESTART_FRAMES = 4096  # WAL pages (16 MiB) past which a checkpoint makes the WAL start over
RESTART_WAIT_MS = 200  # how long that checkpoint waits for writers and readers to let it finish
WAL_SIZE_LIMIT = 64 << 20  # bytes the WAL file is truncated to when it starts over
MMAP_SIZE = 256 << 20  # bytes of the database read through mmap instead of a read() per page
POLL_FALLBACK = 0.25  # seconds between polls of a waiting receiver when no poke arrives
WAITERS_TTL = 0.5  # seconds a sender trusts its list of waiters; a newer waiter polls meanwhile
_WAITER_PREFIX = b"\0grid-queue-"

_NO_LIMIT = 1 << 62  # max receive count of a queue without a dead-letter queue
_COUNT_SENT = "UPDATE queues SET sent_total = sent_total + ? WHERE id = ?"
# "+queue": look rows up by id, not by the queue's index. A receipt older than the latest receive deletes nothing,
# as SQS documents ("you must provide the most recently received receipt handle").
_DELETE = "DELETE FROM messages WHERE +queue = ? AND id IN ({}) AND (id, token) IN (VALUES {})"
_DELETES = {n: _DELETE.format(",".join("?" * n), ",".join(["(?, ?)"] * n)) for n in range(1, MAX_BATCH + 1)}
_INSERTS = {
    n: "INSERT INTO messages (queue, visible_at, sent_at, message_id, body, attributes) VALUES "
    + ",".join(["(?, ?, ?, ?, ?, ?)"] * n)
    for n in range(1, MAX_BATCH + 1)
}
_NEXT_VISIBLE = "SELECT id FROM messages WHERE queue = ? AND visible_at <= ? ORDER BY visible_at LIMIT ?"
_DELIVER = (
    "UPDATE messages SET receive_count = receive_count + 1, visible_at = ?, token = ?"
    f" WHERE id IN ({_NEXT_VISIBLE}) AND receive_count < ?"
    " RETURNING id, message_id, body, attributes, receive_count, sent_at"
)
_ANY_EXHAUSTED = (
    "SELECT 1 FROM (SELECT receive_count FROM messages WHERE queue = ? AND visible_at <= ? ORDER BY visible_at LIMIT ?)"
    " WHERE receive_count >= ? LIMIT 1"
)
_BURY = f"UPDATE messages SET queue = ?, token = NULL WHERE id IN ({_NEXT_VISIBLE}) AND receive_count >= ?"
# The visible messages, usually most of them, are counted in the index alone; only the few in flight or delayed
# are read from the table (receive_count tells them apart): about 6x faster than one pass over the rows.
_COUNTS = (
    "SELECT (SELECT count(*) FROM messages WHERE queue = :queue AND visible_at <= :now),"
    " (SELECT count(*) FROM messages WHERE queue = :queue AND visible_at > :now AND receive_count > 0),"
    " (SELECT count(*) FROM messages WHERE queue = :queue AND visible_at > :now AND receive_count = 0),"
    " (SELECT sent_total FROM queues WHERE id = :queue)"
)
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

    def __init__(self, path: str, *, url: str | None = None, synchronous: str = "normal"):
        self.path = os.path.abspath(path)
        self.url = url or f"sqlite://{self.path}"
        self._synchronous = synchronous.upper()
        self._local = threading.local()
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
        for sock in local.waiters.values():
            sock.close()
        if local.waiters:
            with self.transaction() as db:
                db.executemany("DELETE FROM waiters WHERE address = ?", [(a,) for a in local.addresses.values()])
        local.waiters.clear()
        local.poker.close()
        local.conn.close()
        self._local = threading.local()

    # -- connections: one per thread and process -------------------------------------------------

    def _state(self) -> threading.local:
        if getattr(self._local, "forks", -1) != _forks:
            self._connect()
        return self._local

    def _connect(self) -> None:
        folder = os.path.dirname(os.path.abspath(self.path))
        try:  # the embedded queue makes what it needs on first use: its folder too (the default is under ~/.local)
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            why = "a file of that name is in the way" if isinstance(e, FileExistsError) else e.strerror
            raise ConfigError(f"cannot create the folder {folder} of the queue database (broker {self.url}): "
                              f"{why}") from e
        give_up = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                conn = self._open()
                break
            except sqlite3.OperationalError as e:
                # Processes opening a new file at once: switching it to WAL can be refused without a busy wait.
                if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > give_up:
                    raise ConfigError(f"cannot open the queue database {self.path} (broker {self.url}): {e}") from e
                time.sleep(RETRY_MAX)
            except sqlite3.Error as e:
                raise ConfigError(f"cannot open the queue database {self.path} (broker {self.url}): {e}") from e
        local = self._local
        local.forks, local.conn, local.waiters, local.addresses, local.known_waiters = _forks, conn, {}, {}, {}
        local.checkpointed = time.monotonic()
        local.grouped = None  # inside atomic(): its _Group
        local.poker = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        local.poker.setblocking(False)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise ConfigError(f"the queue database {self.path} (broker {self.url}) cannot use WAL mode")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            self._check_schema(conn)
            conn.execute("PRAGMA busy_timeout = 0")  # from here on, execute() retries
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # see checkpoint()
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            conn.execute(f"PRAGMA mmap_size = {MMAP_SIZE}")
            conn.execute("PRAGMA temp_store = MEMORY")  # RETURNING's rows: about 15% off a receive
        except BaseException:
            conn.close()
            raise
        return conn

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
                if group.begun:
                    local.conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as e:
            raise QueueError(f"queue database {self.path}: {e}") from e
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
            raise QueueError(f"queue database {self.path}: {e}") from e
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
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as e:
            raise QueueError(f"queue database {self.path}: {e}") from e

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
        delay, give_up = RETRY_FIRST, None
        while True:
            try:
                return conn.execute(sql, params)
            except sqlite3.OperationalError as e:
                give_up = give_up or time.monotonic() + BUSY_TIMEOUT
                if e.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > give_up:
                    raise QueueError(f"queue database {self.path}: {e}") from e
            except sqlite3.Error as e:
                raise QueueError(f"queue database {self.path}: {e}") from e
            time.sleep(delay)
            delay = min(2 * delay, RETRY_MAX)

    # -- waking receivers ------------------------------------------------------------------------

    def waiter(self, queue: str) -> socket.socket | None:
        """This thread's wake-up socket for `queue`, registered in the database; None where unsupported."""
        local = self._state()
        if queue not in local.waiters:
            address = _WAITER_PREFIX + uuid.uuid4().hex.encode()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(address)
            except OSError:
                sock.close()
                return None
            sock.setblocking(False)
            with self.transaction() as db:
                db.execute("INSERT OR REPLACE INTO waiters VALUES (?, ?)", (address, queue))
            local.waiters[queue], local.addresses[queue] = sock, address
        return local.waiters[queue]

    def poke(self, queue: str) -> None:
        """Wake the receivers waiting on `queue`; forget those whose process is gone."""
        local = self._state()
        if local.grouped is not None:
            local.grouped.poke.add(queue)
            return
        addresses, looked_up = local.known_waiters.get(queue, ((), -WAITERS_TTL))
        if time.monotonic() - looked_up >= WAITERS_TTL:
            addresses = [row[0] for row in self.execute("SELECT address FROM waiters WHERE queue = ?", (queue,))]
            local.known_waiters[queue] = (addresses, time.monotonic())
        gone = []
        for address in addresses:
            try:
                local.poker.sendto(b"!", address)
            except BlockingIOError:
                pass  # its buffer is full of pokes already
            except OSError:
                gone.append((address,))
        if gone:
            local.known_waiters.pop(queue)
            with self.transaction() as db:
                db.executemany("DELETE FROM waiters WHERE address = ?", gone)


class SqliteQueue(Queue):
    def __init__(self, broker: SqliteBroker, name: str, key: int, *, dead_letter: str | None,
                 dead_letter_key: int | None, max_receive_count: int | None):
        self.name = name
        self._broker = broker
        self._key = key  # queues.id: what the rows and the index hold
        self._dead_letter, self._dead_letter_key = dead_letter, dead_letter_key
        self._max_receive_count = max_receive_count

    def __repr__(self) -> str:
        return f"SqliteQueue({self.name!r}, {self._broker.path!r})"

    def send_batch(self, entries: Sequence[SendEntry]) -> BatchResult:
        check_batch([e.id for e in entries], "entry ids")
        failed = {e.id: problem for e in entries if (problem := _entry_problem(e))}
        good = [e for e in entries if e.id not in failed]
        ids = dict(zip((e.id for e in good), _message_ids(len(good))))
        now, key = time.time(), self._key
        params = [
            value
            for e in good
            for value in (key, now + e.delay_seconds, now, ids[e.id], e.body, _attributes_json(e.attributes))
        ]
        if params:
            self._broker.write([(_INSERTS[len(good)], params), (_COUNT_SENT, (len(good), key))])
            self._broker.poke(self.name)
            self._broker.checkpoint()
        return BatchResult(succeeded=tuple(ids), failed=failed, message_ids=ids)

    def receive(
        self, max_messages: int = MAX_BATCH, wait_seconds: float = 0, visibility_timeout: int | None = None
    ) -> list[Message]:
        check_receive(max_messages, wait_seconds, visibility_timeout)
        if wait_seconds and self._broker.in_atomic():
            raise ValueError(f"receive(wait_seconds={wait_seconds}) inside atomic(): waiting would hold the write lock"
                             f" of {self._broker.path} from every other process; receive with wait_seconds=0 inside"
                             " atomic() and wait outside it")
        timeout = DEFAULT_VISIBILITY_TIMEOUT if visibility_timeout is None else visibility_timeout
        deadline = time.monotonic() + wait_seconds
        sock = None
        messages = self._receive_now(max_messages, timeout)
        while not messages:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if sock is None:
                sock = self._broker.waiter(self.name)  # registered before the look below: no poke is missed
            _drain(sock)
            pause = min(remaining, self._next_visible_in())  # a read: waiting takes no write lock
            if pause > 0:
                select.select([sock] if sock else [], [], [], min(pause, POLL_FALLBACK))
            else:
                messages = self._receive_now(max_messages, timeout)
        return messages

    def _receive_now(self, limit: int, timeout: int) -> list[Message]:
        token = int.from_bytes(os.urandom(6), "little")
        rows = []
        while True:
            now = time.time()
            rows += self._broker.execute(_DELIVER, (now + timeout, token, self._key, now, limit - len(rows),
                                                  self._max_receive_count or _NO_LIMIT)).fetchall()
            if len(rows) == limit or not self._bury_exhausted(now, limit):
                break
        rows.sort(key=lambda row: row[0])
        return [
            Message(message_id, f"{rowid}.{token}", body, orjson.loads(attributes) if attributes else {}, count, sent)
            for rowid, message_id, body, attributes, count, sent in rows
        ]

    def _bury_exhausted(self, now: float, limit: int) -> int:
        """Move the next visible messages that used up their receives to the dead-letter queue, as SQS does."""
        if self._dead_letter_key is None:
            return 0
        if not self._broker.execute(_ANY_EXHAUSTED, (self._key, now, limit, self._max_receive_count)).fetchone():
            return 0  # the usual case, found by a read: no write lock
        return self._broker.execute(_BURY, (self._dead_letter_key, self._key, now, limit,
                                            self._max_receive_count)).rowcount

    def _next_visible_in(self) -> float:
        """Seconds until a message of this queue is visible: 0 if one is now, inf if the queue is empty."""
        [first] = self._broker.execute("SELECT min(visible_at) FROM messages WHERE queue = ?", (self._key,)).fetchone()
        return float("inf") if first is None else max(0.0, first - time.time())

    def delete_batch(self, receipts: Sequence[str]) -> BatchResult:
        check_batch(receipts, "receipts")
        parsed, failed = _parse_receipts(receipts)
        if parsed:
            rowids = [rowid for rowid, _ in parsed.values()]
            pairs = [value for rowid_token in parsed.values() for value in rowid_token]
            self._broker.write([(_DELETES[len(parsed)], (self._key, *rowids, *pairs))])
            self._broker.checkpoint()
        return BatchResult(succeeded=tuple(parsed), failed=failed)

    def change_visibility(self, receipts: Sequence[str], timeout: int) -> BatchResult:
        check_batch(receipts, "receipts")
        check_visibility_timeout(timeout)
        parsed, failed = _parse_receipts(receipts)
        now = time.time()
        with self._broker.transaction() as db:
            for receipt, (rowid, token) in parsed.items():
                changed = db.execute(
                    "UPDATE messages SET visible_at = ? WHERE id = ? AND +queue = ? AND token = ? AND visible_at > ?",
                    (now + timeout, rowid, self._key, token, now),
                ).rowcount
                if not changed:
                    failed[receipt] = "MessageNotInflight: the message was deleted, received again or is visible"
        if timeout == 0 and len(failed) < len(receipts):
            self._broker.poke(self.name)
        return BatchResult(succeeded=tuple(r for r in parsed if r not in failed), failed=failed)

    def counts(self) -> QueueCounts:
        visible, in_flight, delayed, sent = self._broker.execute(_COUNTS, {"now": time.time(), "queue": self._key}
                                                                 ).fetchone()
        return QueueCounts(visible=visible, in_flight=in_flight, delayed=delayed, sent_total=sent)

    def purge(self) -> None:
        with self._broker.transaction() as db:
            db.execute("DELETE FROM messages WHERE queue = ?", (self._key,))

    @property
    def dead_letter(self) -> Queue | None:
        return None if self._dead_letter is None else self._broker.queue(self._dead_letter)

    def redrive(self, max_messages: int | None = None) -> int:
        check_redrive_limit(max_messages)
        if self._dead_letter_key is None:
            raise QueueError(f"queue {self.name!r} has no dead-letter queue to redrive from")
        now = time.time()
        with self._broker.transaction() as db:
            moved = db.execute(
                "UPDATE messages SET queue = ?, receive_count = 0, visible_at = ?, token = NULL WHERE id IN"
                " (SELECT id FROM messages WHERE queue = ? AND visible_at <= ? ORDER BY visible_at LIMIT ?)",
                (self._key, now, self._dead_letter_key, now, -1 if max_messages is None else max_messages),
            ).rowcount
        if moved:
            self._broker.poke(self.name)
        return moved


_ACCEPTED_NAMES: set[str] = set()  # attribute names entry_problem accepted
_MAX_ACCEPTED_NAMES = 1000


def _entry_problem(entry: SendEntry) -> str | None:
    """entry_problem(entry), with a quick yes for the usual entry (printable ASCII, no delay, known attribute names):
    its regular expressions and UTF-8 encodings cost about as much as the INSERT of the entry."""
    body, attributes = entry.body, entry.attributes
    if _plain(body) and entry.delay_seconds == 0 and len(attributes) <= MAX_ATTRIBUTES:
        size = len(body)
        for name, value in attributes.items():
            if name not in _ACCEPTED_NAMES or not _plain(value):
                break
            size += len(name) + len("String") + len(value)
        else:
            if size <= MAX_MESSAGE_BYTES:
                return None
    problem = entry_problem(entry)
    if problem is None and len(_ACCEPTED_NAMES) < _MAX_ACCEPTED_NAMES:
        _ACCEPTED_NAMES.update(attributes)
    return problem


def _plain(text: object) -> bool:
    """A non-empty string of printable ASCII: characters SQS accepts, each one byte."""
    return type(text) is str and text != "" and text.isascii() and text.isprintable()


def _attributes_json(attributes) -> str | None:
    return orjson.dumps(dict(attributes)).decode() if attributes else None


def _message_ids(count: int) -> list[str]:
    """Random (version 4) UUIDs, as SQS gives, from one read of the system's randomness."""
    h = os.urandom(16 * count).hex()
    return [
        f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-{_VARIANT[h[i + 16]]}{h[i + 17:i + 20]}-{h[i + 20:i + 32]}"
        for i in range(0, 32 * count, 32)
    ]


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}  # RFC 4122's variant bits


def _parse_receipts(receipts: Sequence[str]) -> tuple[dict[str, tuple[int, int]], dict[str, str]]:
    parsed, failed = {}, {}
    for receipt in receipts:
        rowid, _, token = str(receipt).partition(".")
        if rowid.isdigit() and token.isdigit():
            parsed[receipt] = (int(rowid), int(token))
        else:
            failed[receipt] = f"ReceiptHandleIsInvalid: {receipt!r} is not a receipt of this queue"
    return parsed, failed


def _drain(sock: socket.socket | None) -> None:
    while sock is not None:
        try:
            sock.recv(64)
        except BlockingIOError:
            return
