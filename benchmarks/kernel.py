"""Kernel benchmark: grid against python-flint, cypari2 (PARI), gmpy2, sympy and the original's algorithm.

Every library gets the same seeded inputs in one process; a cell cycles through its inputs
in order until its CPU time is up (at least one op), best of a few rounds, and prints ops per
CPU second (time.thread_time: other load on the machine does not count) with
the ratios to flint, cypari2 and the original, then the same cells as time per operation: ns
per CPU second's op, and cycles where `perf stat -e cycles` counts them on this machine (the
clock rate it measures over a busy loop of this process times the ns; in a VM whose
hypervisor hides the PMU, perf prints "<not supported>" and the table says so and shows ns
only). `--quick` runs in a few seconds. The rows "A run" and "B run" time the worker's own path, grid's
`factor_run` over bundles of BUNDLE numbers (the default tasks per message), in ops per CPU second per number;
the peers have no such call.
"""
import argparse
import importlib.util
import os
import random
import shutil
import subprocess  # nosec B404: perf stat, a fixed argument list
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# benchmarks/grid.py would shadow the grid package: drop this folder from the path
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

import cypari2  # noqa: E402
import flint  # noqa: E402
import gmpy2  # noqa: E402
import sympy  # noqa: E402

from grid import primes  # noqa: E402

_spec = importlib.util.spec_from_file_location("original", os.path.join(HERE, "original.py"))
original = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(original)

LIBS = ["grid", "flint", "cypari2", "gmpy2", "sympy", "original"]
BUNDLE = 200  # numbers per factor_run call: the default tasks per message
pari = cypari2.Pari()


def _flint_random_prime(bits, rng):
    low, high = 1 << (bits - 1), 1 << bits
    x = (low | rng.getrandbits(bits - 1)) | 1
    while True:
        if x >= high:
            x = low + 1
        if flint.fmpz(x).is_prime():
            return x
        x += 2


def _gmpy2_random_prime(bits, rng):
    p = gmpy2.next_prime(rng.getrandbits(bits - 1) | (1 << (bits - 1)))
    return int(p) if p.bit_length() == bits else int(gmpy2.next_prime(1 << (bits - 1)))


def _sympy_random_prime(bits, rng):
    low = 1 << (bits - 1)
    p = sympy.nextprime((low | rng.getrandbits(bits - 1)) - 1)
    return p if p.bit_length() == bits else sympy.nextprime(low)


def _pari_factor(n):
    ps, es = pari.factorint(n)
    return [int(p) for p, e in zip(ps, es) for _ in range(int(e))]


def _pari_random_prime(bits, rng):
    return int(pari.randomprime([1 << (bits - 1), (1 << bits) - 1]))


FACTOR = {
    "grid": primes.factorize,
    "flint": lambda n: sorted(int(p) for p, e in flint.fmpz(n).factor() for _ in range(e)),
    "cypari2": _pari_factor,
    "sympy": lambda n: sympy.factorint(n, multiple=True),
    "original": original.factorize,
}
IS_PRIME = {
    "grid": primes.is_prime,
    "flint": lambda n: flint.fmpz(n).is_prime(),
    "cypari2": lambda n: bool(pari.isprime(n)),
    "gmpy2": gmpy2.is_prime,
    "sympy": sympy.isprime,
    "original": lambda n, _rng=random.Random(0): original.is_prime(n, _rng),
}
RANDOM_PRIME = {
    "grid": primes.random_prime,
    "flint": _flint_random_prime,
    "cypari2": _pari_random_prime,
    "gmpy2": _gmpy2_random_prime,
    "sympy": _sympy_random_prime,
    "original": original.random_prime,
}


def run_bundle(bundle):
    """The worker's call on a message's numbers (each within 60 s); its factor lists."""
    return primes.factor_run(bundle, 60.0, 0.0)[0]


def bundles(numbers):
    return [numbers[i:i + BUNDLE] for i in range(0, len(numbers) - BUNDLE + 1, BUNDLE)]


def semiprimes(low, high, count, seed):
    rng = random.Random(seed)
    return [primes.task_number(low, high, 2, rng) for _ in range(count)]


def workloads(count):
    """(id, what, functions, inputs, call): call(function, input, rng) runs one op;
    the inputs of C are the bit sizes, those of the run rows bundles of BUNDLE numbers (an op each)."""
    rng = random.Random(2026)
    odd64 = [rng.getrandbits(64) | 1 | (1 << 63) for _ in range(count)]
    primes64 = [primes.random_prime(64, rng) for _ in range(count)]
    factor = lambda f, n, _: f(n)  # noqa: E731
    draw = lambda f, bits, rng: f(bits, rng)  # noqa: E731
    a, b = semiprimes(20, 30, count, 1), [primes.task_number(20, 30, 1, rng) for _ in range(count)]
    run = {"grid": run_bundle}
    return [
        ("A", "factor p*q, p, q of 20-30 bits", FACTOR, a, factor),
        ("A run", "A through factor_run, per number", run, bundles(a), factor),
        ("A16", "factor p*q, p, q of 16 bits", FACTOR, semiprimes(16, 16, count, 2), factor),
        ("A32", "factor p*q, p, q of 32 bits", FACTOR, semiprimes(32, 32, count, 3), factor),
        ("A40", "factor p*q, p, q of 40 bits", FACTOR, semiprimes(40, 40, count, 4), factor),
        ("B", "factor a prime of 20-30 bits", FACTOR, b, factor),
        ("B run", "B through factor_run, per number", run, bundles(b), factor),
        ("C", "random_prime of 20-30 bits", RANDOM_PRIME,
         [rng.randint(20, 30) for _ in range(count)], draw),
        ("C64", "random_prime of 64 bits", RANDOM_PRIME, [64] * count, draw),
        ("C128", "random_prime of 128 bits", RANDOM_PRIME, [128] * count, draw),
        ("D", "is_prime of odd 64-bit numbers", IS_PRIME, odd64, factor),
        ("Dp", "is_prime of 64-bit primes", IS_PRIME, primes64, factor),
    ]


