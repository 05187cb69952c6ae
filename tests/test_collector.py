"""The collector's step on the embedded queue and on moto, into a SQLite file or S3: store once, delete only what is
stored."""
import socket
import sqlite3
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from grid import config
from grid.errors import QueueError, StoreError, StoreNotFound
from grid.wire import REQUEST_MESSAGE_ID, Code, Result, encode_results, pack_results
from grid.metrics import Metrics
from grid.metrics import metrics as registry_metrics
from grid.queues import SendEntry, open_broker
from grid.daemons import lifecycle
from grid.daemons.collector import LATENCY_SAMPLES, RECEIVES_AHEAD, Collector
from grid.daemons.worker import Worker
from grid.store import open_store
from grid.store.s3 import S3ResultStore
from grid.store.sqlite import ResultStore
from helpers import eventually, record_statsd_before_waiting, slowed


def answer(task_id, n=15, factors=(3, 5)):
    return Result(task_id, "job-1", str(n), factors, worker="w", submitted_at=10.0, started_at=10.5,
                  completed_at=11.0)


def failure(task_id):
    return Result(task_id, "job-1", "-3", None, int(Code.BAD_INPUT), "not positive", submitted_at=10.0,
                  completed_at=10.2)


def collector_config(broker_url, **overrides):
    return config.load("collector", environ={}, flags={
        "broker_url": broker_url, "results_queue_name": "results", "queue_polling_wait_time": 0,
        "visibility_timeout": 1, "statsd_host": "", "max_receive_count": 2, **overrides})


