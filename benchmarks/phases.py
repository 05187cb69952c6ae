"""Where a `grid local` run at latency spends its time (issue 13's diagnostics beside `make bench-sqs` harness 1).

    python -P benchmarks/phases.py --delays 20,50 --rounds 5 [--trees /path/of/another/checkout ...]

Runs `grid local` (100,000 tasks of bits 20:30, 2 workers) with harness 1's patch (benchmarks/latency/sitecustomize.py:
a delay before every call of the embedded queue), each tree in turn (this checkout first) at each delay, --rounds
times, and prints the medians, in seconds from the run's start, of: the first task's start (the fill: the producer's
send, the supervisor's read, a worker's start and first receive), how far apart the two workers computed their last
task, the time from the last task computed to the run's end (the drain: the last answer's send, the collector's
receive and store), and the run. The times come from the result store's spans and the report; the run's start from
the patch's record of the first queue read of `grid local` itself, which its first sample times.
"""
from __future__ import annotations

import argparse
import array
import collections
import importlib.util
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("bench_sqs", os.path.join(HERE, "sqs.py"))  # the patch's settings
bench_sqs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_sqs)
FIGURES = ("first task starts", "workers' last computing apart", "last computing to the end", "run")


def run(tree: str, delay: str, tasks: int) -> dict[str, float]:
    """One `grid local` from `tree` at `delay` (ms or tail): its figures."""
    calls, folder = tempfile.mkdtemp(prefix="phases-calls-"), tempfile.mkdtemp(prefix="phases-run-")
    env = {**os.environ, **bench_sqs.patched_env("queue", delay, calls),
           "PYTHONPATH": os.pathsep.join([bench_sqs.PATCH_DIR, tree])}
    try:
        subprocess.run([sys.executable, "-P", "-m", "grid.cli", "local", "--dir", folder, "--tasks", str(tasks),
                        "--bits", "20:30", "--seed", "1", "--max-workers", "2", "--interval", "5"],
                       env=env, cwd=tree, stdout=subprocess.DEVNULL, check=True)
        with open(os.path.join(folder, "report.json")) as f:
            report = json.load(f)
        recorded = bench_sqs.Calls(calls)
        start = min(map(recorded.first, recorded.pids(["python"]))) - report["samples"][0]["t"]
        first, last = _spans(os.path.join(folder, "results.db"))
        ends = sorted(last.values())
        return dict(zip(FIGURES, (first - start, ends[-1] - ends[0], start + report["drained_at"] - ends[-1],
                                  report["drained_at"])))
    finally:
        shutil.rmtree(calls)
        shutil.rmtree(folder)


def _spans(store: str) -> tuple[float, dict[str, float]]:
    """The first task's start and each worker's last task's end, epoch seconds, from the store's spans."""
    first, last = float("inf"), collections.defaultdict(float)
    with sqlite3.connect(store) as db:
        for worker, started, completed in db.execute("SELECT worker, started_at, completed_at FROM spans"):
            starts, ends = array.array("d", started), array.array("d", completed)
            first, last[worker] = min(first, min(starts)), max(last[worker], max(ends))
    return first, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delays", default="20,50", help="ms added to each queue call, or tail (comma-separated)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--trees", nargs="*", default=[], help="other checkouts (built) run in turn with this one")
    args = parser.parse_args()
    trees = [os.path.dirname(HERE), *map(os.path.abspath, args.trees)]
    found = collections.defaultdict(list)
    for _ in range(args.rounds):
        for delay in args.delays.split(","):
            for tree in trees:
                for figure, seconds in run(tree, delay, args.tasks).items():
                    found[(delay, figure, tree)].append(seconds)
    print("| delay | tree | " + " | ".join(FIGURES) + " |\n| --- | --- |" + " --- |" * len(FIGURES))
    for delay in args.delays.split(","):
        for tree in trees:
            cells = [f"{statistics.median(found[(delay, figure, tree)]):.3f}" for figure in FIGURES]
            print(f"| {delay} | {tree} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
