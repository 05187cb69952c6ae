"""The Python API (grid.client): submit a job, follow its progress, read its answers, wait for them; the wire's codes
in its exceptions. On the embedded queue with a real worker and collector as processes, and on SQS and S3 through
moto in process, with the worker and the collector stepped in the test."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import sympy
from moto import mock_aws

from grid import config
from grid.client import Client, Progress
from grid.daemons.collector import Collector
from grid.daemons.worker import Worker
from grid.errors import ConfigError, InvalidTask, JobTimeout, StoreEmpty, TaskFailed
from grid.metrics import Metrics
from grid.queues import open_broker
from helpers import Grid

PATIENCE = 120.0  # seconds a job of a few small tasks may take on a busy machine before the test gives up
README = Path(__file__).resolve().parent.parent / "README.md"
HARD = sympy.nextprime(2**89) * sympy.nextprime(2**90)  # 90-bit factors: far beyond the budget the tests give
DAEMON_SETTINGS = {"GRID_STATSD_HOST": "", "GRID_LOG_FILENAME": "-", "GRID_QUEUE_POLLING_WAIT_TIME": "1",
                   "GRID_CONCURRENCY": "1", "PYTHONUNBUFFERED": "1"}


def factors(n: int) -> tuple[int, ...]:
    return tuple(sympy.factorint(n, multiple=True))


@pytest.fixture
def embedded(tmp_path, monkeypatch):
    """The registry pointed at an embedded queue and a result store in tmp_path, as a user's environment does it."""
    settings = {"GRID_BROKER_URL": f"sqlite://{tmp_path}/grid.db", "GRID_RESULT_STORE": str(tmp_path / "results.db")}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return settings


@pytest.fixture
def start_daemons(embedded, tmp_path):
    """Starts a worker and a collector on the embedded queue as processes, with more settings if given."""
    grid = Grid(env={**os.environ, **DAEMON_SETTINGS, **embedded}, logs=str(tmp_path))

    def start(**settings: str) -> None:
        grid.env.update(settings)
        grid.start("worker")
        grid.start("collector")

    yield start
    grid.kill()


def queued(embedded) -> int:
    with open_broker(embedded["GRID_BROKER_URL"]) as broker:
        return broker.open_queue("grid_tasks_queue").counts().visible


def test_a_job_is_answered_in_the_order_of_its_numbers(start_daemons):
    start_daemons()
    numbers = [91, 8051, 1000000016000000063, 15, 2]
    with Client(tasks_per_message=2) as grid:
        job = grid.submit(numbers)
        answers = job.wait(timeout=PATIENCE)
        progress = job.progress()
        stored = sorted(r.task_id for r in job.results())
    assert [r.factors for r in answers] == [factors(n) for n in numbers]
    assert [int(r.n) for r in answers] == numbers and all(r.ok and r.job == job.id for r in answers)
    assert stored == sorted(f"{job.id}-{i}" for i in range(1, 6))
    assert (progress.submitted, progress.answered, progress.ok, progress.failed, progress.done) == (5, 5, 5, 0, True)
    assert str(progress).startswith("5 of 5 answered (5 ok, 0 failed); latency p50 ")
    with Client() as later:  # another process, or a notebook restarted: the job by its id
        assert later.job(job.id, 5).wait(timeout=0) == answers


def test_a_failed_task_raises_task_failed_with_its_wire_code_or_is_returned(start_daemons):
    start_daemons(GRID_WORK_BUDGET="0.05")
    with Client() as grid:
        job = grid.submit([15, HARD, 21], job="budget")
        with pytest.raises(TaskFailed) as failed:
            job.wait(timeout=PATIENCE)
        answers = job.wait(timeout=PATIENCE, propagate=False)
        progress = job.progress()
    assert failed.value.code == 422 and failed.value.result.task_id == "budget-2"
    assert str(failed.value).startswith(f"task budget-2 (n = {str(HARD)[:37]}...) failed with 422: over the work "
                                        "budget")
    assert [r.error_code for r in answers] == [None, 422, None] and answers[1].factors is None
    assert [answers[0].factors, answers[2].factors] == [(3, 5), (3, 7)]
    assert (progress.answered, progress.ok, progress.failed, progress.by_code) == (3, 2, 1, {422: 1})


@pytest.mark.parametrize("value, code, message", [
    (0, 400, "number 0 (numbers[1]): must be an integer >= 1"),
    (-5, 400, "number -5 (numbers[1]): must be an integer >= 1"),
    (1.5, 400, "number 1.5 (numbers[1]): must be an integer >= 1 (an int, or a string of digits 0-9), got float"),
    (True, 400, "number True (numbers[1]): must be an integer >= 1 (an int, or a string of digits 0-9), got bool"),
    (None, 400, "number None (numbers[1]): must be an integer >= 1 (an int, or a string of digits 0-9), got "
                "NoneType"),
    ("12a", 400, "number '12a' (numbers[1]): must be a decimal integer >= 1, digits 0-9 only"),
    (" 7", 400, "number ' 7' (numbers[1]): must be a decimal integer >= 1, digits 0-9 only"),
    ("000", 400, "number '000' (numbers[1]): must be a decimal integer >= 1, digits 0-9 only"),
    (10**1000, 413, "number of 3322 bits (numbers[1]): too large, the wire carries up to 1000 decimal digits"),
    ("9" * 1001, 413, "number of 1001 digits (numbers[1]): too large, the wire carries up to 1000"),
])
def test_submit_refuses_what_the_wire_refuses_naming_the_value_and_sends_nothing(embedded, value, code, message):
    with Client() as grid, pytest.raises(InvalidTask) as refused:
        grid.submit([15, value, 21])
    assert (refused.value.code, str(refused.value)) == (code, message)
    assert isinstance(refused.value, ConfigError) and refused.value.exit_code == 2
    assert queued(embedded) == 0


