"""The scaling policy on its own, and the two fleets: EC2 Auto Scaling (moto) and local processes."""
import json
import math
import os
import signal
import subprocess
import sys
from fractions import Fraction

import boto3
from botocore.awsrequest import AWSResponse
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from grid.errors import ConfigError
from grid.fleet import FleetError, FleetSize
from grid.fleet.asg import AsgFleet
from grid.fleet.policy import (Activity, NeedWindow, backlog_per_instance, desired_workers, observe_activity,
                               workers_needed)
from grid.fleet.processes import ProcessFleet, worker_command
from grid.queues.base import QueueCounts
from helpers import alive, eventually

counts = st.integers(min_value=0, max_value=100_000)
sizes = st.integers(min_value=0, max_value=200)
targets = st.integers(min_value=1, max_value=1_000)


@st.composite
def bounds(draw):
    low = draw(st.integers(min_value=0, max_value=50))
    return low, draw(st.integers(min_value=low, max_value=200))


def needed(backlog, in_flight, target):
    return math.ceil(Fraction(backlog + in_flight, target))


@given(counts, counts, sizes, targets, bounds())
def test_desired_stays_within_min_and_max(backlog, in_flight, size, target, minmax):
    assert minmax[0] <= desired_workers(backlog, in_flight, size, target, *minmax) <= minmax[1]


@given(counts, counts, sizes, targets, bounds())
def test_scale_out_is_immediate_and_exact(backlog, in_flight, size, target, minmax):
    want = needed(backlog, in_flight, target)
    if want >= size:
        assert desired_workers(backlog, in_flight, size, target, *minmax) == min(max(want, minmax[0]), minmax[1])


@given(st.integers(min_value=1, max_value=100_000), targets, st.integers(min_value=1, max_value=200))
def test_scale_out_from_zero(backlog, target, max_size):
    assert desired_workers(backlog, 0, 0, target, 0, max_size) == min(needed(backlog, 0, target), max_size)
    assert desired_workers(backlog, 0, 0, target, 0, max_size) >= 1


@given(st.integers(min_value=1, max_value=100_000), sizes, targets, st.integers(min_value=1, max_value=200))
def test_work_in_flight_keeps_a_worker_when_the_queue_is_empty(in_flight, size, target, max_size):
    assert desired_workers(0, in_flight, size, target, 0, max_size) >= 1


@given(counts, counts, st.integers(min_value=1, max_value=200), targets)
def test_scale_in_removes_at_most_half_the_fleet_per_step(backlog, in_flight, size, target):
    assert desired_workers(backlog, in_flight, size, target, 0, 1_000) >= size // 2


@given(st.integers(min_value=0, max_value=10_000), targets)
def test_an_idle_fleet_scales_to_zero_in_logarithmic_steps(size, target):
    steps = 0
    while size:
        size = desired_workers(0, 0, size, target, 0, 10_000)
        steps += 1
    assert steps <= max(1, math.ceil(math.log2(10_001)))


@given(counts, counts, targets, bounds())
def test_repeated_steps_settle_on_the_needed_size(backlog, in_flight, target, minmax):
    size = minmax[1]
    for _ in range(20):
        size = desired_workers(backlog, in_flight, size, target, *minmax)
    assert size == min(max(needed(backlog, in_flight, target), minmax[0]), minmax[1])


@pytest.mark.parametrize(
    "args, named",
    [
        ((-1, 0, 0, 10, 0, 5), "backlog=-1"),
        ((0, -2, 0, 10, 0, 5), "in_flight=-2"),
        ((0, 0, 0, 0, 0, 5), "target=0"),
        ((0, 0, 0, 10, 6, 5), "max_workers=5 is below min_workers=6"),
    ],
)
def test_bad_policy_arguments_are_named(args, named):
    with pytest.raises(ValueError, match=named):
        desired_workers(*args)


@pytest.mark.parametrize("extra, named", [({"recent_need": -1}, "recent_need=-1"),
                                          ({"idle_for": -0.5}, "idle_for=-0.5"),
                                          ({"cooldown": -3}, "scale_in_cooldown=-3")])
