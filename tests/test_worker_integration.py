"""Workers and producers as real processes on the embedded queue: stop mid-batch, heartbeats, poison, statsd."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sympy

from grid.wire import Task, decode_results, decode_tasks, encode_tasks
from grid.metrics import statsd_names
from grid.queues import open_broker
from grid.queues.base import SendEntry

REPO = Path(__file__).resolve().parents[1]
GUARD = 60  # seconds: a hang guard for waits, not a measurement

# The worker, with test-only faults put into the kernel from outside: the named numbers are slow or fail, and every
# call is written to a file, so a test can count how often each task was computed (the kernel's loop over many
# numbers answers none, so that each task is such a call).
HARNESS = r"""
import os, sys, time
from grid import primes
from grid.daemons import worker

real = primes.factorize
slow = {int(n) for n in os.environ.get("TEST_SLOW", "").split(",") if n}
fault = {int(n) for n in os.environ.get("TEST_FAULT", "").split(",") if n}

def factorize(n, *, budget=None):
    with open(os.environ["TEST_CALLS"], "a") as f:
        f.write(f"{n}\n")
    if n in fault:
        raise RuntimeError("fault put in by the test")
    if n in slow:
        time.sleep(float(os.environ["TEST_SLOW_SECONDS"]))
    return real(n, budget=budget)

