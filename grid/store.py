"""The result store: one SQLite file of results, one row per task id, with latency queries and exports."""
from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO

import orjson

from grid.errors import ConfigError
from grid.messages import Code, Result

EXPORT_FORMATS = ("jsonl", "csv")
DEFAULT_PERCENTILES = (50, 95, 99)
BUSY_TIMEOUT_MS = 10_000  # a reader (grid results, the live view) may hold the file briefly
FIELDS = ("task_id", "job", "n", "factors", "error_code", "error_message", "worker",
          "submitted_at", "started_at", "completed_at", "latency")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    task_id TEXT NOT NULL UNIQUE,
    job TEXT,
    n TEXT,
    factors TEXT,            -- JSON array of decimal strings; NULL for an error
    error_code INTEGER,
    error_message TEXT,
    worker TEXT,
    submitted_at REAL,
    started_at REAL,
    completed_at REAL,
    latency REAL,            -- completed_at - submitted_at, seconds
    seq INTEGER PRIMARY KEY  -- arrival order: the rowid, so rows are appended and need no index of their own
);
CREATE INDEX IF NOT EXISTS results_job_latency ON results (job, latency);
CREATE INDEX IF NOT EXISTS results_job_code ON results (job, error_code);  -- counts() reads it, not the rows
"""
# Each index costs 2-4 us per stored result, in the collector, on the CPU the workers need: latency percentiles over
# all jobs sort the latencies instead (once per report). Stores made before keep their own schema and indexes.
# A worker fault (500) is transient: the task is retried, and its later answer replaces the stored fault.
_UPSERT = f"""
INSERT INTO results ({", ".join(FIELDS)}, seq)
VALUES ({", ".join("?" * (len(FIELDS) + 1))})
ON CONFLICT (task_id) DO UPDATE SET
    {", ".join(f"{f} = excluded.{f}" for f in FIELDS[1:])}, seq = excluded.seq
