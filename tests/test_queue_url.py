"""Broker URLs: each allowed form opens its backend; anything else is a ConfigError naming the URL and the forms."""
from __future__ import annotations

import pytest

from grid.errors import ConfigError
from grid.queues import open_broker
from grid.queues.sqlite import SqliteBroker
from grid.queues.sqs import SqsBroker
from grid.queues.url import parse_broker_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///var/lib/grid/grid.db", ("sqlite", "/var/lib/grid/grid.db", {})),
        ("sqlite:grid.db", ("sqlite", "grid.db", {})),
        ("sqlite:data/grid.db?synchronous=full", ("sqlite", "data/grid.db", {"synchronous": "full"})),
        ("sqs://", ("sqs", "", {})),
        (
            "sqs://?endpoint_url=http://127.0.0.1:5000&region=us-east-1",
            ("sqs", "", {"endpoint_url": "http://127.0.0.1:5000", "region": "us-east-1"}),
        ),
    ],
)
def test_allowed_forms_parse(url, expected):
    assert parse_broker_url(url) == expected


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis://localhost", "unknown scheme 'redis'"),
        ("/var/lib/grid/grid.db", "unknown scheme ''"),
        ("sqlite://host/grid.db", "host 'host'"),
        ("sqlite://", "no database file"),
        ("sqlite:///var/lib/grid/", "no database file"),
        ("sqlite:///g.db?synchronous=off", "synchronous"),
        ("sqlite:///g.db?timeout=5", "unknown option 'timeout'"),
        ("sqs://eu-west-1", "no host or path"),
        ("sqs://?region=a&region=b", "give it once"),
        ("sqs://?endpoint_url=", "give it once"),
        ("sqs://#frag", "fragment"),
        (None, "not a string"),
    ],
)
def test_bad_urls_name_the_url_the_reason_and_the_allowed_forms(url, why):
    with pytest.raises(ConfigError) as caught:
        open_broker(url)
    assert repr(url) in str(caught.value) and why in str(caught.value)
    assert "sqlite:///abs/path/grid.db" in str(caught.value) and "sqs://" in str(caught.value)


def test_a_relative_sqlite_path_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_broker("sqlite:grid.db") as broker:
        assert isinstance(broker, SqliteBroker) and broker.path == str(tmp_path / "grid.db")
    assert (tmp_path / "grid.db").exists()


def test_an_sqs_url_opens_a_client_at_the_endpoint_and_region(aws_env):
    with open_broker("sqs://?endpoint_url=http://127.0.0.1:5999&region=eu-west-3") as broker:
        assert isinstance(broker, SqsBroker)
        assert broker.client.meta.endpoint_url == "http://127.0.0.1:5999"
        assert broker.client.meta.region_name == "eu-west-3"
