"""The producer: task numbers of the configured shape, exact counts, seeds, bundles, pacing, refused entries."""
from __future__ import annotations

import logging
import math

import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid import config
from grid.messages import decode_tasks
from grid.metrics import Metrics
from grid.queues import open_broker
from grid.queues.base import BatchResult
from grid.roles import producer
from grid.roles.producer import Producer


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
        out += [decode_tasks(m.body, default_id=m.message_id) for m in batch]
        queue.delete_batch([m.receipt for m in batch])
    return out


@pytest.fixture
def sqlite_broker(tmp_path):
    with open_broker(f"sqlite://{tmp_path}/grid.db") as b:
        yield b


@pytest.fixture
def root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for h in root.handlers[:]:
        root.removeHandler(h)
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


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
    """Records, at each pacing wait, how far after the start it waits and how many tasks were generated by then."""

    def sleep_until(self, deadline):
        self.waits = getattr(self, "waits", []) + [(deadline - self._start, self.generated)]


def test_a_rate_paces_the_tasks_on_the_monotonic_clock(sqlite_broker):
    p = make(sqlite_broker, producer_cfg("paced"), Paced, count=40, rate=50.0, seed=3)
    p.run()
    assert [offset for offset, _ in p.waits] == [pytest.approx(generated / 50.0) for _, generated in p.waits]
    assert [generated for _, generated in p.waits] == list(range(0, 40, 5))  # 0.1 s of tasks at a time


@pytest.mark.parametrize("flag, value", [("--count", "0"), ("--count", "x"), ("--rate", "-1"), ("--rate", "nan")])
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
