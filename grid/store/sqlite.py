"""The result store in a SQLite file: one row per span of results (grid.store.base.Span), its fields as columns.

WAL, synchronous=NORMAL: a result acknowledged by `add` is in the OS, so it survives a crash of any process, though
not a power loss (FULL's fsync per commit cost several times the store's time: docs/benchmarks.md). One object per
thread; other processes may read the same file while a collector writes it.
"""
from __future__ import annotations

import array
import bisect
import math
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence

import orjson

from grid import sqlite
from grid.errors import ConfigError
from grid.store.base import DEFAULT_PERCENTILES, Added, Span, Store, StoreCounts, percentile, spans
from grid.wire import Code, Decimals, Ids, Result, Results, Same, factor_text

BUSY_TIMEOUT = 10.0  # seconds: a reader (grid results, the live view) may hold the file briefly

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    seq INTEGER PRIMARY KEY,   -- arrival order
    id_prefix TEXT NOT NULL,   -- the row holds the results of tasks id_prefix || n for id_start <= n < id_stop
    id_start INTEGER NOT NULL, -- -1 (and id_stop 0): one task whose id does not end in a number, id_prefix
    id_stop INTEGER NOT NULL,
    job TEXT,
    worker TEXT,
    error_code INTEGER,        -- NULL: all answers; else the row is one result, this error
    error_message TEXT,
    inputs TEXT,               -- the numbers as sent, comma-separated (one row of one result: its input as sent)
    factors TEXT,              -- each result's factors as decimal strings, as the wire's compact bundle has them:
                               -- "3*5,3*7" ('*' between one result's, ',' between results'); NULL: an error.
                               -- Rows of an older grid: JSON, [["3", "5"], ["3", "7"]]
    submitted_at BLOB,         -- float64 each, NaN where unknown
    started_at BLOB,
    completed_at BLOB
);
CREATE INDEX IF NOT EXISTS spans_by_id ON spans (id_prefix, id_start, id_stop, error_code);  -- dedup reads no row
"""
# One row per span of results, not per result, so the collector's work per result is a small fraction of a row's
# (docs/benchmarks.md), CPU the workers need.
# The id ranges of the rows never overlap: an arriving result is a duplicate where a row covers its id already,
# except that a later answer replaces a stored worker fault (500: transient, the task was retried).
_OVERLAPS = "SELECT seq, id_start, id_stop, error_code FROM spans WHERE id_prefix = ? AND id_start < ? " \
            "ORDER BY id_start DESC"
_SPANS = "SELECT id_start, id_stop FROM spans WHERE id_prefix = ? AND id_start >= ? AND id_start < ?"
_BEFORE = "SELECT id_start, id_stop FROM spans WHERE id_prefix = ? AND id_start < ? ORDER BY id_start DESC LIMIT 1"
WINDOW_MIN_RUNS = 3  # spans of one prefix in one add, from which their stored neighbours are read at once
WINDOW_SPREAD = 8  # ... as long as the ids between their first and last are at most this many times theirs
# The statements are built from constant fragments (column lists, a job filter of placeholders); every value is a
# bound parameter: what bandit's B608 (SQL built from strings) looks for is not there.
_COLUMNS = ("id_prefix, id_start, id_stop, job, worker, error_code, error_message, inputs, factors, submitted_at, "
            "started_at, completed_at")
_INSERT = f"INSERT INTO spans ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # nosec B608
_OLDER_TABLES = ("results", "runs")  # an older grid's: a row per result, then a row per result message


class ResultStore(Store):
    """Results by task id in a SQLite file (module docstring)."""

    def __init__(self, path: str | os.PathLike, *, source: str = "result store path"):
        self.path = self.location = os.fspath(path)
        self._db = _connect(self.path, source)

    def add(self, items: Iterable[Results | Result]) -> Added:
        """Store results in one transaction; a task id already stored keeps its first answer."""
        found = [span for results in items for span in spans(results)]
        stored = offered = 0
        pending: dict[tuple[str, int], Span] = {}  # lone results, inserted together: one statement
        clear: list[tuple] = []  # rows of runs that overlap nothing stored, inserted together
        with self._db:
            windows = self._windows(found)
            for span in found:
                offered += span.count
                if span.count == 1:
                    stored += self._add_result(span, pending)
                    continue
                self._insert(pending)
                window = windows.get(span.prefix)
                if window is not None and window.take(span.start, span.stop):
                    clear.append(_row(span))
                    stored += span.count
                    continue
                self._insert_runs(clear)
                windows.pop(span.prefix, None)  # the rows of this prefix may change now: read them again
                stored += self._add_run(span)
            self._insert(pending)
            self._insert_runs(clear)
        return Added(stored, offered - stored)

    def counts(self, job: str | None = None) -> StoreCounts:
        where, args = _job_filter(job)
        sql = f"SELECT error_code, sum(id_stop - id_start) FROM spans {where} GROUP BY error_code"  # nosec B608
        rows = self._db.execute(sql, args)
        by_code = {code: count for code, count in rows}
        ok = by_code.pop(None, 0)
        errors = sum(by_code.values())
        return StoreCounts(ok + errors, ok, errors, dict(sorted(by_code.items())))

    def latency_percentiles(self, job: str | None = None,
                            percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict[float, float | None]:
        """Latency (seconds) at each percentile, interpolated linearly between ranks (numpy's default); None if none."""
        for p in percentiles:
            if not 0 <= p <= 100:
                raise ValueError(f"percentile {p!r}: must be 0..100")
        where, args = _job_filter(job)
        values: list[float] = []
        sql = f"SELECT submitted_at, completed_at FROM spans {where}"  # nosec B608
        for submitted, completed in self._db.execute(sql, args):
            values += [c - s for s, c in zip(_times(submitted), _times(completed)) if s == s and c == c]  # not NaN
        ordered = sorted(values)
        return {p: percentile(ordered, p) for p in percentiles}

    def results(self, job: str | None = None) -> Iterator[Result]:
        """The stored results in arrival order."""
        where, args = _job_filter(job)
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM spans {where} ORDER BY seq", args):  # nosec B608
            yield from _results(row)

    def last(self, limit: int = 5) -> list[Result]:
        """The `limit` results stored last, newest first."""
        newest: list[Result] = []
        for row in self._db.execute(f"SELECT {_COLUMNS} FROM spans ORDER BY seq DESC"):  # nosec B608
            newest += reversed(list(_results(row)))
            if len(newest) >= limit:
                break
        return newest[:limit]

    def jobs(self) -> list[str]:
        return [job for (job,) in self._db.execute("SELECT DISTINCT job FROM spans WHERE job IS NOT NULL ORDER BY job")]

    def close(self) -> None:
        self._db.close()

    def _windows(self, found: list[Span]) -> dict[str, _Spans]:
        """For each prefix of several runs (and no lone result, which changes rows on the way), the stored id ranges
        between their first and last ids: two reads instead of one per run. None where that span is far wider than
        the runs (an old run among new ones): there each run reads its own."""
        if any(span.count == 1 for span in found):
            return {}
        by_prefix: dict[str, list[Span]] = {}
        for run in found:
            by_prefix.setdefault(run.prefix, []).append(run)
        windows = {}
        for prefix, runs in by_prefix.items():
            low, high = min(r.start for r in runs), max(r.stop for r in runs)
            if len(runs) >= WINDOW_MIN_RUNS and high - low <= WINDOW_SPREAD * sum(r.count for r in runs):
                rows = self._db.execute(_SPANS, (prefix, low, high)).fetchall()
                rows += self._db.execute(_BEFORE, (prefix, low)).fetchall()
                windows[prefix] = _Spans(sorted(rows))
        return windows

    def _insert_runs(self, rows: list[tuple]) -> None:
        if rows:
            self._db.executemany(_INSERT, rows)
            rows.clear()

    def _add_run(self, run: Span) -> int:
        if self._covering(run.prefix, run.start, run.stop):
            pending: dict[tuple[str, int], Span] = {}  # some are stored already: one by one
            stored = sum(self._add_result(single, pending) for single in run.singles())
            self._insert(pending)
            return stored
        self._db.execute(_INSERT, _row(run))
        return run.count

    def _add_result(self, span: Span, pending: dict[tuple[str, int], Span]) -> int:
        """Add `span` (of one result) to `pending` unless its task id has an answer (stored, or pending) other than a
        fault."""
        key = span.prefix, span.start
        if key in pending:
            if pending[key].error_code != Code.WORKER_FAULT:
                return 0
        elif covering := self._covering(span.prefix, span.start, span.stop):
            seq, code = covering[0]
            if code != Code.WORKER_FAULT:
                return 0
            self._db.execute("DELETE FROM spans WHERE seq = ?", (seq,))
        pending.pop(key, None)  # a replaced fault: the answer goes last, in arrival order
        pending[key] = span
        return 1

    def _insert(self, pending: dict[tuple[str, int], Span]) -> None:
        if pending:
            self._db.executemany(_INSERT, map(_row, pending.values()))
            pending.clear()

    def _covering(self, prefix: str, start: int, stop: int) -> list[tuple[int, int | None]]:
        """(seq, error_code) of the rows holding a task id prefix + n, start <= n < stop."""
        found = []
        for seq, row_start, row_stop, code in self._db.execute(_OVERLAPS, (prefix, stop)):
            if row_stop <= start:  # rows never overlap: ordered by start, the ones before end before this one
                break
            found.append((seq, code))
        return found


class _Spans:
    """Disjoint id ranges [start, stop) of one prefix, in order."""

    def __init__(self, spans: list[tuple[int, int]]):
        self.starts = [start for start, _ in spans]
        self.stops = [stop for _, stop in spans]

    def take(self, start: int, stop: int) -> bool:
        """Add [start, stop) if it overlaps none; whether it was added."""
        i = bisect.bisect_right(self.starts, start)
        if (i > 0 and self.stops[i - 1] > start) or (i < len(self.starts) and self.starts[i] < stop):
            return False
        self.starts.insert(i, start)
        self.stops.insert(i, stop)
        return True


def _row(span: Span) -> tuple:
    r = span.results
    factors = None if span.error_code is not None else factor_text(r.factors)
    inputs = r.inputs[0] if span.count == 1 else ",".join(r.inputs)
    return (span.prefix, span.start, span.stop, r.jobs[0], r.workers[0], span.error_code, r.error_messages[0],
            inputs, factors, _blob(r.submitted_at), _blob(r.started_at), _blob(r.completed_at))


def _results(row: tuple) -> Results:
    prefix, start, stop, job, worker, code, message, inputs, factors, submitted, started, completed = row
    count = stop - start
    ids = Ids(prefix, start, count) if start >= 0 else [prefix]
    return Results(ids, [inputs] if count == 1 else inputs.split(","),
                   [None] if factors is None else _factors(factors),
                   Same(code, count), Same(message, count), Same(job, count), Same(worker, count),
                   _optional(_times(submitted)), _optional(_times(started)), _optional(_times(completed)))


def _factors(text: str) -> Decimals:
    return Decimals(orjson.loads(text)) if text.startswith("[") else Decimals(text=text)  # "[": an older grid's row


def _blob(column: Sequence[float | None]) -> bytes:
    """A column of times as float64, NaN where unknown."""
    if isinstance(column, Same):
        return (array.array("d", [math.nan if column.value is None else column.value]) * len(column)).tobytes()
    try:
        return array.array("d", column).tobytes()
    except TypeError:  # a None among them
        return array.array("d", [math.nan if t is None else t for t in column]).tobytes()


def _times(blob: bytes) -> array.array:
    times = array.array("d")
    times.frombytes(blob)
    return times


def _optional(times: array.array) -> list[float | None]:
    return [t if t == t else None for t in times]  # NaN: unknown


def _job_filter(job: str | None, *conditions: str) -> tuple[str, tuple]:
    clauses, args = list(conditions), ()
    if job is not None:
        clauses.append("job = ?")
        args = (job,)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


def _connect(path: str, source: str) -> sqlite3.Connection:
    try:
        db = sqlite.connect(path, timeout=BUSY_TIMEOUT, prepare=_prepare)
    except (OSError, sqlite3.Error) as e:
        raise ConfigError(f"{source} {path!r}: cannot open or create the result store ({e}); "
                          "give a writable file path") from e
    older = ", ".join("?" * len(_OLDER_TABLES))
    sql = f"SELECT 1 FROM sqlite_master WHERE type = 'table' AND name IN ({older})"  # nosec B608
    if db.execute(sql, _OLDER_TABLES).fetchone():
        db.close()
        raise ConfigError(f"{source} {path!r} was written by an older grid (a row per result, or per result message), "
                          "which this one does not read: give a new path, or move the file away")
    db.isolation_level = ""  # `with db:` wraps each add in one transaction
    return db


def _prepare(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA)
