"""`grid local`: the whole grid on one machine, as real processes on the embedded queue in a run folder.

By default, the demo's story (under a minute): the grid idle at zero workers, a burst of tasks that scales it out, a
steady stream at a paced rate, a pause that scales it back to zero; the live view names the phase, report.png shades
them. --tasks N (or --rate, or --workload) makes it a quick run instead: N tasks produced at once, for throughput.

A producer (or the numbers of a --workload file), a supervisor that scales local worker processes from zero to
--max-workers and back, and the collector share `<run>/grid.db`; results go to `<run>/results.db`, logs to
`<run>/logs/`. The run's plan is kept in `<run>/run.json`: running again with the same --dir resumes (what is in
the queue is processed, what was produced is not produced again). This process samples the queue, the
supervisor's status and the daemons' statsd metrics (sent here), shows them every --interval seconds, and writes
`report.json` and `report.png` with the store's figures at the end, also after Ctrl-C.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict

from grid import config
from grid.client import send_all, task_bodies
from grid.daemons import lifecycle, supervisor
from grid.daemons.worker import cpu_count
from grid.errors import GridError
from grid.fleet import FleetSize
from grid.fleet.zygote import make_zygote
from grid.local import report
from grid.local.plan import (DEFAULT_DIR, DEFAULT_TASKS, WORK_PER_MESSAGE, Phase, Plan, RunFolder, default_dir,
                             make_plan, paced_batch, resume_plan)
from grid.local.processes import MAINS, SCALE_IN_COOLDOWN, STARTED, Processes, role_env
from grid.local.stats import StatsListener
from grid.local.view import View, live_percentiles
from grid.queues import open_broker
from grid.queues.base import MAX_BATCH
from grid.store.sqlite import ResultStore

SCALE_IN_PATIENCE = 30.0  # seconds, beyond the policy's halving steps and cooldowns, to wait for zero workers
COLLECT_PATIENCE = 10.0  # seconds the collector gets to store what is on the results queue after a Ctrl-C
SAMPLE_PERIOD = 0.1  # seconds between samples of the run (the view shows one every --interval)
END_POLL = 0.01  # seconds between checks for the end of the work once it is near: the end is known to within this
INTERRUPT_POLL = 0.05  # seconds: how soon grid local's sleeps notice a Ctrl-C


def add_parser(commands) -> None:
    """The `grid local` subcommand, for grid.cli."""
    p = commands.add_parser("local", help="run the whole grid on this machine, with a live view and a report",
                            description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", metavar="PATH", help=f"run folder (default: ./{DEFAULT_DIR}/<timestamp>); an existing "
                   "one is resumed")
    p.add_argument("--tasks", type=config.positive(int), metavar="N",
                   help="a quick run of N tasks produced at once, instead of the demo's story (--rate alone: "
                   f"{DEFAULT_TASKS} tasks)")
    p.add_argument("--workload", metavar="PATH", help="factorize the numbers of PATH (one per line) instead")
    p.add_argument("--bits", metavar="MIN:MAX", help="sizes of the prime factors, bits (default: the producer's "
                   "prime_min_bits:prime_max_bits)")
    p.add_argument("--factors", type=config.positive(int), metavar="K", help="prime factors per number (default 2)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of the numbers (default: a random one, kept in "
                   "run.json)")
    p.add_argument("--rate", type=config.positive(float), metavar="R", help="produce at most R tasks per second")
    p.add_argument("--tasks-per-message", type=config.positive(int), metavar="K", help="tasks bundled in one message "
                   f"(default: about {WORK_PER_MESSAGE * 1000:g} ms of work, fewer in small runs; 1 with --rate "
                   "or --workload)")
    p.add_argument("--max-workers", type=config.positive(int), metavar="W", help="most worker processes (default: one "
                   "per CPU)")
    p.add_argument("--interval", type=config.positive(float), default=1.0, metavar="S", help="seconds between updates "
                   "of the view (default 1)")
    p.add_argument("--timescale", type=config.positive(float), metavar="F", help="the story's phases last F times as "
                   "long, its burst is F times as large (default 1; 0.2 plays it in a fifth of the time)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """`grid local` with its flags: make or resume the run folder's plan, then run a session of it."""
    folder = RunFolder(args.dir or default_dir())
    resuming = folder.exists()
    folder.check_idle()
    plan, numbers = (resume_plan(args, folder), None) if resuming else make_plan(args)
    folder.create()
    if numbers:
        with open(folder.workload, "w") as out:
            out.writelines(f"{n}\n" for n in numbers)
    folder.save(plan)
    max_workers = args.max_workers or cpu_count()
    session = Session(folder, plan, max_workers, args.interval)
    what = f"the story: {story_text(session.phases)}" if session.phases else f"{plan.tasks_per_message} per message"
    print(f"grid local: {'resuming' if resuming else 'starting'} {folder.path}: {plan.tasks} tasks "
          f"({plan.produced} produced before), {what}, 0..{max_workers} workers; "
          f"logs in {os.path.join(folder.path, 'logs')}", flush=True)
    return session.run()


