"""The worker's step, on the embedded queue and on SQS through moto: answers, deletes, errors, stop, heartbeats."""
from __future__ import annotations

import json
import os
import random
import socket
import threading
import time
import uuid

import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grid import config, primes
from grid.wire import ATTRIBUTE_ALLOWANCE, REQUEST_MESSAGE_ID, Ids, Same, Task, Tasks, decode_results, encode_tasks
from grid.metrics import Metrics
from grid.queues import open_broker
from grid.queues.base import BatchResult, Message, SendEntry
from grid.daemons.heartbeat import Heartbeat
from grid.daemons import worker
from grid.daemons.answers import InHand
from grid.daemons.worker import Worker, _split
from helpers import record_statsd_before_waiting, slowed


def worker_cfg(name: str, **overrides) -> config.Config:
    # pipeline_depth 1: a step answers before run_once returns, whatever the machine's load makes the automatic depth
    flags = {"tasks_queue_name": f"{name}-tasks", "results_queue_name": f"{name}-results", "statsd_host": "",
             "queue_polling_wait_time": 0, "concurrency": 2, "log_filename": "-", "pipeline_depth": 1, **overrides}
    return config.load("worker", flags=flags, environ={})


def started(broker, cfg, metrics=None) -> Worker:
    """A set-up worker; its queues are made first, as Terraform makes them on AWS."""
    for name in (cfg.tasks_queue_name, cfg.results_queue_name):
        broker.queue(name, create=True, max_receive_count=cfg.max_receive_count)
    w = Worker(cfg, broker, metrics or Metrics("worker"))
    w.setup()
    return w


def run_until_idle(w: Worker) -> None:
    while w.run_once():
        pass


def send(queue, bodies: list[str]) -> list[str]:
    """Send the bodies; their message ids in order."""
    ids = []
    for start in range(0, len(bodies), 10):
        entries = [SendEntry(str(i), body) for i, body in enumerate(bodies[start:start + 10])]
        outcome = queue.send_batch(entries)
        assert outcome.ok
        ids += [outcome.message_ids[e.id] for e in entries]
    return ids


def drain(queue) -> list:
    """Every message on `queue`, deleted."""
    out = []
    while messages := queue.receive(10):
        out += messages
        queue.delete_batch([m.receipt for m in messages])
    return out


def results_by_task(messages) -> dict:
    found: dict = {}
    for m in messages:
        for r in decode_results(m.body):
            found.setdefault(r.task_id, []).append(r)
    return found


def expected_factors(n: int) -> tuple[int, ...]:
    return tuple(p for p, e in sorted(sympy.factorint(n).items()) for _ in range(e))


def semiprime(rng: random.Random, bits: int) -> int:
    return sympy.prevprime(rng.randrange(2 ** (bits - 1) + 2, 2**bits)) * sympy.nextprime(rng.randrange(2**bits))


def every_task_in_python(monkeypatch) -> None:
    """The loop in C answers nothing: every task goes through primes.factorize, which a test replaces."""
    monkeypatch.setattr(primes, "factor_run", lambda numbers, budget, began: ([], [], [], None))


@pytest.fixture
def sqlite_broker(tmp_path):
    with open_broker(f"sqlite://{tmp_path}/grid.db") as b:
        yield b


def test_every_task_gets_one_correct_result_and_its_message_is_deleted(broker, queue_name):
    cfg = worker_cfg(queue_name)
    w = started(broker, cfg)
    rng = random.Random(7)
    tasks = [Task(n=semiprime(rng, rng.randint(8, 16)), id=f"t{i}", job="j1") for i in range(12)]
    bodies = [encode_tasks([t]) for t in tasks[:6]] + [encode_tasks(tasks[6:9]), encode_tasks(tasks[9:])]
    message_ids = send(w.tasks, bodies)
    run_until_idle(w)
    w.teardown()
    result_messages = drain(w.results)
    found = results_by_task(result_messages)
    assert {t.id: [r.factors for r in found[t.id]] for t in tasks} == {t.id: [expected_factors(t.n)] for t in tasks}
    answered = [i for m in result_messages for i in m.attributes[REQUEST_MESSAGE_ID].split(",")]
    assert sorted(answered) == sorted(message_ids)
    assert w.tasks.counts().total == 0
    assert w.metrics.counts["tps"] == 12 and w.metrics.counts["tasks_handled"] == 12


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.one_of(st.integers(1, 2**64 - 1), st.sampled_from(["0", "-3", "0x1F", "1e5", " 15 ", "abc"])),
                      min_size=1, max_size=25))
