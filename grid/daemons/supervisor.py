"""The supervisor: every metric_interval, read the backlog and the fleet, publish the scaling metrics, size the fleet.

Scale-out does not wait for the next metric_interval: while the fleet is below max_workers, the supervisor reads the
backlog every scale_out_poll_interval and steps as soon as it needs more workers than the last step asked for (from
zero: as soon as the first task arrives). Each such step scales out, so the reads never turn into a busy loop.

The backlog counts tasks waiting and tasks in work (the AWS "backlog per instance" pattern with in-flight work
included), so scale-in never sees an empty queue while tasks are still computing. Scale-in waits
scale_in_cooldown seconds: the fleet keeps the most workers needed during that time, and its last worker stops only
once the queue has been idle that long (no message waiting, in work, or sent since the previous step: the embedded
queue's sent_total sees tasks that came and went between two steps). One pure policy
(`grid.fleet.policy.desired_workers`) sizes both fleets. A transient queue, Auto Scaling or CloudWatch error is logged,
counted and retried with backoff; the supervisor keeps running.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass

from grid import aws, config
from grid import metrics as names
from grid.errors import QueueError
from grid.daemons import lifecycle, worker
from grid.fleet import Fleet, FleetError, FleetSize
from grid.fleet.asg import AsgFleet
from grid.fleet.policy import (Activity, NeedWindow, backlog_per_instance, desired_workers, observe_activity,
                               workers_needed)
from grid.fleet.processes import ProcessFleet, worker_argv, worker_command
from grid.fleet.zygote import Zygote, make_zygote
from grid.queues.base import QueueCounts
from grid.queues.url import broker_region, parse_broker_url

FLEETS = ("auto", "asg", "local")  # auto: an Auto Scaling group on SQS, local worker processes on the embedded queue
DRAIN_MARGIN = 10.0  # seconds a stopped worker gets beyond its task's work budget before SIGKILL
SPARE_WORKERS = 2  # local worker processes forked ahead at most: the first of a scale-out start at once
STATUS_FILE = "supervisor-status.json"  # next to the embedded queue's database: what `grid status` shows


@dataclass(frozen=True)
class Observation:
    """One supervisor step: what it saw and what it decided."""

    at: float  # epoch seconds
    backlog: int  # visible tasks
    in_flight: int
    fleet: FleetSize  # as read before this step's decision
    desired: int  # what this step asked the fleet for
    backlog_per_instance: float
    fleet_name: str = ""
    idle_seconds: float | None = None  # since the queue was last in use; None: not since the supervisor started

    @property
    def total_backlog(self) -> int:
        return self.backlog + self.in_flight


class CloudWatchPublisher:
    """Puts the supervisor's metrics into CloudWatch, as the original did (Count, 1-second resolution)."""

    def __init__(self, client, dimension_value: str):
        self._client = client
        self._dimensions = [{"Name": names.CLOUDWATCH_DIMENSION, "Value": dimension_value}]

    def publish(self, obs: Observation) -> None:
        values = {
            names.BACKLOG_PER_INSTANCE: obs.backlog_per_instance,
            names.DESIRED_INSTANCES_COUNT: obs.fleet.desired,
            names.ALL_INSTANCES_COUNT: obs.fleet.running,
            names.TOTAL_BACKLOG_COUNT: obs.total_backlog,
        }
        data = [{"MetricName": name, "Dimensions": self._dimensions, "Value": float(value), "Unit": "Count",
                 "StorageResolution": 1} for name, value in values.items()]
        from botocore.exceptions import BotoCoreError, ClientError  # here: a local supervisor never loads botocore

        try:
            self._client.put_metric_data(Namespace=names.CLOUDWATCH_NAMESPACE, MetricData=data)
        except (ClientError, BotoCoreError) as e:
            raise FleetError(f"CloudWatch put_metric_data to {names.CLOUDWATCH_NAMESPACE} failed: {e}") from e