def story_text(phases: list[Phase]) -> str:
    """The phases of a story, as its run announces them."""
    def what(phase: Phase) -> str:
        if phase.tasks:
            return f"{phase.name} {phase.tasks} tasks at once (at most {phase.seconds:g} s)"
        if phase.rate:
            return f"{phase.name} {phase.rate:g} tasks/s for {phase.seconds:g} s"
        return f"{phase.name} {phase.seconds:g} s"
    return ", ".join(map(what, phases))


def wait_for_next_sample(period: float, near: bool, done: Callable[[], float | None],
                         stop: lifecycle.Stop) -> float | None:
    """Wait `period` seconds (less after a Ctrl-C) for the next sample. When the end is `near`, check `done()` every
    END_POLL meanwhile: the monotonic time it says the end came, once it does, or None."""
    due = time.monotonic() + period
    while near and not stop.requested and time.monotonic() < due:
        stop.sleep(min(END_POLL, due - time.monotonic()))
        if (end := done()) is not None:
            return end
    stop.sleep(due - time.monotonic())
    return None


class Session:
    """One session of a run folder (a run resumed is another session): start the daemons, sample and show (and play
    the plan's story, unless a session before this one started it), stop, report."""

    def __init__(self, folder: RunFolder, plan: Plan, max_workers: int, interval: float):
        self._start, self._started_at = time.monotonic(), time.time()  # the run's start-up counts from here
        self.folder, self.plan, self.interval = folder, plan, interval
        self.max_workers = max_workers
        # Before a thread, socket or database exists; the worker's modules too, for the supervisor's own zygote.
        zygote = make_zygote(MAINS, stop_with_parent=False, spares=len(STARTED))
        self.stats = StatsListener("")
        self.env = role_env(folder, plan, max_workers, self.stats.port)
        self.cfg = {role: config.load(role, environ=self.env) for role in ("producer", "worker", "collector")}
        self.stats.latency_name = self.cfg["collector"].stats_prefix + "latency"
        self.broker = open_broker(folder.broker_url)
        self.tasks = self.broker.open_queue(self.cfg["worker"].tasks_queue_name,
                                            max_receive_count=self.cfg["worker"].max_receive_count)
        self.results = self.broker.open_queue(self.cfg["worker"].results_queue_name,
                                              max_receive_count=self.cfg["worker"].max_receive_count)
        self.store = ResultStore(folder.store)
        self.stored_before = self.store.counts()  # counting the store is a scan: live figures come from statsd
        self.interrupts = lifecycle.Stop(force_on_repeat=False, poll=INTERRUPT_POLL)  # Ctrl-Cs: counted, not fatal
        self.daemons = Processes(folder, self.env, self.interrupts, zygote)
        self.timeline = report.Timeline()
        self.view: View | None = None  # once there is a sample to show
        self.segment: dict | None = None
        self.first_segment = len(plan.segments)  # this session's segments follow
        self.sender: threading.Thread | None = None
        self.sender_error: str | None = None
        # A story is played once: a session after one that started producing produces the rest at once.
        self.phases = plan.phases if not plan.segments else []
        self.next_phase = 0  # index in self.phases
        self.phase_due = 0.0  # t when the current phase's time is up
        self.closed = False

    # -- the session ------------------------------------------------------------------------------------------
    def run(self) -> int:
        failure = None
        with self.interrupts.on_signals():
            try:
                self.start_daemons()  # before the first sample: on SQS its queue read is a round trip
                first = self.sample()
                self.view = View(self.timeline, self.plan.tasks, self.folder.path)
                with self.view:
                    self.play(first)
                    failure = self.watch()
                    self.stop_daemons(clean=failure is None and not self.interrupts.requested)
                    self.close()
                    self.view.update()  # the final figures: the summary's
            finally:
                self.close()
                self.write_report()
                self.store.close()
                self.broker.close()
        if failure:
            raise GridError(failure)
        return 0

    def start_daemons(self) -> None:
        """All at once, the producer first: the first task is the start of the chain that ends in a computing worker
        (the supervisor, at zero workers, scales out as soon as it sees it)."""
        if not self.phases:
            self.start_production()
        worker_args = [f"--worker-arg=--log-filename={self.folder.log('workers')}"]
        self.daemons.start("supervisor", "--fleet", "local", *worker_args)
        self.daemons.start("collector")

    def watch(self) -> str | None:
        """Sample until the work (and the story) is done and the fleet is back to zero, a daemon fails, or Ctrl-C; the
        failure."""
        shown = time.monotonic()
        sample = self.timeline.samples[-1]
        while not self.interrupts.requested:
            ended = self._until_next_sample()
            show = time.monotonic() - shown >= self.interval * 0.99
            sample = self.sample(latency=show)
            self.play(sample)
            if show:
                self.view.update()
                shown = time.monotonic()
            if failure := self.daemons.failed() or self.sender_error:
                return failure
            if self.timeline.drained_at is None and (ended is not None or self.finished()):
                self.timeline.drained_at = ended if ended is not None else self._since_start(self.stored_at(), sample.t)
            if self.timeline.drained_at is not None and self.scaled_in(sample) and self.story_over(sample):
                return None
        return None

    # -- the story --------------------------------------------------------------------------------------------
    def play(self, sample: report.Sample) -> None:
        """Begin the story's next phase once the one running is over (its producer with it)."""
        if self.next_phase >= len(self.phases) or not self._phase_over(sample):
            return
        phase = self.phases[self.next_phase]
        self.next_phase += 1
        self.timeline.begin_phase(phase.name, sample.t, phase.seconds)
        self.phase_due = sample.t + phase.seconds
        if phase.tasks:
            self.start_production(phase.tasks)
        elif phase.rate:
            self.start_production(phase.produces, rate=phase.rate, tasks_per_message=1)

    def _phase_over(self, sample: report.Sample) -> bool:
        """The time of the phase running is up; or it sent its tasks at once, and they are all done."""
        if self.next_phase == 0 or sample.t >= self.phase_due:
            return True
        burst = self.phases[self.next_phase - 1].tasks > 0
        return burst and not self.daemons.running("producer") and self._queues_empty()

    def story_over(self, sample: report.Sample) -> bool:
        """No story, or its last phase's time is up (the session then also waits for the fleet at zero)."""
        return self.next_phase >= len(self.phases) and sample.t >= self.phase_due

    def _until_next_sample(self) -> float | None:
        """Wait for the next sample; near the end of the work, the session's time when the end was found (or None)."""
        near = self.timeline.drained_at is None and not self.producing()  # stored_at is cheap: no queue call
        found = wait_for_next_sample(min(self.interval, SAMPLE_PERIOD), near, self.stored_at, self.interrupts)
        return self._since_start(found, None)

    def _since_start(self, at: float | None, otherwise: float | None) -> float | None:
        """A monotonic time as seconds since the session started; `otherwise` when it is None."""
        return otherwise if at is None else at - self._start

    def finished(self) -> bool:
        """The work is done: every task has a stored result, or none is left to do (`drained`: the tasks that went to
        a dead-letter queue have none)."""
        return self.all_stored() or self.drained()

    def all_stored(self) -> bool:
        return self.stored_at() is not None

    def stored_at(self) -> float | None:
        """When every task of the plan had a stored result (time.monotonic()), else None: when the collector's count
        that completed them came, with no queue call. Not when a check found it: this process may have been in a
        queue read of its own meanwhile (on SQS a round trip)."""
        name = self.cfg["collector"].stats_prefix + "results_stored"
        stored, at = self.stats.counted(name)
        if self.stored_before.total + stored < self.plan.tasks or self.producing():
            return None
        return time.monotonic() if at is None else at

    def drained(self) -> bool:
        """Everything produced, and no task or result message left anywhere but the dead-letter queues."""
        return not self.producing() and self._queues_empty()

    def _queues_empty(self) -> bool:
        return self.tasks.counts().total == 0 and self.results.counts().total == 0

    def scaled_in(self, sample: report.Sample) -> bool:
        waited = sample.t - self.timeline.drained_at
        patience = SCALE_IN_PATIENCE + 2 * SCALE_IN_COOLDOWN + 2 * self.max_workers
        return (sample.running == 0 and sample.target == 0) or waited > patience

    def stop_daemons(self, clean: bool) -> None:
        """Producer first, then the supervisor (its workers drain), then the collector once results are stored."""
        self.stop_production()
        self.daemons.stop("supervisor")
        if not clean:
            self._wait_for(lambda: self.results.counts().total == 0, COLLECT_PATIENCE)
        self.daemons.stop("collector")

    def close(self) -> None:
        """Whatever happened, once: stop what still runs, record what was produced, take the last sample (counted in
        the store)."""
        if self.closed:
            return
        self.closed = True
        for role in list(self.daemons.procs):
            self.daemons.stop(role)
        if self.daemons.zygote is not None:
            self.daemons.zygote.close()
        self.folder.record_pids(None)
        self.stop_production()
        self.stats.close()
        self.sample(final=True)
        self.timeline.end_phase(self.timeline.samples[-1].t)
        self.folder.save(self.plan)

    # -- production -------------------------------------------------------------------------------------------
    def start_production(self, count: int | None = None, rate: float | None = None,
                         tasks_per_message: int | None = None) -> None:
        """Produce `count` tasks (default: what the plan has left), at `rate` (default the plan's), as a new segment of
        the plan; the producer before, if it still runs, stops first."""
        self.stop_production()
        left = self.plan.tasks - self.plan.produced
        count, rate = min(left, count or left), rate or self.plan.rate
        if count <= 0:
            return
        k = len(self.plan.segments)
        job = f"{os.path.basename(self.folder.path)}-{k + 1}"
        self.segment = {"job": job, "seed": self.plan.seed + k, "asked": count, "sent": 0, "start": self.plan.produced}
        self.plan.segments.append(self.segment)
        self.folder.save(self.plan)
        if self.plan.workload:
            self.sender = threading.Thread(target=self._send_workload, name="grid-local-workload", daemon=True)
            self.sender.start()
            return
        flags = [] if tasks_per_message is None else ["--tasks-per-message", str(tasks_per_message)]
        if rate:
            flags += ["--rate", str(rate), "--batch-size", str(paced_batch(rate))]
        self.daemons.start("producer", "--count", str(count), "--seed", str(self.segment["seed"]), "--job", job,
                           *flags)

    def producing(self) -> bool:
        """A producer runs, or a phase of the story that produces is still to come."""
        to_come = any(phase.produces for phase in self.phases[self.next_phase:])
        return to_come or self.daemons.running("producer") or (self.sender is not None and self.sender.is_alive())

    def stop_production(self) -> None:
        if self.sender is not None:
            self.sender.join()
        elif self.daemons.running("producer"):
            self.daemons.stop("producer")
        self._count_sent()

    def _count_sent(self) -> None:
        """The segment's tasks sent: what this session's producers sent (their statsd counter), less the earlier
        segments' share."""
        if self.segment is not None and not self.plan.workload:
            earlier = sum(s["sent"] for s in self.plan.segments[self.first_segment:-1])
            self.segment["sent"] = self._stat("producer", "throughput") - earlier

    def _send_workload(self) -> None:
        """The workload's numbers from where the last session stopped, a batch of messages at a time."""
        with open(self.folder.workload) as f:
            numbers = [int(line) for line in f][self.segment["start"]:]
        chunk = (paced_batch(self.plan.rate) if self.plan.rate else MAX_BATCH) * self.plan.tasks_per_message
        for offset in range(0, len(numbers), chunk):
            if self.interrupts.requested:
                return
            self._pace(offset)
            part = numbers[offset:offset + chunk]
            try:
                send_all(self.tasks, task_bodies(part, self.segment["job"], self.plan.tasks_per_message,
                                                 first=self.segment["start"] + offset + 1))
            except GridError as e:
                self.sender_error = f"sending the workload failed: {e}"
                return
            self.segment["sent"] += len(part)

    def _pace(self, sent: int) -> None:
        if self.plan.rate:
            self.interrupts.sleep(self._start + sent / self.plan.rate - time.monotonic())

    # -- sampling ---------------------------------------------------------------------------------------------
    def sample(self, latency: bool = True, final: bool = False) -> report.Sample:
        """The grid now; with `latency`, the p50/p99 of the results stored since the last such sample. The `final`
        one counts the results in the store (a scan), which the summary reports."""
        self._count_sent()
        tasks = self.tasks.counts()
        fleet, target = self._fleet()
        p50, p99 = live_percentiles(self.stats.take_latencies()) if latency else (None, None)
        if final:
            counts = self.store.counts()
            done, errors = counts.total, counts.errors
        else:
            done = self.stored_before.total + self._stat("collector", "results_stored")
            errors = self.stored_before.errors + self._stat("worker", "task_errors")
        sample = report.Sample(
            t=time.monotonic() - self._start, produced=self.plan.produced, backlog=tasks.visible + tasks.delayed,
            in_flight=tasks.in_flight, workers=fleet.in_service, target=target, running=fleet.running,
            done=done, errors=errors, duplicates=self._stat("collector", "duplicates"), p50=p50, p99=p99)
        self.timeline.add(sample)
        return sample

    def _fleet(self) -> tuple[FleetSize, int]:
        """The fleet and its target at the supervisor's last step in this session (none before its first)."""
        status = supervisor.read_status(supervisor.status_path(self.folder.broker_url))
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

    def _wait_for(self, condition, timeout: float) -> None:
        """Until `condition()`, `timeout` seconds, or a second Ctrl-C."""
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline and self.interrupts.signals < 2:
            time.sleep(0.02)
