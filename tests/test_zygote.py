"""A zygote forks any role (`grid <role> ...`) as its owner's child, as a new interpreter of that role would run.

Linux, as the whole suite (it reads /proc): the zygote needs prctl's subreaper."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from helpers import alive, eventually

# A zygote forks in its owner, which also becomes a subreaper: each test owns one in a process of its own, never in
# the test process. The owner has no GRID_ variable: what a role gets comes from the environment it is given.
OWNER = """
import gc, json, os, sys
from grid.daemons import producer
from grid.fleet.zygote import Zygote
frozen = lambda argv: print(f"objects frozen: {gc.get_freeze_count()}")  # a role that says what gc passes over
zygote = Zygote({"producer": producer.main, "frozen": frozen}, stop_with_parent=False, spares=int(sys.argv[1]))
print(json.dumps({"owner": os.getpid(), "zygote": zygote.pid}), flush=True)
procs = {}


def spare(pid):
    try:
        with open(f"/proc/{pid}/stat") as f, open(f"/proc/{pid}/comm") as g:
            state, parent = f.read().rsplit(")", 1)[1].split()[:2]
            return g.read().strip() == "grid-spare" and int(parent) == os.getpid() and state != "Z"
    except FileNotFoundError:
        return False


for line in sys.stdin:
    command = json.loads(line)
    if command["do"] == "fork":
        proc = zygote.fork(command["argv"], command["env"], command["output"])
        procs[proc.pid] = proc
        reply = {"pid": proc.pid, "kind": type(proc).__name__}
    elif command["do"] == "look":
        pid = command["pid"]
        with open(f"/proc/{pid}/stat") as f, open(f"/proc/{pid}/comm") as g:
            reply = {"parent": int(f.read().rsplit(")", 1)[1].split()[1]), "session": os.getsid(pid),
                     "name": g.read().strip()}
    elif command["do"] == "term":
        procs[command["pid"]].send_signal(15)
        reply = {}
    elif command["do"] == "wait":
        reply = {"code": procs[command["pid"]].wait(60)}
    elif command["do"] == "spares":  # this process's children waiting as spares
        reply = {"pids": sorted(pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if spare(pid))}
    elif command["do"] == "close":
        zygote.close()
        reply = {"spares": [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if spare(pid)],
                 "zygote": os.path.exists(f"/proc/{zygote.pid}")}
    elif command["do"] == "kill the zygote":
        os.kill(zygote.pid, 9)
        os.waitpid(zygote.pid, 0)
        reply = {}
    print(json.dumps(reply), flush=True)
"""


@pytest.fixture(params=[0, 2], ids=["no spare", "2 spares"])
def owner(request):
    yield from own_zygote(request.param)


@pytest.fixture
def owner_of_spares():
    yield from own_zygote(2)


def own_zygote(spares: int):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRID_")}
    proc = subprocess.Popen([sys.executable, "-c", OWNER, str(spares)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env)
    proc.started = json.loads(proc.stdout.readline())
    yield proc
    if proc.poll() is None:
        proc.stdin.close()
        proc.wait(60)


def tell(owner: subprocess.Popen, **command) -> dict:
    owner.stdin.write(json.dumps(command) + "\n")
    owner.stdin.flush()
    return json.loads(owner.stdout.readline())


def role_env(tmp_path, **more: str) -> dict[str, str]:
    return {**os.environ, "GRID_SSM": "0", "GRID_LOG_FILENAME": "-", "GRID_BROKER_URL": f"sqlite://{tmp_path}/grid.db",
            **more}


def text(path) -> str:
    return path.read_text() if path.exists() else ""


def test_a_forked_role_is_its_owners_child_in_its_own_session_with_its_env_and_log_and_drains_on_sigterm(
        tmp_path, owner):
    log = tmp_path / "producer.log"
    forked = tell(owner, do="fork", argv=["producer", "--rate", "50"], env=role_env(tmp_path), output=str(log))
    pid = forked["pid"]
    eventually(lambda: f"grid producer starting (pid {pid}, broker sqlite://{tmp_path}/grid.db)" in text(log),
               "the producer logs that it starts, on the broker its environment names")
    assert forked["kind"] == "Forked"
    assert tell(owner, do="look", pid=pid) == {"parent": owner.started["owner"], "session": pid,
                                               "name": "grid-producer"}
    tell(owner, do="term", pid=pid)
    assert tell(owner, do="wait", pid=pid) == {"code": 0}
    assert "grid producer stopped (exit code 0)" in text(log)


def test_a_forked_role_exits_with_its_code_and_its_error_in_its_log(tmp_path, owner):
    log = tmp_path / "producer.log"
    forked = tell(owner, do="fork", argv=["producer", "--count", "1"], env=role_env(tmp_path, GRID_PRIME_MIN_BITS="0"),
                  output=str(log))
    assert tell(owner, do="wait", pid=forked["pid"]) == {"code": 2}
    assert "grid producer: error: prime_min_bits=0 from env GRID_PRIME_MIN_BITS" in text(log)


def test_when_the_zygote_is_gone_a_role_starts_as_a_new_interpreter_with_the_same_env_and_log(tmp_path, owner):
    tell(owner, do="kill the zygote")
    log = tmp_path / "producer.log"
    started = tell(owner, do="fork", argv=["producer", "--count", "1"],
                   env=role_env(tmp_path, GRID_PRIME_MIN_BITS="0"), output=str(log))
    assert started["kind"] == "Popen"
    assert tell(owner, do="wait", pid=started["pid"]) == {"code": 2}
    assert "grid producer: error: prime_min_bits=0 from env GRID_PRIME_MIN_BITS" in text(log)


def test_the_zygote_goes_with_its_owner_and_a_role_forked_without_stop_with_parent_runs_on(tmp_path, owner):
    log = tmp_path / "producer.log"
    pid = tell(owner, do="fork", argv=["producer", "--rate", "50"], env=role_env(tmp_path), output=str(log))["pid"]
    eventually(lambda: "grid producer starting" in text(log), "the producer started")
    owner.kill()
    owner.wait()
    eventually(lambda: not alive(owner.started["zygote"]), "the zygote gone")
    try:
        assert alive(pid)
    finally:
        os.kill(pid, signal.SIGTERM)
    eventually(lambda: "grid producer stopped (exit code 0)" in text(log), "the orphaned producer drained")


def spares(owner: subprocess.Popen, count: int) -> list[int]:
    """The owner's spares, once there are `count`."""
    eventually(lambda: len(tell(owner, do="spares")["pids"]) == count, f"{count} spares waiting")
    return tell(owner, do="spares")["pids"]


