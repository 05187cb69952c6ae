"""The result store on Amazon S3: one object per stored batch under s3://bucket/prefix, merged by task id when read.

Objects: `{prefix}/{time}-{collector}-{seq}.jsonl.gz`. `time` is when the collector wrote it (UTC to the microsecond,
20250102T030405.123456Z, never going back within one collector), `collector` the host name and a random token of
the collector process, `seq` its count of objects: keys sort by time, and no two collectors write the same key. An
object is one PUT and is never rewritten. It holds gzip'd lines, each a JSON object of one span of results
(grid.store.base.Span) with a list per field: `{"id_prefix": "job-", "id_start": 1, "id_stop": 3, "job": ...,
"worker": ..., "error_code": null, "error_message": null, "inputs": ["15", "21"], "factors": [["3", "5"], ["3",
"7"]], "submitted_at": [...], "started_at": [...], "completed_at": [...]}`; `zcat | jq` reads one. (Lines that are
result messages, as an older grid wrote, are read too.)

Writing: before the PUT, the collector drops the task ids that it stored itself (`SeenIds`, bounded memory) and
counts them as duplicates. It deletes the results' messages only after the PUT succeeded (grid.daemons.collector), so a
crash loses nothing; at worst an answer is stored twice, and readers drop the second copy.

Reading: a reader lists the objects and adds them, oldest key first, to a SQLite store in a temporary file, whose
dedup is the rule of every store (first answer wins, a later answer replaces a worker fault): what two collectors,
or one after a restart, stored twice is shown once, and counts, percentiles and exports are the SQLite store's.
Objects never change, so reading again fetches only the objects that are new.
"""
from __future__ import annotations

import bisect
import gzip
import json
import logging
import re
import shutil
import secrets
import socket
import tempfile
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import orjson

from grid import aws
from grid.errors import MessageError, StoreAccessDenied, StoreEmpty, StoreError, StoreNotFound
from grid.store.base import DEFAULT_PERCENTILES, Added, Span, Store, StoreCounts, spans
from grid.store.sqlite import ResultStore
from grid.wire import Code, Ids, Result, Results, Same, decode_results, factor_texts

SUFFIX = ".jsonl.gz"
_OBJECT_NAME = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[A-Za-z0-9.-]+-[0-9]{8,}" + re.escape(SUFFIX))
MAX_ATTEMPTS = 8  # per request, throttling (503 SlowDown) and 5xx included; botocore backs off exponentially
LIST_PAGE = 1000  # keys per ListObjectsV2 request: S3's most
READ_THREADS = 16  # objects fetched at once by a reader
READ_AHEAD = 64  # objects fetched before they are merged: bounds a reader's memory to this many decoded objects
GZIP_LEVEL = 1  # nearly level 6's size in a fraction of its time (docs/benchmarks.md)
MAX_SEEN_RANGES = 100_000  # id ranges (plus faults) a collector remembers, ~100 bytes each: ~10 MB at most
FINAL, FAULT = "final", "fault"  # what SeenIds knows of a stored id: a final answer, or a worker fault (replaceable)
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
           "AllAccessDisabled", "AccountProblem", "KMS.AccessDeniedException"}

log = logging.getLogger("grid.store.s3")


