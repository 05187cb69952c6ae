"""The embedded queue beyond the shared suite: durability under SIGKILL, waking across processes, fork safety."""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grid.errors import ConfigError, QueueError
from grid.queues import SendEntry, open_broker
from grid.queues.base import MAX_MESSAGE_BYTES, entry_problem, printable_ascii
from grid.queues.sqlite import SqliteBroker, waking
from grid.queues.sqlite.broker import SCHEMA_VERSION
from helpers import holding_the_write_lock


def _child(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args], stdout=subprocess.PIPE, text=True, **kwargs
    )


SENDER = """
    import sys
    from grid.queues import SendEntry, open_broker
    queue = open_broker(sys.argv[1]).queue("tasks")
    n = 0
    while True:
        result = queue.send_batch([SendEntry(str(i), f"task {n + i}") for i in range(10)])
        n += 10
        print(*result.message_ids.values(), flush=True)
"""


def test_every_acknowledged_send_survives_a_sigkill_of_the_sender(sqlite_url):
    with open_broker(sqlite_url) as broker:
        broker.queue("tasks", create=True)
    sender = _child(SENDER, sqlite_url)
    acknowledged = []
    while len(acknowledged) < 2000:
        acknowledged += sender.stdout.readline().split()
    sender.send_signal(signal.SIGKILL)
    acknowledged += sender.stdout.read().split()
    sender.wait()
    db = sqlite3.connect(sqlite_url.removeprefix("sqlite://"))
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = {row[0] for row in db.execute("SELECT message_id FROM messages")}
    assert set(acknowledged) <= stored


FULL = """
    import resource, sys
    from grid.errors import QueueError
    from grid.queues import SendEntry, open_broker
    broker = open_broker(sys.argv[1])
    queue = broker.queue("tasks")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), limit[1]))  # a write past it fails: no space
    sent = 0
    try:
        while True:
            with broker.atomic():  # its COMMIT fails: the error says why, not that a rollback found nothing to undo
                batch = queue.send_batch([SendEntry(str(i), "x" * 1000) for i in range(10)])
            sent += len(batch.succeeded)
    except QueueError as e:
        print(e, flush=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, limit)  # space is back
    sent += len(queue.send_batch([SendEntry(str(i), "y") for i in range(10)]).succeeded)
    print(sent, flush=True)
"""


def test_a_full_file_system_is_one_clear_error_no_corruption_and_the_queue_works_once_space_is_back(sqlite_url):
    path = sqlite_url.removeprefix("sqlite://")
    with open_broker(sqlite_url) as broker:
        broker.queue("tasks", create=True)
    child = _child(FULL, sqlite_url, str(os.path.getsize(path) + 200_000))
    error, sent = child.stdout.read().splitlines()
    assert child.wait() == 0
    assert error.startswith(f"queue database {path}: disk I/O error (the file cannot be written: is its file system "
                            "full or read-only")
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("SELECT count(*) FROM messages").fetchone() == (int(sent),)  # what was acknowledged, no more
    assert int(sent) > 10  # some before the file system filled, and the 10 after


HOLDER = """
    import sys, time
    from grid.queues import open_broker
    got = open_broker(sys.argv[1]).queue("tasks").receive(10, visibility_timeout=1)
    print(*(m.message_id for m in got), flush=True)
    time.sleep(600)
"""


def test_messages_held_by_a_killed_receiver_come_back(sqlite_url):
    with open_broker(sqlite_url) as broker:
        queue = broker.queue("tasks", create=True)
        sent = queue.send_batch([SendEntry(str(i), "x") for i in range(5)]).message_ids.values()
        holder = _child(HOLDER, sqlite_url)
        held = holder.stdout.readline().split()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        back = queue.receive(10, wait_seconds=5)
    assert sorted(held) == sorted(sent)
    assert sorted(m.message_id for m in back) == sorted(sent)
    assert all(m.receive_count == 2 for m in back)


