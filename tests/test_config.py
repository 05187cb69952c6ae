"""The parameter registry: the original's parameters, layers, validation messages, SSM, flags, export and show."""
import argparse
import json
import logging
import pickle

import boto3
import pytest
from botocore.stub import Stubber
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from grid import aws, config
from grid.fleet.asg import AsgFleet
from grid.errors import ConfigError

# The original's SSM parameters and defaults (asksac/AWSGridWithSQS: README, src/*/main.py, variables.tf).
ORIGINAL = {
    "producer": dict(log_filename="/var/log/AWSGridWithSQS/producer-main.log", log_level="INFO",
                     stats_prefix="awsgridwithsqs_producer_", tasks_queue_name="grid_tasks_queue", batch_size=10,
                     prime_min_bits=20, prime_max_bits=30),
    "worker": dict(log_filename="/var/log/AWSGridWithSQS/worker-main.log", log_level="INFO",
                   queue_polling_wait_time=10, queue_repolling_sleep_time=0, visibility_timeout=120, batch_size=10,
                   stats_prefix="awsgridwithsqs_worker_", tasks_queue_name="grid_tasks_queue",
                   results_queue_name="grid_results_queue"),
    "supervisor": dict(log_filename="/var/log/AWSGridWithSQS/supervisor-main.log", log_level="INFO",
                       tasks_queue_name="grid_tasks_queue", worker_asg_name="awsgrid-with-sqs-worker-asg",
                       supervisor_asg_name="awsgrid-with-sqs-supervisor-asg", metric_interval=15),
}
EVERY_ROLE = {"broker_url", "log_filename", "log_level", "stats_prefix", "statsd_host", "statsd_port"}
SQLITE = {"GRID_BROKER_URL": "sqlite:///tmp/grid-test.db"}


@pytest.fixture
def ssm():
    with mock_aws():
        yield boto3.client("ssm", region_name="us-east-1")


def put(client, path, value):
    client.put_parameter(Name=path, Value=str(value), Type="String", Overwrite=True)


@pytest.mark.parametrize("role", list(ORIGINAL))
def test_the_original_parameters_keep_their_defaults(role):
    cfg = config.load(role, environ={})
    assert {name: cfg[name] for name in ORIGINAL[role]} == ORIGINAL[role]


@pytest.mark.parametrize("role", config.ROLES)
def test_every_role_has_the_common_parameters_and_defaults_are_valid(role):
    cfg = config.load(role, environ={})
    assert EVERY_ROLE <= set(cfg)
    assert all(cfg.source(name) == "default" for name in cfg)
    assert dict(cfg) == {p.name: p.default for p in config.params(role)}


def test_what_the_grid_adds_has_its_defaults():
    producer, worker, supervisor = (config.load(r, environ={}) for r in ("producer", "worker", "supervisor"))
    assert (producer.factors_per_task, producer.tasks_per_message) == (2, 1)
    assert (worker.concurrency, worker.heartbeat_interval, worker.max_receive_count) == (0, 0, 5)
    assert supervisor.scale_mode == "target" and supervisor.backlog_per_instance == 5000
    assert config.load("collector", environ={}).result_store.endswith("results.db")
    assert config.DEFAULT_BROKER_URL.startswith("sqlite:///")  # an absolute path: every process finds the same file


def test_registry_declares_each_role_and_name_once():
    keys = [(p.role, p.name) for p in config.REGISTRY]
    assert len(keys) == len(set(keys)) and {p.role for p in config.REGISTRY} == set(config.ROLES)


