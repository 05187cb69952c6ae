"""The compact bundle's formats side by side, in one run: CPU per task of each step a task's numbers take on the wire
with format_version 2 (a list per column) and 3 (one text per column), on the default workload's numbers (20-30
bits, two factors) in messages of 200: the producer's packing, the worker's decoding and its answer's packing, the
collector's decoding and storing (ResultStore.add into a SQLite file). The factoring itself is done once, outside.

    .venv/bin/python -P benchmarks/formats.py [--tasks N] [--rounds R]

The versions alternate round by round; each figure is the median of its rounds (docs/benchmarks.md, issue 13).
"""
import argparse
import random
import statistics
import tempfile
import time

from grid import primes
from grid.store.sqlite import ResultStore
from grid.wire import (FORMAT_VERSION, OLDEST_WRITTEN, Results, Tasks, decode_results, decode_tasks, pack_results,
                       pack_tasks)

PER_MESSAGE = 200
STEPS = ("producer: pack tasks", "worker: decode tasks", "worker: pack results", "collector: decode results",
         "collector: store")


def one_round(numbers: list[int], factors: list, version: int, folder: str) -> list[float]:
    """CPU seconds of each step over all of `numbers`."""
    clock = [time.process_time()]
    bodies = [body for body, _ in pack_tasks(Tasks.numbered("job", 1, numbers, 1.0), PER_MESSAGE, version)]
    clock.append(time.process_time())
    tasks = [decode_tasks(body, default_id="m") for body in bodies]
    clock.append(time.process_time())
    answers, at = [], 0
    for part in tasks:
        count = len(part.numbers)
        times = [2.0] * count
        answers += [body for body, _ in pack_results(Results.answers(part, factors[at:at + count], times, times, "w"),
                                                     version=version)]
        at += count
    clock.append(time.process_time())
    results = [decode_results(body) for body in answers]
    clock.append(time.process_time())
    store = ResultStore(f"{folder}/results-{version}-{time.monotonic_ns()}.db")
    for result in results:
        store.add([result])
    clock.append(time.process_time())
    store.close()
    assert sum(map(len, results)) == len(numbers)
    return [b - a for a, b in zip(clock, clock[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    numbers = primes.task_numbers(args.tasks, 20, 30, 2, rng=random.Random(1))
    factors = [primes.factorize(n) for n in numbers]
    versions = (OLDEST_WRITTEN, FORMAT_VERSION)
    seconds = {v: [] for v in versions}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for version in versions:
                seconds[version].append(one_round(numbers, factors, version, folder))
    per_task = {v: [statistics.median(r[i] for r in rounds) * 1e6 / args.tasks for i in range(len(STEPS))]
                for v, rounds in seconds.items()}
    old, new = (per_task[v] for v in versions)
    print(f"{args.tasks:,} tasks, {PER_MESSAGE} a message, median of {args.rounds} rounds, CPU us a task\n")
    print(f"| step | format {versions[0]} | format {versions[1]} | {versions[1]} / {versions[0]} |")
    print("| --- | --- | --- | --- |")
    for step, a, b in zip(STEPS + ("all",), old + [sum(old)], new + [sum(new)]):
        print(f"| {step} | {a:.2f} | {b:.2f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