WAITER = """
    import sys
    from grid.queues.sqlite import SqliteBroker, waking
    waking.POLL_FALLBACK = waking.NEW_WAITER_POLL = 600  # only a poke can wake it before the wait ends
    got = SqliteBroker(sys.argv[1]).queue("tasks").receive(1, wait_seconds=20)
    print(*(m.body for m in got), flush=True)
"""

NEW_WAITER = """
    import sys
    from grid.queues.sqlite import SqliteBroker, waking
    waking.POLL_FALLBACK = waking.WAITERS_TTL = 600  # no poke comes: only its polls while it is new can wake it
    got = SqliteBroker(sys.argv[1]).queue("tasks").receive(1, wait_seconds=20)
    print(*(m.body for m in got), flush=True)
"""


def test_a_send_from_another_process_wakes_a_waiting_receiver(tmp_path):
    assert what_a_waiter_got(tmp_path, WAITER, "wake up") == ["wake", "up"]


def test_a_new_waiter_gets_a_send_whose_sender_read_the_waiters_before_it_registered(tmp_path, monkeypatch):
    monkeypatch.setattr(waking, "WAITERS_TTL", 600)  # this process pokes the waiters it read at its first send
    assert what_a_waiter_got(tmp_path, NEW_WAITER, "found anyway", sent_before=True) == ["found", "anyway"]


def what_a_waiter_got(tmp_path, waiter_code: str, body: str, sent_before: bool = False) -> list[str]:
    """The words a waiting receiver (a process running `waiter_code`) got of `body`, sent once it registered; with
    `sent_before`, this process sent (and read the waiters) before it started."""
    path = str(tmp_path / "grid.db")
    with SqliteBroker(path) as broker:
        queue = broker.queue("tasks", create=True)
        if sent_before:
            queue.send_batch([SendEntry("0", "before")])
            queue.delete_batch([m.receipt for m in queue.receive(1)])
        waiter = _child(waiter_code, path)
        while not broker.execute("SELECT count(*) FROM waiters").fetchone()[0]:
            assert waiter.poll() is None
        queue.send_batch([SendEntry("1", body)])
        out, _ = waiter.communicate(timeout=10)  # well before its 20 s wait could end
    return out.split()


def test_waiters_of_dead_processes_are_forgotten(sqlite_url):
    with open_broker(sqlite_url) as broker:
        queue = broker.queue("tasks", create=True)
        with broker.transaction() as db:
            db.execute("INSERT INTO waiters VALUES (?, 'tasks')", (b"\0grid-queue-nobody",))
        queue.send_batch([SendEntry("0", "x")])
        assert broker.execute("SELECT count(*) FROM waiters").fetchone()[0] == 0


