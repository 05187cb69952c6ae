"""The SQS path at latency (`make bench-sqs`): what a queue call's round trip costs the grid, in one run.

On the embedded queue a call takes ~0.1 ms; a call to SQS takes 5-30 ms. Each harness adds a delay to every queue call
of the processes it measures, by a patch those processes load at their start (benchmarks/latency/sitecustomize.py on
their PYTHONPATH; nothing in the product), at each delay of --delays: a fixed number of ms, or `tail` (a lognormal
draw, median 15 ms, p99 80 ms).

1. The worker's latency hiding: `grid local` (2 workers) on the embedded queue, each call delayed, against the
   compute ceiling of the same run: Pool(2) on the same numbers, benchmarks/grid.py's ceiling (run after each grid run).
2. The real API: the grid's producer, 2 workers and a collector as processes on moto's server, each AWS request
   delayed (a botocore 'before-send' handler). moto spends ~26 ms of its own per request, so the ratio is against
   this harness at 0 ms added: the delays run in rounds, the first delay first, and each run is divided by the
   first delay's run of its round.

Each row prints tasks/s; the kernel threads' busy fraction: the worker processes' CPU time (the patch writes the
process's CPU time with every call it records; a worker's last call comes after its last task) over the run's time
x 2 workers x 1 kernel thread each; queue requests per task: the calls the patch counted in the producer, workers
and collector (the data path), with the supervisor's and `grid local`'s own backlog reads in "all"; billed requests
per task count each 64 KiB of a call's payload as one request, as SQS bills. Goals the worker must meet are printed
beside the figures.
"""
from __future__ import annotations

import argparse
import collections
import importlib.util
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]  # benchmarks/grid.py hides grid

from grid import config  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_grid", os.path.join(HERE, "grid.py"))
bench_grid = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_grid)

PATCH_DIR = os.path.join(HERE, "latency")
TAIL = "lognormal:0.015:0.080"  # seconds: median, p99
DELAYS = "0,5,20,50,tail"
CHUNK = 65_536  # bytes of payload SQS bills as one request
DATA_PATH = ("producer", "worker", "collector")
TASKS_PER_MESSAGE = 200  # what `grid local` picks for the default workload; harness 2 sends the same
# Goals the worker's rework must meet, by harness and delay: the ratio at least this.
GOALS = {("local", "20"): 0.9, ("local", "tail"): 0.8, ("local", "50"): 0.8, ("aws", "20"): 0.95}
# Data-path requests per task today, 200 tasks a message (docs/benchmarks.md, "The SQS path at latency"), by harness
# (moto's adds each process's GetQueueUrl): a rework may not ask for more.
TODAY_REQUESTS_PER_TASK = {"local": 0.0031, "aws": 0.0033}
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
DONE_PATIENCE = 600  # seconds a harness-2 run may take before the benchmark gives up


def delay_spec(delay: str) -> str:
    """SQSBENCH_DELAY for a --delays item (ms, or `tail`); ValueError naming a bad one."""
    if delay == "tail":
        return TAIL
    try:
        ms = float(delay)
    except ValueError:
        ms = -1
    if not 0 <= ms <= 10_000:
        raise ValueError(f"--delays: {delay!r} is not allowed: give ms (0..10000) or 'tail', comma-separated")
    return str(ms / 1000)


