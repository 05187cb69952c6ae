"""The embedded queue: SQS semantics on one SQLite file that many processes share.

Durability: WAL with synchronous=NORMAL, so a commit is in the OS before `send_batch` returns and
survives a SIGKILL of any process; `synchronous="full"` also fsyncs each commit (survives power loss).

Waking: a receiver that waits binds a Linux abstract UNIX datagram socket and records its address in
the `waiters` table; a sender pokes the waiters of its queue after commit. The receiver also wakes when
the next in-flight or delayed message becomes visible, and polls every POLL_FALLBACK seconds in case
a poke was lost (or where abstract sockets do not exist).
"""
from __future__ import annotations

import json
import os
import secrets
import select
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import contextmanager

from grid.errors import ConfigError, QueueError, QueueNotFound
from grid.queues.base import (
    DEFAULT_MAX_RECEIVE_COUNT,
    DEFAULT_VISIBILITY_TIMEOUT,
    DLQ_SUFFIX,
    MAX_BATCH,
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
    check_visibility_timeout,
    entry_problem,
)

BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for the write lock before the call fails
POLL_FALLBACK = 0.25  # seconds between polls of a waiting receiver when no poke arrives
_WAITER_PREFIX = b"\0grid-queue-"

SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    dead_letter TEXT,
    max_receive_count INTEGER
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so a stale receipt cannot name another message
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT,                       -- JSON object; NULL when there are none
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    token TEXT                             -- names the latest receive
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages (queue, visible_at, receive_count);
CREATE TABLE IF NOT EXISTS waiters (
    address BLOB PRIMARY KEY,
    queue TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS waiters_by_queue ON waiters (queue);
"""


class SqliteBroker(Broker):
    """Queues in one SQLite file; safe to share between threads and processes (and across fork)."""

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
                db.execute("INSERT OR IGNORE INTO queues VALUES (?, NULL, NULL)", (dead_letter,))
                db.execute("INSERT OR IGNORE INTO queues VALUES (?, ?, ?)", (name, dead_letter, max_receive_count))
        row = self._read("SELECT dead_letter, max_receive_count FROM queues WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise QueueNotFound(f"queue {name!r} does not exist in {self.path} (broker {self.url}); create it first")
        return SqliteQueue(self, name, dead_letter=row[0], max_receive_count=row[1])

    def close(self) -> None:
        local = self._state()
        for sock in local.waiters.values():
            sock.close()
        if local.waiters:
            with self.transaction() as db:
                db.executemany("DELETE FROM waiters WHERE address = ?", [(a,) for a in local.addresses.values()])
        local.waiters.clear()
        local.conn.close()
        self._local = threading.local()

    # -- connections: one per thread and process -------------------------------------------------

    def _state(self) -> threading.local:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            self._connect()
        return self._local

    def _connect(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
                raise ConfigError(f"the queue database {self.path} (broker {self.url}) cannot use WAL mode")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise ConfigError(f"cannot open the queue database {self.path} (broker {self.url}): {e}") from e
        local = self._local
        local.pid, local.conn, local.waiters, local.addresses = os.getpid(), conn, {}, {}

    @contextmanager
    def transaction(self):
        """A write transaction (BEGIN IMMEDIATE): commits on success, rolls back on error."""
        db = self._state().conn
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as e:
            raise QueueError(f"queue database {self.path}: {e}") from e

    def _read(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        try:
            return self._state().conn.execute(sql, params)
        except sqlite3.Error as e:
            raise QueueError(f"queue database {self.path}: {e}") from e

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
        addresses = [row[0] for row in self._read("SELECT address FROM waiters WHERE queue = ?", (queue,))]
        if not addresses:
            return
        gone = []
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            for address in addresses:
                try:
                    sock.sendto(b"!", address)
                except BlockingIOError:
                    pass  # its buffer is full of pokes already
                except OSError:
                    gone.append((address,))
        if gone:
            with self.transaction() as db:
                db.executemany("DELETE FROM waiters WHERE address = ?", gone)


class SqliteQueue(Queue):
    def __init__(self, broker: SqliteBroker, name: str, *, dead_letter: str | None, max_receive_count: int | None):
        self.name = name
        self._broker = broker
        self._dead_letter = dead_letter
        self._max_receive_count = max_receive_count

    def __repr__(self) -> str:
        return f"SqliteQueue({self.name!r}, {self._broker.path!r})"

    def send_batch(self, entries: Sequence[SendEntry]) -> BatchResult:
        check_batch([e.id for e in entries], "entry ids")
        failed = {e.id: problem for e in entries if (problem := entry_problem(e))}
        good = [e for e in entries if e.id not in failed]
        ids = {e.id: str(uuid.uuid4()) for e in good}
        now = time.time()
        rows = [
            (self.name, ids[e.id], e.body, json.dumps(dict(e.attributes)) if e.attributes else None, now,
             now + e.delay_seconds)
            for e in good
        ]
        if rows:
            with self._broker.transaction() as db:
                db.executemany(
                    "INSERT INTO messages (queue, message_id, body, attributes, sent_at, visible_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            self._broker.poke(self.name)
        return BatchResult(succeeded=tuple(ids), failed=failed, message_ids=ids)

    def receive(
        self, max_messages: int = MAX_BATCH, wait_seconds: float = 0, visibility_timeout: int | None = None
    ) -> list[Message]:
        check_receive(max_messages, wait_seconds, visibility_timeout)
        timeout = DEFAULT_VISIBILITY_TIMEOUT if visibility_timeout is None else visibility_timeout
        deadline = time.monotonic() + wait_seconds
        sock = None
        while True:
            _drain(sock)
            messages = self._receive_now(max_messages, timeout)
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0:
                return messages
            if sock is None and (sock := self._broker.waiter(self.name)) is not None:
                continue  # registered: look once more, so a send in between is not missed
            select.select([sock] if sock else [], [], [], min(remaining, POLL_FALLBACK, self._next_visible_in()))

    def _receive_now(self, limit: int, timeout: int) -> list[Message]:
        now = time.time()
        token = secrets.token_hex(6)
        with self._broker.transaction() as db:
            self._bury_exhausted(db, now, limit)
            rows = db.execute(
                "UPDATE messages SET receive_count = receive_count + 1, visible_at = ?, token = ? WHERE id IN"
                " (SELECT id FROM messages WHERE queue = ? AND visible_at <= ? ORDER BY visible_at LIMIT ?)"
                " RETURNING id, message_id, body, attributes, receive_count, sent_at",
                (now + timeout, token, self.name, now, limit),
            ).fetchall()
        rows.sort(key=lambda row: row[0])
        return [
            Message(message_id, f"{rowid}.{token}", body, json.loads(attributes) if attributes else {}, count, sent)
            for rowid, message_id, body, attributes, count, sent in rows
        ]

    def _bury_exhausted(self, db: sqlite3.Connection, now: float, limit: int) -> None:
        """Move the next visible messages that used up their receives to the dead-letter queue, as SQS does."""
        if self._dead_letter is None:
            return
        select_next = "SELECT id, receive_count FROM messages WHERE queue = ? AND visible_at <= ? ORDER BY visible_at LIMIT ?"
        while True:
            rows = db.execute(select_next, (self.name, now, limit)).fetchall()
            exhausted = [(self._dead_letter, rowid) for rowid, count in rows if count >= self._max_receive_count]
            if not exhausted:
                return
            db.executemany("UPDATE messages SET queue = ?, token = NULL WHERE id = ?", exhausted)

    def _next_visible_in(self) -> float:
        now = time.time()
        row = self._broker._read(
            "SELECT min(visible_at) FROM messages WHERE queue = ? AND visible_at > ?", (self.name, now)
        ).fetchone()
        return float("inf") if row[0] is None else max(0.0, row[0] - now)

    def delete_batch(self, receipts: Sequence[str]) -> BatchResult:
        check_batch(receipts, "receipts")
        parsed, failed = _parse_receipts(receipts)
        if parsed:
            with self._broker.transaction() as db:
                db.executemany("DELETE FROM messages WHERE id = ? AND queue = ?", [(i, self.name) for i, _ in parsed.values()])
        return BatchResult(succeeded=tuple(parsed), failed=failed)

    def change_visibility(self, receipts: Sequence[str], timeout: int) -> BatchResult:
        check_batch(receipts, "receipts")
        check_visibility_timeout(timeout)
        parsed, failed = _parse_receipts(receipts)
        now = time.time()
        with self._broker.transaction() as db:
            for receipt, (rowid, token) in parsed.items():
                changed = db.execute(
                    "UPDATE messages SET visible_at = ? WHERE id = ? AND queue = ? AND token = ? AND visible_at > ?",
                    (now + timeout, rowid, self.name, token, now),
                ).rowcount
                if not changed:
                    failed[receipt] = "MessageNotInflight: the message was deleted, received again or is visible"
        if timeout == 0 and len(failed) < len(receipts):
            self._broker.poke(self.name)
        return BatchResult(succeeded=tuple(r for r in parsed if r not in failed), failed=failed)

    def counts(self) -> QueueCounts:
        visible, in_flight, delayed = self._broker._read(
            "SELECT total(visible_at <= :now), total(visible_at > :now AND receive_count > 0),"
            " total(visible_at > :now AND receive_count = 0) FROM messages WHERE queue = :queue",
            {"now": time.time(), "queue": self.name},
        ).fetchone()
        return QueueCounts(visible=int(visible), in_flight=int(in_flight), delayed=int(delayed))

    def purge(self) -> None:
        with self._broker.transaction() as db:
            db.execute("DELETE FROM messages WHERE queue = ?", (self.name,))

    @property
    def dead_letter(self) -> Queue | None:
        return None if self._dead_letter is None else self._broker.queue(self._dead_letter)

    def redrive(self, max_messages: int | None = None) -> int:
        if self._dead_letter is None:
            raise QueueError(f"queue {self.name!r} has no dead-letter queue to redrive from")
        now = time.time()
        with self._broker.transaction() as db:
            moved = db.execute(
                "UPDATE messages SET queue = ?, receive_count = 0, visible_at = ?, token = NULL WHERE id IN"
                " (SELECT id FROM messages WHERE queue = ? AND visible_at <= ? ORDER BY visible_at LIMIT ?)",
                (self.name, now, self._dead_letter, now, -1 if max_messages is None else max_messages),
            ).rowcount
        if moved:
            self._broker.poke(self.name)
        return moved


def _parse_receipts(receipts: Sequence[str]) -> tuple[dict[str, tuple[int, str]], dict[str, str]]:
    parsed, failed = {}, {}
    for receipt in receipts:
        rowid, _, token = str(receipt).partition(".")
        if rowid.isdigit() and token:
            parsed[receipt] = (int(rowid), token)
        else:
            failed[receipt] = f"ReceiptHandleIsInvalid: {receipt!r} is not a receipt of this queue"
    return parsed, failed


def _drain(sock: socket.socket | None) -> None:
    while sock is not None:
        try:
            sock.recv(64)
        except BlockingIOError:
            return
