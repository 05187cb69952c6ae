"""The Queue contract: SQS semantics, whatever the backend."""
from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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

    @abc.abstractmethod
    def queue(self, name: str, *, create: bool = False, max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT) -> Queue:
        """The queue `name`; with create, make it and its dead-letter queue `name-dlq` if missing."""

    def close(self) -> None:
        """Release connections."""

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
