"""Faults on the SQS path, against moto's server with real role processes: workers and the collector SIGKILLed, the
endpoint gone for a while, throttling and 5xx answers, a task that kills its worker.

Each test ends with every task's one stored, correct result, and prints a line of its report. `make chaos` runs the
same tests longer (GRID_CHAOS=long: more tasks, more kills, longer outages) and shows the lines.
"""
from __future__ import annotations

import os
import random
import re
import resource
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest

from grid.queues import open_broker
from grid.queues.base import DLQ_SUFFIX
from grid.store import open_store
from helpers import FlakyProxy, Grid, alive, check_results, stored_count, wait_for_roles

LONG = os.environ.get("GRID_CHAOS") == "long"
FAULTS = Path(__file__).resolve().parent / "faults"  # a sitecustomize that injects faults into the roles
VISIBILITY = 2  # seconds: a killed worker's messages come back soon
SETTINGS = {
    "GRID_STATSD_HOST": "",
    "GRID_LOG_FILENAME": "-",
    "GRID_LOG_LEVEL": "INFO",
    "GRID_QUEUE_POLLING_WAIT_TIME": "1",
    "GRID_CONCURRENCY": "1",
    "GRID_VISIBILITY_TIMEOUT": str(VISIBILITY),
    "GRID_BROKER_URL": "sqs://",
    "PYTHONUNBUFFERED": "1",
}


@pytest.fixture
def chaos(aws_env, moto_server_url, tmp_path):
    """A grid on moto's server: fresh queues (a DLQ after 20 receives) and a SQLite result store; the role processes
    reach moto through AWS_ENDPOINT_URL, which a test may point at a FlakyProxy instead."""
    tag = uuid.uuid4().hex[:8]
    env = {**os.environ, **SETTINGS, "AWS_ENDPOINT_URL": moto_server_url,
           "GRID_TASKS_QUEUE_NAME": f"chaos-{tag}-tasks", "GRID_RESULTS_QUEUE_NAME": f"chaos-{tag}-results",
           "GRID_RESULT_STORE": str(tmp_path / "results.db")}
    grid = Grid(env=env, logs=str(tmp_path))
    grid.broker_url = f"sqs://?endpoint_url={moto_server_url}&region=us-east-1"
    make_queues(grid, max_receive_count=20)
    yield grid
    grid.kill()


def make_queues(grid: Grid, max_receive_count: int) -> None:
    with open_broker(grid.broker_url) as broker:
        for name in (grid.env["GRID_TASKS_QUEUE_NAME"], grid.env["GRID_RESULTS_QUEUE_NAME"]):
            broker.queue(name, create=True, max_receive_count=max_receive_count)



def stored(grid: Grid) -> int:
    return stored_count(grid.env["GRID_RESULT_STORE"])


def counts(grid: Grid, which: str = "TASKS"):
    with open_broker(grid.broker_url) as broker:
        return broker.open_queue(grid.env[f"GRID_{which}_QUEUE_NAME"]).counts()


def duplicates_dropped(grid: Grid, name: str = "collector") -> int:
    found = re.findall(r"collector stopping: \d+ results stored, (\d+) duplicates dropped", grid.log(name))
    assert found, grid.log(name)[-2000:]
    return int(found[-1])


def report(capsys, line: str) -> None:
    with capsys.disabled():
        print(f"\nchaos: {line}")


