"""The wire format: tasks, results and errors as versioned JSON.

A task is the original's `{"input": "<decimal>", "type": "Decimal"}` plus optional `id`, `job`, `submitted_at`
and `v`; a bundle `{"v": 1, "type": "Decimal", "tasks": [{"id": ..., "input": ...}, ...]}` carries many tasks in
one message, with `job` and `submitted_at` hoisted to the top when all items share them. Results mirror this with
`output`/`error` and a `results` list. Integers travel as decimal strings. Decoding raises nothing but MessageError.

Version 2 adds the compact bundle, written when the tasks share job and time and their ids count up from a prefix
(`job-1`, `job-2`, ...): `{"v": 2, "id_prefix": "job-", "id_start": 1, "inputs": ["15", ...], ...}`; its results
`{"v": 2, "id_prefix": ..., "id_start": ..., "inputs": [...], "factors": [["3", "5"], ...], "started_at": [...],
"completed_at": [...], ...}` when none is an error. A list per field: one check over each list, no dict per task.
"""
from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice

import orjson

from grid.errors import MessageError
from grid.queues.base import MAX_MESSAGE_BYTES

FORMAT_VERSION = 2  # the newest this grid reads and writes (the compact bundle); the other shapes are written as 1
_V1 = 1
REQUEST_MESSAGE_ID = "requestMessageId"  # message attribute on results: the task message's SQS message id
TYPE_DECIMAL = "Decimal"
ACCEPTED_TYPES = (None, "decimal", "dec", "Decimal")  # what the original worker accepted in `type`
MAX_INPUT_DIGITS = 1000  # far beyond anything factorizable; keeps a hostile input from costing more than parsing
MAX_ID_CHARS = 128  # task ids, job names and worker names
ATTRIBUTE_ALLOWANCE = 1024  # bytes kept free under the SQS limit for message attributes
MAX_BODY_BYTES = MAX_MESSAGE_BYTES - ATTRIBUTE_ALLOWANCE  # what the encoders may produce
_ECHO_CHARS = 64  # a rejected input is echoed back in the error result only up to this length
_INPUT_LIMIT = 10**MAX_INPUT_DIGITS
_MAX_SECONDS = 1e12  # epoch seconds: about the year 33658, far past any clock
# orjson reads integer literals past 64 bits as floats: a body with a run of digits that long goes to the stdlib.
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"0" * 9)
_LONG_RUNS = (b"0" * 20, b"-" + b"0" * 19)  # past 2**64 - 1, or below -2**63, may need that many digits
_DIGITS = re.compile(r"[0-9]+")
_NEGATIVE = re.compile(r"-[0-9]+")


class Code(enum.IntEnum):
    BAD_INPUT = 400
    TOO_LARGE = 413
    OVER_BUDGET = 422
    WORKER_FAULT = 500


@dataclass(frozen=True)
class Task:
    """One number to factorize."""

    n: int
    id: str  # task id; for the original format without an id, decode uses `default_id`
    job: str | None = None
    submitted_at: float | None = None  # epoch seconds

    def __post_init__(self):
        if type(self.n) is not int or not 1 <= self.n < _INPUT_LIMIT:
            raise ValueError(f"Task.n must be an int in 1..10**{MAX_INPUT_DIGITS}-1, got {_short(self.n)}")
        try:
            _parse_name("id", self.id, required=True)
            _parse_name("job", self.job)
            _parse_time("submitted_at", self.submitted_at)
        except MessageError as e:
            raise ValueError(f"Task: {e}") from None


@dataclass(frozen=True)
class Rejected:
    """An item of a task message that is not a valid task: the worker answers it with an error result."""

    id: str
    code: int
    message: str
    job: str | None = None
    submitted_at: float | None = None
    n: str | None = None  # the input as sent, when it is short enough to echo back

    def to_result(self, worker: str | None = None, started_at: float | None = None,
                  completed_at: float | None = None) -> Result:
        return Result(self.id, self.job, self.n, None, self.code, self.message, worker,
                      self.submitted_at, started_at, completed_at)


