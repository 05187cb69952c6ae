"""End-to-end benchmark (`make bench-grid`): `grid local` with 2 workers against its ceiling, in one run.

The ceiling is multiprocessing.Pool(2) doing the same work per task with no queue: generate the task's number
with the kernel (the same seeded sequence the producer draws) and factorize it. Cases:
  1. the default workload, with the tasks per message `grid local` picks by default;
  2. tiny tasks (--bits 8:8), one task per message: the queue dominates;
  3. tiny tasks in bundles of --bundle tasks per message;
  4. latency when the grid is not saturated (--rate well below capacity).
Each `grid local` run is a real run folder; its report.json gives the figures (throughput = tasks / time from
start, process start-up and scale-out included, to the last task done).
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# Run as `python benchmarks/grid.py`, this file's folder comes first on sys.path and its name would hide the grid
# package: drop the folder.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

from grid import primes  # noqa: E402

WORKERS = 2
DEFAULT_BITS = (20, 30)  # the producer's defaults
TINY_BITS = (8, 8)
DRAW_BATCH = 2000  # numbers the producer draws at once: batch_size (10) messages of 200 tasks


def numbers(count: int, bits: tuple[int, int], seed: int):
    """The producer's sequence, drawn as it draws it: one Random(seed), a batch of task_numbers at a time."""
    rng = random.Random(seed)
    for start in range(0, count, DRAW_BATCH):
        yield from primes.task_numbers(min(DRAW_BATCH, count - start), bits[0], bits[1], 2, rng=rng)


def ceiling(count: int, bits: tuple[int, int], seed: int) -> float:
    """Tasks/s of Pool(2) factorizing the numbers while this process draws them, as the producer does; the pool's
    start counts, as grid local's does."""
    start = time.perf_counter()
    with multiprocessing.Pool(WORKERS) as pool:
        done = sum(1 for _ in pool.imap_unordered(primes.factorize, numbers(count, bits, seed), chunksize=256))
        elapsed = time.perf_counter() - start
    assert done == count
    return count / elapsed


def grid_local(count: int, bits: tuple[int, int], seed: int, *extra: str) -> dict:
    """The summary of `grid local` over `count` tasks with 2 workers (report.json); a failed run's folder is kept."""
    folder = tempfile.mkdtemp(prefix="bench-grid-")
    command = [sys.executable, "-m", "grid.cli", "local", "--dir", folder, "--tasks", str(count),
               "--bits", f"{bits[0]}:{bits[1]}", "--seed", str(seed), "--max-workers", str(WORKERS),
               "--interval", "5", *extra]
    run = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if run.returncode != 0:
        sys.exit(f"grid local failed ({run.returncode}); its logs are in {folder}/logs:\n{run.stdout}")
    with open(os.path.join(folder, "report.json")) as f:
        report = json.load(f)
    shutil.rmtree(folder)
    summary = report["summary"]
    summary["tasks_per_message"] = report["plan"]["tasks_per_message"]
    summary["steady"] = steady_rate(report["samples"], report["drained_at"])
    if summary["tasks_ok"] != count:
        sys.exit(f"grid local: {summary['tasks_ok']} of {count} tasks answered ok")
    return summary


def steady_rate(samples: list[dict], drained_at: float) -> float:
    """Tasks/s from the first sample with results to the last task done: the pipeline once it runs."""
    first = next(s for s in samples if s["done"] > 0)
    last = max(s["done"] for s in samples)
    return (last - first["done"]) / (drained_at - first["t"]) if drained_at > first["t"] else float("nan")


def compare(title: str, count: int, bits: tuple[int, int], seed: int, *extra: str, repeat: int,
            ceilings: list[float] | None = None) -> tuple[float, float, list[float]]:
    """`repeat` runs of grid local, each followed by its ceiling (or with the ceilings given): the machine's speed
    drifts by 5-15% between runs, so the ratio of each pair and their median say more than one pair. The median
    ratio, the median grid tasks/s, and the ceilings."""
    ratios, rates, tops = [], [], []
    print(f"{title}: {count} tasks, bits {bits[0]}:{bits[1]}, {repeat} runs, each grid local then its ceiling")
    for k in range(repeat):
        summary = grid_local(count, bits, seed, *extra)
        top = ceilings[k] if ceilings else ceiling(count, bits, seed)
        ratios.append(summary["throughput"] / top)
        rates.append(summary["throughput"])
        tops.append(top)
        steady = (f"; {summary['steady']:.0f} once results flow ({summary['steady'] / top:.2f})"
                  if math.isfinite(summary["steady"]) else "")  # nan: all done before the first sample with results
        print(f"  run {k + 1}: grid local (2 workers, {summary['tasks_per_message']} per message) "
              f"{summary['throughput']:.0f} tasks/s, all done after {summary['work_seconds']:.2f} s, first scale-out "
              f"{summary['first_scale_out_seconds']:.2f} s{steady}; ceiling Pool({WORKERS}) {top:.0f} tasks/s; "
              f"ratio {ratios[-1]:.2f}")
    print(f"  median: grid local {statistics.median(rates):.0f} tasks/s, ceiling {statistics.median(tops):.0f} "
          f"tasks/s, ratio {statistics.median(ratios):.2f}")
    return statistics.median(ratios), statistics.median(rates), tops


def _ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks of the default workload")
    parser.add_argument("--tiny", type=int, default=50_000, help="tiny tasks per tiny case")
    parser.add_argument("--bundle", type=int, default=100, help="tiny tasks per message in the bundled case")
    parser.add_argument("--rate", type=float, default=200.0, help="tasks/s of the latency case (not saturated)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5, help="runs of each case, each with its own ceiling run")
    args = parser.parse_args()

    ratio, _, _ = compare("default workload", args.tasks, DEFAULT_BITS, args.seed, repeat=args.repeat)
    print(f"ratio: {ratio:.2f}")
    tiny_ratio, tiny_rate, tiny_tops = compare("tiny tasks, one per message", args.tiny, TINY_BITS, args.seed,
                                               "--tasks-per-message", "1", repeat=args.repeat)
    print(f"tiny one-per-message: {tiny_rate:.0f} tasks/s, ratio {tiny_ratio:.2f}")
    bundle_ratio, bundle_rate, _ = compare(f"tiny tasks, {args.bundle} per message", args.tiny, TINY_BITS, args.seed,
                                           "--tasks-per-message", str(args.bundle), repeat=args.repeat,
                                           ceilings=tiny_tops)
    print(f"tiny bundled: {bundle_rate:.0f} tasks/s, ratio {bundle_ratio:.2f}")
    paced = grid_local(int(args.rate * 10), DEFAULT_BITS, args.seed, "--rate", str(args.rate))
    lat = paced["latency_seconds"]
    print(f"latency at {args.rate:.0f} tasks/s (not saturated, 1 per message): p50 {_ms(lat['p50'])}, "
          f"p90 {_ms(lat['p90'])}, p99 {_ms(lat['p99'])}")


if __name__ == "__main__":
    main()