def test_bad_cooldown_arguments_are_named(extra, named):
    with pytest.raises(ValueError, match=named):
        desired_workers(0, 0, 0, 10, 0, 5, **extra)


# ---- scale-in with a cooldown: steps of a queue that a producer uses now and then

COOLDOWN = 30
steps = st.lists(st.tuples(st.integers(min_value=1, max_value=20),  # seconds since the previous step
                           st.integers(min_value=0, max_value=60),  # tasks waiting
                           st.integers(min_value=0, max_value=3)),  # tasks sent (and done) since the previous step
                 max_size=40)


def run_policy(trace, cooldown=COOLDOWN, max_size=6, sent_counted=True):
    """The supervisor's loop over `trace`, after a first look at an empty queue: (time, size the policy asked for,
    whether the queue was used) per step."""
    activity = observe_activity(None, QueueCounts(0, 0, 0, 0 if sent_counted else None), 0)
    window, size, now, sent = NeedWindow(cooldown), 0, 0, 0
    out = []
    for gap, waiting, sends in trace:
        now, sent = now + gap, sent + sends
        counts = QueueCounts(waiting, 0, 0, sent if sent_counted else None)
        activity = observe_activity(activity, counts, now)
        recent = window.add(now, workers_needed(waiting, 0, 10))
        size = desired_workers(waiting, 0, size, 10, 0, max_size, recent_need=recent,
                               idle_for=activity.idle_for(now), cooldown=cooldown)
        out.append((now, size, waiting > 0 or sends > 0))
    return out


@given(steps)
def test_a_scale_out_is_not_undone_within_the_cooldown(trace):
    out = run_policy(trace)
    for k in range(1, len(out)):
        if out[k][1] > out[k - 1][1]:
            assert all(size >= out[k][1] for t, size, _ in out[k:] if t - out[k][0] < COOLDOWN)


@given(steps)
def test_the_fleet_reaches_zero_only_after_the_queue_was_idle_for_the_cooldown(trace):
    out = run_policy(trace)
    used = [t for t, _, in_use in out if in_use]
    for t, size, _ in out:
        if size == 0:
            assert all(t - u >= COOLDOWN for u in used if u <= t)


@given(steps, st.booleans())
def test_an_idle_queue_reaches_zero_within_the_cooldown_and_the_halving_steps(trace, sent_counted):
    quiet = [(1, 0, 0)] * (COOLDOWN + 2 + math.ceil(math.log2(6)))
    assert run_policy(trace + quiet, sent_counted=sent_counted)[-1][1] == 0


@given(steps)
def test_tasks_sent_between_steps_keep_the_last_worker_only_where_the_queue_counts_them(trace):
    counted, snapshots = run_policy(trace), run_policy(trace, sent_counted=False)
    assert all(a[1] >= b[1] for a, b in zip(counted, snapshots))


def test_a_task_that_came_and_went_between_two_steps_is_activity():
    first = observe_activity(None, QueueCounts(0, 0, 0, 7), now=100.0)
    assert first.idle_for(100.0) == math.inf  # nothing seen in use yet
    second = observe_activity(first, QueueCounts(0, 0, 0, 8), now=101.0)
    assert second.idle_for(103.0) == 2.0
    assert observe_activity(second, QueueCounts(0, 0, 0, 8), now=104.0).idle_for(104.0) == 3.0


def test_without_sent_total_messages_seen_then_gone_are_activity():
    held = observe_activity(None, QueueCounts(3, 1, 0), now=10.0)
    assert held == Activity(10.0, None, True)
    assert observe_activity(held, QueueCounts(0, 0, 0), now=11.0) == Activity(11.0, None, False)
    assert observe_activity(Activity(11.0, None, False), QueueCounts(0, 0, 0), now=12.0).last_used == 11.0


@given(st.lists(st.tuples(st.integers(min_value=0, max_value=5), st.integers(min_value=0, max_value=50)),
                min_size=1, max_size=40), st.integers(min_value=0, max_value=20))