def test_a_broker_keeps_working_in_a_forked_child(sqlite_url):
    with open_broker(sqlite_url) as broker:
        queue = broker.queue("tasks", create=True)
        queue.send_batch([SendEntry("0", "before fork")])
        pid = os.fork()
        if pid == 0:
            got = queue.receive(1)
            os._exit(0 if [m.body for m in got] == ["before fork"] and queue.delete_batch([got[0].receipt]).ok else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert queue.counts().total == 0


def test_a_stale_receipt_cannot_change_a_message_received_again(sqlite_url):
    with open_broker(sqlite_url) as broker:
        queue = broker.queue("tasks", create=True)
        queue.send_batch([SendEntry("0", "x")])
        [first] = queue.receive(1, visibility_timeout=0)
        [second] = queue.receive(1, visibility_timeout=60)
        assert set(queue.change_visibility([first.receipt], 0).failed) == {first.receipt}
        assert queue.counts().in_flight == 1
        assert queue.change_visibility([second.receipt], 0).ok


def test_synchronous_full_is_applied(tmp_path):
    with open_broker(f"sqlite://{tmp_path}/grid.db?synchronous=full") as broker:
        assert broker.execute("PRAGMA synchronous").fetchone()[0] == 2


def test_a_stale_receipt_deletes_nothing_as_sqs_documents(sqlite_url):
    with open_broker(sqlite_url) as broker:
        queue = broker.queue("tasks", create=True)
        queue.send_batch([SendEntry("0", "x")])
        [first] = queue.receive(1, visibility_timeout=0)
        [second] = queue.receive(1, visibility_timeout=60)
        assert queue.delete_batch([first.receipt]).ok
        assert queue.counts().in_flight == 1
        assert queue.delete_batch([second.receipt]).ok
        assert queue.counts().total == 0


def test_a_receipt_never_names_a_later_message_that_reuses_its_row(sqlite_url):
    with open_broker(sqlite_url) as broker:
        queue = broker.queue("tasks", create=True)
        queue.send_batch([SendEntry("0", "old")])
        [old] = queue.receive(1)
        queue.delete_batch([old.receipt])
        queue.send_batch([SendEntry("0", "new")])
        [new] = queue.receive(1, visibility_timeout=60)
        assert old.receipt.split(".")[0] == new.receipt.split(".")[0]  # the row id was reused
        queue.delete_batch([old.receipt])
        assert set(queue.change_visibility([old.receipt], 0).failed) == {old.receipt}
        assert queue.counts().in_flight == 1


def test_threads_sharing_one_queue_object_never_get_the_same_message(sqlite_url):
    with open_broker(sqlite_url) as broker:
        queue = broker.queue("tasks", create=True)
        batches = [queue.send_batch([SendEntry(str(j), "x") for j in range(10)]) for _ in range(30)]
        sent = [m for batch in batches for m in batch.message_ids.values()]

        def drain(_):
            got = []
            while batch := queue.receive(10, visibility_timeout=300):
                got += [m.message_id for m in batch]
            return got

        with ThreadPoolExecutor(4) as pool:
            received = [mid for got in pool.map(drain, range(4)) for mid in got]
    assert sorted(received) == sorted(sent)


def _answer_and_delete(broker, fail: bool) -> None:
    tasks, results = broker.queue("tasks"), broker.queue("results")
    [message] = tasks.receive(1)
    with broker.atomic():
        assert results.send_batch([SendEntry("0", "result")]).ok
        assert tasks.delete_batch([message.receipt]).ok
        with open_broker(broker.url) as other:  # another connection sees neither until the commit
            assert other.queue("results").counts().visible == 0
            assert other.queue("tasks").counts().in_flight == 1
        if fail:
            raise RuntimeError("the worker died between the two")


@pytest.mark.parametrize("fail", [False, True])
def test_calls_inside_atomic_commit_together_or_not_at_all(sqlite_url, fail):
    with open_broker(sqlite_url) as broker:
        tasks, results = broker.queue("tasks", create=True), broker.queue("results", create=True)
        tasks.send_batch([SendEntry("0", "task")])
        if fail:
            with pytest.raises(RuntimeError):
                _answer_and_delete(broker, fail)
        else:
            _answer_and_delete(broker, fail)
        assert results.counts().visible == (0 if fail else 1)
        assert tasks.counts().in_flight == (1 if fail else 0)


entries = st.builds(
    SendEntry, id=st.just("0"),
    body=st.text(max_size=40) | st.sampled_from(['{"input":"15","type":"Decimal"}', "a\tb", "x" * MAX_MESSAGE_BYTES]),
    attributes=st.dictionaries(st.sampled_from(["requestMessageId", "a..b", "AWS.x", "", "n" * 300]),
                               st.text(max_size=12) | st.just("v" * 200), max_size=3),
    delay_seconds=st.sampled_from([0, 0.0, 5, -1, 901]),
)


@pytest.fixture(scope="module")
def one_queue(tmp_path_factory):
    with open_broker(f"sqlite://{tmp_path_factory.mktemp('entries')}/grid.db") as broker:
        yield broker.queue("entries", create=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(entries, min_size=1, max_size=4))
def test_send_batch_refuses_an_entry_exactly_as_sqs_would(one_queue, batch):
    for entry in batch:  # in turn: attribute names accepted once may be checked another way after
        assert one_queue.send_batch([entry]).failed.get("0") == entry_problem(entry)


# What SQS accepts in a body, from its documentation: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to
# #x10FFFF.
SQS_REFUSES = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@settings(max_examples=500, deadline=None)
@given(st.text() | st.text(st.characters(max_codepoint=0x7F)) | st.sampled_from(["", "a\x7f", "\x1f", " ~"]))
def test_the_quick_check_of_printable_ascii_is_the_unicode_definition(text):
    assert printable_ascii(text) == (text != "" and text.isascii() and text.isprintable())
    refused = entry_problem(SendEntry("0", text)) if text else None
    assert (refused is not None and "character" in refused) == (SQS_REFUSES.search(text) is not None)


def test_the_database_folder_is_made_on_first_use(tmp_path):
    url = f"sqlite://{tmp_path}/not/yet/grid.db"
    with open_broker(url) as broker:
        broker.queue("made", create=True).send_batch([SendEntry("1", "body")])
    with open_broker(url) as broker:
        assert broker.queue("made").counts().visible == 1


def test_a_folder_that_cannot_be_made_is_a_clear_configuration_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match=r"cannot create the folder .*a-file of the queue database .*in the way"):
        open_broker(f"sqlite://{tmp_path}/a-file/grid.db")


