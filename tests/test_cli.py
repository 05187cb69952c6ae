"""The `grid` command on the embedded queue: submit, results, status, dlq, config, role dispatch."""
import io
import json
import sys

import boto3
import pytest
from moto import mock_aws

from grid import __version__, config
from grid.cli import main
from grid.fleet import FleetSize
from grid.wire import Code, Result, decode_tasks
from grid.queues import SendEntry, open_broker
from grid.daemons.supervisor import Observation, write_status
from grid.store.sqlite import ResultStore


@pytest.fixture
def grid_env(tmp_path, monkeypatch):
    monkeypatch.setenv("GRID_BROKER_URL", f"sqlite://{tmp_path}/grid.db")
    monkeypatch.setenv("GRID_RESULT_STORE", str(tmp_path / "results.db"))
    monkeypatch.setenv("GRID_STATSD_HOST", "")
    monkeypatch.setenv("GRID_MAX_RECEIVE_COUNT", "1")
    return tmp_path


def run(capsys, *argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def queued_tasks(tmp_path, name="grid_tasks_queue"):
    with open_broker(f"sqlite://{tmp_path}/grid.db") as broker:
        queue = broker.queue(name)
        messages = []
        while batch := queue.receive(10, visibility_timeout=60):
            messages += batch
    return messages, [t for m in messages for t in decode_tasks(m.body, default_id=m.message_id)]


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"grid {__version__}"


def test_submit_numbers_from_arguments_a_file_and_stdin(grid_env, capsys, monkeypatch):
    numbers = grid_env / "numbers.txt"
    numbers.write_text("21 35\n\n77\n")
    code, out, _ = run(capsys, "submit", "15", "2" + "0" * 60, "--file", str(numbers), "--job", "mine")
    assert (code, out) == (0, "mine\n")
    code, out, _ = run(capsys, "submit", stdin="91\n143", monkeypatch=monkeypatch)
    second = out.strip()
    _, tasks = queued_tasks(grid_env)
    assert sorted(t.n for t in tasks) == sorted([15, 2 * 10**60, 21, 35, 77, 91, 143])
    assert {t.job for t in tasks} == {"mine", second} and len({t.id for t in tasks}) == 7
    assert all(t.submitted_at is not None for t in tasks)


def test_submit_bundles_tasks_per_message(grid_env, capsys):
    code, _, _ = run(capsys, "submit", *map(str, range(2, 9)), "--tasks-per-message", "3")
    messages, tasks = queued_tasks(grid_env)
    assert code == 0 and len(messages) == 3 and sorted(t.n for t in tasks) == list(range(2, 9))


@pytest.mark.parametrize("word, where", [("12a", "argument 2"), ("0", "argument 2"), ("-5", "argument 2"),
                                         ("1e5", "argument 2")])
def test_submit_refuses_a_bad_number_naming_it_and_where_it_is(grid_env, capsys, word, where):
    code, out, err = run(capsys, "submit", "15", word)
    assert code == 2 and out == ""
    assert err == (f"grid submit: error: number {word!r} ({where}): must be a decimal integer >= 1, "
                   "digits 0-9 only\n")


def test_submit_refuses_a_number_too_large_for_the_wire_naming_where_it_is(grid_env, capsys):
    code, out, err = run(capsys, "submit", "15", "9" * 1001)
    assert (code, out) == (2, "")
    assert err == "grid submit: error: number of 1001 digits (argument 2): too large, the wire carries up to 1000\n"


def test_submit_with_nothing_to_send_says_how(grid_env, capsys, monkeypatch):
    code, _, err = run(capsys, "submit", stdin="", monkeypatch=monkeypatch)
    assert code == 2 and "no numbers to submit" in err


def store_results(path):
    with ResultStore(path) as store:
        store.add([Result(f"t{i}", "j1", "15", (3, 5), submitted_at=100.0, completed_at=100.0 + i) for i in range(1, 5)]
                  + [Result("bad", "j2", None, None, int(Code.BAD_INPUT), "not a number", submitted_at=1.0,
                            completed_at=2.0)])


def test_results_summary_and_a_jobs_results_as_json_lines_and_csv(grid_env, capsys):
    store_results(grid_env / "results.db")
    code, out, _ = run(capsys, "results")
    assert code == 0
    assert out.splitlines() == ["results: 5 (4 ok, 1 errors)", "errors by code: 400: 1",
                                "latency: p50 2.00 s, p95 3.80 s, p99 3.96 s"]
    _, out, _ = run(capsys, "results", "--job", "j1", "--format", "jsonl")
    assert [json.loads(line)["task_id"] for line in out.splitlines()] == ["t1", "t2", "t3", "t4"]
    _, out, _ = run(capsys, "results", "--job", "j2", "--format", "csv")
    assert out.splitlines()[1].startswith("bad,j2,,,400,not a number")


def test_results_without_a_store_says_so(grid_env, capsys):
    code, _, err = run(capsys, "results")
    assert code == 2 and "no result store there" in err and str(grid_env / "results.db") in err


def test_status_shows_queues_dlqs_fleet_and_last_results(grid_env, capsys):
    run(capsys, "submit", "15", "21")
    store_results(grid_env / "results.db")
    write_status(str(grid_env / "supervisor-status.json"),
                 Observation(0.0, 2, 0, FleetSize(1, 1, 1), 1, 2.0, "local"))
    code, out, _ = run(capsys, "status", "--last", "2")
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "queue grid_tasks_queue: 2 waiting, 0 in flight, 0 delayed; DLQ grid_tasks_queue-dlq: 0"
    assert lines[1] == "queue grid_results_queue: missing"
    assert lines[2].startswith("fleet local: 1 in service, 1 running, desired 1")
    assert lines[-2:] == ["  bad: None = error 400: not a number", "  t4: 15 = 3 x 5"]


def test_dlq_peek_redrive_and_purge(grid_env, capsys):
    with open_broker(f"sqlite://{grid_env}/grid.db") as broker:
        tasks = broker.queue("grid_tasks_queue", create=True, max_receive_count=1)
        tasks.send_batch([SendEntry("0", "poison"), SendEntry("1", "more poison")])
        tasks.receive(10, visibility_timeout=0)
        assert tasks.receive(10) == [] and tasks.dead_letter.counts().total == 2
    code, out, _ = run(capsys, "dlq", "peek")
    assert code == 0 and sorted(json.loads(line)["body"] for line in out.splitlines()) == ["more poison", "poison"]
    assert run(capsys, "dlq", "redrive", "--max", "1")[1] == (
        "moved 1 messages from grid_tasks_queue-dlq back to grid_tasks_queue\n")
    assert run(capsys, "dlq", "purge")[1] == "purged grid_tasks_queue-dlq\n"
    assert run(capsys, "dlq", "peek")[1] == "grid_tasks_queue-dlq is empty\n"
    with open_broker(f"sqlite://{grid_env}/grid.db") as broker:
        assert broker.queue("grid_tasks_queue").counts().visible == 1


def test_config_show_and_export(grid_env, capsys, tmp_path):
    code, out, _ = run(capsys, "config", "show", "--role", "collector")
    assert code == 0 and out.strip() == config.show(config.load("collector")).strip()
    code, out, _ = run(capsys, "config", "export")
    assert code == 0 and json.loads(out) == json.loads(json.dumps(config.export_registry(), default=str))
    run(capsys, "config", "export", "--output", str(tmp_path / "registry.json"))
    assert json.loads((tmp_path / "registry.json").read_text()) == json.loads(out)


@pytest.mark.parametrize("role", ["producer", "worker", "supervisor", "collector"])
def test_each_role_lists_its_registry_parameters(role, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([role, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert all(p.flag in out for p in config.params(role))


def test_a_bad_parameter_is_one_line_and_exit_2(grid_env, capsys):
    code, _, err = run(capsys, "collector", "--batch-size", "12", "--log-filename", "-")
    assert code == 2
    assert err.strip().splitlines()[-1].startswith("grid collector: error: batch_size=12 from flag --batch-size")


def test_submit_status_and_dlq_on_sqs(aws_env, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("GRID_BROKER_URL", "sqs://?region=us-east-1")
    monkeypatch.setenv("GRID_SSM", "0")
    monkeypatch.setenv("GRID_WORKER_ASG_NAME", "grid-workers")
    monkeypatch.setenv("GRID_RESULT_STORE", str(tmp_path / "results.db"))
    with mock_aws():
        with open_broker("sqs://?region=us-east-1") as broker:
            broker.queue("grid_tasks_queue", create=True)
        boto3.client("ec2").create_launch_template(
            LaunchTemplateName="grid-worker", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"})
        boto3.client("autoscaling").create_auto_scaling_group(
            AutoScalingGroupName="grid-workers", MinSize=0, MaxSize=4, DesiredCapacity=2,
            LaunchTemplate={"LaunchTemplateName": "grid-worker"}, AvailabilityZones=["us-east-1a"])
        code, job, _ = run(capsys, "submit", "15", "21", "35")
        _, out, _ = run(capsys, "status")
        _, peeked, _ = run(capsys, "dlq", "peek")
    lines = out.splitlines()
    assert code == 0 and job.startswith("job-")
    assert lines[0] == "queue grid_tasks_queue: 3 waiting, 0 in flight, 0 delayed; DLQ grid_tasks_queue-dlq: 0"
    assert lines[1] == "queue grid_results_queue: missing"
    assert lines[2] == "fleet grid-workers: 2 in service, 2 instances, desired 2"
    assert peeked == "grid_tasks_queue-dlq is empty\n"
