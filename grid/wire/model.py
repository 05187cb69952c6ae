"""The message model: one task (`Task`), one refused task item (`Rejected`), one answer (`Result`), and their
columns as a message carries them and the grid computes and stores them (`Tasks`, `Results`).

A column is any sequence; `Ids` (ids counting up from a prefix) and `Same` (one value, repeated) are the sequences
that cost nothing per item, and that joining and slicing keep as they are.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter

import orjson

from grid.errors import MessageError
from grid.wire.fields import INPUT_LIMIT, MAX_INPUT_DIGITS, all_of_type, parse_name, parse_time, short


@dataclass(frozen=True)
class Task:
    """One number to factorize."""

    n: int
    id: str  # task id; for the original format without an id, decode uses `default_id`
    job: str | None = None
    submitted_at: float | None = None  # epoch seconds

    def __post_init__(self):
        if type(self.n) is not int or not 1 <= self.n < INPUT_LIMIT:
            raise ValueError(f"Task.n must be an int in 1..10**{MAX_INPUT_DIGITS}-1, got {short(self.n)}")
        parse_checked(self.id, self.job, self.submitted_at)


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


# ---- columns


class Ids(Sequence):
    """The task ids prefix + str(start), prefix + str(start + 1), ... (count of them)."""

    __slots__ = ("prefix", "start", "count")

    def __init__(self, prefix: str, start: int, count: int):
        self.prefix, self.start, self.count = prefix, start, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i):
        if isinstance(i, slice):
            lo, hi, step = i.indices(self.count)
            if step != 1:
                return list(self)[i]
            return Ids(self.prefix, self.start + lo, max(0, hi - lo))
        if i < 0:
            i += self.count
        if not 0 <= i < self.count:
            raise IndexError(i)
        return f"{self.prefix}{self.start + i}"

    def __iter__(self) -> Iterator[str]:
        prefix = self.prefix
        return (f"{prefix}{n}" for n in range(self.start, self.start + self.count))

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(other) == self.count and list(self) == list(other)

    def __repr__(self) -> str:
        return f"Ids({self.prefix!r}, {self.start}, {self.count})"


class Same(Sequence):
    """One value, `count` times."""

    __slots__ = ("value", "count")

    def __init__(self, value, count: int):
        self.value, self.count = value, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Same(self.value, len(range(*i.indices(self.count))))
        if not -self.count <= i < self.count:
            raise IndexError(i)
        return self.value

    def __iter__(self):
        return iter((self.value,) * self.count)

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(other) == self.count and all(v == self.value for v in other)

    def __repr__(self) -> str:
        return f"Same({self.value!r}, {self.count})"


class Decimals(Sequence):
    """Factors as a message carries them, decimal strings (checked): texts[i] lists the factors of result i, `text`
    is all of them as the compact bundle writes them ("3*5,,3*7": '*' between a result's factors, ',' between
    results). Whichever one it was made from, the other is made only when asked: a collector hands the text from the
    wire to its store unsplit. An item is a tuple of ints."""

    __slots__ = ("_texts", "_text", "_count")

    def __init__(self, texts: list[list[str]] | None = None, *, text: str | None = None):
        self._texts, self._text = texts, text
        self._count = len(texts) if texts is not None else text.count(",") + 1

    @property
    def texts(self) -> list[list[str]]:
        if self._texts is None:
            self._texts = [factors.split("*") if factors else [] for factors in self._text.split(",")]
        return self._texts

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = ",".join(map("*".join, self._texts))
        return self._text

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Decimals(self.texts[i])
        return tuple(map(int, self.texts[i]))

    def __iter__(self):
        return (tuple(map(int, factors)) for factors in self.texts)

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"Decimals(text={self.text!r})"


def factor_texts(column: Sequence[Sequence[int] | None]) -> list[list[str] | None]:
    """A column of factors as decimal strings (None where a result has none)."""
    if isinstance(column, Decimals):
        return column.texts
    return [None if factors is None else [str(f) for f in factors] for factors in column]


def factor_text(column: Sequence[Sequence[int]]) -> str:
    """A column of factors (ints), none None, as one text: Decimals.text's shape. orjson writes the ints where they
    fit 64 bits ("[[3,5],[7]]", a sixth of the time str and join take), and the brackets become separators."""
    if isinstance(column, Decimals):
        return column.text
    try:
        return orjson.dumps(column)[2:-2].replace(b",", b"*").replace(b"]*[", b",").decode()
    except orjson.JSONEncodeError:  # an int past 64 bits
        return ",".join(["*".join(map(str, factors)) for factors in column])


def decimal_text(numbers: Sequence[int]) -> str:
    """Ints joined by commas: Tasks' inputs as the compact bundle writes them (orjson where they fit 64 bits)."""
    try:
        return orjson.dumps(numbers)[1:-1].decode()
    except orjson.JSONEncodeError:
        return ",".join(map(str, numbers))


