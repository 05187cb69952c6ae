"""`grid local`: the whole grid on one machine, as real processes on the embedded queue in a run folder.

A producer (or the numbers of a --workload file), a supervisor that scales local worker processes from zero to
--max-workers and back, and the collector share `<run>/grid.db`; results go to `<run>/results.db`, logs to
`<run>/logs/`. The run's plan is kept in `<run>/run.json`: running again with the same --dir resumes (what is in
the queue is processed, what was produced is not produced again). This process samples the queue, the
supervisor's status and the roles' statsd metrics (sent here), shows them every --interval seconds, and writes
`report.json` and `report.png` with the store's figures at the end, also after Ctrl-C.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field

from grid import report
from grid.errors import ConfigError, GridError
from grid.daemons import collector, producer, supervisor, worker
from grid.fleet.processes import Process, new_process
from grid.fleet.zygote import Zygote, make_zygote
from grid.queues.base import MAX_BATCH
from grid.daemons.producer import _positive

DEFAULT_TASKS = 20_000
DEFAULT_DIR = "grid-run"
METRIC_INTERVAL = 1  # seconds between the supervisor's scaling steps: fast enough to watch
SCALE_OUT_POLL = 0.02  # seconds between the supervisor's backlog reads below max workers: a read of the embedded
# queue is cheap, and scale-out (from zero: at the first task) follows the backlog within this
BACKLOG_PER_WORKER = 5  # task messages per worker the supervisor aims at: the producer's first send (10 messages)
# starts two workers at once, where 10 (a full receive each) started the second one a step later
BATCHES_PER_WORKER = 4  # a run has at least this many receives of messages per worker, so every worker gets work
POLL_WAIT = 1  # seconds of a worker's long poll: an idle worker notices SIGTERM within this
VISIBILITY_TIMEOUT = 30  # seconds: a message of a killed worker comes back this soon (heartbeats extend it)
STOP_TIMEOUT = 60.0  # seconds a role may take to drain after SIGTERM before it is killed
SCALE_IN_COOLDOWN = 3  # seconds before scale-in: a paced run keeps its worker, a passing backlog its fleet
SCALE_IN_PATIENCE = 30.0  # seconds, beyond the policy's halving steps and cooldowns, to wait for zero workers
COLLECT_PATIENCE = 10.0  # seconds the collector gets to store what is on the results queue after a Ctrl-C
WORK_PER_MESSAGE = 0.01  # seconds of kernel work per task message: past this, bigger bundles gained nothing
MAX_TASKS_PER_MESSAGE = 200  # ... and a few large messages would leave one worker with the tail
PROBE_TASKS, PROBE_SECONDS = 101, 0.05  # the task size is timed on at most this many tasks, or this much time
SAMPLE_PERIOD = 0.1  # seconds between samples of the run (the view shows one every --interval)
END_POLL = 0.01  # seconds between checks for the end of the work once it is near: the end is known to within this
NEAR_END = 20  # task messages left per worker, production over: the end is near
ROLES = ("supervisor", "producer", "collector")  # the processes grid local starts; the supervisor starts the workers
# What its zygote runs: its daemons, and the workers of the supervisor's own zygote (forked from one of its forks).
MAINS = {"supervisor": supervisor.main, "producer": producer.main, "collector": collector.main, "worker": worker.main}
SEND_INTERVAL = 0.005  # seconds: a paced producer sends at most this often, with more messages per send if need be
PIDS_FILE = "roles.pid"  # JSON {role: pid} while the roles run


def add_parser(commands) -> None:
    """The `grid local` subcommand, for grid.cli."""
    p = commands.add_parser("local", help="run the whole grid on this machine, with a live view and a report",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", metavar="PATH", help=f"run folder (default: ./{DEFAULT_DIR}/<timestamp>); an existing "
                   "one is resumed")
    p.add_argument("--tasks", type=_positive(int), metavar="N", help=f"tasks to produce (default {DEFAULT_TASKS})")
    p.add_argument("--workload", metavar="PATH", help="factorize the numbers of PATH (one per line) instead")
    p.add_argument("--bits", metavar="MIN:MAX", help="sizes of the prime factors, bits (default: the producer's "
                   "prime_min_bits:prime_max_bits)")
    p.add_argument("--factors", type=_positive(int), metavar="K", help="prime factors per number (default 2)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of the numbers (default: a random one, kept in "
                   "run.json)")
    p.add_argument("--rate", type=_positive(float), metavar="R", help="produce at most R tasks per second")
    p.add_argument("--tasks-per-message", type=_positive(int), metavar="K", help="tasks bundled in one message "
                   f"(default: about {WORK_PER_MESSAGE * 1000:g} ms of work, fewer in small runs; 1 with --rate "
                   "or --workload)")
    p.add_argument("--max-workers", type=_positive(int), metavar="W", help="most worker processes (default: one "
                   "per CPU)")
    p.add_argument("--interval", type=_positive(float), default=1.0, metavar="S", help="seconds between updates "
                   "of the view (default 1)")
    p.set_defaults(run=run)


# ---- the plan of a run, kept in run.json


@dataclass
class Plan:
    """What a run folder is for; `segments` records each producer start (job, seed, tasks asked and sent)."""

    tasks: int
    min_bits: int
    max_bits: int
    factors: int
    seed: int
    tasks_per_message: int
    rate: float | None = None
    workload: bool = False  # the numbers are in <run>/workload.txt
    segments: list[dict] = field(default_factory=list)

    @property
    def produced(self) -> int:
        return sum(s["sent"] for s in self.segments)



class RunFolder:
    """The files of one run."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.broker_url = "sqlite://" + self.file("grid.db")
        self.store = self.file("results.db")
        self.plan_file = self.file("run.json")
        self.workload = self.file("workload.txt")

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def log(self, role: str) -> str:
        return os.path.join(self.path, "logs", f"{role}.log")

    def exists(self) -> bool:
        return os.path.exists(self.plan_file)

    def check_idle(self) -> None:
        """Refuse a folder whose roles still run (left by a `grid local` that was killed, or running now)."""
        try:
            with open(self.file(PIDS_FILE)) as f:
                pids = json.load(f)
        except (OSError, ValueError):
            return
        alive = {role: pid for role, pid in pids.items() if _is_grid_process(pid)}
        if alive:
            shown = ", ".join(f"{role} pid {pid}" for role, pid in alive.items())
            raise ConfigError(f"--dir {self.path}: its roles still run ({shown}); stop them first "
                              "(kill -TERM <pid>), then run again")

    def record_pids(self, pids: dict[str, int] | None) -> None:
        """The running roles' pids (None: all stopped)."""
        path = self.file(PIDS_FILE)
        if pids is None:
            if os.path.exists(path):
                os.remove(path)
            return
        with open(path, "w") as out:
            json.dump(pids, out)

    def create(self) -> None:
        try:
            os.makedirs(os.path.join(self.path, "logs"), exist_ok=True)
        except OSError as e:
            raise ConfigError(f"--dir {self.path!r}: cannot create the run folder ({e.strerror})") from None

    def load(self) -> Plan:
        try:
            with open(self.plan_file) as f:
                return Plan(**json.load(f))
        except (OSError, ValueError, TypeError) as e:
            raise ConfigError(f"--dir {self.path!r}: {self.plan_file} is not a run plan ({e}); give a new --dir "
                              "or remove the folder") from None

    def save(self, plan: Plan) -> None:
        temporary = self.plan_file + ".tmp"
        with open(temporary, "w") as out:
            json.dump(asdict(plan), out, indent=1)
        os.replace(temporary, self.plan_file)


