"""The whole grid as real processes: producer, supervisor (with its fleet of workers), collector.

(a) the embedded queue with a ProcessFleet and a SQLite result store; (b) the grid as on AWS, against moto's HTTP
server reached only through AWS_ENDPOINT_URL: SQS (a plain sqs:// broker), an AsgFleet on moto's Auto Scaling, where
the test plays EC2 (it runs one real worker process per instance the group wants), and the result store in S3. Every
task must get exactly one stored, correct result (checked with sympy), and the fleet must scale out, then back to
zero.
"""
from __future__ import annotations

import math
import os
import signal
import uuid

import boto3
import pytest
import sympy

from grid.fleet.processes import ProcessFleet, worker_command
from grid.metrics import CLOUDWATCH_METRICS, CLOUDWATCH_NAMESPACE
from grid.queues import open_broker
from grid.daemons.supervisor import read_status, status_path
from grid.store import open_store
from helpers import Grid, stored_count, wait_for_roles

SETTINGS = {
    "GRID_STATSD_HOST": "",
    "GRID_LOG_FILENAME": "-",
    "GRID_LOG_LEVEL": "INFO",
    "GRID_QUEUE_POLLING_WAIT_TIME": "1",
    "GRID_CONCURRENCY": "1",
    "GRID_METRIC_INTERVAL": "1",
    "GRID_MIN_WORKERS": "0",
    "GRID_SCALE_IN_COOLDOWN": "1",
    "GRID_MAX_WORKERS": "2",
    "GRID_SCALE_MODE": "direct",
}


def check_results(location: str, job: str, count: int) -> float:
    """Every task of `job` has exactly one correct result; returns the run's tasks per second."""
    with open_store(location, create=False) as store:
        results = list(store.results(job))
    assert store_counts_ok(location, job) == count
    assert sorted(r.task_id for r in results) == sorted(f"{job}-{i}" for i in range(1, count + 1))
    for r in results:
        assert r.ok, r
        assert math.prod(r.factors) == int(r.n) and all(sympy.isprime(f) for f in r.factors), r
        assert list(r.factors) == sorted(r.factors) and len(r.factors) == 2
    span = max(r.completed_at for r in results) - min(r.submitted_at for r in results)
    return count / span


def store_counts_ok(location: str, job: str) -> int:
    with open_store(location, create=False) as store:
        counts = store.counts(job)
    assert counts.errors == 0, counts
    return counts.ok


@pytest.fixture
def grid_run(tmp_path):
    grid = Grid(env={**os.environ, **SETTINGS, "PYTHONUNBUFFERED": "1"}, logs=str(tmp_path))
    yield grid
    grid.kill()


def test_embedded_grid_answers_every_task_once_and_scales_out_then_to_zero(grid_run, tmp_path, capsys):
    url, store = f"sqlite://{tmp_path}/grid.db", str(tmp_path / "results.db")
    grid_run.env.update(GRID_BROKER_URL=url, GRID_RESULT_STORE=store, GRID_BACKLOG_PER_INSTANCE="200")
    grid_run.start("supervisor", "--fleet", "local")
    grid_run.start("collector")
    producer = grid_run.start("producer", "--count", "2000", "--seed", "7", "--job", "it-a")
    seen = []

    def observe():
        obs = read_status(status_path(url))
        if obs is not None and (not seen or obs != seen[-1]):
            seen.append(obs)
        return obs

    wait_for_roles("the producer sends 2000 tasks", lambda: observe() and producer.poll() == 0, grid_run)
    wait_for_roles("2000 results stored", lambda: observe() and stored_count(store) >= 2000, grid_run)
    wait_for_roles("the fleet back at zero", lambda: (o := observe()) and o.desired == 0 and o.fleet.running == 0,
             grid_run)
    codes = grid_run.stop()
    tps = check_results(store, "it-a", 2000)
    assert codes == {"supervisor": 0, "collector": 0, "producer": 0}
    # scaled out from zero, then back: how far out depends on the backlog a step happens to see (a step in the
    # middle of production may start one worker that keeps the backlog below two workers' worth); the policy's
    # sizes are tested in test_fleet.py
    assert 1 <= max(o.desired for o in seen) <= 2 and max(o.fleet.in_service for o in seen) >= 1
    assert seen[-1].total_backlog == 0
    assert "started worker pid" in grid_run.log("supervisor") and "stopping worker pid" in grid_run.log("supervisor")
    with capsys.disabled():
        print(f"\nembedded grid: 2000 tasks, {tps:.0f} tasks/s from first submit to last result")