class Supervisor(lifecycle.Daemon):
    """Watch the tasks queue and size the worker fleet."""

    role = "supervisor"

    def __init__(self, cfg, broker, metrics, *, fleet: Fleet | None = None, publisher=None,
                 status_path: str | None = None):
        super().__init__(cfg, broker, metrics)
        self.fleet = fleet
        self.publisher = publisher
        self.status_path = status_path
        self.zygote: Zygote | None = None  # what starts a local fleet's workers: ended with the fleet
        self.last: Observation | None = None
        self._seen: QueueCounts | None = None  # the backlog read that called the step early: the step decides on it
        self.history: list[Observation] = []
        self.activity: Activity | None = None
        self.needs = NeedWindow(cfg.scale_in_cooldown)
        self.clock = time.monotonic  # of the cooldown; tests step through time with their own
        self._next_step = 0.0
        self._retrying = False  # the last step failed: wait out its backoff, don't read the backlog in between
        self._errors = lifecycle.Outage(self.log, lifecycle.ERROR_MIN, max(lifecycle.ERROR_MAX, cfg.metric_interval))

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--fleet", choices=FLEETS, default="auto",
                            help="what to size: an Auto Scaling group (asg), local worker processes (local), or "
                                 "asg on sqs:// and local on sqlite: (auto, the default)")
        parser.add_argument("--worker-arg", action="append", default=[], metavar="ARG",
                            help="an argument for each local worker process, e.g. --worker-arg=--concurrency=1 "
                                 "(repeatable)")

    @classmethod
    def prefork(cls, cfg, args: argparse.Namespace) -> None:
        """A local fleet on Linux starts its workers from a zygote, forked now, with a spare for each worker of a
        scale-out from zero up to SPARE_WORKERS (see `grid.fleet.zygote`)."""
        spares = min(cfg.max_workers, SPARE_WORKERS)
        args.zygote = make_zygote({"worker": worker.main}, spares=spares) if _local(cfg, args.fleet) else None

    @classmethod
    def from_args(cls, cfg, broker, metrics, args: argparse.Namespace) -> Supervisor:
        zygote = getattr(args, "zygote", None)
        fleet, publisher = build_fleet(cfg, args.fleet, args.worker_arg, zygote)
        supervisor = cls(cfg, broker, metrics, fleet=fleet, publisher=publisher, status_path=status_path(cfg.broker_url))
        supervisor.zygote = zygote
        return supervisor

    def setup(self) -> None:
        self.tasks = self.open_queue(self.cfg.tasks_queue_name)
        if self.fleet is None:
            self.fleet, self.publisher = build_fleet(self.cfg)
        cfg = self.cfg
        self.log.info("supervising %s: fleet %s, %d..%d workers, target %d tasks per worker, every %s s (backlog "
                      "read every %g s below %d workers); scale-in waits %g s", cfg.tasks_queue_name, self.fleet.name,
                      cfg.min_workers, cfg.max_workers, cfg.backlog_per_instance, cfg.metric_interval,
                      min(cfg.scale_out_poll_interval, cfg.metric_interval), cfg.max_workers, cfg.scale_in_cooldown)

    def run_once(self) -> bool:
        self._wait_for_step()
        if self.stopping:
            return False
        began = time.monotonic()
        try:
            self.step()
            self._errors.recovered()
            # every metric_interval from the step's start: on SQS and Auto Scaling a step's calls take a while
            self._next_step, self._retrying = began + self.cfg.metric_interval, False
        except (FleetError, QueueError) as e:
            if e.exit_code != 1:
                raise
            self._next_step, self._retrying = time.monotonic() + self._errors.failed(e), True
            self.metrics.incr("errors")
        return True

    @property
    def next_step_in(self) -> float:
        """Seconds until the next step is due (0: it is due now)."""
        return max(0.0, self._next_step - time.monotonic())

    def scale_out_poll(self) -> float | None:
        """Seconds between backlog reads before the next step: while the last step succeeded and left room to scale
        out, and only where that is sooner than metric_interval (None: no read before the step)."""
        cfg, last = self.cfg, self.last
        room = not self._retrying and last is not None and last.desired < cfg.max_workers
        return cfg.scale_out_poll_interval if room and cfg.scale_out_poll_interval < cfg.metric_interval else None

    def _wait_for_step(self) -> None:
        """Until the next step is due, or sooner once the backlog needs more workers than the last step asked for: a
        read every `poll` seconds from the start of the last (on SQS a read's round trip is part of the period)."""
        poll = self.scale_out_poll()
        if poll is None:
            self.sleep_until(self._next_step)
            return
        while not self.stopping and time.monotonic() < self._next_step:
            began = time.monotonic()
            if self._needs_more():
                return
            self.sleep_until(min(self._next_step, began + poll))

    def _needs_more(self) -> bool:
        try:
            counts = self.tasks.counts()
        except QueueError:  # the step meets it again, and logs and backs off as it does for its own errors
            return True
        more = workers_needed(counts.visible, counts.in_flight, self.cfg.backlog_per_instance) > self.last.desired
        self._seen = counts if more else None  # not read again by the step: on SQS a round trip sooner
        return more

    def step(self) -> Observation:
        """Read the backlog and the fleet, publish, and set the fleet's desired size. The step's time is its start:
        steps start an interval apart, and a cooldown counted in them is not cut short by a read that took longer at
        an earlier step (on SQS and Auto Scaling a step's reads take a while, longer on a loaded machine)."""
        now = self.clock()
        counts, self._seen = self._seen or self.tasks.counts(), None
        size = self.fleet.size()
        desired, idle = self._decide(counts, size, now)
        obs = Observation(time.time(), counts.visible, counts.in_flight, size, desired,
                          backlog_per_instance(counts.visible, counts.in_flight, size.in_service), self.fleet.name,
                          idle)
        self._publish(obs)
        self.fleet.set_desired(desired)
        if self.status_path:  # the fleet as this step left it: a local one changes at once, and the view shows it
            write_status(self.status_path, dataclasses.replace(obs, fleet=self.fleet.size()))
        self.last = obs
        self.history.append(obs)
        level = logging.INFO if desired != size.desired else logging.DEBUG
        self.log.log(level, "backlog %d + %d in flight, idle %s s, fleet %d/%d in service, desired %d (%.1f per "
                     "instance)", obs.backlog, obs.in_flight, "-" if idle is None else f"{idle:.0f}", size.in_service,
                     size.desired, desired, obs.backlog_per_instance)
        return obs

    def _decide(self, counts: QueueCounts, size: FleetSize, now: float) -> tuple[int, float | None]:
        """The policy's size for this step at `now`, and the seconds the queue has been idle (None: not seen in use)."""
        cfg = self.cfg
        self.activity = observe_activity(self.activity, counts, now)
        idle = self.activity.idle_for(now)
        recent = self.needs.add(now, workers_needed(counts.visible, counts.in_flight, cfg.backlog_per_instance))
        desired = desired_workers(counts.visible, counts.in_flight, size.desired, cfg.backlog_per_instance,
                                  cfg.min_workers, cfg.max_workers, recent_need=recent, idle_for=idle,
                                  cooldown=cfg.scale_in_cooldown)
        return desired, idle if math.isfinite(idle) else None

    def teardown(self) -> None:
        if self.fleet is not None:  # after a second signal, don't wait for the workers to drain
            self.fleet.close(wait=not self.forced)
        if self.zygote is not None:
            self.zygote.close()

    def _publish(self, obs: Observation) -> None:
        self.metrics.gauge(names.BACKLOG_PER_INSTANCE, obs.backlog_per_instance)
        self.metrics.gauge(names.DESIRED_INSTANCES_COUNT, obs.fleet.desired)
        self.metrics.gauge(names.ALL_INSTANCES_COUNT, obs.fleet.running)
        self.metrics.gauge(names.TOTAL_BACKLOG_COUNT, obs.total_backlog)
        if self.publisher is not None:
            self.publisher.publish(obs)


