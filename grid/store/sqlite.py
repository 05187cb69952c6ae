"""The result store in a SQLite file: one row per stored message, keyed by task id range.

WAL, synchronous=NORMAL: a result acknowledged by `add` is in the OS, so it survives a crash of any process, though
not a power loss (FULL's fsync per commit cost several times the store's time: docs/benchmarks.md). One object per
thread; other processes may read the same file while a collector writes it.
"""
from __future__ import annotations

import array
import bisect
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence

from grid import sqlite
from grid.errors import ConfigError
from grid.messages import Code, Result, ResultRun, decode_results, encode_results
from grid.store.base import DEFAULT_PERCENTILES, Added, Store, StoreCounts, id_key, latency, percentile

BUSY_TIMEOUT = 10.0  # seconds: a reader (grid results, the live view) may hold the file briefly

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY,   -- arrival order
    id_prefix TEXT NOT NULL,   -- the row holds the results of tasks id_prefix || n for id_start <= n < id_stop
    id_start INTEGER NOT NULL, -- -1 (and id_stop 0): one task whose id does not end in a number, id_prefix
    id_stop INTEGER NOT NULL,
    job TEXT,
    error_code INTEGER,        -- NULL: all answers; else the row is one result, this error
    latencies BLOB,            -- float64 completed_at - submitted_at of each result that has both
    body TEXT NOT NULL         -- the results as a result message (grid.messages), decoded when read
);
CREATE INDEX IF NOT EXISTS runs_by_id ON runs (id_prefix, id_start, id_stop, error_code);  -- dedup reads no row
"""
# One row per stored message, not per result: a compact bundle of answers (a ResultRun) is stored as it came, so the
# collector's work per result is a small fraction of a row's (docs/benchmarks.md), CPU the workers need.
# The id ranges of the rows never overlap: an arriving result is a duplicate where a row covers its id already,
# except that a later answer replaces a stored worker fault (500: transient, the task was retried).
_OVERLAPS = "SELECT seq, id_start, id_stop, error_code FROM runs WHERE id_prefix = ? AND id_start < ? " \
            "ORDER BY id_start DESC"
_SPANS = "SELECT id_start, id_stop FROM runs WHERE id_prefix = ? AND id_start >= ? AND id_start < ?"
_BEFORE = "SELECT id_start, id_stop FROM runs WHERE id_prefix = ? AND id_start < ? ORDER BY id_start DESC LIMIT 1"
WINDOW_MIN_RUNS = 3  # runs of one prefix in one add, from which their stored neighbours are read at once
WINDOW_SPREAD = 8  # ... as long as the ids between their first and last are at most this many times theirs
_INSERT = ("INSERT INTO runs (id_prefix, id_start, id_stop, job, error_code, latencies, body)"
           " VALUES (?, ?, ?, ?, ?, ?, ?)")


class ResultStore(Store):
    """Results by task id in a SQLite file (module docstring)."""

    def __init__(self, path: str | os.PathLike, *, source: str = "result store path"):
        self.path = self.location = os.fspath(path)
        self._db = _connect(self.path, source)

    def add(self, items: Iterable[Result | ResultRun]) -> Added:
        """Store results and runs of results in one transaction; a task id already stored keeps its first answer."""
        items = list(items)
        stored = offered = 0
        pending: dict[tuple[str, int], tuple] = {}  # rows of lone results, inserted together: one statement
        clear: list[tuple] = []  # rows of runs that overlap nothing stored, inserted together
        with self._db:
            windows = self._windows(items)
            for item in items:
                if isinstance(item, ResultRun):
                    self._insert(pending)
                    offered += item.count
                    window = windows.get(item.id_prefix)
                    if window is not None and window.take(item.id_start, item.id_start + item.count):
                        clear.append(_run_row(item))
                        stored += item.count
                        continue
                    self._insert_runs(clear)
                    windows.pop(item.id_prefix, None)  # the rows of this prefix may change now: read them again
                    stored += self._add_run(item)
                else:
                    offered += 1
                    stored += self._add_result(item, pending)
            self._insert(pending)
            self._insert_runs(clear)
        return Added(stored, offered - stored)

    def counts(self, job: str | None = None) -> StoreCounts:
        where, args = _job_filter(job)
        rows = self._db.execute(f"SELECT error_code, sum(id_stop - id_start) FROM runs {where} GROUP BY error_code",
                                args)
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
        where, args = _job_filter(job, "latencies IS NOT NULL")
        values = array.array("d")
        for (blob,) in self._db.execute(f"SELECT latencies FROM runs {where}", args):
            values.frombytes(blob)
        ordered = sorted(values)
        return {p: percentile(ordered, p) for p in percentiles}

    def results(self, job: str | None = None) -> Iterator[Result]:
        """The stored results in arrival order."""
        where, args = _job_filter(job)
        for (body,) in self._db.execute(f"SELECT body FROM runs {where} ORDER BY seq", args):
            yield from decode_results(body)

    def last(self, limit: int = 5) -> list[Result]:
        """The `limit` results stored last, newest first."""
        newest: list[Result] = []
        for (body,) in self._db.execute("SELECT body FROM runs ORDER BY seq DESC"):
            newest += reversed(decode_results(body))
            if len(newest) >= limit:
                break
        return newest[:limit]

    def jobs(self) -> list[str]:
        return [job for (job,) in self._db.execute("SELECT DISTINCT job FROM runs WHERE job IS NOT NULL ORDER BY job")]

    def close(self) -> None:
        self._db.close()

    def _windows(self, items: list[Result | ResultRun]) -> dict[str, _Spans]:
        """For each prefix of several runs (and no lone result, which changes rows on the way), the stored id ranges
        between their first and last ids: two reads instead of one per run. None where that span is far wider than
        the runs (an old run among new ones): there each run reads its own."""
        if any(not isinstance(item, ResultRun) for item in items):
            return {}
        by_prefix: dict[str, list[ResultRun]] = {}
        for run in items:
            by_prefix.setdefault(run.id_prefix, []).append(run)
        windows = {}
        for prefix, runs in by_prefix.items():
            low, high = min(r.id_start for r in runs), max(r.id_start + r.count for r in runs)
            if len(runs) >= WINDOW_MIN_RUNS and high - low <= WINDOW_SPREAD * sum(r.count for r in runs):
                rows = self._db.execute(_SPANS, (prefix, low, high)).fetchall()
                rows += self._db.execute(_BEFORE, (prefix, low)).fetchall()
                windows[prefix] = _Spans(sorted(rows))
        return windows

    def _insert_runs(self, rows: list[tuple]) -> None:
        if rows:
            self._db.executemany(_INSERT, rows)
            rows.clear()

    def _add_run(self, run: ResultRun) -> int:
        if self._covering(run.id_prefix, run.id_start, run.id_start + run.count):
            pending: dict[tuple[str, int], tuple] = {}  # some are stored already: one by one
            stored = sum(self._add_result(r, pending) for r in run.results())
            self._insert(pending)
            return stored
        self._db.execute(_INSERT, _run_row(run))
        return run.count

    def _add_result(self, r: Result, pending: dict[tuple[str, int], tuple]) -> int:
        """Add the row of `r` to `pending` unless its task id has an answer (stored, or pending) other than a fault."""
        key = prefix, number = id_key(r.task_id)
        if key in pending:
            if pending[key][4] != Code.WORKER_FAULT:
                return 0
        elif covering := self._covering(prefix, number, number + 1):
            seq, code = covering[0]
            if code != Code.WORKER_FAULT:
                return 0
            self._db.execute("DELETE FROM runs WHERE seq = ?", (seq,))
        seconds = latency(r)
        pending.pop(key, None)  # a replaced fault: the answer goes last, in arrival order
        pending[key] = (prefix, number, number + 1, r.job, r.error_code,
                        None if seconds is None else _latency_blob((seconds,)), encode_results([r]))
        return 1

    def _insert(self, pending: dict[tuple[str, int], tuple]) -> None:
        if pending:
            self._db.executemany(_INSERT, pending.values())
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


def _run_row(run: ResultRun) -> tuple:
    return (run.id_prefix, run.id_start, run.id_start + run.count, run.job, None, _latency_blob(run.latencies),
            run.body)


def _latency_blob(latencies: Sequence[float]) -> bytes | None:
    return array.array("d", latencies).tobytes() if latencies else None


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
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'results'").fetchone():
        db.close()
        raise ConfigError(f"{source} {path!r} was written by an older grid (a row per result), which this one does not "
                          "read: give a new path, or move the file away")
    db.isolation_level = ""  # `with db:` wraps each add in one transaction
    return db


def _prepare(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA)