def _is_grid_process(pid: int) -> bool:
    """A grid process: started as `python -m grid.cli ...`, or forked by a zygote (named grid-<role>)."""
    try:
        with open(f"/proc/{int(pid)}/cmdline", "rb") as f, open(f"/proc/{int(pid)}/comm", "rb") as g:
            return b"grid.cli" in f.read() or g.read().startswith(b"grid-")
    except (OSError, ValueError):
        return False


def default_dir() -> str:
    return os.path.join(DEFAULT_DIR, time.strftime("%Y%m%d-%H%M%S"))


def make_plan(args: argparse.Namespace) -> tuple[Plan, list[int] | None]:
    """The plan from the flags and the producer's defaults, and the numbers of a --workload file."""
    from grid import config

    defaults = config.load("producer", environ={"GRID_SSM": "0"})
    low, high = _bits(args.bits) if args.bits else (defaults.prime_min_bits, defaults.prime_max_bits)
    numbers = read_workload(args.workload) if args.workload else None
    plan = Plan(tasks=len(numbers) if numbers else args.tasks or DEFAULT_TASKS, min_bits=low, max_bits=high,
                factors=args.factors or defaults.factors_per_task,
                seed=args.seed if args.seed is not None else random.randrange(2**32),
                tasks_per_message=args.tasks_per_message or 1, rate=args.rate, workload=numbers is not None)
    _check_plan(plan)
    if not args.tasks_per_message and not numbers:  # a user's own numbers may be slow: one per message
        spread = plan.tasks // ((args.max_workers or worker.cpu_count()) * BATCHES_PER_WORKER * MAX_BATCH)
        plan.tasks_per_message = min(pick_tasks_per_message(low, high, plan.factors, args.rate), max(1, spread))
    return plan, numbers