def measure(function, inputs, call, seconds, rounds):
    """(ops/s, results of the first pass) cycling through the inputs for `seconds` of CPU time
    (at least one op), best of `rounds`.

    The clock is read about every 10 ms, not after every op: a read of the thread CPU clock
    is a system call that costs about 1 us here, more than a whole is_prime, and reading it
    per op flattened the ratios of the fast rows."""
    best, results, count = 0.0, None, len(inputs)
    for _ in range(rounds):
        rng = random.Random(7)
        done, chunk, out = 0, 1, []
        start = time.thread_time()
        while True:
            batch = [call(function, inputs[(done + k) % count], rng) for k in range(chunk)]
            out += batch[:count - len(out)]
            done += chunk
            elapsed = time.thread_time() - start
            if elapsed > seconds:
                break
            chunk = max(1, min(1000, int(done * 0.01 / max(elapsed, 1e-6))))
        best = max(best, done / elapsed)
        results = results or out
    return best, results


def check(wid, name, inputs, results):
    if wid.endswith(" run"):  # a bundle an op: check its numbers one by one
        inputs, results = sum(inputs, []), sum(results, [])
    if wid.startswith(("A", "B")):
        bad = [n for n, f in zip(inputs, results) if primes.factorize(n) != sorted(f)]
    elif wid.startswith("D"):
        bad = [n for n, f in zip(inputs, results) if f != primes.is_prime(n)]
    else:
        bad = [p for p in results if not sympy.isprime(p)]
    if bad:
        print(f"  ! {name} got {wid} wrong for {bad[:3]}", file=sys.stderr)


def fmt(x):
    return "-" if x is None else (f"{x:,.0f}" if x >= 100 else f"{x:.3g}")


def clock_rate():
    """(cycles per ns, None) as `perf stat -e cycles` counts them over a busy loop of a child Python, or
    (None, why not)."""
    perf = shutil.which("perf")
    if perf is None:
        return None, "perf is not installed"
    loop = "import time\nt = time.thread_time()\nwhile time.thread_time() - t < 0.2: pass"
    argv = [perf, "stat", "-x", ",", "-e", "cycles,task-clock", sys.executable, "-c", loop]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False).stderr  # nosec B603
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"perf stat failed: {e}"
    return parse_perf(out)


def parse_perf(out):
    """(cycles per ns, None) from `perf stat -x , -e cycles,task-clock`'s lines, or (None, why not)."""
    counts = {}
    for line in out.splitlines():
        fields = line.split(",")
        if len(fields) > 2:
            counts[fields[2].split(":")[0]] = fields[0]
    cycles, ms = counts.get("cycles", ""), counts.get("task-clock", "")
    try:
        return float(cycles) / (float(ms) * 1e6), None
    except ValueError:
        return None, (f"perf stat -e cycles counts {cycles or 'nothing'} here (a VM whose hypervisor "
                      "does not expose the cycle counter)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds in all")
    parser.add_argument("--only", help="comma-separated workload ids, e.g. A,A16")
    args = parser.parse_args(argv)
    count, seconds, rounds = (300, 0.15, 2) if args.quick else (3000, 1.0, 3)
    rows = []
    for wid, what, functions, inputs, call in workloads(count):
        if args.only and wid not in args.only.split(","):
            continue
        rates = {}
        for name in LIBS:
            if name in functions:
                rates[name], results = measure(functions[name], inputs, call, seconds, rounds)
                rates[name] *= BUNDLE if wid.endswith(" run") else 1  # per number
                check(wid, name, inputs, results)
        rows.append((wid, what, rates))
        print(f"{wid:5} {what:34} " + " ".join(f"{n}={fmt(r)}" for n, r in rates.items()),
              file=sys.stderr)
    print(table(rows))
    print()
    print(time_table(rows, *clock_rate()))


RATIOS = ["flint", "cypari2", "gmpy2", "original"]


def table(rows):
    head = "| id | workload | " + " | ".join(f"{n} ops/s" for n in LIBS) + " | " + " | ".join(
        f"grid/{n}" for n in RATIOS) + " |"
    lines = [head, "|" + " --- |" * (len(LIBS) + len(RATIOS) + 2)]
    for wid, what, rates in rows:
        ratio = lambda other: fmt(rates["grid"] / rates[other]) + "x" if other in rates else "-"  # noqa: E731
        lines.append(f"| {wid} | {what} | " + " | ".join(fmt(rates.get(n)) for n in LIBS) + " | "
                     + " | ".join(ratio(n) for n in RATIOS) + " |")
    return "\n".join(lines)


def time_table(rows, per_ns, why_not):
    """The cells as ns per op, and as cycles per op when the clock rate is known."""
    unit = "ns" if per_ns is None else "ns (cycles)"
    note = (f"Time per operation, ns per CPU second's op; no cycles: {why_not}." if per_ns is None else
            f"Time per operation: ns per CPU second's op (cycles at {per_ns:.2f} per ns, perf stat's rate).")
    lines = [note, "", "| id | " + " | ".join(f"{n} {unit}" for n in LIBS) + " |",
             "|" + " --- |" * (len(LIBS) + 1)]
    for wid, _, rates in rows:
        cells = []
        for n in LIBS:
            ns = 1e9 / rates[n] if rates.get(n) else None
            cells.append(fmt(ns) if ns is None or per_ns is None else f"{fmt(ns)} ({fmt(ns * per_ns)})")
        lines.append(f"| {wid} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
