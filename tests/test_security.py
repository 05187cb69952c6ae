"""No credential in any log: the four roles on SQS and S3 (moto's server) at DEBUG, with credentials of the test's
own, and their logs searched for the secret key and the session token."""
from __future__ import annotations

import os
import time
import uuid

import boto3

from grid.queues import open_broker
from helpers import Grid, stored_count

GUARD = 120  # seconds: a hang guard, not a measurement


def test_no_role_writes_the_secret_key_or_the_session_token_to_its_log(aws_env, moto_server_url, tmp_path,
                                                                       monkeypatch):
    run = uuid.uuid4().hex[:8]
    secret, token = f"grid-secret-{run}-do-not-log", f"grid-token-{run}-do-not-log"
    aws = {"AWS_ENDPOINT_URL": moto_server_url, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": token,
           "AWS_ENV": f"sec{run}"}
    for name, value in aws.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3").create_bucket(Bucket=aws["AWS_ENV"])
    with open_broker("sqs://") as broker:
        for name in ("sec-tasks", "sec-results"):
            broker.queue(name, create=True)
    store = f"s3://{aws['AWS_ENV']}/results"
    grid = Grid(env={**os.environ, "GRID_BROKER_URL": "sqs://", "GRID_TASKS_QUEUE_NAME": "sec-tasks",
                     "GRID_RESULTS_QUEUE_NAME": "sec-results", "GRID_RESULT_STORE": store, "GRID_LOG_LEVEL": "DEBUG",
                     "GRID_LOG_FILENAME": "-", "GRID_STATSD_HOST": "", "GRID_QUEUE_POLLING_WAIT_TIME": "1",
                     "GRID_METRIC_INTERVAL": "1", "GRID_MIN_WORKERS": "1", "GRID_MAX_WORKERS": "1",
                     "GRID_CONCURRENCY": "1"}, logs=str(tmp_path))
    try:
        for role, args in (("supervisor", ("--fleet", "local")), ("collector", ()),
                           ("producer", ("--count", "30", "--job", "sec"))):
            grid.start(role, *args)
        deadline = time.monotonic() + GUARD
        while stored_count(store) < 30:
            assert time.monotonic() < deadline, "30 results not stored in time"
            time.sleep(0.2)
        codes = grid.stop()
    finally:
        grid.kill()
    assert codes == {"supervisor": 0, "collector": 0, "producer": 0}
    logs = {p.name: p.read_text(errors="replace") for p in tmp_path.glob("*.log")}
    assert set(logs) == {"supervisor.log", "collector.log", "producer.log"}
    assert all("DEBUG" in text for text in logs.values())  # the logs are at their most verbose
    for name, text in logs.items():
        assert secret not in text and token not in text, f"{name} holds a credential"