def test_layers_flag_over_env_over_ssm_over_default(ssm):
    root = "/dev/AWSGridWithSQS/worker"
    for name, value in (("batch_size", 3), ("visibility_timeout", 300), ("concurrency", 2)):
        put(ssm, f"{root}/{name}", value)
    environ = {**SQLITE, "GRID_VISIBILITY_TIMEOUT": "600", "GRID_CONCURRENCY": "4"}
    cfg = config.load("worker", flags={"concurrency": "8", "work_budget": None}, environ=environ, ssm_client=ssm)
    assert (cfg.batch_size, cfg.visibility_timeout, cfg.concurrency, cfg.work_budget) == (3, 600, 8, 60.0)
    assert cfg.source("batch_size") == f"SSM {root}/batch_size"
    assert cfg.source("visibility_timeout") == "env GRID_VISIBILITY_TIMEOUT"
    assert cfg.source("concurrency") == "flag --concurrency"
    assert cfg.source("work_budget") == "default"


def test_ssm_is_paginated_and_aws_env_picks_the_path(ssm):
    texts = {e["name"]: e["ssm_value"] for e in config.export_registry()["parameters"] if e["role"] == "worker"}
    names = [name for name in texts if name != "broker_url"]
    for name in names:  # more than one page of get_parameters_by_path (10)
        put(ssm, f"/prod/AWSGridWithSQS/worker/{name}", texts[name])
    put(ssm, "/prod/AWSGridWithSQS/worker/batch_size", 7)
    put(ssm, "/dev/AWSGridWithSQS/worker/batch_size", 2)
    cfg = config.load("worker", environ={**SQLITE, "AWS_ENV": "prod"}, ssm_client=ssm)
    assert cfg.batch_size == 7 and cfg.aws_env == "prod"
    assert all(cfg.source(name).startswith("SSM /prod/AWSGridWithSQS/worker/") for name in names)


def test_a_bad_ssm_value_names_parameter_value_layer_and_rule(ssm):
    put(ssm, "/dev/AWSGridWithSQS/worker/batch_size", 12)
    with pytest.raises(ConfigError) as caught:
        config.load("worker", environ=SQLITE, ssm_client=ssm)
    assert str(caught.value) == "batch_size=12 from SSM /dev/AWSGridWithSQS/worker/batch_size: must be 1..10"
    assert caught.value.exit_code == 2


def test_unknown_ssm_keys_are_warned_about(ssm, caplog):
    put(ssm, "/dev/AWSGridWithSQS/worker/batch_sise", 5)
    put(ssm, "/dev/AWSGridWithSQS/worker/colour", "blue")
    with caplog.at_level(logging.WARNING, logger="grid.config"):
        cfg = config.load("worker", environ=SQLITE, ssm_client=ssm)
    assert cfg.batch_size == 10
    assert any("batch_sise" in w and "did you mean batch_size" in w for w in cfg.warnings)
    assert any("/dev/AWSGridWithSQS/worker/colour: not a worker parameter" in w for w in cfg.warnings)
    assert len([r for r in caplog.records if "not a worker parameter" in r.getMessage()]) == 2