def test_a_spare_waits_as_its_owners_child_in_its_own_session_and_takes_the_next_role_then_another_replaces_it(
        tmp_path, owner_of_spares):
    owner = owner_of_spares
    waiting = spares(owner, 2)
    for pid in waiting:
        assert tell(owner, do="look", pid=pid) == {"parent": owner.started["owner"], "session": pid,
                                                   "name": "grid-spare"}
    log = tmp_path / "producer.log"
    pid = tell(owner, do="fork", argv=["producer", "--rate", "50"], env=role_env(tmp_path), output=str(log))["pid"]
    assert pid == waiting[0]
    eventually(lambda: f"grid producer starting (pid {pid}, broker sqlite://{tmp_path}/grid.db)" in text(log),
               "the spare runs the producer, on the broker its request's environment names")
    assert tell(owner, do="look", pid=pid) == {"parent": owner.started["owner"], "session": pid,
                                               "name": "grid-producer"}
    replaced = spares(owner, 2)
    assert waiting[1] in replaced and pid not in replaced
    tell(owner, do="term", pid=pid)
    assert tell(owner, do="wait", pid=pid) == {"code": 0}


def test_a_spare_killed_is_passed_over_and_the_role_still_starts(tmp_path, owner_of_spares):
    owner = owner_of_spares
    for pid in spares(owner, 2):
        os.kill(pid, signal.SIGKILL)
    eventually(lambda: not tell(owner, do="spares")["pids"], "the spares killed")
    log = tmp_path / "producer.log"
    forked = tell(owner, do="fork", argv=["producer", "--count", "1"], env=role_env(tmp_path, GRID_PRIME_MIN_BITS="0"),
                  output=str(log))
    assert forked["kind"] == "Forked"
    assert tell(owner, do="wait", pid=forked["pid"]) == {"code": 2}
    assert "grid producer: error: prime_min_bits=0 from env GRID_PRIME_MIN_BITS" in text(log)


def test_the_spares_go_with_the_zygote(owner_of_spares):
    waiting = spares(owner_of_spares, 2)
    tell(owner_of_spares, do="kill the zygote")
    eventually(lambda: not any(alive(pid) for pid in waiting), "the spares gone with their zygote")


def test_a_role_starts_with_what_it_shares_with_the_zygote_out_of_the_garbage_collectors_passes(tmp_path, owner):
    log = tmp_path / "frozen.log"
    pid = tell(owner, do="fork", argv=["frozen"], env=role_env(tmp_path), output=str(log))["pid"]
    assert tell(owner, do="wait", pid=pid) == {"code": 0}
    frozen = int(text(log).removeprefix("objects frozen: "))
    assert frozen > 10_000  # the modules the owner imported, not a handful


def test_closed_the_zygote_and_its_spares_are_gone_and_reaped_when_close_returns_and_a_role_starts_anew(
        tmp_path, owner_of_spares):
    waiting = spares(owner_of_spares, 2)
    assert tell(owner_of_spares, do="close") == {"spares": [], "zygote": False}
    assert not any(os.path.exists(f"/proc/{pid}") for pid in waiting)  # not even zombies: reaped
    log = tmp_path / "producer.log"
    started = tell(owner_of_spares, do="fork", argv=["producer", "--count", "1"],
                   env=role_env(tmp_path, GRID_PRIME_MIN_BITS="0"), output=str(log))
    assert started["kind"] == "Popen"
    assert tell(owner_of_spares, do="wait", pid=started["pid"]) == {"code": 2}
