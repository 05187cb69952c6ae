"""What `grid local` leaves behind: the samples of a run, its summary, report.json and report.png."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from grid.store import format_seconds

REPORT_JSON, REPORT_PNG = "report.json", "report.png"
PERCENTILES = (50, 90, 99)
PHASE_COLOURS = ("#e6e6e6", "#cfe0f3")  # a story's phases on report.png, by turns
FORMAT = 1  # of report.json


@dataclass(frozen=True)
class Sample:
    """The grid at one moment of a run."""

    t: float  # seconds since the run (this session) started
    produced: int  # tasks accepted by the tasks queue
    backlog: int  # task messages waiting (a message carries tasks_per_message tasks)
    in_flight: int  # task messages received, not yet deleted
    workers: int  # in service
    target: int  # the supervisor's desired size
    running: int  # worker processes alive, stopping ones included
    done: int  # results in the store
    errors: int  # of which error results
    duplicates: int  # results the collector dropped as already stored
    p50: float | None = None  # seconds: latency of the results stored since the previous sample
    p99: float | None = None


@dataclass
class PhaseSpan:
    """When a phase of a story ran, in seconds since the run started (`end` None: it still runs)."""

    name: str
    start: float
    end: float | None = None
    planned: float | None = None  # seconds it was to last (a burst: at most)


@dataclass(frozen=True)
class Overall:
    """The tasks done in a session, over the seconds from its start to the last task done (or to now)."""

    tasks: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Timeline:
    """The samples of a run, and the moments that matter for the summary."""

    samples: list[Sample] = field(default_factory=list)
    drained_at: float | None = None  # t when the last task was done (the fleet then scales in)
    scaled_out_at: float | None = None  # t of the supervisor's first step that asked for workers, as it recorded it
    phases: list[PhaseSpan] = field(default_factory=list)  # a story's, in order

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    def begin_phase(self, name: str, t: float, planned: float | None = None) -> None:
        """Phase `name` starts at `t`, and the one before it ends there."""
        self.end_phase(t)
        self.phases.append(PhaseSpan(name, t, planned=planned))

    def end_phase(self, t: float) -> None:
        if self.phases and self.phases[-1].end is None:
            self.phases[-1].end = t

    @property
    def phase(self) -> PhaseSpan | None:
        """The phase running now, if any."""
        return self.phases[-1] if self.phases and self.phases[-1].end is None else None

    def rate_now(self, window: float = 1.0) -> float:
        """Tasks done per second over the last `window` seconds of samples."""
        return self.rate_at(len(self.samples) - 1, window)

    def rate_at(self, i: int, window: float = 1.0) -> float:
        """Tasks done per second over the `window` seconds of samples up to sample `i`."""
        if i < 1:
            return 0.0
        last = self.samples[i]
        start = next((s for s in reversed(self.samples[:i]) if s.t <= last.t - window), self.samples[0])
        return (last.done - start.done) / (last.t - start.t) if last.t > start.t else 0.0

    def overall(self) -> Overall:
        """The live view's "overall" figures and the summary's throughput, one computation for both."""
        return Overall(self.samples[-1].done - self.samples[0].done, self.busy_seconds())

    def first_scale_out(self) -> float | None:
        """When the supervisor first asked for workers (it starts their processes at once): the time of that step
        where it is known, else the first sample that saw it (up to a sample period late)."""
        if self.scaled_out_at is not None:
            return self.scaled_out_at
        return next((s.t for s in self.samples if s.target > 0), None)

    def busy_seconds(self) -> float:
        """From the start to the last task done, or to the end when the work was not finished."""
        return self.samples[-1].t if self.drained_at is None else self.drained_at

    def scale_in(self) -> float | None:
        """Seconds from the last task done to no worker running nor wanted.

        `running` is what the supervisor saw before its last decision, so alone it reads 0 between the first
        scale-out and the next step; the target says the workers were still wanted then.
        """
        if self.drained_at is None:
            return None
        gone = next((s.t for s in self.samples
                     if s.t >= self.drained_at and s.running == 0 and s.target == 0), None)
        return None if gone is None else gone - self.drained_at


# ---- the summary


def summarize(timeline: Timeline, store, *, planned: int, interrupted: bool) -> dict:
    """The run's figures: this session's timeline (its last sample counted in the store) with the result store's
    counts and latency."""
    counts = store.counts()
    latency = store.latency_percentiles(percentiles=PERCENTILES)
    last = timeline.samples[-1]
    overall = timeline.overall()
    return {
        "interrupted": interrupted,
        "tasks_planned": planned,
        "tasks_produced": last.produced,
        "tasks_done": counts.total,
        "tasks_ok": counts.ok,
        "done_this_session": overall.tasks,
        "errors_by_code": {str(code): n for code, n in counts.by_code.items()},
        "duplicates": last.duplicates,
        "left_in_queue": last.backlog + last.in_flight,
        "wall_seconds": last.t,
        "work_seconds": overall.seconds,
        "throughput": overall.rate,
        "latency_seconds": {f"p{p}": v for p, v in latency.items()},
        "peak_workers": max(s.workers for s in timeline.samples),
        "first_scale_out_seconds": timeline.first_scale_out(),
        "scale_in_seconds": timeline.scale_in(),
        "phases": phase_figures(timeline),
    }


def phase_figures(timeline: Timeline) -> list[dict]:
    """Each phase of a story: its span, the tasks done in it, and the fleet in it (the samples it holds)."""
    figures = []
    for span in timeline.phases:
        end = timeline.samples[-1].t if span.end is None else span.end
        inside = [s for s in timeline.samples if span.start <= s.t <= end]
        before = [s for s in timeline.samples if s.t <= span.start]
        start_done = (before or timeline.samples)[-1].done
        figures.append({
            "name": span.name, "start": span.start, "end": end,
            "tasks_done": (inside[-1].done if inside else start_done) - start_done,
            "peak_workers": max((s.workers for s in inside), default=0),
            "workers_at_end": inside[-1].workers if inside else None,
        })
    return figures


def summary_lines(summary: Mapping) -> list[str]:
    errors = ", ".join(f"{code}: {n}" for code, n in summary["errors_by_code"].items()) or "none"
    latency = ", ".join(f"{p} {format_seconds(v)}" for p, v in summary["latency_seconds"].items())
    head = "interrupted" if summary["interrupted"] else "done"
    return [
        f"{head}: {summary['tasks_done']} of {summary['tasks_planned']} tasks have a result "
        f"({summary['tasks_ok']} ok; {summary['done_this_session']} in this run, "
        f"{summary['left_in_queue']} left in the queue)",
        f"wall time {summary['wall_seconds']:.1f} s; {'stopped' if summary['interrupted'] else 'all done'} after "
        f"{summary['work_seconds']:.1f} s: {summary['throughput']:.0f} tasks/s",
        f"latency: {latency}",
        f"errors by code: {errors}; duplicates seen: {summary['duplicates']}",
        f"peak workers {summary['peak_workers']}; first scale-out after {_seconds(summary['first_scale_out_seconds'])}"
        f", scale-in to zero {_seconds(summary['scale_in_seconds'])} after the last task",
        *(f"  {p['name']:<8} {p['start']:5.1f}-{p['end']:5.1f} s: {p['tasks_done']} tasks done, "
          f"{p['peak_workers']} workers at most, {p['workers_at_end']} at its end" for p in summary.get("phases", ())),
    ]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


# ---- the files


def write_json(path: str, summary: Mapping, timeline: Timeline, plan: Mapping) -> None:
    report = {"format": FORMAT, "summary": dict(summary), "plan": dict(plan),
              "drained_at": timeline.drained_at, "scaled_out_at": timeline.scaled_out_at,
              "phases": [asdict(p) for p in timeline.phases], "samples": [asdict(s) for s in timeline.samples]}
    temporary = path + ".tmp"
    with open(temporary, "w") as out:
        json.dump(report, out, indent=1)
    os.replace(temporary, path)


def read_json(path: str) -> tuple[dict, Timeline]:
    with open(path) as f:
        report = json.load(f)
    # scaled_out_at and phases are absent from the reports of older versions
    return report, Timeline([Sample(**s) for s in report["samples"]], report["drained_at"],
                            report.get("scaled_out_at"), [PhaseSpan(**p) for p in report.get("phases", ())])


def plot(path: str, timeline: Timeline, title: str = "grid local") -> None:
    """Backlog, workers and throughput over time, one above the other on one figure, a story's phases shaded and
    named."""
    # Here, not at the top: matplotlib is an extra (grid[report]), and importing it costs a second or more.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    samples = timeline.samples
    t = [s.t for s in samples]
    fig, (queue, fleet, speed) = plt.subplots(3, 1, sharex=True, figsize=(8, 7), constrained_layout=True)
    queue.plot(t, [s.backlog for s in samples], label="backlog (waiting)")
    queue.plot(t, [s.in_flight for s in samples], label="in flight")
    queue.set_ylabel("task messages")
    fleet.step(t, [s.workers for s in samples], where="post", label="in service")
    fleet.step(t, [s.target for s in samples], where="post", linestyle="--", label="target")
    fleet.set_ylabel("workers")
    fleet.yaxis.set_major_locator(MaxNLocator(integer=True))
    speed.plot(t, [timeline.rate_at(i) for i in range(len(samples))], label="tasks/s (over 1 s)")
    speed.set_ylabel("tasks done / s")
    if timeline.phases:  # a story's burst and stream differ a hundredfold: both show on a log scale
        speed.set_yscale("symlog", linthresh=10)
        speed.set_ylabel("tasks done / s (log)")
    speed.set_xlabel("seconds since start")
    end = t[-1] if t else 0.0
    for i, span in enumerate(timeline.phases):
        right = end if span.end is None else span.end
        for ax in (queue, fleet, speed):
            ax.axvspan(span.start, right, color=PHASE_COLOURS[i % len(PHASE_COLOURS)], alpha=0.5, linewidth=0)
        queue.annotate(span.name, xy=((span.start + right) / 2, 1.0), xycoords=("data", "axes fraction"),
                       xytext=(0, 3), textcoords="offset points", ha="center", va="bottom", fontsize=9)
    for ax in (queue, fleet, speed):
        ax.legend(loc="upper right")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