@dataclass(frozen=True)
class Result:
    task_id: str
    job: str | None
    n: str | None  # the input as a decimal string (None if it was unreadable)
    factors: tuple[int, ...] | None  # None when error_code is set
    error_code: int | None = None
    error_message: str | None = None
    worker: str | None = None
    submitted_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None

    def __post_init__(self):
        if (self.factors is None) == (self.error_code is None):
            raise ValueError("a Result has either factors or an error_code, not both or neither")

    @property
    def ok(self) -> bool:
        return self.error_code is None


# ---- encoding


def encode_tasks(tasks: Sequence[Task]) -> str:
    """1 task: the original shape plus extras; more: the bundle form."""
    if not tasks:
        raise ValueError("encode_tasks needs at least one task")
    if len(tasks) == 1:
        t = tasks[0]
        doc = {"input": str(t.n), "type": TYPE_DECIMAL, "v": _V1, "id": t.id}
        _put_optional(doc, job=t.job, submitted_at=t.submitted_at)
    elif not (doc := _compact_tasks(tasks)):
        items = [{"id": t.id, "input": str(t.n), "job": t.job, "submitted_at": t.submitted_at} for t in tasks]
        doc = {"v": _V1, "type": TYPE_DECIMAL, **_hoist(items, ("job", "submitted_at")), "tasks": items}
    return _dump(doc, len(tasks), "tasks")


def encode_results(results: Sequence[Result]) -> str:
    """1 result: `{"output": {"factors": [...]}, "type": "Decimal", ...}` or `{"error": {...}, ...}`; more: bundle."""
    if not results:
        raise ValueError("encode_results needs at least one result")
    if len(results) == 1:
        doc = {**_result_item(results[0]), "v": _V1}
    elif not (doc := _compact_results(results)):
        items = [_result_item(r) for r in results]
        for item in items:
            item.pop("type", None)
        doc = {"v": _V1, "type": TYPE_DECIMAL, **_hoist(items, ("job", "worker")), "results": items}
    return _dump(doc, len(results), "results")


def pack_tasks(tasks: Sequence[Task], per_message: int) -> list[str]:
    """Bodies of at most `per_message` tasks each, split further where one would exceed the size limit."""
    return _pack(tasks, per_message, encode_tasks)


def pack_results(results: Sequence[Result], per_message: int = 10_000) -> list[str]:
    """Bodies for `results`, as few as the size limit allows (at most `per_message` results each)."""
    return _pack(results, per_message, encode_results)


def _result_item(r: Result) -> dict:
    if r.error_code is None:
        item = {"output": {"factors": [str(f) for f in r.factors]}, "type": TYPE_DECIMAL}
    else:
        item = {"error": {"message": r.error_message or "", "code": int(r.error_code)}}
    item["id"] = r.task_id
    _put_optional(item, input=r.n, job=r.job, worker=r.worker, submitted_at=r.submitted_at, started_at=r.started_at,
                  completed_at=r.completed_at)
    return item


def _compact_tasks(tasks: Sequence[Task]) -> dict | None:
    """The compact bundle of `tasks`, if they share job and time and their ids count up from a prefix."""
    first = tasks[0]
    run = _id_run([t.id for t in tasks])
    if run is None or any(t.job != first.job or t.submitted_at != first.submitted_at for t in tasks):
        return None
    return _task_columns(run[0], run[1], first.job, first.submitted_at, [str(t.n) for t in tasks])


def encode_task_run(run: TaskRun) -> str:
    """The compact bundle of `run`'s tasks (its numbers as run.inputs). MessageError (413) when over the size limit."""
    return _dump(_task_columns(run.id_prefix, run.id_start, run.job, run.submitted_at, run.inputs), len(run.inputs),
                 "tasks")


def _task_columns(prefix: str, start: int, job: str | None, submitted_at: float | None, inputs: list[str]) -> dict:
    doc = {"v": FORMAT_VERSION, "type": TYPE_DECIMAL, "id_prefix": prefix, "id_start": start}
    _put_optional(doc, job=job, submitted_at=submitted_at)
    doc["inputs"] = inputs
    return doc


