"""The Packer template, read as HCL: what the AMI is built from and what it records.

Debian's packer (1.6.6, the newest installable here) checks the syntax only (`make test-packer`); these tests read the
template itself and hold it to the settings a reviewer of an AMI pipeline asks for.
"""
import re
from pathlib import Path

import pytest
import yaml

from helpers import load_packer as load

PACKER = Path(__file__).resolve().parent.parent / "packer"
DEBIAN_OWNER = "136693071363"  # the Debian project's AWS account, which publishes its official images


@pytest.fixture(scope="module")
def source() -> dict:
    return load("sources")["source"][0]["amazon-ebs"]["debian12"]


@pytest.fixture(scope="module")
def build() -> dict:
    return load("build")["build"][0]


def provisioners(build: dict) -> list[tuple[str, dict]]:
    return [next(iter(p.items())) for p in build["provisioner"]]


def test_plugins_are_pinned_to_a_major_version():
    plugins = load("plugins")["packer"][0]["required_plugins"][0]
    assert set(plugins) == {"amazon", "ansible"}
    for name, spec in plugins.items():
        assert spec["source"] == f"github.com/hashicorp/{name}"
        assert re.fullmatch(r"~> \d+\.\d+", spec["version"]), spec


def test_the_base_is_the_latest_official_debian_12(source):
    variables = {k: v for var in load("variables")["variable"] for k, v in var.items()}
    ami_filter = source["source_ami_filter"][0]
    assert ami_filter["most_recent"] is True
    assert ami_filter["owners"] == ["${var.source_ami_owner}"]
    assert variables["source_ami_owner"]["default"] == DEBIAN_OWNER
    assert ami_filter["filters"]["name"] == "${var.source_ami_name}"
    assert variables["source_ami_name"]["default"].startswith("debian-12-amd64-")


def test_the_build_instance_requires_imdsv2(source):
    options = source["metadata_options"][0]
    assert options["http_tokens"] == "required"
    assert options["http_put_response_hop_limit"] == 1
    assert source["imds_support"] == "v2.0"


def test_volumes_are_encrypted_gp3(source):
    assert source["encrypt_boot"] is True
    for volume in source["launch_block_device_mappings"]:
        assert volume["encrypted"] is True and volume["volume_type"] == "gp3"


def test_the_builders_key_leaves_the_image(source):
    assert source["ssh_clear_authorized_keys"] is True


def test_tags_record_where_the_image_came_from(source):
    tags = source["tags"]
    assert tags["Project"] == "grid"
    assert tags["grid:version"] == "${var.grid_version}"
    assert tags["grid:commit"] == "${var.git_commit}"
    assert tags["grid:source-ami"] == "{{ .SourceAMI }}"


def test_the_wheel_is_uploaded_before_ansible_runs_the_bake_playbook(build):
    kinds = [kind for kind, _ in provisioners(build)]
    assert kinds.index("file") < kinds.index("ansible")
    upload = dict(provisioners(build))["file"]
    assert upload["source"] == "${local.wheelhouse}/"
    ansible = dict(provisioners(build))["ansible"]
    assert ansible["playbook_file"] == "${path.root}/../playbooks/bake.yml"
    assert "ANSIBLE_ROLES_PATH=${path.root}/../roles" in ansible["ansible_env_vars"]
    extra_vars = ansible["extra_arguments"][ansible["extra_arguments"].index("--extra-vars") + 1]
    assert f"grid_wheelhouse_dir={upload['destination'].rstrip('/')}" in extra_vars


def test_nothing_is_fetched_from_git_at_bake_time(build):
    for _, spec in provisioners(build):
        assert "git " not in repr(spec), spec


def test_paths_are_relative_to_the_template():
    text = "\n".join(p.read_text() for p in PACKER.glob("*.pkr.hcl"))
    paths = re.findall(r'["=]([^"=\s]*\.\./[^"\s]*)"', text)
    assert paths
    for path in paths:
        assert path.startswith("${path.root}/"), path


def test_a_manifest_records_the_build(build):
    manifest = build["post-processor"][0]["manifest"]
    assert manifest["output"] == "${path.root}/manifest.json"
    assert manifest["custom_data"] == {"grid_version": "${var.grid_version}", "git_commit": "${var.git_commit}"}


def role_inputs() -> set[str]:
    inputs = set()
    for spec in (PACKER.parent / "roles").glob("*/meta/argument_specs.yml"):
        inputs |= set(yaml.safe_load(spec.read_text())["argument_specs"]["main"]["options"])
    return inputs


def test_the_bake_playbook_and_the_roles_exist(build):
    ansible = dict(provisioners(build))["ansible"]
    root = str(PACKER)
    assert Path(ansible["playbook_file"].replace("${path.root}", root)).is_file()
    roles = next(v for v in ansible["ansible_env_vars"] if v.startswith("ANSIBLE_ROLES_PATH="))
    assert Path(roles.split("=", 1)[1].replace("${path.root}", root), "grid", "tasks").is_dir()


def test_the_extra_vars_are_inputs_the_roles_declare(build):
    ansible = dict(provisioners(build))["ansible"]
    extra_vars = ansible["extra_arguments"][ansible["extra_arguments"].index("--extra-vars") + 1]
    names = {pair.split("=", 1)[0] for pair in extra_vars.split()}
    assert names and names <= role_inputs(), names - role_inputs()
