"""The SQS backend: Amazon SQS, or any SQS-compatible server at an endpoint URL, through boto3 (the endpoint: the
broker URL's endpoint_url, else boto3's AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL; see grid.aws)."""
from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from grid import aws
from grid.errors import QueueAccessDenied, QueueError, QueueNotFound
from grid.queues.base import (
    DEFAULT_MAX_RECEIVE_COUNT,
    DLQ_SUFFIX,
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
    entry_size,
)

MAX_ATTEMPTS = 8  # per request, throttling and 5xx included; botocore backs off exponentially with jitter
READ_TIMEOUT = 40  # seconds: longer than the 20 s long poll
CONNECT_TIMEOUT = 5  # seconds
REDRIVE_VISIBILITY = 60  # seconds a message being redriven stays hidden in the dead-letter queue
REDRIVE_WAIT = 1  # seconds of the long poll that confirms the dead-letter queue is empty

_NOT_FOUND = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_DENIED = {
    "AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "UnrecognizedClientException",
    "SignatureDoesNotMatch", "ExpiredToken", "KMS.AccessDeniedException",
}
_THROTTLED = {"Throttling", "ThrottlingException", "RequestThrottled", "RequestThrottledException", "OverLimit"}


class SqsBroker(Broker):
    """SQS queues by name; queue URLs are looked up once and cached."""

    def __init__(self, *, url: str = "sqs://", endpoint_url: str | None = None, region: str | None = None, client=None):
        self.url = url
        self.client = client or aws.client(
            "sqs", endpoint_url=endpoint_url, region=region, read_timeout=READ_TIMEOUT, connect_timeout=CONNECT_TIMEOUT,
            retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"})
        self._urls: dict[str, str] = {}
        self.answered = 0.0

    def queue(self, name: str, *, create: bool = False, max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT) -> Queue:
        check_queue_name(name, create=create)
        if create:
            check_max_receive_count(max_receive_count)
            try:
                return SqsQueue(self, name, self.queue_url(name))  # it exists: keep its redrive policy
            except QueueNotFound:
                self._create(name, max_receive_count)
        return SqsQueue(self, name, self.queue_url(name))

    def queue_url(self, name: str) -> str:
        if name not in self._urls:
            with translate_errors(name, "look up", self.url):
                self._urls[name] = self.client.get_queue_url(QueueName=name)["QueueUrl"]
        return self._urls[name]

    def _create(self, name: str, max_receive_count: int) -> None:
        dead_letter = name + DLQ_SUFFIX
        with translate_errors(dead_letter, "create", self.url):
            dlq_url = self.client.create_queue(QueueName=dead_letter)["QueueUrl"]
            arn = self.client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive_count)})
        with translate_errors(name, "create", self.url):
            url = self.client.create_queue(QueueName=name)["QueueUrl"]
            self.client.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": policy})
        self._urls.update({dead_letter: dlq_url, name: url})

    def close(self) -> None:
        self.client.close()