def _check_plan(plan: Plan) -> None:
    from grid import config

    specs = {p.name: p for p in config.params("producer")}
    for name, value in (("prime_min_bits", plan.min_bits), ("prime_max_bits", plan.max_bits),
                        ("factors_per_task", plan.factors), ("tasks_per_message", plan.tasks_per_message)):
        try:
            specs[name].parse(value)
        except ValueError as e:
            raise ConfigError(f"{name}={value} (from the flags of grid local): {e}") from None
    if plan.min_bits > plan.max_bits:
        raise ConfigError(f"--bits {plan.min_bits}:{plan.max_bits}: MIN must be <= MAX")


def _bits(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(":")
    if not (low.isdigit() and high.isdigit() and sep):
        raise ConfigError(f"--bits {text!r}: must be MIN:MAX, two whole numbers of bits, e.g. 20:30")
    return int(low), int(high)


def read_workload(path: str) -> list[int]:
    from grid.cli import parse_number

    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConfigError(f"--workload {path!r}: cannot read it ({e.strerror})") from None
    numbers = [parse_number(line.strip(), f"{path} line {i}") for i, line in enumerate(lines, 1) if line.strip()]
    if not numbers:
        raise ConfigError(f"--workload {path!r}: no numbers in it; give one decimal integer >= 1 per line")
    return numbers


def pick_tasks_per_message(min_bits: int, max_bits: int, factors: int, rate: float | None) -> int:
    """Enough tasks per message for WORK_PER_MESSAGE of kernel work; 1 when paced, where latency matters."""
    if rate is not None:
        return 1
    from grid import primes

    rng, timings = random.Random(0), []
    while len(timings) < PROBE_TASKS and sum(timings) < PROBE_SECONDS:
        n = primes.task_number(min_bits, max_bits, factors, rng=rng)
        start = time.perf_counter()
        try:
            primes.factorize(n, budget=WORK_PER_MESSAGE)
        except primes.BudgetExceeded:
            return 1
        timings.append(time.perf_counter() - start)
    per_task = statistics.median(timings)  # the median: robust to other processes taking the CPU for a while
    return max(1, min(MAX_TASKS_PER_MESSAGE, int(WORK_PER_MESSAGE / max(per_task, 1e-9))))


def paced_batch(rate: float) -> int:
    """Messages per send of a paced producer (or --workload): one each while that is within SEND_INTERVAL, so a task
    does not wait for the others of its batch to be drawn (10 of them: 0.3 ms), nor behind them in one worker."""
    return max(1, min(MAX_BATCH, math.ceil(rate * SEND_INTERVAL)))


def resume_plan(args: argparse.Namespace, folder: RunFolder) -> Plan:
    """The saved plan; a flag that would change what the run produces is refused, not silently ignored."""
    plan = folder.load()
    asked = {"tasks": args.tasks, "factors": args.factors, "seed": args.seed,
             "tasks_per_message": args.tasks_per_message}
    if args.bits:
        asked["min_bits"], asked["max_bits"] = _bits(args.bits)
    changed = [f"{k}={v} (saved: {getattr(plan, k)})" for k, v in asked.items()
               if v is not None and v != getattr(plan, k)]
    if changed or args.workload:
        what = ", ".join(changed) or f"--workload {args.workload}"
        raise ConfigError(f"--dir {folder.path}: resuming a run keeps its plan, so {what} cannot change; "
                          "give a new --dir for a new plan")
    if args.rate is not None:
        plan.rate = args.rate
    return plan


# ---- the roles' statsd metrics, received here


class StatsListener:
    """A statsd server on a loopback port: counter totals and the latency timings since the last `take`."""

    def __init__(self, latency_name: str):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.latency_name = latency_name
        self.counters: dict[str, float] = {}
        self._latencies: list[float] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="grid-local-statsd", daemon=True)
        self._thread.start()

    def count(self, name: str) -> int:
        with self._lock:
            return round(self.counters.get(name, 0))

    def take_latencies(self) -> list[float]:
        """Latencies (seconds) received since the last call."""
        with self._lock:
            taken, self._latencies = self._latencies, []
        return taken

    def close(self) -> None:
        """Stop serving, after reading what the roles sent before they exited."""
        self._stop.set()
        self._thread.join()
        self.sock.setblocking(False)
        while self._receive_one():
            pass
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._receive_one()

    def _receive_one(self) -> bool:
        """Record one datagram; False when none came (within the socket's timeout)."""
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return False
        with self._lock:
            for line in data.decode(errors="replace").splitlines():
                self._record(line)
        return True

    def _record(self, line: str) -> None:
        name, _, rest = line.partition(":")
        if name != self.latency_name and "|c" not in rest:  # only counters and the latency are shown
            return
        value, _, rest = rest.partition("|")
        kind, _, rate = rest.partition("|")
        try:
            amount = float(value) / (float(rate[1:]) if rate.startswith("@") else 1.0)
        except ValueError:
            return
        if kind == "c":
            self.counters[name] = self.counters.get(name, 0) + amount
        elif kind == "ms" and name == self.latency_name:
            self._latencies.append(float(value) / 1000)