def test_workers_sigkilled_mid_batch_lose_nothing_every_task_stored_once_and_correct(grid_run, tmp_path):
    url, store = f"sqlite://{tmp_path}/grid.db", str(tmp_path / "results.db")
    # bundles of 50 tasks of two 36-40-bit primes: a receive holds hundreds of tasks, each a little work, so a kill
    # lands inside a batch; a short visibility timeout brings the killed workers' messages back soon
    grid_run.env.update(GRID_BROKER_URL=url, GRID_RESULT_STORE=store, GRID_VISIBILITY_TIMEOUT="2",
                        GRID_MAX_RECEIVE_COUNT="20", GRID_TASKS_PER_MESSAGE="50", GRID_PRIME_MIN_BITS="36",
                        GRID_PRIME_MAX_BITS="40")
    grid_run.start("collector")
    grid_run.start("producer", "--count", "12000", "--seed", "5", "--job", "it-k")
    kills = []
    for round_ in range(4):
        workers = [f"worker-{round_}-{i}" for i in range(2)]
        for name in workers:
            grid_run.start("worker", name=name)
        before = stored_count(store)
        wait_for_roles("a worker's batch in hand", lambda: stored_count(store) > before and in_flight(url) > 0,
                       grid_run)
        for name in workers:
            grid_run.sigkill(name)
        kills.append((stored_count(store), in_flight(url)))
    grid_run.start("worker", name="worker-last")
    wait_for_roles("12000 results stored", lambda: stored_count(store) >= 12000, grid_run)
    codes = grid_run.stop()
    check_results(store, "it-k", 12000)
    assert codes == {"collector": 0, "producer": 0, "worker-last": 0}
    assert list(grid_run.killed.values()) == [-signal.SIGKILL] * 8
    assert all(0 < stored < 12000 and held > 0 for stored, held in kills), kills


def in_flight(url: str) -> int:
    with open_broker(url) as broker:
        return broker.open_queue("grid_tasks_queue").counts().in_flight


@pytest.fixture
def moto_grid(aws_env, moto_server_url, grid_run, monkeypatch):
    url, aws = "sqs://", {"AWS_ENDPOINT_URL": moto_server_url, "AWS_ENV": f"it{uuid.uuid4().hex[:8]}"}
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    clients = {s: boto3.client(s) for s in ("ec2", "autoscaling", "cloudwatch", "s3")}
    clients["s3"].create_bucket(Bucket=aws["AWS_ENV"])
    clients["ec2"].create_launch_template(
        LaunchTemplateName="grid-worker", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "c5.large"})
    clients["autoscaling"].create_auto_scaling_group(
        AutoScalingGroupName="grid-workers", MinSize=0, MaxSize=2, DesiredCapacity=0,
        LaunchTemplate={"LaunchTemplateName": "grid-worker"}, AvailabilityZones=["us-east-1a"])
    with open_broker(url) as broker:
        for name in ("it-tasks", "it-results"):
            broker.queue(name, create=True)
    grid_run.env.update(aws, GRID_BROKER_URL=url, GRID_TASKS_QUEUE_NAME="it-tasks",
                        GRID_RESULTS_QUEUE_NAME="it-results", GRID_WORKER_ASG_NAME="grid-workers",
                        GRID_SUPERVISOR_ASG_NAME="grid-supervisors", GRID_BACKLOG_PER_INSTANCE="20",
                        GRID_RESULT_STORE=f"s3://{aws['AWS_ENV']}/results")
    return grid_run, url, clients


def test_moto_grid_sizes_the_auto_scaling_group_and_answers_every_task_once(moto_grid):
    grid, url, clients = moto_grid
    store = grid.env["GRID_RESULT_STORE"]
    ec2 = ProcessFleet(worker_command(url), env=grid.env, name="instances")  # the test plays EC2
    desired_seen = []

    def follow_the_group():
        group = clients["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=["grid-workers"])
        desired = group["AutoScalingGroups"][0]["DesiredCapacity"]
        if not desired_seen or desired_seen[-1] != desired:
            desired_seen.append(desired)
        ec2.set_desired(desired)
        return desired

    try:
        grid.start("supervisor", "--fleet", "asg")
        grid.start("collector")
        producer = grid.start("producer", "--count", "200", "--seed", "11", "--job", "it-b")
        wait_for_roles("200 results stored", lambda: follow_the_group() is not None and stored_count(store) >= 200,
                       grid)
        wait_for_roles("the group back at zero", lambda: follow_the_group() == 0 and ec2.size().running == 0, grid)
    finally:
        ec2.close()
    codes = grid.stop()
    check_results(store, "it-b", 200)
    assert codes == {"supervisor": 0, "collector": 0, "producer": 0} and producer.returncode == 0
    assert max(desired_seen) == 2 and desired_seen[-1] == 0
    assert ec2.started >= 1
    names = {m["MetricName"] for m in clients["cloudwatch"].list_metrics(Namespace=CLOUDWATCH_NAMESPACE)["Metrics"]}
    assert names == set(CLOUDWATCH_METRICS)