def test_any_mix_of_numbers_and_junk_is_answered_once_each(sqlite_broker, items):
    cfg = worker_cfg(f"h{uuid.uuid4().hex[:8]}")
    w = started(sqlite_broker, cfg)
    bodies = [f'{{"input": "{item}", "type": "Decimal"}}' for item in items]
    message_ids = send(w.tasks, bodies)
    run_until_idle(w)
    w.teardown()
    found = results_by_task(drain(w.results))
    assert sorted(found) == sorted(message_ids)  # the original format has no id: the message id stands in
    for message_id, item in zip(message_ids, items):
        (result,) = found[message_id]
        if isinstance(item, int):
            assert result.factors == expected_factors(item)
        else:
            assert result.error_code == 400
    assert w.tasks.counts().total == 0


def test_bad_input_too_large_and_over_budget_are_answered_and_deleted(sqlite_broker):
    cfg = worker_cfg("poison", work_budget=0.001)
    w = started(sqlite_broker, cfg)
    hard = sympy.nextprime(2**89) * sympy.nextprime(2**90)  # 90-bit factors: far beyond any budget here
    bodies = ["{not json", '{"input": "-5", "type": "Decimal"}', '{"input": "%s", "type": "Decimal"}' % ("7" * 1001),
              encode_tasks([Task(n=hard, id="hard")])]
    ids = send(w.tasks, bodies)
    run_until_idle(w)
    found = results_by_task(drain(w.results))
    assert [found[i][0].error_code for i in ids[:3]] + [found["hard"][0].error_code] == [400, 400, 413, 422]
    assert "budget" in found["hard"][0].error_message
    assert w.tasks.counts().total == 0 and w.tasks.dead_letter.counts().total == 0
    assert w.metrics.counts["task_errors"] == 4


def test_a_worker_fault_is_not_answered_nor_deleted_and_reaches_the_dlq(sqlite_broker, monkeypatch):
    real = primes.factorize

    def faulty(n, *, budget=None):
        if n == 77:
            raise RuntimeError("injected fault")
        return real(n, budget=budget)

    monkeypatch.setattr(primes, "factorize", faulty)
    every_task_in_python(monkeypatch)
    cfg = worker_cfg("fault", max_receive_count=2, visibility_timeout=1)
    w = started(sqlite_broker, cfg)
    send(w.tasks, [encode_tasks([Task(n=77, id="bad"), Task(n=15, id="good")])])
    for _ in range(2):
        assert w.run_once()
        assert w.tasks.counts().in_flight == 1  # kept for retry
        time.sleep(1.1)  # past the visibility timeout
    assert not w.run_once()  # the third receive finds it exhausted
    assert w.tasks.counts().total == 0 and w.tasks.dead_letter.counts().visible == 1
    found = results_by_task(drain(w.results))
    assert "bad" not in found and [r.factors for r in found["good"]] == [(3, 5), (3, 5)]
    assert w.metrics.counts["worker_faults"] == 2


