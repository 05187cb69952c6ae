"""Two builds of the kernel side by side in one process: this checkout's grid._primes against another build's.

`python -P benchmarks/kernel_ab.py OTHER/grid/_primes.cpython-311-x86_64-linux-gnu.so [--only "A,B run"]`. Both get
the inputs of benchmarks/kernel.py (the run rows: factor_run on its bundles, per number), in alternating chunks of CPU time, so that the machine's load falls on both
alike (runs of `make bench-kernel` minutes apart differ by far more than a change of the kernel does). Prints each
row's ops per CPU second for both (the median chunk) and their ratio. Two builds may find the same factors in
another order. The calls are the kernel's own (factor,
random_prime, is_prime), which the other build must define with the same arguments.
"""
import argparse
import importlib.machinery
import importlib.util
import math
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]  # benchmarks/grid.py hides grid

from grid import _primes  # noqa: E402

_spec = importlib.util.spec_from_file_location("kernel_bench", os.path.join(HERE, "kernel.py"))
kernel_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernel_bench)

UNLIMITED = (1 << 63) - 1


def load(path: str):
    """The extension at `path` as a module of its own, beside the grid._primes already imported."""
    loader = importlib.machinery.ExtensionFileLoader("grid._primes", path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("grid._primes", path,
                                                                                     loader=loader))
    loader.exec_module(module)
    return module


def call(kernel, wid: str):
    if wid.endswith(" run"):
        return lambda bundle, rng, run=kernel.factor_run: run(bundle, 60.0, 0.0)[0]
    if wid.startswith(("A", "B")):
        return lambda n, rng, factor=kernel.factor: factor(n, math.inf, UNLIMITED)
    if wid.startswith("C"):
        return lambda bits, rng, draw=kernel.random_prime: draw(bits, rng)
    return lambda n, rng, test=kernel.is_prime: test(n)


def rate(op, inputs: list, seconds: float) -> float:
    """Ops per CPU second over `seconds` of CPU time, cycling through the inputs."""
    rng, done, start = random.Random(7), 0, time.thread_time()
    while True:
        for k in range(50):
            op(inputs[(done + k) % len(inputs)], rng)
        done += 50
        elapsed = time.thread_time() - start
        if elapsed > seconds:
            return done / elapsed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", help="the other build's compiled grid/_primes module")
    parser.add_argument("--only", help="comma-separated workload ids, e.g. A,C128")
    parser.add_argument("--chunks", type=int, default=12, help="chunks per build and row")
    parser.add_argument("--seconds", type=float, default=0.25, help="CPU seconds a chunk")
    args = parser.parse_args(argv)
    other = load(args.other)
    print(f"| id | workload | this ops/s | other ops/s | this / other |\n| --- | --- | ---: | ---: | ---: |")
    for wid, what, _, inputs, _ in kernel_bench.workloads(3000):
        if args.only and wid not in args.only.split(","):
            continue
        ours, theirs = call(_primes, wid), call(other, wid)
        sample = inputs[:20]
        factored = wid.startswith(("A", "B")) and not wid.endswith(" run")  # a run's lists come back as they are
        same = (lambda r: (sorted(r[0]), r[1])) if factored else (lambda r: r)  # noqa: E731
        if [same(ours(x, random.Random(1))) for x in sample] != [same(theirs(x, random.Random(1))) for x in sample]:
            sys.exit(f"{wid}: the two builds disagree on the first inputs")
        rates = {ours: [], theirs: []}
        for k in range(args.chunks):
            for op in (ours, theirs) if k % 2 == 0 else (theirs, ours):
                rates[op].append(rate(op, inputs, args.seconds))
        per = kernel_bench.BUNDLE if wid.endswith(" run") else 1  # the run rows: per number
        a, b = per * statistics.median(rates[ours]), per * statistics.median(rates[theirs])
        print(f"| {wid} | {what} | {a:,.0f} | {b:,.0f} | {a / b:.2f} |", flush=True)


if __name__ == "__main__":
    main()
