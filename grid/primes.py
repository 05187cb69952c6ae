"""The kernel's public face: primality, random primes, task numbers and budgeted factorization.

The arithmetic lives in the compiled `grid._primes` (nogil loops on 64- and 128-bit
integers, Python ints beyond); this module checks arguments and turns budgets into a
deadline and a step count.
"""
from __future__ import annotations

import math
import random
import time

from grid import _primes
from grid._primes import MAX_BITS, MIN_BITS, is_prime, random_prime

__all__ = ["BudgetExceeded", "factorize", "is_prime", "random_prime", "task_number", "task_numbers",
           "MIN_BITS", "MAX_BITS"]

_UNLIMITED_STEPS = (1 << 63) - 1


class BudgetExceeded(ArithmeticError):
    """factorize ran past its budget.

    `factors` holds the prime factors found so far (sorted), `remainder` the unfactored
    cofactor, so that n == prod(factors) * remainder.
    """

    def __init__(self, n: int, factors: list[int], remainder: int, budget: str):
        self.n = n
        self.factors = sorted(factors)
        self.remainder = remainder
        super().__init__(f"factorize({n}) ran past its budget ({budget}): found {self.factors}, "
                         f"{remainder} is left unfactored")


def _integer(value, func: str, name: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{func}: {name} must be an int, got {type(value).__name__} {value!r}")
    return value.__index__()


def _rng(rng, func: str) -> random.Random:
    if rng is None or (isinstance(rng, int) and not isinstance(rng, bool)):
        return random.Random(rng)
    if isinstance(rng, random.Random):
        return rng
    raise TypeError(f"{func}: rng must be None, an int seed or a random.Random, "
                    f"got {type(rng).__name__} {rng!r}")


def _bits(value, func: str, name: str) -> int:
    bits = _integer(value, func, name)
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"{func}: {name} must be in [{MIN_BITS}, {MAX_BITS}], got {bits}")
    return bits


def _is_prime_arg(n) -> int:
    return _integer(n, "is_prime", "n")


def _random_prime_args(bits, rng) -> tuple[int, random.Random]:
    return _bits(bits, "random_prime", "bits"), _rng(rng, "random_prime")


# is_prime and random_prime are the kernel's own (a wrapper here would cost as much as an is_prime): they hand what
# their fast paths do not take to these checks.
_primes.check_is_prime, _primes.check_random_prime = _is_prime_arg, _random_prime_args


def task_number(min_bits: int, max_bits: int, factors: int = 2, rng=None) -> int:
    """The product of `factors` random primes, each of a size drawn uniformly from [min_bits, max_bits]."""
    return _task_numbers(1, *_task_args("task_number", min_bits, max_bits, factors, rng))[0]


def task_numbers(count: int, min_bits: int, max_bits: int, factors: int = 2, rng=None) -> list[int]:
    """`count` task numbers: what `count` calls of task_number draw from `rng`, with the arguments checked once."""
    count = _integer(count, "task_numbers", "count")
    if count < 0:
        raise ValueError(f"task_numbers: count must be >= 0, got {count}")
    return _task_numbers(count, *_task_args("task_numbers", min_bits, max_bits, factors, rng))


def _task_args(func: str, min_bits, max_bits, factors, rng) -> tuple[int, int, int, random.Random]:
    low, high = _bits(min_bits, func, "min_bits"), _bits(max_bits, func, "max_bits")
    if low > high:
        raise ValueError(f"{func}: min_bits ({low}) must not exceed max_bits ({high})")
    k = _integer(factors, func, "factors")
    if k < 1:
        raise ValueError(f"{func}: factors must be >= 1, got {k}")
    return low, high, k, _rng(rng, func)


def _task_numbers(count: int, low: int, high: int, k: int, rng: random.Random) -> list[int]:
    prime, size = _primes.random_prime, rng.randint
    if k == 2:  # the usual task, without a generator per number: half the cost of drawing it
        return [prime(size(low, high), rng) * prime(size(low, high), rng) for _ in range(count)]
    return [math.prod([prime(size(low, high), rng) for _ in range(k)]) for _ in range(count)]


def factorize(n: int, *, budget: float | None = None, max_iterations: int | None = None) -> list[int]:
    """The sorted prime factors of n >= 1 with multiplicity (factorize(1) == []).

    `budget` bounds the time in seconds (monotonic clock), `max_iterations` the number of
    Pollard rho steps; past either, BudgetExceeded carries the factors found so far.
    """
    if type(n) is int and n > 0 and max_iterations is None:  # the fast paths: the worker's, a task at a time
        if budget is None:
            found, rest = _primes.factor(n, math.inf, _UNLIMITED_STEPS)
            found.sort()
            return found
        if type(budget) is float and budget > 0:
            found, rest = _primes.factor(n, time.monotonic() + budget, _UNLIMITED_STEPS)
            if rest > 1:
                raise BudgetExceeded(n, found, rest, _describe(budget, None))
            found.sort()
            return found
    n = _integer(n, "factorize", "n")
    if n < 1:
        raise ValueError(f"factorize: n must be >= 1, got {n}")
    deadline = math.inf if budget is None else time.monotonic() + _seconds(budget)
    steps = _UNLIMITED_STEPS if max_iterations is None else _steps(max_iterations)
    found, rest = _primes.factor(n, deadline, steps)
    if rest > 1:
        raise BudgetExceeded(n, found, rest, _describe(budget, max_iterations))
    found.sort()
    return found


def factor_run(numbers: list[int], budget: float,
               began: float) -> tuple[list[list[int]], list[float], list[float], BudgetExceeded | None]:
    """Factorize many numbers in one C loop: the sorted prime factors of numbers[:k] and the start and end of each
    (time.time(); the first starts at `began`, each one where the last ended), for the longest run of ints in
    [1, 2^64) factored within `budget` seconds each; and the BudgetExceeded of numbers[k] when that is where it
    stopped. The caller takes numbers[k:] one by one (k == len(factors))."""
    factors, started, completed, over = _primes.factor_run(numbers, _seconds(budget), began)
    if over is not None:
        over = BudgetExceeded(numbers[len(factors)], *over, _describe(budget, None))
    return factors, started, completed, over


def _seconds(budget) -> float:
    if isinstance(budget, bool) or not isinstance(budget, (int, float)):
        raise TypeError(f"factorize: budget must be a number of seconds or None, "
                        f"got {type(budget).__name__} {budget!r}")
    if not budget > 0:
        raise ValueError(f"factorize: budget must be > 0 seconds, got {budget}")
    return float(budget)


def _steps(max_iterations) -> int:
    steps = _integer(max_iterations, "factorize", "max_iterations")
    if not 1 <= steps <= _UNLIMITED_STEPS:
        raise ValueError(f"factorize: max_iterations must be in [1, 2^63 - 1], got {steps}")
    return steps


def _describe(budget, max_iterations) -> str:
    parts = [f"{budget} s" if budget is not None else "",
             f"{max_iterations} rho steps" if max_iterations is not None else ""]
    return " or ".join(p for p in parts if p)