def _compact_results(results: Sequence[Result]) -> dict | None:
    """The compact bundle of `results`, if none is an error, they share job, worker and submission time, every one
    has its times, and their ids count up from a prefix."""
    first = results[0]
    run = _id_run([r.task_id for r in results])
    if run is None or any(r.factors is None or r.n is None or r.started_at is None or r.completed_at is None
                          or (r.job, r.worker, r.submitted_at) != (first.job, first.worker, first.submitted_at)
                          for r in results):
        return None
    return _result_columns(run[0], run[1], first.job, first.worker, first.submitted_at, [r.n for r in results],
                           [[str(f) for f in r.factors] for r in results], [r.started_at for r in results],
                           [r.completed_at for r in results])


def encode_result_run(run: TaskRun, factors: Sequence[Sequence[str]], started_at: list[float],
                      completed_at: list[float], worker: str | None) -> str:
    """The compact bundle of the answers to `run`: factors[i] (decimal strings, as primes.factor_run gives them) of
    run.inputs[i], computed from started_at[i] to completed_at[i]. MessageError (413) when it is over the size
    limit."""
    return _dump(_result_columns(run.id_prefix, run.id_start, run.job, worker, run.submitted_at, run.inputs, factors,
                                 started_at, completed_at), len(factors), "results")


def _result_columns(prefix: str, start: int, job: str | None, worker: str | None, submitted_at: float | None,
                    inputs: list[str], factors: Sequence[Sequence[str]], started_at: list[float],
                    completed_at: list[float]) -> dict:
    doc = {"v": FORMAT_VERSION, "type": TYPE_DECIMAL, "id_prefix": prefix, "id_start": start}
    _put_optional(doc, job=job, worker=worker, submitted_at=submitted_at)
    doc.update(inputs=inputs, factors=factors, started_at=started_at, completed_at=completed_at)
    return doc


_ID_NUMBER = re.compile(r"(.*?)(0|[1-9][0-9]*)", re.DOTALL)


def split_id(task_id: str) -> tuple[str, int] | None:
    """(prefix, n) with task_id == prefix + str(n), the prefix as short as can be; None when it ends in no number.
    One reading per id: the compact bundles are written by it, and the result store keys its rows by it."""
    match = _ID_NUMBER.fullmatch(task_id)
    return None if match is None else (match[1], int(match[2]))


def _id_run(ids: Sequence[str]) -> tuple[str, int] | None:
    """(prefix, start) when the ids are prefix + start, prefix + (start + 1), ... in decimal; else None."""
    first = split_id(ids[0])
    if first is None:
        return None
    prefix, start = first
    return first if all(i == f"{prefix}{start + k}" for k, i in enumerate(ids)) else None


def _put_optional(doc: dict, **fields) -> None:
    for key, value in fields.items():
        if value is not None:
            doc[key] = value


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
        else:
            for item in items:
                if item.get(key) is None:
                    item.pop(key, None)
    return top


def _dump(doc: dict, count: int, what: str) -> str:
    try:
        body = orjson.dumps(doc)
    except orjson.JSONEncodeError:  # a lone surrogate in an id read from a message: the stdlib escapes it
        body = _ENCODER.encode(doc).encode()
    if len(body) > MAX_BODY_BYTES:
        raise MessageError(f"{count} {what} encode to {len(body)} bytes, over the {MAX_BODY_BYTES}-byte message "
                           f"limit; put fewer {what} in one message", Code.TOO_LARGE)
    return body.decode()


def _pack(items: Sequence, per_message: int, encode: Callable[[Sequence], str]) -> list[str]:
    if per_message < 1:
        raise ValueError(f"per_message must be >= 1, got {per_message}")
    bodies: list[str] = []
    for start in range(0, len(items), per_message):
        _pack_chunk(items[start:start + per_message], encode, bodies)
    return bodies


def _pack_chunk(chunk: Sequence, encode: Callable[[Sequence], str], bodies: list[str]) -> None:
    try:
        bodies.append(encode(chunk))
    except MessageError:
        if len(chunk) == 1:
            raise
        half = len(chunk) // 2
        _pack_chunk(chunk[:half], encode, bodies)
        _pack_chunk(chunk[half:], encode, bodies)


# ---- decoding


class _Oversized:
    """A JSON integer literal too long to convert; kept as its digit count so the item gets a 413."""

    def __init__(self, digits: int):
        self.digits = digits

    def __repr__(self) -> str:
        return f"<integer of {self.digits} digits>"