def test_a_message_delivered_again_is_tried_alone_first_and_one_that_kills_its_process_takes_no_batch_mate(
        sqlite_broker, monkeypatch, caplog):
    real_run, real_factorize = primes.factor_run, primes.factorize

    def crashing_run(numbers, *args, **kwargs):  # a crash in the kernel, as of a segfault
        if 77 in numbers:
            os._exit(70)
        return real_run(numbers, *args, **kwargs)

    def crashing(n, *args, **kwargs):
        if n == 77:
            os._exit(70)
        return real_factorize(n, *args, **kwargs)

    forks = []
    real_fork = os.fork

    def fork():
        forks.append(1)
        return real_fork()

    monkeypatch.setattr(primes, "factor_run", crashing_run)
    monkeypatch.setattr(primes, "factorize", crashing)
    monkeypatch.setattr(os, "fork", fork)
    w = started(sqlite_broker, worker_cfg("crash", max_receive_count=3, visibility_timeout=30))
    before = send(w.tasks, [encode_tasks([Task(n=77, id="crash")]), encode_tasks([Task(n=21, id="harmless")])])
    assert sorted(m.message_id for m in w.tasks.receive(2, visibility_timeout=0)) == sorted(before)  # a worker died
    send(w.tasks, [encode_tasks([Task(n=15, id="mate")])])
    assert w.run_once()
    found = results_by_task(drain(w.results))
    assert "crash" not in found and [r.factors for r in found["mate"]] == [(3, 5)]
    assert [r.factors for r in found["harmless"]] == [(3, 7)]
    assert w.tasks.counts().in_flight == 1 and len(forks) == 2  # the two delivered before, each alone
    assert "killed the process that computed it alone (exit code 70)" in caplog.text


class Refusing:
    """A queue that refuses the first entry of every send_batch and passes the rest on."""

    def __init__(self, queue):
        self.queue = queue

    def send_batch(self, entries):
        outcome = self.queue.send_batch(entries[1:]) if len(entries) > 1 else BatchResult()
        return BatchResult(outcome.succeeded, {**outcome.failed, entries[0].id: "refused by the test"})


def test_a_task_whose_result_was_refused_is_not_deleted(sqlite_broker):
    w = started(sqlite_broker, worker_cfg("refuse"))
    w.results = Refusing(w.results)
    send(w.tasks, [encode_tasks([Task(n=n, id=f"t{n}")]) for n in (6, 10, 14)])
    assert w.run_once()
    assert len(results_by_task(drain(w.results.queue))) == 2
    assert w.tasks.counts().in_flight == 1 and w.tasks.counts().visible == 0
    assert w.metrics.counts["tps"] == 2


def test_stop_mid_batch_finishes_the_started_message_and_releases_the_rest(sqlite_broker, monkeypatch):
    w = started(sqlite_broker, worker_cfg("stop", concurrency=1))
    real = primes.factorize

    def stop_on_first_call(n, *, budget=None):
        w.request_stop()
        return real(n, budget=budget)

    monkeypatch.setattr(primes, "factorize", stop_on_first_call)
    every_task_in_python(monkeypatch)
    send(w.tasks, [encode_tasks([Task(n=n, id=f"t{n}")]) for n in (6, 10, 14, 22, 26)])
    assert w.run_once()
    found = results_by_task(drain(w.results))
    assert len(found) == 1
    assert w.tasks.counts() == type(w.tasks.counts())(visible=4, in_flight=0, delayed=0)
    assert w.metrics.counts["released"] == 4


def test_messages_received_after_a_stop_request_are_released_at_once(sqlite_broker):
    w = started(sqlite_broker, worker_cfg("late"))
    send(w.tasks, [encode_tasks([Task(n=n, id=f"t{n}")]) for n in (6, 10)])
    w.request_stop()
    w.run_once()
    assert w.tasks.counts().visible == 2 and w.results.counts().total == 0


class Watching:
    """A tasks queue that records change_visibility calls."""

    def __init__(self, queue):
        self.queue, self.calls = queue, []
        self.beaten = threading.Semaphore(0)

    def __getattr__(self, name):
        return getattr(self.queue, name)

    def change_visibility(self, receipts, timeout):
        self.calls.append((tuple(receipts), timeout))
        self.beaten.release()
        return self.queue.change_visibility(receipts, timeout)