def test_workers_and_the_collector_sigkilled_at_random_lose_nothing_and_store_each_result_once(chaos, capsys):
    # Work enough for every round to kill workers with messages in hand (the kernel got faster: 2,000 tasks of 36-40
    # bits were done before the third round's kill)
    tasks, rounds = (8000, 12) if LONG else (4000, 3)
    rng = random.Random(13)
    chaos.env.update(GRID_TASKS_PER_MESSAGE="20", GRID_PRIME_MIN_BITS="38", GRID_PRIME_MAX_BITS="42")
    chaos.start("collector", name="collector-0")
    producer = chaos.start("producer", "--count", str(tasks), "--seed", "5", "--job", "ck")
    lost, held_at_kills = [], []
    for round_ in range(rounds):
        workers = [f"worker-{round_}-{i}" for i in range(2)]
        for name in workers:
            chaos.start("worker", name=name)
        before = stored(chaos)
        wait_for_roles("a batch in a worker's hand", lambda: stored(chaos) > before and counts(chaos).in_flight > 0,
                       chaos)
        time.sleep(rng.uniform(0, 0.5))  # a random moment of the batch
        for name in workers:
            chaos.sigkill(name)
        killed_at, held = time.monotonic(), counts(chaos).in_flight
        if round_ == rounds // 2:  # the collector too: what it took and did not store comes back
            chaos.sigkill("collector-0")
            chaos.start("collector", name="collector-1")
        wait_for_roles("the killed workers' messages visible again", lambda: counts(chaos).in_flight == 0, chaos)
        lost.append(time.monotonic() - killed_at)
        held_at_kills.append(held)
    chaos.start("worker", name="worker-last")
    wait_for_roles(f"{tasks} results stored", lambda: stored(chaos) >= tasks and producer.poll() == 0, chaos)
    # The killed workers may have done all the work: the last one is stopped once it runs, not as it starts
    wait_for_roles("the last worker running", lambda: "kernel threads" in chaos.log("worker-last"), chaos)
    codes = chaos.stop()
    check_results(chaos, "ck", tasks)
    assert set(codes.values()) == {0}, codes
    assert len(chaos.killed) == 2 * rounds + 1 and all(code == -9 for code in chaos.killed.values())
    assert all(held > 0 for held in held_at_kills), held_at_kills
    assert all(seconds <= VISIBILITY + 3 for seconds in lost), lost  # a message comes back after its timeout
    report(capsys, f"{tasks} tasks, {2 * rounds} workers and 1 collector SIGKILLed; {sum(held_at_kills)} messages "
                   f"held at the kills; {duplicates_dropped(chaos, 'collector-1')} duplicate results delivered and "
                   f"dropped; {sum(lost):.1f} s lost to visibility timeouts ({len(lost)} kills, "
                   f"{max(lost):.1f} s at most)")


@pytest.fixture
def proxy(moto_server_url):
    p = FlakyProxy(moto_server_url)
    yield p
    p.close()


def test_the_endpoint_gone_for_a_while_every_role_rides_it_out_and_logs_it_once(chaos, proxy, capsys):
    outage = 30.0 if LONG else 10.0
    tasks = 3000 if LONG else 1000
    chaos.env.update(AWS_ENDPOINT_URL=proxy.url, GRID_TASKS_PER_MESSAGE="10", GRID_PRIME_MIN_BITS="20",
                     GRID_PRIME_MAX_BITS="24")
    chaos.start("collector")
    chaos.start("worker")
    producer = chaos.start("producer", "--count", str(tasks), "--rate", str(tasks / (2 * outage + 10)), "--seed",
                           "3", "--job", "co")
    recovered_in = []
    for mode in ("drop", "stall"):  # refused connections, then a black hole
        before = stored(chaos)
        wait_for_roles("results flowing", lambda: stored(chaos) > before, chaos)
        proxy.cut(mode)
        time.sleep(outage)
        during = stored(chaos)
        proxy.restore()
        restored_at = time.monotonic()
        wait_for_roles("results flowing again", lambda: stored(chaos) > during, chaos)
        recovered_in.append(time.monotonic() - restored_at)
    wait_for_roles(f"{tasks} results stored", lambda: stored(chaos) >= tasks and producer.poll() == 0, chaos)
    codes = chaos.stop()
    check_results(chaos, "co", tasks)
    assert codes == {"collector": 0, "worker": 0, "producer": 0}
    lines = {}
    for role in codes:
        log = chaos.log(role)
        errors = [line for line in log.splitlines() if " - ERROR - " in line]
        assert len(errors) <= proxy.outages, (role, errors)  # one line an outage, not one a retry
        assert log.count("recovered after") == len(errors), log[-3000:]
        assert "Traceback" not in log
        lines[role] = len(errors)
    report(capsys, f"{tasks} tasks, {proxy.outages} outages of {outage:.0f} s (drop, stall); results again "
                   f"{', '.join(f'{s:.1f}' for s in recovered_in)} s after the endpoint came back; error lines by role "
                   f"{lines} (botocore's own retries ride out what they can); "
                   f"{duplicates_dropped(chaos)} duplicate results dropped")