def split_id(task_id: str) -> tuple[str, int] | None:
    """(prefix, n) with task_id == prefix + str(n), the prefix as short as can be; None when it ends in no number.
    One reading per id: compact bundles are written by it, and the result store keys its rows by it."""
    digits = len(task_id) - len(task_id.rstrip("0123456789"))
    if not digits:
        return None
    number = task_id[-digits:].lstrip("0") or "0"  # no leading zero: "x007" is "x00" + "7"
    return task_id[:-len(number)], int(number)


def id_run(ids: Sequence[str]) -> tuple[str, int] | None:
    """(prefix, start) when the ids are prefix + str(start), prefix + str(start + 1), ...; else None. The prefix is
    split_id's reading of the first id, or an Ids' own prefix."""
    if isinstance(ids, Ids):
        return ids.prefix, ids.start
    if not ids:
        return None
    first = split_id(ids[0])
    if first is None:
        return None
    prefix, start = first
    return first if all(i == f"{prefix}{start + k}" for k, i in enumerate(ids)) else None


def single(column: Sequence):
    """(True, value) when every item of a non-empty column is that one value; else (False, None)."""
    if isinstance(column, Same):
        return True, column.value
    first = column[0]
    return (True, first) if all(v == first for v in column) else (False, None)


def has_none(column: Sequence) -> bool:
    """Whether a column holds None (by the items' types: `None in column` compares each item with None, slowly)."""
    return column.value is None if isinstance(column, Same) else type(None) in set(map(type, column))


def join(columns: Sequence[Sequence]) -> Sequence:
    """Non-empty columns one after the other: Ids that continue one another stay Ids, the same value stays Same."""
    first = columns[0]
    if len(columns) == 1:
        return first
    kinds = set(map(type, columns))
    if len(kinds) > 1:
        return list(chain.from_iterable(columns))
    kind = kinds.pop()
    if kind is Ids:
        prefix, stop = first.prefix, first.start
        for c in columns:
            if c.prefix != prefix or c.start != stop:
                return list(chain.from_iterable(columns))
            stop += c.count
        return Ids(prefix, first.start, stop - first.start)
    if kind is Same:
        value = first.value
        if all(c.value == value for c in columns):
            return Same(value, sum(c.count for c in columns))
    if kind is Decimals:
        return Decimals(text=",".join(c.text for c in columns))
    return list(chain.from_iterable(columns))


@dataclass(eq=False, slots=True)
class Tasks:
    """The tasks of a message as columns: task i is numbers[i], with ids[i], jobs[i], submitted_at[i]; and the
    message's items that are no valid task, by their place among its items (`rejected`)."""

    ids: Sequence[str]
    numbers: list[int]
    jobs: Sequence[str | None]
    submitted_at: Sequence[float | None]
    rejected: dict[int, Rejected] = field(default_factory=dict)

    @classmethod
    def numbered(cls, job: str, first: int, numbers: list[int], submitted_at: float | None) -> Tasks:
        """Tasks `{job}-{first}`, `{job}-{first + 1}`, ... of `job`: how a producer names its tasks. ValueError when
        a task the wire format refuses would come of it."""
        ids = Ids(f"{job}-", first, len(numbers))
        if numbers:
            parse_checked(ids[-1], job, submitted_at)  # the longest id is the last
            if not all_of_type(numbers, int) or min(numbers) < 1 or max(numbers) >= INPUT_LIMIT:
                wrong = next(n for n in numbers if type(n) is not int or not 1 <= n < INPUT_LIMIT)
                raise ValueError(f"Task.n must be an int in 1..10**{MAX_INPUT_DIGITS}-1, got {short(wrong)}")
        return cls(ids, numbers, Same(job, len(numbers)), Same(submitted_at, len(numbers)))

    @classmethod
    def of(cls, items: Iterable[Task | Rejected]) -> Tasks:
        """The columns of `items`, in order."""
        tasks: list[Task] = []
        rejected = {}
        for place, item in enumerate(items):
            if isinstance(item, Task):
                tasks.append(item)
            else:
                rejected[place] = item
        return cls([t.id for t in tasks], [t.n for t in tasks], [t.job for t in tasks],
                   [t.submitted_at for t in tasks], rejected)

    @classmethod
    def joined(cls, parts: Sequence[Tasks]) -> Tasks:
        """The valid tasks of `parts`, one after the other (rejected items left out)."""
        parts = [p for p in parts if p.numbers] or parts[:1]
        if len(parts) == 1:
            return parts[0][:]
        return cls(join([p.ids for p in parts]), [n for p in parts for n in p.numbers], join([p.jobs for p in parts]),
                   join([p.submitted_at for p in parts]))

    def __len__(self) -> int:
        """The message's items: its tasks and what was rejected."""
        return len(self.numbers) + len(self.rejected)

    def __iter__(self) -> Iterator[Task | Rejected]:
        """The items in the message's order: a Task for each valid one, the Rejected of the others."""
        valid = zip(self.numbers, self.ids, self.jobs, self.submitted_at)
        for place in range(len(self)):
            rejected = self.rejected.get(place)
            yield rejected if rejected is not None else Task(*next(valid))

    def __getitem__(self, part: slice) -> Tasks:
        """The valid tasks of a slice of the columns (rejected items left out)."""
        return Tasks(self.ids[part], self.numbers[part], self.jobs[part], self.submitted_at[part])


