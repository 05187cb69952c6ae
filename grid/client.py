"""Submitting work to the grid: numbers checked as the wire format allows them, made into the tasks of one job,
packed into task messages and sent, with the queue's refusals sent again.

`grid submit` and `grid local --workload` submit through it; the Python API grows here.
"""
from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable

from grid.errors import ConfigError, GridError
from grid.queues.base import MAX_BATCH, Queue, SendEntry
from grid.wire import Tasks, pack_tasks

SEND_ATTEMPTS = 5  # tries per message body before sending gives up on it
_DECIMAL = re.compile(r"[0-9]+")


def new_job_id() -> str:
    """A job id no other job has: `job-` and 12 random hex digits."""
    return f"job-{uuid.uuid4().hex[:12]}"


def parse_number(text: str, where: str) -> int:
    """A task number as the wire format allows it: decimal digits only, >= 1; else a ConfigError naming `where`."""
    if not _DECIMAL.fullmatch(text) or int(text) < 1:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ConfigError(f"number {shown!r} ({where}): must be a decimal integer >= 1, digits 0-9 only")
    return int(text)


def task_bodies(numbers: Iterable[int], job: str, per_message: int, *, first: int = 1,
                now: float | None = None) -> list[str]:
    """The task messages of `numbers` as tasks `{job}-{first}`, `{job}-{first + 1}`, ... of `job`, submitted `now`
    (default: now), up to `per_message` tasks each. ValueError for a task the wire format refuses (a bad job id)."""
    submitted = time.time() if now is None else now
    return [body for body, _ in pack_tasks(Tasks.numbered(job, first, list(numbers), submitted), per_message)]


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