class SqsQueue(Queue):
    def __init__(self, broker: SqsBroker, name: str, url: str):
        self.name = name
        self.url = url
        self._broker = broker
        self._client = broker.client
        self._dead_letter: Queue | None | bool = False  # False: not looked up yet

    def __repr__(self) -> str:
        return f"SqsQueue({self.name!r}, {self.url!r})"

    def _call(self, operation: str, **kwargs) -> dict:
        began = time.monotonic()
        with translate_errors(self.name, operation, self._broker.url):
            response = getattr(self._client, operation)(QueueUrl=self.url, **kwargs)
        self._broker.answered = max(self._broker.answered, began)  # threads may race here: either value will do
        return response

    def send_batch(self, entries: Sequence[SendEntry]) -> BatchResult:
        check_batch([e.id for e in entries], "entry ids")
        failed = {e.id: problem for e in entries if (problem := entry_problem(e))}
        message_ids: dict[str, str] = {}
        for chunk in _chunks_within_limit([e for e in entries if e.id not in failed]):
            response = self._call("send_message_batch", Entries=[_send_entry(e) for e in chunk])
            message_ids.update({ok["Id"]: ok["MessageId"] for ok in response.get("Successful", [])})
            failed.update({bad["Id"]: _reason(bad) for bad in response.get("Failed", [])})
        succeeded = tuple(e.id for e in entries if e.id in message_ids)
        return BatchResult(succeeded=succeeded, failed=failed, message_ids=message_ids)

    def receive(
        self, max_messages: int = MAX_BATCH, wait_seconds: float = 0, visibility_timeout: int | None = None
    ) -> list[Message]:
        check_receive(max_messages, wait_seconds, visibility_timeout)
        extra = {} if visibility_timeout is None else {"VisibilityTimeout": visibility_timeout}
        response = self._call(
            "receive_message",
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=math.ceil(wait_seconds),
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            **extra,
        )
        return [_message(m) for m in response.get("Messages", [])]

    def delete_batch(self, receipts: Sequence[str]) -> BatchResult:
        check_batch(receipts, "receipts")
        entries = [{"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(receipts)]
        return self._by_receipt(receipts, self._call("delete_message_batch", Entries=entries))

    def change_visibility(self, receipts: Sequence[str], timeout: int) -> BatchResult:
        check_batch(receipts, "receipts")
        check_visibility_timeout(timeout)
        entries = [{"Id": str(i), "ReceiptHandle": r, "VisibilityTimeout": timeout} for i, r in enumerate(receipts)]
        return self._by_receipt(receipts, self._call("change_message_visibility_batch", Entries=entries))

    @staticmethod
    def _by_receipt(receipts: Sequence[str], response: dict) -> BatchResult:
        failed = {receipts[int(bad["Id"])]: _reason(bad) for bad in response.get("Failed", [])}
        succeeded = tuple(receipts[int(ok["Id"])] for ok in response.get("Successful", []))
        return BatchResult(succeeded=succeeded, failed=failed)

    def counts(self) -> QueueCounts:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
        attributes = self._call("get_queue_attributes", AttributeNames=names)["Attributes"]
        visible, in_flight, delayed = (int(attributes.get(n, 0)) for n in names)
        return QueueCounts(visible=visible, in_flight=in_flight, delayed=delayed)

    def purge(self) -> None:
        self._call("purge_queue")

    @property
    def dead_letter(self) -> Queue | None:
        if self._dead_letter is False:
            attributes = self._call("get_queue_attributes", AttributeNames=["RedrivePolicy"]).get("Attributes", {})
            policy = json.loads(attributes.get("RedrivePolicy", "null"))
            self._dead_letter = policy and self._broker.queue(policy["deadLetterTargetArn"].rsplit(":", 1)[-1])
        return self._dead_letter

    def redrive(self, max_messages: int | None = None) -> int:
        """Move messages back from the dead-letter queue: receive, send here, then delete there.

        Works on any SQS-compatible server; the moved messages get new message ids and receive counts.
        """
        check_redrive_limit(max_messages)
        source = self.dead_letter
        if source is None:
            raise QueueError(f"queue {self.name!r} has no dead-letter queue to redrive from")
        moved = 0
        while max_messages is None or moved < max_messages:
            limit = MAX_BATCH if max_messages is None else min(MAX_BATCH, max_messages - moved)
            batch = source.receive(limit, visibility_timeout=REDRIVE_VISIBILITY) or source.receive(
                limit, wait_seconds=REDRIVE_WAIT, visibility_timeout=REDRIVE_VISIBILITY
            )  # a short poll samples some SQS servers only: an empty answer is confirmed by a long poll
            if not batch:
                return moved
            sent = self.send_batch([SendEntry(str(i), m.body, m.attributes) for i, m in enumerate(batch)])
            done = [batch[int(i)].receipt for i in sent.succeeded]
            if done:
                source.delete_batch(done)
            if sent.failed:
                raise QueueError(f"redrive of {self.name!r} stopped: the send failed for {sent.failed}")
            moved += len(done)
        return moved


def _send_entry(entry: SendEntry) -> dict:
    sqs_entry = {"Id": entry.id, "MessageBody": entry.body}
    if entry.delay_seconds:
        sqs_entry["DelaySeconds"] = entry.delay_seconds
    if entry.attributes:
        sqs_entry["MessageAttributes"] = {
            k: {"DataType": "String", "StringValue": v} for k, v in entry.attributes.items()
        }
    return sqs_entry


def _chunks_within_limit(entries: list[SendEntry]) -> Iterator[list[SendEntry]]:
    """Split a batch so each request stays within SQS's limit on the total payload of one call."""
    chunk: list[SendEntry] = []
    size = 0
    for entry in entries:
        if chunk and size + entry_size(entry) > MAX_MESSAGE_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += entry_size(entry)
    if chunk:
        yield chunk


def _message(m: dict) -> Message:
    system = m.get("Attributes", {})
    attributes = {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items() if "StringValue" in v}
    return Message(
        message_id=m["MessageId"],
        receipt=m["ReceiptHandle"],
        body=m["Body"],
        attributes=attributes,
        receive_count=int(system.get("ApproximateReceiveCount", 1)),
        sent_at=int(system.get("SentTimestamp", 0)) / 1000,
    )


def _reason(failure: dict) -> str:
    return f"{failure.get('Code', 'Failed')}: {failure.get('Message', 'no reason given')}"


@contextmanager
def translate_errors(queue: str, operation: str, broker: str) -> Iterator[None]:
    """botocore's errors as the grid's: what failed, on which queue, and why."""
    where = f"{operation} on SQS queue {queue!r} (broker {broker})"
    try:
        yield
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        text = e.response.get("Error", {}).get("Message", str(e))
        if code in _NOT_FOUND:
            raise QueueNotFound(f"{where}: the queue does not exist") from e
        if code in _DENIED:
            raise QueueAccessDenied(f"{where}: access denied ({code}: {text})") from e
        if code in _THROTTLED:
            raise QueueError(f"{where}: throttled, still after {MAX_ATTEMPTS} attempts with backoff") from e
        raise QueueError(f"{where}: {code}: {text}") from e
    except NoCredentialsError as e:
        raise QueueAccessDenied(f"{where}: no AWS credentials found (environment, profile or instance role)") from e
    except BotoCoreError as e:
        raise QueueError(f"{where}: {e}") from e
