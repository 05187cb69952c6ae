"""terraform/ reads the grid's registries from two committed exports, which must be what the code exports now, and
meets Packer at the AMI's tags."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import hcl2

from grid import config, metrics
from helpers import load_packer, plain

TERRAFORM = Path(__file__).resolve().parent.parent / "terraform"
GRID = str(Path(sys.executable).parent / "grid")
REGENERATE = "regenerate it with `make terraform-exports`"
USER_DATA_VARIABLES = {"role", "aws_env", "region", "broker_url", "result_store", "extra_env"}  # the contract


def test_parameters_file_is_the_registry_export():
    # exported with the instances' state directory (/var/lib/grid), not the exporting user's
    env = {**os.environ, "XDG_STATE_HOME": "/var/lib"}
    exported = subprocess.run([GRID, "config", "export"], env=env, capture_output=True, text=True, timeout=60,
                              check=True).stdout
    assert json.loads((TERRAFORM / "grid-parameters.json").read_text()) == json.loads(exported), REGENERATE


def test_metrics_file_is_the_metrics_export():
    assert json.loads((TERRAFORM / "grid-metrics.json").read_text()) == metrics.export(), REGENERATE


def test_the_example_variables_name_registry_parameters():
    example = (TERRAFORM / "terraform.tfvars.example").read_text()
    named = set(re.findall(r'^\s*"([a-z]+/[a-z_]+)"\s*=', example, re.M))
    assert named and named <= {f"{p.role}/{p.name}" for p in config.REGISTRY}


def test_user_data_template_reads_the_contract_variables_and_the_fleet_passes_them():
    template = (TERRAFORM / "modules/fleet/user_data.sh.tftpl").read_text()
    used = set(re.findall(r"\$\{(\w+)\}", template)) | set(re.findall(r"%\{ for \w+, \w+ in (\w+)", template))
    assert used - {"name", "value"} == USER_DATA_VARIABLES
    call = re.search(r'templatefile\("\$\{path.module\}/user_data.sh.tftpl", \{(.*?)\}\)', 
                     (TERRAFORM / "modules/fleet/main.tf").read_text(), re.S).group(1)
    assert set(re.findall(r"^\s*(\w+)\s*=", call, re.M)) == USER_DATA_VARIABLES


def test_the_ami_lookup_selects_by_tags_that_packer_writes():
    with open(TERRAFORM / "main.tf") as f:
        ami_tags = next(block["ami_tags"] for block in plain(hcl2.load(f))["locals"] if "ami_tags" in block)
    written = load_packer("sources")["source"][0]["amazon-ebs"]["debian12"]["tags"]
    assert ami_tags and ami_tags.items() <= written.items()
