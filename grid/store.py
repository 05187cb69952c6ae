"""The result store: results by task id, each id once, with latency queries and exports.

Two backends behind one contract (`Store`), chosen by `open_store` from the `result_store` value: a SQLite file
(`ResultStore`, here), or objects in Amazon S3 under `s3://bucket/prefix` (`grid.s3store`).
"""
from __future__ import annotations

import abc
import array
import bisect
import csv
import json
import math
import os
import re
import time
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import urlsplit

from grid.errors import ConfigError, StoreEmpty
from grid.messages import Code, Result, ResultRun, decode_results, encode_results, split_id

EXPORT_FORMATS = ("jsonl", "csv")
DEFAULT_PERCENTILES = (50, 95, 99)
BUSY_TIMEOUT_MS = 10_000  # a reader (grid results, the live view) may hold the file briefly
FIELDS = ("task_id", "job", "n", "factors", "error_code", "error_message", "worker",
          "submitted_at", "started_at", "completed_at", "latency")

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
# collector spends about 0.1 us per result where a row per result cost 8-11 us (the workers' CPU on a small machine).
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


class Store(abc.ABC):
    """What every result store offers: each task id once (its first answer, except that a later answer replaces a
    worker fault, 500: the task was retried), counts, latency percentiles, the results in arrival order, exports."""

    location: str  # where it is, as the result_store parameter names it

    @abc.abstractmethod
    def add(self, items: Iterable[Result | ResultRun]) -> Added:
        """Store results and runs of results; a task id already stored keeps its first answer."""

    @abc.abstractmethod
    def counts(self, job: str | None = None) -> StoreCounts:
        """How many results (of `job`, or all), ok, errors, and errors by code."""

    @abc.abstractmethod
    def latency_percentiles(self, job: str | None = None,
                            percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict[float, float | None]:
        """Latency (seconds) at each percentile, interpolated linearly between ranks (numpy's default); None if none."""

    @abc.abstractmethod
    def results(self, job: str | None = None) -> Iterator[Result]:
        """The stored results in arrival order."""

    @abc.abstractmethod
    def last(self, limit: int = 5) -> list[Result]:
        """The `limit` results stored last, newest first."""

    @abc.abstractmethod
    def jobs(self) -> list[str]:
        """The job names of the stored results, sorted."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the store holds open."""

    def export(self, out: TextIO, fmt: str = "jsonl", job: str | None = None) -> int:
        """Write the results (of `job`, or all) to `out` as JSON lines or CSV; returns how many."""
        if fmt not in EXPORT_FORMATS:
            raise ConfigError(f"export format {fmt!r}: must be one of {', '.join(EXPORT_FORMATS)}")
        records = (export_record(r) for r in self.results(job))
        return _write_csv(out, records) if fmt == "csv" else _write_jsonl(out, records)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


STORE_FORMS = "a file path (SQLite), or s3://bucket/prefix (Amazon S3)"
_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's rules for a bucket name
_IP_ADDRESS = re.compile(r"[0-9]+(\.[0-9]+){3}")
MAX_PREFIX_CHARS = 900  # S3 keys are up to 1024 bytes; the object names under the prefix take the rest


def open_store(location: str, *, source: str = "result store", create: bool = True) -> Store:
    """The result store at `location` (`STORE_FORMS`); a malformed one is a ConfigError naming it and the allowed
    forms. With create=False, a place that holds no store yet is StoreEmpty (exit 2): a reader makes nothing."""
    kind, where = parse_store_location(location)
    if kind == "s3":
        from grid.s3store import S3ResultStore

        bucket, prefix = where
        return S3ResultStore(bucket, prefix, source=source, create=create)
    if not create and not os.path.exists(where):
        raise StoreEmpty(f"{source} {location!r}: no result store there (has a collector run?)")
    return ResultStore(where, source=source)


def parse_store_location(location: object) -> tuple[str, str | tuple[str, str]]:
    """("sqlite", path) or ("s3", (bucket, prefix without its outer slashes)); ConfigError when malformed."""
    if not isinstance(location, str) or not location:
        raise _bad_location(location, "give a file path or an s3:// URL")
    scheme = _URL_SCHEME.match(location)
    if scheme is None:
        return "sqlite", location
    if scheme[1].lower() != "s3":
        raise _bad_location(location, f"unknown scheme {scheme[1]!r}")
    parts = urlsplit(location)
    if parts.query or parts.fragment:
        raise _bad_location(location, "an s3:// URL takes no ?query or #fragment")
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or _IP_ADDRESS.fullmatch(bucket):
        raise _bad_location(location, f"bucket {bucket!r} is not an S3 bucket name (3..63 lowercase letters, digits, "
                                      "'.' or '-', starting and ending with a letter or digit)")
    if "//" in prefix or len(prefix) > MAX_PREFIX_CHARS:
        raise _bad_location(location, f"prefix {prefix!r}: give up to {MAX_PREFIX_CHARS} characters without an "
                                      "empty segment ('//')")
    return "s3", (bucket, prefix)


def _bad_location(location: object, why: str) -> ConfigError:
    return ConfigError(f"result store {location!r}: {why}; allowed: {STORE_FORMS}")


class ResultStore(Store):
    """Results by task id in a SQLite file (WAL, synchronous=NORMAL: a result acknowledged by `add` is in the OS, so it
    survives a crash of any process, though not a power loss; FULL's fsync per commit cost 6x the store's time).

    One object per thread; other processes may read the same file while a collector writes it.
    """

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
        return {p: _percentile(ordered, p) for p in percentiles}

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
        key = prefix, number = _id_key(r.task_id)
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


def _id_key(task_id: str) -> tuple[str, int]:
    """split_id(task_id), or (task_id, -1) for an id that ends in no number."""
    return split_id(task_id) or (task_id, -1)


def _latency_blob(latencies: Sequence[float]) -> bytes | None:
    return array.array("d", latencies).tobytes() if latencies else None


def _percentile(ordered: Sequence[float], p: float) -> float | None:
    if not ordered:
        return None
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


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


def _job_filter(job: str | None, *conditions: str) -> tuple[str, tuple]:
    clauses, args = list(conditions), ()
    if job is not None:
        clauses.append("job = ?")
        args = (job,)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args


def _connect(path: str, source: str) -> sqlite3.Connection:
    give_up = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            db, older = _open(path)
            break
        except sqlite3.OperationalError as e:
            # Another process creating the file at once: switching it to WAL can be refused without a busy wait.
            if e.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY and time.monotonic() < give_up:
                time.sleep(0.002)
                continue
            error = e
        except (OSError, sqlite3.Error) as e:
            error = e
        raise ConfigError(f"{source} {path!r}: cannot open or create the result store ({error}); "
                          "give a writable file path") from error
    if older:
        db.close()
        raise ConfigError(f"{source} {path!r} was written by an older grid (a row per result), which this one does not "
                          "read: give a new path, or move the file away")
    db.isolation_level = ""  # `with db:` wraps each add in one transaction
    return db


def _open(path: str) -> tuple[sqlite3.Connection, bool]:
    """A connection to the store at `path`, made if new, and whether it has the older layout."""
    if path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        older = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'results'").fetchone()
    except BaseException:
        db.close()
        raise
    return db, older is not None