def test_need_window_is_the_peak_of_the_steps_within_its_seconds(trace, seconds):
    window, now, seen = NeedWindow(seconds), 0, []
    for gap, need in trace:
        now += gap
        seen.append((now, need))
        assert window.add(now, need) == max(n for t, n in seen if now - t <= seconds)


@given(counts, counts, st.integers(min_value=0, max_value=200))
def test_backlog_per_instance_counts_in_flight_and_never_divides_by_zero(backlog, in_flight, in_service):
    assert backlog_per_instance(backlog, in_flight, in_service) == (backlog + in_flight) / max(in_service, 1)


# ---- AsgFleet against moto's Auto Scaling


@pytest.fixture
def asg(aws_env):
    with mock_aws():
        boto3.client("ec2").create_launch_template(
            LaunchTemplateName="grid-worker", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})
        client = boto3.client("autoscaling")
        client.create_auto_scaling_group(
            AutoScalingGroupName="grid-workers", MinSize=0, MaxSize=4, DesiredCapacity=0,
            LaunchTemplate={"LaunchTemplateName": "grid-worker"}, AvailabilityZones=["us-east-1a"])
        yield client


def test_asg_fleet_direct_mode_sets_desired_capacity_within_the_group_bounds(asg):
    fleet = AsgFleet("grid-workers", client=asg, mode="direct")
    assert fleet.size() == FleetSize(0, 0, 0)
    fleet.set_desired(3)
    assert fleet.size() == FleetSize(3, 3, 3)
    fleet.set_desired(9)
    assert fleet.size().desired == 4
    fleet.set_desired(0)
    assert fleet.size().desired == 0


def test_asg_fleet_target_mode_sizes_only_a_group_at_zero(asg):
    fleet = AsgFleet("grid-workers", client=asg, mode="target")
    fleet.set_desired(3)
    assert fleet.size().desired == 3
    fleet.set_desired(4)
    fleet.set_desired(0)
    assert fleet.size().desired == 3


def test_asg_fleet_names_a_missing_group(asg):
    with pytest.raises(ConfigError, match="worker_asg_name='nope'"):
        AsgFleet("nope", client=asg).size()


@pytest.mark.parametrize("status", [500, 502, 503])
def test_asg_fleet_an_answer_that_is_not_aws_xml_is_a_fleet_error_the_supervisor_retries(asg, status):
    """A proxy's or a test server's HTML error page where Auto Scaling's XML should be: botocore cannot parse it and
    raises an error of its own that is not a BotoCoreError; the supervisor must back off and retry, not die of it."""
    def html_page(request, **_):
        response = AWSResponse(request.url, status, {"Content-Type": "text/html"}, None)
        response._content = b"<!doctype html><title>Internal Server Error</title><h1>Internal Server Error</h1>"
        return response

    asg.meta.events.register_first("before-send.auto-scaling", html_page)
    with pytest.raises(FleetError, match=r"Auto Scaling describe_auto_scaling_groups on 'grid-workers' failed: .*parse"):
        AsgFleet("grid-workers", client=asg).size()


def test_asg_fleet_rejects_an_unknown_mode(asg):
    with pytest.raises(ConfigError, match="scale_mode='fast'"):
        AsgFleet("grid-workers", client=asg, mode="fast")


# ---- ProcessFleet with stand-in worker processes

DRAINS = """
import os, signal, sys, time, pathlib
def drain(*_):
    pathlib.Path(sys.argv[1], f"drained-{os.getpid()}").touch()
    sys.exit(0)
signal.signal(signal.SIGTERM, drain)
pathlib.Path(sys.argv[1], f"ready-{os.getpid()}").touch()
while True:
    time.sleep(0.05)
"""
IGNORES_SIGTERM = """
import os, signal, sys, time, pathlib
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1], f"ready-{os.getpid()}").touch()
while True:
    time.sleep(0.05)
"""


