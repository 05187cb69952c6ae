"""The producer: task numbers of the configured shape, exact counts, seeds, bundles, pacing, refused entries."""
from __future__ import annotations

import json
import math
import threading
import time

import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid import config
from grid.errors import QueueError
from grid.wire import decode_tasks, jsontext
from grid.metrics import Metrics
from grid.queues import open_broker
from grid.queues.base import BatchResult
from grid.daemons import producer
from grid.daemons.producer import Producer


def producer_cfg(name: str, **overrides) -> config.Config:
    flags = {"tasks_queue_name": f"{name}-tasks", "statsd_host": "", "log_filename": "-", "prime_min_bits": 8,
             "prime_max_bits": 16, **overrides}
    return config.load("producer", flags=flags, environ={})


def make(broker, cfg, cls=Producer, **options) -> Producer:
    broker.queue(cfg.tasks_queue_name, create=True)
    return cls(cfg, broker, Metrics("producer"), **options)


def messages_on(queue) -> list[list]:
    """The tasks of each message on `queue` (all drained)."""
    out = []
    while batch := queue.receive(10):
        out += [list(decode_tasks(m.body, default_id=m.message_id)) for m in batch]
        queue.delete_batch([m.receipt for m in batch])
    return out


@pytest.fixture
def sqlite_broker(tmp_path):
    with open_broker(f"sqlite://{tmp_path}/grid.db") as b:
        yield b


def test_count_tasks_of_the_configured_shape_are_sent_then_it_stops(broker, queue_name):
    cfg = producer_cfg(queue_name, factors_per_task=3, prime_min_bits=10, prime_max_bits=14)
    p = make(broker, cfg, count=23, seed=1, job="j-shape")
    assert p.run() == 0
    tasks = [t for message in messages_on(p.tasks) for t in message]
    assert len(tasks) == 23 == p.sent == p.metrics.counts["throughput"]
    assert len({t.id for t in tasks}) == 23 and {t.job for t in tasks} == {"j-shape"}
    for t in tasks:
        factors = sympy.factorint(t.n)
        assert sum(factors.values()) == 3
        assert all(10 <= prime.bit_length() <= 14 for prime in factors)
        assert t.submitted_at is not None


def test_one_factor_per_task_sends_primes_as_the_original_did(sqlite_broker):
    p = make(sqlite_broker, producer_cfg("one", factors_per_task=1), count=12, seed=2)
    p.run()
    assert all(sympy.isprime(t.n) for message in messages_on(p.tasks) for t in message)


def test_the_same_seed_draws_the_same_numbers(sqlite_broker):
    def numbers(name, seed):
        p = make(sqlite_broker, producer_cfg(name), count=20, seed=seed)
        p.run()
        return [t.n for message in messages_on(p.tasks) for t in message]

    assert numbers("a", 42) == numbers("b", 42) != numbers("c", 43)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(1, 120), per_message=st.integers(1, 12), batch_size=st.integers(1, 10))
def test_any_count_bundle_and_batch_size_sends_each_task_once(sqlite_broker, count, per_message, batch_size):
    name = f"h{count}-{per_message}-{batch_size}"
    cfg = producer_cfg(name, tasks_per_message=per_message, batch_size=batch_size)
    sqlite_broker.queue(cfg.tasks_queue_name, create=True).purge()
    p = make(sqlite_broker, cfg, count=count, seed=0)
    p.run()
    messages = messages_on(p.tasks)
    ids = [t.id for message in messages for t in message]
    assert sorted(ids) == sorted({f"{p.job}-{i}" for i in range(1, count + 1)})
    assert all(1 <= len(message) <= per_message for message in messages)
    assert len(messages) >= math.ceil(count / per_message)


@pytest.mark.parametrize("version, inputs", [(3, str), (2, list)])
def test_the_bundles_are_written_in_the_configured_format_version(sqlite_broker, version, inputs):
    cfg = producer_cfg(f"format{version}", tasks_per_message=5, format_version=version)
    sqlite_broker.queue(cfg.tasks_queue_name, create=True)
    p = make(sqlite_broker, cfg, count=10, seed=0)
    p.run()
    messages = p.tasks.receive(10, wait_seconds=0)
    assert [(json.loads(m.body)["v"], type(json.loads(m.body)["inputs"])) for m in messages] == [(version, inputs)] * 2
    tasks = [t for m in messages for t in decode_tasks(m.body, default_id=m.message_id)]
    assert sorted(t.id for t in tasks) == sorted(f"{p.job}-{i}" for i in range(1, 11))


class RefuseFirst:
    """A queue that refuses the first entry of the first send_batch call."""

    def __init__(self, queue):
        self.queue, self.refused = queue, False

    def send_batch(self, entries):
        if self.refused:
            return self.queue.send_batch(entries)
        self.refused = True
        outcome = self.queue.send_batch(entries[1:])
        return BatchResult(outcome.succeeded, {entries[0].id: "throttled by the test"}, outcome.message_ids)


