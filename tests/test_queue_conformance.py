"""One suite, every backend: SQS semantics on the embedded queue, moto in process and moto's HTTP server."""
from __future__ import annotations

import multiprocessing
import threading
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid.errors import QueueNotFound
from grid.queues import SendEntry, open_broker
from grid.queues.base import MAX_MESSAGE_BYTES


def send(queue, *bodies, attributes=None, delay=0):
    entries = [SendEntry(str(i), body, attributes or {}, delay) for i, body in enumerate(bodies)]
    result = queue.send_batch(entries)
    assert result.ok, result.failed
    return [result.message_ids[e.id] for e in entries]


@pytest.fixture
def queue(broker, queue_name):
    return broker.queue(queue_name, create=True, max_receive_count=2)


def test_a_sent_batch_is_received_with_bodies_attributes_and_ids(queue):
    ids = send(queue, "a", "b", "c", attributes={"requestMessageId": "r-1", "job": "j"})
    got = queue.receive(10, visibility_timeout=30)
    assert sorted((m.message_id, m.body) for m in got) == sorted(zip(ids, "abc"))
    assert all(m.attributes == {"requestMessageId": "r-1", "job": "j"} for m in got)
    assert all(m.receive_count == 1 and m.sent_at > 0 for m in got)
    assert len({m.receipt for m in got}) == 3


def test_the_broker_says_when_its_latest_successful_call_began(broker, queue):
    before = time.monotonic()
    queue.receive(1)
    assert before <= broker.answered <= time.monotonic()


def test_receive_returns_at_most_max_messages_and_counts_them_in_flight(queue):
    send(queue, *"abcdefghij")
    assert len(queue.receive(4, visibility_timeout=60)) == 4
    assert queue.counts().visible == 6 and queue.counts().in_flight == 4


def test_an_undeleted_message_returns_after_its_visibility_timeout(queue):
    [sent] = send(queue, "x")
    [first] = queue.receive(1, visibility_timeout=1)
    assert queue.receive(1) == []
    [again] = queue.receive(1, wait_seconds=5, visibility_timeout=30)
    assert (again.message_id, again.receive_count) == (sent, 2)
    assert again.receipt != first.receipt


def test_a_deleted_message_never_returns(queue):
    send(queue, "x", "y")
    got = queue.receive(10, visibility_timeout=1)
    result = queue.delete_batch([m.receipt for m in got])
    assert set(result.succeeded) == {m.receipt for m in got} and result.ok
    assert queue.receive(10, wait_seconds=2) == []
    assert queue.counts().total == 0


def test_visibility_zero_releases_a_message_at_once(queue):
    send(queue, "x")
    [m] = queue.receive(1, visibility_timeout=600)
    assert queue.change_visibility([m.receipt], 0).ok
    [again] = queue.receive(1)
    assert (again.message_id, again.receive_count) == (m.message_id, 2)


def test_a_heartbeat_keeps_a_message_hidden_past_its_first_timeout(queue):
    send(queue, "x")
    [m] = queue.receive(1, visibility_timeout=1)
    assert queue.change_visibility([m.receipt], 600).ok
    assert queue.receive(1, wait_seconds=2) == []
    assert queue.counts().in_flight == 1


def test_a_delayed_message_is_counted_delayed_and_arrives_after_its_delay(queue):
    [sent] = send(queue, "later", delay=1)
    assert queue.counts().delayed == 1
    assert queue.receive(1) == []
    [m] = queue.receive(1, wait_seconds=5)
    assert m.message_id == sent


def test_a_message_received_max_receive_count_times_goes_to_the_dead_letter_queue(queue):
    send(queue, "poison", attributes={"k": "v"})
    for _ in range(2):
        [m] = queue.receive(1)
        queue.change_visibility([m.receipt], 0)
    assert queue.receive(1) == []
    assert queue.dead_letter.counts().visible == 1
    assert queue.counts().total == 0


