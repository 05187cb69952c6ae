"""The supervisor's step on the embedded queue (local processes) and on moto (Auto Scaling, CloudWatch)."""
import dataclasses
import datetime
import logging
import os
import signal
import socket
import sys
import threading
import time

import boto3
import pytest
from botocore.config import Config as BotoConfig
from moto import mock_aws

from grid import config
from grid.fleet import Fleet, FleetError, FleetSize
from grid.fleet.asg import AsgFleet
from grid.fleet.processes import ProcessFleet
from grid.metrics import CLOUDWATCH_DIMENSION, CLOUDWATCH_METRICS, CLOUDWATCH_NAMESPACE, Metrics
from grid.metrics import metrics as registry_metrics
from grid.queues import SendEntry, open_broker
from grid.daemons.supervisor import CloudWatchPublisher, Supervisor, main, read_status, status_path

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)"]


def supervisor_config(broker_url, **flags):
    base = {"broker_url": broker_url, "backlog_per_instance": 10, "min_workers": 0, "max_workers": 4,
            "metric_interval": 1, "statsd_host": "", "tasks_queue_name": "tasks", "scale_in_cooldown": 0}
    return config.load("supervisor", flags={**base, **flags}, environ={})


def fill(queue, count):
    for start in range(0, count, 10):
        queue.send_batch([SendEntry(str(i), f"task {i}") for i in range(start, min(start + 10, count))])


def make(cfg, broker, fleet, publisher=None, status=None):
    supervisor = Supervisor(cfg, broker, Metrics("supervisor"), fleet=fleet, publisher=publisher, status_path=status)
    supervisor.setup()
    return supervisor


@pytest.fixture
def embedded(sqlite_url):
    with open_broker(sqlite_url) as broker:
        yield supervisor_config(sqlite_url), broker


def test_local_fleet_scales_out_from_zero_holds_while_work_is_in_flight_then_goes_to_zero(embedded):
    cfg, broker = embedded
    fleet = ProcessFleet(SLEEPER, stop_timeout=5)
    supervisor = make(cfg, broker, fleet)
    try:
        tasks = broker.queue("tasks")
        fill(tasks, 25)
        assert supervisor.step().desired == 3 and fleet.size() == FleetSize(3, 3, 3)
        in_work = tasks.receive(10, visibility_timeout=60) + tasks.receive(10, visibility_timeout=60)
        rest = tasks.receive(10, visibility_timeout=60)
        tasks.delete_batch([m.receipt for m in rest])
        obs = supervisor.step()
        assert (obs.backlog, obs.in_flight, obs.desired) == (0, 20, 2)
        tasks.delete_batch([m.receipt for m in in_work[:10]])
        assert supervisor.step().desired == 1
        tasks.delete_batch([m.receipt for m in in_work[10:]])
        assert supervisor.step().desired == 0 and fleet.size().in_service == 0
    finally:
        supervisor.teardown()
    assert fleet.size().running == 0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stepper(supervisor):
    """Steps of the supervisor at given seconds of its clock; each returns the desired size."""
    clock = supervisor.clock = Clock()

    def step_at(seconds: float) -> int:
        clock.now = 1000.0 + seconds
        return supervisor.step().desired

    return step_at


def consume(queue, count):
    """Tasks sent and done between two steps: the snapshot at the next step sees nothing of them."""
    fill(queue, count)
    while messages := queue.receive(10, visibility_timeout=60):
        queue.delete_batch([m.receipt for m in messages])


def test_below_capacity_the_last_worker_stays_until_the_queue_was_idle_for_the_cooldown(sqlite_url):
    with open_broker(sqlite_url) as broker:
        fleet = ProcessFleet(SLEEPER, stop_timeout=5)
        supervisor = make(supervisor_config(sqlite_url, scale_in_cooldown=10), broker, fleet)
        step_at, tasks = stepper(supervisor), broker.queue("tasks")
        try:
            fill(tasks, 3)
            assert step_at(0) == 1
            consume(tasks, 0)
            assert step_at(1) == 1  # the 3 tasks were received since the last step
            consume(tasks, 2)
            assert step_at(8) == 1 and supervisor.last.idle_seconds == 0  # sent and done between two steps
            assert step_at(17) == 1 and supervisor.last.idle_seconds == 9
            assert step_at(18) == 0
        finally:
            supervisor.teardown()
        assert fleet.started == 1  # never stopped and restarted in between