@pytest.fixture
def statsd_socket():
    """A UDP socket on localhost standing in for the statsd server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        yield sock


def drain(daemon):
    while daemon.run_once():
        pass


@pytest.fixture(params=["sqlite", "moto"])
def broker_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path}/grid.db"
        return
    request.getfixturevalue("aws_env")
    with mock_aws():
        yield "sqs://?region=us-east-1"


@pytest.fixture
def setup(broker_url, tmp_path):
    with open_broker(broker_url) as broker, ResultStore(tmp_path / "results.db") as store:
        results = broker.queue("results", create=True, max_receive_count=2)
        daemon = Collector(collector_config(broker_url), broker, Metrics("collector"), store=store)
        daemon.setup()
        yield daemon, results, store


def send(queue, *bodies, attributes=None):
    outcome = queue.send_batch([SendEntry(str(i), b, attributes or {}) for i, b in enumerate(bodies)])
    assert outcome.ok


def test_results_are_stored_once_and_their_messages_deleted(setup):
    daemon, results, store = setup
    send(results, encode_results([answer("t1")]), encode_results([answer("t2"), failure("t3")]),
         encode_results([answer("t1")]))
    drain(daemon)
    assert {r.task_id: r for r in store.results()} == {"t1": answer("t1"), "t2": answer("t2"), "t3": failure("t3")}
    assert (daemon.stored, daemon.duplicates) == (3, 1)
    assert results.counts().total == 0
    assert store.latency_percentiles("job-1", (50,)) == {50: 1.0}


def test_an_original_style_result_takes_its_task_message_id(setup):
    daemon, results, store = setup
    send(results, '{"output": {"factors": ["3", "5"]}, "type": "Decimal", "input": "15"}',
         attributes={REQUEST_MESSAGE_ID: "msg-42"})
    drain(daemon)
    [stored] = store.results()
    assert (stored.task_id, stored.n, stored.factors) == ("msg-42", "15", (3, 5))


def test_an_undecodable_result_is_kept_until_the_dead_letter_queue_takes_it(setup, caplog):
    daemon, results, store = setup
    send(results, "not json", encode_results([answer("t1")]))
    drain(daemon)
    assert store.counts().total == 1
    assert results.counts().in_flight == 1
    while results.dead_letter.counts().total == 0:
        time.sleep(0.2)
        drain(daemon)
    assert results.counts().total == 0
    assert "left for the dead-letter queue" in caplog.text


def test_a_result_that_cannot_be_stored_is_not_deleted(setup):
    daemon, results, store = setup
    send(results, encode_results([answer("t1")]))
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        daemon.run_once()
    assert results.counts().in_flight == 1


def test_the_collector_opens_the_configured_store(tmp_path):
    url = f"sqlite://{tmp_path}/grid.db"
    cfg = config.load("collector", environ={}, flags={"broker_url": url, "result_store": str(tmp_path / "r" / "s.db"),
                                                       "statsd_host": ""})
    with open_broker(url) as broker:
        daemon = Collector(cfg, broker, Metrics("collector"))
        daemon.setup()
        daemon.teardown()
    assert (tmp_path / "r" / "s.db").exists()


def test_the_collector_emits_the_registrys_metrics_over_statsd(tmp_path, statsd_socket):
    url, sock = f"sqlite://{tmp_path}/grid.db", statsd_socket
    with open_broker(url) as broker, ResultStore(tmp_path / "results.db") as store:
        statsd = Metrics("collector", "col_", "127.0.0.1", sock.getsockname()[1])
        send(broker.queue("results", create=True), encode_results([answer("t1")]), encode_results([answer("t1")]))
        daemon = Collector(collector_config(url), broker, statsd, store=store)
        daemon.setup()
        drain(daemon)
        statsd.flush()
        expected = {"col_" + m.name for m in registry_metrics("collector")}
        names = set()
        while not expected <= names:
            names |= {line.split(":", 1)[0] for line in sock.recv(65536).decode().splitlines()}
    assert names == expected


class TimingsKept(Metrics):
    """Metrics that keep each timing (the statsd client only sends them)."""

    def __init__(self):
        super().__init__("collector")
        self.timings: list[tuple[str, float]] = []

    def timing(self, name, ms):
        super().timing(name, ms)
        self.timings.append((name, ms))


@pytest.mark.parametrize("count", [1, 7, 100, 101, 2000])
def test_latency_timings_are_each_results_up_to_a_bounded_sample_per_step(tmp_path, count):
    url = f"sqlite://{tmp_path}/grid.db"
    with open_broker(url) as broker, ResultStore(tmp_path / "results.db") as store:
        results = [Result(f"job-{i}", "job", "15", (3, 5), worker="w", submitted_at=10.0, started_at=10.5,
                          completed_at=11.0 + i / 1000) for i in range(1, count + 1)]
        send(broker.queue("results", create=True), *[body for body, _ in pack_results(results, per_message=count // 2 + 1)])
        metrics = TimingsKept()
        daemon = Collector(collector_config(url), broker, metrics, store=store)
        daemon.setup()
        drain(daemon)
    latencies = [ms for name, ms in metrics.timings if name == "latency"]
    assert store_total(tmp_path) == count
    assert 1 <= len(latencies) <= min(count, LATENCY_SAMPLES)
    sent = {(r.completed_at - r.submitted_at) * 1000.0 for r in results}
    assert len(latencies) == len(set(latencies)) and set(latencies) <= sent


def store_total(tmp_path):
    with ResultStore(tmp_path / "results.db") as store:
        return store.counts().total


class CountingStore(ResultStore):
    """A SQLite store that counts its adds: each is one transaction (the Store contract)."""

    adds = 0

    def add(self, items):
        self.adds += 1
        return super().add(items)


@pytest.mark.parametrize("broker_url", ["sqlite"], indirect=True)  # SQS may give fewer than asked
def test_results_that_come_fast_are_stored_in_one_step_with_one_commit(broker_url, tmp_path):
    with open_broker(broker_url) as broker, CountingStore(tmp_path / "results.db") as store:
        results = broker.queue("results", create=True, max_receive_count=2)
        daemon = Collector(collector_config(broker_url), broker, Metrics("collector"), store=store)
        daemon.setup()
        for start in range(0, 25, 10):
            send(results, *[encode_results([answer(f"t{i}")]) for i in range(start, min(start + 10, 25))])
        assert daemon.run_once()
        assert store.counts().total == 25 and results.counts().total == 0 and store.adds == 1


@pytest.mark.parametrize("broker_url", ["sqlite"], indirect=True)  # SQS may give fewer than asked
def test_when_more_are_waiting_the_next_receive_is_taken_with_the_commit_and_given_back_on_stop(setup):
    daemon, results, store = setup
    for start in range(0, 110, 10):
        send(results, *[encode_results([answer(f"t{i}")]) for i in range(start, start + 10)])
    assert daemon.run_once()
    assert store.counts().total == 100 and results.counts().in_flight == 10
    daemon.teardown()
    assert results.counts().visible == 10 and results.counts().in_flight == 0


def test_on_a_slow_queue_deletes_go_on_in_the_background_and_the_next_results_are_received_at_once(setup):
    """Where the queue's calls wait (SQS), a step does not wait for its deletes (the next receive follows the store at
    once: at the end of a run, the last results a round trip sooner), and while results come fast the next receives
    are made together, not one after the other."""
    _, results, store = setup
    daemon = Collector(collector_config(setup[0].cfg.broker_url, batch_size=2), setup[0].broker, Metrics("collector"),
                       store=store)
    daemon.setup()
    calls = []
    slowed(daemon.results, calls=("receive", "delete_batch"), threads=calls)
    for wave in range(2):  # the first step measures the calls' wait, in the daemon's own thread
        for start in range(wave * 30, wave * 30 + 30, 3):
            send(results, *[encode_results([answer(f"t{i}")]) for i in range(start, start + 3)])
        drain(daemon)
    assert {r.task_id for r in store.results()} == {f"t{i}" for i in range(60)} and daemon.stored == 60
    daemon.teardown()
    assert results.counts().total == 0  # each deleted once stored; the receives taken ahead, given back empty
    deletes = [thread for _, call, thread in calls if call == "delete_batch"]
    receives = [thread for _, call, thread in calls if call == "receive"]
    # The first step's calls, in the daemon's own thread, showed that they wait; from then on, the network threads'
    assert deletes[0] == receives[0] == "MainThread"
    assert deletes[-1].startswith("grid-network") and any(t.startswith("grid-network") for t in receives)


@pytest.mark.parametrize("broker_url", ["sqlite"], indirect=True)
def test_on_a_slow_queue_a_receive_that_brought_results_sends_the_next_at_once_and_an_empty_one_does_not(setup):
    """While results come, the next receive goes out while a step stores (the last results of a run come one at a
    time, each worker's last batch in a message); once a receive comes back empty, the next step makes its own."""
    _, results, store = setup
    daemon = Collector(collector_config(setup[0].cfg.broker_url, batch_size=10), setup[0].broker,
                       Metrics("collector"), store=store)
    daemon.setup()
    calls = []
    slowed(daemon.results, calls=("receive", "delete_batch"), threads=calls)
    ahead = lambda: sum(1 for _, call, thread in calls if call == "receive" and thread.startswith("grid-network"))
    send(results, encode_results([answer("t0")]))
    assert daemon.run_once()  # the first step measures the calls' wait
    assert ahead() == 0
    for i in range(1, 4):  # then one result at a time: the first step sends RECEIVES_AHEAD, each next one at least one
        send(results, encode_results([answer(f"t{i}")]))
        assert daemon.run_once()
        eventually(lambda: ahead() >= RECEIVES_AHEAD + i - 1, what=f"receives ahead after step {i}", patience=10)
    assert not daemon.run_once()  # the receives ahead came back empty, and so did the step's own
    made = ahead()
    assert not daemon.run_once()
    time.sleep(0.1)
    assert ahead() == made  # a step whose receive came back empty sends none ahead
    daemon.teardown()
    assert daemon.stored == 4 and results.counts().total == 0


@pytest.mark.parametrize("broker_url", ["sqlite"], indirect=True)
def test_on_a_slow_queue_the_receive_taken_ahead_is_a_long_poll_that_brings_a_result_sent_while_it_waits(setup):
    """The last results of a run come while the receive taken ahead waits: they come with it, not with a receive made
    after it came back empty (a round trip later)."""
    _, results, store = setup
    daemon = Collector(collector_config(setup[0].cfg.broker_url, batch_size=10, queue_polling_wait_time=1),
                       setup[0].broker, Metrics("collector"), store=store)
    daemon.setup()
    calls = []
    slowed(daemon.results, calls=("receive", "delete_batch"), threads=calls)
    for wave in range(2):  # the first step measures the calls' wait; the second sends a receive ahead
        send(results, *[encode_results([answer(f"t{wave}-{i}")]) for i in range(3)])
        assert daemon.run_once()
    time.sleep(0.3)  # far past the receive's own wait: a receive that does not poll has come back empty
    made = len(calls)
    send(results, encode_results([answer("last")]))
    assert daemon.run_once()
    assert "last" in {r.task_id for r in store.results()}
    assert [thread for _, call, thread in calls[made:] if call == "receive" and thread == "MainThread"] == []
    daemon.teardown()
    assert daemon.stored == 7 and results.counts().total == 0


@pytest.mark.parametrize("broker_url", ["sqlite"], indirect=True)
def test_a_background_delete_that_fails_raises_in_the_next_step_and_what_waited_is_deleted_later(setup):
    _, results, store = setup
    daemon = Collector(collector_config(setup[0].cfg.broker_url, batch_size=2), setup[0].broker, Metrics("collector"),
                       store=store)
    daemon.setup()
    slowed(daemon.results, calls=("receive", "delete_batch"))
    send(results, *[encode_results([answer(f"a{i}")]) for i in range(2)])
    assert daemon.run_once()  # its delete, in the daemon's thread, finds that the calls wait
    deletes, failures = daemon.results.delete_batch, []

    def fail_once(receipts):
        if not failures:
            failures.append(list(receipts))
            raise QueueError("the endpoint did not answer")
        return deletes(receipts)

    daemon.results.delete_batch = fail_once
    send(results, *[encode_results([answer(f"b{i}")]) for i in range(2)])
    assert daemon.run_once()  # stored; its delete fails on a network thread
    daemon._deleting[-1].exception()  # wait for it
    send(results, *[encode_results([answer(f"c{i}")]) for i in range(2)])
    with pytest.raises(QueueError, match="did not answer"):
        daemon.run_once()  # as if the daemon's own call had failed: the outage logic takes it
    drain(daemon)
    daemon.teardown()
    assert len(failures) == 1 and {r.task_id for r in ResultStore(store.path).results()} == {
        "a0", "a1", "b0", "b1", "c0", "c1"}
    counts = results.counts()  # b's messages, not deleted, come back after the timeout (duplicates, dropped)
    assert counts.visible + counts.in_flight == 2


def test_the_collector_sends_what_it_counted_before_it_waits_for_more_results(tmp_path, statsd_socket):
    url, sock = f"sqlite://{tmp_path}/grid.db", statsd_socket
    with open_broker(url) as broker, ResultStore(tmp_path / "results.db") as store:
        results = broker.queue("results", create=True, max_receive_count=2)
        metrics = Metrics("collector", host="127.0.0.1", port=sock.getsockname()[1])
        daemon = Collector(collector_config(url, queue_polling_wait_time=1), broker, metrics, store=store)
        daemon.setup()
        send(results, encode_results([answer("a")]))
        assert daemon.run_once()
        sent_before_the_wait = record_statsd_before_waiting(daemon.results, sock)
        assert not daemon.run_once()
    assert "results_stored:1|c" in sent_before_the_wait[0].splitlines()


# ---- the S3 store


@pytest.fixture
def on_s3(aws_env):
    """The collector on SQS and an S3 store, both moto in process; the S3 client retries nothing, so that a failure
    injected into its transport is the store's failure at once."""
    with mock_aws():
        s3 = boto3.client("s3", config=Config(retries={"max_attempts": 1}))  # the store's client, and the test's
        s3.create_bucket(Bucket="grid-results")
        url = "sqs://?region=us-east-1"
        with open_broker(url) as broker:
            results = broker.queue("results", create=True, max_receive_count=5)
            store = S3ResultStore("grid-results", "runs", client=s3)
            daemon = Collector(collector_config(url, max_receive_count=5), broker, Metrics("collector"), store=store)
            daemon.setup()
            yield daemon, results, store, s3


def unreachable(**kwargs):
    raise EndpointConnectionError(endpoint_url="https://s3.example")


def test_results_are_stored_in_s3_once_and_their_messages_deleted(on_s3):
    daemon, results, store, s3 = on_s3
    send(results, encode_results([answer("t1")]), encode_results([answer("t2"), failure("t3")]),
         encode_results([answer("t1")]))
    drain(daemon)
    assert (daemon.stored, daemon.duplicates) == (3, 1) and results.counts().total == 0
    assert len(s3.list_objects_v2(Bucket="grid-results", Prefix="runs/")["Contents"]) >= 1
    with open_store("s3://grid-results/runs", create=False) as reader:
        assert {r.task_id: r for r in reader.results()} == {"t1": answer("t1"), "t2": answer("t2"),
                                                            "t3": failure("t3")}
        assert reader.latency_percentiles("job-1", (50,)) == {50: 1.0}


def test_when_the_put_fails_nothing_is_deleted_and_the_collector_retries_after_a_pause(on_s3, caplog):
    daemon, results, store, s3 = on_s3
    send(results, encode_results([answer("t1")]), encode_results([answer("t2")]))
    s3.meta.events.register_first("before-send.s3.PutObject", unreachable)
    with pytest.raises(StoreError, match="Could not connect"):
        daemon.run_once()
    assert results.counts().in_flight == 2 and "Contents" not in s3.list_objects_v2(Bucket="grid-results")
    send(results, encode_results([answer("t3")]))
    assert daemon.run(max_seconds=0.5) == 0  # fails again, pauses for its backoff, and the time is up
    assert f"retrying in {lifecycle.ERROR_MIN:.1f} s" in caplog.text
    s3.meta.events.unregister("before-send.s3.PutObject", unreachable)
    while results.counts().total:  # the messages come back after their visibility timeout (1 s here)
        time.sleep(0.2)
        drain(daemon)
    assert {r.task_id for r in store.results()} == {"t1", "t2", "t3"} and daemon.stored == 3


def test_a_bucket_that_is_gone_stops_the_collector_with_exit_code_2_and_deletes_nothing(on_s3):
    daemon, results, store, s3 = on_s3
    s3.delete_bucket(Bucket="grid-results")
    send(results, encode_results([answer("t1")]))
    with pytest.raises(StoreNotFound, match="bucket 'grid-results' does not exist") as raised:
        daemon.run(max_seconds=60)
    assert raised.value.exit_code == 2 and results.counts().in_flight == 1


def test_the_collector_opens_the_s3_store_its_configuration_names(aws_env, caplog):
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="grid-results")
        url = "sqs://?region=us-east-1"
        cfg = config.load("collector", environ={}, flags={"broker_url": url, "result_store": "s3://grid-results/runs",
                                                           "statsd_host": "", "results_queue_name": "results"})
        with open_broker(url) as broker, caplog.at_level("INFO", "grid.collector"):
            broker.queue("results", create=True)
            daemon = Collector(cfg, broker, Metrics("collector"))
            daemon.setup()
            daemon.teardown()
    assert daemon.store.location == "s3://grid-results/runs"
    assert "collecting results into s3://grid-results/runs" in caplog.text