# ---- the role processes


class Roles:
    """The producer, supervisor and collector processes of a run (the supervisor starts the workers): forks of
    `zygote` when there is one, else new interpreters; either way in their own session, so a Ctrl-C at the terminal
    reaches only `grid local`, which stops them."""

    def __init__(self, folder: RunFolder, env: dict[str, str], interrupted: Interrupted, zygote: Zygote | None):
        self.folder, self.env, self.interrupted, self.zygote = folder, env, interrupted, zygote
        self.procs: dict[str, Process] = {}

    def start(self, role: str, *args: str) -> None:
        argv, env, output = [role, *args], {**self.env, "GRID_LOG_FILENAME": "-"}, self.folder.log(role)
        if self.zygote is not None:
            self.procs[role] = self.zygote.fork(argv, env, output)
        else:
            self.procs[role] = new_process(argv, env, output, stop_with_parent=False)
        self.folder.record_pids({name: p.pid for name, p in self.procs.items() if p.poll() is None})

    def running(self, role: str) -> bool:
        return role in self.procs and self.procs[role].poll() is None

    def failed(self) -> str | None:
        """A role that exited with an error, as a message naming its log."""
        for role, proc in self.procs.items():
            if proc.poll() not in (None, 0):
                return f"the {role} exited with code {proc.returncode}; see {self.folder.log(role)}"
        return None

    def stop(self, role: str, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait (the role drains); a second Ctrl-C sends another (leave now); SIGKILL after `timeout`
        or a third Ctrl-C."""
        proc = self.procs.get(role)
        if proc is None:
            return None
        signals = 0
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline and self.interrupted.count < 3:
            if signals < min(2, self.interrupted.count or 1):
                proc.send_signal(signal.SIGTERM)
                signals += 1
            time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        return proc.wait()


def role_env(folder: RunFolder, plan: Plan, max_workers: int, statsd_port: int) -> dict[str, str]:
    """The settings every role of the run shares (workers inherit the supervisor's)."""
    settings = {
        "GRID_SSM": "0", "GRID_BROKER_URL": folder.broker_url, "GRID_RESULT_STORE": folder.store,
        "GRID_LOG_LEVEL": "INFO", "GRID_STATSD_HOST": "127.0.0.1", "GRID_STATSD_PORT": str(statsd_port),
        "GRID_PRIME_MIN_BITS": str(plan.min_bits), "GRID_PRIME_MAX_BITS": str(plan.max_bits),
        "GRID_FACTORS_PER_TASK": str(plan.factors), "GRID_TASKS_PER_MESSAGE": str(plan.tasks_per_message),
        "GRID_METRIC_INTERVAL": str(METRIC_INTERVAL), "GRID_MIN_WORKERS": "0", "GRID_MAX_WORKERS": str(max_workers),
        "GRID_SCALE_IN_COOLDOWN": str(SCALE_IN_COOLDOWN), "GRID_SCALE_OUT_POLL_INTERVAL": str(SCALE_OUT_POLL),
        "GRID_BACKLOG_PER_INSTANCE": str(BACKLOG_PER_WORKER), "GRID_CONCURRENCY": "1",
        "GRID_QUEUE_POLLING_WAIT_TIME": str(POLL_WAIT), "GRID_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
    }
    return {**os.environ, **settings}


# ---- the run


class Interrupted:
    """SIGINT/SIGTERM of `grid local`: the first stops the run cleanly, a second hurries the roles."""

    def __init__(self):
        self.count = 0

    def __call__(self, signum, frame) -> None:
        self.count += 1

    def install(self):
        previous = {sig: signal.signal(sig, self) for sig in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(sig, handler) for sig, handler in previous.items()]


class LocalRun:
    """One session of a run folder: start the roles, sample and show, stop, report."""

    def __init__(self, folder: RunFolder, plan: Plan, max_workers: int, interval: float):
        from grid import config
        from grid.queues import open_broker
        from grid.store.sqlite import ResultStore

        self._start, self._started_at = time.monotonic(), time.time()  # the run's start-up counts from here
        self.folder, self.plan, self.interval = folder, plan, interval
        self.max_workers = max_workers
        # Before a thread, socket or database exists; the worker's modules too, for the supervisor's own zygote.
        zygote = make_zygote(MAINS, stop_with_parent=False)
        self.stats = StatsListener("")
        self.env = role_env(folder, plan, max_workers, self.stats.port)
        self.cfg = {role: config.load(role, environ=self.env) for role in ("producer", "worker", "collector")}
        self.stats.latency_name = self.cfg["collector"].stats_prefix + "latency"
        self.broker = open_broker(folder.broker_url)
        self.tasks = self.broker.queue(self.cfg["worker"].tasks_queue_name, create=True)
        self.results = self.broker.queue(self.cfg["worker"].results_queue_name, create=True)
        self.store = ResultStore(folder.store)
        self.stored_before = self.store.counts()  # counting the store is a scan: live figures come from statsd
        self.interrupted = Interrupted()
        self.roles = Roles(folder, self.env, self.interrupted, zygote)
        self.timeline = report.Timeline()
        self.segment: dict | None = None
        self.sender: threading.Thread | None = None
        self.sender_error: str | None = None

    # -- the session ------------------------------------------------------------------------------------------
    def run(self) -> int:
        restore = self.interrupted.install()
        failure = None
        try:
            self.sample()
            self.start_roles()
            failure = self.watch()
            self.stop_roles(clean=failure is None and not self.interrupted.count)
        finally:
            try:
                self.finish()
            finally:
                restore()
        if failure:
            raise GridError(failure)
        return 0

    def start_roles(self) -> None:
        """All at once: the supervisor, at zero workers, scales out as soon as it sees the first task."""
        worker_args = [f"--worker-arg=--log-filename={self.folder.log('workers')}"]
        self.roles.start("supervisor", "--fleet", "local", *worker_args)
        self.start_production()
        self.roles.start("collector")

    def watch(self) -> str | None:
        """Sample until the work is done and the fleet is back to zero, a role fails, or Ctrl-C; the failure."""
        view = View(self)
        shown = time.monotonic()
        sample = self.timeline.samples[-1]
        with view:
            while not self.interrupted.count:
                ended = self._until_next_sample(sample)
                show = time.monotonic() - shown >= self.interval * 0.99
                sample = self.sample(latency=show)
                if show:
                    view.update()
                    shown = time.monotonic()
                if failure := self.roles.failed() or self.sender_error:
                    return failure
                if self.timeline.drained_at is None and (ended is not None or self.drained()):
                    self.timeline.drained_at = sample.t if ended is None else ended
                if self.timeline.drained_at is not None and self.scaled_in(sample):
                    return None
        return None

    def _until_next_sample(self, last: report.Sample) -> float | None:
        """Wait for the next sample; near the end of the work, check for it every END_POLL meanwhile and return the
        run's time when it was found (or None)."""
        due = time.monotonic() + min(self.interval, SAMPLE_PERIOD)
        near = self.timeline.drained_at is None and not self.producing() and \
            last.backlog + last.in_flight <= NEAR_END * self.max_workers
        while near and not self.interrupted.count and time.monotonic() < due:
            self._sleep(min(END_POLL, due - time.monotonic()))
            if self.drained():
                return time.monotonic() - self._start  # read after the check: never before the end
        self._sleep(due - time.monotonic())
        return None

    def drained(self) -> bool:
        """Everything produced, and no task or result message left anywhere but the dead-letter queues."""
        if self.producing():
            return False
        return self.tasks.counts().total == 0 and self.results.counts().total == 0

    def scaled_in(self, sample: report.Sample) -> bool:
        waited = sample.t - self.timeline.drained_at
        patience = SCALE_IN_PATIENCE + 2 * SCALE_IN_COOLDOWN + 2 * self.max_workers
        return (sample.running == 0 and sample.target == 0) or waited > patience

    def stop_roles(self, clean: bool) -> None:
        """Producer first, then the supervisor (its workers drain), then the collector once results are stored."""
        self.stop_production()
        self.roles.stop("supervisor")
        if not clean:
            self._wait_for(lambda: self.results.counts().total == 0, COLLECT_PATIENCE)
        self.roles.stop("collector")

    def finish(self) -> None:
        """Whatever happened: stop what still runs, record what was produced, write the report."""
        for role in list(self.roles.procs):
            self.roles.stop(role)
        self.folder.record_pids(None)
        self.stop_production()
        self.stats.close()
        self.sample()
        self.folder.save(self.plan)
        self.write_report()
        self.store.close()
        self.broker.close()

    # -- production -------------------------------------------------------------------------------------------
    def start_production(self) -> None:
        left = self.plan.tasks - self.plan.produced
        if left <= 0:
            return
        k = len(self.plan.segments)
        job = f"{os.path.basename(self.folder.path)}-{k + 1}"
        self.segment = {"job": job, "seed": self.plan.seed + k, "asked": left, "sent": 0, "start": self.plan.produced}
        self.plan.segments.append(self.segment)
        self.folder.save(self.plan)
        if self.plan.workload:
            self.sender = threading.Thread(target=self._send_workload, name="grid-local-workload", daemon=True)
            self.sender.start()
            return
        pace = []
        if self.plan.rate:
            pace = ["--rate", str(self.plan.rate), "--batch-size", str(paced_batch(self.plan.rate))]
        self.roles.start("producer", "--count", str(left), "--seed", str(self.segment["seed"]), "--job", job, *pace)

    def producing(self) -> bool:
        return self.roles.running("producer") or (self.sender is not None and self.sender.is_alive())

    def stop_production(self) -> None:
        if self.sender is not None:
            self.sender.join()
        elif self.roles.running("producer"):
            self.roles.stop("producer")
        self._count_sent()

    def _count_sent(self) -> None:
        if self.segment is not None and not self.plan.workload:
            self.segment["sent"] = self._stat("producer", "throughput")

    def _send_workload(self) -> None:
        """The workload's numbers from where the last session stopped, a batch of messages at a time."""
        from grid.cli import send_all
        from grid.messages import Task, pack_tasks

        with open(self.folder.workload) as f:
            numbers = [int(line) for line in f][self.segment["start"]:]
        chunk = (paced_batch(self.plan.rate) if self.plan.rate else MAX_BATCH) * self.plan.tasks_per_message
        for offset in range(0, len(numbers), chunk):
            if self.interrupted.count:
                return
            self._pace(offset)
            now, first = time.time(), self.segment["start"] + offset + 1
            tasks = [Task(n, f"{self.segment['job']}-{first + i}", self.segment["job"], now)
                     for i, n in enumerate(numbers[offset:offset + chunk])]
            try:
                send_all(self.tasks, pack_tasks(tasks, self.plan.tasks_per_message))
            except GridError as e:
                self.sender_error = f"sending the workload failed: {e}"
                return
            self.segment["sent"] += len(tasks)

    def _pace(self, sent: int) -> None:
        if self.plan.rate:
            self._sleep(self._start + sent / self.plan.rate - time.monotonic())

    # -- sampling ---------------------------------------------------------------------------------------------
    def sample(self, latency: bool = True) -> report.Sample:
        """The grid now; with `latency`, the p50/p99 of the results stored since the last such sample."""
        self._count_sent()
        tasks = self.tasks.counts()
        fleet, target = self._fleet()
        p50, p99 = _percentiles(self.stats.take_latencies()) if latency else (None, None)
        sample = report.Sample(
            t=time.monotonic() - self._start, produced=self.plan.produced, backlog=tasks.visible + tasks.delayed,
            in_flight=tasks.in_flight, workers=fleet.in_service, target=target, running=fleet.running,
            done=self.stored_before.total + self._stat("collector", "results_stored"),
            errors=self.stored_before.errors + self._stat("worker", "task_errors"),
            duplicates=self._stat("collector", "duplicates"), p50=p50, p99=p99)
        self.timeline.add(sample)
        return sample

    def _fleet(self):
        """The fleet and its target at the supervisor's last step in this session (none before its first)."""
        from grid.fleet import FleetSize
        from grid.daemons.supervisor import read_status, status_path

        status = read_status(status_path(self.folder.broker_url))
        if status is None or status.at < self._started_at:
            return FleetSize(0, 0, 0), 0
        if status.desired > 0 and self.timeline.scaled_out_at is None:
            # The time of the step, not of this sample: the first step that asked, or one less than a sample later.
            self.timeline.scaled_out_at = status.at - self._started_at
        return status.fleet, status.desired

    def _stat(self, role: str, name: str) -> int:
        return self.stats.count(self.cfg[role].stats_prefix + name)

    def write_report(self) -> None:
        summary = report.summarize(self.timeline, self.store, planned=self.plan.tasks,
                                   interrupted=self.timeline.drained_at is None)
        report.write_json(self.folder.file(report.REPORT_JSON), summary, self.timeline, asdict(self.plan))
        try:
            report.plot(self.folder.file(report.REPORT_PNG), self.timeline, f"grid local: {self.folder.path}")
        except ImportError:
            print("report.png not drawn: matplotlib is not installed (pip install 'grid[report]')", file=sys.stderr)
        print("\n".join(report.summary_lines(summary)))
        print(f"report: {self.folder.file(report.REPORT_JSON)}, {self.folder.file(report.REPORT_PNG)}")

    # -- waiting ----------------------------------------------------------------------------------------------
    def _wait_for(self, condition, timeout: float) -> None:
        """Until `condition()`, `timeout` seconds, or a second Ctrl-C."""
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline and self.interrupted.count < 2:
            time.sleep(0.02)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.interrupted.count and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))