def test_a_steps_time_is_its_start_so_a_slow_read_at_an_earlier_step_does_not_hold_scale_in_a_step_longer(
        sqlite_url):
    with open_broker(sqlite_url) as broker:
        fleet = ProcessFleet(SLEEPER, stop_timeout=5)
        supervisor = make(supervisor_config(sqlite_url, scale_in_cooldown=10), broker, fleet)
        step_at, tasks = stepper(supervisor), broker.queue("tasks")
        read, slow = supervisor.tasks.counts, {"seconds": 0.0}

        def counts():  # a read that takes `slow` seconds of the supervisor's clock
            answer = read()
            supervisor.clock.now += slow["seconds"]
            return answer

        supervisor.tasks.counts = counts
        try:
            fill(tasks, 3)
            assert step_at(0) == 1
            consume(tasks, 0)
            slow["seconds"] = 3.0
            assert step_at(5) == 1  # the queue seen empty, after 3 s of reading; in use at the step before
            slow["seconds"] = 0.0
            assert step_at(15) == 0  # idle since the step at 5: the cooldown is over
        finally:
            supervisor.teardown()


def test_on_sqs_only_messages_seen_at_a_step_count_as_use(aws):
    cfg = supervisor_config("sqs://?region=us-east-1", scale_mode="direct", worker_asg_name="grid-workers",
                            scale_in_cooldown=10)
    fleet = AsgFleet("grid-workers", client=boto3.client("autoscaling"), mode="direct")
    supervisor = make(cfg, aws, fleet)
    step_at, tasks = stepper(supervisor), aws.queue("tasks")
    fill(tasks, 3)
    assert step_at(0) == 1
    tasks.purge()
    assert step_at(1) == 1 and step_at(10) == 1
    assert tasks.counts().sent_total is None and step_at(11) == 0


def test_a_passing_backlog_does_not_start_and_stop_workers_at_every_step(embedded):
    cfg, broker = embedded
    fleet = ProcessFleet(SLEEPER, stop_timeout=5)
    supervisor = make(supervisor_config(cfg.broker_url, scale_in_cooldown=10), broker, fleet)
    step_at, tasks = stepper(supervisor), broker.queue("tasks")
    try:
        fill(tasks, 35)
        assert step_at(0) == 4
        consume(tasks, 0)
        assert step_at(1) == 4
        fill(tasks, 15)
        assert step_at(5) == 4
        consume(tasks, 0)
        assert [step_at(t) for t in (6, 10, 11, 16, 17)] == [4, 4, 2, 1, 0]
    finally:
        supervisor.teardown()
    assert fleet.started == 4


class MemoryFleet(Fleet):
    name = "memory"

    def __init__(self, fail: bool = False):
        self.desired, self.fail = 0, fail

    def size(self) -> FleetSize:
        return FleetSize(self.desired, self.desired, self.desired)

    def set_desired(self, count: int) -> None:
        if self.fail and count:
            raise FleetError("the fleet is unreachable")
        self.desired = count


class Arriving:
    """The tasks queue, whose tasks arrive in bursts at given backlog reads (1: the first step's)."""

    def __init__(self, queue, bursts: dict[int, int]):
        self.queue, self.bursts, self.reads = queue, bursts, 0

    def counts(self):
        self.reads += 1
        fill(self.queue, self.bursts.get(self.reads, 0))
        return self.queue.counts()


def run_until_stepped(supervisor, steps: int) -> list[int]:
    """run_once until `steps` steps are done; a step due only at the next metric_interval (an hour) ends the wait."""
    guard = threading.Timer(30, supervisor.request_stop)
    guard.start()
    try:
        while len(supervisor.history) < steps and supervisor.run_once():
            pass
    finally:
        guard.cancel()
    return [obs.desired for obs in supervisor.history]