@pytest.mark.parametrize("concurrency", [1, 2])  # computed in the worker's thread, or on the pool's threads
def test_heartbeats_extend_the_visibility_of_messages_in_work(sqlite_broker, monkeypatch, concurrency):
    w = started(sqlite_broker, worker_cfg(f"beat{concurrency}", visibility_timeout=2, heartbeat_interval=0.05,
                                          concurrency=concurrency))
    w.tasks = watching = Watching(w.tasks)
    real = primes.factorize

    def slow(n, *, budget=None):
        for _ in range(3):  # in work until three heartbeats went out
            assert watching.beaten.acquire(timeout=10)
        return real(n, budget=budget)

    monkeypatch.setattr(primes, "factorize", slow)
    every_task_in_python(monkeypatch)
    send(w.tasks, [encode_tasks([Task(n=n, id=f"t{n}")]) for n in (6, 10)])
    assert w.run_once()
    first_beat_receipts, timeout = watching.calls[0]
    assert timeout == 2 and len(first_beat_receipts) == 2  # both messages were in hand, one in work
    assert all(len(receipts) >= 1 and t == 2 for receipts, t in watching.calls)
    assert len(results_by_task(drain(w.results))) == 2 and w.tasks.counts().total == 0


def test_a_bundle_of_many_tasks_is_answered_whole(sqlite_broker):
    w = started(sqlite_broker, worker_cfg("bundle"))
    rng = random.Random(3)
    tasks = [Task(n=rng.randrange(2, 10**12), id=f"b{i}", job="big") for i in range(300)]
    send(w.tasks, [encode_tasks(tasks)])
    run_until_idle(w)
    found = results_by_task(drain(w.results))
    assert {t.id: found[t.id][0].factors for t in tasks} == {t.id: expected_factors(t.n) for t in tasks}
    assert all(r.job == "big" and r.worker == w.worker_id for rs in found.values() for r in rs)


def test_main_reports_a_missing_queue_in_one_line_with_exit_2(moto_server_broker_url, capsys, root_logger):
    argv = ["--broker-url", moto_server_broker_url, "--tasks-queue-name", "no-such-tasks", "--log-filename", "-",
            "--statsd-host", ""]
    assert worker.main(argv) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("grid worker: error:") and "no-such-tasks" in last and "does not exist" in last


@settings(max_examples=100, deadline=None)
@given(sizes=st.lists(st.integers(0, 60), max_size=20), parts=st.integers(1, 50))
def test_a_batch_is_split_into_at_most_parts_contiguous_nonempty_pieces(sizes, parts):
    batch = [InHand(Message(f"m{k}", f"r{k}", "{}", {}, 1, 0.0), Tasks(Ids("t", 0, size), [15] * size,
                                                                         Same(None, size), Same(None, size)))
             for k, size in enumerate(sizes)]
    pieces = _split(batch, parts)
    tasks = [(hand.message.message_id, i) for piece in pieces for hand, lo, hi in piece for i in range(lo, hi)]
    assert tasks == [(f"m{k}", i) for k, size in enumerate(sizes) for i in range(size)]
    assert len(pieces) <= parts and all(pieces) and all(lo < hi for piece in pieces for _, lo, hi in piece)


def run_tasks(ns, prefix="r") -> list[Task]:
    """Tasks with ids counting up from one prefix and one job and time: sent as one compact bundle."""
    return [Task(n=n, id=f"{prefix}{i}", job="run", submitted_at=100.0) for i, n in enumerate(ns)]


@pytest.mark.parametrize("broken, code", [(RuntimeError("injected fault"), None), (primes.BudgetExceeded(77, [7], 11,
                                                                                                       "1 s"), 422)])
def test_a_failure_inside_a_compact_bundle_is_answered_like_a_lone_tasks_and_computed_once(sqlite_broker, monkeypatch,
                                                                                          broken, code):
    real, calls = primes.factorize, []

    def failing_at_77(n, *, budget=None):
        calls.append(n)
        if n == 77:
            raise broken
        return real(n, budget=budget)

    monkeypatch.setattr(primes, "factorize", failing_at_77)
    every_task_in_python(monkeypatch)
    w = started(sqlite_broker, worker_cfg("runfail"))
    ns = [15, 21, 77, 35, 143]
    send(w.tasks, [encode_tasks(run_tasks(ns))])
    assert w.run_once()
    found = results_by_task(drain(w.results))
    assert sorted(calls) == sorted(ns)
    assert {i: found[f"r{i}"][0].factors for i in (0, 1, 3, 4)} == {i: expected_factors(ns[i]) for i in (0, 1, 3, 4)}
    if code is None:  # a fault: no answer, and the message stays for a retry
        assert "r2" not in found and w.tasks.counts().in_flight == 1
    else:
        assert found["r2"][0].error_code == code and w.tasks.counts().total == 0