def test_throttling_and_5xx_answers_are_retried_none_lost_none_answered_twice(chaos, tmp_path, capsys):
    tasks, rate = (4000, 0.3) if LONG else (1000, 0.2)
    faults = tmp_path / "faults.log"
    chaos.env.update(PYTHONPATH=os.pathsep.join([str(FAULTS), chaos.env.get("PYTHONPATH", "")]),
                     GRID_FAULT_RATE=str(rate), GRID_FAULT_LOG=str(faults), GRID_TASKS_PER_MESSAGE="10",
                     GRID_VISIBILITY_TIMEOUT="30",  # no kill here: a retried call's backoff must not bring a task back
                     GRID_PRIME_MIN_BITS="20", GRID_PRIME_MAX_BITS="24")
    chaos.start("collector")
    chaos.start("worker")
    producer = chaos.start("producer", "--count", str(tasks), "--seed", "9", "--job", "ct")
    wait_for_roles(f"{tasks} results stored", lambda: stored(chaos) >= tasks and producer.poll() == 0, chaos)
    codes = chaos.stop()
    check_results(chaos, "ct", tasks)
    assert codes == {"collector": 0, "worker": 0, "producer": 0}
    injected = faults.read_text().splitlines()
    by_status = {s: sum(line.split()[1] == s for line in injected) for s in ("400", "503")}
    assert by_status["400"] > 0 and by_status["503"] > 0, by_status
    assert duplicates_dropped(chaos) == 0  # injected before the request left: nothing was done twice
    report(capsys, f"{tasks} tasks, {len(injected)} answers injected ({by_status['400']} throttling, "
                   f"{by_status['503']} 503) at {rate:.0%} of SQS requests; none lost, none answered twice")


def test_a_task_that_kills_its_worker_reaches_the_dlq_shows_in_status_and_comes_back_by_redrive(chaos, capsys):
    crash = 1000000016000000063
    chaos.env.update(PYTHONPATH=os.pathsep.join([str(FAULTS), chaos.env.get("PYTHONPATH", "")]),
                     GRID_FAULT_CRASH_ON=str(crash), GRID_TASKS_PER_MESSAGE="1", GRID_MAX_RECEIVE_COUNT="3",
                     GRID_VISIBILITY_TIMEOUT="1")
    tag = uuid.uuid4().hex[:8]  # queues of their own: a DLQ after 3 receives
    chaos.env.update(GRID_TASKS_QUEUE_NAME=f"crash-{tag}-tasks", GRID_RESULTS_QUEUE_NAME=f"crash-{tag}-results")
    make_queues(chaos, max_receive_count=3)
    # with batch-mates: the crash takes them down with it once; delivered again, each message is tried alone first
    submitted = grid_command(chaos, "submit", str(crash), "91", "8051", "--job", "cc")
    assert submitted.returncode == 0, submitted.stderr
    chaos.start("collector")
    crashes = 0
    while dead_letters(chaos) == 0:
        worker = chaos.start("worker", name=f"worker-{crashes}")
        wait_for_roles("the worker dies of the task, or the task is in the DLQ",
                 lambda: worker.poll() is not None or dead_letters(chaos) > 0, chaos,
                 allowed={f"worker-{k}" for k in range(crashes + 1)})
        if worker.poll() is not None:
            assert worker.returncode == 70, chaos.log(f"worker-{crashes}")[-2000:]
            crashes += 1
        assert crashes <= 1, "delivered again, the task should kill only the process that tries it alone"
    assert grid_command(chaos, "submit", "15", "21", "--job", "cd").returncode == 0
    wait_for_roles("the next tasks answered", lambda: stored(chaos) >= 4, chaos, allowed=set(chaos.procs))
    assert "killed the process that computed it alone (exit code 70)" in chaos.log(f"worker-{crashes}")
    status = grid_command(chaos, "status")
    assert status.returncode == 0, status.stderr
    assert f"DLQ {chaos.env['GRID_TASKS_QUEUE_NAME']}{DLQ_SUFFIX}: 1\n" in status.stdout, status.stdout
    codes = chaos.stop()  # before the redrive: a worker would take the task again
    assert codes == {"collector": 0, **{f"worker-{k}": 70 for k in range(crashes)}, f"worker-{crashes}": 0}, codes
    redrive = grid_command(chaos, "dlq", "redrive")
    assert redrive.returncode == 0, redrive.stderr
    assert dead_letters(chaos) == 0 and counts(chaos).visible == 1
    with open_store(chaos.env["GRID_RESULT_STORE"], create=False) as store:
        assert sorted(int(r.n) for r in store.results("cc")) == [91, 8051]  # its batch-mates
        assert sorted(int(r.n) for r in store.results("cd")) == [15, 21]
    report(capsys, f"a task that kills its worker: {crashes} crash (then tried alone in a child process), its "
                   f"batch-mates answered, the task in the DLQ (max_receive_count 3); grid status shows it; "
                   f"grid dlq redrive brought it back")