def test_redrive_moves_dead_letters_back_with_body_and_attributes(queue):
    send(queue, "p1", "p2", "p3", attributes={"k": "v"})
    for _ in range(2):
        queue.change_visibility([m.receipt for m in queue.receive(10)], 0)
    assert queue.receive(10) == []
    assert queue.redrive(max_messages=2) == 2
    assert queue.redrive() == 1
    got = queue.receive(10)
    assert sorted(m.body for m in got) == ["p1", "p2", "p3"]
    assert all(m.attributes == {"k": "v"} and m.receive_count == 1 for m in got)
    assert queue.dead_letter.counts().total == 0


def test_a_queue_without_dead_letter_queue_says_so(broker, queue):
    assert queue.dead_letter.dead_letter is None


def test_purge_empties_the_queue(queue):
    send(queue, *"abc")
    queue.receive(1)
    queue.purge()
    assert queue.counts().total == 0
    assert queue.receive(10) == []


def test_send_batch_reports_each_refused_entry_and_sends_the_rest(queue):
    entries = [
        SendEntry("ok", "fine"),
        SendEntry("big", "x" * (MAX_MESSAGE_BYTES + 1)),
        SendEntry("nul", "bad\x00char"),
        SendEntry("empty", ""),
        SendEntry("attr", "fine", {"AWS.reserved": "v"}),
    ]
    result = queue.send_batch(entries)
    assert result.succeeded == ("ok",)
    assert set(result.failed) == {"big", "nul", "empty", "attr"}
    assert "262144" in result.failed["big"]
    assert [m.body for m in queue.receive(10)] == ["fine"]


def test_batch_calls_refuse_more_than_ten_or_repeated_ids(queue):
    with pytest.raises(ValueError, match="1..10"):
        queue.send_batch([SendEntry(str(i), "x") for i in range(11)])
    with pytest.raises(ValueError, match="distinct"):
        queue.send_batch([SendEntry("same", "x"), SendEntry("same", "y")])
    with pytest.raises(ValueError, match="max_messages"):
        queue.receive(11)
    with pytest.raises(ValueError, match="visibility timeout"):
        queue.change_visibility(["r"], 43_201)


def test_unknown_receipts_are_reported_not_raised(queue):
    send(queue, "x")
    [m] = queue.receive(1)
    queue.delete_batch([m.receipt])
    assert set(queue.delete_batch(["nonsense"]).failed) == {"nonsense"}
    assert set(queue.change_visibility([m.receipt], 10).failed) == {m.receipt}


def test_a_missing_queue_is_queue_not_found(broker, queue_name):
    with pytest.raises(QueueNotFound, match=queue_name):
        broker.queue(queue_name)


def test_a_long_poll_returns_a_message_sent_while_it_waits(queue):
    sender = threading.Timer(0.3, send, args=(queue, "awaited"))
    sender.start()
    try:
        got = queue.receive(1, wait_seconds=10)
    finally:
        sender.join()
    assert [m.body for m in got] == ["awaited"]


def test_a_long_poll_on_an_empty_queue_returns_nothing(queue):
    assert queue.receive(10, wait_seconds=1) == []


_sqs_text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00\ufffe\uffff"), min_size=1)
_sqs_text = _sqs_text.filter(lambda s: all(c in "\t\n\r" or c >= " " for c in s))
_attribute_names = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9_-]{0,20}", fullmatch=True).filter(
    lambda n: not n.lower().startswith(("aws", "amazon"))
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.tuples(_sqs_text, st.dictionaries(_attribute_names, _sqs_text, max_size=3)), min_size=1, max_size=10))
def test_bodies_and_attributes_come_back_exactly_as_sent(queue, batch):
    result = queue.send_batch([SendEntry(str(i), body, attributes) for i, (body, attributes) in enumerate(batch)])
    assert result.ok, result.failed
    got = queue.receive(10)
    queue.delete_batch([m.receipt for m in got])
    by_id = {result.message_ids[str(i)]: sent for i, sent in enumerate(batch)}
    assert {m.message_id: (m.body, dict(m.attributes)) for m in got} == by_id