class S3ResultStore(Store):
    """Results in objects under s3://bucket/prefix (module docstring). The bucket must exist (Terraform makes it);
    with create=False the prefix must also hold a result already (a reader makes nothing)."""

    page_size = LIST_PAGE

    def __init__(self, bucket: str, prefix: str, *, source: str = "result store", create: bool = True,
                 client=None, collector: str | None = None):
        self.bucket, self.prefix = bucket, prefix
        self.location = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.collector = collector or _collector_name()
        self._source = source
        self._under = f"{prefix}/" if prefix else ""
        self._owns_client = client is None
        self._client = client or aws.client("s3", retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                                            max_pool_connections=READ_THREADS)
        self._seen = SeenIds()
        self._seq = 0
        self._last_us = 0
        self._merged: list[str] = []  # keys added to the view, in order
        self._view: ResultStore | None = None
        self._view_dir: str | None = None
        if create:
            with self._errors("list"):  # the bucket is there and the credentials may use it: fail at start
                self._client.list_objects_v2(Bucket=bucket, Prefix=self._under, MaxKeys=1)
        elif not self._keys():
            raise StoreEmpty(f"{source} {self.location!r}: no result store there (no result object under it; "
                                "has a collector run?)")

    # -- writing ------------------------------------------------------------------------------------------------
    def add(self, items: Iterable[Results | Result]) -> Added:
        """One PUT of what this collector has not stored yet; the ids are remembered once the PUT succeeded."""
        plan = self._seen.plan(items)
        if plan.accepted:
            self._put(_lines(plan.accepted), plan.stored)
        self._seen.commit(plan)
        return Added(plan.stored, plan.offered - plan.stored)

    def _put(self, text: str, count: int) -> None:
        body = gzip.compress(text.encode("utf-8", "surrogatepass"), compresslevel=GZIP_LEVEL, mtime=0)
        key = self._next_key()
        with self._errors("write", key):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/gzip",
                                    Metadata={"grid-collector": self.collector, "grid-results": str(count)})

    def _next_key(self) -> str:
        self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
        seconds, micros = divmod(self._last_us, 1_000_000)
        self._seq += 1
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
        return f"{self._under}{stamp}.{micros:06d}Z-{self.collector}-{self._seq:08d}{SUFFIX}"

    # -- reading ------------------------------------------------------------------------------------------------
    def counts(self, job: str | None = None) -> StoreCounts:
        return self._read().counts(job)

    def latency_percentiles(self, job: str | None = None,
                            percentiles: Sequence[float] = DEFAULT_PERCENTILES) -> dict[float, float | None]:
        return self._read().latency_percentiles(job, percentiles)

    def results(self, job: str | None = None) -> Iterator[Result]:
        yield from self._read().results(job)

    def last(self, limit: int = 5) -> list[Result]:
        return self._read().last(limit)

    def jobs(self) -> list[str]:
        return self._read().jobs()

    def close(self) -> None:
        self._drop_view()
        if self._owns_client:
            self._client.close()

    def _read(self) -> ResultStore:
        """The merged view, with the objects written since the last read added."""
        keys = self._keys()
        if keys[:len(self._merged)] != self._merged:  # a key sorting before one merged (a collector's clock behind)
            self._drop_view()
        if self._view is None:
            self._view_dir = tempfile.mkdtemp(prefix="grid-s3-view-")
            self._view = ResultStore(f"{self._view_dir}/view.db", source="the S3 store's local view")
        new = keys[len(self._merged):]
        if not new:
            return self._view
        with ThreadPoolExecutor(min(READ_THREADS, len(new))) as pool:
            for start in range(0, len(new), READ_AHEAD):
                chunk = new[start:start + READ_AHEAD]
                items = [item for items in pool.map(self._fetch, chunk) for item in items]  # in key order
                if items:
                    self._view.add(items)
                self._merged += chunk
        return self._view

    def _keys(self) -> list[str]:
        """The keys of the result objects under the prefix, oldest first."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._under, PaginationConfig={"PageSize": self.page_size})
        with self._errors("list"):
            keys = [o["Key"] for page in pages for o in page.get("Contents", ())]
        return sorted(k for k in keys if _OBJECT_NAME.fullmatch(k, len(self._under)))

    def _fetch(self, key: str) -> list[Results]:
        with self._errors("read", key):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        items: list[Results] = []
        try:
            for line in gzip.decompress(body).decode("utf-8", "surrogatepass").split("\n"):
                if line:
                    items.append(_read_line(line))
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, MessageError, ValueError) as e:
            log.warning("%s: %s is not a result object, left out (%s)", self.location, key, e)
            return []
        return items

    def _drop_view(self) -> None:
        if self._view is not None:
            self._view.close()
            shutil.rmtree(self._view_dir, ignore_errors=True)
        self._view, self._view_dir, self._merged = None, None, []

    @contextmanager
    def _errors(self, operation: str, key: str | None = None) -> Iterator[None]:
        """botocore's errors as the grid's: which store, what failed, why."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError  # as grid.aws: botocore on use

        where = f"{self._source} {self.location!r}: {operation}" + (f" of {key}" if key else "")
        try:
            yield
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            text = e.response.get("Error", {}).get("Message", str(e))
            if code == "NoSuchBucket":
                raise StoreNotFound(f"{where}: bucket {self.bucket!r} does not exist") from e
            if code in _DENIED:
                raise StoreAccessDenied(f"{where}: access denied ({code}: {text})") from e
            raise StoreError(f"{where}: {code}: {text}") from e
        except NoCredentialsError as e:
            raise StoreAccessDenied(f"{where}: no AWS credentials found (environment, profile or instance role)") \
                from e
        except BotoCoreError as e:
            raise StoreError(f"{where}: {e}") from e


