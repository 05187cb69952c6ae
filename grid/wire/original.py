"""The original's shapes, one item each: a task `{"input": "<decimal>", "type": "Decimal"}` (input also a JSON
number) plus the grid's optional `id`, `job`, `submitted_at`; a result `{"output": {"factors": [...]}, "type":
"Decimal", ...}` or `{"error": {"message": ..., "code": ...}}`, its id in the message attribute requestMessageId
when the item has none. A message of one item is one of these; a bundle (grid.wire.bundles) lists them."""
from __future__ import annotations

from collections.abc import Callable

from grid.errors import MessageError
from grid.wire.fields import (MAX_ERROR_CODE, MAX_ID_CHARS, MIN_ERROR_CODE, REQUEST_MESSAGE_ID, TYPE_DECIMAL, Code,
                              echo, kind, parse_echo, parse_name, parse_number, parse_time, parse_type, short)
from grid.wire.model import Rejected


def task_item(task_id: str, n: int, job: str | None, submitted_at: float | None) -> dict:
    """The original's task, with the grid's fields (None ones left out)."""
    item = {"input": str(n), "type": TYPE_DECIMAL, "id": task_id}
    if job is not None:
        item["job"] = job
    if submitted_at is not None:
        item["submitted_at"] = submitted_at
    return item


def decode_task(item: object, shared: dict, fallback_id: str,
                sent_at: float | None) -> tuple[int, str, str | None, float | None] | Rejected:
    """The task of one item (with a bundle's `shared` fields) as (n, id, job, submitted_at), checked; else its
    Rejected. A task without submitted_at was submitted when its message was sent (`sent_at`), as the original's
    producer's tasks are."""
    if type(item) is dict:
        fields = {**shared, **item} if shared else item
        try:
            task_id = parse_name("id", fields.get("id")) or fallback_id
            job = parse_name("job", fields.get("job"))
            submitted_at = parse_time("submitted_at", fields.get("submitted_at"))
            parse_type(fields.get("type"))
            return _parse_input(fields), task_id, job, sent_at if submitted_at is None else submitted_at
        except MessageError:
            pass
    return _reject(item, shared, fallback_id, sent_at)


def _reject(item: object, shared: dict, fallback_id: str, sent_at: float | None) -> Rejected:
    """The Rejected for a bad item: its first problem, and what could be read of its id, job and time."""
    if not isinstance(item, dict):
        return Rejected(fallback_id, Code.BAD_INPUT, f"task {fallback_id}: must be a JSON object, got {kind(item)}",
                        submitted_at=sent_at)
    fields = {**shared, **item}
    problems: list[MessageError] = []
    task_id = _attempt(problems, parse_name, "id", fields.get("id")) or fallback_id
    job = _attempt(problems, parse_name, "job", fields.get("job"))
    submitted_at = _attempt(problems, parse_time, "submitted_at", fields.get("submitted_at"))
    _attempt(problems, parse_type, fields.get("type"))
    _attempt(problems, _parse_input, fields)
    first = problems[0]
    if submitted_at is None and "submitted_at" not in fields:
        submitted_at = sent_at
    return Rejected(task_id, first.code, f"task {task_id}: {first}", job, submitted_at, echo(fields.get("input")))


def _attempt(problems: list[MessageError], parse: Callable, *args):
    try:
        return parse(*args)
    except MessageError as e:
        problems.append(e)
        return None


def _parse_input(fields: dict) -> int:
    if "input" not in fields:
        raise MessageError("has no 'input': expected a decimal string such as \"15\"", Code.BAD_INPUT)
    return parse_number("input", fields["input"])


def result_item(row: tuple) -> dict:
    """The original's result, with the grid's fields (None ones left out), of a Results row."""
    task_id, n, factors, code, message, job, worker, submitted_at, started_at, completed_at = row
    if code is None:
        item = {"output": {"factors": [str(f) for f in factors]}, "type": TYPE_DECIMAL}
    else:
        item = {"error": {"message": message or "", "code": int(code)}}
    item["id"] = task_id
    for key, value in (("input", n), ("job", job), ("worker", worker), ("submitted_at", submitted_at),
                       ("started_at", started_at), ("completed_at", completed_at)):
        if value is not None:
            item[key] = value
    return item


def decode_result(item: object, shared: dict, fallback_id: str | None) -> tuple:
    """The Results row of one item (with a bundle's `shared` fields), checked."""
    if not isinstance(item, dict):
        raise MessageError(f"a result must be a JSON object, got {kind(item)}", Code.BAD_INPUT)
    fields = {**shared, **item} if shared else item
    get = fields.get
    task_id = parse_name("id", get("id"), required=fallback_id is None) or _fallback_id(fallback_id)
    parse_type(get("type"))
    factors, code, message = _parse_outcome(fields)
    return (task_id, parse_echo(get("input")), factors, code, message, parse_name("job", get("job")),
            parse_name("worker", get("worker")), parse_time("submitted_at", get("submitted_at")),
            parse_time("started_at", get("started_at")), parse_time("completed_at", get("completed_at")))


def _parse_outcome(fields: dict) -> tuple[tuple[int, ...] | None, int | None, str | None]:
    output, error = fields.get("output"), fields.get("error")
    if (output is None) == (error is None):
        raise MessageError("a result needs exactly one of 'output' and 'error'", Code.BAD_INPUT)
    if output is not None:
        factors = output.get("factors") if isinstance(output, dict) else None
        if not isinstance(factors, list):
            raise MessageError(f"'output' must be {{\"factors\": [...]}}, got {short(output)}", Code.BAD_INPUT)
        return tuple([parse_number("factor", f) for f in factors]), None, None
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message", "") if isinstance(error, dict) else None
    if type(code) is not int or not isinstance(message, str):
        raise MessageError(f"'error' must be {{\"message\": str, \"code\": int}}, got {short(error)}",
                           Code.BAD_INPUT)
    if not MIN_ERROR_CODE <= code <= MAX_ERROR_CODE:  # a store keeps it in a 64-bit column: one too large crashed it
        raise MessageError(f"'error' code {short(code)} is not an error code: must be {MIN_ERROR_CODE}.."
                           f"{MAX_ERROR_CODE}, as the grid's 400, 413, 422 and 500", Code.BAD_INPUT)
    return None, code, message


def _fallback_id(fallback_id: str) -> str:
    """The id of a result that has none: its message's (requestMessageId), checked as an id is."""
    try:
        return parse_name("id", fallback_id, required=True)
    except MessageError:
        raise MessageError(f"a result without an 'id' is named by its message's {REQUEST_MESSAGE_ID}, which must be "
                           f"1..{MAX_ID_CHARS} characters, got {short(fallback_id)}", Code.BAD_INPUT) from None