def wait_ready(directory, pids):
    eventually(lambda: all((directory / f"ready-{pid}").exists() for pid in pids), "workers ready")


def files(directory, prefix):
    return sorted(int(p.name.split("-")[1]) for p in directory.glob(f"{prefix}-*"))


def test_process_fleet_starts_and_stops_workers_that_drain_on_sigterm(tmp_path):
    fleet = ProcessFleet([sys.executable, "-c", DRAINS, str(tmp_path)])
    fleet.set_desired(3)
    assert fleet.size() == FleetSize(3, 3, 3)
    first = fleet.pids
    wait_ready(tmp_path, first)
    fleet.set_desired(1)
    assert fleet.size().in_service == 1 and fleet.pids == first[:1]
    fleet.close()
    assert fleet.size() == FleetSize(0, 0, 0)
    assert files(tmp_path, "drained") == sorted(first)
    assert fleet.exits == [0, 0, 0]


def test_process_fleet_kills_a_worker_that_does_not_drain(tmp_path):
    fleet = ProcessFleet([sys.executable, "-c", IGNORES_SIGTERM, str(tmp_path)], stop_timeout=0.5)
    fleet.set_desired(1)
    wait_ready(tmp_path, fleet.pids)
    fleet.close()
    assert fleet.exits == [-signal.SIGKILL]


def test_process_fleet_replaces_a_worker_that_died(tmp_path):
    fleet = ProcessFleet([sys.executable, "-c", DRAINS, str(tmp_path)])
    fleet.set_desired(2)
    os.kill(fleet.pids[0], signal.SIGKILL)
    eventually(lambda: fleet.size().in_service == 1, "the killed worker reaped")
    fleet.set_desired(2)
    assert fleet.size().in_service == 2 and fleet.started == 3
    fleet.close()
    assert fleet.exits[0] == -signal.SIGKILL


def test_process_fleet_refuses_a_negative_size():
    with pytest.raises(ValueError, match="desired workers=-1"):
        ProcessFleet([sys.executable, "-c", "pass"]).set_desired(-1)


def test_a_worker_that_stops_for_its_configuration_is_not_restarted_forever(tmp_path):
    fleet = ProcessFleet(worker_command(f"sqlite://{tmp_path}/grid.db", ["--batch-size", "12"]),
                         output=subprocess.DEVNULL)
    fleet.set_desired(1)
    [pid] = fleet.pids
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    with pytest.raises(ConfigError, match=rf"local worker pid {pid} stopped with exit code 2: .*--batch-size 12"):
        fleet.set_desired(1)


def test_workers_run_in_their_own_session_so_a_terminal_ctrl_c_reaches_only_the_supervisor(tmp_path):
    fleet = ProcessFleet([sys.executable, "-c", DRAINS, str(tmp_path)])
    fleet.set_desired(1)
    [pid] = fleet.pids
    assert os.getsid(pid) == pid != os.getsid(0)
    fleet.close()


def test_workers_drain_when_their_supervisor_is_killed(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from grid.fleet.processes import ProcessFleet
fleet = ProcessFleet([sys.executable, "-c", {DRAINS!r}, {str(tmp_path)!r}])
fleet.set_desired(2)
print(*fleet.pids, flush=True)
time.sleep(600)
"""], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in owner.stdout.readline().split()]
    wait_ready(tmp_path, pids)
    owner.kill()
    owner.wait()
    eventually(lambda: files(tmp_path, "drained") == sorted(pids), "orphaned workers drained")


# A zygote forks in its owner, which also becomes a subreaper: each test owns one in a process of its own, never in
# the test process.
ZYGOTE_OWNER = """
import functools, json, os, sys, time
from grid.errors import ConfigError
from grid.daemons import worker
from grid.fleet.processes import ProcessFleet, worker_argv
from grid.fleet.zygote import Zygote
zygote = Zygote({"worker": worker.main})
fleet = ProcessFleet(functools.partial(zygote.fork, worker_argv(sys.argv[1], sys.argv[3:])), stop_timeout=30)
fleet.set_desired(int(sys.argv[2]))
pids = fleet.pids
parents = [int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]) for pid in pids]
print(json.dumps({"owner": os.getpid(), "zygote": zygote.pid, "pids": pids, "parents": parents}), flush=True)
for command in map(str.strip, sys.stdin):
    if command == "close":
        sessions = [os.getsid(pid) for pid in fleet.pids]
        fleet.close()
        print(json.dumps({"sessions": sessions, "exits": fleet.exits}), flush=True)
    elif command == "kill the zygote, add one":
        os.kill(zygote.pid, 9)
        os.waitpid(zygote.pid, 0)
        fleet.set_desired(len(pids) + 1)
        print(json.dumps({"kinds": [type(p).__name__ for p in fleet.processes], "pids": fleet.pids}), flush=True)
    elif command == "wait for exits":
        try:
            while fleet.size().running:
                time.sleep(0.01)
        except ConfigError as e:
            print(json.dumps({"error": str(e)}), flush=True)
