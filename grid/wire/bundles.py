"""Bundles: many tasks, or many results, in one message.

Version 1 lists the original's items: `{"v": 1, "type": "Decimal", "tasks": [{"id": ..., "input": ...}, ...]}`
with `job` and `submitted_at` hoisted to the top when all items share them; results likewise under `results`.

The compact bundle is written when the items share job and times and their ids count up from a prefix (`job-1`,
`job-2`, ...): version 3 `{"v": 3, "id_prefix": "job-", "id_start": 1, "inputs": "15,21,...", ...}`; its results
`{"v": 3, "id_prefix": ..., "id_start": ..., "inputs": "15,21", "factors": "3*5,3*7", "started_at": [...],
"completed_at": [...], ...}` when none is an error ('*' between one result's factors, ',' between results'). A column
a value: one check over each, no dict per item, and the numbers one text each, checked by a few scans and handed on
unsplit (a string per number cost the collector as much again as the rest of its work: docs/benchmarks.md). Version
2, still read, had a list per column: `"inputs": ["15", ...]`, `"factors": [["3", "5"], ...]`.
"""
from __future__ import annotations

from collections.abc import Sequence

from grid.errors import MessageError
from grid.wire.fields import (MAX_ID_CHARS, MAX_INPUT_DIGITS, MAX_SECONDS, TYPE_DECIMAL, Code, all_of_type,
                              parse_name, parse_time, parse_type, plain_factor_text, plain_input_text, plain_texts,
                              short)
from grid.wire.jsontext import OLDEST_WRITTEN, TEXT_COLUMNS, V1, bundle_items, put_optional
from grid.wire.model import (Decimals, Ids, Rejected, Results, Same, Tasks, decimal_text, factor_text, factor_texts,
                             has_none, id_run, single)
from grid.wire.original import decode_result, decode_task, result_item, task_item

TASK_SHARED = ("job", "submitted_at", "type")
RESULT_SHARED = ("job", "worker", "type")


# ---- tasks


def tasks_doc(tasks: Tasks, version: int) -> dict:
    """The compact bundle of `tasks` (of format `version`) when it can be; else the version 1 bundle."""
    run = id_run(tasks.ids)
    same_job, job = single(tasks.jobs)
    same_time, submitted_at = single(tasks.submitted_at)
    if run is not None and same_job and same_time:
        doc = {"v": version, "type": TYPE_DECIMAL, "id_prefix": run[0], "id_start": run[1]}
        put_optional(doc, job=job, submitted_at=submitted_at)
        doc["inputs"] = decimal_text(tasks.numbers) if version >= TEXT_COLUMNS else list(map(str, tasks.numbers))
        return doc
    items = [task_item(*values) for values in zip(tasks.ids, tasks.numbers, tasks.jobs, tasks.submitted_at)]
    for item in items:
        del item["type"]
    return {"v": V1, "type": TYPE_DECIMAL, **_hoist(items, ("job", "submitted_at")), "tasks": items}


def decode_task_bundle(doc: dict, default_id: str, sent_at: float | None) -> Tasks | None:
    """The tasks of a bundle (any version); None when `doc` is a single task."""
    if "inputs" in doc:
        return _decode_task_columns(doc, sent_at)
    items = bundle_items(doc, "tasks", ("input",))
    if items is None:
        return None
    shared = {k: doc[k] for k in TASK_SHARED if k in doc}
    return tasks_of([decode_task(item, shared, f"{default_id}:{i}", sent_at) for i, item in enumerate(items)])


def tasks_of(items: list[tuple | Rejected]) -> Tasks:
    """The columns of decoded items: (n, id, job, submitted_at) tuples and Rejected ones, in order."""
    if len(items) == 1 and type(items[0]) is tuple:  # a message of one task: columns that join others' at no cost
        n, task_id, job, submitted_at = items[0]
        return Tasks([task_id], [n], Same(job, 1), Same(submitted_at, 1))
    valid = [item for item in items if type(item) is tuple]
    rejected = {place: item for place, item in enumerate(items) if type(item) is not tuple}
    numbers, ids, jobs, times = (list(column) for column in zip(*valid)) if valid else ([], [], [], [])
    return Tasks(ids, numbers, jobs, times, rejected)


def _decode_task_columns(doc: dict, sent_at: float | None) -> Tasks:
    """The tasks of a compact bundle: checked column by column; where a check fails, item by item for the
    details."""
    inputs, text = _inputs(doc, ("input", "tasks"))
    prefix, start = _run_start(doc)
    count = len(inputs)
    plain = plain_input_text(text, count) if text is not None else plain_texts(inputs)
    if plain and len(f"{prefix}{start + count - 1}") <= MAX_ID_CHARS:
        try:
            job, submitted_at = parse_name("job", doc.get("job")), parse_time("submitted_at", doc.get("submitted_at"))
            parse_type(doc.get("type"))
        except MessageError:
            pass
        else:
            return Tasks(Ids(prefix, start, count), list(map(int, inputs)), Same(job, count),
                         Same(sent_at if submitted_at is None else submitted_at, count))
    shared = {k: doc[k] for k in TASK_SHARED if k in doc}
    return tasks_of([decode_task({"id": task_id, "input": text}, shared, task_id, sent_at)
                     for task_id, text in zip(Ids(prefix, start, count), inputs)])


def _inputs(doc: dict, single_keys: tuple[str, ...]) -> tuple[list, str | None]:
    """A compact bundle's inputs as a list, and as the text they came in (None: version 2's list)."""
    if doc.get("v") != TEXT_COLUMNS:
        return bundle_items(doc, "inputs", single_keys), None
    text = bundle_items(doc, "inputs", single_keys, text=True)
    return text.split(","), text