def patched_env(kind: str, delay: str, counts: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [PATCH_DIR, os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "SQSBENCH_PATCH": kind, "SQSBENCH_DELAY": delay_spec(delay), "SQSBENCH_COUNTS": counts}


class Calls:
    """What the patch recorded in a folder: per process (pid -> name), the operations, payload chunks and CPU time."""

    def __init__(self, folder: str):
        self.names: dict[int, str] = {}
        self.requests: dict[int, collections.Counter] = {}
        self.billed: dict[int, int] = {}
        self.clock: dict[int, list[tuple[float, float]]] = {}  # (epoch s, CPU s) at each call
        for file in os.listdir(folder):
            pid, _, name = file.partition(".")
            pid = int(pid)
            self.names[pid], self.requests[pid], self.billed[pid], self.clock[pid] = name, collections.Counter(), 0, []
            with open(os.path.join(folder, file)) as f:
                for line in f:
                    operation, size, cpu, at = line.split()
                    self.clock[pid].append((float(at), float(cpu)))
                    chunks = max(1, math.ceil(int(size) / CHUNK))
                    if operation == "response":  # the payload of an AWS answer: chunks past the first
                        self.billed[pid] += chunks - 1
                    else:
                        self.requests[pid][operation] += 1
                        self.billed[pid] += chunks

    def first(self, pid: int) -> float:
        return min(at for at, _ in self.clock[pid])

    def cpu_since(self, pid: int, since: float) -> float:
        """CPU seconds of the process from its last call before `since` (epoch s) to its last call."""
        before = [cpu for at, cpu in self.clock[pid] if at <= since]
        return max(cpu for _, cpu in self.clock[pid]) - max(before, default=0.0)

    def pids(self, roles) -> list[int]:
        return [pid for pid, name in self.names.items() if name in roles]

    def operations(self, roles) -> collections.Counter:
        return sum((self.requests[pid] for pid in self.pids(roles)), collections.Counter())


def named(calls: Calls, roles: dict[int, str] | None) -> Calls:
    """The calls with each process named by its role: `roles` maps pid to role where the processes carry no
    grid-<role> name."""
    if roles:
        calls.names = {pid: roles.get(pid, name) for pid, name in calls.names.items()}
    else:
        calls.names = {pid: name.removeprefix("grid-") for pid, name in calls.names.items()}
    return calls


def row(kind: str, delay: str, calls: Calls, tasks: int, began: float, seconds: float) -> dict:
    """One run's figures; the run began at `began` (epoch s) and lasted `seconds`."""
    data = calls.pids(DATA_PATH)
    missing = [role for role in DATA_PATH if not calls.pids([role])]
    if missing:
        sys.exit(f"{kind} at {delay}: no queue call recorded from {', '.join(missing)}: the patch "
                 f"({PATCH_DIR}/sitecustomize.py) did not load in those processes")
    workers = calls.pids(["worker"])
    busy = sum(calls.cpu_since(p, began) for p in workers) / (seconds * bench_grid.WORKERS)
    return {"tasks/s": tasks / seconds, "busy": busy,
            "requests": sum(sum(calls.requests[p].values()) for p in data) / tasks,
            "all": sum(sum(c.values()) for c in calls.requests.values()) / tasks,
            "billed": sum(calls.billed[p] for p in data) / tasks,
            "operations": {op: n / tasks for op, n in calls.operations(DATA_PATH).items()}}


# ---- harness 1: grid local on the embedded queue


def local_run(delay: str, count: int, bits: tuple[int, int], seed: int) -> dict:
    counts = tempfile.mkdtemp(prefix="bench-sqs-calls-")
    saved = dict(os.environ)
    os.environ.update(patched_env("queue", delay, counts))
    try:
        summary = bench_grid.grid_local(count, bits, seed)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    figures = row("local", delay, named(Calls(counts), None), count, 0.0, summary["work_seconds"])  # forks: CPU from 0
    shutil.rmtree(counts)
    figures["per_message"] = summary["tasks_per_message"]
    figures["ceiling"] = bench_grid.ceiling(count, bits, seed)
    figures["ratio"] = figures["tasks/s"] / figures["ceiling"]
    figures["flowing"] = summary["steady"] / figures["ceiling"]  # nan: all done before a sample saw a result
    return figures


# ---- harness 2: producer, workers and collector on moto's server


def serve_moto(port: int) -> None:
    """moto's server on a loopback port until SIGTERM, its receives SQS's (tests/moto_sqs.py)."""
    from moto.server import ThreadedMotoServer
    from moto.sqs.models import SQSBackend

    spec = importlib.util.spec_from_file_location("moto_sqs", os.path.join(HERE, os.pardir, "tests", "moto_sqs.py"))
    moto_sqs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(moto_sqs)
    SQSBackend.receive_message = moto_sqs.like_sqs(SQSBackend.receive_message)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    signal.sigwait([signal.SIGTERM, signal.SIGINT])
    server.stop()


class Moto:
    """moto's server as a process of its own."""

    def __init__(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])  # for its sigwait; inherited
        self.proc = subprocess.Popen([sys.executable, "-P", __file__, "--serve-moto", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT])
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"moto's server did not start on port {self.port} (exit {self.proc.poll()})")
                time.sleep(0.1)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