def test_submit_takes_numbers_up_to_the_wires_limit_as_ints_or_decimal_strings(embedded):
    with Client() as grid:
        job = grid.submit([10**1000 - 1, "0015", 2**64 + 1])
    assert (job.total, queued(embedded)) == (3, 3)


def test_submit_refuses_a_bad_job_id_and_an_empty_job(embedded):
    with Client() as grid:
        with pytest.raises(InvalidTask) as refused:
            grid.submit([15], job="x" * 200)
        assert refused.value.code == 400 and str(refused.value).startswith("job 'xxx")
        with pytest.raises(ConfigError, match="no numbers given"):
            grid.submit([])
    assert queued(embedded) == 0


def test_a_job_not_answered_yet_has_no_progress_and_wait_gives_up_at_its_timeout(embedded):
    with Client() as grid:
        job = grid.submit([15, 21])
        assert job.progress() == Progress(2, 0, 0, {}, {50: None, 95: None, 99: None}) and list(job.results()) == []
        with pytest.raises(JobTimeout) as timed_out:
            job.wait(timeout=0)
        with pytest.raises(StoreEmpty):  # the store as a whole: no collector has made it
            grid.progress()
        assert str(job.progress()) == "0 of 2 answered (0 ok, 0 failed); latency p50 -, p95 -, p99 -"
    assert isinstance(timed_out.value, TimeoutError) and timed_out.value.progress.answered == 0
    assert str(timed_out.value).startswith(f"job {job.id}: 0 of 2 tasks answered within 0 s (do a worker and a "
                                           f"collector run on broker {embedded['GRID_BROKER_URL']}")


def test_the_client_takes_the_registrys_values_and_its_arguments_over_them(embedded, monkeypatch):
    monkeypatch.setenv("GRID_TASKS_PER_MESSAGE", "3")
    with Client() as grid:
        grid.submit(range(2, 9))
    assert queued(embedded) == 3  # 7 tasks, 3 a message
    with Client(tasks_per_message=7) as grid:
        grid.submit(range(2, 9))
    assert queued(embedded) == 4
    with Client(tasks_per_message=0) as grid, pytest.raises(ConfigError) as bad:
        grid.submit([15])
    assert str(bad.value) == "tasks_per_message=0 from flag --tasks-per-message: must be 1..1000"


def test_a_job_on_sqs_and_the_s3_store_through_moto(aws_env, monkeypatch):
    monkeypatch.setenv("GRID_SSM", "0")
    url, store = "sqs://?region=us-east-1", "s3://grid-results/api"
    names = {"tasks_queue_name": "api-tasks", "results_queue_name": "api-results"}
    flags = {"broker_url": url, "result_store": store, "statsd_host": "", "queue_polling_wait_time": 0,
             "log_filename": "-", "concurrency": 1, "work_budget": 0.05, **names}
    with mock_aws(), open_broker(url) as broker:
        boto3.client("s3").create_bucket(Bucket="grid-results")
        for name in names.values():
            broker.queue(name, create=True)
        with Client(url, store, tasks_queue_name="api-tasks", tasks_per_message=2) as grid:
            job = grid.submit([15, 21, HARD, 35, 91])
            assert job.progress().answered == 0
            for role, daemon in (("worker", Worker), ("collector", Collector)):
                step = daemon(config.load(role, flags=flags, environ={"GRID_SSM": "0"}), broker, Metrics(role))
                step.setup()
                while step.run_once():
                    pass
                step.teardown()
            with pytest.raises(TaskFailed) as failed:
                job.wait(timeout=0)
            answers = job.wait(timeout=0, propagate=False)
            progress = job.progress()
    assert failed.value.code == 422 and failed.value.result.task_id == f"{job.id}-3"
    assert [r.factors for r in answers] == [(3, 5), (3, 7), None, (5, 7), (7, 13)]
    assert (progress.answered, progress.ok, progress.by_code) == (5, 4, {422: 1})


def readme_example() -> str:
    """The README's example of the Python API: the Python block between its markers."""
    text = README.read_text()
    found = re.search(r"<!-- api-example:begin -->\s*```python\n(.*?)```\s*<!-- api-example:end -->", text, re.S)
    assert found, "README.md: no Python block between <!-- api-example:begin --> and <!-- api-example:end -->"
    return found[1]


def test_the_readmes_example_runs_as_written(start_daemons, embedded, tmp_path):
    start_daemons()
    run = subprocess.run([sys.executable, "-c", readme_example()], env={**os.environ, **embedded},
                         capture_output=True, text=True, timeout=PATIENCE, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[:3] == ["91 = 7 x 13", "8051 = 83 x 97", "1000000016000000063 = 1000000007 x 1000000009"]
    assert lines[3].startswith("3 of 3 answered (3 ok, 0 failed); latency p50 ")
