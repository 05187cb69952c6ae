"""Submitting work to the grid and reading its answers, from Python or through the `grid` command.

`Client` opens the grid as the registry configures it (broker URL, tasks queue, bundling, result store: defaults,
SSM, GRID_* variables, or its arguments); `submit` sends numbers as one job; a `Job` reads its answers from the
result store that the collector fills: `progress()`, `results()`, `wait(timeout)`. Failures carry the wire's error
codes: `InvalidTask` (400, 413) before sending, `TaskFailed` (400, 413, 422, 500) for an answer. Below them, the
helpers `grid submit`, `grid local --workload` and the producer share: numbers checked as the wire allows them,
made into the tasks of one job, packed into task messages and sent, with the queue's refusals sent again.
"""
from __future__ import annotations

import functools
import operator
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TextIO

from grid import config
from grid.errors import ConfigError, GridError, InvalidTask, JobTimeout, StoreEmpty, TaskFailed
from grid.queues import Broker, open_broker
from grid.queues.base import MAX_BATCH, Queue, SendEntry
from grid.store import DEFAULT_PERCENTILES, Store, format_seconds, open_store
from grid.wire import FORMAT_VERSION, MAX_INPUT_DIGITS, Code, Result, Tasks, pack_tasks

SEND_ATTEMPTS = 5  # tries per message body before sending gives up on it
POLL_FIRST, POLL_MAX = 0.001, 1.0  # seconds between reads of the result store while waiting (docs/benchmarks.md)
_DECIMAL = re.compile(r"[0-9]+")
_ALLOWED = "a decimal integer >= 1, digits 0-9 only"
_SHOWN_CHARS = 40  # a refused value is shown up to this length
_TOO_LARGE = 10**MAX_INPUT_DIGITS


class Client:
    """The grid as a script or notebook sees it: `submit` numbers as a job, then read the job's answers.

    Arguments left None come from the registry as every `grid` command takes them (default, SSM, GRID_* variable):
    `broker_url`, `tasks_queue_name` and `tasks_per_message` as the producer's, `result_store` as the collector's.
    The configuration is read, and the queue and the store opened, on first use. The answers are read from the
    result store, so a collector must run on the same broker and store. One client per thread; `with Client() as
    grid:` closes it.
    """

    def __init__(self, broker_url: str | None = None, result_store: str | None = None, *,
                 tasks_queue_name: str | None = None, tasks_per_message: int | None = None):
        self._given = _given(broker_url=broker_url, result_store=result_store, tasks_queue_name=tasks_queue_name,
                             tasks_per_message=tasks_per_message)
        self._broker: Broker | None = None
        self._tasks: Queue | None = None
        self._store: Store | None = None

    @functools.cached_property
    def config(self) -> config.Config:
        """The producer's configuration with the arguments given: what submitting reads (on first use)."""
        return config.load("producer", flags=self._given)

    @functools.cached_property
    def store_config(self) -> config.Config:
        """The collector's configuration with the arguments given: where the answers are (on first use)."""
        return config.load("collector", flags=self._given)

    @property
    def broker_url(self) -> str:
        return self.config.broker_url

    @property
    def result_store(self) -> str:
        return self.store_config.result_store

    def submit(self, numbers: Iterable[int | str], job: str | None = None) -> Job:
        """Send `numbers` (ints, or strings of decimal digits) as the tasks of one job (`job`, default a new id).
        InvalidTask, before anything is sent, for a number the wire refuses: 400 (not an integer >= 1), 413 (more
        than the wire's digits); its message names the value and its index."""
        checked = [check_number(n, f"numbers[{i}]") for i, n in enumerate(numbers)]
        if not checked:
            raise ConfigError("submit: no numbers given; give at least one integer >= 1")
        job = new_job_id() if job is None else job
        try:
            bodies = task_bodies(checked, job, self.config.tasks_per_message, version=self.config.format_version)
        except ValueError as e:
            raise InvalidTask(f"job {job!r}: {e}", Code.BAD_INPUT) from None
        send_all(self._tasks_queue(), bodies)
        return Job(self, job, len(checked))

    def job(self, job_id: str, total: int) -> Job:
        """The job `job_id` of `total` tasks, submitted earlier (by `grid submit`, or another process)."""
        if type(total) is not int or total < 1:
            raise ConfigError(f"job {job_id!r}: total {total!r} must be the number of its tasks, an int >= 1")
        return Job(self, job_id, total)

    def progress(self, job: str | None = None) -> Progress:
        """Counts and latency of the stored answers (of `job`, or all); StoreEmpty if no collector stored any yet."""
        store = self._opened_store()
        counts = store.counts(job)
        return Progress(None, counts.total, counts.ok, counts.by_code, store.latency_percentiles(job))

    def results(self, job: str | None = None) -> Iterator[Result]:
        """The stored answers (of `job`, or all) in arrival order; StoreEmpty if no collector stored any yet."""
        yield from self._opened_store().results(job)

    def last(self, limit: int = 5) -> list[Result]:
        """The `limit` answers stored last, newest first."""
        return self._opened_store().last(limit)

    def export(self, out: TextIO, fmt: str = "jsonl", job: str | None = None) -> int:
        """Write the stored answers (of `job`, or all) to `out` as JSON lines or CSV; how many."""
        return self._opened_store().export(out, fmt, job)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._broker is not None:
            self._broker.close()
        self._broker = self._tasks = self._store = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _tasks_queue(self) -> Queue:
        if self._tasks is None:
            if self._broker is None:
                self._broker = open_broker(self.broker_url)
            self._tasks = self._broker.open_queue(self.config.tasks_queue_name,
                                                  max_receive_count=self.config.max_receive_count)
        return self._tasks

    def _opened_store(self) -> Store:
        """The result store, opened for reading on first use; StoreEmpty (tried again next time) while none is there."""
        if self._store is None:
            cfg = self.store_config
            self._store = open_store(cfg.result_store, source=f"result_store from {cfg.source('result_store')}",
                                     create=False)
        return self._store


