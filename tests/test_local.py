"""`grid local` end to end, as a user runs it: a subprocess whose stdout is a pipe, a run folder, Ctrl-C, resume."""
from __future__ import annotations

import json
import math
import os
import pty
import signal
import subprocess
import sys
import time

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from grid import config
from grid.daemons.lifecycle import Stop
from grid.local import plan as run_plan
from grid.local import report
from grid.local.command import wait_for_next_sample
from grid.local.processes import Processes, role_env
from grid.local.report import read_json
from grid.local.view import live_percentiles
from grid.queues.base import MAX_BATCH
from grid.wire import Result
from grid.store.sqlite import ResultStore

PATIENCE = 120.0  # seconds a run may take before the test calls it stuck


def grid_local(folder, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
    return subprocess.Popen([sys.executable, "-m", "grid.cli", "local", "--dir", str(folder), "--interval", "0.5",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=PATIENCE)
    return proc.returncode, out, err


def stored(folder) -> list[tuple[str, str, list[str] | None, int | None]]:
    store = ResultStore(os.path.join(folder, "results.db"))
    try:
        return [(r.task_id, r.n, None if r.factors is None else list(map(str, r.factors)), r.error_code)
                for r in store.results()]
    finally:
        store.close()


def result_count(folder) -> int:
    if not os.path.exists(os.path.join(folder, "results.db")):
        return 0
    store = ResultStore(os.path.join(folder, "results.db"))
    try:
        return store.counts().total
    finally:
        store.close()


def assert_correct(rows) -> None:
    for task_id, n, factors, code in rows:
        assert code is None, (task_id, n, code)
        assert math.prod(map(int, factors)) == int(n), (task_id, n, factors)
        assert all(sympy.isprime(int(f)) for f in factors), (task_id, n, factors)


def processes_of(folder) -> list[int]:
    """Processes of this run: started with an environment that names its queue (new interpreters), or with the
    command line of `grid local` on its folder (it, and what its zygotes forked)."""
    marker = f"GRID_BROKER_URL=sqlite://{os.path.abspath(folder)}/grid.db".encode()
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f, open(f"/proc/{pid}/cmdline", "rb") as g:
                if marker in f.read().split(b"\0") or str(folder).encode() in g.read().split(b"\0"):
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def parent_and_name(pid: int) -> tuple[int, str]:
    with open(f"/proc/{pid}/stat") as f, open(f"/proc/{pid}/comm") as g:
        return int(f.read().rsplit(")", 1)[1].split()[1]), g.read().strip()


def test_a_run_answers_every_task_once_scales_out_and_back_to_zero_and_reports(tmp_path):
    folder = tmp_path / "run"
    code, out, err = finish(grid_local(folder, "--tasks", "500", "--seed", "7", "--max-workers", "2"))
    assert code == 0, out + err
    rows = stored(folder)
    plan = json.loads((folder / "run.json").read_text())
    job = plan["segments"][0]["job"]
    assert sorted(r[0] for r in rows) == sorted(f"{job}-{i}" for i in range(1, 501))
    assert_correct(rows)
    report, timeline = read_json(str(folder / "report.json"))
    summary = report["summary"]
    assert (summary["tasks_done"], summary["tasks_ok"], summary["interrupted"]) == (500, 500, False)
    assert max(s.target for s in timeline.samples) > 0 and summary["first_scale_out_seconds"] is not None
    first_seen = next(s.t for s in timeline.samples if s.target > 0)  # the step itself came before the sample
    assert 0 < summary["first_scale_out_seconds"] == timeline.scaled_out_at <= first_seen
    assert timeline.samples[-1].running == 0 and summary["scale_in_seconds"] is not None
    assert all(s.backlog + s.in_flight == 0 for s in timeline.samples if s.t >= timeline.drained_at)
    assert (folder / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "t=" in out and "done: 500 of 500 tasks" in out
    assert processes_of(folder) == []


def during(timeline: report.Timeline, name: str) -> list[report.Sample]:
    span = next(p for p in timeline.phases if p.name == name)
    return [s for s in timeline.samples if span.start <= s.t <= span.end]


def test_the_demo_story_plays_its_phases_in_order_scaling_out_in_the_burst_and_back_to_zero_in_the_pause(tmp_path):
    folder = tmp_path / "run"
    code, out, err = finish(grid_local(folder, "--timescale", "0.1", "--seed", "5", "--max-workers", "2"))
    assert code == 0, out + err
    saved, timeline = read_json(str(folder / "report.json"))
    summary, story = saved["summary"], [phase.scaled(0.1) for phase in run_plan.DEMO_STORY]
    assert [p.name for p in timeline.phases] == ["idle", "burst", "stream", "pause"]
    assert all(a.end == b.start for a, b in zip(timeline.phases, timeline.phases[1:]))
    assert timeline.phases[-1].end == timeline.samples[-1].t
    assert all(s.workers == s.target == 0 for s in during(timeline, "idle"))
    assert max(s.workers for s in during(timeline, "burst")) > 0
    stream = during(timeline, "stream")
    assert stream[-1].produced > stream[0].produced and max(s.workers for s in stream) > 0
    last = during(timeline, "pause")[-1]
    assert last.workers == last.running == last.target == 0
    assert [(p["name"], p["workers_at_end"]) for p in summary["phases"]][-1] == ("pause", 0)
    # a producer for each phase that produces: the burst at once in bundles, the stream paced, a task per message
    assert [s["asked"] for s in saved["plan"]["segments"]] == [story[1].tasks, story[2].produces]
    rows = stored(folder)
    assert len(rows) == len({r[0] for r in rows}) == summary["tasks_done"] == sum(p.produces for p in story)
    assert_correct(rows)
    assert "phase stream" in out  # the shorter phases may fall between two lines of the view (every 0.5 s)
    # the view's last line and the summary: the same figures
    shown = [line for line in out.splitlines() if line.startswith("t=")][-1]
    assert f"done {summary['tasks_done']} " in shown
    assert f"{summary['throughput']:.0f}/s over {summary['work_seconds']:.1f} s overall" in shown
    assert f"all done after {summary['work_seconds']:.1f} s: {summary['throughput']:.0f} tasks/s" in out


def test_a_story_interrupted_after_it_began_producing_resumes_with_the_rest_produced_at_once(tmp_path):
    folder = tmp_path / "run"
    proc = grid_local(folder, "--timescale", "0.2", "--seed", "9")
    deadline = time.monotonic() + PATIENCE
    while result_count(folder) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc)
    assert code == 0, out + err
    saved, timeline = read_json(str(folder / "report.json"))
    assert saved["summary"]["interrupted"] and [p.name for p in timeline.phases][:2] == ["idle", "burst"]

    code, out, err = finish(grid_local(folder))
    assert code == 0, out + err
    saved, timeline = read_json(str(folder / "report.json"))
    assert timeline.phases == [] and "phase" not in out
    planned = json.loads((folder / "run.json").read_text())["tasks"]
    rows = stored(folder)
    assert len(rows) == len({r[0] for r in rows}) == planned == saved["summary"]["tasks_done"]
    assert_correct(rows)


def test_ctrl_c_stops_cleanly_with_a_partial_report_and_a_rerun_resumes_without_producing_twice(tmp_path):
    folder = tmp_path / "run"
    proc = grid_local(folder, "--tasks", "3000", "--rate", "1000", "--seed", "3")
    deadline = time.monotonic() + PATIENCE
    while result_count(folder) < 50 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc)
    assert code == 0, out + err
    summary = json.loads((folder / "report.json").read_text())["summary"]
    assert summary["interrupted"] and 50 <= summary["tasks_done"] < 3000
    assert summary["tasks_produced"] < 3000
    assert processes_of(folder) == []
    assert "interrupted:" in out

    code, out, err = finish(grid_local(folder))
    assert code == 0, out + err
    rows = stored(folder)
    assert len(rows) == 3000
    assert_correct(rows)
    plan = json.loads((folder / "run.json").read_text())
    assert [s["sent"] for s in plan["segments"]][-1] == 3000 - plan["segments"][0]["sent"]
    assert json.loads((folder / "report.json").read_text())["summary"]["tasks_done"] == 3000


def test_roles_are_forks_of_grid_local_in_their_own_sessions_and_a_terminal_ctrl_c_stops_them_cleanly(tmp_path):
    folder = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
    proc = subprocess.Popen([sys.executable, "-m", "grid.cli", "local", "--dir", str(folder), "--tasks", "3000",
                             "--rate", "1000", "--seed", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)  # its own terminal's process group
    deadline = time.monotonic() + PATIENCE
    while result_count(folder) < 50 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = json.loads((folder / run_plan.PIDS_FILE).read_text())
    assert {role: parent_and_name(pid) for role, pid in pids.items()} == {
        role: (proc.pid, f"grid-{role}") for role in ("supervisor", "producer", "collector")}
    assert all(os.getsid(pid) == pid for pid in pids.values())
    os.killpg(proc.pid, signal.SIGINT)  # what a Ctrl-C at its terminal does: grid local and its zygote get it
    code, out, err = finish(proc)
    assert code == 0, out + err
    assert json.loads((folder / "report.json").read_text())["summary"]["interrupted"]
    for role in pids:
        assert f"grid {role} stopped (exit code 0)" in (folder / "logs" / f"{role}.log").read_text()
    assert processes_of(folder) == []


def test_without_a_zygote_a_role_starts_as_a_new_interpreter_with_its_env_and_log(tmp_path):
    folder = run_plan.RunFolder(str(tmp_path))
    folder.create()
    env = {**os.environ, "GRID_SSM": "0", "GRID_BROKER_URL": folder.broker_url, "GRID_PRIME_MIN_BITS": "0"}
    daemons = Processes(folder, env, Stop(force_on_repeat=False), zygote=None)
    daemons.start("producer", "--count", "1")
    assert isinstance(daemons.procs["producer"], subprocess.Popen) and daemons.procs["producer"].wait(PATIENCE) == 2
    assert daemons.failed() == f"the producer exited with code 2; see {folder.log('producer')}"
    assert "prime_min_bits=0 from env GRID_PRIME_MIN_BITS" in open(folder.log("producer")).read()


def test_a_workload_file_is_factorized(tmp_path):
    numbers = [1, 2, 97, 2**61 - 1, 600851475143, 2**64 + 1, 2**67 - 1, 1234567890123]
    workload = tmp_path / "numbers.txt"
    workload.write_text("\n".join(map(str, numbers)) + "\n\n")
    folder = tmp_path / "run"
    code, out, err = finish(grid_local(folder, "--workload", str(workload), "--max-workers", "1"))
    assert code == 0, out + err
    rows = stored(folder)
    assert sorted(int(r[1]) for r in rows) == sorted(numbers)
    assert_correct(rows)


@pytest.mark.parametrize("content, message", [
    ("12\n-5\n", "line 2"), ("12\nabc\n", "'abc'"), ("\n\n", "no numbers"),
])
def test_a_bad_workload_file_is_refused_with_its_line(tmp_path, content, message):
    workload = tmp_path / "numbers.txt"
    workload.write_text(content)
    code, out, err = finish(grid_local(tmp_path / "run", "--workload", str(workload)))
    assert code == 2
    assert str(workload) in err and message in err


@pytest.mark.parametrize("flags, message", [
    (["--tasks", "20"], "tasks=20 (saved: 10)"), (["--timescale", "0.5"], "--timescale 0.5 (the phases are saved)"),
])
def test_resuming_refuses_a_changed_plan(tmp_path, flags, message):
    folder = tmp_path / "run"
    folder.mkdir()
    plan = run_plan.Plan(tasks=10, min_bits=8, max_bits=8, factors=2, seed=1, tasks_per_message=1)
    run_plan.RunFolder(str(folder)).save(plan)
    code, out, err = finish(grid_local(folder, *flags))
    assert code == 2
    assert message in err and str(folder) in err


@pytest.mark.parametrize("flags, message", [
    (["--bits", "30:20"], "MIN must be <= MAX"), (["--bits", "20-30"], "MIN:MAX"),
    (["--bits", "1:9"], "prime_min_bits=1"), (["--tasks", "0"], "must be a finite number > 0"),
    (["--tasks", "10", "--timescale", "0.5"], "--timescale 0.5: it scales the demo's story"),
    (["--timescale", "0"], "must be a finite number > 0"),
])
def test_bad_flags_name_the_value_and_what_is_allowed(tmp_path, flags, message):
    code, out, err = finish(grid_local(tmp_path / "run", *flags))
    assert code == 2
    assert message in err


def test_a_folder_whose_roles_still_run_is_refused(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    plan = run_plan.Plan(tasks=10, min_bits=8, max_bits=8, factors=2, seed=1, tasks_per_message=1)
    run_plan.RunFolder(str(folder)).save(plan)
    survivor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "grid.cli", "collector"])
    try:
        (folder / run_plan.PIDS_FILE).write_text(json.dumps({"collector": survivor.pid}))
        code, out, err = finish(grid_local(folder))
    finally:
        survivor.kill()
        survivor.wait()
    assert code == 2
    assert f"collector pid {survivor.pid}" in err
    code, out, err = finish(grid_local(folder))
    assert code == 0, out + err
    assert not (folder / run_plan.PIDS_FILE).exists()


def test_bundles_carry_about_ten_ms_of_work_and_slow_or_paced_tasks_travel_alone():
    assert run_plan.pick_tasks_per_message(8, 8, 2, None) == run_plan.MAX_TASKS_PER_MESSAGE
    assert run_plan.pick_tasks_per_message(48, 48, 2, None) == 1  # each takes far more than 10 ms
    assert run_plan.pick_tasks_per_message(8, 8, 2, rate=100.0) == 1


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1e3), min_size=1, max_size=300))
def test_the_live_views_percentiles_are_the_stores(tmp_path_factory, values):
    path = tmp_path_factory.mktemp("store") / "results.db"
    with ResultStore(path) as store:
        store.add([Result(f"t{i}", "j", "4", (2, 2), submitted_at=1000.0, completed_at=1000.0 + v)
                   for i, v in enumerate(values)])
        stored = store.latency_percentiles(percentiles=(50, 99))
    latencies = [(1000.0 + v) - 1000.0 for v in values]  # as the store computes them
    assert live_percentiles(latencies) == (stored[50], stored[99])