class Counter:
    """A statsd listener that counts one counter: the collector's results stored."""

    def __init__(self, name: str):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind(("127.0.0.1", 0))
        self.port, self.name, self.total = self.sock.getsockname()[1], name.encode(), 0.0

    def wait_for(self, total: int, deadline: float) -> float:
        """Epoch seconds when the counter reached `total`."""
        while self.total < total:
            self.sock.settimeout(max(0.001, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                sys.exit(f"harness 2: {self.total:.0f} of {total} results stored after {DONE_PATIENCE} s")
            for line in data.splitlines():
                name, _, rest = line.partition(b":")
                value, _, kind = rest.partition(b"|")
                if name == self.name and kind.startswith(b"c"):
                    self.total += float(value)
        return time.time()

    def close(self) -> None:
        self.sock.close()


def aws_run(moto: Moto, delay: str, count: int, bits: tuple[int, int], seed: int, per_message: int) -> dict:
    import boto3

    folder = tempfile.mkdtemp(prefix="bench-sqs-")
    counts = os.path.join(folder, "calls")
    os.mkdir(counts)
    stem = f"b{uuid.uuid4().hex[:10]}"
    sqs = boto3.client("sqs", endpoint_url=moto.url, **{"region_name": "us-east-1", "aws_access_key_id": "testing",
                                                        "aws_secret_access_key": "testing"})
    for queue in ("tasks", "results"):
        sqs.create_queue(QueueName=f"{stem}-{queue}")
    stored = Counter(config.load("collector", environ={"GRID_SSM": "0"}).stats_prefix + "results_stored")
    env = {**os.environ, **AWS_ENV, **patched_env("aws", delay, counts),
           "GRID_SSM": "0", "GRID_BROKER_URL": f"sqs://?endpoint_url={moto.url}&region=us-east-1",
           "GRID_TASKS_QUEUE_NAME": f"{stem}-tasks", "GRID_RESULTS_QUEUE_NAME": f"{stem}-results",
           "GRID_RESULT_STORE": os.path.join(folder, "results.db"), "GRID_STATSD_HOST": "127.0.0.1",
           "GRID_STATSD_PORT": str(stored.port), "GRID_CONCURRENCY": "1", "GRID_QUEUE_POLLING_WAIT_TIME": "1",
           "GRID_PRIME_MIN_BITS": str(bits[0]), "GRID_PRIME_MAX_BITS": str(bits[1]),
           "GRID_TASKS_PER_MESSAGE": str(per_message)}
    procs: dict[int, tuple[str, subprocess.Popen]] = {}

    def start(role: str, *args: str) -> None:
        log = open(os.path.join(folder, f"{role}-{len(procs)}.log"), "ab")
        proc = subprocess.Popen([sys.executable, "-m", "grid.cli", role, *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env={**env, "GRID_LOG_FILENAME": "-"})
        log.close()
        procs[proc.pid] = role, proc

    try:
        for role in ["worker"] * bench_grid.WORKERS + ["collector"]:
            start(role)
        ready(counts, list(procs))
        start("producer", "--count", str(count), "--seed", str(seed))
        ended = stored.wait_for(count, time.monotonic() + DONE_PATIENCE)
    finally:
        for _, proc in procs.values():
            proc.terminate()
        codes = {pid: proc.wait() for pid, (_, proc) in procs.items()}
        stored.close()
    failed = {procs[pid][0]: code for pid, code in codes.items() if code not in (0, -signal.SIGTERM)}
    if failed:
        sys.exit(f"harness 2: roles exited with {failed}; their logs are in {folder}")
    calls = named(Calls(counts), {pid: role for pid, (role, _) in procs.items()})
    began = min(calls.first(pid) for pid in calls.pids(["producer"]))  # its first send: its start-up is not the grid's
    figures = row("aws", delay, calls, count, began, ended - began)
    figures["per_message"] = per_message
    shutil.rmtree(folder)
    return figures


def ready(counts: str, pids: list[int]) -> None:
    """Wait until each process made its first receive: their start-up is over before the producer starts."""
    deadline = time.monotonic() + DONE_PATIENCE
    while not all(any(f.startswith(f"{pid}.") and "ReceiveMessage" in open(os.path.join(counts, f)).read()
                      for f in os.listdir(counts)) for pid in pids):
        if time.monotonic() > deadline:
            sys.exit(f"harness 2: the workers and the collector made no receive within {DONE_PATIENCE} s")
        time.sleep(0.05)


# ---- the tables


def median_run(runs: list[dict]) -> dict:
    """The run of median ratio (its own figures kept together), with every run's ratio."""
    ranked = sorted(runs, key=lambda r: r["ratio"])
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    chosen["ratios"] = [r["ratio"] for r in runs]
    return chosen


def goal(kind: str, delay: str, figures: dict) -> str:
    marks = []
    if (kind, delay) in GOALS:
        need = GOALS[kind, delay]
        marks.append(f"ratio >= {need}: {'PASS' if figures['ratio'] >= need else 'FAIL'}")
    if figures["per_message"] == TASKS_PER_MESSAGE:  # today's figure is that of 200-task messages
        today = TODAY_REQUESTS_PER_TASK[kind]
        marks.append(f"requests <= {today}: {'PASS' if round(figures['requests'], 4) <= today else 'FAIL'}")
    return "; ".join(marks) or "-"


def print_table(kind: str, title: str, rows: dict[str, dict], ceiling: bool) -> None:
    print(f"\n{title}")
    head = "| delay | tasks/s | " + ("ceiling tasks/s | of the first row | " if ceiling else "") + \
           "ratio | runs | " + ("once results flow | " if ceiling else "") + \
           "kernel busy | requests/task | all | billed/task | goal |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    base = next(iter(rows.values()))["tasks/s"]
    for delay, r in rows.items():
        name = "tail (median 15, p99 80 ms)" if delay == "tail" else f"{delay} ms"
        against = f"{r['ceiling']:,.0f} | {r['tasks/s'] / base:.2f} | " if ceiling else ""
        ratios = ", ".join(f"{x:.2f}" for x in r["ratios"])
        if ceiling:
            ratios += f" | {r['flowing']:.2f}"
        print(f"| {name} | {r['tasks/s']:,.0f} | {against}{r['ratio']:.2f} | {ratios} | {r['busy']:.2f} | "
              f"{r['requests']:.4f} | {r['all']:.4f} | {r['billed']:.4f} | {goal(kind, delay, r)} |")
    first = next(iter(rows.values()))
    print("requests per task by operation (data path, first row): " +
          ", ".join(f"{op} {n:.4f}" for op, n in sorted(first["operations"].items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delays", default=DELAYS, help=f"ms added to each call, or 'tail' (default {DELAYS})")
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks of each harness-1 run")
    parser.add_argument("--aws-tasks", type=int, default=50_000, help="tasks of each harness-2 run")
    parser.add_argument("--tasks-per-message", type=int, default=TASKS_PER_MESSAGE, help="harness 2's bundles")
    parser.add_argument("--repeat", type=int, default=5, help="runs at each delay; the table shows the median")
    parser.add_argument("--harness", choices=("local", "aws", "both"), default="both")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a few hundred tiny tasks, one run each: the table's "
                        "shape in seconds, no figure worth reading")
    parser.add_argument("--serve-moto", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_moto:
        return serve_moto(args.serve_moto)
    delays = args.delays.split(",")
    for delay in delays:
        try:
            delay_spec(delay)
        except ValueError as e:
            parser.error(str(e))
    bits = bench_grid.DEFAULT_BITS
    if args.quick:
        args.tasks, args.aws_tasks, args.repeat, bits = 1_000, 1_000, 1, (12, 16)
    for name in ("tasks", "aws_tasks", "repeat", "tasks_per_message"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}={getattr(args, name)} is not allowed: give a whole number >= 1")

    if args.harness in ("local", "both"):
        runs = {d: [] for d in delays}
        for _ in range(args.repeat):  # delays interleaved: the machine's drift falls on every delay alike
            for delay in delays:
                runs[delay].append(local_run(delay, args.tasks, bits, args.seed))
        rows = {d: median_run(r) for d, r in runs.items()}
        print_table("local", f"1. grid local, embedded queue, 2 workers, {args.tasks:,} tasks (bits "
                    f"{bits[0]}:{bits[1]}), median of {args.repeat}: ratio = tasks/s / ceiling Pool(2) of the same run "
                    "(tasks/s from the start; once results flow: from the first result to the last, of the median run)",
                    rows, ceiling=True)
    if args.harness in ("aws", "both"):
        moto = Moto()
        try:
            runs = {d: [] for d in delays}
            for _ in range(args.repeat):  # delays interleaved: the machine's drift falls on every delay alike
                for delay in delays:
                    runs[delay].append(aws_run(moto, delay, args.aws_tasks, bits, args.seed, args.tasks_per_message))
        finally:
            moto.close()
        for k, base in enumerate(runs[delays[0]]):  # each run against the first delay's run of its round
            for delay_runs in runs.values():
                delay_runs[k]["ratio"] = delay_runs[k]["tasks/s"] / base["tasks/s"]
        rows = {d: median_run(r) for d, r in runs.items()}
        print_table("aws", f"2. producer, 2 workers, collector on moto's server, {args.aws_tasks:,} tasks (bits "
                    f"{bits[0]}:{bits[1]}, {args.tasks_per_message} a message), median of {args.repeat}: ratio = "
                    f"tasks/s / that of the run at {delays[0]} ms just before", rows, ceiling=False)


if __name__ == "__main__":
    main()