def test_a_compact_bundle_is_answered_with_one_compact_body(sqlite_broker):
    w = started(sqlite_broker, worker_cfg("compact"))
    send(w.tasks, [encode_tasks(run_tasks([6, 10, 14]))])
    assert w.run_once()
    [message] = drain(w.results)
    body = json.loads(message.body)
    assert (body["v"], body["id_prefix"], body["id_start"], body["factors"]) == (3, "r", 0, "2*3,2*5,2*7")
    assert w.metrics.counts["tps"] == 3


def test_a_worker_of_format_version_2_answers_as_grids_before_version_3_read(sqlite_broker):
    w = started(sqlite_broker, worker_cfg("compact2", format_version=2))
    send(w.tasks, [encode_tasks(run_tasks([6, 10, 14]))])
    assert w.run_once()
    [message] = drain(w.results)
    body = json.loads(message.body)
    assert (body["v"], body["inputs"], body["factors"]) == (2, ["6", "10", "14"], [["2", "3"], ["2", "5"], ["2", "7"]])


def test_a_heartbeat_beats_for_what_is_held_and_never_after_release():
    beats = []
    beaten = threading.Semaphore(0)

    def extend(items):
        beats.append(list(items))
        beaten.release()

    heartbeat = Heartbeat(extend, 0.01)
    heartbeat.hold(["a", "b"])
    assert beaten.acquire(timeout=10) and beaten.acquire(timeout=10)
    heartbeat.release()
    after = len(beats)
    heartbeat.hold(["c"])
    assert beaten.acquire(timeout=10)
    heartbeat.release()
    heartbeat.close()
    assert beats[:2] == [["a", "b"], ["a", "b"]] and beats[after:] == [["c"]] * (len(beats) - after)


def test_a_heartbeat_keeps_each_item_on_its_own_time_and_stops_for_the_items_released():
    beats = []
    beaten = threading.Semaphore(0)

    def extend(items):
        beats.append(sorted(items))
        beaten.release()

    heartbeat = Heartbeat(extend, 0.2)
    heartbeat.hold(["early"])
    time.sleep(0.1)
    heartbeat.hold(["early", "late"])  # "early" keeps its time: it was taken first
    assert beaten.acquire(timeout=10)
    assert beats[0] == ["early"]
    heartbeat.release(["early"])
    assert beaten.acquire(timeout=10)
    heartbeat.release()
    heartbeat.close()
    assert all(items == ["late"] for items in beats[1:])


def test_the_automatic_depth_answers_in_the_background_when_the_queue_is_slow(sqlite_broker, caplog):
    w = started(sqlite_broker, worker_cfg("slow", pipeline_depth=0, concurrency=1, batch_size=1))
    slowed(w.tasks, w.results)
    send(w.tasks, [encode_tasks([Task(n=n, id=f"t{n}") for n in range(6, 206)]) for _ in range(4)])
    with caplog.at_level("INFO", logger="grid.worker"):
        run_until_idle(w)
        w.request_stop()
        w.teardown()
    depths = [int(r.getMessage().split()[2].rstrip(":")) for r in caplog.records if "pipeline depth" in r.getMessage()]
    assert depths and depths[0] >= 2  # 60 ms of waiting a batch against a few ms of computing
    assert w.tasks.counts().total == 0 and len(drain(w.results)) >= 4