class RefusingProducer(Producer):
    def setup(self):
        super().setup()
        self.tasks = RefuseFirst(self.tasks)


def test_a_refused_entry_is_sent_again_and_counted_once(sqlite_broker):
    p = make(sqlite_broker, producer_cfg("refused", batch_size=4), RefusingProducer, count=10, seed=5)
    assert p.run() == 0
    tasks = [t for message in messages_on(p.tasks.queue) for t in message]
    assert sorted(t.id for t in tasks) == sorted(f"{p.job}-{i}" for i in range(1, 11))
    assert p.metrics.counts["throughput"] == 10 == p.sent


class Paced(Producer):
    """Records, at each pacing wait, until when it waits and how many tasks were generated by then."""

    def sleep_until(self, deadline):
        self.waits = getattr(self, "waits", []) + [(deadline, self.generated)]


def test_a_rate_paces_the_tasks_on_the_monotonic_clock(sqlite_broker):
    p = make(sqlite_broker, producer_cfg("paced"), Paced, count=40, rate=50.0, seed=3)
    p.run()
    start = p.waits[0][0]  # the first wait, before any task: the start of the pace
    assert [deadline - start for deadline, _ in p.waits] == [pytest.approx(n / 50.0) for _, n in p.waits]
    assert [generated for _, generated in p.waits] == list(range(0, 40, 5))  # 0.1 s of tasks at a time


@pytest.mark.parametrize("flag, value", [("--count", "0"), ("--count", "x"), ("--rate", "-1"), ("--rate", "nan"),
                                        ("--rate", "inf")])