def _percentiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    values.sort()
    return values[(len(values) - 1) // 2], values[min(len(values) - 1, int(len(values) * 0.99))]


class View:
    """A rich live table on a terminal; a plain line per interval otherwise."""

    def __init__(self, run: LocalRun):
        self.run = run
        self.live = None
        if sys.stdout.isatty():
            from rich.live import Live

            self.live = Live(self._table(), refresh_per_second=4, transient=False)

    def __enter__(self) -> View:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self) -> None:
        if self.live is not None:
            self.live.update(self._table())
        else:
            print(report.status_line(self.run.timeline, self.run.plan.tasks), flush=True)

    def _table(self):
        title = f"grid local {os.path.basename(self.run.folder.path)} (Ctrl-C: stop and report)"
        return report.status_table(self.run.timeline, self.run.plan.tasks, title)


def run(args: argparse.Namespace) -> int:
    folder = RunFolder(args.dir or default_dir())
    resuming = folder.exists()
    folder.check_idle()
    plan, numbers = (resume_plan(args, folder), None) if resuming else make_plan(args)
    folder.create()
    if numbers:
        with open(folder.workload, "w") as out:
            out.writelines(f"{n}\n" for n in numbers)
    folder.save(plan)
    max_workers = args.max_workers or worker.cpu_count()
    print(f"grid local: {'resuming' if resuming else 'starting'} {folder.path}: {plan.tasks} tasks "
          f"({plan.produced} produced before), {plan.tasks_per_message} per message, 0..{max_workers} workers; "
          f"logs in {os.path.join(folder.path, 'logs')}", flush=True)
    return LocalRun(folder, plan, max_workers, args.interval).run()
