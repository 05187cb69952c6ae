"""The Queue contract: SQS semantics, whatever the backend."""
from __future__ import annotations

import abc
import math
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from grid.errors import ConfigError

MAX_BATCH = 10  # entries per batch call, as SQS allows
MAX_MESSAGE_BYTES = 262_144  # SQS body + attributes limit (256 KiB)
MAX_WAIT_SECONDS = 20  # SQS long-poll ceiling
DEFAULT_VISIBILITY_TIMEOUT = 30  # seconds, the SQS default
DEFAULT_MAX_RECEIVE_COUNT = 5  # receives before a message goes to the dead-letter queue
DLQ_SUFFIX = "-dlq"


@dataclass(frozen=True)
class SendEntry:
    """One message to send; `id` is unique within its batch call."""

    id: str
    body: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: int = 0


@dataclass(frozen=True)
class Message:
    """A received message; `receipt` names this receive of it for delete/change_visibility."""

    message_id: str
    receipt: str
    body: str
    attributes: Mapping[str, str]
    receive_count: int
    sent_at: float  # epoch seconds


@dataclass(frozen=True)
class BatchResult:
    """Outcome of a batch call, keyed by entry id (send) or receipt (delete, change_visibility)."""

    succeeded: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)  # key -> reason
    message_ids: Mapping[str, str] = field(default_factory=dict)  # send only: entry id -> message id

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class QueueCounts:
    """Approximate counts, as SQS's ApproximateNumberOfMessages* attributes."""

    visible: int
    in_flight: int
    delayed: int
    # Messages ever sent to the queue, where the backend counts them (not SQS). A history, not the queue's
    # state: two snapshots of the same messages are equal whatever it says.
    sent_total: int | None = field(default=None, compare=False)

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


class Queue(abc.ABC):
    """One queue. Delivery is at least once; a received, undeleted message returns after its visibility timeout."""

    name: str

    @abc.abstractmethod
    def send_batch(self, entries: Sequence[SendEntry]) -> BatchResult: ...

    @abc.abstractmethod
    def receive(
        self, max_messages: int = MAX_BATCH, wait_seconds: float = 0, visibility_timeout: int | None = None
    ) -> list[Message]: ...

    @abc.abstractmethod
    def delete_batch(self, receipts: Sequence[str]) -> BatchResult: ...

    @abc.abstractmethod
    def change_visibility(self, receipts: Sequence[str], timeout: int) -> BatchResult:
        """Extend (heartbeat) or, with 0, release messages in flight."""

    @abc.abstractmethod
    def counts(self) -> QueueCounts: ...

    @abc.abstractmethod
    def purge(self) -> None: ...

    @property
    @abc.abstractmethod
    def dead_letter(self) -> Queue | None:
        """The dead-letter queue of this queue's redrive policy, if any."""

    @abc.abstractmethod
    def redrive(self, max_messages: int | None = None) -> int:
        """Move messages from the dead-letter queue back to this queue; returns how many."""


class Broker(abc.ABC):
    """A set of named queues behind one URL (`sqlite:///path`, `sqs://`)."""

    url: str
    transactional = False  # atomic() commits all its calls or none (a call that raised undoes the others)
    makes_queues = False  # the grid makes its queues on first use (the embedded queue); SQS's come from Terraform
    # time.monotonic() when the latest call that succeeded began (inf: not tracked). A daemon ends an outage on it:
    # a step served from work in hand shows nothing of the endpoint.
    answered = math.inf

    @abc.abstractmethod
    def queue(self, name: str, *, create: bool = False, max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT) -> Queue:
        """The queue `name`; with create, make it and its dead-letter queue `name-dlq` if missing."""

    def open_queue(self, name: str, *, max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT) -> Queue:
        """The queue `name` as the grid's daemons and commands use it: made with its dead-letter queue if missing
        where the broker `makes_queues`, else it must exist."""
        return self.queue(name, create=self.makes_queues, max_receive_count=max_receive_count)

    def atomic(self) -> AbstractContextManager[None]:
        """Queue calls made inside commit together where the backend can (the embedded queue); elsewhere each stands alone."""
        return nullcontext()

    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Limits shared by every backend, so that the embedded queue refuses what SQS would refuse.
MAX_VISIBILITY_TIMEOUT = 43_200  # seconds (12 h), the SQS ceiling
MAX_DELAY_SECONDS = 900  # seconds (15 min), the SQS ceiling
MAX_ATTRIBUTES = 10  # message attributes per message, as SQS allows
MAX_QUEUE_NAME = 80  # characters, as SQS allows
MAX_RECEIVE_COUNT_RANGE = range(1, 1001)  # SQS redrive policy maxReceiveCount
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,%d}" % MAX_QUEUE_NAME)
_ATTRIBUTE_NAME = re.compile(r"(?!\.)(?!.*\.\.)(?!.*\.$)(?!(?i:aws\.|amazon\.))[A-Za-z0-9_.-]{1,256}")
# Characters SQS accepts in a body or attribute value (XML 1.0 characters).
_BAD_CHARACTER = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F))


