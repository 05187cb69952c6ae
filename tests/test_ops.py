"""The Ansible roles' inputs against the grid's registry (`grid config export`, grid.metrics) and the contracts with
the user data: a default that is a grid parameter is the registry's, and every input is declared and typed."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from grid import metrics

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("grid", "grid_daemon", "cloudwatch_agent")
USER_DATA = ROOT / "terraform/modules/fleet/user_data.sh.tftpl"


def load(path: Path):
    return yaml.safe_load(path.read_text())


def defaults(role: str) -> dict:
    return load(ROOT / "roles" / role / "defaults/main.yml")


@pytest.fixture(scope="module")
def registry() -> dict:
    out = subprocess.run([sys.executable, "-m", "grid.cli", "config", "export"], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def default(registry: dict, role: str, name: str):
    return next(p["default"] for p in registry["parameters"] if p["role"] == role and p["name"] == name)


@pytest.mark.parametrize("role", ROLES)
def test_every_input_is_prefixed_declared_and_typed(role):
    values = defaults(role)
    specs = load(ROOT / "roles" / role / "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(values) == set(specs)
    for name, value in values.items():
        assert name.startswith(role + "_"), name
        assert specs[name]["default"] == value, name
        assert specs[name]["type"] in ("str", "path", "int", "bool", "list", "dict"), name
        assert specs[name].get("description"), name


def test_stop_timeout_lets_a_worker_drain(registry):
    budget, visibility, poll = (default(registry, "worker", n) for n in
                                ("work_budget", "visibility_timeout", "queue_polling_wait_time"))
    assert defaults("grid_daemon")["grid_daemon_timeout_stop_sec"] == max(budget, visibility) + poll


def test_daemon_instances_are_the_grid_roles(registry):
    spec = load(ROOT / "roles/grid_daemon/meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert spec["grid_daemon_instances"]["choices"] == registry["roles"]
    assert defaults("grid_daemon")["grid_daemon_instances"] == []  # an image enables none


def test_agent_publishes_what_grid_metrics_names(registry):
    agent, cw = metrics.export()["agent"], defaults("cloudwatch_agent")
    assert cw["cloudwatch_agent_namespace"] == agent["namespace"] == metrics.CLOUDWATCH_NAMESPACE
    assert cw["cloudwatch_agent_statsd_port"] == agent["statsd_port"]
    assert {default(registry, role, "statsd_port") for role in registry["roles"]} == {agent["statsd_port"]}
    assert cw["cloudwatch_agent_aggregation_dimensions"] == agent["aggregation_dimensions"]


def test_agent_ships_each_roles_log_file_to_its_group(registry):
    cw = defaults("cloudwatch_agent")
    for role in registry["roles"]:
        assert cw["cloudwatch_agent_log_file"].format(role=role) == default(registry, role, "log_filename")
    assert cw["cloudwatch_agent_log_group"].format(env="prod", role="worker") == "/AWSGridWithSQS/prod/worker"
    assert cw["cloudwatch_agent_default_env"] == registry["aws_env"]["default"]
    # the start script's pattern is bash's (no escapes in brackets): it must accept what the registry's does
    ours, theirs = cw["cloudwatch_agent_env_pattern"], registry["aws_env"]["pattern"]
    for env in ("dev", "prod-2", "a_b", "x" * 15, "x" * 16, "", "a\\b", "a/b", "a b", "a.b", "$(id)"):
        assert bool(re.fullmatch(ours, env)) == bool(re.fullmatch(theirs, env)), env


def test_paths_agree_between_roles_and_registry(registry):
    grid, daemon, cw = defaults("grid"), defaults("grid_daemon"), defaults("cloudwatch_agent")
    log_dirs = {str(Path(default(registry, role, "log_filename")).parent) for role in registry["roles"]}
    assert log_dirs == {grid["grid_log_dir"]}
    assert set(daemon["grid_daemon_read_write_paths"]) == {grid["grid_log_dir"], grid["grid_state_dir"]}
    assert daemon["grid_daemon_executable"] == grid["grid_venv_dir"] + "/bin/grid"
    assert daemon["grid_daemon_env_file"] == grid["grid_env_file"] == cw["cloudwatch_agent_env_file"]
    assert (daemon["grid_daemon_user"], daemon["grid_daemon_group"]) == (grid["grid_user"], grid["grid_group"])


def test_lab_environment_defaults_follow_the_registry(registry):
    grid = defaults("grid")
    assert grid["grid_env_aws_env"] == registry["aws_env"]["default"]
    broker = default(registry, "worker", "broker_url")
    assert grid["grid_env_broker_url"] == f"sqlite://{grid['grid_state_dir']}/{Path(broker).name}"
    store = default(registry, "collector", "result_store")
    assert grid["grid_env_result_store"] == f"{grid['grid_state_dir']}/{Path(store).name}"


def test_user_data_meets_what_the_roles_install():
    text, grid, daemon, cw = (USER_DATA.read_text(), defaults("grid"), defaults("grid_daemon"),
                              defaults("cloudwatch_agent"))
    assert f"cat > {grid['grid_env_file']} <<" in text
    assert f"-g {grid['grid_group']} {grid['grid_config_dir']}" in text
    assert f"{cw['cloudwatch_agent_start_script']} '${{role}}'" in text
    assert re.search(r"systemctl enable --now 'grid@\$\{role\}\.service'", text)
    unit = (ROOT / "roles/grid_daemon/templates/grid@.service.j2").read_text()
    assert "ExecStart={{ grid_daemon_executable }} %i" in unit
    assert "EnvironmentFile={{ grid_daemon_env_file }}" in unit
    for line in ("KillSignal=SIGTERM", "Restart=on-failure", "TimeoutStopSec={{ grid_daemon_timeout_stop_sec }}",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                 "ReadWritePaths={{ grid_daemon_read_write_paths | join(' ') }}"):
        assert line in unit.splitlines(), line


@pytest.mark.parametrize("script", sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("molecule/*/*.py")))
def test_the_scenarios_python_helpers_import_what_the_grid_has(script):
    """molecule runs these only in make test-ops: an import the grid no longer has would fail there first."""
    found = subprocess.run([sys.executable, "-c", "import importlib.util, sys; spec = importlib.util."
                            "spec_from_file_location('helper', sys.argv[1]); spec.loader.exec_module("
                            "importlib.util.module_from_spec(spec))", str(ROOT / script)],
                           capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
