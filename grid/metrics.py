"""Metrics: every name the grid emits is defined here once, for statsd and for CloudWatch.

statsd names are the original's: the role's `stats_prefix` (e.g. `awsgridwithsqs_worker_`) glued to a short name
(`tps`), so the CloudWatch agent publishes `awsgridwithsqs_worker_tps` as the original's dashboard expects.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import statsd

from grid.errors import ConfigError

COUNTER, TIMER, GAUGE = "counter", "timer", "gauge"
DEFAULT_STATSD_PORT = 8125  # the CloudWatch agent's statsd listener
MAX_UDP_BYTES = 512  # per datagram: safe on any path MTU


@dataclass(frozen=True)
class Metric:
    """A statsd metric of one role: `name` without the prefix; timers are in milliseconds."""

    role: str
    name: str
    kind: str
    help: str


STATSD_METRICS: tuple[Metric, ...] = (
    Metric("producer", "throughput", COUNTER, "tasks accepted by the tasks queue"),
    Metric("producer", "exec_time", TIMER, "time to generate the task numbers of a batch"),
    Metric("producer", "send_msg_time", TIMER, "time of one send_batch call"),
    Metric("worker", "read_time", TIMER, "time of one receive call (long poll included)"),
    Metric("worker", "tasks_handled", COUNTER, "tasks received"),
    Metric("worker", "execution_time", TIMER, "time to compute the tasks of a batch"),
    Metric("worker", "send_time", TIMER, "time to send the results of a batch"),
    Metric("worker", "delete_time", TIMER, "time to delete the task messages of a batch"),
    Metric("worker", "tps", COUNTER, "tasks answered: result accepted and task message deleted"),
    Metric("worker", "task_errors", COUNTER, "tasks answered with an error result (400, 413, 422)"),
    Metric("worker", "worker_faults", COUNTER, "tasks that failed inside the worker (500), left for retry"),
    Metric("worker", "released", COUNTER, "unstarted task messages released on stop"),
    Metric("supervisor", "backlog_per_instance", GAUGE, "tasks waiting or in work per in-service worker"),
    Metric("supervisor", "desired_instances_count", GAUGE, "the fleet's desired size"),
    Metric("supervisor", "all_instances_count", GAUGE, "workers running, in service or not"),
    Metric("supervisor", "total_backlog_count", GAUGE, "tasks waiting or in work"),
    Metric("supervisor", "errors", COUNTER, "failed supervisor steps (retried)"),
    Metric("collector", "results_stored", COUNTER, "results written to the result store"),
    Metric("collector", "duplicates", COUNTER, "results dropped because their task id was stored already"),
    Metric("collector", "store_time", TIMER, "time to store and delete a batch of results"),
    Metric("collector", "latency", TIMER,
           "completed_at - submitted_at of stored results (a sample of at most 100 per collector step)"),
)

# The supervisor's CloudWatch metrics, as the original published them (Unit Count, dimension AutoScalingGroupName).
CLOUDWATCH_NAMESPACE = "AWSGridWithSQS/AppMetrics"
CLOUDWATCH_DIMENSION = "AutoScalingGroupName"
BACKLOG_PER_INSTANCE = "backlog_per_instance"
DESIRED_INSTANCES_COUNT = "desired_instances_count"
ALL_INSTANCES_COUNT = "all_instances_count"
TOTAL_BACKLOG_COUNT = "total_backlog_count"
CLOUDWATCH_METRICS = (BACKLOG_PER_INSTANCE, DESIRED_INSTANCES_COUNT, ALL_INSTANCES_COUNT, TOTAL_BACKLOG_COUNT)
# The CloudWatch agent on each instance publishes the statsd metrics above in the same namespace, rolled up per
# Auto Scaling group: one series per full statsd name with this dimension alone.
AGENT_AGGREGATION_DIMENSIONS = ((CLOUDWATCH_DIMENSION,),)

_KINDS = {(m.role, m.name): m.kind for m in STATSD_METRICS}


def metrics(role: str) -> tuple[Metric, ...]:
    """The statsd metrics `role` emits."""
    return tuple(m for m in STATSD_METRICS if m.role == role)


def statsd_names(role: str, prefix: str) -> tuple[str, ...]:
    """The full statsd names of `role` under `prefix`, as they arrive at the agent."""
    return tuple(prefix + m.name for m in metrics(role))


def export() -> dict:
    """The metric names in a JSON-able form, for Terraform's dashboard and tests that check it."""
    return {
        "statsd": [{"role": m.role, "name": m.name, "kind": m.kind, "help": m.help} for m in STATSD_METRICS],
        "cloudwatch": {
            "namespace": CLOUDWATCH_NAMESPACE,
            "dimension": CLOUDWATCH_DIMENSION,
            "metrics": list(CLOUDWATCH_METRICS),
        },
        "agent": {
            "namespace": CLOUDWATCH_NAMESPACE,
            "statsd_port": DEFAULT_STATSD_PORT,
            "aggregation_dimensions": [list(d) for d in AGENT_AGGREGATION_DIMENSIONS],
        },
    }