def _collect(url: str, name: str, out) -> None:
    """A consumer process: receive with a long visibility until the queue looks empty; report what it got."""
    with open_broker(url) as broker:
        queue = broker.queue(name)
        seen, empty = [], 0
        while empty < 2:
            batch = queue.receive(10, wait_seconds=0.5, visibility_timeout=300)
            seen += [m.message_id for m in batch]
            empty = 0 if batch else empty + 1
        out.put(seen)


def test_two_processes_receiving_at_once_never_get_the_same_message(shared_broker_url, queue_name):
    with open_broker(shared_broker_url) as broker:
        queue = broker.queue(queue_name, create=True)
        sent = [m for i in range(0, 200, 10) for m in send(queue, *(f"task {j}" for j in range(i, i + 10)))]
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    consumers = [spawn.Process(target=_collect, args=(shared_broker_url, queue_name, out)) for _ in range(2)]
    for p in consumers:
        p.start()
    first, second = out.get(timeout=120), out.get(timeout=120)
    for p in consumers:
        p.join(timeout=30)
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(sent)


def test_a_queue_opened_by_another_process_sees_the_same_messages(shared_broker_url, queue_name):
    with open_broker(shared_broker_url) as broker:
        send(broker.queue(queue_name, create=True), "shared")
    spawn = multiprocessing.get_context("spawn")
    out = spawn.Queue()
    p = spawn.Process(target=_collect, args=(shared_broker_url, queue_name, out))
    p.start()
    assert len(out.get(timeout=60)) == 1
    p.join(timeout=30)


_operations = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 10)),
        st.tuples(st.just("receive"), st.integers(1, 10)),
        st.tuples(st.sampled_from(["delete", "release", "heartbeat"]), st.sets(st.integers(0, 9), min_size=1)),
    ),
    max_size=12,
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=_operations)
def test_a_queue_keeps_the_state_a_reference_model_predicts(broker, operations):
    """visible / in flight as a plain model of sets predicts them, after every call (visibility far longer than a test)."""
    queue = broker.queue(f"model-{uuid.uuid4().hex[:12]}", create=True, max_receive_count=1000)
    visible, in_flight, receives = set(), {}, {}
    for operation, argument in operations:
        if operation == "send":
            visible |= set(send(queue, *(f"m{i}" for i in range(argument))))
        elif operation == "receive":
            got = queue.receive(argument, visibility_timeout=600)
            assert len(got) == min(argument, len(visible)) and {m.message_id for m in got} <= visible
            for m in got:
                receives[m.message_id] = receives.get(m.message_id, 0) + 1
                assert m.receive_count == receives[m.message_id]
                visible.discard(m.message_id)
                in_flight[m.message_id] = m.receipt
        elif chosen := [mid for i, mid in enumerate(sorted(in_flight)) if i in argument]:
            receipts = [in_flight[mid] for mid in chosen]
            call = {"delete": queue.delete_batch, "release": lambda r: queue.change_visibility(r, 0),
                    "heartbeat": lambda r: queue.change_visibility(r, 600)}[operation]
            assert call(receipts).ok
            if operation != "heartbeat":
                for mid in chosen:
                    del in_flight[mid]
                    visible |= {mid} if operation == "release" else set()
        counts = queue.counts()
        assert (counts.visible, counts.in_flight, counts.delayed) == (len(visible), len(in_flight), 0)


def test_creating_an_existing_queue_keeps_its_redrive_policy(broker, queue_name):
    broker.queue(queue_name, create=True, max_receive_count=1)
    queue = broker.queue(queue_name, create=True, max_receive_count=50)
    send(queue, "x")
    queue.change_visibility([queue.receive(1)[0].receipt], 0)
    assert queue.receive(1) == []
    assert queue.dead_letter.counts().visible == 1