def build_fleet(cfg, kind: str = "auto", worker_args: list[str] | tuple = (),
                zygote: Zygote | None = None) -> tuple[Fleet, object]:
    """The fleet the configuration names, and the CloudWatch publisher that goes with an Auto Scaling fleet; a local
    fleet starts its workers from `zygote` when there is one, else as new processes."""
    if _local(cfg, kind):
        budget = config.load("worker", flags={"broker_url": cfg.broker_url}).work_budget
        launcher = (functools.partial(zygote.fork, worker_argv(cfg.broker_url, worker_args)) if zygote
                    else worker_command(cfg.broker_url, worker_args))
        return ProcessFleet(launcher, stop_timeout=budget + DRAIN_MARGIN), None
    region = broker_region(cfg.broker_url)  # the endpoints: boto3's (AWS_ENDPOINT_URL...), not the SQS server's
    fleet = AsgFleet(cfg.worker_asg_name, client=aws.client("autoscaling", region=region), mode=cfg.scale_mode)
    return fleet, CloudWatchPublisher(aws.client("cloudwatch", region=region), cfg.supervisor_asg_name)


def _local(cfg, kind: str) -> bool:
    return kind == "local" or (kind == "auto" and parse_broker_url(cfg.broker_url)[0] == "sqlite")


def status_path(broker_url: str) -> str | None:
    """Where the supervisor of an embedded queue records its last step (None on SQS: `grid status` asks AWS)."""
    scheme, path, _ = parse_broker_url(broker_url)
    return os.path.join(os.path.dirname(os.path.abspath(path)), STATUS_FILE) if scheme == "sqlite" else None


def write_status(path: str, obs: Observation) -> None:
    record = asdict(obs)
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as out:
        json.dump(record, out)
    os.replace(temporary, path)


def read_status(path: str) -> Observation | None:
    try:
        with open(path) as f:
            record = json.load(f)
        record["fleet"] = FleetSize(**record["fleet"])
        return Observation(**record)
    except (OSError, ValueError, TypeError, KeyError):
        return None


def main(argv: list[str] | None = None) -> int:
    return lifecycle.main(Supervisor, argv)
