"""A run folder and its plan: what `grid local` is asked to do, kept in `<run>/run.json` so that a run resumes.

A plan is a quick run (`--tasks`, `--rate`, `--workload`: tasks produced from the start) or, by default, a story: the
phases of `DEMO_STORY`, played on the clock (the session starts each phase's producer when its time comes).

The folder holds the embedded queue (`grid.db`), the result store (`results.db`), the logs, the numbers of a
--workload file, and while the daemons run, their pids.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import time
from dataclasses import asdict, dataclass, field

from grid import config, primes
from grid.client import parse_number
from grid.daemons.worker import cpu_count
from grid.errors import ConfigError
from grid.queues.base import MAX_BATCH

DEFAULT_TASKS = 20_000
DEFAULT_DIR = "grid-run"
BATCHES_PER_WORKER = 4  # a run has at least this many receives of messages per worker, so every worker gets work
WORK_PER_MESSAGE = 0.01  # seconds of kernel work per task message: past this, bigger bundles gained nothing
MAX_TASKS_PER_MESSAGE = 200  # ... and a few large messages would leave one worker with the tail
PROBE_TASKS, PROBE_SECONDS = 101, 0.05  # the task size is timed on at most this many tasks, or this much time
SEND_INTERVAL = 0.005  # seconds: a paced producer sends at most this often, with more messages per send if need be
PIDS_FILE = "roles.pid"  # JSON {role: pid} while the daemons run


@dataclass(frozen=True)
class Phase:
    """A phase of a story: `tasks` sent at its start as fast as the producer goes (it ends once they are all done, or
    after `seconds` at most), or a stream of `rate` tasks per second for `seconds`, or nothing for `seconds` (the last
    phase then also lasts until the fleet is back to zero)."""

    name: str
    seconds: float
    tasks: int = 0
    rate: float = 0.0

    @property
    def produces(self) -> int:
        return self.tasks or round(self.rate * self.seconds)

    def scaled(self, timescale: float) -> Phase:
        """The phase `timescale` times as long, a burst as many times as large; a stream keeps its rate."""
        tasks = max(1, round(self.tasks * timescale)) if self.tasks else 0
        return Phase(self.name, self.seconds * timescale, tasks, self.rate)


# The demo (`make demo`, `grid local` without --tasks), second by second in docs/demo.md. The burst is a few seconds of
# work for two workers at the default task size; the stream, far below one worker's capacity, needs one; the pause
# outlasts the supervisor's scale-in (its cooldown, then a step), so the fleet is seen at zero.
DEMO_STORY = (
    Phase("idle", 5.0),
    Phase("burst", 20.0, tasks=200_000),
    Phase("stream", 20.0, rate=500.0),
    Phase("pause", 10.0),
)


@dataclass
class Plan:
    """What a run folder is for; `segments` records each producer start (job, seed, tasks asked and sent); `story`,
    the phases of a story (`Phase` fields), none for a quick run."""

    tasks: int
    min_bits: int
    max_bits: int
    factors: int
    seed: int
    tasks_per_message: int
    rate: float | None = None
    workload: bool = False  # the numbers are in <run>/workload.txt
    segments: list[dict] = field(default_factory=list)
    story: list[dict] | None = None

    @property
    def produced(self) -> int:
        return sum(s["sent"] for s in self.segments)

    @property
    def phases(self) -> list[Phase]:
        return [Phase(**p) for p in self.story or ()]



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
    """The plan from the flags and the producer's defaults, and the numbers of a --workload file: the demo's story
    unless --tasks, --rate or --workload asks for a quick run."""
    defaults = config.load("producer", environ={"GRID_SSM": "0"})
    low, high = _bits(args.bits) if args.bits else (defaults.prime_min_bits, defaults.prime_max_bits)
    numbers = read_workload(args.workload) if args.workload else None
    story = None
    if args.tasks is None and args.rate is None and numbers is None:
        story = [phase.scaled(args.timescale or 1.0) for phase in DEMO_STORY]
    elif args.timescale is not None:
        raise ConfigError(f"--timescale {args.timescale:g}: it scales the demo's story, which --tasks, --rate and "
                          "--workload replace by a quick run; give it alone (e.g. grid local --timescale 0.2)")
    plan = Plan(tasks=len(numbers) if numbers else args.tasks or DEFAULT_TASKS, min_bits=low, max_bits=high,
                factors=args.factors or defaults.factors_per_task,
                seed=args.seed if args.seed is not None else random.randrange(2**32),
                tasks_per_message=args.tasks_per_message or 1, rate=args.rate, workload=numbers is not None,
                story=None if story is None else [asdict(phase) for phase in story])
    if story is not None:
        plan.tasks = sum(phase.produces for phase in story)
    _check_plan(plan)
    if not args.tasks_per_message and not numbers:  # a user's own numbers may be slow: one per message
        # A story's burst is its bundled part (its stream sends one task per message, see paced_batch).
        bundled = max((phase.tasks for phase in story), default=1) if story else plan.tasks
        spread = bundled // ((args.max_workers or cpu_count()) * BATCHES_PER_WORKER * MAX_BATCH)
        plan.tasks_per_message = min(pick_tasks_per_message(low, high, plan.factors, args.rate), max(1, spread))
    return plan, numbers


def _check_plan(plan: Plan) -> None:
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
    does not wait for the others of its batch to be drawn, nor behind them in one worker."""
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
    if args.timescale is not None:
        changed.append(f"--timescale {args.timescale:g} (the phases are saved)")
    if changed or args.workload:
        what = ", ".join(changed) or f"--workload {args.workload}"
        raise ConfigError(f"--dir {folder.path}: resuming a run keeps its plan, so {what} cannot change; "
                          "give a new --dir for a new plan")
    if args.rate is not None:
        plan.rate = args.rate
    return plan