def _json_int(text: str) -> int | _Oversized:
    if len(text.lstrip("-")) > MAX_INPUT_DIGITS:
        return _Oversized(len(text.lstrip("-")))
    return int(text)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # made once: json.dumps(**kw) builds one per call
_DECODER = json.JSONDecoder(parse_int=_json_int, parse_constant=_no_constant)


def _load(body: str | bytes) -> dict:
    if isinstance(body, (bytes, bytearray, memoryview)):
        size = len(body)
        _check_size(size)
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as e:
            raise MessageError(f"message body is not UTF-8 text ({e.reason} at byte {e.start})", Code.BAD_INPUT)
    elif isinstance(body, str):
        text = body
        _check_size(len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass")))
    else:
        raise MessageError(f"message body must be text, got {type(body).__name__}", Code.BAD_INPUT)
    try:
        doc = _parse_json(text)
    except RecursionError:
        raise MessageError("message body is not valid JSON: nested too deeply", Code.BAD_INPUT) from None
    except ValueError as e:
        raise MessageError(f"message body is not valid JSON: {e}", Code.BAD_INPUT) from None
    if not isinstance(doc, dict):
        raise MessageError(f"message body must be a JSON object, got {_kind(doc)}", Code.BAD_INPUT)
    version = doc.get("v", 1)
    if type(version) is not int or not 1 <= version <= FORMAT_VERSION:
        raise MessageError(f"format version v={_short(version)} is not supported: this grid reads "
                           f"versions 1..{FORMAT_VERSION}", Code.BAD_INPUT)
    return doc


def _parse_json(text: str) -> object:
    """orjson (several times faster) where it reads what the stdlib reads; else the stdlib, its hooks and messages."""
    raw = text.encode("utf-8", "surrogatepass")
    shape = raw.translate(_DIGITS_AS_ZEROS)
    if not any(run in shape for run in _LONG_RUNS):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the stdlib says what is wrong in its own words, or reads what orjson refuses (lone surrogates)
    return _DECODER.decode(text)


def _check_size(size: int) -> None:
    if size > MAX_MESSAGE_BYTES:
        raise MessageError(f"message body is {size} bytes, over the {MAX_MESSAGE_BYTES}-byte limit", Code.TOO_LARGE)


def _bundle(doc: dict, key: str, single_keys: tuple[str, ...]) -> list | None:
    """The bundle's item list, or None when `doc` is a single item."""
    if key not in doc:
        return None
    for single_key in single_keys:
        if single_key in doc:
            raise MessageError(f"message has both {key!r} (a bundle) and {single_key!r} (a single item)",
                               Code.BAD_INPUT)
    items = doc[key]
    if not isinstance(items, list) or not items:
        raise MessageError(f"{key!r} must be a non-empty JSON array, got {_kind(items)}", Code.BAD_INPUT)
    return items


@dataclass(frozen=True)
class TaskRun:
    """The tasks of a compact bundle (v2) whose every value is of the usual kind, as columns: tasks
    `id_prefix + str(id_start + i)`, numbers[i] sent as inputs[i]. The worker answers it without a Task per task."""

    id_prefix: str
    id_start: int
    numbers: list[int]
    inputs: list[str]
    job: str | None
    submitted_at: float | None

    def tasks(self) -> list[Task]:
        prefix, start, job, submitted_at = self.id_prefix, self.id_start, self.job, self.submitted_at
        return [unchecked_task(n, f"{prefix}{start + k}", job, submitted_at) for k, n in enumerate(self.numbers)]


def decode_tasks(body: str | bytes, *, default_id: str) -> list[Task | Rejected]:
    """The tasks of one message, in order. A bad item becomes a Rejected with its own code; MessageError only
    when the whole message is unusable (not JSON, not an object, over the size limit, unknown version)."""
    read = read_tasks(body, default_id=default_id)
    return read.tasks() if isinstance(read, TaskRun) else read


def read_tasks(body: str | bytes, *, default_id: str) -> TaskRun | list[Task | Rejected]:
    """A task message as the worker reads it: a TaskRun when it is a compact bundle whose every value is of the
    usual kind, else as decode_tasks."""
    doc = _load(body)
    if "inputs" in doc:
        return _decode_inputs(doc)
    items = _bundle(doc, "tasks", ("input",))
    if items is None:
        return [_decode_task(doc, {}, default_id)]
    shared = {k: doc[k] for k in ("job", "submitted_at", "type") if k in doc}
    return [_decode_task(item, shared, f"{default_id}:{i}") for i, item in enumerate(items)]


def _decode_inputs(doc: dict) -> TaskRun | list[Task | Rejected]:
    """The tasks of a compact bundle: checked list by list; where a check fails, item by item for the details."""
    inputs = _bundle(doc, "inputs", ("input", "tasks"))
    prefix, start = _run_start(doc)
    numbers = _plain_numbers(inputs)
    if numbers is not None and len(f"{prefix}{start + len(inputs) - 1}") <= MAX_ID_CHARS:
        try:
            job, submitted_at = _parse_name("job", doc.get("job")), _parse_time("submitted_at", doc.get("submitted_at"))
            _parse_type(doc.get("type"))
        except MessageError:
            pass
        else:
            return TaskRun(prefix, start, numbers, inputs, job, submitted_at)
    ids = _run_ids(doc, len(inputs))
    shared = {k: doc[k] for k in ("job", "submitted_at", "type") if k in doc}
    return [_decode_task({"id": task_id, "input": text}, shared, task_id) for task_id, text in zip(ids, inputs)]


def _run_ids(doc: dict, count: int) -> list[str]:
    prefix, start = _run_start(doc)
    return [f"{prefix}{start + k}" for k in range(count)]


def _run_start(doc: dict) -> tuple[str, int]:
    prefix, start = doc.get("id_prefix"), doc.get("id_start")
    if type(prefix) is not str or len(prefix) > MAX_ID_CHARS or type(start) is not int or start < 0:
        raise MessageError(f"a bundle of 'inputs' names its items by 'id_prefix' (a string of at most {MAX_ID_CHARS} "
                           f"characters) and 'id_start' (an integer >= 0), got {_short(prefix)} and {_short(start)}",
                           Code.BAD_INPUT)
    return prefix, start


def _plain_numbers(texts: list) -> list[int] | None:
    """The integers of `texts` if every one is a decimal string of a positive number within the digit limit."""
    return list(map(int, texts)) if _plain_texts(texts) else None


def _plain_texts(texts: list) -> bool:
    """Whether every one of `texts` is a decimal string of a positive number within the digit limit: checked on
    the strings, a scan in C, where converting them cost the collector about a microsecond a result."""
    if not (_all_of_type(texts, str) and all(texts)) or max(map(len, texts), default=0) > MAX_INPUT_DIGITS:
        return False
    joined = ",".join(texts)
    digits = joined.replace(",", "")
    if texts and not (digits.isascii() and digits.isdigit() and len(digits) == len(joined) - len(texts) + 1):
        return False
    leading_zero = joined.startswith("0") or ",0" in joined  # rare: only then convert, to tell "007" from "00"
    return not leading_zero or min(map(int, texts)) >= 1


def _all_of_type(items: list, kind: type) -> bool:
    """True when every item is exactly of `kind` (not a subclass): one pass in C, not a Python test per item."""
    return not items or set(map(type, items)) == {kind}


def _decode_task(item: object, shared: dict, fallback_id: str) -> Task | Rejected:
    if type(item) is dict:
        fields = {**shared, **item} if shared else item
        try:
            task_id = _parse_name("id", fields.get("id")) or fallback_id
            job = _parse_name("job", fields.get("job"))
            submitted_at = _parse_time("submitted_at", fields.get("submitted_at"))
            _parse_type(fields.get("type"))
            return unchecked_task(_parse_input(fields), task_id, job, submitted_at)
        except MessageError:
            pass
    return _reject(item, shared, fallback_id)


def unchecked_task(n: int, task_id: str, job: str | None, submitted_at: float | None) -> Task:
    """A Task from values known to be valid (checked by a decoder, drawn by the kernel), without Task's checks: the
    hot paths of the worker and the producer, where the checks cost as much as a small task's kernel work."""
    task = object.__new__(Task)
    task.__dict__.update(n=n, id=task_id, job=job, submitted_at=submitted_at)
    return task


def _reject(item: object, shared: dict, fallback_id: str) -> Rejected:
    """The Rejected for a bad item: its first problem, and what could be read of its id, job and time."""
    if not isinstance(item, dict):
        return Rejected(fallback_id, Code.BAD_INPUT, f"task {fallback_id}: must be a JSON object, got {_kind(item)}")
    fields = {**shared, **item}
    problems: list[MessageError] = []
    task_id = _attempt(problems, _parse_name, "id", fields.get("id")) or fallback_id
    job = _attempt(problems, _parse_name, "job", fields.get("job"))
    submitted_at = _attempt(problems, _parse_time, "submitted_at", fields.get("submitted_at"))
    _attempt(problems, _parse_type, fields.get("type"))
    _attempt(problems, _parse_input, fields)
    first = problems[0]
    return Rejected(task_id, first.code, f"task {task_id}: {first}", job, submitted_at, _echo(fields.get("input")))


def _attempt(problems: list[MessageError], parse: Callable, *args):
    try:
        return parse(*args)
    except MessageError as e:
        problems.append(e)
        return None


def _parse_name(key: str, value: object, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if type(value) is not str or not 1 <= len(value) <= MAX_ID_CHARS:
        raise MessageError(f"{key!r} must be a string of 1..{MAX_ID_CHARS} characters, got {_short(value)}",
                           Code.BAD_INPUT)
    return value


def _parse_time(key: str, value: object) -> float | None:
    if value is None:
        return None
    seconds = float(value) if type(value) is float or (type(value) is int and 0 <= value < _MAX_SECONDS) else -1.0
    if not 0 <= seconds < _MAX_SECONDS:  # also false for NaN
        raise MessageError(f"{key!r} must be epoch seconds (a number in 0..{_MAX_SECONDS:.0e}), got {_short(value)}",
                           Code.BAD_INPUT)
    return seconds


def _parse_type(value: object) -> None:
    if value is None or value == TYPE_DECIMAL:
        return
    if type(value) is not str or value not in ACCEPTED_TYPES:
        raise MessageError(f"'type' must be \"Decimal\" (or absent), got {_short(value)}", Code.BAD_INPUT)


def _parse_input(fields: dict) -> int:
    if "input" not in fields:
        raise MessageError("has no 'input': expected a decimal string such as \"15\"", Code.BAD_INPUT)
    return _parse_number("input", fields["input"])


def _parse_number(key: str, value: object) -> int:
    """A positive integer sent as a decimal string (or, as the original producer did, a JSON integer)."""
    if type(value) is str and len(value) <= MAX_INPUT_DIGITS and value.isdigit() and value.isascii():
        return _positive(key, int(value), value)  # the common case, first
    if isinstance(value, _Oversized) or (isinstance(value, str) and len(value) > MAX_INPUT_DIGITS):
        size = value.digits if isinstance(value, _Oversized) else len(value)
        raise MessageError(f"{key!r} is {size} characters long: at most {MAX_INPUT_DIGITS} digits are allowed",
                           Code.TOO_LARGE)
    if type(value) is int:
        return _positive(key, value, str(value))
    if isinstance(value, str):
        if _DIGITS.fullmatch(value):
            return _positive(key, int(value), value)
        if _NEGATIVE.fullmatch(value):
            _positive(key, -1, value)
        raise MessageError(f"{key!r} is not a decimal integer: {_short(value)} (only the digits 0-9: no sign, "
                           "space, point, exponent or prefix)", Code.BAD_INPUT)
    if type(value) is float:
        raise MessageError(f"{key!r} is a JSON number with a fraction or exponent ({value!r}): send integers as "
                           "decimal strings such as \"15\"", Code.BAD_INPUT)
    raise MessageError(f"{key!r} must be a decimal string such as \"15\", got {_short(value)}", Code.BAD_INPUT)


def _positive(key: str, n: int, text: str) -> int:
    if n < 1:
        raise MessageError(f"{key!r} must be a positive integer, got {_short(text)}", Code.BAD_INPUT)
    return n


def _echo(value: object) -> str | None:
    if type(value) is int:
        value = str(value)
    return value if isinstance(value, str) and len(value) <= _ECHO_CHARS else None


def decode_results(body: str | bytes, *, default_id: str | None = None) -> list[Result]:
    """The results of one message. A result without an `id` (the original's shape) takes `default_id`, e.g. the
    message's `requestMessageId` attribute. Any bad item makes the whole message a MessageError."""
    return _results_of(_load(body), default_id)


def _results_of(doc: dict, default_id: str | None) -> list[Result]:
    if "inputs" in doc:
        return _decode_result_columns(doc)
    items = _bundle(doc, "results", ("output", "error"))
    if items is None:
        return [_decode_result(doc, {}, default_id)]
    shared = {k: doc[k] for k in ("job", "worker", "type") if k in doc}
    return [_decode_result(item, shared, default_id and f"{default_id}:{i}") for i, item in enumerate(items)]


def _decode_result_columns(doc: dict) -> list[Result]:
    """The results of a compact bundle: checked list by list; where a check fails, item by item for the details."""
    prefix, start, inputs, factors, started, completed, shared = _result_lists(doc)
    ids = [f"{prefix}{start + k}" for k in range(len(inputs))]
    fast = _plain_results(ids, inputs, factors, started + completed, shared)
    if fast is not None:
        return fast
    return [_decode_result({"id": task_id, "input": text, "output": {"factors": fs}, "started_at": s,
                            "completed_at": c}, shared, None)
            for task_id, text, fs, s, c in zip(ids, inputs, factors, started, completed)]


def _result_lists(doc: dict) -> tuple[str, int, list, list, list, list, dict]:
    """The id prefix and start, the lists and the shared fields of a compact bundle of results; MessageError when
    its shape is wrong."""
    inputs = _bundle(doc, "inputs", ("output", "error", "results"))
    prefix, start = _run_start(doc)
    columns = [doc.get(key) for key in ("factors", "started_at", "completed_at")]
    if not all(type(column) is list and len(column) == len(inputs) for column in columns):
        raise MessageError(f"a bundle of {len(inputs)} 'inputs' needs 'factors', 'started_at' and 'completed_at': "
                           "lists of as many items", Code.BAD_INPUT)
    shared = {k: doc[k] for k in ("job", "worker", "type", "submitted_at") if k in doc}
    return (prefix, start, inputs, *columns, shared)


def _plain_results(ids: list[str], inputs: list, factors: list, times: list, shared: dict) -> list[Result] | None:
    """The results of a compact bundle whose every value is of the usual kind; None to check them one by one."""
    plain = _plain_columns(ids[-1], inputs, factors, times, shared)
    if plain is None:
        return None
    job, worker, submitted_at = plain
    count, numbers = len(ids), iter(map(int, (f for fs in factors for f in fs)))
    return [unchecked_result(task_id, job, text, tuple(islice(numbers, len(fs))), None, None, worker, submitted_at, s, c)
            for task_id, text, fs, s, c in zip(ids, inputs, factors, times[:count], times[count:])]


def _plain_columns(last_id: str, inputs: list, factors: list, times: list,
                   shared: dict) -> tuple[str | None, str | None, float | None] | None:
    """(job, worker, submitted_at) of a compact bundle whose every value is of the usual kind; None when one is
    not."""
    if (len(last_id) > MAX_ID_CHARS or not _all_of_type(factors, list) or not _all_of_type(inputs, str)
            or max(map(len, inputs)) > MAX_INPUT_DIGITS or not _all_of_type(times, float)
            or not 0 <= min(times) <= max(times) < _MAX_SECONDS):
        return None
    if not _plain_texts([f for fs in factors for f in fs]):
        return None
    try:
        shared_values = (_parse_name("job", shared.get("job")), _parse_name("worker", shared.get("worker")),
                         _parse_time("submitted_at", shared.get("submitted_at")))
        _parse_type(shared.get("type"))
    except MessageError:
        return None
    return shared_values


@dataclass(frozen=True)
class ResultRun:
    """The answers to tasks `id_prefix + str(id_start + i)` for i < count, none an error: a compact bundle (v2) kept
    as its checked body. The collector stores it whole, one row for the run instead of one per result."""

    id_prefix: str  # empty, or ending in a character that is not a digit: each id has one (prefix, number) reading
    id_start: int
    count: int
    job: str | None
    latencies: tuple[float, ...]  # completed_at - submitted_at of each result; empty without submitted_at
    body: str

    def results(self) -> list[Result]:
        return decode_results(self.body)


def read_results(body: str, *, default_id: str | None = None) -> ResultRun | list[Result]:
    """A result message as the collector stores it: a ResultRun when it is a compact bundle whose every value is of
    the usual kind, else its Results (decode_results). MessageError as decode_results."""
    doc = _load(body)
    run = _result_run(doc, body) if "inputs" in doc else None
    return run if run is not None else _results_of(doc, default_id)


def _result_run(doc: dict, body: str) -> ResultRun | None:
    try:
        prefix, start, inputs, factors, started, completed, shared = _result_lists(doc)
    except MessageError:  # decode_results says what is wrong
        return None
    if prefix[-1:].isdigit():  # "x1" + "0" is also "x" + "10": such ids are stored one by one
        return None
    plain = _plain_columns(f"{prefix}{start + len(inputs) - 1}", inputs, factors, started + completed, shared)
    if plain is None:
        return None
    job, _, submitted_at = plain
    latencies = () if submitted_at is None else tuple([c - submitted_at for c in completed])
    return ResultRun(prefix, start, len(inputs), job, latencies, body)


def _decode_result(item: object, shared: dict, fallback_id: str | None) -> Result:
    if not isinstance(item, dict):
        raise MessageError(f"a result must be a JSON object, got {_kind(item)}", Code.BAD_INPUT)
    fields = {**shared, **item} if shared else item
    get = fields.get
    task_id = _parse_name("id", get("id"), required=fallback_id is None) or fallback_id
    _parse_type(get("type"))
    factors, code, message = _parse_outcome(fields)
    return unchecked_result(task_id, _parse_name("job", get("job")), _parse_echo(get("input")), factors, code, message,
                   _parse_name("worker", get("worker")), _parse_time("submitted_at", get("submitted_at")),
                   _parse_time("started_at", get("started_at")), _parse_time("completed_at", get("completed_at")))


_RESULT_FIELDS = tuple(Result.__dataclass_fields__)


def unchecked_result(*values) -> Result:
    """A Result from values known to be valid (exactly one of factors and code), in Result's field order, without
    Result's checks: the hot paths of the worker and the collector."""
    result = object.__new__(Result)
    result.__dict__.update(zip(_RESULT_FIELDS, values))
    return result


def _parse_outcome(fields: dict) -> tuple[tuple[int, ...] | None, int | None, str | None]:
    output, error = fields.get("output"), fields.get("error")
    if (output is None) == (error is None):
        raise MessageError("a result needs exactly one of 'output' and 'error'", Code.BAD_INPUT)
    if output is not None:
        factors = output.get("factors") if isinstance(output, dict) else None
        if not isinstance(factors, list):
            raise MessageError(f"'output' must be {{\"factors\": [...]}}, got {_short(output)}", Code.BAD_INPUT)
        return tuple([_parse_number("factor", f) for f in factors]), None, None
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message", "") if isinstance(error, dict) else None
    if type(code) is not int or not isinstance(message, str):
        raise MessageError(f"'error' must be {{\"message\": str, \"code\": int}}, got {_short(error)}",
                           Code.BAD_INPUT)
    return None, code, message


def _parse_echo(value: object) -> str | None:
    """A result's `input`: the task's input as sent (an error result may echo a bad one)."""
    if value is None or (isinstance(value, str) and len(value) <= MAX_INPUT_DIGITS):
        return value
    if type(value) is int:
        return str(value)
    raise MessageError(f"'input' of a result must be a string of at most {MAX_INPUT_DIGITS} characters, got "
                       f"{_kind(value)} {_short(value)}", Code.BAD_INPUT)


def _kind(value: object) -> str:
    kinds = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
             int: "an integer", float: "a number", _Oversized: "an integer"}
    return kinds.get(type(value), type(value).__name__)


def _short(value: object) -> str:
    if isinstance(value, (str, bool, type(None))):
        text = json.dumps(value)
    elif type(value) in (int, float, _Oversized):
        text = repr(value)
    else:  # never repr a container: it may be nested deeper than repr can recurse
        return _kind(value)
    return text if len(text) <= 40 else text[:37] + "..."
