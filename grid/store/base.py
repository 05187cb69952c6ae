"""The result store's contract (`Store`), its outcome types, the spans of results a store keeps as one row
(`Span`, `spans`), where a store is (`parse_store_location`), and latency as every reader computes and shows it
(`latency`, `percentile`, `format_seconds`): `grid results`, `grid status`, and `grid local`'s live view and
report."""
from __future__ import annotations

import abc
import csv
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import urlsplit

from grid.errors import ConfigError
from grid.wire import Result, Results, has_none, id_run, single, split_id

EXPORT_FORMATS = ("jsonl", "csv")
DEFAULT_PERCENTILES = (50, 95, 99)
FIELDS = ("task_id", "job", "n", "factors", "error_code", "error_message", "worker",
          "submitted_at", "started_at", "completed_at", "latency")


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
    def add(self, items: Iterable[Results | Result]) -> Added:
        """Store the results (each item a message's, say, or a lone Result); a task id already stored keeps its
        first answer."""

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


def parse_store_location(location: object) -> tuple[str, str | tuple[str, str]]:
    """("sqlite", path) or ("s3", (bucket, prefix without its outer slashes)); ConfigError when malformed."""
    if not isinstance(location, str) or not location:
        raise _bad_location(location, "give a file path or an s3:// URL")
    scheme = _URL_SCHEME.match(location)
    if scheme is None:
        return "sqlite", location
    if scheme[1].lower() != "s3":
        raise _bad_location(location, f"unknown scheme {scheme[1]!r}")
    try:
        parts = urlsplit(location)
    except ValueError as e:  # e.g. an unclosed '[' (an IPv6 host)
        raise _bad_location(location, f"malformed URL ({e})") from None
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


def id_key(task_id: str) -> tuple[str, int]:
    """split_id(task_id), or (task_id, -1) for an id that ends in no number: how the stores index a task id."""
    return split_id(task_id) or (task_id, -1)


@dataclass(frozen=True)
class Span:
    """The results of tasks prefix + str(n), start <= n < stop, as a store keeps them in one row: answers (no error)
    of one job and worker, or a single result. start -1 (stop 0): one task whose id ends in no number, `prefix`."""

    prefix: str
    start: int
    stop: int
    results: Results

    @property
    def count(self) -> int:
        return self.stop - self.start

    @property
    def error_code(self) -> int | None:
        return self.results.error_codes[0] if self.count == 1 else None

    def singles(self) -> list[Span]:
        """The span's results, one span each."""
        if self.count == 1:
            return [self]
        return [Span(self.prefix, n, n + 1, self.results[i:i + 1]) for i, n in enumerate(range(self.start, self.stop))]


def spans(results: Results | Result) -> list[Span]:
    """`results` as the spans a store keeps: one for results that count up from a prefix (split_id's reading, so
    that each id has one key) with no error, one job and one worker; else one a result."""
    if isinstance(results, Result):
        results = Results.of([results])
    count = len(results)
    run = id_run(results.ids) if count > 1 else None
    if (run is not None and not run[0][-1:].isdigit() and single(results.error_codes) == (True, None)
            and single(results.jobs)[0] and single(results.workers)[0] and not has_none(results.inputs)):
        return [Span(run[0], run[1], run[1] + count, results)]
    if count == 1:
        prefix, number = id_key(results.ids[0])
        return [Span(prefix, number, number + 1, results)]
    return [span for i in range(count) for span in spans(results[i:i + 1])]


def latency(r: Result) -> float | None:
    """Seconds from a task's submission to its answer; None where either time is unknown."""
    if r.submitted_at is None or r.completed_at is None:
        return None
    return r.completed_at - r.submitted_at


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """The `p`th percentile (0..100) of sorted values, interpolated linearly between ranks (numpy's default); None
    if there are none."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def format_seconds(value: float | None) -> str:
    """A latency as people read it: "-" for none, milliseconds below a second, else seconds."""
    return "-" if value is None else f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def export_record(r: Result) -> dict:
    """A result as a flat record; factors as decimal strings, as on the wire."""
    return {
        "task_id": r.task_id, "job": r.job, "n": r.n,
        "factors": None if r.factors is None else [str(f) for f in r.factors],
        "error_code": r.error_code, "error_message": r.error_message, "worker": r.worker,
        "submitted_at": r.submitted_at, "started_at": r.started_at, "completed_at": r.completed_at,
        "latency": latency(r),
    }


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
