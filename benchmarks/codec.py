"""The wire codec's cost per task, one task a message: the producer's packing, the worker's decode + factorize +
encode, the collector's decode (`answer` and `task_bodies` of benchmarks/queues.py), in one process, best of 5.

It reads benchmarks/queues.py of the checkout it runs in, so one copy of it compares two trees: from each tree's
root, `.venv/bin/python /path/to/benchmarks/codec.py` (docs/benchmarks.md, issue 12's guards).
"""
import importlib.util
import os
import sys
import time

ROOT = os.getcwd()
sys.path[:] = [ROOT] + [p for p in sys.path if not os.path.abspath(p or ".").endswith("benchmarks")]
_spec = importlib.util.spec_from_file_location("queues_bench", os.path.join(ROOT, "benchmarks", "queues.py"))
queues = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(queues)

TASKS = 20_000


def one_pass(numbers) -> tuple[float, float, float]:
    """CPU microseconds per task of packing, answering and decoding the results."""
    t0 = time.process_time()
    bodies = queues.task_bodies(numbers, 1)
    t1 = time.process_time()
    results = [queues.answer(body, f"m{i}") for i, body in enumerate(bodies)]
    t2 = time.process_time()
    decoded = sum(len(queues.decode_results(r)) for r in results)
    t3 = time.process_time()
    assert decoded == len(numbers)
    per = 1e6 / len(numbers)
    return (t1 - t0) * per, (t2 - t1) * per, (t3 - t2) * per


if __name__ == "__main__":
    numbers = queues.tiny_numbers(TASKS)
    best = min((one_pass(numbers) for _ in range(5)), key=sum)
    print(f"{ROOT}: pack {best[0]:.1f}, answer {best[1]:.1f}, decode_results {best[2]:.1f}, "
          f"sum {sum(best):.1f} us a task")