@pytest.mark.parametrize("environ, reads", [
    ({}, False),  # the default broker is the embedded queue: a laptop needs no AWS account
    ({"GRID_BROKER_URL": "sqs://"}, True),
    ({"GRID_BROKER_URL": "sqs://?region=eu-west-1"}, True),
    ({"GRID_BROKER_URL": "sqs://?endpoint_url=http://127.0.0.1:5000"}, False),
    ({"GRID_BROKER_URL": "sqs://", "GRID_SSM": "0"}, False),
    ({"GRID_SSM": "1"}, True),
    ({"GRID_SSM": "true"}, True),
])
def test_when_ssm_is_read(monkeypatch, environ, reads):
    calls = []
    real_client = boto3.client

    def client(service, *args, **kwargs):
        calls.append(service)
        stub_client = real_client("ssm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        stubber = Stubber(stub_client)
        stubber.add_response("get_parameters_by_path", {"Parameters": []})
        stubber.activate()
        return stub_client

    monkeypatch.setattr(aws, "client", client)
    config.load("worker", environ=environ)
    assert calls == (["ssm"] if reads else [])


def test_the_broker_url_flag_decides_too(monkeypatch):
    monkeypatch.setattr(aws, "client", lambda *a, **k: pytest.fail("SSM must not be read"))
    cfg = config.load("worker", flags={"broker_url": "sqlite:///tmp/x.db"}, environ={"GRID_BROKER_URL": "sqs://"})
    assert cfg.broker_url == "sqlite:///tmp/x.db"


def test_an_unreadable_ssm_path_is_a_config_error():
    client = boto3.client("ssm", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        stubber.add_client_error("get_parameters_by_path", "AccessDeniedException", "not allowed")
        with pytest.raises(ConfigError, match=r"cannot read SSM parameters under /dev/AWSGridWithSQS/worker: .*"
                                              r"AccessDenied.*GRID_SSM=0"):
            config.load("worker", environ=SQLITE, ssm_client=client)


@pytest.mark.parametrize("value", ["", "bad env", "a/b", "x" * 16, "dév"])
def test_aws_env_is_validated_as_the_original_did(value):
    with pytest.raises(ConfigError, match="AWS_ENV=.* from env AWS_ENV: must be 1..15 letters"):
        config.load("worker", environ={"AWS_ENV": value})


@pytest.mark.parametrize("name, value, words", [
    ("batch_size", "x", "must be an integer"),
    ("batch_size", "1.5", "must be an integer"),
    ("batch_size", "0", "must be 1..10"),
    ("work_budget", "nan", "must be a finite number"),
    ("work_budget", "inf", "must be a finite number"),
    ("work_budget", "0", "must be 0.001..43200"),
    ("log_level", "loud", "must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG, NOTSET"),
    ("tasks_queue_name", "my queue", "1..80 letters, digits"),
    ("statsd_port", "70000", "must be 1..65535"),
    ("broker_url", "http://example.com", "unknown scheme"),
    ("broker_url", "sqs://?endpoint=http://x", "unknown option"),
])
def test_a_bad_env_value_is_one_clear_error(name, value, words):
    env = f"GRID_{name.upper()}"
    with pytest.raises(ConfigError) as caught:
        config.load("worker", environ={env: value})
    message = str(caught.value)
    assert message.startswith(f"{name}=") and f"from env {env}: " in message and words in message


def test_a_bad_flag_names_the_flag():
    with pytest.raises(ConfigError, match=r"^concurrency=-1 from flag --concurrency: must be 0..1024$"):
        config.load("worker", flags={"concurrency": -1}, environ={})


def test_all_bad_values_are_reported_together():
    with pytest.raises(ConfigError) as caught:
        config.load("worker", environ={"GRID_BATCH_SIZE": "11", "GRID_LOG_LEVEL": "chatty"})
    lines = str(caught.value).splitlines()
    assert lines[0] == "bad worker configuration:" and len(lines) == 3


def test_choices_match_case_insensitively():
    assert config.load("worker", environ={"GRID_LOG_LEVEL": "debug"}).log_level == "DEBUG"


@pytest.mark.parametrize("role, environ, words", [
    ("producer", {"GRID_PRIME_MIN_BITS": "40"},
     "prime_min_bits=40 (env GRID_PRIME_MIN_BITS) must be <= prime_max_bits=30 (default)"),
    ("supervisor", {"GRID_MIN_WORKERS": "5", "GRID_MAX_WORKERS": "2"}, "min_workers=5"),
    ("worker", {"GRID_HEARTBEAT_INTERVAL": "120"}, "heartbeat_interval=120.0 (env GRID_HEARTBEAT_INTERVAL) must be <"),
])
def test_related_parameters_are_checked_together(role, environ, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        config.load(role, environ=environ)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([p for p in config.REGISTRY if p.type is int]), st.integers(-10**6, 10**8))
def test_integers_are_accepted_exactly_within_their_range(param, value):
    try:
        got = config.load(param.role, environ={param.env: str(value)})[param.name]
    except ConfigError as e:
        assert not param.min <= value <= param.max or "must be <" in str(e) or "must be <=" in str(e)
    else:
        assert got == value and param.min <= value <= param.max


def test_a_misspelt_environment_variable_is_warned_about():
    cfg = config.load("worker", environ={"GRID_VISIBILITY_TIMOUT": "5", "GRID_RUN_DIR": "/tmp"})
    assert cfg.warnings == ("env GRID_VISIBILITY_TIMOUT: not a grid parameter, ignored; "
                            "did you mean GRID_VISIBILITY_TIMEOUT?",)


def test_an_unknown_role_is_a_config_error():
    with pytest.raises(ConfigError, match="role 'janitor': must be one of producer, worker, supervisor, collector"):
        config.params("janitor")


def test_flags_come_from_the_registry_and_unset_flags_do_not_override():
    parser = argparse.ArgumentParser()
    config.add_arguments(parser, "producer")
    assert all(parser.get_default(p.name) is None for p in config.params("producer"))
    assert "prime factor size" in parser.format_help() and "GRID_BATCH_SIZE" in parser.format_help()
    args = parser.parse_args(["--tasks-per-message", "50", "--prime-max-bits", "40"])
    cfg = config.load("producer", flags=args, environ={"GRID_BATCH_SIZE": "5", "GRID_PRIME_MAX_BITS": "35"})
    assert (cfg.tasks_per_message, cfg.prime_max_bits, cfg.batch_size) == (50, 40, 5)
    assert cfg.source("prime_max_bits") == "flag --prime-max-bits" and cfg.source("batch_size") == "env GRID_BATCH_SIZE"


def test_config_is_a_frozen_mapping():
    cfg = config.load("worker", environ={})
    assert cfg.batch_size == cfg["batch_size"] == 10 and len(cfg) == len(config.params("worker"))
    with pytest.raises(AttributeError, match="frozen"):
        cfg.batch_size = 5
    with pytest.raises(AttributeError, match="no parameter 'prime_min_bits'"):
        cfg.prime_min_bits
    assert getattr(cfg, "scale_mode", "absent") == "absent"
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_export_is_json_and_every_default_survives_ssm_text():
    exported = json.loads(json.dumps(config.export_registry()))
    assert exported["ssm_path"] == "/{env}/AWSGridWithSQS/{role}/{name}" and exported["roles"] == list(config.ROLES)
    entries = {(e["role"], e["name"]): e for e in exported["parameters"]}
    assert len(entries) == len(config.REGISTRY)
    for p in config.REGISTRY:
        entry = entries[p.role, p.name]
        assert p.parse(entry["ssm_value"]) == p.default
        assert (entry["env"], entry["flag"], entry["type"]) == (p.env, p.flag, p.type.__name__)


def test_every_scale_mode_the_registry_allows_is_one_the_fleet_takes():
    [scale_mode] = [p for p in config.params("supervisor") if p.name == "scale_mode"]
    for mode in scale_mode.choices:
        assert AsgFleet("grid-workers", client=object(), mode=mode).mode == mode
    with pytest.raises(ConfigError, match="scale_mode='fast'"):
        AsgFleet("grid-workers", client=object(), mode="fast")


def test_show_lists_every_value_with_its_source(ssm):
    put(ssm, "/dev/AWSGridWithSQS/supervisor/metric_interval", 30)
    put(ssm, "/dev/AWSGridWithSQS/supervisor/unknown_knob", 1)
    cfg = config.load("supervisor", flags={"max_workers": 8}, environ={**SQLITE, "GRID_MIN_WORKERS": "2"},
                      ssm_client=ssm)
    lines = config.show(cfg).splitlines()
    body = {line.split()[0]: line for line in lines if not line.startswith("#")}
    assert set(body) == set(cfg)
    assert body["metric_interval"].split() == ["metric_interval", "=", "30", "#", "SSM",
                                               "/dev/AWSGridWithSQS/supervisor/metric_interval"]
    assert body["min_workers"].endswith("# env GRID_MIN_WORKERS")
    assert body["max_workers"].endswith("# flag --max-workers")
    assert body["log_level"].endswith("# default")
    assert any(line.startswith("# warning: SSM /dev/AWSGridWithSQS/supervisor/unknown_knob") for line in lines)