def test_on_a_slow_queue_the_first_batch_is_answered_in_the_background_while_the_next_computes(sqlite_broker):
    """The first receive, made without a long poll, times a queue call's wait: the pipeline is deep from the first
    batch on (at the start of a run, answers made in the daemon's thread would hold up the next batches)."""
    w = started(sqlite_broker, worker_cfg("slowstart", pipeline_depth=0, concurrency=1, batch_size=1))
    send(w.tasks, [encode_tasks([Task(n=n, id=f"m{k}-{n}") for n in range(6, 106)]) for k in range(4)])
    calls = []
    slowed(w.tasks, w.results, threads=calls)
    run_until_idle(w)
    w.request_stop()
    w.teardown()
    first_receive, first_send = calls[0], next(call for call in calls if call[1] == "send_batch")
    assert first_receive == ("slowstart-tasks", "receive", "MainThread")
    assert first_send[2].startswith("grid-network")  # depth 1, as before: the daemon's own thread
    assert w.tasks.counts().total == 0 and len(results_by_task(drain(w.results))) == 400


def test_where_only_answers_wait_the_worker_keeps_one_batch_ahead_and_many_answers_on_the_network(sqlite_broker):
    """Batches received ahead are set by a receive's own wait, answers in flight by theirs: held beyond what the
    receives ask, batches would wait in this worker while another finds the queue empty at its end."""
    w = started(sqlite_broker, worker_cfg("aheadwait", pipeline_depth=0, concurrency=1, batch_size=1))
    send(w.tasks, [encode_tasks([Task(n=n, id=f"m{k}-{n}") for n in range(6, 56)]) for k in range(10)])
    slowed(w.tasks, w.results, seconds=0.2, calls=("send_batch", "delete_batch"))
    held, answering = [], []
    while w.run_once():
        held.append(w._ahead.held())
        answering.append(len(w._answering))
    w.request_stop()
    w.teardown()
    assert max(held) == 1 and max(answering) >= 3
    assert w.tasks.counts().total == 0 and len(results_by_task(drain(w.results))) == 500


def test_where_calls_wait_the_computing_thread_opens_no_commit(sqlite_broker, monkeypatch):
    """Messages of many tasks are not taken more at once, so a step opens no write transaction for that: a commit's
    end may checkpoint the WAL (two fsyncs, tens of ms), which the next batch's computing would wait for. Where the
    queue's calls wait, the answers' commits are the network threads'."""
    w = started(sqlite_broker, worker_cfg("nocommit", pipeline_depth=0, concurrency=1, batch_size=2))
    send(w.tasks, [encode_tasks([Task(n=n, id=f"c{k}-{n}") for n in range(6, 206)]) for k in range(6)])
    slowed(w.tasks, w.results)
    entered, atomic = [], sqlite_broker.atomic

    def atomic_seen():
        entered.append(threading.current_thread().name)
        return atomic()

    monkeypatch.setattr(sqlite_broker, "atomic", atomic_seen)
    run_until_idle(w)
    w.request_stop()
    w.teardown()
    assert entered and "MainThread" not in entered
    assert w.tasks.counts().total == 0 and len(results_by_task(drain(w.results))) == 1200


def test_once_a_receive_comes_short_the_results_commit_before_their_deletes(sqlite_broker, tmp_path):
    """While receives come full, an answer's sends and deletes commit together (the embedded queue's lock once); once
    one came short, these may be the run's last answers, and their results commit first: a collector reading another
    connection has them before the deletes are made, a call's round trip sooner."""
    w = started(sqlite_broker, worker_cfg("short", batch_size=2))
    # a full receive, then a short one (of messages too big to be taken more at once)
    send(w.tasks, [encode_tasks([Task(n=n, id=f"s{k}-{n}") for n in range(6, 106)]) for k in range(3)])
    with open_broker(f"sqlite://{tmp_path}/grid.db") as other:
        results = other.queue(w.cfg.results_queue_name)
        seen, delete = [], w.tasks.delete_batch

        def delete_seen(receipts):
            seen.append(results.counts().visible)  # the result messages committed when the delete is made
            return delete(receipts)

        w.tasks.delete_batch = delete_seen
        run_until_idle(w)
        assert seen == [0, results.counts().visible]  # together (none yet); then every result, this answer's too
    w.request_stop()
    w.teardown()
    assert w.tasks.counts().total == 0 and len(results_by_task(drain(w.results))) == 300