def test_the_original_producers_tasks_are_answered_and_stored_with_their_latency(broker_url, tmp_path):
    # Mixed fleets share queues: the original's producer sends {"input": ..., "type": "Decimal"}, with no id and no
    # submission time; the grid's worker answers from when the message was sent, and the collector stores it so.
    flags = {"broker_url": broker_url, "tasks_queue_name": "tasks", "results_queue_name": "results",
             "queue_polling_wait_time": 0, "statsd_host": "", "concurrency": 1}
    with open_broker(broker_url) as broker, ResultStore(tmp_path / "results.db") as store:
        tasks = broker.queue("tasks", create=True)
        broker.queue("results", create=True)
        send(tasks, '{"input": 15, "type": "Decimal"}', '{"input": "21", "type": "Decimal"}')
        worker = Worker(config.load("worker", environ={}, flags=flags), broker, Metrics("worker"))
        worker.setup()
        drain(worker)
        worker.teardown()
        collector = Collector(collector_config(broker_url), broker, Metrics("collector"), store=store)
        collector.setup()
        drain(collector)
        stored = sorted(store.results(), key=lambda r: r.n)
        assert [(r.n, r.factors) for r in stored] == [("15", (3, 5)), ("21", (3, 7))]
        assert all(r.submitted_at <= r.started_at <= r.completed_at for r in stored)
        assert store.latency_percentiles(percentiles=[50])[50] is not None