def _lines(accepted: list[Span]) -> str:
    """The spans as JSON lines (module docstring)."""
    return "".join(_dumps(_record(span)) + "\n" for span in accepted)


def _record(span: Span) -> dict:
    r = span.results
    return {"id_prefix": span.prefix, "id_start": span.start, "id_stop": span.stop, "job": r.jobs[0],
            "worker": r.workers[0], "error_code": span.error_code, "error_message": r.error_messages[0],
            "inputs": list(r.inputs),
            "factors": None if span.error_code is not None else factor_texts(r.factors),
            "submitted_at": list(r.submitted_at), "started_at": list(r.started_at),
            "completed_at": list(r.completed_at)}


def _dumps(record: dict) -> str:
    try:
        return orjson.dumps(record).decode()
    except orjson.JSONEncodeError:  # a lone surrogate in an id read from a message: the stdlib escapes it
        return json.dumps(record, separators=(",", ":"))


def _read_line(line: str) -> Results:
    """The results of a line: a span's record, or a result message (an older grid's lines); ValueError when it is
    neither."""
    record = json.loads(line)
    if not isinstance(record, dict) or "id_stop" not in record:
        return decode_results(line)
    try:
        prefix, start, stop = record["id_prefix"], record["id_start"], record["id_stop"]
        count = stop - start
        factors = record["factors"]
        results = Results(Ids(prefix, start, count) if start >= 0 else [prefix], record["inputs"],
                          [None] if factors is None else [tuple(map(int, fs)) for fs in factors],
                          Same(record["error_code"], count), Same(record["error_message"], count),
                          Same(record["job"], count), Same(record["worker"], count), record["submitted_at"],
                          record["started_at"], record["completed_at"])
        if not all(len(column) == count for column in results.columns()):
            raise ValueError(f"a span of {count} results with columns of other lengths")
        list(results)  # each one a Result: checked
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"not a span of results ({type(e).__name__}: {e})") from None
    return results


def _collector_name() -> str:
    host = re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname()).strip(".-")[:48] or "collector"
    return f"{host}-{secrets.token_hex(3)}"


# ---- what a collector remembers


class _Ranges:
    """The stored ids of one prefix: disjoint [start, stop) ranges in order, joined where they touch; and the ids
    whose stored answer is a worker fault."""

    __slots__ = ("starts", "stops", "faults")

    def __init__(self):
        self.starts: list[int] = []
        self.stops: list[int] = []
        self.faults: set[int] = set()

    def overlaps(self, start: int, stop: int) -> bool:
        i = bisect.bisect_right(self.starts, start)
        return (i > 0 and self.stops[i - 1] > start) or (i < len(self.starts) and self.starts[i] < stop)

    def add(self, start: int, stop: int) -> int:
        """Join [start, stop) with the ranges it overlaps or touches; the change in their number."""
        low = bisect.bisect_left(self.stops, start)  # the first range that ends at start or later
        high = bisect.bisect_right(self.starts, stop)  # past the last that begins at stop or earlier
        if low < high:
            start, stop = min(start, self.starts[low]), max(stop, self.stops[high - 1])
        self.starts[low:high] = [start]
        self.stops[low:high] = [stop]
        return 1 - (high - low)