def test_below_max_workers_a_step_follows_the_backlog_long_before_the_metric_interval(embedded):
    cfg, broker = embedded
    fast = supervisor_config(cfg.broker_url, metric_interval=3600, scale_out_poll_interval=0.01)
    supervisor = make(fast, broker, MemoryFleet())
    supervisor.tasks = arriving = Arriving(broker.queue("tasks"), {4: 5, 7: 10, 9: 30})
    assert run_until_stepped(supervisor, 4) == [0, 1, 2, 4]  # from zero at the first task, then as the backlog grew
    # The step decides on the read that saw the backlog grow (reads 4, 7, 9), not on a read of its own: a round trip
    # sooner. At max_workers: no reads until the step.
    assert arriving.reads == 9 and supervisor.scale_out_poll() is None


def test_backlog_reads_come_every_poll_interval_from_the_start_of_the_last_not_after_its_round_trip(embedded):
    """On SQS a read takes a round trip: the interval counts it, so a tasks' arrival is seen that much sooner."""
    cfg, broker = embedded
    fast = supervisor_config(cfg.broker_url, metric_interval=3600, scale_out_poll_interval=0.02)
    supervisor = make(fast, broker, MemoryFleet())
    starts, wakes = [], []

    class Slow(Arriving):
        def counts(self):
            starts.append(time.monotonic())
            time.sleep(0.03)  # longer than the interval
            return super().counts()

    supervisor.tasks = Slow(broker.queue("tasks"), {5: 5})
    sleep_until = supervisor.sleep_until
    supervisor.sleep_until = lambda wake: (wakes.append(wake), sleep_until(wake))
    assert run_until_stepped(supervisor, 2) == [0, 1]
    polls = starts[1:4]  # the reads between the steps that found no task; the fifth saw them
    assert len(wakes) >= 4 and all(start <= wake <= start + 0.02 for start, wake in zip(polls, wakes[1:4]))


def test_steps_come_every_metric_interval_from_the_start_of_the_last_not_after_its_calls(embedded):
    """A step's calls take a while on SQS and Auto Scaling: the interval counts them, or each step would drift later
    by its own calls' time (and a scale-in, cooldown and halvings later, with it)."""
    cfg, broker = embedded
    every = supervisor_config(cfg.broker_url, metric_interval=1, max_workers=0, min_workers=0)
    supervisor = make(every, broker, MemoryFleet())
    starts, wakes = [], []

    class Slow(Arriving):
        def counts(self):
            starts.append(time.monotonic())
            time.sleep(0.3)
            return super().counts()

    supervisor.tasks = Slow(broker.queue("tasks"), {})
    sleep_until = supervisor.sleep_until
    supervisor.sleep_until = lambda wake: (wakes.append(wake), sleep_until(wake))
    assert run_until_stepped(supervisor, 2) == [0, 0]
    assert starts[0] < wakes[1] <= starts[0] + 1.0  # not the step's end + 1 s: at least starts[0] + 1.3


def test_scale_out_polling_is_off_when_it_is_not_sooner_than_the_metric_interval_or_nothing_can_grow(embedded):
    cfg, broker = embedded
    for flags in ({"scale_out_poll_interval": 1.0, "metric_interval": 1}, {"max_workers": 0, "min_workers": 0}):
        supervisor = make(supervisor_config(cfg.broker_url, **flags), broker, MemoryFleet())
        assert supervisor.scale_out_poll() is None and supervisor.step().desired == 0
        assert supervisor.scale_out_poll() is None