def test_bad_flags_exit_2_naming_the_flag(capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        producer.main([flag, value])
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err


def test_main_sends_count_tasks_and_exits_0(tmp_path, root_logger):
    url = f"sqlite://{tmp_path}/grid.db"
    argv = ["--broker-url", url, "--count", "15", "--seed", "3", "--log-filename", "-", "--statsd-host", "",
            "--job", "j-main"]
    assert producer.main(argv) == 0
    with open_broker(url) as broker:
        tasks = [t for message in messages_on(broker.queue("grid_tasks_queue")) for t in message]
    assert sorted(t.id for t in tasks) == sorted(f"j-main-{i}" for i in range(1, 16))


def test_main_reports_a_missing_queue_in_one_line_with_exit_2(moto_server_broker_url, capsys, root_logger):
    argv = ["--broker-url", moto_server_broker_url, "--tasks-queue-name", "no-such-queue", "--count", "1",
            "--log-filename", "-", "--statsd-host", ""]
    assert producer.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("grid producer: error:") and "no-such-queue" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_main_reports_a_bad_parameter_with_its_source(capsys, root_logger, monkeypatch):
    monkeypatch.setenv("GRID_BATCH_SIZE", "12")
    assert producer.main(["--log-filename", "-", "--count", "1"]) == 2
    assert capsys.readouterr().err.strip() == (
        "grid producer: error: batch_size=12 from env GRID_BATCH_SIZE: must be 1..10")


def test_a_bundle_over_the_size_limit_is_split_and_each_part_counted(sqlite_broker, monkeypatch):
    monkeypatch.setattr(jsontext, "MAX_BODY_BYTES", 1500)  # about 60 tasks of 16-bit primes' products
    cfg = producer_cfg("split", tasks_per_message=200, prime_min_bits=16)
    p = make(sqlite_broker, cfg, count=200, seed=0)
    p.run()
    sizes = [len(message) for message in messages_on(p.tasks)]
    assert len(sizes) > 1 and sum(sizes) == 200 == p.sent


class FailThird:
    """A queue whose third send_batch call raises, once."""

    def __init__(self, queue):
        self.queue, self.calls = queue, 0

    def send_batch(self, entries):
        self.calls += 1
        if self.calls == 3:
            raise QueueError("injected: the database went away")
        return self.queue.send_batch(entries)


def test_on_the_embedded_queue_a_step_commits_its_batches_together_or_none(sqlite_broker):
    cfg = producer_cfg("fold", tasks_per_message=1, batch_size=10)
    p = make(sqlite_broker, cfg, count=100, seed=0)
    p.setup()
    queue, p.tasks = p.tasks, FailThird(p.tasks)
    with pytest.raises(QueueError):
        p.run_once()  # 10 batches in one commit: the third fails, the two before are undone
    assert queue.counts().visible == 0 and p.sent == 0 and p.generated == 100
    assert p.run_once()  # the same tasks sent again, none drawn anew
    assert queue.counts().visible == 100 and p.sent == 100 and p.generated == 100
    assert sorted(t.id for m in messages_on(queue) for t in m) == sorted(f"{p.job}-{i}" for i in range(1, 101))


def test_sends_that_do_not_wait_stay_in_the_step(sqlite_broker):
    p = make(sqlite_broker, producer_cfg("quick", tasks_per_message=1, batch_size=10), slowed(0.0), count=2000,
             seed=4)
    assert p.run() == 0
    assert p.tasks.most == 1 and p.sent == 2000


def test_a_step_sends_ten_batches_in_one_commit_on_the_embedded_queue_and_one_batch_elsewhere(broker, queue_name):
    cfg = producer_cfg(queue_name, tasks_per_message=1, batch_size=10)
    p = make(broker, cfg, count=1000, seed=0)
    p.setup()
    assert p.run_once()
    p.teardown()  # counts the send on its way, if any
    assert p.sent == (100 if broker.transactional else 10) == p.tasks.counts().visible


class Slow:
    """A queue whose sends take `seconds` and fail `failures` times first; it records how many ran at once."""

    def __init__(self, queue, seconds: float, failures: int = 0):
        self.queue, self.seconds, self.failures = queue, seconds, failures
        self.lock, self.now, self.most = threading.Lock(), 0, 0

    def send_batch(self, entries):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            fail, self.failures = self.failures > 0, self.failures - 1
        try:
            time.sleep(self.seconds)
            if fail:
                raise QueueError("send_message_batch: the endpoint is gone (the test's)")
            return self.queue.send_batch(entries)
        finally:
            with self.lock:
                self.now -= 1


def slowed(seconds: float, failures: int = 0) -> type[Producer]:
    class Slowed(Producer):
        def setup(self):
            super().setup()
            self.tasks = Slow(self.tasks, seconds, failures)

    return Slowed


def test_sends_that_wait_overlap_and_each_task_is_sent_once(shared_broker_url, queue_name):
    cfg = producer_cfg(queue_name, tasks_per_message=1, batch_size=10)
    with open_broker(shared_broker_url) as broker:
        p = make(broker, cfg, slowed(0.05), count=200, seed=4)
        assert p.run() == 0
        assert 1 < p.tasks.most <= producer.SENDS_IN_FLIGHT
        tasks = [t for message in messages_on(p.tasks.queue) for t in message]
    assert sorted(t.id for t in tasks) == sorted(f"{p.job}-{i}" for i in range(1, 201))
    assert p.sent == 200 == p.metrics.counts["throughput"]


def test_a_send_that_failed_in_the_background_is_sent_again_and_counted_once(moto_server_broker_url, queue_name,
                                                                              caplog):
    cfg = producer_cfg(queue_name, tasks_per_message=1, batch_size=10)
    with open_broker(moto_server_broker_url) as broker:
        p = make(broker, cfg, slowed(0.01, failures=2), count=100, seed=6)
        assert p.run() == 0
        tasks = [t for message in messages_on(p.tasks.queue) for t in message]
    assert sorted(t.id for t in tasks) == sorted(f"{p.job}-{i}" for i in range(1, 101))
    assert p.sent == 100 == p.metrics.counts["throughput"]
    assert [r.levelname for r in caplog.records if "the endpoint is gone" in r.getMessage()][0] == "ERROR"


def test_a_stop_counts_the_sends_on_their_way_and_keeps_nothing_back(moto_server_broker_url, queue_name):
    cfg = producer_cfg(queue_name, tasks_per_message=1, batch_size=10)
    with open_broker(moto_server_broker_url) as broker:
        p = make(broker, cfg, slowed(0.05), count=1000, seed=7)
        p.setup()
        for _ in range(5):
            p.run_once()
        p.request_stop()
        p.teardown()
        assert p.sent == p.generated == 50 == p.tasks.queue.counts().visible


def test_a_paced_step_sends_one_batch_even_on_the_embedded_queue(sqlite_broker):
    cfg = producer_cfg("paced", tasks_per_message=1, batch_size=10)
    p = make(sqlite_broker, cfg, count=1000, seed=0, rate=1000.0)
    p.setup()
    assert p.run_once()
    assert p.sent == 10  # a burst of ten batches would wait longer for the workers


def test_one_task_a_message_is_the_original_shape_its_workers_read(sqlite_broker):
    p = make(sqlite_broker, producer_cfg("single", tasks_per_message=1), count=5, seed=1)
    p.run()
    bodies = []
    while batch := p.tasks.receive(10):
        bodies += [json.loads(m.body) for m in batch]
        p.tasks.delete_batch([m.receipt for m in batch])
    assert len(bodies) == 5
    for body in bodies:  # the original's {"input": "<decimal>", "type": "Decimal"}, plus the grid's own fields
        assert body["type"] == "Decimal" and body["input"].isdigit() and int(body["input"]) > 1
        assert set(body) <= {"input", "type", "v", "id", "job", "submitted_at"}