def test_a_database_of_the_first_schema_is_a_clear_configuration_error(tmp_path):
    path = tmp_path / "grid.db"
    with sqlite3.connect(path) as db:  # the first schema: queue names in every row, no schema version
        db.execute("CREATE TABLE queues (name TEXT PRIMARY KEY, dead_letter TEXT, max_receive_count INTEGER)")
        db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, queue TEXT NOT NULL, body TEXT NOT NULL)")
    with pytest.raises(ConfigError, match=r"grid\.db \(broker .*\) has schema version 0, made by an older version"
                                          r" of grid.*reads version 2: drain its queues .*or use a new file"):
        open_broker(f"sqlite://{path}")


def test_a_database_of_a_newer_schema_is_a_clear_configuration_error(tmp_path):
    path = tmp_path / "grid.db"
    with SqliteBroker(str(path)):
        pass
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigError, match=r"has schema version 3, made by a newer version of grid"):
        open_broker(f"sqlite://{path}")


def test_processes_opening_a_new_database_together_all_get_its_schema(tmp_path):
    url = f"sqlite://{tmp_path}/grid.db"
    opener = "import sys; from grid.queues import open_broker; open_broker(sys.argv[1]).queue('q', create=True)"
    children = [subprocess.Popen([sys.executable, "-c", opener, url], stderr=subprocess.PIPE, text=True)
                for _ in range(4)]
    errors = [child.communicate(timeout=60)[1] for child in children]
    assert [child.returncode for child in children] == [0] * 4, errors
    with open_broker(url) as broker:
        assert broker.queue("q").counts().total == 0


def test_sent_total_counts_every_message_sent_and_none_of_a_rolled_back_batch(sqlite_url):
    with open_broker(sqlite_url) as broker:
        tasks = broker.queue("tasks", create=True)
        tasks.send_batch([SendEntry(str(i), "x") for i in range(3)] + [SendEntry("bad", "")])
        [message] = tasks.receive(1)
        tasks.delete_batch([message.receipt])
        with pytest.raises(RuntimeError), broker.atomic():
            tasks.send_batch([SendEntry("0", "y")])
            raise RuntimeError("rolled back")
        assert tasks.counts().sent_total == 3 and tasks.counts().total == 2