def test_on_a_terminal_the_view_is_a_live_table(tmp_path):
    main, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
    proc = subprocess.Popen([sys.executable, "-m", "grid.cli", "local", "--dir", str(tmp_path / "run"), "--tasks",
                             "200", "--interval", "0.5"], stdout=terminal, stderr=subprocess.PIPE, env=env)
    os.close(terminal)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed: the run is over
            break
        if not chunk:
            break
        shown += chunk
    assert proc.wait(PATIENCE) == 0, proc.stderr.read()
    os.close(main)
    text = shown.decode(errors="replace")
    assert "tasks done" in text and "workers (target)" in text and "│" in text
    assert "done: 200 of 200 tasks" in text


class Drained:
    """A run's check for the end of the work that finds it done at its `after`th check, at `at` (monotonic time)."""

    def __init__(self, after: int, at: float = 0.0):
        self.after, self.at, self.checks = after, at, 0

    def __call__(self) -> float | None:
        self.checks += 1
        return self.at if self.checks >= self.after else None


def test_near_the_end_of_the_work_its_end_is_checked_for_between_samples_and_is_when_the_check_says_it_came():
    came = time.monotonic() - 0.5  # e.g. the last result's count arrived while the run was in a queue read
    drained = Drained(after=3, at=came)
    assert wait_for_next_sample(3600.0, True, drained, Stop()) == came and drained.checks == 3