def test_small_messages_are_taken_a_hundred_a_step_the_next_batch_ahead_and_given_back_on_stop(sqlite_broker):
    w = started(sqlite_broker, worker_cfg("ahead", concurrency=1))
    send(w.tasks, [encode_tasks([Task(n=n, id=f"t{n}")]) for n in range(6, 121)])
    assert w.run_once()
    counts = w.tasks.counts()
    assert (counts.visible, counts.in_flight) == (5, 10) and len(results_by_task(drain(w.results))) == 100
    w.request_stop()
    w.teardown()
    counts = w.tasks.counts()
    assert (counts.visible, counts.in_flight) == (15, 0) and w.metrics.counts["released"] == 10


def test_messages_of_many_tasks_are_taken_one_receive_a_step(sqlite_broker):
    w = started(sqlite_broker, worker_cfg("big", concurrency=1))
    send(w.tasks, [encode_tasks(run_tasks([15] * 20, prefix=f"m{k}-")) for k in range(30)])
    assert w.run_once()
    assert len(drain(w.results)) == 10 and w.tasks.counts().in_flight == 10  # 10 answered, 10 taken ahead


def one_task_runs(ns, prefix="s", start=0, job="j", submitted_at=100.0) -> list[str]:
    """One task a message, the ids counting up: as the producer sends one task a message."""
    return [encode_tasks([Task(n, f"{prefix}{start + k}", job, submitted_at)]) for k, n in enumerate(ns)]


def test_small_compact_messages_whose_ids_continue_are_answered_with_one_message_naming_them(sqlite_broker):
    w = started(sqlite_broker, worker_cfg("joined", concurrency=1))
    ns = list(range(6, 26))
    message_ids = send(w.tasks, one_task_runs(ns))
    assert w.run_once()
    [message] = drain(w.results)
    assert message.attributes[REQUEST_MESSAGE_ID].split(",") == message_ids
    found = results_by_task([message])
    assert {k: found[f"s{k}"][0].factors for k in range(20)} == {k: expected_factors(n) for k, n in enumerate(ns)}
    assert w.metrics.counts["tps"] == 20 and w.tasks.counts().total == 0


def test_runs_that_do_not_continue_one_another_are_answered_apart(sqlite_broker):
    w = started(sqlite_broker, worker_cfg("apart", concurrency=1))
    bodies = one_task_runs([6, 10]) + one_task_runs([14], start=5) + one_task_runs([15], start=6, job="other")
    send(w.tasks, bodies)
    assert w.run_once()
    messages = drain(w.results)
    assert sorted(len(m.attributes[REQUEST_MESSAGE_ID].split(",")) for m in messages) == [1, 1, 2]
    assert set(results_by_task(messages)) == {"s0", "s1", "s5", "s6"}


def test_a_hundred_one_task_messages_make_result_messages_whose_request_ids_fit_the_allowance(sqlite_broker):
    w = started(sqlite_broker, worker_cfg("many", concurrency=1))
    message_ids = send(w.tasks, one_task_runs([15] * 100))
    assert w.run_once()
    messages = drain(w.results)
    named = [m.attributes[REQUEST_MESSAGE_ID] for m in messages]
    assert 1 < len(messages) < 10 and all(len(REQUEST_MESSAGE_ID) + len("String") + len(ids) <= ATTRIBUTE_ALLOWANCE
                                          for ids in named)
    assert sorted(i for ids in named for i in ids.split(",")) == sorted(message_ids)
    assert len(results_by_task(messages)) == 100


def test_runs_whose_joined_answer_is_over_the_size_limit_are_answered_in_parts(sqlite_broker):
    w = started(sqlite_broker, worker_cfg("huge", concurrency=1))
    n = 2**2000  # 603 digits in, 2000 factors "2" out: an answer far larger than its task
    bodies = [encode_tasks(Tasks(Ids("h", 40 * k, 40), [n] * 40, Same("j", 40), Same(1.0, 40))) for k in range(2)]
    send(w.tasks, bodies)
    assert w.run_once()
    messages = drain(w.results)
    found = results_by_task(messages)
    assert len(messages) >= 2 and sorted(found) == sorted(f"h{k}" for k in range(80))
    assert all(rs[0].factors == (2,) * 2000 for rs in found.values()) and w.tasks.counts().total == 0