def test_a_failed_scale_out_waits_for_its_backoff_not_for_the_next_backlog_read(embedded, caplog):
    cfg, broker = embedded
    fast = supervisor_config(cfg.broker_url, metric_interval=3600, scale_out_poll_interval=0.01)
    supervisor = make(fast, broker, MemoryFleet(fail=True))
    supervisor.tasks = Arriving(broker.queue("tasks"), {2: 5})
    assert supervisor.run_once() and supervisor.scale_out_poll() == 0.01
    with caplog.at_level(logging.ERROR):
        assert supervisor.run_once()
    assert "the fleet is unreachable; retrying in 1.0 s" in caplog.text
    assert supervisor.scale_out_poll() is None and supervisor.next_step_in > 0.5  # its backoff: 1 s


def test_the_step_is_recorded_for_grid_status(embedded, tmp_path):
    cfg, broker = embedded
    path = status_path(cfg.broker_url)
    supervisor = make(cfg, broker, ProcessFleet(SLEEPER, stop_timeout=5), status=path)
    try:
        fill(broker.queue("tasks"), 7)
        obs = supervisor.step()
    finally:
        supervisor.teardown()
    assert path == str(tmp_path / "supervisor-status.json")
    assert obs.desired == 1 and obs.backlog_per_instance == 7.0 and obs.fleet.running == 0  # before the decision
    recorded = read_status(path)  # after it: the worker it started
    assert recorded == dataclasses.replace(obs, fleet=recorded.fleet) and recorded.fleet.running == 1


def test_status_path_is_only_for_the_embedded_queue():
    assert status_path("sqs://?region=us-east-1") is None
    assert status_path("sqlite:///var/lib/grid/grid.db") == "/var/lib/grid/supervisor-status.json"


@pytest.fixture
def aws(aws_env):
    with mock_aws():
        boto3.client("ec2").create_launch_template(
            LaunchTemplateName="grid-worker", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})
        boto3.client("autoscaling").create_auto_scaling_group(
            AutoScalingGroupName="grid-workers", MinSize=0, MaxSize=4, DesiredCapacity=0,
            LaunchTemplate={"LaunchTemplateName": "grid-worker"}, AvailabilityZones=["us-east-1a"])
        with open_broker("sqs://?region=us-east-1") as broker:
            broker.queue("tasks", create=True)
            yield broker


def published(name):
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=CLOUDWATCH_NAMESPACE, MetricName=name, Period=60, Statistics=["Maximum"],
        Dimensions=[{"Name": CLOUDWATCH_DIMENSION, "Value": "grid-supervisors"}],
        StartTime=datetime.datetime(2000, 1, 1), EndTime=datetime.datetime(2100, 1, 1))
    return sorted(p["Maximum"] for p in stats["Datapoints"])


def test_direct_mode_sizes_the_auto_scaling_group_and_publishes_the_originals_metrics(aws):
    cfg = supervisor_config("sqs://?region=us-east-1", scale_mode="direct", worker_asg_name="grid-workers")
    fleet = AsgFleet("grid-workers", client=boto3.client("autoscaling"), mode="direct")
    publisher = CloudWatchPublisher(boto3.client("cloudwatch"), "grid-supervisors")
    supervisor = make(cfg, aws, fleet, publisher)
    fill(aws.queue("tasks"), 35)
    assert supervisor.step().desired == 4
    assert fleet.size() == FleetSize(4, 4, 4)
    aws.queue("tasks").purge()
    assert supervisor.step().desired == 2
    assert {m["MetricName"] for m in boto3.client("cloudwatch").list_metrics(
        Namespace=CLOUDWATCH_NAMESPACE)["Metrics"]} == set(CLOUDWATCH_METRICS)
    assert published("total_backlog_count")[-1] == 35.0
    assert published("backlog_per_instance")[-1] == 35.0  # no instance in service yet: the whole backlog
    assert published("desired_instances_count")[-1] == 4.0  # the group's DesiredCapacity, as the original read it


def test_target_mode_leaves_sizing_to_target_tracking_once_a_worker_runs(aws):
    cfg = supervisor_config("sqs://?region=us-east-1", worker_asg_name="grid-workers")
    fleet = AsgFleet("grid-workers", client=boto3.client("autoscaling"), mode="target")
    supervisor = make(cfg, aws, fleet)
    fill(aws.queue("tasks"), 15)
    supervisor.step()
    assert fleet.size().desired == 2
    fill(aws.queue("tasks"), 30)
    supervisor.step()
    assert fleet.size().desired == 2