class Metrics:
    """statsd metrics of one role, buffered until `flush()`; a no-op when `host` is empty.

    Counters are summed here and sent as one exact line per name and flush (a statsd server adds them up anyway):
    a worker on tiny tasks counts a few times a millisecond, and a line per call cost it, and whoever reads the
    metrics, more than the tasks. The sample rate applies to timings and gauges.

    Safe between threads (a worker answers on its network threads). A name the registry above does not define for the role,
    or a call of the wrong kind (timing on a counter), is a programming error and raises ValueError.
    """

    def __init__(self, role: str, prefix: str = "", host: str = "", port: int = DEFAULT_STATSD_PORT,
                 rate: float = 1.0):
        self.role = role
        self.prefix = prefix
        self.rate = rate  # statsd sample rate: a fraction of the calls is sent, tagged so the server scales up
        self.counts: dict[str, int] = {}  # counter totals since start, also without statsd: for summaries and tests
        self._client = _client(host, port) if host else None
        self._pipe = self._client.pipeline() if self._client else None
        self._unsent: dict[str, int] = {}  # counts since the last flush
        self._flushed = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, cfg) -> Metrics:
        return cls(cfg.role, cfg.stats_prefix, cfg.statsd_host, cfg.statsd_port, cfg.stats_rate)

    @property
    def enabled(self) -> bool:
        return self._pipe is not None

    def incr(self, name: str, count: int = 1) -> None:
        self._check(name, COUNTER)
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + count
            if self._pipe is not None:
                self._unsent[name] = self._unsent.get(name, 0) + count

    def timing(self, name: str, ms: float) -> None:
        self._check(name, TIMER)
        with self._lock:
            if self._pipe is not None:
                self._pipe.timing(self.prefix + name, ms, self.rate)

    def gauge(self, name: str, value: float) -> None:
        self._check(name, GAUGE)
        with self._lock:
            if self._pipe is not None:
                self._pipe.gauge(self.prefix + name, value, self.rate)

    @contextlib.contextmanager
    def timer(self, name: str) -> Iterator[None]:
        """Record the time the block takes (also when it raises)."""
        self._check(name, TIMER)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timing(name, (time.perf_counter() - start) * 1000.0)

    def flush(self, every: float = 0.0) -> None:
        """Send what is buffered (a few UDP datagrams), unless the last flush was less than `every` seconds ago; UDP
        send errors are dropped, as statsd does."""
        with self._lock:
            if self._pipe is None or time.monotonic() - self._flushed < every:
                return
            for name, count in self._unsent.items():
                self._pipe.incr(self.prefix + name, count)
            self._unsent.clear()
            self._pipe.send()
            self._flushed = time.monotonic()

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = self._pipe = None

    def _check(self, name: str, kind: str) -> None:
        if _KINDS.get((self.role, name)) != kind:
            raise ValueError(f"{self.role} has no {kind} metric {name!r}: define it in grid.metrics.STATSD_METRICS")


def _client(host: str, port: int) -> statsd.StatsClient:
    try:
        return statsd.StatsClient(host, port, maxudpsize=MAX_UDP_BYTES)
    except (OSError, UnicodeError) as e:
        raise ConfigError(
            f"statsd_host={host!r} statsd_port={port}: cannot resolve the statsd address ({e}); "
            "give a reachable host name or IP, or an empty statsd_host to turn metrics off"
        ) from e
