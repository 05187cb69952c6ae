"""A worker's task messages in hand, and the result messages that answer them.

`InHand` holds one received message's tasks as columns and their answers as the kernel threads find them;
`result_messages` packs a batch's answers into as few result messages as the size limit and requestMessageId allow.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from grid.errors import MessageError
from grid.queues.base import Message, SendEntry
from grid.wire import (ATTRIBUTE_ALLOWANCE, FORMAT_VERSION, REQUEST_MESSAGE_ID, Ids, Result, Results, Tasks, id_run,
                       pack_results, split_id)

# What a result message's requestMessageId may hold: the attribute's share of the message size limit.
_REQUEST_IDS_ROOM = ATTRIBUTE_ALLOWANCE - len(REQUEST_MESSAGE_ID) - len("String")


@dataclass(slots=True)
class InHand:
    """One received task message: its tasks as columns, and their answers as the kernel threads find them
    (factors[i] of tasks.numbers[i], None while unanswered or where errors[i] or a fault says why)."""

    message: Message
    tasks: Tasks
    rejected: tuple[Result, ...] = ()  # the error results of its items that are no task
    factors: list = field(init=False)
    started_at: list[float] = field(init=False)
    completed_at: list[float] = field(init=False)
    errors: dict[int, Result] | None = None  # error results by task, where one failed
    faults: set[int] | None = None  # tasks that failed inside the worker: no answer, kept for retry
    started: bool = False  # a task of it began: it is finished, not released, on stop
    skipped: bool = False  # stop came before any task began: released
    alone: bool = field(init=False)

    def __post_init__(self):
        count = len(self.tasks.numbers)
        self.factors, self.started_at, self.completed_at = [None] * count, [0.0] * count, [0.0] * count
        # A message of one task without an id of its own (the original's): its result is named by requestMessageId
        self.alone = count + len(self.rejected) == 1 and (count == 0 or self.tasks.ids[0] == self.message.message_id)

    @property
    def answers(self) -> int:
        """Results it has: its tasks' but where a fault left none, and its rejected items'."""
        return len(self.tasks.numbers) - (len(self.faults) if self.faults else 0) + len(self.rejected)

    @property
    def size(self) -> int:
        """Items in the message."""
        return len(self.tasks.numbers) + len(self.rejected)

    def results(self, worker: str) -> Results:
        """What it answers: its tasks' results (but where a fault left none) and its rejected items'."""
        tasks = self.tasks
        if self.errors or self.faults:
            answers = Results.of([
                (self.errors or {}).get(i) or Result(task_id, job, str(n), tuple(self.factors[i]), None, None, worker,
                                             submitted_at, self.started_at[i], self.completed_at[i])
                for i, (task_id, n, job, submitted_at) in enumerate(zip(tasks.ids, tasks.numbers, tasks.jobs,
                                                                        tasks.submitted_at))
                if not self.faults or i not in self.faults])
        else:
            answers = Results.answers(tasks, self.factors, self.started_at, self.completed_at, worker)
        return Results.joined([answers, Results.of(self.rejected)]) if self.rejected else answers


def result_messages(hands: Sequence[InHand], worker: str, log: logging.Logger,
                    version: int = FORMAT_VERSION) -> tuple[list[tuple[SendEntry, list[InHand]]], set[int]]:
    """The result messages of `hands`, each with the hands it answers, and the ids of hands that cannot be
    answered. Results whose ids continue one another are sent together, in as few messages as the size limit and
    requestMessageId (their message ids, comma-separated) allow. A task that came without an id (the original's
    shape) is answered alone: its result has no id either, and requestMessageId names its message. Compact bundles
    are written in format `version`."""
    unsent: set[int] = set()
    answered = [hand for hand in hands if hand.answers]
    pack = partial(pack_results, version=version)
    out = [body for hand in answered if hand.alone for body in _bodies([hand], worker, unsent, log, pack)]
    for group in _groups([hand for hand in answered if not hand.alone]):
        out += _bodies(group, worker, unsent, log, pack)
    entries = [(SendEntry(str(i), body, {REQUEST_MESSAGE_ID: ",".join(h.message.message_id for h in group)}),
                group) for i, (body, group) in enumerate(out)]
    return entries, unsent


def _bodies(group: list[InHand], worker: str, unsent: set[int], log: logging.Logger,
            pack: Callable) -> list[tuple[str, list[InHand]]]:
    """The bodies of the results of `group` (`pack` packs them), each with the hands whose results it holds."""
    try:
        packed = pack(_results(group, worker))
    except MessageError as e:  # one result over the size limit: nothing to send, so keep its message
        if len(group) > 1:
            return [out for hand in group for out in _bodies([hand], worker, unsent, log, pack)]
        log.error("results of message %s cannot be encoded: %s", group[0].message.message_id, e)
        unsent.add(id(group[0]))
        return []
    if len(packed) == 1:
        return [(packed[0][0], group)]
    spans, total = [], 0  # the results of each hand: [lo, hi) of the group's
    for hand in group:
        spans.append((hand, total, total + hand.answers))
        total += hand.answers
    out, start = [], 0
    for body, count in packed:
        stop = start + count
        out.append((body, [hand for hand, lo, hi in spans if lo < stop and hi > start]))
        start = stop
    return out


def _results(group: list[InHand], worker: str) -> Results:
    """The results of the hands of `group`, one after the other."""
    if len(group) == 1 or any(h.errors or h.faults or h.rejected for h in group):
        return Results.joined([hand.results(worker) for hand in group])
    tasks = Tasks.joined([hand.tasks for hand in group])
    return Results.answers(tasks, [f for h in group for f in h.factors], [t for h in group for t in h.started_at],
                           [t for h in group for t in h.completed_at], worker)


def _groups(hands: list[InHand]) -> list[list[InHand]]:
    """The hands in groups whose task ids continue one another (in the order of their ids), each small enough that the
    message ids it answers fit in its requestMessageId."""
    groups: list[list[InHand]] = []
    room, last = 0, None
    for (first, end, job), hand in sorted(((_ends(h.tasks), h) for h in hands), key=lambda a: a[0][0]):
        room -= len(hand.message.message_id) + 1
        if room < 0 or last != (first, job):
            groups.append([])
            room = _REQUEST_IDS_ROOM - len(hand.message.message_id)
        groups[-1].append(hand)
        last = (end, job)
    return groups


def _ends(tasks: Tasks) -> tuple[tuple[str, int], tuple[str, int], str | None]:
    """The (prefix, number) readings of the first task id and of the id that would follow the last one, and the last
    job (a message of rejected items only: its first one's id)."""
    ids, count = tasks.ids, len(tasks.numbers)
    if not count:
        return _id_key(next(iter(tasks.rejected.values())).id), ("", -1), None
    run = id_run(ids) if count == 1 or isinstance(ids, Ids) else None
    if run is not None:
        first, end = run, (run[0], run[1] + count)
    else:
        first, (prefix, number) = _id_key(ids[0]), _id_key(ids[-1])
        end = (prefix, number + 1)
    return first, end, tasks.jobs[-1]


def _id_key(task_id: str) -> tuple[str, int]:
    found = split_id(task_id)
    return found if found is not None else (task_id, -1)