def test_a_task_over_its_budget_in_the_loop_in_c_is_answered_422_and_the_others_ok(sqlite_broker, monkeypatch):
    hard = (2**32 - 923) * (2**32 - 929)  # ECM needs ~60,000 steps (many curves): past a budget of 1 us
    real = primes.factor_run
    monkeypatch.setattr(primes, "factor_run", lambda numbers, budget, began: real(numbers, 1e-6, began))
    w = started(sqlite_broker, worker_cfg("c-over", concurrency=1))
    ns = [15, 21, hard, 35]
    send(w.tasks, [encode_tasks(run_tasks(ns))])
    assert w.run_once()
    found = results_by_task(drain(w.results))
    assert found["r2"][0].error_code == 422 and "over the work budget" in found["r2"][0].error_message
    assert {i: found[f"r{i}"][0].factors for i in (0, 1, 3)} == {i: expected_factors(ns[i]) for i in (0, 1, 3)}
    assert w.tasks.counts().total == 0


def test_when_the_loop_in_c_fails_as_a_whole_the_loop_in_python_answers_every_task(sqlite_broker, monkeypatch):
    def broken(numbers, budget, began):
        raise MemoryError("injected")

    monkeypatch.setattr(primes, "factor_run", broken)
    w = started(sqlite_broker, worker_cfg("c-broken", concurrency=1))
    ns = [15, 2**70 + 1, 77]
    send(w.tasks, [encode_tasks(run_tasks(ns))])
    assert w.run_once()
    found = results_by_task(drain(w.results))
    assert {i: found[f"r{i}"][0].factors for i in range(3)} == {i: expected_factors(n) for i, n in enumerate(ns)}


def test_a_worker_sends_what_it_counted_before_it_waits_for_more_tasks(sqlite_broker):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        metrics = Metrics("worker", host="127.0.0.1", port=sock.getsockname()[1])
        w = started(sqlite_broker, worker_cfg("flush", concurrency=1, queue_polling_wait_time=1), metrics)
        send(w.tasks, [encode_tasks([Task(n=15, id="t1")])])
        assert w.run_once()
        sent_before_the_wait = record_statsd_before_waiting(w.tasks, sock)
        assert not w.run_once()
    assert "tps:1|c" in sent_before_the_wait[0].splitlines()


def test_the_original_producers_task_is_answered_alone_its_time_the_messages_sent_time(broker, queue_name):
    w = started(broker, worker_cfg(queue_name))
    [message_id] = send(w.tasks, ['{"input": 15, "type": "Decimal"}'])  # the original's: no id, no time
    assert w.run_once()
    [message] = drain(w.results)
    body = json.loads(message.body)
    assert message.attributes[REQUEST_MESSAGE_ID] == message_id
    assert body["output"] == {"factors": ["3", "5"]} and body["type"] == "Decimal"  # the original's result
    [result] = decode_results(message.body)
    assert result.task_id == message_id and 0 < result.submitted_at <= result.started_at <= result.completed_at


def test_a_pipelined_worker_answers_every_task_once_on_every_backend_and_gives_back_what_it_took_ahead(broker):
    name = f"pipe-{uuid.uuid4().hex[:8]}"
    w = started(broker, worker_cfg(name, pipeline_depth=3, batch_size=2))
    numbers = list(range(6, 406))
    send(w.tasks, [encode_tasks([Task(n=n, id=f"t{n}") for n in numbers[i:i + 100]]) for i in range(0, 400, 100)])
    assert w.run_once()  # a batch of two messages computed, another taken ahead
    w.request_stop()
    w.teardown()
    counts = w.tasks.counts()
    answered = results_by_task(drain(w.results))
    assert counts.in_flight == 0 and counts.visible == 2 and w.metrics.counts["released"] == 2
    assert len(answered) == 200 and set(answered) < {f"t{n}" for n in numbers}
    assert all(len(rs) == 1 and rs[0].factors == expected_factors(int(rs[0].n)) for rs in answered.values())
