"""The example aws_ec2 inventory against moto's server: it selects the running instances tagged Project=grid, groups
them by role, and reaches them through SSM Session Manager.

usage: check_inventory.py ANSIBLE_INVENTORY_COMMAND (run with the grid's .venv python: boto3 and moto_server)
"""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventories/grid.aws_ec2.yml"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"moto_server did not listen on 127.0.0.1:{port} within 30 s")


def launch(ec2, tags: dict) -> str:
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, TagSpecifications=spec)["Instances"][0]["InstanceId"]


def plain(value):
    """A value as ansible-inventory --list prints it, without its marker of untrusted text."""
    return value.get("__ansible_unsafe", value) if isinstance(value, dict) else value


def main(ansible_inventory: str) -> int:
    port = free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION,
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", GRID_SSM_BUCKET="grid-ssm-transfer")
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(port)
        ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=env["AWS_ENDPOINT_URL"],
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        worker = launch(ec2, {"Project": "grid", "grid:role": "worker", "grid:env": "dev"})
        collector = launch(ec2, {"Project": "grid", "grid:role": "collector", "grid:env": "dev"})
        stopped = launch(ec2, {"Project": "grid", "grid:role": "worker", "grid:env": "dev"})
        ec2.stop_instances(InstanceIds=[stopped])
        launch(ec2, {"Project": "other"})
        out = subprocess.run([ansible_inventory, "-i", str(INVENTORY), "--list"], env=env, capture_output=True,
                             text=True)
        if out.returncode:
            sys.exit(f"ansible-inventory failed: {out.stderr.strip()}")
        inventory = json.loads(out.stdout)
    finally:
        server.terminate()
        server.wait()
    hosts = lambda group: sorted(inventory.get(group, {}).get("hosts", []))  # noqa: E731
    hostvars = inventory["_meta"]["hostvars"]
    problems = [f"group {g}: {hosts(g)}, expected {want}" for g, want in
                (("grid", sorted([worker, collector])), ("grid_role_worker", [worker]),
                 ("grid_role_collector", [collector]), ("grid_env_dev", sorted([worker, collector]))) if hosts(g) != want]
    names = ("ansible_host", "ansible_connection", "ansible_aws_ssm_bucket_name", "ansible_aws_ssm_region")
    for host in (worker, collector):
        got = tuple(plain(hostvars[host].get(name)) for name in names)
        if got != (host, "amazon.aws.aws_ssm", "grid-ssm-transfer", REGION):
            problems.append(f"{host}: {dict(zip(names, got))}")
    print("\n".join(problems) or "inventories/grid.aws_ec2.yml: selects the running grid instances by tag, by role "
          "and env, through SSM Session Manager")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