def _run_start(doc: dict) -> tuple[str, int]:
    prefix, start = doc.get("id_prefix"), doc.get("id_start")
    if type(prefix) is not str or len(prefix) > MAX_ID_CHARS or type(start) is not int or start < 0:
        raise MessageError(f"a bundle of 'inputs' names its items by 'id_prefix' (a string of at most {MAX_ID_CHARS} "
                           f"characters) and 'id_start' (an integer >= 0), got {short(prefix)} and {short(start)}",
                           Code.BAD_INPUT)
    return prefix, start


# ---- results


def results_doc(results: Results, version: int) -> dict:
    """The compact bundle of `results` (of format `version`) when it can be (none an error, shared job, worker and
    submission time, every time and input known, ids counting up); else the version 1 bundle."""
    run = id_run(results.ids)
    shared = [single(column) for column in (results.error_codes, results.jobs, results.workers, results.submitted_at)]
    if (run is not None and all(same for same, _ in shared) and shared[0][1] is None
            and not any(has_none(c) for c in (results.inputs, results.started_at, results.completed_at))):
        (_, _), (_, job), (_, worker), (_, submitted_at) = shared
        inputs = ",".join(results.inputs) if version >= TEXT_COLUMNS else None
        if inputs is not None and (inputs.count(",") != len(results) - 1 or not all(results.inputs)):
            version, inputs = OLDEST_WRITTEN, None  # an input as sent that no text column can hold ("", "1,2")
        doc = {"v": version, "type": TYPE_DECIMAL, "id_prefix": run[0], "id_start": run[1]}
        put_optional(doc, job=job, worker=worker, submitted_at=submitted_at)
        if inputs is not None:
            doc.update(inputs=inputs, factors=factor_text(results.factors))
        else:
            doc.update(inputs=list(results.inputs), factors=factor_texts(results.factors))
        doc.update(started_at=list(results.started_at), completed_at=list(results.completed_at))
        return doc
    items = [result_item(row) for row in results.rows()]
    for item in items:
        item.pop("type", None)
    return {"v": V1, "type": TYPE_DECIMAL, **_hoist(items, ("job", "worker")), "results": items}


def decode_result_bundle(doc: dict, default_id: str | None) -> Results | None:
    """The results of a bundle (any version); None when `doc` is a single result."""
    if "inputs" in doc:
        return _decode_result_columns(doc)
    items = bundle_items(doc, "results", ("output", "error"))
    if items is None:
        return None
    shared = {k: doc[k] for k in RESULT_SHARED if k in doc}
    return Results.of_rows([decode_result(item, shared, default_id and f"{default_id}:{i}")
                            for i, item in enumerate(items)])


def _decode_result_columns(doc: dict) -> Results:
    """The results of a compact bundle: checked column by column; where a check fails, item by item for the
    details."""
    inputs, text = _inputs(doc, ("output", "error", "results"))
    prefix, start = _run_start(doc)
    count = len(inputs)
    factors, started, completed = (doc.get(key) for key in ("factors", "started_at", "completed_at"))
    if not (type(started) is list and type(completed) is list and len(started) == len(completed) == count
            and (type(factors) is list and len(factors) == count if text is None
                 else type(factors) is str and factors.count(",") == count - 1)):
        factors_are = "lists" if text is None else "a string of as many results' factors joined by commas; lists"
        raise MessageError(f"a bundle of {count} 'inputs' needs 'factors', 'started_at' and 'completed_at': "
                           f"{factors_are} of as many items", Code.BAD_INPUT)
    shared = {k: doc[k] for k in (*RESULT_SHARED, "submitted_at") if k in doc}
    ids = Ids(prefix, start, count)
    column = Decimals(factors) if text is None else Decimals(text=factors)
    plain = _plain_columns(ids[-1], inputs, text, column, started + completed, shared)
    if plain is not None:
        job, worker, submitted_at = plain
        none = Same(None, count)
        return Results(ids, inputs, column, none, none, Same(job, count),
                       Same(worker, count), Same(submitted_at, count), started, completed)
    return Results.of_rows([decode_result({"id": task_id, "input": n, "output": {"factors": fs}, "started_at": s,
                                           "completed_at": c}, shared, None)
                            for task_id, n, fs, s, c in zip(ids, inputs, column.texts, started, completed)])


def _plain_columns(last_id: str, inputs: list, text: str | None, factors: Decimals, times: list,
                   shared: dict) -> tuple[str | None, str | None, float | None] | None:
    """(job, worker, submitted_at) of a compact bundle whose every value is of the usual kind; None when one is
    not. `text`: the inputs as they came (version 3), else None."""
    if (len(last_id) > MAX_ID_CHARS or not all_of_type(times, float)
            or not 0 <= min(times) <= max(times) < MAX_SECONDS):
        return None
    if text is None:
        texts = factors.texts
        if (not all_of_type(texts, list) or not all_of_type(inputs, str) or max(map(len, inputs)) > MAX_INPUT_DIGITS
                or not plain_texts([f for fs in texts for f in fs])):
            return None
    elif not (plain_input_text(text, len(inputs)) and plain_factor_text(factors.text, len(inputs))):
        return None
    try:
        shared_values = (parse_name("job", shared.get("job")), parse_name("worker", shared.get("worker")),
                         parse_time("submitted_at", shared.get("submitted_at")))
        parse_type(shared.get("type"))
    except MessageError:
        return None
    return shared_values


def _hoist(items: list[dict], keys: Sequence[str]) -> dict:
    """Move `keys` that every item shares to the bundle's top level; drop absent (None) ones."""
    top = {}
    for key in keys:
        values = {item.get(key) for item in items}
        if len(values) == 1:
            value = values.pop()
            if value is not None:
                top[key] = value
            for item in items:
                item.pop(key, None)
    return top
