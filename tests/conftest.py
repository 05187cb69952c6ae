"""Fixtures: one broker per backend (embedded SQLite, moto in process, moto's HTTP server), AWS test credentials, the
root logger restored; the fuzz targets' hypothesis profile."""
from __future__ import annotations

import logging
import os
import socket
import uuid

import pytest
from hypothesis import HealthCheck, settings
from moto import mock_aws
from moto.server import ThreadedMotoServer
from moto.sqs.models import SQSBackend

from grid.queues import open_broker
from moto_sqs import like_sqs

FUZZ_PROFILE = "grid-fuzz"  # the fuzz targets' budget (tests/test_fuzz.py)
# make test: a bounded run, the same examples every time; make fuzz: GRID_FUZZ_EXAMPLES of them, new ones each run
settings.register_profile(FUZZ_PROFILE, max_examples=int(os.environ.get("GRID_FUZZ_EXAMPLES") or 200),
                          derandomize="GRID_FUZZ_EXAMPLES" not in os.environ, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.filter_too_much])

AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture
def aws_env(monkeypatch):
    """Dummy credentials and region, so no test can reach a real AWS account."""
    for name, value in AWS_TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name in [n for n in os.environ if n == "AWS_ENDPOINT_URL" or n.startswith("AWS_ENDPOINT_URL_")]:
        monkeypatch.delenv(name)  # moto in process answers only requests to AWS's own endpoints


@pytest.fixture(scope="session")
def moto_server_url():
    """moto's standalone SQS-compatible HTTP server on a free loopback port, shared by the session.

    Its receives are SQS's (tests/moto_sqs.py).
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SQSBackend, "receive_message", like_sqs(SQSBackend.receive_message))
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        yield f"http://127.0.0.1:{port}"
        server.stop()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite://{tmp_path}/grid.db"


@pytest.fixture
def moto_server_broker_url(aws_env, moto_server_url):
    return f"sqs://?endpoint_url={moto_server_url}&region=us-east-1"


@pytest.fixture(params=["sqlite", "moto_server"])
def shared_broker_url(request):
    """A broker URL that several processes can open at once."""
    return request.getfixturevalue(f"{request.param}_broker_url" if request.param != "sqlite" else "sqlite_url")


@pytest.fixture(params=["sqlite", "moto", "moto_server"])
def broker(request):
    """A broker of each backend; every backend must pass the same conformance suite."""
    if request.param == "moto":
        request.getfixturevalue("aws_env")
        with mock_aws(), open_broker("sqs://?region=us-east-1") as b:
            yield b
        return
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "moto_server_broker_url")
    with open_broker(url) as b:
        yield b


@pytest.fixture
def queue_name():
    """A fresh queue name, so tests sharing the moto server do not meet."""
    return f"q-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def root_logger():
    """The root logger, its handlers and level restored afterwards (a daemon's main() sets them up)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for h in root.handlers[:]:
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