def test_far_from_the_end_a_run_only_samples():
    drained = Drained(after=1)
    assert wait_for_next_sample(0.001, False, drained, Stop()) is None and drained.checks == 0


def test_a_ctrl_c_ends_the_wait_for_the_next_sample():
    stop = Stop(force_on_repeat=False)
    stop.request()
    assert wait_for_next_sample(3600.0, True, Drained(after=10**9), stop) is None


@given(st.floats(min_value=0.001, max_value=1e6))
def test_a_paced_producer_sends_one_message_at_a_time_until_that_would_be_more_often_than_its_send_interval(rate):
    batch, most_sends = run_plan.paced_batch(rate), 1 / run_plan.SEND_INTERVAL
    assert 1 <= batch <= MAX_BATCH
    assert batch == MAX_BATCH or rate / batch <= most_sends * (1 + 1e-9)
    assert batch == 1 or rate / (batch - 1) > most_sends * (1 - 1e-9)


def test_the_supervisor_of_a_run_reads_the_backlog_between_steps_so_scale_out_from_zero_follows_the_first_task(
        tmp_path):
    plan = run_plan.Plan(tasks=10, min_bits=8, max_bits=8, factors=2, seed=1, tasks_per_message=1)
    env = role_env(run_plan.RunFolder(str(tmp_path)), plan, max_workers=2, statsd_port=8125)
    cfg = config.load("supervisor", environ=env)
    assert cfg.min_workers == 0 and cfg.scale_out_poll_interval < cfg.metric_interval