def test_a_receive_inside_atomic_takes_the_next_batch_in_the_same_commit_and_never_waits(sqlite_url):
    with open_broker(sqlite_url) as broker:
        tasks, results = broker.queue("tasks", create=True), broker.queue("results", create=True)
        tasks.send_batch([SendEntry(str(i), f"task {i}") for i in range(3)])
        [first] = tasks.receive(1)
        with broker.atomic():
            results.send_batch([SendEntry("0", "result")])
            tasks.delete_batch([first.receipt])
            following = tasks.receive(10)
            with pytest.raises(ValueError, match=r"receive\(wait_seconds=1\) inside atomic\(\): waiting would hold"):
                tasks.receive(10, wait_seconds=1)
        assert sorted(m.body for m in following) == ["task 1", "task 2"]
        assert tasks.counts().in_flight == 2 and results.counts().visible == 1


def test_atomic_takes_the_write_lock_only_at_its_first_read_or_its_commit(sqlite_url):
    with open_broker(sqlite_url) as broker, open_broker(sqlite_url) as other:
        tasks, results = broker.queue("tasks", create=True), broker.queue("results", create=True)
        tasks.send_batch([SendEntry("0", "task")])
        [message] = tasks.receive(1)
        with broker.atomic():
            results.send_batch([SendEntry("0", "result")])
            tasks.delete_batch([message.receipt])
            other.queue("tasks").send_batch([SendEntry("0", "sent meanwhile")])  # no lock held: no wait, no error
            assert other.queue("results").counts().visible == 0
            assert tasks.receive(10)[0].body == "sent meanwhile"  # a read: the kept statements run first
            with sqlite3.connect(broker.path, timeout=0) as raw, pytest.raises(sqlite3.OperationalError,
                                                                               match="database is locked"):
                raw.execute("BEGIN IMMEDIATE")  # from here on, the lock is held
        assert results.counts().visible == 1 and tasks.counts().in_flight == 1


def test_a_kept_statement_that_fails_undoes_the_whole_atomic_even_when_its_caller_goes_on(sqlite_url):
    with open_broker(sqlite_url) as broker:
        tasks, results = broker.queue("tasks", create=True), broker.queue("results", create=True)
        tasks.send_batch([SendEntry("0", "poison"), SendEntry("1", "next")])
        with sqlite3.connect(broker.path) as db:
            db.execute("CREATE TRIGGER refuse BEFORE DELETE ON messages WHEN old.body = 'poison'"
                       " BEGIN SELECT RAISE(ABORT, 'injected refusal'); END")
        [poison] = tasks.receive(1)
        with pytest.raises(QueueError, match="none of its calls took effect"), broker.atomic():
            results.send_batch([SendEntry("0", "result")])
            tasks.delete_batch([poison.receipt])
            with pytest.raises(QueueError, match="injected refusal"):
                tasks.receive(1)  # runs the kept statements: the delete fails here
        assert results.counts().total == 0 and tasks.counts().in_flight == 1 and tasks.counts().visible == 1


def test_message_ids_are_distinct_version_4_uuids(sqlite_url):
    with open_broker(sqlite_url) as broker:
        queue = broker.queue("tasks", create=True)
        batches = [queue.send_batch([SendEntry(str(j), "x") for j in range(10)]) for _ in range(20)]
    ids = [i for batch in batches for i in batch.message_ids.values()]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 4 and u.variant == uuid.RFC_4122 and str(u) == i for u, i in zip(parsed, ids))
    assert len(set(ids)) == len(ids)


def test_a_queue_database_whose_switch_to_wal_is_refused_while_another_process_writes_it_opens_once_it_is_let(
        tmp_path):
    path = tmp_path / "grid.db"
    with holding_the_write_lock(path) as lock:
        lock.release_after(0.2)
        with open_broker(f"sqlite://{path}") as broker:
            assert lock.released and broker.queue("tasks", create=True).counts().total == 0