@dataclass
class _Plan:
    """What one `add` writes: the items not stored yet, and the ids to remember once they are written."""

    accepted: list = field(default_factory=list)
    stored: int = 0
    offered: int = 0
    runs: list[tuple[str, int, int]] = field(default_factory=list)
    lone: dict[tuple[str, int], bool] = field(default_factory=dict)  # id -> its answer is a worker fault


class SeenIds:
    """The task ids one collector stored, by id prefix as ranges (a job's ids count up from one prefix, so its
    ranges join as its results come in), with the ids whose answer was a worker fault (a later answer replaces it).

    Memory is bounded: past `limit` ranges and faults, the prefixes used least recently are forgotten. A collector
    then writes their duplicates again, and readers drop them: the readers' merge, not this, makes each id appear
    once, so forgetting costs a little space and an undercount of `duplicates`, never a wrong result.
    """

    def __init__(self, limit: int | None = MAX_SEEN_RANGES):
        self.limit = limit
        self.size = 0
        self._by_prefix: OrderedDict[str, _Ranges] = OrderedDict()

    def plan(self, items: Iterable[Results]) -> _Plan:
        """The spans of a batch that are not duplicates (of this collector's stores or of the batch itself)."""
        plan, batch = _Plan(), SeenIds(limit=None)
        for span in (span for results in items for span in spans(results)):
            plan.offered += span.count
            if span.count > 1:
                found = (span.prefix, span.start, span.stop)
                if not self.overlaps(*found) and not batch.overlaps(*found):
                    batch.mark(*found)
                    plan.runs.append(found)
                    plan.accepted.append(span)
                    plan.stored += span.count
                    continue
            for single in span.singles():
                self._plan_result(single, plan, batch)
        return plan

    def _plan_result(self, single: Span, plan: _Plan, batch: SeenIds) -> None:
        prefix, number = single.prefix, single.start
        known = batch.stored(prefix, number)
        if known is None:
            known = self.stored(prefix, number)
        if known == FINAL:
            return
        fault = single.error_code == Code.WORKER_FAULT
        batch.mark(prefix, number, number + 1, fault)
        plan.lone[(prefix, number)] = fault
        plan.accepted.append(single)
        plan.stored += 1

    def commit(self, plan: _Plan) -> None:
        """Remember what `plan` wrote; then forget the least recently used prefixes while over the limit."""
        for span in plan.runs:
            self.mark(*span)
        for (prefix, number), fault in plan.lone.items():
            self.mark(prefix, number, number + 1, fault)
        while self.limit is not None and self.size > self.limit and self._by_prefix:
            _, ranges = self._by_prefix.popitem(last=False)
            self.size -= len(ranges.starts) + len(ranges.faults)

    def overlaps(self, prefix: str, start: int, stop: int) -> bool:
        ranges = self._touch(prefix)
        return ranges is not None and ranges.overlaps(start, stop)

    def stored(self, prefix: str, number: int) -> str | None:
        """None if the id is not stored, FAULT if its answer is a worker fault, else FINAL."""
        ranges = self._touch(prefix)
        if ranges is None or not ranges.overlaps(number, number + 1):
            return None
        return FAULT if number in ranges.faults else FINAL

    def mark(self, prefix: str, start: int, stop: int, fault: bool | None = None) -> None:
        """Remember [start, stop) as stored; for one id, `fault` says whether its answer is a worker fault."""
        ranges = self._touch(prefix)
        if ranges is None:
            ranges = self._by_prefix[prefix] = _Ranges()
        self.size += ranges.add(start, stop) - len(ranges.faults)
        if fault:
            ranges.faults.add(start)
        elif fault is not None:
            ranges.faults.discard(start)
        self.size += len(ranges.faults)

    def _touch(self, prefix: str) -> _Ranges | None:
        ranges = self._by_prefix.get(prefix)
        if ranges is not None:
            self._by_prefix.move_to_end(prefix)
        return ranges
