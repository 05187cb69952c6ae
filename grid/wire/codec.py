"""One decode and one encode per direction, and packing into bodies under the size limit. Which shape a body takes
(the original's single item, a bundle, the compact bundle) is decided here and nowhere else. Decoding raises nothing
but MessageError."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from grid.errors import MessageError
from grid.wire.bundles import decode_result_bundle, decode_task_bundle, results_doc, tasks_doc, tasks_of
from grid.wire.jsontext import FORMAT_VERSION, OLDEST_WRITTEN, V1, dump, load
from grid.wire.model import Result, Results, Task, Tasks
from grid.wire.original import decode_result, decode_task, result_item, task_item


def decode_tasks(body: str | bytes, *, default_id: str, sent_at: float | None = None) -> Tasks:
    """The tasks of one message, as columns; a bad item is one of its `rejected`, with its own code. A task without
    an id takes `default_id` (the message id; `default_id:i` in a bundle), one without submitted_at `sent_at` (when
    the message was sent). MessageError only when the whole message is unusable (not JSON, not an object, over the
    size limit, unknown version)."""
    doc = load(body)
    tasks = decode_task_bundle(doc, default_id, sent_at)
    return tasks if tasks is not None else tasks_of([decode_task(doc, {}, default_id, sent_at)])


def encode_tasks(tasks: Tasks | Sequence[Task], version: int = FORMAT_VERSION) -> str:
    """1 task: the original's shape plus the grid's fields; more: a bundle (a compact one of format `version`).
    MessageError (413) when over the size limit."""
    _check_version(version)
    tasks = _as_tasks(tasks)
    count = len(tasks.numbers)
    if count == 0:
        raise ValueError("encode_tasks needs at least one task")
    if count == 1:
        return _one_task(tasks.ids[0], tasks.numbers[0], tasks.jobs[0], tasks.submitted_at[0])
    return dump(tasks_doc(tasks, version), count, "tasks")


def _one_task(task_id: str, n: int, job: str | None, submitted_at: float | None) -> str:
    doc = task_item(task_id, n, job, submitted_at)
    doc["v"] = V1
    return dump(doc, 1, "tasks")


def decode_results(body: str | bytes, *, default_id: str | None = None) -> Results:
    """The results of one message, as columns. A result without an `id` (the original's shape) takes `default_id`,
    e.g. the message's `requestMessageId` attribute. Any bad item makes the whole message a MessageError."""
    doc = load(body)
    results = decode_result_bundle(doc, default_id)
    return results if results is not None else Results.of_rows([decode_result(doc, {}, default_id)])


def encode_results(results: Results | Sequence[Result], version: int = FORMAT_VERSION) -> str:
    """1 result: the original's `{"output": {"factors": [...]}, "type": "Decimal", ...}` or `{"error": {...}}`
    plus the grid's fields; more: a bundle (a compact one of format `version`). MessageError (413) when over the
    size limit."""
    _check_version(version)
    results = _as_results(results)
    if not len(results):
        raise ValueError("encode_results needs at least one result")
    if len(results) == 1:
        doc = result_item(results.row(0))
        doc["v"] = V1
    else:
        doc = results_doc(results, version)
    return dump(doc, len(results), "results")


def pack_tasks(tasks: Tasks | Sequence[Task], per_message: int, version: int = FORMAT_VERSION) -> list[tuple[str, int]]:
    """(body, task count) of at most `per_message` tasks each, split further where one would exceed the size
    limit. One task a message is the original's shape, which the original's workers read."""
    tasks = _as_tasks(tasks)
    if per_message == 1:  # the original's producer's shape: each task its own body, no column sliced for it
        return [(_one_task(*row), 1) for row in zip(tasks.ids, tasks.numbers, tasks.jobs, tasks.submitted_at)]
    return _pack(tasks, len(tasks.numbers), per_message, partial(encode_tasks, version=version))


def pack_results(results: Results | Sequence[Result], per_message: int = 10_000,
                 version: int = FORMAT_VERSION) -> list[tuple[str, int]]:
    """(body, result count) for `results`, as few as the size limit allows (at most `per_message` results each)."""
    results = _as_results(results)
    return _pack(results, len(results), per_message, partial(encode_results, version=version))


def _check_version(version: int) -> None:
    if not OLDEST_WRITTEN <= version <= FORMAT_VERSION:
        raise ValueError(f"a bundle is written in format version {OLDEST_WRITTEN}..{FORMAT_VERSION}, not {version!r}")


def _as_tasks(tasks: Tasks | Sequence[Task]) -> Tasks:
    return tasks if isinstance(tasks, Tasks) else Tasks.of(tasks)


def _as_results(results: Results | Sequence[Result]) -> Results:
    return results if isinstance(results, Results) else Results.of(results)


def _pack(items, count: int, per_message: int, encode: Callable) -> list[tuple[str, int]]:
    if per_message < 1:
        raise ValueError(f"per_message must be >= 1, got {per_message}")
    bodies: list[tuple[str, int]] = []
    for start in range(0, count, per_message):
        _pack_part(items, start, min(count, start + per_message), encode, bodies)
    return bodies


def _pack_part(items, start: int, stop: int, encode: Callable, bodies: list[tuple[str, int]]) -> None:
    try:
        bodies.append((encode(items[start:stop]), stop - start))
    except MessageError:
        if stop - start == 1:
            raise
        half = (start + stop) // 2
        _pack_part(items, start, half, encode, bodies)
        _pack_part(items, half, stop, encode, bodies)