"""


def zygote_owner(tmp_path, workers: int, *worker_args: str) -> tuple[subprocess.Popen, dict]:
    owner = subprocess.Popen([sys.executable, "-c", ZYGOTE_OWNER, f"sqlite://{tmp_path}/grid.db", str(workers),
                              "--log-filename", str(tmp_path / "workers.log"), "--queue-polling-wait-time", "0",
                              *worker_args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    return owner, json.loads(owner.stdout.readline())


def tell(owner: subprocess.Popen, command: str) -> dict:
    owner.stdin.write(command + "\n")
    owner.stdin.flush()
    return json.loads(owner.stdout.readline())


def logging_pids(log, text) -> list[int]:
    """The pids of the processes whose log lines (`name[pid] - message`) contain `text`."""
    lines = log.read_text().splitlines() if log.exists() else []
    return sorted(int(line.split("[", 1)[1].split("]", 1)[0]) for line in lines if text in line)


def test_a_zygote_forks_workers_that_are_its_owners_children_in_their_own_session_and_drain(tmp_path):
    owner, started = zygote_owner(tmp_path, 2)
    pids = sorted(started["pids"])
    assert started["parents"] == [started["owner"]] * 2 and started["zygote"] not in pids
    eventually(lambda: logging_pids(tmp_path / "workers.log", "kernel threads") == pids, "workers set up")
    closed = tell(owner, "close")
    owner.communicate()
    assert closed == {"sessions": started["pids"], "exits": [0, 0]}
    assert logging_pids(tmp_path / "workers.log", "stopped (exit code 0)") == pids


def test_a_forked_worker_that_stops_for_its_configuration_is_not_restarted(tmp_path):
    owner, started = zygote_owner(tmp_path, 1, "--batch-size", "12")
    [pid] = started["pids"]
    error = tell(owner, "wait for exits")["error"]
    owner.communicate()
    assert error.startswith(f"local worker pid {pid} stopped with exit code 2: ") and "--batch-size 12" in error


def test_forked_workers_drain_and_the_zygote_goes_when_their_supervisor_is_killed(tmp_path):
    owner, started = zygote_owner(tmp_path, 2)
    pids = sorted(started["pids"])
    eventually(lambda: logging_pids(tmp_path / "workers.log", "kernel threads") == pids, "workers set up")
    owner.kill()
    owner.wait()
    eventually(lambda: logging_pids(tmp_path / "workers.log", "stopped (exit code 0)") == pids, "orphans drained")
    eventually(lambda: not alive(started["zygote"]), "the zygote gone")


def test_when_the_zygote_is_gone_workers_start_as_new_processes(tmp_path):
    owner, _ = zygote_owner(tmp_path, 1)
    added = tell(owner, "kill the zygote, add one")
    assert added["kinds"] == ["Forked", "Popen"]
    eventually(lambda: logging_pids(tmp_path / "workers.log", "kernel threads") == sorted(added["pids"]), "set up")
    assert tell(owner, "close")["exits"] == [0, 0]
    owner.communicate()
