"""The grid's own commands, as processes, against moto's HTTP server reached only through boto3's AWS_ENDPOINT_URL:
no grid setting names an endpoint, as on an instance that Terraform set up against moto, LocalStack or AWS. Every
client the grid makes (SSM, SQS, Auto Scaling, S3) must get there; the broker URL's endpoint_url is SQS's alone.

The moto server is shared by the session: each test has its own AWS_ENV (SSM path), queue, group and bucket names.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import boto3
import pytest

from grid import config
from grid.wire import Code, Result, Results, Tasks, encode_results
from grid.daemons.supervisor import Observation, build_fleet
from grid.fleet import FleetError
from grid.metrics import CLOUDWATCH_METRICS, CLOUDWATCH_NAMESPACE

PATIENCE = 120  # seconds a command or a drain may take before the test fails


class Aws:
    """The environment of a machine whose AWS is the moto server, and boto3 clients to look at it."""

    def __init__(self, url: str, home: str):
        self.url = url
        self.name = f"t{uuid.uuid4().hex[:10]}"  # AWS_ENV, and the stem of every name the test makes
        self.env = {
            "PATH": os.environ["PATH"], "HOME": home, "PYTHONUNBUFFERED": "1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.path.join(home, "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "no-credentials"),
            "AWS_ENDPOINT_URL": url, "AWS_ENV": self.name,
            "GRID_BROKER_URL": "sqs://", "GRID_LOG_FILENAME": "-", "GRID_STATSD_HOST": "",
            "GRID_QUEUE_POLLING_WAIT_TIME": "1",
        }

    def client(self, service: str, region: str = "us-east-1"):
        return boto3.client(service, endpoint_url=self.url, region_name=region, aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    def parameter(self, role: str, name: str, value: str, region: str = "us-east-1") -> None:
        self.client("ssm", region).put_parameter(Name=f"/{self.name}/AWSGridWithSQS/{role}/{name}", Value=value,
                                                 Type="String")

    def grid(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "grid.cli", *args], env=self.env, capture_output=True,
                              text=True, timeout=PATIENCE, stdin=subprocess.DEVNULL)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "grid.cli", *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)


@pytest.fixture
def aws(moto_server_url, tmp_path):
    return Aws(moto_server_url, str(tmp_path))


@pytest.mark.parametrize("broker_url, region", [("sqs://", "us-east-1"), ("sqs://?region=eu-west-3", "eu-west-3")])
def test_config_show_reads_the_parameters_from_ssm_in_the_grids_region(aws, broker_url, region):
    aws.parameter("worker", "batch_size", "7", region)
    aws.env["GRID_BROKER_URL"] = broker_url  # AWS_DEFAULT_REGION is us-east-1
    shown = aws.grid("config", "show", "--role", "worker")
    assert shown.returncode == 0, shown.stderr
    [line] = [line for line in shown.stdout.splitlines() if line.startswith("batch_size ")]
    assert line.split("#")[0].split("=")[1].strip() == "7"
    assert line.endswith(f"# SSM /{aws.name}/AWSGridWithSQS/worker/batch_size")


def test_submit_sends_to_the_queue_through_the_standard_endpoint(aws):
    queue = f"{aws.name}-tasks"
    url = aws.client("sqs").create_queue(QueueName=queue)["QueueUrl"]
    submitted = aws.grid("submit", "15", "21", "--tasks-queue-name", queue, "--tasks-per-message", "2")
    assert submitted.returncode == 0, submitted.stderr
    [message] = aws.client("sqs").receive_message(QueueUrl=url, WaitTimeSeconds=1)["Messages"]
    assert json.loads(message["Body"])["inputs"] == "15,21"


@pytest.fixture
def worker_group(aws):
    name = f"{aws.name}-workers"
    aws.client("ec2").create_launch_template(
        LaunchTemplateName=name, LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "c5.large"})
    aws.client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name, MinSize=0, MaxSize=4, DesiredCapacity=3,
        LaunchTemplate={"LaunchTemplateName": name}, AvailabilityZones=["us-east-1a"])
    return name


def test_status_reads_the_fleet_size_from_auto_scaling(aws, worker_group):
    shown = aws.grid("status", "--worker-asg-name", worker_group)
    assert shown.returncode == 0, shown.stderr
    [fleet] = [line for line in shown.stdout.splitlines() if line.startswith("fleet ")]
    assert fleet.startswith(f"fleet {worker_group}: ") and fleet.endswith("desired 3")


def test_the_supervisors_clients_take_the_standard_endpoint_not_the_sqs_servers(aws, worker_group, monkeypatch):
    for name, value in aws.env.items():
        monkeypatch.setenv(name, value)
    cfg = config.load("supervisor", flags={"broker_url": "sqs://?endpoint_url=http://127.0.0.1:9&region=us-east-1",
                                           "worker_asg_name": worker_group})
    fleet, publisher = build_fleet(cfg, "asg")
    size = fleet.size()  # the group lives on moto's server, not at the SQS endpoint (nothing listens on port 9)
    assert size.desired == 3
    publisher.publish(Observation(time.time(), 7, 0, size, 3, 7 / 3, worker_group))
    metrics = aws.client("cloudwatch").list_metrics(Namespace=CLOUDWATCH_NAMESPACE)["Metrics"]
    assert {m["MetricName"] for m in metrics} >= set(CLOUDWATCH_METRICS)
    monkeypatch.setenv("AWS_ENDPOINT_URL_AUTO_SCALING", "http://127.0.0.1:9")  # the service's own comes first
    fleet, _ = build_fleet(cfg, "asg")
    with pytest.raises(FleetError, match="127.0.0.1:9"):
        fleet.size()


# ---- the result store in S3


def answers(job: str, start: int, count: int, worker: str) -> str:
    """A compact bundle of answers, as a worker sends it: tasks job-start .. job-(start + count - 1), n = 15."""
    tasks = Tasks.numbered(job, start, [15] * count, 100.0)
    return encode_results(Results.answers(tasks, [(3, 5)] * count, [100.5] * count, [101.0] * count, worker))


def one(task_id: str, job: str, worker: str, code: int | None = None) -> str:
    factors, message = ((3, 5), None) if code is None else (None, "lost")
    return encode_results([Result(task_id, job, "15", factors, code, message, worker, 100.0, 100.5, 101.0)])


def collect(aws: Aws, queue_url: str, bodies: list[str]) -> str:
    """Runs one collector until the results queue is empty, then stops it; returns its output."""
    sqs = aws.client("sqs")
    for start in range(0, len(bodies), 10):
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start:start + 10])])
    collector = aws.start("collector", "--results-queue-name", queue_url.rsplit("/", 1)[1])
    deadline = time.monotonic() + PATIENCE
    while collector.poll() is None and time.monotonic() < deadline:
        counts = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        if not any(int(v) for v in counts.values()):
            break
        time.sleep(0.2)
    collector.send_signal(signal.SIGTERM)
    output = collector.communicate(timeout=PATIENCE)[0]
    assert collector.returncode == 0, output
    return output


def test_collectors_store_into_s3_and_results_and_status_read_it_from_anywhere(aws):
    bucket, job = aws.name, "it"
    aws.client("s3").create_bucket(Bucket=bucket)
    queue_url = aws.client("sqs").create_queue(QueueName=f"{aws.name}-results")["QueueUrl"]
    aws.parameter("collector", "result_store", f"s3://{bucket}/runs")  # the collector's store comes from SSM
    first = collect(aws, queue_url, [answers(job, 0, 100, "w1"), one("it-100", job, "w1", Code.WORKER_FAULT),
                                     answers(job, 0, 100, "w1")])
    assert f"into s3://{bucket}/runs" in first
    # a second collector (another instance, or the first after a restart) meets copies of what the first stored
    collect(aws, queue_url, [answers(job, 50, 100, "w2"), one("it-100", job, "w2"), one("it-150", job, "w2")])
    keys = [o["Key"] for o in aws.client("s3").list_objects_v2(Bucket=bucket, Prefix="runs/")["Contents"]]
    assert len({key.split("Z-", 1)[1].rsplit("-", 1)[0] for key in keys}) == 2  # two collectors wrote

    summary = aws.grid("results", "--result-store", f"s3://{bucket}/runs")
    assert summary.returncode == 0, summary.stderr
    assert summary.stdout.splitlines() == ["results: 151 (151 ok, 0 errors)", "errors by code: none",
                                           "latency: p50 1.00 s, p95 1.00 s, p99 1.00 s"]
    exported = aws.grid("results", "--job", job, "--format", "jsonl")  # the store's place from SSM
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert sorted(r["task_id"] for r in records) == sorted(f"it-{i}" for i in range(151))
    workers = {r["task_id"]: r["worker"] for r in records}
    assert workers["it-60"] == "w1" and workers["it-120"] == "w2" and workers["it-100"] == "w2"

    status = aws.grid("status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert f"result store s3://{bucket}/runs" in lines and "  results: 151 (151 ok, 0 errors)" in lines


def test_results_names_a_missing_bucket_and_status_says_what_is_not_there(aws):
    aws.client("s3").create_bucket(Bucket=aws.name)
    missing = f"s3://{aws.name}-none/runs"
    shown = aws.grid("results", "--result-store", missing)
    assert shown.returncode == 2 and f"bucket '{aws.name}-none' does not exist" in shown.stderr
    status = aws.grid("status", "--result-store", missing)
    assert status.returncode == 0
    assert f"result store {missing}: unavailable (" in status.stdout and "does not exist)" in status.stdout
    empty = aws.grid("status", "--result-store", f"s3://{aws.name}/runs")
    assert f"result store s3://{aws.name}/runs: none yet" in empty.stdout.splitlines()