WHERE results.error_code = {int(Code.WORKER_FAULT)}
"""


@dataclass(frozen=True)
class Added:
    """Outcome of `ResultStore.add`: results written, and results dropped as duplicates of a stored task id."""

    stored: int
    duplicates: int


@dataclass(frozen=True)
class StoreCounts:
    total: int
    ok: int
    errors: int
    by_code: dict[int, int]


class ResultStore:
    """Results by task id in a SQLite file (WAL, synchronous=NORMAL: a result acknowledged by `add` is in the OS, so it
    survives a crash of any process, though not a power loss; FULL's fsync per commit cost 6x the store's time).

    One object per thread; other processes may read the same file while a collector writes it.
    """

    def __init__(self, path: str | os.PathLike, *, source: str = "result store path"):
        self.path = os.fspath(path)
        self._db = _connect(self.path, source)

    def add(self, results: Iterable[Result]) -> Added:
        """Store `results` in one transaction; a task id already stored keeps its first answer (see _UPSERT)."""
        rows = [_row(r) for r in results]
        before = self._db.total_changes
        with self._db:
            (last,) = self._db.execute("SELECT coalesce(max(seq), 0) FROM results").fetchone()
            self._db.executemany(_UPSERT, [(*row, seq) for seq, row in enumerate(rows, last + 1)])
        stored = self._db.total_changes - before
        return Added(stored, len(rows) - stored)

    def counts(self, job: str | None = None) -> StoreCounts:
        where, args = _job_filter(job)
        rows = self._db.execute(f"SELECT error_code, count(*) FROM results {where} GROUP BY error_code", args)
        by_code = {code: count for code, count in rows}
        ok = by_code.pop(None, 0)
        errors = sum(by_code.values())
        return StoreCounts(ok + errors, ok, errors, dict(sorted(by_code.items())))

    def latency_percentiles(self, job: str | None = None,
                            percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict[float, float | None]:
        """Latency (seconds) at each percentile, interpolated linearly between ranks (numpy's default); None if none."""
        where, args = _job_filter(job, "latency IS NOT NULL")
        (count,) = self._db.execute(f"SELECT count(*) FROM results {where}", args).fetchone()
        return {p: self._percentile(where, args, count, p) for p in percentiles}

    def results(self, job: str | None = None) -> Iterator[Result]:
        """The stored results in arrival order."""
        where, args = _job_filter(job)
        for row in self._db.execute(f"SELECT {', '.join(FIELDS[:-1])} FROM results {where} ORDER BY seq", args):
            yield _result(row)

    def last(self, limit: int = 5) -> list[Result]:
        rows = self._db.execute(f"SELECT {', '.join(FIELDS[:-1])} FROM results ORDER BY seq DESC LIMIT ?", (limit,))
        return [_result(row) for row in rows]

    def jobs(self) -> list[str]:
        return [job for (job,) in self._db.execute("SELECT DISTINCT job FROM results WHERE job IS NOT NULL ORDER BY job")]

    def export(self, out: TextIO, fmt: str = "jsonl", job: str | None = None) -> int:
        """Write the results (of `job`, or all) to `out` as JSON lines or CSV; returns how many."""
        if fmt not in EXPORT_FORMATS:
            raise ConfigError(f"export format {fmt!r}: must be one of {', '.join(EXPORT_FORMATS)}")
        records = (export_record(r) for r in self.results(job))
        return _write_csv(out, records) if fmt == "csv" else _write_jsonl(out, records)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _percentile(self, where: str, args: tuple, count: int, p: float) -> float | None:
        if not 0 <= p <= 100:
            raise ValueError(f"percentile {p!r}: must be 0..100")
        if count == 0:
            return None
        rank = (count - 1) * p / 100
        low = math.floor(rank)
        query = f"SELECT latency FROM results {where} ORDER BY latency LIMIT 2 OFFSET ?"
        values = [v for (v,) in self._db.execute(query, (*args, low))]
        if len(values) == 1:
            return values[0]
        return values[0] + (values[1] - values[0]) * (rank - low)


def export_record(r: Result) -> dict:
    """A result as a flat record; factors as decimal strings, as on the wire."""
    return {
        "task_id": r.task_id, "job": r.job, "n": r.n,
        "factors": None if r.factors is None else [str(f) for f in r.factors],
        "error_code": r.error_code, "error_message": r.error_message, "worker": r.worker,
        "submitted_at": r.submitted_at, "started_at": r.started_at, "completed_at": r.completed_at,
        "latency": latency(r),
    }


def latency(r: Result) -> float | None:
    if r.submitted_at is None or r.completed_at is None:
        return None
    return r.completed_at - r.submitted_at


def _write_jsonl(out: TextIO, records: Iterable[dict]) -> int:
    count = 0
    for count, record in enumerate(records, 1):
        out.write(json.dumps(record, separators=(",", ":")) + "\n")
    return count


def _write_csv(out: TextIO, records: Iterable[dict]) -> int:
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for count, record in enumerate(records, 1):
        if record["factors"] is not None:
            record["factors"] = " ".join(record["factors"])
        writer.writerow(record)
    return count


def _row(r: Result) -> tuple:
    factors = None if r.factors is None else orjson.dumps([str(f) for f in r.factors]).decode()
    return (r.task_id, r.job, r.n, factors, r.error_code, r.error_message, r.worker,
            r.submitted_at, r.started_at, r.completed_at, latency(r))


def _result(row: tuple) -> Result:
    task_id, job, n, factors, *rest = row
    return Result(task_id, job, n, None if factors is None else tuple(int(f) for f in orjson.loads(factors)), *rest)


def _job_filter(job: str | None, *conditions: str) -> tuple[str, tuple]:
    clauses, args = list(conditions), ()
    if job is not None:
        clauses.append("job = ?")
        args = (job,)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


def _connect(path: str, source: str) -> sqlite3.Connection:
    try:
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
    except (OSError, sqlite3.Error) as e:
        raise ConfigError(f"{source} {path!r}: cannot open or create the result store ({e}); "
                          "give a writable file path") from e
    db.isolation_level = ""  # `with db:` wraps each add in one transaction
    return db
