"""The report of `grid local`: timeline figures, summary, report.json round trip, the figure, the statsd listener."""
from __future__ import annotations

import socket
import time

import pytest
import statsd
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from grid.local import report, view
from grid.local.stats import StatsListener
from grid.wire import Result
from grid.store.sqlite import ResultStore


def sample(t: float, done: int = 0, **fields) -> report.Sample:
    values = dict(produced=0, backlog=0, in_flight=0, workers=0, target=0, running=0, errors=0, duplicates=0)
    return report.Sample(t=t, done=done, **{**values, **fields})


def test_rates_first_scale_out_and_scale_in_come_from_the_samples():
    timeline = report.Timeline([
        sample(0.0), sample(0.5, target=2), sample(1.0, 100, workers=2, target=2, running=2),
        sample(2.0, 400, workers=2, target=2, running=2), sample(3.0, 400, workers=1, running=1), sample(4.0, 400),
    ], drained_at=2.0)
    assert timeline.first_scale_out() == 0.5
    timeline.scaled_out_at = 0.31  # the supervisor's own record of the step, where grid local read it
    assert timeline.first_scale_out() == 0.31
    assert timeline.scale_in() == 2.0
    assert timeline.busy_seconds() == 2.0
    assert timeline.rate_overall() == 100.0
    assert timeline.rate_now() == 0.0
    timeline.samples = timeline.samples[:4]
    assert timeline.rate_now() == 300.0


def test_scale_in_waits_for_the_target_when_work_ends_before_the_next_supervisor_step():
    # the supervisor's first step saw no worker yet (running 0) and asked for 2; all work ends before its next step
    timeline = report.Timeline([
        sample(0.0), sample(0.5, target=2), sample(1.5, 400, target=2), sample(2.5, 400, workers=2, target=1,
                                                                               running=2),
        sample(3.5, 400, workers=1, running=1), sample(4.5, 400),
    ], drained_at=1.4)
    assert timeline.scale_in() == pytest.approx(3.1)


def test_an_unfinished_run_has_no_scale_in_and_counts_its_whole_time():
    timeline = report.Timeline([sample(0.0, 10), sample(2.0, 50, workers=1, target=1, running=1)])
    assert timeline.scale_in() is None
    assert timeline.busy_seconds() == 2.0


def results(count: int, errors: int = 0) -> list[Result]:
    now = time.time()
    ok = [Result(f"t{i}", "job", "6", (2, 3), submitted_at=now, completed_at=now + i / 1000) for i in range(count)]
    bad = [Result(f"e{i}", "job", "-1", None, 400, "bad input", submitted_at=now, completed_at=now)
           for i in range(errors)]
    return ok + bad


def test_the_summary_joins_the_timeline_and_the_store(tmp_path):
    with ResultStore(tmp_path / "results.db") as store:
        store.add(results(100, errors=3))
        timeline = report.Timeline([sample(0.0), sample(1.0, 50, workers=2, target=2, running=2, duplicates=1),
                                    sample(2.0, 103, duplicates=2)], drained_at=2.0)
        summary = report.summarize(timeline, store, planned=103, interrupted=False)
    assert summary["tasks_done"] == 103 and summary["tasks_ok"] == 100
    assert summary["errors_by_code"] == {"400": 3}
    assert summary["duplicates"] == 2 and summary["peak_workers"] == 2
    assert summary["throughput"] == pytest.approx(103 / 2.0)
    assert set(summary["latency_seconds"]) == {"p50", "p90", "p99"}
    lines = "\n".join(report.summary_lines(summary))
    assert "103 of 103 tasks" in lines and "400: 3" in lines and "duplicates seen: 2" in lines


samples = st.lists(st.builds(
    report.Sample, t=st.floats(0, 1e6), produced=st.integers(0, 10**9), backlog=st.integers(0, 10**9),
    in_flight=st.integers(0, 10**6), workers=st.integers(0, 64), target=st.integers(0, 64),
    running=st.integers(0, 64), done=st.integers(0, 10**9), errors=st.integers(0, 10**9),
    duplicates=st.integers(0, 10**6), p50=st.none() | st.floats(0, 100), p99=st.none() | st.floats(0, 100)),
    min_size=1, max_size=20)


@settings(max_examples=50, deadline=None)
@given(samples, st.none() | st.floats(0, 1e6), st.none() | st.floats(0, 1e6))
def test_report_json_round_trips(tmp_path_factory, timeline_samples, drained_at, scaled_out_at):
    path = str(tmp_path_factory.mktemp("report") / "report.json")
    timeline = report.Timeline(timeline_samples, drained_at, scaled_out_at)
    report.write_json(path, {"tasks_done": 1}, timeline, {"tasks": 1})
    saved, again = report.read_json(path)
    assert again == timeline
    assert saved["summary"] == {"tasks_done": 1} and saved["plan"] == {"tasks": 1}


def test_the_figure_is_a_png(tmp_path):
    timeline = report.Timeline([sample(t, 10 * t, backlog=50 - t, workers=min(t, 2), target=2) for t in range(10)])
    path = tmp_path / "report.png"
    report.plot(str(path), timeline)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_live_table_and_the_line_show_the_same_figures():
    timeline = report.Timeline([sample(0.0), sample(1.0, 250, produced=900, backlog=600, in_flight=50, workers=2,
                                                      target=3, errors=4, duplicates=5, p50=0.0012, p99=0.25)])
    line = view.status_line(timeline, 1000)
    console = Console(record=True, width=100)
    console.print(view.status_table(timeline, 1000, "grid local"))
    table = console.export_text()
    for text in ("900", "600", "50", "250", "4", "5", "1.2 ms", "250.0 ms"):
        assert text in line and text in table
    assert "workers 2/3" in line and "2 (3)" in table


def test_the_listener_adds_up_counters_with_their_sample_rate_and_keeps_latency_timings():
    listener = StatsListener("c_latency")
    client = statsd.StatsClient("127.0.0.1", listener.port)
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(3):
            client.incr("p_throughput", 10)
        raw.sendto(b"c_duplicates:1|c|@0.5\nnot a metric\nc_latency:x|ms", ("127.0.0.1", listener.port))
        client.timing("c_latency", 2.5)
        client.timing("w_read_time", 7)
        deadline = time.monotonic() + 5
        while listener.count("c_duplicates") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        listener.close()
        client.close()
        raw.close()
    assert listener.count("p_throughput") == 30
    assert listener.count("c_duplicates") == 2
    assert listener.take_latencies() == [0.0025]
    assert listener.take_latencies() == []