def test_a_transient_aws_error_is_logged_and_retried_not_fatal(aws, caplog):
    cfg = supervisor_config("sqs://?region=us-east-1", scale_mode="direct")
    unreachable = boto3.client("autoscaling", endpoint_url="http://127.0.0.1:9",
                               config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=1))
    supervisor = make(cfg, aws, AsgFleet("grid-workers", client=unreachable, mode="direct"))
    with caplog.at_level(logging.DEBUG, logger="grid.supervisor"):
        assert supervisor.run_once() is True
        assert supervisor.run_once() is True
    assert supervisor.last is None
    retries = [(r.levelno, r.getMessage()) for r in caplog.records if "retrying in" in r.getMessage()]
    assert [level for level, _ in retries] == [logging.ERROR, logging.DEBUG]  # one outage: one error line
    assert retries[-1][1].endswith("retrying in 2.0 s")
    assert supervisor.next_step_in > 1.0  # its backoff, doubled: 2 s
    supervisor.fleet = AsgFleet("grid-workers", client=boto3.client("autoscaling"), mode="direct")
    fill(aws.queue("tasks"), 5)
    assert supervisor.step().desired == 1 and supervisor.last.desired == 1  # the next step, without the wait


def test_a_missing_group_stops_the_supervisor_with_one_line_and_exit_2(aws, capsys, root_logger):
    code = main(["--broker-url", "sqs://?region=us-east-1", "--tasks-queue-name", "tasks", "--worker-asg-name", "nope",
                 "--fleet", "asg", "--statsd-host", "", "--log-filename", "-", "--max-seconds", "5"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("grid supervisor: error: worker_asg_name='nope': no such Auto Scaling group in this account "
                       "and region")


def test_after_a_second_signal_the_supervisor_leaves_without_waiting_for_workers(embedded, tmp_path):
    cfg, broker = embedded
    stubborn = ("import pathlib, signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "pathlib.Path(sys.argv[1]).touch()\nwhile True: time.sleep(0.05)")
    fleet = ProcessFleet([sys.executable, "-c", stubborn, str(tmp_path / "ready")], stop_timeout=600)
    supervisor = make(cfg, broker, fleet)
    fill(broker.queue("tasks"), 5)
    supervisor.step()
    while not (tmp_path / "ready").exists():
        time.sleep(0.01)
    [pid] = fleet.pids
    supervisor.forced = True
    supervisor.teardown()
    assert fleet.size() == FleetSize(0, 1, 0)
    os.kill(pid, signal.SIGKILL)
    fleet.close()
    assert fleet.exits == [-signal.SIGKILL]


def statsd_names(sock, expected):
    names = set()
    while not expected <= names:
        names |= {line.split(":", 1)[0] for line in sock.recv(65536).decode().splitlines()}
    return names


def test_the_supervisor_emits_the_registrys_metrics_over_statsd(embedded):
    cfg, broker = embedded
    unreachable = boto3.client("autoscaling", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                               aws_access_key_id="x", aws_secret_access_key="x",
                               config=BotoConfig(retries={"max_attempts": 1}, connect_timeout=1))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(10)
        statsd = Metrics("supervisor", "sup_", "127.0.0.1", sock.getsockname()[1])
        supervisor = Supervisor(cfg, broker, statsd, fleet=AsgFleet("g", client=unreachable, mode="direct"))
        supervisor.setup()
        supervisor.run_once()
        supervisor.fleet = ProcessFleet(SLEEPER, stop_timeout=5)
        try:
            supervisor.step()  # the next step, without waiting for the backoff
        finally:
            supervisor.teardown()
        statsd.flush()
        expected = {"sup_" + m.name for m in registry_metrics("supervisor")}
        assert statsd_names(sock, expected) == expected