def parse_checked(task_id: str, job: str | None, submitted_at: float | None) -> None:
    try:
        parse_name("id", task_id, required=True)
        parse_name("job", job)
        parse_time("submitted_at", submitted_at)
    except MessageError as e:
        raise ValueError(f"Task: {e}") from None


_RESULT_COLUMNS = ("ids", "inputs", "factors", "error_codes", "error_messages", "jobs", "workers", "submitted_at",
                   "started_at", "completed_at")
_result_columns = attrgetter(*_RESULT_COLUMNS)


@dataclass(eq=False, slots=True)
class Results:
    """Results as columns: result i is Result(ids[i], jobs[i], inputs[i], factors[i], error_codes[i], ...).
    factors[i] is None where error_codes[i] is set."""

    ids: Sequence[str]
    inputs: list[str | None]  # a list: its length is the number of results
    factors: Sequence[Sequence[int] | None]
    error_codes: Sequence[int | None]
    error_messages: Sequence[str | None]
    jobs: Sequence[str | None]
    workers: Sequence[str | None]
    submitted_at: Sequence[float | None]
    started_at: Sequence[float | None]
    completed_at: Sequence[float | None]

    @classmethod
    def answers(cls, tasks: Tasks, factors: list, started_at: list[float], completed_at: list[float],
                worker: str | None) -> Results:
        """The answers to `tasks` (its valid ones): factors[i] of tasks.numbers[i], found from started_at[i] to
        completed_at[i]."""
        count = len(tasks.numbers)
        none = Same(None, count)
        return cls(tasks.ids, list(map(str, tasks.numbers)), factors, none, none, tasks.jobs, Same(worker, count),
                   tasks.submitted_at, started_at, completed_at)

    @classmethod
    def of(cls, items: Iterable[Result]) -> Results:
        return cls.of_rows([(r.task_id, r.n, r.factors, r.error_code, r.error_message, r.job, r.worker,
                             r.submitted_at, r.started_at, r.completed_at) for r in items])

    @classmethod
    def of_rows(cls, rows: Sequence[tuple]) -> Results:
        """Results from rows, each its values in the columns' order (`rows()` gives them back)."""
        if not rows:
            return cls(*([] for _ in _RESULT_COLUMNS))
        return cls(*map(list, zip(*rows)))

    def rows(self) -> Iterator[tuple]:
        """Each result's values in the columns' order: no Result made, as the codec reads them."""
        return zip(*self.columns())

    @classmethod
    def joined(cls, parts: Sequence[Results]) -> Results:
        parts = [p for p in parts if len(p)] or parts[:1]
        if len(parts) == 1:
            return parts[0]
        return cls(*(join([getattr(p, name) for p in parts]) for name in _RESULT_COLUMNS))

    def columns(self) -> tuple[Sequence, ...]:
        return _result_columns(self)

    def row(self, i: int) -> list:
        """Result i's values in the columns' order (one result's: cheaper than `rows()`)."""
        return [column[i] for column in _result_columns(self)]

    def __len__(self) -> int:
        return len(self.inputs)

    def __iter__(self) -> Iterator[Result]:
        for task_id, n, factors, code, message, job, worker, submitted, started, completed in zip(*self.columns()):
            yield Result(task_id, job, n, None if factors is None else tuple(factors), code, message, worker,
                         submitted, started, completed)

    def __getitem__(self, part: slice) -> Results:
        return Results(*(column[part] for column in self.columns()))

    def latencies(self) -> list[float]:
        """completed_at - submitted_at of each result that has both."""
        known, submitted = single(self.submitted_at) if len(self) else (True, None)
        if known:
            return [] if submitted is None else [c - submitted for c in self.completed_at if c is not None]
        return [c - s for s, c in zip(self.submitted_at, self.completed_at) if s is not None and c is not None]


