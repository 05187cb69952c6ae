"""terraform apply of terraform/ against moto's server, then the grid's own commands on what it built.

moto's standalone server plays AWS on a free loopback port; a copy of terraform/ gets a test-only override file that
points the provider at it. The grid's processes (`.venv/bin/grid ...`) reach it through boto3's standard
AWS_ENDPOINT_URL, with the environment an instance's user data writes (read back from the launch template), so what
runs here is what an instance would run, less the instance.

The override files also tell Terraform to ignore a few attributes that moto reports unlike AWS (each named below with
moto's reason); everything else must plan as applied.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

import sympy
import yaml

from grid import config, metrics

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM_SRC = ROOT / "terraform"
MIRROR = os.environ.get("TF_PLUGIN_MIRROR", "/opt/tf-plugins")  # empty: the Terraform registry
GRID = str(Path(sys.executable).parent / "grid")
REGION = "us-east-1"
ENV = "applytest"
TIMEOUT = 600  # seconds for one terraform command
PATIENCE = 120.0  # seconds before a stage of the grid run that should finish is declared stuck
TASKS = 200
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}
SERVICES = ("autoscaling", "cloudwatch", "ec2", "iam", "kms", "logs", "s3", "sqs", "ssm", "sts")
# Parameters the test sets through Terraform's `parameters` variable: short polls and one kernel thread keep the run
# quick on two cores, and they prove that an override reaches SSM.
OVERRIDES = {"worker/queue_polling_wait_time": "1", "collector/queue_polling_wait_time": "1", "worker/concurrency": "1"}

# Attributes moto reports unlike AWS; Terraform ignores them here (and only here) so that a second plan is empty.
MOTO_OVERRIDES = {
    ".": """
# moto denies every object request to a bucket whose policy has a statement with a Condition, whatever the statement's
# Effect (it evaluates no condition key, aws:SecureTransport included): the TLS-only statement names a principal here,
# which moto leaves unevaluated. What the real policy says is checked by terraform test and checkov.
resource "aws_s3_bucket_policy" "results" {
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "DenyInsecureTransport"
      Effect    = "Deny"
      Principal = "arn:aws:iam::000000000000:root"
      Action    = "s3:*"
      Resource  = [aws_s3_bucket.results.arn, "${aws_s3_bucket.results.arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    }]
  })
}

# moto's DescribePolicies has no Enabled and an empty PredictiveScalingConfiguration.
resource "aws_autoscaling_policy" "worker_backlog" {
  lifecycle {
    ignore_changes = [enabled, predictive_scaling_configuration]
  }
}
""",
    "modules/queue": """
# moto returns the redrive policy JSON with spaces after ':' and ','; AWS returns it as it was set.
resource "aws_sqs_queue" "this" {
  lifecycle {
    ignore_changes = [redrive_policy]
  }
}
""",
    "modules/fleet": """
# moto copies a launch template's own tags into its data as a "launch-template" tag specification.
resource "aws_launch_template" "this" {
  lifecycle {
    ignore_changes = [tag_specifications]
  }
}

# moto's DescribeLifecycleHooks returns placeholder notification target and role ARNs.
resource "aws_autoscaling_lifecycle_hook" "termination" {
  lifecycle {
    ignore_changes = [notification_target_arn, role_arn]
  }
}
""",
}


def _fail(message: str):
    pytest.fail(message, pytrace=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Deployment:
    """The applied copy of terraform/ and the moto server it lives on."""

    workdir: Path
    endpoint: str
    tf_env: dict
    outputs: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    resources: int = 0
    destroyed: bool = False

    def terraform(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        started = time.monotonic()
        done = subprocess.run(["terraform", *args, "-no-color"], cwd=self.workdir, env=self.tf_env,
                              capture_output=True, text=True, timeout=TIMEOUT)
        self.seconds[args[0]] = self.seconds.get(args[0], 0.0) + time.monotonic() - started
        if check and done.returncode != 0:
            _fail(f"terraform {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n"
                  f"{done.stderr[-4000:]}")
        return done

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION, **{
            "aws_access_key_id": "testing", "aws_secret_access_key": "testing", "aws_session_token": "testing"})

    def grid_env(self, **extra: str) -> dict:
        """The environment of a grid command on this machine: fake credentials, the endpoint, nothing of ours."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GRID_", "AWS_"))}
        return {**env, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint, "AWS_EC2_METADATA_DISABLED": "true",
                **extra}