primes.factorize = factorize
primes.factor_run = lambda numbers, budget, began: ([], [], [], None)  # every task through factorize above
sys.exit(worker.main(sys.argv[1:]))
"""


class Grid:
    """An embedded queue in tmp_path, and the processes a test starts on it."""

    def __init__(self, tmp_path: Path, max_receive_count: int = 5):
        self.tmp = tmp_path
        self.url = f"sqlite://{tmp_path}/grid.db"
        self.broker = open_broker(self.url)
        self.tasks = self.broker.queue("grid_tasks_queue", create=True, max_receive_count=max_receive_count)
        self.results = self.broker.queue("grid_results_queue", create=True, max_receive_count=max_receive_count)
        self.calls = tmp_path / "calls.txt"
        self.calls.touch()
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, args: list[str], *, slow=(), fault=(), slow_seconds=0.0, name="worker",
              queue_delay=0.0) -> subprocess.Popen:
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "TEST_CALLS": str(self.calls), "GRID_SSM": "0",
               "TEST_SLOW": ",".join(map(str, slow)), "TEST_FAULT": ",".join(map(str, fault)),
               "TEST_SLOW_SECONDS": str(slow_seconds), "TEST_QUEUE_DELAY": str(queue_delay)}
        log = self.tmp / f"{name}-{len(self.procs)}.log"
        daemon = [sys.executable, "-m", f"grid.daemons.{name}"]
        command = [sys.executable, "-c", HARNESS] if name == "worker" else daemon
        flags = ["--broker-url", self.url, "--log-filename", "-", "--log-level", "DEBUG", "--statsd-host", "", *args]
        with open(log, "w") as stderr:
            proc = subprocess.Popen(command + flags, env=env, cwd=REPO, stderr=stderr, stdout=subprocess.DEVNULL)
        self.procs.append((proc, log))
        return proc

    def send(self, bodies: list[str]) -> list[str]:
        ids = []
        for start in range(0, len(bodies), 10):
            chunk = bodies[start:start + 10]
            outcome = self.tasks.send_batch([SendEntry(str(i), body) for i, body in enumerate(chunk)])
            assert outcome.ok
            ids += [outcome.message_ids[str(i)] for i in range(len(chunk))]
        return ids

    def calls_of(self) -> list[int]:
        return [int(line) for line in self.calls.read_text().split()]

    def results_by_task(self) -> dict[str, list]:
        found: dict[str, list] = {}
        while messages := self.results.receive(10):
            for m in messages:
                for r in decode_results(m.body):
                    found.setdefault(r.task_id, []).append(r)
            self.results.delete_batch([m.receipt for m in messages])
        return found

    def stop(self, proc: subprocess.Popen) -> int:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=GUARD)

    def log_of(self, proc: subprocess.Popen) -> str:
        return next(log for p, log in self.procs if p is proc).read_text()

    def close(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.broker.close()


@pytest.fixture
def grid(tmp_path):
    g = Grid(tmp_path)
    yield g
    g.close()


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + GUARD
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def one_task(n: int, task_id: str) -> str:
    return encode_tasks([Task(n=n, id=task_id, job="it")])


def test_sigterm_mid_batch_finishes_the_task_in_hand_releases_the_rest_and_loses_nothing(grid):
    numbers = [sympy.prime(i) * sympy.prime(i + 1) for i in range(10, 20)]
    grid.send([one_task(n, f"t{n}") for n in numbers])
    worker = grid.start(["--concurrency", "1", "--batch-size", "10", "--queue-polling-wait-time", "1"],
                        slow=numbers, slow_seconds=1.0)
    wait_for(lambda: grid.calls_of(), "the first task to start")
    assert grid.stop(worker) == 0
    answered = grid.results_by_task()
    assert len(answered) == len(grid.calls_of()) >= 1
    assert grid.tasks.counts().in_flight == 0 and grid.tasks.counts().visible == len(numbers) - len(answered)
    assert "released" in grid.log_of(worker)

    second = grid.start(["--concurrency", "2", "--queue-polling-wait-time", "1"])
    wait_for(lambda: grid.tasks.counts().total == 0, "the second worker to drain the queue")
    assert grid.stop(second) == 0
    answered.update(grid.results_by_task())
    assert {task_id: len(rs) for task_id, rs in answered.items()} == {f"t{n}": 1 for n in numbers}
    assert all(answered[f"t{n}"][0].factors == tuple(sorted(sympy.factorint(n))) for n in numbers)


def test_a_pipelined_worker_stopped_mid_run_finishes_what_it_began_and_gives_back_what_it_took_ahead(grid):
    numbers = [sympy.prime(i) * sympy.prime(i + 1) for i in range(10, 130)]
    grid.send([one_task(n, f"t{n}") for n in numbers])
    flags = ["--concurrency", "1", "--batch-size", "10", "--pipeline-depth", "4", "--queue-polling-wait-time", "1"]
    worker = grid.start(flags, slow=numbers, slow_seconds=0.02, queue_delay=0.02)
    wait_for(lambda: grid.tasks.counts().in_flight > 10 and grid.results.counts().total, "batches taken ahead")
    assert grid.stop(worker) == 0
    answered = grid.results_by_task()
    counts = grid.tasks.counts()
    assert counts.in_flight == 0 and counts.visible == len(numbers) - len(answered) > 0
    assert "released" in grid.log_of(worker)

    second = grid.start(["--concurrency", "2", "--queue-polling-wait-time", "1"])
    wait_for(lambda: grid.tasks.counts().total == 0, "the second worker to drain the queue")
    assert grid.stop(second) == 0
    answered.update(grid.results_by_task())
    assert {task_id: len(rs) for task_id, rs in answered.items()} == {f"t{n}": 1 for n in numbers}
    assert all(answered[f"t{n}"][0].factors == tuple(sorted(sympy.factorint(n))) for n in numbers)
    assert sorted(grid.calls_of()) == sorted(numbers)  # none computed twice: what was taken ahead was not lost


def test_heartbeats_keep_the_batches_taken_ahead_invisible_too(grid):
    numbers = [sympy.prime(i) * sympy.prime(i + 1) for i in range(10, 310)]
    bundles = [numbers[i:i + 100] for i in range(0, 300, 100)]  # a batch of one such message: one step, no more
    grid.send([encode_tasks([Task(n=n, id=f"t{n}", job="it") for n in b]) for b in bundles])
    flags = ["--visibility-timeout", "2", "--concurrency", "1", "--batch-size", "1", "--pipeline-depth", "3",
             "--queue-polling-wait-time", "1"]
    holder = grid.start(flags, slow=numbers, slow_seconds=0.015, queue_delay=0.01)  # 1.5 s a message
    wait_for(lambda: grid.tasks.counts().in_flight == len(bundles), "the three messages taken, two of them ahead")
    idle = grid.start(["--concurrency", "1", "--queue-polling-wait-time", "1"])  # takes what becomes visible
    wait_for(lambda: grid.tasks.counts().total == 0, "every task answered and deleted")
    assert [grid.stop(w) for w in (holder, idle)] == [0, 0]
    assert sorted(grid.calls_of()) == sorted(numbers)  # the last message waited 3 s ahead: past the timeout
    assert {k: len(v) for k, v in grid.results_by_task().items()} == {f"t{n}": 1 for n in numbers}


def test_a_second_sigterm_leaves_at_once_and_gives_the_whole_batch_back(grid):
    numbers = [1009 * 1013, 1019 * 1021, 1031 * 1033]
    grid.send([one_task(n, f"t{n}") for n in numbers])
    worker = grid.start(["--concurrency", "1", "--queue-polling-wait-time", "1"], slow=numbers, slow_seconds=600)
    wait_for(lambda: grid.calls_of(), "the first task to start")
    worker.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # two signals close together would merge into one
    assert grid.stop(worker) == 128 + signal.SIGTERM  # long before the 600 s task could end
    assert grid.tasks.counts().visible == len(numbers) and grid.results.counts().total == 0
    assert "second stop signal" in grid.log_of(worker)


def test_heartbeats_keep_a_long_task_invisible_so_it_is_computed_once(grid):
    n = 1009 * 1013
    flags = ["--visibility-timeout", "2", "--concurrency", "1", "--queue-polling-wait-time", "1"]
    workers = [grid.start(flags, slow=[n], slow_seconds=5) for _ in range(2)]
    grid.send([one_task(n, "long")])
    wait_for(lambda: grid.tasks.counts().total == 0, "the long task to be answered and deleted")
    assert grid.calls_of() == [n]
    assert [grid.stop(w) for w in workers] == [0, 0]
    assert {k: [r.factors for r in v] for k, v in grid.results_by_task().items()} == {"long": [(1009, 1013)]}


def test_poison_messages_are_answered_or_dead_lettered_as_the_rules_say(tmp_path):
    grid = Grid(tmp_path, max_receive_count=2)
    try:
        hard = sympy.nextprime(2**89) * sympy.nextprime(2**90)  # 90-bit factors: far beyond any budget here
        ids = grid.send(["{not json", '{"input": "-5", "type": "Decimal"}',
                         '{"input": "%s", "type": "Decimal"}' % ("9" * 1001), one_task(hard, "hard"),
                         one_task(77, "fault"), one_task(15, "fine")])
        worker = grid.start(["--visibility-timeout", "1", "--work-budget", "0.05", "--queue-polling-wait-time", "1"],
                            fault=[77])
        wait_for(lambda: grid.tasks.dead_letter.counts().visible == 1, "the faulty task to reach the DLQ")
        assert grid.stop(worker) == 0
        found = grid.results_by_task()
        codes = {key: found[key][0].error_code for key in (*ids[:3], "hard")}
        assert codes == {ids[0]: 400, ids[1]: 400, ids[2]: 413, "hard": 422}
        assert found["fine"][0].factors == (3, 5) and "fault" not in found
        assert grid.tasks.counts().total == 0
        (dead,) = grid.tasks.dead_letter.receive(1)
        assert list(decode_tasks(dead.body, default_id="-").ids) == ["fault"]
        assert grid.calls_of().count(77) == 2
        log = grid.log_of(worker)
        assert "task fault: worker fault" in log and "task hard: error 422" in log
    finally:
        grid.close()


def received_names(sock: socket.socket) -> set[str]:
    names = set()
    sock.setblocking(False)
    try:
        while True:
            names |= {line.split(":", 1)[0] for line in sock.recv(65536).decode().splitlines()}
    except BlockingIOError:
        return names


def test_statsd_over_udp_receives_the_names_the_metrics_module_defines(grid):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        statsd = ["--statsd-host", "127.0.0.1", "--statsd-port", str(sock.getsockname()[1])]
        producer = grid.start([*statsd, "--count", "30", "--prime-min-bits", "12", "--prime-max-bits", "16"],
                              name="producer")
        assert producer.wait(timeout=GUARD) == 0
        worker = grid.start([*statsd, "--queue-polling-wait-time", "1"])
        wait_for(lambda: grid.tasks.counts().total == 0, "the worker to answer 30 tasks")
        assert grid.stop(worker) == 0
        names = received_names(sock)
    producer_names, worker_names = statsd_names("producer", "awsgridwithsqs_producer_"), statsd_names(
        "worker", "awsgridwithsqs_worker_")
    assert names <= set(producer_names) | set(worker_names)
    assert {f"awsgridwithsqs_producer_{n}" for n in ("throughput", "exec_time", "send_msg_time")} <= names
    originals = ("read_time", "tasks_handled", "execution_time", "send_time", "delete_time", "tps")
    assert {f"awsgridwithsqs_worker_{n}" for n in originals} <= names