@dataclass(frozen=True)
class Progress:
    """How far a job (or the whole store) has come: tasks submitted (None: not known), answered, ok, failed by error
    code, and latency in seconds (submission to answer) at the 50th, 95th and 99th percentile."""

    submitted: int | None
    answered: int
    ok: int
    by_code: dict[int, int]
    latency: dict[float, float | None]

    @property
    def failed(self) -> int:
        return self.answered - self.ok

    @property
    def done(self) -> bool:
        return self.submitted is not None and self.answered >= self.submitted

    def __str__(self) -> str:
        of = "" if self.submitted is None else f" of {self.submitted}"
        codes = "".join(f", {count} x {code}" for code, count in self.by_code.items())
        shown = ", ".join(f"p{p} {format_seconds(v)}" for p, v in self.latency.items())
        return f"{self.answered}{of} answered ({self.ok} ok, {self.failed} failed{codes}); latency {shown}"


class Job:
    """A submitted job: its `id`, its `total` of tasks, and its answers as the collector stores them."""

    def __init__(self, client: Client, job_id: str, total: int):
        self.id, self.total = job_id, total
        self._client = client

    def __repr__(self) -> str:
        return f"Job({self.id!r}, total={self.total})"

    def progress(self) -> Progress:
        """How many of the job's tasks are answered, how many ok, failed by code, and their latency."""
        try:
            found = self._client.progress(self.id)
        except StoreEmpty:  # no collector has stored anything yet: nothing answered
            return Progress(self.total, 0, 0, {}, dict.fromkeys(DEFAULT_PERCENTILES))
        return Progress(self.total, found.answered, found.ok, found.by_code, found.latency)

    def results(self) -> Iterator[Result]:
        """The answers stored so far, in arrival order, without waiting; a failed task's too (`r.ok` is false,
        `r.error_code` says why: 400, 413, 422, 500)."""
        try:
            yield from self._client.results(self.id)
        except StoreEmpty:
            return

    def wait(self, timeout: float | None = None, *, propagate: bool = True) -> list[Result]:
        """Every answer, in the order the numbers were submitted, once all are stored. JobTimeout after `timeout`
        seconds (None: no limit). With `propagate` (as Celery's get), a failed task raises TaskFailed with its
        `code` (the first failed, in that order); without, its Result is in the list with its error_code."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = POLL_FIRST
        while (answers := self._answers()) is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and not left > 0:
                progress = self.progress()
                raise JobTimeout(f"job {self.id}: {progress.answered} of {self.total} tasks answered within "
                                 f"{timeout} s (do a worker and a collector run on broker {self._client.broker_url} "
                                 f"and result store {self._client.result_store}?)", progress)
            time.sleep(pause if left is None else min(pause, left))
            pause = min(2 * pause, POLL_MAX)
        failed = next((r for r in answers if not r.ok), None)
        if propagate and failed is not None:
            raise _failure(failed)
        return answers

    def _answers(self) -> list[Result] | None:
        """The answers in task order once every task has one; None until then (one count while any is missing)."""
        if self._answered_count() < self.total:
            return None
        by_id = {r.task_id: r for r in self.results()}
        answers = [by_id.get(f"{self.id}-{i}") for i in range(1, self.total + 1)]
        return None if None in answers else answers

    def _answered_count(self) -> int:
        """How many of the job's tasks are answered: one count in the store, no latency read as progress() does."""
        try:
            return self._client._opened_store().counts(self.id).total
        except StoreEmpty:
            return 0