def _start_moto(port: int, log: Path) -> subprocess.Popen:
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return server
        except OSError:
            if server.poll() is not None:
                _fail(f"moto_server exited with {server.returncode}: {log.read_text()[-2000:]}")
            time.sleep(0.1)
    server.kill()
    _fail("moto_server did not answer within 30 s")


def _bake_an_image(deployment: Deployment) -> str:
    """What `packer build` leaves behind: an image of this account with the tags Terraform's lookup reads."""
    ec2 = deployment.client("ec2")
    image = ec2.register_image(Name="grid-0.1.0-test", Architecture="x86_64", RootDeviceName="/dev/xvda",
                               VirtualizationType="hvm",
                               BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}])["ImageId"]
    tags = {"Project": "grid", "grid:version": "0.1.0", "grid:commit": "0" * 40, "grid:source-ami": "ami-12c6146b"}
    ec2.create_tags(Resources=[image], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return image


def _write_workdir(workdir: Path, endpoint: str, vpc: str, subnets: list[str]) -> None:
    shutil.copytree(TERRAFORM_SRC, workdir, ignore=shutil.ignore_patterns(
        ".terraform", ".terraform.lock.hcl", "*.tfstate*", "terraform.tfvars", "tests"))
    endpoints = "\n".join(f'    {s} = "{endpoint}"' for s in SERVICES)
    (workdir / "moto_override.tf").write_text(f"""
provider "aws" {{
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true

  endpoints {{
{endpoints}
  }}
}}
""" + MOTO_OVERRIDES["."])
    for module in ("modules/queue", "modules/fleet"):
        (workdir / module / "moto_override.tf").write_text(MOTO_OVERRIDES[module])
    variables = {
        "region": REGION, "env": ENV, "vpc_id": vpc, "subnet_ids": subnets, "force_destroy": True,
        "parameters": OVERRIDES, "instance_env": {"AWS_ENDPOINT_URL": endpoint},
    }
    (workdir / "test.auto.tfvars.json").write_text(json.dumps(variables, indent=2))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    if shutil.which("terraform") is None:
        _fail("terraform is not installed: install Terraform >= 1.9 (developer.hashicorp.com/terraform/install)")
    if MIRROR and not (Path(MIRROR) / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        _fail(f"no hashicorp/aws provider under TF_PLUGIN_MIRROR={MIRROR}: point it at a mirror (terraform providers "
              "mirror DIR), or set it empty to use the registry")
    tmp = tmp_path_factory.mktemp("terraform-apply")
    port = _free_port()
    server = _start_moto(port, tmp / "moto.log")
    rc = tmp / "terraformrc"
    mirror = f'provider_installation {{\n  filesystem_mirror {{\n    path = "{MIRROR}"\n  }}\n}}\n'
    rc.write_text(mirror if MIRROR else "")
    tf_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    tf_env.update(TF_CLI_CONFIG_FILE=str(rc), TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
    d = Deployment(tmp / "terraform", f"http://127.0.0.1:{port}", tf_env)
    try:
        ec2 = d.client("ec2")
        vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
        subnets = sorted(s["SubnetId"] for s in ec2.describe_subnets(
            Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"])[:2]
        image = _bake_an_image(d)
        _write_workdir(d.workdir, d.endpoint, vpc, subnets)
        d.terraform("init", "-backend=false")
        applied = d.terraform("apply", "-auto-approve").stdout
        d.resources = int(re.search(r"Apply complete! Resources: (\d+) added", applied).group(1))
        d.outputs = {k: v["value"] for k, v in json.loads(d.terraform("output", "-json").stdout).items()}
        assert d.outputs["ami_id"] == image
        yield d
    finally:
        if not d.destroyed and (d.workdir / "terraform.tfstate").exists():
            d.terraform("destroy", "-auto-approve", check=False)
        server.send_signal(signal.SIGINT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _ssm_values(d: Deployment) -> dict[str, str]:
    pages = d.client("ssm").get_paginator("get_parameters_by_path").paginate(Path=f"/{ENV}", Recursive=True)
    return {p["Name"]: p["Value"] for page in pages for p in page["Parameters"]}


def _instance_env(d: Deployment, role: str) -> dict[str, str]:
    """/etc/grid/grid.env as the role's user data would write it, from the launch template Terraform made."""
    template = d.outputs["launch_templates"][role]
    version = d.client("ec2").describe_launch_template_versions(
        LaunchTemplateId=template["id"], Versions=[str(template["version"])])["LaunchTemplateVersions"][0]
    script = base64.b64decode(version["LaunchTemplateData"]["UserData"]).decode()
    body = re.search(r"<<'GRID_ENV'\n(.*?)\nGRID_ENV\n", script, re.S).group(1)
    assert f"systemctl enable --now 'grid@{role}.service'" in script
    return dict(line.split("=", 1) for line in body.splitlines())


def test_apply_writes_every_registry_parameter_to_ssm(deployment):
    d = deployment
    infra = {
        "broker_url": f"sqs://?region={REGION}", "tasks_queue_name": "grid_tasks_queue",
        "results_queue_name": "grid_results_queue", "worker_asg_name": "awsgrid-with-sqs-worker-asg",
        "supervisor_asg_name": "awsgrid-with-sqs-supervisor-asg", "scale_mode": "target",
        "min_workers": "0", "max_workers": "4", "result_store": f"s3://{d.outputs['result_bucket']}/results",
    }
    expected = {}
    for p in config.export_registry()["parameters"]:
        value = OVERRIDES.get(p["ssm_name"], infra.get(p["name"], p["ssm_value"]))
        expected[f"/{ENV}/AWSGridWithSQS/{p['ssm_name']}"] = value
    assert _ssm_values(d) == expected
    assert d.outputs["result_store"] == infra["result_store"]


def test_config_show_reads_the_parameters_terraform_wrote(deployment):
    shown = subprocess.run([GRID, "config", "show", "--role", "worker"], capture_output=True, text=True, timeout=60,
                           env=deployment.grid_env(AWS_ENV=ENV, AWS_DEFAULT_REGION=REGION, GRID_SSM="1"))
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if not line.startswith("#")]
    assert len(rows) == len(config.params("worker"))
    for p in config.params("worker"):
        row = next(r for r in rows if r.split()[0] == p.name)
        assert row.endswith(f"# SSM /{ENV}/AWSGridWithSQS/worker/{p.name}"), row
    assert re.search(r"^tasks_queue_name += grid_tasks_queue ", shown.stdout, re.M)
    assert re.search(r"^queue_polling_wait_time += 1 ", shown.stdout, re.M)
    assert re.search(rf"^broker_url += sqs://\?region={REGION} ", shown.stdout, re.M)


class Roles:
    """grid role processes started as an instance's unit would start them, with their logs."""

    def __init__(self, logs: Path):
        self.logs, self.procs = logs, {}

    def start(self, role: str, env: dict, *args: str) -> subprocess.Popen:
        with (self.logs / f"{role}.log").open("ab") as log:
            self.procs[role] = subprocess.Popen([GRID, role, *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL)
        return self.procs[role]

    def wait_for(self, what: str, condition, poll: float = 0.2):
        deadline = time.monotonic() + PATIENCE
        while not (value := condition()):
            crashed = {r: p.returncode for r, p in self.procs.items() if p.poll() not in (None, 0)}
            if crashed or time.monotonic() > deadline:
                logs = "\n".join(f"--- {r}\n{(self.logs / f'{r}.log').read_text()[-3000:]}" for r in self.procs)
                pytest.fail(f"{what}: {'crashed ' + str(crashed) if crashed else 'stuck'}\n{logs}")
            time.sleep(poll)
        return value

    def stop(self, *roles: str) -> dict[str, int]:
        for role in roles:
            self.procs[role].send_signal(signal.SIGTERM)
        return {role: self.procs[role].wait(60) for role in roles}

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _grid_command(d: Deployment, *args: str) -> str:
    """A grid command on a user's machine: the deployment's grid_environment output, the endpoint, credentials."""
    done = subprocess.run([GRID, *args], env=d.grid_env(**d.outputs["grid_environment"]), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, f"grid {' '.join(args)}: {done.stderr}"
    return done.stdout


def _stored(d: Deployment) -> int:
    try:
        summary = _grid_command(d, "results")
    except AssertionError as e:  # no object under the prefix before the collector's first batch
        if "no result store there" in str(e):
            return 0
        raise
    return int(re.match(r"results: (\d+) ", summary).group(1))


def _check_results(d: Deployment, job: str, count: int) -> None:
    """Every task of `job` has exactly one correct result, read back from the S3 store with `grid results`."""
    results = [json.loads(line) for line in _grid_command(d, "results", "--job", job, "--format", "jsonl").split()]
    assert sorted(r["task_id"] for r in results) == sorted(f"{job}-{i}" for i in range(1, count + 1))
    for r in results:
        factors = [int(f) for f in r["factors"]]
        assert r["error_code"] is None and factors == sorted(factors) and len(factors) == 2, r
        assert sympy.prod(factors) == int(r["n"]) and all(sympy.isprime(f) for f in factors), r


def test_grid_runs_on_what_terraform_built(deployment, tmp_path):
    """Producer, supervisor (direct mode), worker and collector with the environment their instances' user data
    writes, on the queues, parameters, worker group and result bucket that Terraform made: every task gets one
    correct result, and the supervisor sizes the group."""
    d = deployment
    autoscaling = d.client("autoscaling")
    worker_group = d.outputs["autoscaling_groups"]["worker"]

    def desired() -> int:
        group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[worker_group])
        return group["AutoScalingGroups"][0]["DesiredCapacity"]

    local = {"GRID_LOG_FILENAME": "-", **FAKE_CREDENTIALS}  # an instance logs to /var/log/AWSGridWithSQS
    env = {role: d.grid_env(**{**_instance_env(d, role), **local}) for role in config.ROLES}
    assert env["worker"]["AWS_ENDPOINT_URL"] == d.endpoint and env["worker"]["AWS_ENV"] == ENV
    assert env["collector"]["GRID_RESULT_STORE"] == d.outputs["result_store"]
    # direct mode, and a target and cooldown that make 200 tasks need 2 workers and let them go at once
    env["supervisor"].update(GRID_SCALE_MODE="direct", GRID_BACKLOG_PER_INSTANCE="100", GRID_METRIC_INTERVAL="1",
                             GRID_SCALE_IN_COOLDOWN="1")
    roles = Roles(tmp_path)
    try:
        assert desired() == 0
        producer = roles.start("producer", env["producer"], "--count", str(TASKS), "--seed", "5", "--job", "tf")
        roles.wait_for("the producer sends its tasks", lambda: producer.poll() == 0)
        roles.start("supervisor", env["supervisor"])
        roles.wait_for("the supervisor sizes the worker group for the backlog", lambda: desired() == 2)
        roles.start("worker", env["worker"])
        roles.start("collector", env["collector"])
        roles.wait_for(f"{TASKS} results stored", lambda: _stored(d) >= TASKS, poll=1.0)
        roles.wait_for("the supervisor scales the worker group back to zero", lambda: desired() == 0)
        codes = roles.stop("supervisor", "worker", "collector")
    finally:
        roles.kill()
    assert codes == {"supervisor": 0, "worker": 0, "collector": 0}
    _check_results(d, "tf", TASKS)
    status = _grid_command(d, "status")
    for queue in d.outputs["queues"].values():
        assert f"queue {queue['name']}: 0 waiting, 0 in flight, 0 delayed; DLQ {queue['dlq_name']}: 0" in status
    assert f"fleet {worker_group}: 0 in service" in status and d.outputs["result_store"] in status, status
    # The metric the target tracking policy follows is one the supervisor published.
    policy = autoscaling.describe_policies(AutoScalingGroupName=worker_group)["ScalingPolicies"]
    spec = policy[0]["TargetTrackingConfiguration"]["CustomizedMetricSpecification"]
    published = d.client("cloudwatch").list_metrics(Namespace=spec["Namespace"], MetricName=spec["MetricName"])
    assert [m["Dimensions"] for m in published["Metrics"]] == [spec["Dimensions"]]


def test_scaling_policy_tracks_the_supervisor_backlog_per_instance(deployment):
    d = deployment
    policies = d.client("autoscaling").describe_policies(
        AutoScalingGroupName=d.outputs["autoscaling_groups"]["worker"])["ScalingPolicies"]
    assert [p["PolicyType"] for p in policies] == ["TargetTrackingScaling"]
    tracking = policies[0]["TargetTrackingConfiguration"]
    supervisor_group = _ssm_values(d)[f"/{ENV}/AWSGridWithSQS/supervisor/supervisor_asg_name"]
    assert tracking["CustomizedMetricSpecification"] == {
        "MetricName": metrics.BACKLOG_PER_INSTANCE, "Namespace": metrics.CLOUDWATCH_NAMESPACE,
        "Dimensions": [{"Name": metrics.CLOUDWATCH_DIMENSION, "Value": supervisor_group}],
        "Statistic": "Average", "Unit": "Count",
    }
    assert tracking["TargetValue"] == float(_ssm_values(d)[f"/{ENV}/AWSGridWithSQS/supervisor/backlog_per_instance"])


def _dashboard_metrics(body: dict):
    """(namespace, name, dimensions) of every metric the dashboard's widgets draw."""
    for widget in body["widgets"]:
        for row in widget["properties"]["metrics"]:
            plain = [x for x in row if not isinstance(x, dict)]
            if plain:
                namespace, name, *dims = plain
                yield namespace, name, dict(zip(dims[::2], dims[1::2]))


def test_dashboard_names_only_metrics_the_grid_or_aws_emits(deployment):
    d = deployment
    exported = metrics.export()
    ssm = _ssm_values(d)
    groups = d.outputs["autoscaling_groups"]
    queues = {q[k] for q in d.outputs["queues"].values() for k in ("name", "dlq_name")}
    ours = {(exported["cloudwatch"]["namespace"], name, ssm[f"/{ENV}/AWSGridWithSQS/supervisor/supervisor_asg_name"])
            for name in exported["cloudwatch"]["metrics"]}
    ours |= {(exported["agent"]["namespace"], ssm[f"/{ENV}/AWSGridWithSQS/{m['role']}/stats_prefix"] + m["name"],
              groups[m["role"]]) for m in exported["statsd"]}
    aws = {  # AWS's own metrics, by namespace: their names and the one dimension each is drawn by
        "AWS/SQS": ({"ApproximateNumberOfMessagesVisible", "ApproximateNumberOfMessagesNotVisible",
                     "ApproximateAgeOfOldestMessage"}, "QueueName", queues),
        "AWS/AutoScaling": ({"GroupDesiredCapacity", "GroupInServiceInstances"}, "AutoScalingGroupName",
                            set(groups.values())),
        "AWS/EC2": ({"CPUUtilization"}, "AutoScalingGroupName", set(groups.values())),
    }
    body = json.loads(d.client("cloudwatch").get_dashboard(DashboardName=d.outputs["dashboard_name"])["DashboardBody"])
    drawn = list(_dashboard_metrics(body))
    assert len(drawn) >= 20
    for namespace, name, dims in drawn:
        if namespace in aws:
            names, dimension, values = aws[namespace]
            assert name in names and list(dims) == [dimension] and dims[dimension] in values, (namespace, name, dims)
        else:
            assert list(dims) == [exported["agent"]["aggregation_dimensions"][0][0]], (namespace, name, dims)
            assert (namespace, name, dims[metrics.CLOUDWATCH_DIMENSION]) in ours, (namespace, name, dims)
    assert {w["properties"]["region"] for w in body["widgets"]} == {REGION}


def test_alarms_and_log_groups(deployment):
    d = deployment
    alarms = {a["AlarmName"]: a for a in d.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    dead = {a["Dimensions"][0]["Value"] for a in alarms.values()
            if a["MetricName"] == "ApproximateNumberOfMessagesVisible" and a["Threshold"] == 0}
    assert dead == {q["dlq_name"] for q in d.outputs["queues"].values()}
    oldest = [a for a in alarms.values() if a["MetricName"] == "ApproximateAgeOfOldestMessage"]
    assert [a["Dimensions"] for a in oldest] == [[{"Name": "QueueName", "Value": "grid_tasks_queue"}]]
    groups = d.client("logs").describe_log_groups(logGroupNamePrefix="/AWSGridWithSQS/")["logGroups"]
    agent_group = ansible_defaults("cloudwatch_agent")["cloudwatch_agent_log_group"]  # where the agent ships logs
    assert {g["logGroupName"]: g["retentionInDays"] for g in groups} == {
        agent_group.format(env=ENV, role=role): 30 for role in config.ROLES}


def test_instances_carry_the_tags_the_rollout_inventory_selects_by(deployment):
    """inventories/grid.aws_ec2.yml finds the grid's instances by tags that the groups give their instances."""
    inventory = yaml.safe_load((ROOT / "inventories/grid.aws_ec2.yml").read_text())
    keys = [re.fullmatch(r"tags\.get\('([^']+)', 'none'\)", k["key"])[1] for k in inventory["keyed_groups"]]
    groups = deployment.client("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=list(deployment.outputs["autoscaling_groups"].values()))["AutoScalingGroups"]
    for role, name in deployment.outputs["autoscaling_groups"].items():
        group = next(g for g in groups if g["AutoScalingGroupName"] == name)
        tags = {t["Key"]: t["Value"] for t in group["Tags"] if t["PropagateAtLaunch"]}
        for filter_, value in inventory["filters"].items():
            if filter_.startswith("tag:"):
                assert tags.get(filter_[4:]) == value, (role, filter_, tags)
        assert [tags.get(key) for key in keys] == [role, ENV], (role, tags)


def ansible_defaults(role: str) -> dict:
    return yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text())


def test_a_second_plan_reports_no_changes(deployment):
    """After the grid ran (the supervisor changed the worker group's size), the configuration still matches."""
    plan = deployment.terraform("plan", "-detailed-exitcode", check=False)
    assert plan.returncode == 0, plan.stdout[-6000:] + plan.stderr[-2000:]


def test_destroy_leaves_no_queue_parameter_or_group(deployment, capsys):
    d = deployment
    d.terraform("destroy", "-auto-approve")
    d.destroyed = True
    assert d.client("sqs").list_queues().get("QueueUrls", []) == []
    assert _ssm_values(d) == {}
    assert d.client("autoscaling").describe_auto_scaling_groups()["AutoScalingGroups"] == []
    assert d.client("ec2").describe_launch_templates()["LaunchTemplates"] == []
    assert [r["RoleName"] for r in d.client("iam").list_roles()["Roles"] if r["RoleName"].startswith("grid-")] == []
    assert d.client("logs").describe_log_groups(logGroupNamePrefix="/AWSGridWithSQS/")["logGroups"] == []
    assert d.client("cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert d.client("s3").list_buckets()["Buckets"] == []
    with capsys.disabled():
        steps = ", ".join(f"{k} {v:.0f} s" for k, v in d.seconds.items())
        print(f"\nterraform on moto: {d.resources} resources; {steps}")