def grid_command(grid: Grid, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grid.cli", *args], env=grid.env, capture_output=True, text=True,
                          timeout=60)


def dead_letters(grid: Grid) -> int:
    with open_broker(grid.broker_url) as broker:
        return broker.open_queue(grid.env["GRID_TASKS_QUEUE_NAME"]).dead_letter.counts().total


def children(pid: int, comm: str) -> set[int]:
    """The running processes named `comm` whose parent is `pid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name == comm and int(rest[1]) == pid and rest[0] != "Z":
            found.add(int(entry.name))
    return found


def test_a_supervisor_killed_mid_run_leaves_no_orphan_worker_and_its_successor_finishes_the_run(chaos, capsys):
    tasks = 3000 if LONG else 1000
    chaos.env.update(GRID_METRIC_INTERVAL="1", GRID_MIN_WORKERS="0", GRID_MAX_WORKERS="2", GRID_SCALE_IN_COOLDOWN="1",
                     GRID_BACKLOG_PER_INSTANCE="50", GRID_TASKS_PER_MESSAGE="10", GRID_PRIME_MIN_BITS="30",
                     GRID_PRIME_MAX_BITS="34", GRID_WORK_BUDGET="5")
    chaos.start("collector")
    first = chaos.start("supervisor", "--fleet", "local", name="supervisor-0")
    producer = chaos.start("producer", "--count", str(tasks), "--rate", str(tasks / 10), "--seed", "4", "--job", "cs")
    old = wait_for_roles("the first supervisor's workers", lambda: children(first.pid, "grid-worker"), chaos)
    wait_for_roles("results flowing", lambda: stored(chaos) > 0, chaos)
    chaos.sigkill("supervisor-0")
    killed_at = time.monotonic()
    wait_for_roles("the old workers gone (they drain when their supervisor dies)",
             lambda: not any(alive(pid) for pid in old), chaos)
    drained_in = time.monotonic() - killed_at
    second = chaos.start("supervisor", "--fleet", "local", name="supervisor-1")
    new = wait_for_roles("the new supervisor's workers", lambda: children(second.pid, "grid-worker"), chaos)
    wait_for_roles(f"{tasks} results stored", lambda: stored(chaos) >= tasks and producer.poll() == 0, chaos)
    wait_for_roles("the new fleet back at zero", lambda: not children(second.pid, "grid-worker"), chaos)
    codes = chaos.stop()
    check_results(chaos, "cs", tasks)
    assert codes == {"collector": 0, "supervisor-1": 0, "producer": 0}
    assert not old & new
    report(capsys, f"supervisor SIGKILLed with {len(old)} local workers: they drained and left in {drained_in:.1f} s "
                   f"(no orphan); its successor started {len(new)}+ workers and finished {tasks} tasks")



def test_a_supervisor_restarted_on_an_auto_scaling_group_continues_from_its_desired_capacity(chaos, moto_server_url,
                                                                                               capsys):
    group = f"chaos-{uuid.uuid4().hex[:8]}"
    autoscaling = boto3.client("autoscaling", endpoint_url=moto_server_url)
    boto3.client("ec2", endpoint_url=moto_server_url).create_launch_template(
        LaunchTemplateName=group, LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "c5.large"})
    autoscaling.create_auto_scaling_group(AutoScalingGroupName=group, MinSize=0, MaxSize=2, DesiredCapacity=0,
                                          LaunchTemplate={"LaunchTemplateName": group},
                                          AvailabilityZones=["us-east-1a"])
    chaos.env.update(GRID_METRIC_INTERVAL="1", GRID_MIN_WORKERS="0", GRID_MAX_WORKERS="2",
                     GRID_SCALE_IN_COOLDOWN="2", GRID_BACKLOG_PER_INSTANCE="20", GRID_SCALE_MODE="direct",
                     GRID_WORKER_ASG_NAME=group, GRID_SUPERVISOR_ASG_NAME=f"{group}-supervisors",
                     GRID_LOG_LEVEL="DEBUG")

    def desired() -> int:
        return autoscaling.describe_auto_scaling_groups(
            AutoScalingGroupNames=[group])["AutoScalingGroups"][0]["DesiredCapacity"]

    assert grid_command(chaos, "submit", *map(str, range(2, 102)), "--job", "ca").returncode == 0
    chaos.start("supervisor", "--fleet", "asg", name="supervisor-0")
    wait_for_roles("the group scaled out to 2", lambda: desired() == 2, chaos)
    chaos.sigkill("supervisor-0")
    chaos.start("supervisor", "--fleet", "asg", name="supervisor-1")
    steps = wait_for_roles("three steps of the new supervisor", lambda: len(re.findall(
        r"fleet \d+/(\d+) in service, desired (\d+)", chaos.log("supervisor-1"))) >= 3 and re.findall(
        r"fleet \d+/(\d+) in service, desired (\d+)", chaos.log("supervisor-1")), chaos)
    assert all(step == ("2", "2") for step in steps), steps  # it read the group's 2 and kept it: the backlog needs it
    chaos.start("worker")  # the backlog goes: scaling resumes, down to zero
    wait_for_roles("the group back at zero", lambda: desired() == 0, chaos)
    codes = chaos.stop()
    assert codes == {"supervisor-1": 0, "worker": 0}
    report(capsys, f"supervisor SIGKILLed on an Auto Scaling group at desired 2: its successor read 2 from the group "
                   f"at its first step ({len(steps)} steps at 2), then scaled in to 0 once the backlog was done")


def test_the_embedded_queue_on_a_full_file_system_one_clear_error_no_corruption_and_the_grid_resumes(tmp_path,
                                                                                                  capsys):
    tasks = 4000 if LONG else 1000
    path = tmp_path / "grid.db"
    env = {**os.environ, **SETTINGS, "GRID_BROKER_URL": f"sqlite://{path}", "GRID_RESULT_STORE": str(tmp_path / "r.db"),
           "GRID_TASKS_PER_MESSAGE": "1", "GRID_PRIME_MIN_BITS": "20", "GRID_PRIME_MAX_BITS": "24"}
    grid = Grid(env=env, logs=str(tmp_path))
    try:
        with open_broker(env["GRID_BROKER_URL"]) as broker:
            broker.queue("grid_tasks_queue", create=True)
        room = path.stat().st_size + 100_000  # the producer may write files this large: its file system is full then
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        producer = grid.start("producer", "--count", str(tasks), "--seed", "8", "--job", "cf",
                              preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (room, hard)))
        wait_for_roles("the producer meets the full file system", lambda: " - ERROR - " in grid.log("producer"), grid)
        time.sleep(3)  # it retries with backoff meanwhile, without a line per retry
        resource.prlimit(producer.pid, resource.RLIMIT_FSIZE, (hard, hard))  # space is back
        grid.start("worker")
        grid.start("collector")
        wait_for_roles(f"{tasks} results stored", lambda: stored(grid) >= tasks and producer.poll() == 0, grid)
        codes = grid.stop()
    finally:
        grid.kill()
    check_results(grid, "cf", tasks)
    assert codes == {"producer": 0, "worker": 0, "collector": 0}
    log = grid.log("producer")
    errors = [line for line in log.splitlines() if " - ERROR - " in line]
    assert len(errors) == 1 and "the file cannot be written: is its file system full" in errors[0], errors
    assert "recovered after" in log
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    report(capsys, f"embedded queue, the producer's file system full: one error line ({errors[0].split('grid.db: ', 1)[-1][:90]}"
                   f"...), none per retry; {tasks} tasks stored once after space came back, integrity_check ok")