def _failure(r: Result) -> TaskFailed:
    """The exception of a failed task's answer: its id, the number, the code and why."""
    n = r.n if r.n is None or len(r.n) <= _SHOWN_CHARS else r.n[:_SHOWN_CHARS - 3] + "..."
    return TaskFailed(f"task {r.task_id} (n = {n}) failed with {r.error_code}: {r.error_message}", r.error_code, r)


def _given(**values) -> dict:
    return {name: value for name, value in values.items() if value is not None}


# ---- the submit helpers


def new_job_id() -> str:
    """A job id no other job has: `job-` and 12 random hex digits."""
    return f"job-{uuid.uuid4().hex[:12]}"


def check_number(value: object, where: str) -> int:
    """`value` as a task's number, as the wire allows it: an int, or a string of decimal digits (`parse_number`),
    in 1..10**MAX_INPUT_DIGITS-1. InvalidTask naming the value and `where` else: 400, or 413 when too large."""
    if isinstance(value, str):
        return parse_number(value, where)
    try:
        n = operator.index(value) if not isinstance(value, bool) else None
    except TypeError:
        n = None
    if n is None:
        raise InvalidTask(f"number {_shown(value)} ({where}): must be an integer >= 1 (an int, or a string of digits "
                          f"0-9), got {type(value).__name__}", Code.BAD_INPUT)
    if n < 1:
        shown = n if n.bit_length() <= 128 else f"of -{n.bit_length()} bits"
        raise InvalidTask(f"number {shown} ({where}): must be an integer >= 1", Code.BAD_INPUT)
    if n >= _TOO_LARGE:
        raise InvalidTask(f"number of {n.bit_length()} bits ({where}): too large, the wire carries up to "
                          f"{MAX_INPUT_DIGITS} decimal digits", Code.TOO_LARGE)
    return n


def parse_number(text: str, where: str) -> int:
    """A task number as the wire format allows it: decimal digits only, >= 1, up to MAX_INPUT_DIGITS digits; else
    InvalidTask (a ConfigError: exit 2) naming the text and `where`, code 400 or (too many digits) 413."""
    digits = text.lstrip("0") if _DECIMAL.fullmatch(text) else ""
    if not digits:
        raise InvalidTask(f"number {_shown(text)} ({where}): must be {_ALLOWED}", Code.BAD_INPUT)
    if len(digits) > MAX_INPUT_DIGITS:
        raise InvalidTask(f"number of {len(digits)} digits ({where}): too large, the wire carries up to "
                          f"{MAX_INPUT_DIGITS}", Code.TOO_LARGE)
    return int(digits)


def _shown(value: object) -> str:
    """`value` as a message shows it: its repr, a long string's first characters only."""
    if isinstance(value, str):
        return repr(value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS - 3] + "...")
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 3] + "..."


def task_bodies(numbers: Iterable[int], job: str, per_message: int, *, first: int = 1,
                now: float | None = None, version: int = FORMAT_VERSION) -> list[str]:
    """The task messages of `numbers` as tasks `{job}-{first}`, `{job}-{first + 1}`, ... of `job`, submitted `now`
    (default: now), up to `per_message` tasks each, compact bundles of format `version`. ValueError for a task the
    wire format refuses (a bad job id)."""
    submitted = time.time() if now is None else now
    tasks = Tasks.numbered(job, first, list(numbers), submitted)
    return [body for body, _ in pack_tasks(tasks, per_message, version)]


def send_all(queue: Queue, bodies: list[str]) -> None:
    """Send every body, MAX_BATCH per call; entries the queue refuses are sent again, a few times."""
    for start in range(0, len(bodies), MAX_BATCH):
        pending = dict(enumerate(bodies[start:start + MAX_BATCH]))
        for _ in range(SEND_ATTEMPTS):
            outcome = queue.send_batch([SendEntry(str(i), body) for i, body in pending.items()])
            pending = {int(i): pending[int(i)] for i in outcome.failed}
            if not pending:
                break
        else:
            raise GridError(f"queue {queue.name!r} refused {len(pending)} messages {SEND_ATTEMPTS} times: "
                            f"{next(iter(outcome.failed.values()))}")
