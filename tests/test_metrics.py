"""grid.metrics: the one registry of metric names, and statsd over real UDP."""
from __future__ import annotations

import json
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grid import config, metrics
from grid.errors import ConfigError
from grid.metrics import COUNTER, GAUGE, STATSD_METRICS, TIMER, Metrics

SUFFIX = {COUNTER: "c", TIMER: "ms", GAUGE: "g"}


@pytest.fixture
def listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def received_lines(sock: socket.socket, expect: int = 0) -> list[str]:
    """The statsd lines on `sock`: wait for `expect` of them, then take whatever else is already there."""
    lines: list[str] = []
    sock.settimeout(5)
    while len(lines) < expect:
        lines += sock.recv(65536).decode().splitlines()
    sock.setblocking(False)  # loopback UDP is delivered within sendto: anything sent is here now
    try:
        while True:
            lines += sock.recv(65536).decode().splitlines()
    except BlockingIOError:
        return lines
    finally:
        sock.setblocking(True)


def parse(line: str) -> tuple[str, float, str]:
    """statsd line protocol: name:value|type."""
    name, rest = line.split(":", 1)
    value, kind = rest.split("|")[:2]
    return name, float(value), kind


def emit(m: Metrics, metric: metrics.Metric, value: float) -> None:
    {COUNTER: m.incr, TIMER: m.timing, GAUGE: m.gauge}[metric.kind](metric.name, value)


def test_every_role_has_metrics_and_names_are_unique():
    assert {m.role for m in STATSD_METRICS} == set(config.ROLES)
    keys = [(m.role, m.name) for m in STATSD_METRICS]
    assert len(keys) == len(set(keys))
    assert all(m.kind in SUFFIX and m.help for m in STATSD_METRICS)


def test_the_originals_names_are_defined():
    assert {"throughput", "exec_time", "send_msg_time"} <= {m.name for m in metrics.metrics("producer")}
    worker = {m.name for m in metrics.metrics("worker")}
    assert {"read_time", "tasks_handled", "execution_time", "send_time", "delete_time", "tps"} <= worker
    assert metrics.statsd_names("worker", "awsgridwithsqs_worker_")[:1] == ("awsgridwithsqs_worker_read_time",)


def test_cloudwatch_names_are_the_originals():
    assert metrics.CLOUDWATCH_NAMESPACE == "AWSGridWithSQS/AppMetrics"
    assert metrics.CLOUDWATCH_DIMENSION == "AutoScalingGroupName"
    assert set(metrics.CLOUDWATCH_METRICS) == {
        "backlog_per_instance", "desired_instances_count", "all_instances_count", "total_backlog_count"}


def test_export_is_json_and_lists_every_metric():
    exported = json.loads(json.dumps(metrics.export()))
    assert [(m["role"], m["name"]) for m in exported["statsd"]] == [(m.role, m.name) for m in STATSD_METRICS]
    assert exported["cloudwatch"]["metrics"] == list(metrics.CLOUDWATCH_METRICS)


@pytest.mark.parametrize("role", config.ROLES)
def test_every_metric_arrives_over_udp_with_its_prefix_and_type(listener, role):
    prefix = f"awsgridwithsqs_{role}_"
    m = Metrics(role, prefix, "127.0.0.1", listener.getsockname()[1])
    for metric in metrics.metrics(role):
        emit(m, metric, 3)
    m.flush()
    got = [parse(line) for line in received_lines(listener, len(metrics.metrics(role)))]
    assert sorted((name, kind) for name, _, kind in got) == sorted(
        (prefix + metric.name, SUFFIX[metric.kind]) for metric in metrics.metrics(role))
    assert all(value == 3 for _, value, _ in got)


@settings(max_examples=25, deadline=None)
@given(counts=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=60))
def test_counts_are_summed_into_one_exact_line_per_flush(counts):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        m = Metrics("worker", "p_", "127.0.0.1", sock.getsockname()[1])
        for count in counts:
            m.incr("tps", count)
        m.close()
        got = [parse(line) for line in received_lines(sock, 1)]
    assert got == [("p_tps", sum(counts), "c")]  # summed here: one line per flush


def test_nothing_is_buffered_or_sent_before_flush(listener):
    m = Metrics("producer", "x_", "127.0.0.1", listener.getsockname()[1])
    m.incr("throughput")
    assert received_lines(listener) == []
    m.flush()
    assert [parse(line)[0] for line in received_lines(listener, 1)] == ["x_throughput"]


def test_timer_records_the_block_also_when_it_raises(listener):
    m = Metrics("worker", "w_", "127.0.0.1", listener.getsockname()[1])
    with pytest.raises(RuntimeError), m.timer("execution_time"):
        raise RuntimeError("boom")
    m.flush()
    (name, value, kind), = [parse(line) for line in received_lines(listener, 1)]
    assert (name, kind) == ("w_execution_time", "ms") and value >= 0


def test_without_a_host_metrics_are_a_no_op():
    m = Metrics("worker", "w_", "")
    assert not m.enabled
    m.incr("tps", 5)
    m.timing("read_time", 1.0)
    m.flush()
    m.close()


@pytest.mark.parametrize("call, name", [("incr", "no_such_metric"), ("timing", "tps"), ("gauge", "tps"),
                                        ("incr", "throughput")])
def test_an_undefined_name_or_the_wrong_kind_is_refused(call, name):
    m = Metrics("worker", "w_", "")
    with pytest.raises(ValueError, match=name):
        getattr(m, call)(name, 1)


def test_an_unresolvable_host_names_the_parameter():
    with pytest.raises(ConfigError, match="statsd_host='no-such-host.invalid'"):
        Metrics("worker", "w_", "no-such-host.invalid", 8125)


def test_from_config_uses_the_roles_prefix_host_port_and_rate(listener):
    port = listener.getsockname()[1]
    cfg = config.load("producer", flags={"statsd_host": "127.0.0.1", "statsd_port": port}, environ={})
    m = Metrics.from_config(cfg)
    m.incr("throughput", 7)
    m.flush()
    assert received_lines(listener, 1) == ["awsgridwithsqs_producer_throughput:7|c"]


def test_counter_totals_are_kept_also_without_statsd():
    m = Metrics("worker", "w_", "")
    m.incr("tps", 3)
    m.incr("tps", 4)
    m.incr("released")
    assert m.counts == {"tps": 7, "released": 1}


def test_a_flush_with_every_waits_that_long_after_the_last(listener):
    m = Metrics("worker", "w_", "127.0.0.1", listener.getsockname()[1])
    m.flush()
    m.incr("tps", 2)
    m.flush(every=3600)
    assert received_lines(listener) == []
    m.flush()
    assert received_lines(listener, 1) == ["w_tps:2|c"]