def printable_ascii(text: object) -> bool:
    """A non-empty string of printable ASCII (U+0020..U+007E): characters SQS accepts, each one byte. Checked by
    scans of its bytes in C: str.isprintable looks each character up in Unicode's tables, and the regular expression
    of what SQS refuses steps through it, each about 4x the time (a result message is ~160 KB)."""
    return (type(text) is str and text != "" and text.isascii()
            and not text.encode("ascii").translate(None, _PRINTABLE_ASCII))


def check_queue_name(name: str, *, create: bool = False) -> None:
    """A queue name SQS accepts (and, when creating, room for the dead-letter suffix); else ConfigError."""
    limit = MAX_QUEUE_NAME - len(DLQ_SUFFIX) if create else MAX_QUEUE_NAME
    if not isinstance(name, str) or not _QUEUE_NAME.fullmatch(name) or len(name) > limit:
        raise ConfigError(
            f"queue name {name!r} is not allowed: use 1..{limit} characters of A-Z a-z 0-9 - _"
            + (f" (the dead-letter queue adds {DLQ_SUFFIX!r})" if create else "")
        )


def check_max_receive_count(count: int) -> None:
    if not isinstance(count, int) or count not in MAX_RECEIVE_COUNT_RANGE:
        raise ConfigError(f"max_receive_count={count!r} is not allowed: must be an integer 1..1000")


def check_batch(keys: Sequence[str], what: str) -> None:
    """A batch call takes 1..10 distinct keys (entry ids or receipts); else ValueError, as SQS rejects the call."""
    if not 1 <= len(keys) <= MAX_BATCH:
        raise ValueError(f"a batch takes 1..{MAX_BATCH} {what}, got {len(keys)}")
    if len(set(keys)) != len(keys):
        raise ValueError(f"the {what} of one batch must be distinct, got {list(keys)!r}")


def check_receive(max_messages: int, wait_seconds: float, visibility_timeout: int | None) -> None:
    if not 1 <= max_messages <= MAX_BATCH:
        raise ValueError(f"max_messages={max_messages!r}: must be 1..{MAX_BATCH}")
    if not 0 <= wait_seconds <= MAX_WAIT_SECONDS:
        raise ValueError(f"wait_seconds={wait_seconds!r}: must be 0..{MAX_WAIT_SECONDS}")
    if visibility_timeout is not None:
        check_visibility_timeout(visibility_timeout)


def check_redrive_limit(max_messages: int | None) -> None:
    if max_messages is not None and (not isinstance(max_messages, int) or max_messages < 0):
        raise ValueError(f"redrive max_messages={max_messages!r}: must be None (all) or an integer >= 0")


def check_visibility_timeout(timeout: int) -> None:
    if not isinstance(timeout, int) or not 0 <= timeout <= MAX_VISIBILITY_TIMEOUT:
        raise ValueError(f"visibility timeout {timeout!r}: must be an integer 0..{MAX_VISIBILITY_TIMEOUT} seconds")


def entry_size(entry: SendEntry) -> int:
    """Bytes SQS counts against the message size limit: body, attribute names, types and values."""
    size = len(entry.body.encode("utf-8", "surrogatepass"))
    for name, value in entry.attributes.items():
        size += len(name.encode()) + len("String") + len(value.encode("utf-8", "surrogatepass"))
    return size


def entry_problem(entry: SendEntry) -> str | None:
    """Why SQS would refuse this entry, or None: the per-entry failure reason of send_batch."""
    if not isinstance(entry.body, str) or not entry.body:
        return "the body must be a non-empty string"
    if not 0 <= entry.delay_seconds <= MAX_DELAY_SECONDS:
        return f"delay_seconds={entry.delay_seconds!r}: must be 0..{MAX_DELAY_SECONDS}"
    if len(entry.attributes) > MAX_ATTRIBUTES:
        return f"{len(entry.attributes)} attributes: at most {MAX_ATTRIBUTES} are allowed"
    for name, value in entry.attributes.items():
        if not isinstance(name, str) or not _ATTRIBUTE_NAME.fullmatch(name):
            return f"attribute name {name!r}: use 1..256 of A-Z a-z 0-9 _ - . (no leading, trailing or double dot)"
        if not isinstance(value, str) or not value or _BAD_CHARACTER.search(value):
            return f"attribute {name!r}: the value must be a non-empty string of characters SQS accepts"
    if not printable_ascii(entry.body) and _BAD_CHARACTER.search(entry.body):
        return "the body holds a character SQS refuses (allowed: tab, newline, CR, U+0020..U+D7FF, U+E000..U+FFFD, ...)"
    size = entry_size(entry)
    if size > MAX_MESSAGE_BYTES:
        return f"the message is {size} bytes (body and attributes): at most {MAX_MESSAGE_BYTES} are allowed"
    return None
