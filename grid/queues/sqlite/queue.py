"""The embedded queue itself: SQS semantics in rows of the broker's database.

Each call is one transaction of one or two statements (send: one multi-row INSERT and the queue's sent count;
receive: one UPDATE ... RETURNING; delete: one DELETE), inside the broker's `atomic()` a part of its one. Queues are
small integers in the rows and the index, and a receipt is the row id and an integer token of its receive.
"""
from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import orjson

from grid.errors import QueueError
from grid.queues.base import (
    DEFAULT_VISIBILITY_TIMEOUT,
    MAX_ATTRIBUTES,
    MAX_BATCH,
    MAX_MESSAGE_BYTES,
    BatchResult,
    Message,
    Queue,
    QueueCounts,
    SendEntry,
    check_batch,
    check_receive,
    check_redrive_limit,
    check_visibility_timeout,
    entry_problem,
    printable_ascii,
)
from grid.queues.sqlite import waking

if TYPE_CHECKING:
    from grid.queues.sqlite.broker import SqliteBroker

_NO_LIMIT = 1 << 62  # max receive count of a queue without a dead-letter queue
_COUNT_SENT = "UPDATE queues SET sent_total = sent_total + ? WHERE id = ?"
# "+queue": look rows up by id, not by the queue's index. A receipt older than the latest receive deletes nothing,
# as SQS documents ("you must provide the most recently received receipt handle").
# The statements are built from constant fragments (placeholders, a subquery); every value is a bound parameter: what
# bandit's B608 (SQL built from strings) looks for is not there.
_DELETE = "DELETE FROM messages WHERE +queue = ? AND id IN ({}) AND (id, token) IN (VALUES {})"
_DELETES = {n: _DELETE.format(",".join("?" * n), ",".join(["(?, ?)"] * n)) for n in range(1, MAX_BATCH + 1)}
_INSERTS = {
    n: "INSERT INTO messages (queue, visible_at, sent_at, message_id, body, attributes) VALUES "  # nosec B608
    + ",".join(["(?, ?, ?, ?, ?, ?)"] * n)
    for n in range(1, MAX_BATCH + 1)
}
_NEXT_VISIBLE = "SELECT id FROM messages WHERE queue = ? AND visible_at <= ? ORDER BY visible_at LIMIT ?"
_DELIVER = (
    "UPDATE messages SET receive_count = receive_count + 1, visible_at = ?, token = ?"  # nosec B608
    f" WHERE id IN ({_NEXT_VISIBLE}) AND receive_count < ?"
    " RETURNING id, message_id, body, attributes, receive_count, sent_at"
)
_ANY_EXHAUSTED = (
    "SELECT 1 FROM (SELECT receive_count FROM messages WHERE queue = ? AND visible_at <= ? ORDER BY visible_at LIMIT ?)"
    " WHERE receive_count >= ? LIMIT 1"
)
_BURY = (
    f"UPDATE messages SET queue = ?, token = NULL WHERE id IN ({_NEXT_VISIBLE}) AND receive_count >= ?"  # nosec B608
)
# The visible messages, usually most of them, are counted in the index alone; only the few in flight or delayed
# are read from the table (receive_count tells them apart): several times faster than a pass over the rows.
_COUNTS = (
    "SELECT (SELECT count(*) FROM messages WHERE queue = :queue AND visible_at <= :now),"
    " (SELECT count(*) FROM messages WHERE queue = :queue AND visible_at > :now AND receive_count > 0),"
    " (SELECT count(*) FROM messages WHERE queue = :queue AND visible_at > :now AND receive_count = 0),"
    " (SELECT sent_total FROM queues WHERE id = :queue)"
)


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
            waking.drain(sock)
            pause = min(remaining, self._next_visible_in())  # a read: waiting takes no write lock
            if pause > 0:
                waking.wait(sock, min(pause, self._broker.poll_period(self.name)))
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
    its regular expressions and UTF-8 encodings are a good part of a send's CPU (docs/benchmarks.md)."""
    body, attributes = entry.body, entry.attributes
    if printable_ascii(body) and entry.delay_seconds == 0 and len(attributes) <= MAX_ATTRIBUTES:
        size = len(body)
        for name, value in attributes.items():
            if name not in _ACCEPTED_NAMES or not printable_ascii(value):
                break
            size += len(name) + len("String") + len(value)
        else:
            if size <= MAX_MESSAGE_BYTES:
                return None
    problem = entry_problem(entry)
    if problem is None and len(_ACCEPTED_NAMES) < _MAX_ACCEPTED_NAMES:
        _ACCEPTED_NAMES.update(attributes)
    return problem


def _attributes_json(attributes) -> str | None:
    return orjson.dumps(dict(attributes)).decode() if attributes else None


def _message_ids(count: int) -> list[str]:
    """Random (version 4) UUIDs, as SQS gives, from one read of the system's randomness: a fifth of the CPU of as many
    uuid.uuid4() (docs/benchmarks.md)."""
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
