"""The live view of `grid local`: a rich table on a terminal, a plain line per interval otherwise.

Its latency figures are the report's and `grid results`'s: `grid.store.percentile` of the latencies stored since the
previous sample.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from grid.local.report import Timeline
from grid.store import format_seconds, percentile

LIVE_PERCENTILES = (50, 99)


def live_percentiles(latencies: Sequence[float]) -> tuple[float | None, float | None]:
    """The p50 and p99 of `latencies` (seconds), as every reader of the store computes them; None when empty."""
    ordered = sorted(latencies)
    p50, p99 = (percentile(ordered, p) for p in LIVE_PERCENTILES)
    return p50, p99


def status_line(timeline: Timeline, planned: int) -> str:
    """One line per interval, for logs and pipes."""
    s = timeline.samples[-1]
    return (f"t={s.t:.1f}s produced {s.produced}/{planned} messages waiting {s.backlog} in flight {s.in_flight} "
            f"workers {s.workers}/{s.target} done {s.done} errors {s.errors} duplicates {s.duplicates} "
            f"rate {timeline.rate_now():.0f}/s ({timeline.rate_overall():.0f}/s overall) "
            f"p50 {format_seconds(s.p50)} p99 {format_seconds(s.p99)}")


def status_table(timeline: Timeline, planned: int, title: str):
    """The live view: a rich table of the same figures as `status_line`."""
    from rich.table import Table  # here, not at the top: rich is for a terminal, and slow to import (start-up)

    s = timeline.samples[-1]
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("tasks produced", f"{s.produced} / {planned}"), ("messages waiting", str(s.backlog)),
        ("messages in flight", str(s.in_flight)),
        ("workers (target)", f"{s.workers} ({s.target})"), ("tasks done", str(s.done)), ("errors", str(s.errors)),
        ("duplicates", str(s.duplicates)), ("tasks/s now", f"{timeline.rate_now():.0f}"),
        ("tasks/s overall", f"{timeline.rate_overall():.0f}"),
        ("latency p50 / p99", f"{format_seconds(s.p50)} / {format_seconds(s.p99)}"),
        ("elapsed", f"{s.t:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


class View:
    """A rich live table on a terminal; a plain line per interval otherwise."""

    def __init__(self, timeline: Timeline, planned: int, folder: str):
        self.timeline, self.planned = timeline, planned
        self.title = f"grid local {os.path.basename(folder)} (Ctrl-C: stop and report)"
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
