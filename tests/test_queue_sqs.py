"""The SQS backend beyond the shared suite: botocore errors become the grid's, Failed[] entries are kept, size limits."""
from __future__ import annotations

import pytest
from botocore.stub import Stubber
from moto import mock_aws

from grid.errors import QueueAccessDenied, QueueError, QueueNotFound
from grid.queues import SendEntry
from grid.queues.sqs import SqsBroker, SqsQueue

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/tasks"


@pytest.fixture
def stubbed(aws_env):
    broker = SqsBroker(region="us-east-1")
    with Stubber(broker.client) as stubber:
        yield SqsQueue(broker, "tasks", URL), stubber


@pytest.mark.parametrize(
    ("code", "error", "says"),
    [
        ("AWS.SimpleQueueService.NonExistentQueue", QueueNotFound, "does not exist"),
        ("AccessDenied", QueueAccessDenied, "access denied"),
        ("InvalidClientTokenId", QueueAccessDenied, "access denied"),
        ("RequestThrottled", QueueError, "throttled"),
        ("InternalError", QueueError, "InternalError"),
    ],
)
def test_botocore_errors_become_grid_errors_naming_the_queue(stubbed, code, error, says):
    queue, stubber = stubbed
    stubber.add_client_error("get_queue_attributes", service_error_code=code, service_message="nope")
    with pytest.raises(error, match=says) as caught:
        queue.counts()
    assert "'tasks'" in str(caught.value) and "get_queue_attributes" in str(caught.value)


def test_failed_entries_of_a_batch_call_are_reported(stubbed):
    queue, stubber = stubbed
    stubber.add_response(
        "send_message_batch",
        {
            "Successful": [{"Id": "a", "MessageId": "m-a", "MD5OfMessageBody": "x"}],
            "Failed": [{"Id": "b", "SenderFault": False, "Code": "InternalError", "Message": "try again"}],
        },
    )
    result = queue.send_batch([SendEntry("a", "x"), SendEntry("b", "y")])
    assert result.succeeded == ("a",) and result.message_ids == {"a": "m-a"}
    assert result.failed == {"b": "InternalError: try again"}


def test_failed_deletes_are_reported_by_receipt(stubbed):
    queue, stubber = stubbed
    stubber.add_response(
        "delete_message_batch",
        {"Successful": [{"Id": "1"}], "Failed": [{"Id": "0", "SenderFault": True, "Code": "ReceiptHandleIsInvalid"}]},
    )
    result = queue.delete_batch(["r0", "r1"])
    assert result.succeeded == ("r1",) and set(result.failed) == {"r0"}


def test_a_batch_over_the_request_size_limit_is_split(aws_env):
    with mock_aws():
        broker = SqsBroker(region="us-east-1")
        queue = broker.queue("tasks", create=True)
        calls = []
        broker.client.meta.events.register("before-call.sqs.SendMessageBatch", lambda **kw: calls.append(kw))
        result = queue.send_batch([SendEntry(str(i), "x" * 100_000) for i in range(5)])
        assert result.ok and len(result.succeeded) == 5
        assert len(calls) == 3
        assert queue.counts().visible == 5


def test_missing_credentials_are_access_denied(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    broker = SqsBroker(endpoint_url="http://127.0.0.1:9", region="us-east-1")
    with pytest.raises(QueueAccessDenied, match="no AWS credentials"):
        broker.queue("tasks")


def test_queue_urls_are_looked_up_once(aws_env):
    with mock_aws():
        SqsBroker(region="us-east-1").queue("tasks", create=True)
        broker = SqsBroker(region="us-east-1")
        lookups = []
        broker.client.meta.events.register("before-call.sqs.GetQueueUrl", lambda **kw: lookups.append(kw))
        for _ in range(3):
            broker.queue("tasks").counts()
        assert len(lookups) == 1


def test_purging_twice_within_a_minute_is_a_queue_error_naming_the_queue(aws_env):
    with mock_aws():
        queue = SqsBroker(region="us-east-1").queue("tasks", create=True)
        queue.purge()
        with pytest.raises(QueueError, match="'tasks'.*PurgeQueueInProgress"):
            queue.purge()
