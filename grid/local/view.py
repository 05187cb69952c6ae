"""The live view of `grid local`: a rich table on a terminal, a plain line per interval otherwise.

Its latency figures are the report's and `grid results`'s: `grid.store.percentile` of the latencies stored since the
previous sample. Its overall figures are the summary's: `Timeline.overall`, over the same samples.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from grid.local.report import Timeline
from grid.store import format_seconds, percentile

LIVE_PERCENTILES = (50, 99)
TITLE_WIDTH = 80  # columns: the title is kept on one line of a terminal this wide


def live_percentiles(latencies: Sequence[float]) -> tuple[float | None, float | None]:
    """The p50 and p99 of `latencies` (seconds), as every reader of the store computes them; None when empty."""
    ordered = sorted(latencies)
    p50, p99 = (percentile(ordered, p) for p in LIVE_PERCENTILES)
    return p50, p99


def phase_text(timeline: Timeline) -> str | None:
    """The phase of a story running now and how far into it ("stream 12/20 s"), or None."""
    span, s = timeline.phase, timeline.samples[-1]
    if span is None:
        return None
    return f"{span.name} {s.t - span.start:.0f}" + ("" if span.planned is None else f"/{span.planned:.0f}") + " s"


def overall_text(timeline: Timeline) -> str:
    """Tasks per second over the run to its last task done, and over how long: the summary's throughput."""
    overall = timeline.overall()
    return f"{overall.rate:.0f}/s over {overall.seconds:.1f} s"


def status_line(timeline: Timeline, planned: int) -> str:
    """One line per interval, for logs and pipes."""
    s, phase = timeline.samples[-1], phase_text(timeline)
    return (f"t={s.t:.1f}s " + ("" if phase is None else f"phase {phase}: ") +
            f"produced {s.produced}/{planned} messages waiting {s.backlog} in flight {s.in_flight} "
            f"workers {s.workers}/{s.target} done {s.done} errors {s.errors} duplicates {s.duplicates} "
            f"tasks {timeline.rate_now():.0f}/s now, {overall_text(timeline)} overall; "
            f"latency now p50 {format_seconds(s.p50)} p99 {format_seconds(s.p99)}")


def status_table(timeline: Timeline, planned: int, title: str):
    """The live view: a rich table of the same figures as `status_line`, under a title that never wraps (it is cut
    short with an ellipsis on a terminal narrower than itself)."""
    from rich.table import Table  # here, not at the top: rich is for a terminal, and slow to import (start-up)
    from rich.text import Text  # as rich.table

    s, phase = timeline.samples[-1], phase_text(timeline)
    table = Table(title=Text(title, no_wrap=True, overflow="ellipsis"), show_header=False, title_justify="left",
                  min_width=min(len(title), TITLE_WIDTH))
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        *([("phase", phase)] if phase is not None else []),
        ("tasks produced", f"{s.produced} / {planned}"), ("messages waiting", str(s.backlog)),
        ("messages in flight", str(s.in_flight)),
        ("workers (target)", f"{s.workers} ({s.target})"), ("tasks done", str(s.done)), ("errors", str(s.errors)),
        ("duplicates", str(s.duplicates)), ("tasks/s now", f"{timeline.rate_now():.0f}"),
        ("tasks/s overall", overall_text(timeline)),
        ("latency now p50 / p99", f"{format_seconds(s.p50)} / {format_seconds(s.p99)}"),
        ("elapsed", f"{s.t:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def view_title(folder: str) -> str:
    """The live table's title: the run folder's name, cut short to keep the title within TITLE_WIDTH."""
    hint = " (Ctrl-C: stop and report)"
    name = os.path.basename(folder)
    room = TITLE_WIDTH - len("grid local ") - len(hint)
    if len(name) > room:
        name = "..." + name[-(room - 3):]
    return f"grid local {name}{hint}"


class View:
    """A rich live table on a terminal; a plain line per interval otherwise."""

    def __init__(self, timeline: Timeline, planned: int, folder: str):
        self.timeline, self.planned = timeline, planned
        self.title = view_title(folder)
        self.live = None
        if sys.stdout.isatty():
            from rich.live import Live  # as in status_table

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
            print(status_line(self.timeline, self.planned), flush=True)

    def _table(self):
        return status_table(self.timeline, self.planned, self.title)
