"""The report of `grid local`: timeline figures, summary, report.json round trip, the figure, the live view's figures
and title, the statsd listener."""
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
    assert timeline.overall() == report.Overall(tasks=400, seconds=2.0) and timeline.overall().rate == 200.0
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
    assert timeline.overall() == report.Overall(tasks=40, seconds=2.0)


def story_timeline() -> report.Timeline:
    """Idle 0-1 s, a burst 1-3 s that scales out, a stream 3-5 s on one worker, a pause 5-7 s back to zero."""
    timeline = report.Timeline()
    fleet = {0: 0, 1: 0, 2: 2, 3: 2, 4: 1, 5: 1, 6: 0, 7: 0}
    done = {0: 0, 1: 0, 2: 300, 3: 600, 4: 650, 5: 700, 6: 700, 7: 700}
    for t in range(8):
        if t in (0, 1, 3, 5):
            timeline.begin_phase({0: "idle", 1: "burst", 3: "stream", 5: "pause"}[t], float(t), 2.0)
        timeline.add(sample(float(t), done[t], produced=700, workers=fleet[t], target=fleet[t], running=fleet[t]))
    timeline.drained_at = 5.0
    timeline.end_phase(7.0)
    return timeline


def test_a_storys_phases_follow_one_another_with_what_was_done_and_the_fleet_in_each():
    timeline = story_timeline()
    assert [(p.name, p.start, p.end) for p in timeline.phases] == [
        ("idle", 0.0, 1.0), ("burst", 1.0, 3.0), ("stream", 3.0, 5.0), ("pause", 5.0, 7.0)]
    with_store = report.phase_figures(timeline)
    assert [(f["name"], f["tasks_done"], f["peak_workers"], f["workers_at_end"]) for f in with_store] == [
        ("idle", 0, 0, 0), ("burst", 600, 2, 2), ("stream", 100, 2, 1), ("pause", 0, 1, 0)]


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
    assert summary["phases"] == []
    lines = "\n".join(report.summary_lines(summary))
    assert "103 of 103 tasks" in lines and "400: 3" in lines and "duplicates seen: 2" in lines


@pytest.mark.parametrize("timeline", [
    report.Timeline([sample(0.0), sample(0.5, 40, workers=2, target=2, running=2), sample(1.5, 700, duplicates=1),
                     sample(6.0, 700)], drained_at=1.4),
    report.Timeline([sample(0.0, 10), sample(3.0, 95, workers=1, target=1, running=1)]),  # interrupted
    story_timeline(),
], ids=["done", "interrupted", "story"])
def test_the_views_overall_figures_are_the_summarys(tmp_path, timeline):
    with ResultStore(tmp_path / "results.db") as store:
        store.add(results(timeline.samples[-1].done))
        summary = report.summarize(timeline, store, planned=700, interrupted=timeline.drained_at is None)
    overall = f"{summary['throughput']:.0f}/s over {summary['work_seconds']:.1f} s"
    assert view.overall_text(timeline) == overall and overall in view.status_line(timeline, 700)
    console = Console(record=True, width=80)
    console.print(view.status_table(timeline, 700, "grid local"))
    assert overall in console.export_text()
    line = report.summary_lines(summary)[1]
    assert f"after {summary['work_seconds']:.1f} s: {summary['throughput']:.0f} tasks/s" in line
    assert summary["done_this_session"] == timeline.overall().tasks


@pytest.mark.parametrize("folder", ["grid-run/20261206-224801", "/tmp/pytest-of-someone/pytest-12/"
                                    "test_on_a_terminal_the_view_is_a_live_table0/a-run-folder-with-a-long-name"])
def test_the_views_title_is_one_line_of_an_80_column_terminal(folder):
    title = view.view_title(folder)
    assert len(title) <= view.TITLE_WIDTH and title.startswith("grid local ") and title.endswith("stop and report)")
    console = Console(record=True, width=80)
    console.print(view.status_table(story_timeline(), 700, title))
    lines = console.export_text().splitlines()
    assert lines[0].strip() == title and all(len(line) <= 80 for line in lines)


def test_on_a_narrower_terminal_the_title_is_cut_short_not_wrapped():
    console = Console(record=True, width=40)
    console.print(view.status_table(story_timeline(), 700, view.view_title("grid-run/20261206-224801")))
    first, second = console.export_text().splitlines()[:2]
    assert first.startswith("grid local 20261206") and first.rstrip().endswith("…") and "Ctrl-C" not in second


samples = st.lists(st.builds(
    report.Sample, t=st.floats(0, 1e6), produced=st.integers(0, 10**9), backlog=st.integers(0, 10**9),
    in_flight=st.integers(0, 10**6), workers=st.integers(0, 64), target=st.integers(0, 64),
    running=st.integers(0, 64), done=st.integers(0, 10**9), errors=st.integers(0, 10**9),
    duplicates=st.integers(0, 10**6), p50=st.none() | st.floats(0, 100), p99=st.none() | st.floats(0, 100)),
    min_size=1, max_size=20)


phases = st.lists(st.builds(report.PhaseSpan, name=st.sampled_from(["idle", "burst", "stream", "pause"]),
                            start=st.floats(0, 1e6), end=st.none() | st.floats(0, 1e6),
                            planned=st.none() | st.floats(0, 1e3)), max_size=4)


@settings(max_examples=50, deadline=None)
@given(samples, st.none() | st.floats(0, 1e6), st.none() | st.floats(0, 1e6), phases)
def test_report_json_round_trips(tmp_path_factory, timeline_samples, drained_at, scaled_out_at, spans):
    path = str(tmp_path_factory.mktemp("report") / "report.json")
    timeline = report.Timeline(timeline_samples, drained_at, scaled_out_at, spans)
    report.write_json(path, {"tasks_done": 1}, timeline, {"tasks": 1})
    saved, again = report.read_json(path)
    assert again == timeline
    assert saved["summary"] == {"tasks_done": 1} and saved["plan"] == {"tasks": 1}


@pytest.mark.parametrize("timeline", [
    report.Timeline([sample(t, 10 * t, backlog=50 - t, workers=min(t, 2), target=2) for t in range(10)]),
    story_timeline(),
], ids=["run", "story"])
def test_the_figure_is_a_png(tmp_path, timeline):
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
    listener, before = StatsListener("c_latency"), time.monotonic()
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
    count, changed = listener.counted("c_duplicates")
    assert count == 2 and before < changed < time.monotonic()
    assert listener.counted("never_sent") == (0, None)
    assert listener.take_latencies() == [0.0025]
    assert listener.take_latencies() == []
