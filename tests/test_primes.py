"""The kernel against sympy, on hard cases, bad arguments and budgets."""
import ast
import contextlib
import inspect
import math
import pathlib
import random
import subprocess
import sys
import threading
import time

import pytest
import sympy
from hypothesis import given, settings, strategies as st

from grid import _primes
from grid.primes import BudgetExceeded, factorize, is_prime, random_prime, task_number, task_numbers

U64 = 1 << 64
P64 = U64 - 59  # the largest prime below 2^64


def expected(n):
    return sympy.factorint(n, multiple=True)


@settings(max_examples=1500, deadline=None)
@given(st.integers(min_value=1, max_value=U64 - 1))
def test_factorize_matches_sympy_below_2_64(n):
    assert factorize(n) == expected(n)


@st.composite
def products_with_small_second_factor(draw):
    """(n, primes): n < 2^160 whose second-largest prime factor is below 2^40."""
    small = draw(st.lists(st.integers(1, 2**40 - 88), max_size=4))
    primes = [sympy.nextprime(x) for x in small]  # the largest prime below 2^40 is 2^40 - 87
    room = 160 - math.prod(primes).bit_length()
    primes.append(sympy.nextprime(draw(st.integers(1, 2**room))))
    return math.prod(primes), sorted(primes)


@settings(max_examples=60, deadline=None)
@given(products_with_small_second_factor())
def test_factorize_products_up_to_2_160(case):
    n, primes = case
    assert factorize(n) == primes


@settings(max_examples=3000, deadline=None)
@given(st.integers(min_value=-10, max_value=U64 - 1))
def test_is_prime_matches_sympy_below_2_64(n):
    assert is_prime(n) == sympy.isprime(n)


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=U64, max_value=2**400))
def test_is_prime_matches_sympy_above_2_64(n):
    assert is_prime(n) == sympy.isprime(n)


@settings(max_examples=200, deadline=None)
@given(st.integers(65, 400), st.integers(0, 2**32))
def test_is_prime_accepts_sympy_primes(bits, seed):
    random.seed(seed)
    assert is_prime(sympy.randprime(2**(bits - 1), 2**bits))


@settings(max_examples=3000, deadline=None)
@given(st.integers(min_value=0, max_value=2**32))
def test_is_prime_matches_sympy_below_2_32(n):
    assert is_prime(n) == sympy.isprime(n)


@settings(max_examples=1500, deadline=None)
@given(st.integers(min_value=-2**36, max_value=2**36), st.sampled_from([2**32, 2**60, 2**61, 2**62, 2**63]))
def test_is_prime_matches_sympy_around_the_bounds_of_its_paths(offset, bound):
    """Below 2^62 the base-2 test runs on values in [0, 2n) with no final subtraction: its edges, and 2^32's."""
    n = bound + offset
    assert is_prime(n) == sympy.isprime(n)


def test_is_prime_of_the_primes_just_below_2_62_and_their_products():
    below = [p for p in range(2**62 - 2000, 2**62) if sympy.isprime(p)]
    assert below and all(is_prime(p) for p in below)
    assert not any(is_prime(p * q) for p, q in zip([3, 5, 7, 4294967291], below))


def sprp2(n):
    """Strong probable prime to base 2, from the definition (odd n > 2): the reference for the table."""
    s = ((n - 1) & -(n - 1)).bit_length() - 1
    x = pow(2, (n - 1) >> s, n)
    if x == 1:
        return True
    for _ in range(s):
        if x == n - 1:
            return True
        x = x * x % n
    return False


def _strong_pseudoprimes(low, count):
    """The first `count` n = p (2p - 1) >= low that pass the base-2 strong test (p and 2p - 1 prime; 2 a square
    mod 2p - 1 makes most of them Fermat pseudoprimes, and some strong ones): composites that only Lucas rejects."""
    out, p = [], sympy.nextprime(math.isqrt(low // 2) + 1)
    while len(out) < count:
        if sympy.isprime(2 * p - 1) and sprp2(p * (2 * p - 1)):
            out.append(p * (2 * p - 1))
        p = sympy.nextprime(p)
    return out


def _pair_cases():
    """Numbers for the tests side by side: both sides of 2^32 (the table), 2^60 (pairs, lazy doublings) and 2^62,
    257^2 (the screen's end), small numbers and primes, the table's pseudoprimes and strong pseudoprimes above 2^32."""
    cases = [0, 1, 2, 3, 4, 5, 9, 61, 63, 64, 65, 251, 257, 65537, 257**2, 257**2 + 2, 257 * 263, 2**61 - 1, P64]
    for bound in (2**32, 2**60, 2**62):
        cases += [bound + k for k in range(-40, 41)] + [sympy.prevprime(bound), sympy.nextprime(bound)]
    cases += list(_primes._SPSP2_32[::97]) + _strong_pseudoprimes(2**33, 3) + _strong_pseudoprimes(2**59, 3)
    return [n for n in cases if 0 <= n < U64]


def test_strong_pseudoprimes_above_2_32_pass_base_2_and_are_composite():
    for low in (2**33, 2**59):
        for n in _strong_pseudoprimes(low, 3):
            assert n > low and sprp2(n) and not sympy.isprime(n) and not is_prime(n)


def test_two_primality_tests_side_by_side_answer_as_each_alone():
    """is_prime64_pair: both base-2 tests at once when both n pass the small primes and lie below 2^60, each
    ending in the table or Lucas; otherwise each alone. Every pair of the cases, in both orders."""
    cases = _pair_cases()
    truth = {n: sympy.isprime(n) for n in cases}
    rng = random.Random(14)
    for a in cases:
        for b in rng.sample(cases, 25) + [a]:
            assert _primes._is_prime_pair(a, b) == (truth[a], truth[b]), (a, b)


@settings(max_examples=1500, deadline=None)
@given(st.integers(2**19, 2**60 + 2**20), st.integers(2**19, 2**60 + 2**20))
def test_two_primality_tests_side_by_side_match_sympy(a, b):
    assert _primes._is_prime_pair(a | 1, b | 1) == (sympy.isprime(a | 1), sympy.isprime(b | 1))


def test_factor_run_answers_runs_of_primes_composites_and_pseudoprimes_two_at_a_time():
    """factor_run tests its numbers two at a time: runs of every length and phase, ending in a number that stops
    it at each place (an even or odd index: the second of a pair, or the first)."""
    from grid.primes import factor_run

    cases = _pair_cases()[:200] + [15, 7, 2**64 - 1, 1, 4294967291 * 4294967279]
    cases = [n for n in cases if n >= 1]
    rng = random.Random(7)
    for length in range(0, 12):
        for stop in (None, 0, 2**64, "15", 1.0):
            numbers = [rng.choice(cases) for _ in range(length)]
            end = numbers + ([] if stop is None else [stop, 15])
            factors, started, completed, over = factor_run(end, 60.0, 0.0)
            assert over is None and factors == [expected(n) for n in numbers], end
            assert len(started) == len(completed) == length and started[1:] == completed[:-1]


def test_factor_takes_exact_ints_and_others_alike():
    """factor reads an exact int below 2^64 without a compare of objects; an int's subclass, a bool and the ints
    past 2^64 take the path of before; its list of factors is left out of the collector's sight as factor_run's."""
    import gc

    class Int(int):
        pass

    for n in (15, 2**64 - 1, 2**64, 2**64 + 1, P64, P64 * 3, 2**61 - 1):
        found, rest = _primes.factor(n, math.inf, UNLIMITED)
        assert sorted(found) == expected(n) and rest == 1
        assert sorted(_primes.factor(Int(n), math.inf, UNLIMITED)[0]) == expected(n)
    assert _primes.factor(True, math.inf, UNLIMITED) == ([], 1)
    assert not gc.is_tracked(_primes.factor(2**64 - 1, math.inf, UNLIMITED)[0])


def test_sprp2_reference_knows_the_first_strong_pseudoprimes():
    odd_composites = [n for n in range(3, 50_000, 2) if not sympy.isprime(n)]
    assert [n for n in odd_composites if sprp2(n)] == [2047, 3277, 4033, 4681, 8321, 15841, 29341, 42799,
                                                       49141]


def test_strong_pseudoprime_table_holds_composites_that_pass_base_2():
    table = _primes._SPSP2_32
    assert list(table) == sorted(set(table)) and table[-1] < 2**32
    small = list(sympy.primerange(3, 257))
    for n in table:
        assert sprp2(n) and not sympy.isprime(n) and all(n % p for p in small), n
        assert not is_prime(n)


def test_is_prime_is_exact_below_200000():
    sieve = set(sympy.primerange(0, 200_000))
    assert [n for n in range(200_000) if is_prime(n)] == sorted(sieve)


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 300), st.integers(0, 2**64))
def test_random_prime_is_a_prime_of_the_size(bits, seed):
    p = random_prime(bits, seed)
    assert p.bit_length() == bits and sympy.isprime(p)
    assert random_prime(bits, random.Random(seed)) == p


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**200), st.integers(0, 2**10))
def test_next_prime_is_sympys_next_prime(start, width):
    p = _primes.next_prime(start, start + width)
    following = sympy.nextprime(start - 1) if start > 0 else 2
    assert p == (following if following <= start + width else None)


@pytest.mark.parametrize("bits", [2, 3, 20, 63, 64, 65, 127, 128, 129, 4096])
def test_random_prime_size_classes(bits):
    p = random_prime(bits, rng=bits)
    assert p.bit_length() == bits and is_prime(p)
    if bits < 1000:
        assert sympy.isprime(p)


def test_random_prime_of_2_bits_draws_both():
    assert {random_prime(2, seed) for seed in range(50)} == {2, 3}


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 40), st.integers(0, 20), st.integers(1, 4), st.integers(0, 2**32))
def test_task_number_is_a_product_of_primes_of_the_sizes(low, extra, count, seed):
    high = min(low + extra, 40)
    n = task_number(low, high, count, rng=seed)
    primes = factorize(n)
    assert len(primes) == count
    assert all(low <= p.bit_length() <= high for p in primes)
    assert task_number(low, high, count, rng=random.Random(seed)) == n



@settings(max_examples=50, deadline=None)
@given(st.integers(0, 30), st.integers(2, 40), st.integers(0, 20), st.integers(1, 4), st.integers(0, 2**32))
def test_task_numbers_draw_what_as_many_task_number_calls_draw(count, low, extra, factors, seed):
    high = min(low + extra, 40)
    one_by_one = random.Random(seed)
    expected = [task_number(low, high, factors, rng=one_by_one) for _ in range(count)]
    assert task_numbers(count, low, high, factors, rng=seed) == expected


CARMICHAEL = [561, 1105, 1729, 2465, 2821, 6601, 8911, 41041, 825265, 321197185,
              5394826801, 232250619601, 9746347772161]
STRONG_PSEUDOPRIMES_BASE_2 = [2047, 3277, 4033, 4681, 8321, 3215031751, 2152302898747,
                              3474749660383, 341550071728321, 3825123056546413051,
                              318665857834031151167461]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 12, 25, 2**64 - 1, 2**64 + 1, P64, P64**2, P64 * 3,
                               2**127 - 1, (2**127 - 1) * 5, 2**64 * 3**5 * 1009**3]
                         + CARMICHAEL + STRONG_PSEUDOPRIMES_BASE_2)
def test_hard_cases(n):
    assert factorize(n) == expected(n)
    assert is_prime(n) == sympy.isprime(n)


@pytest.mark.parametrize("n", STRONG_PSEUDOPRIMES_BASE_2 + CARMICHAEL)
def test_pseudoprimes_are_composite(n):
    assert not is_prime(n)


@pytest.mark.parametrize("p", [1009, 65521, 4294967291, 2**61 - 1, P64])
@pytest.mark.parametrize("k", [2, 3, 5, 7])
def test_prime_powers(p, k):
    assert factorize(p**k) == [p] * k
    assert not is_prime(p**k)


@pytest.mark.parametrize("powers", [{1009: 4, 1013: 3}, {1009: 3, 1013: 2, 1019: 2}, {1031: 3, 1033: 2},
                                    {4099: 5, 4111: 2}, {65537: 7}, {1013: 7, 3: 1}])
def test_powers_of_small_primes_that_every_ecm_curve_meets_at_once(powers):
    """Every curve's point reaches (0 : 0) modulo each of these primes, and the gcd is n: rho takes over."""
    n = math.prod(p**k for p, k in powers.items())
    assert factorize(n) == expected(n)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(2**19, 2**32), min_size=2, max_size=3))
def test_products_of_20_to_32_bit_primes(starts):
    """The 64-bit ECM (Suyama's curves) from 2^40 on, rho and Hart below."""
    primes = sorted(sympy.nextprime(x) for x in starts)
    assert factorize(math.prod(primes)) == primes


@settings(max_examples=200, deadline=None)
@given(st.integers(2**28, 2**31), st.integers(-2**20, 2**20))
def test_semiprimes_around_2_60(p, offset):
    """ECM below 2^60 never reduces its sums and differences (values below 4n), above it does: both sides."""
    p = sympy.nextprime(p)
    q = sympy.nextprime(max(2, (2**60 + offset * 2**30) // p))
    assert factorize(p * q) == sorted([p, q])


@settings(max_examples=40, deadline=None)
@given(st.integers(2**30, 2**36), st.integers(-2**40, 2**40))
def test_products_around_2_124(p, offset):
    """The 128-bit ECM's side of the same bound: below 2^124 no reductions but the product's, above it every one."""
    p = sympy.nextprime(p)
    q = sympy.nextprime((2**124 + offset * 2**80) // p)
    assert factorize(p * q) == sorted([p, q])


@pytest.mark.parametrize("n", [(2**30 - 35) * (2**30 - 41), 1009**6, 65537**3 * 251, (2**20 - 3)**3])
def test_prime_powers_and_products_just_below_2_60(n):
    assert n < 2**60 and factorize(n) == expected(n)


def test_prac_chains_take_a_point_to_its_prime_multiple_with_every_add_knowing_its_difference():
    """_chain_ops runs the steps on integers and asserts each add's difference; the rarer rules (6-9) come from
    the other choices of v, all of which are checked."""
    rules = set()
    for q in sympy.primerange(3, 3000):
        assert _primes._chain_ops(_primes._prac_chain(q))[1] == q
        for v in _primes._PRAC_V:
            found = _primes._prac_steps(q, v)
            if found is not None:
                assert _primes._chain_ops(found[1])[1] == q
                rules |= {step & 15 for step in found[1]}
    assert set(range(1, 10)) <= rules
    assert _primes._chain_ops(_primes._prac_chain(2) * 3 + _primes._prac_chain(5))[1] == 40


@settings(max_examples=200, deadline=None)
@given(st.integers(2**30, 2**32 - 6), st.integers(2**30, 2**32 - 6))
def test_semiprimes_of_31_and_32_bit_primes_from_2_60_to_2_64(a, b):
    """The 64-bit ECM with every reduction (n from 2^60 on; B1 = 165 from 2^58, 205 from 2^62), where every
    product ends in mulm64's select between hi - qh and hi + n - qh: both sides of it, n up to 2^64."""
    primes = sorted(sympy.nextprime(x) for x in (a, b))
    assert factorize(math.prod(primes)) == primes


@pytest.mark.parametrize("bits", [40, 44, 48, 52, 58, 62])
@pytest.mark.parametrize("side", [-1, 1])
def test_semiprimes_on_each_side_of_the_bounds_of_ecms_b1(bits, side):
    """ecm64_b1 changes B1 (and its stage 2 plan) above each of these sizes: balanced n on each side of each."""
    rng = random.Random(bits * side)
    for _ in range(5):
        p = sympy.prevprime(2**(bits // 2) - rng.getrandbits(bits // 4))
        q = (sympy.nextprime if side > 0 else sympy.prevprime)(2**bits // p)
        assert (p * q > 2**bits) == (side > 0)
        assert factorize(p * q) == sorted([p, q])


UNLIMITED = (1 << 63) - 1


def _semiprimes(bits, count, seed):
    """Balanced semiprimes of about `bits` bits (both factors above 257)."""
    rng = random.Random(seed)
    out = []
    while len(out) < count:
        p = sympy.nextprime(rng.getrandbits(bits // 2) | 1 << (bits // 2 - 1))
        q = sympy.nextprime(rng.getrandbits(bits - p.bit_length()) | 1 << (bits - p.bit_length() - 1))
        if p != q and (p * q).bit_length() == bits:
            out.append(p * q)
    return out


PAIR_BOUNDS = [(59, 165, 25 * 165), (60, 165, 25 * 165), (61, 165, 25 * 165), (63, 205, 25 * 205),
               (64, 205, 25 * 205), (64, 100, 3000), (64, 1000, 25000)]


def _as_its_curves(n, d, one, two):
    """Check d against the pair's two curves' answers that split n as its own did: (lane 0 split n, lane 1 did)."""
    proper = {s for s in (one, two) if s not in (1, n)}
    assert d in proper if 1 < d < n else d == 1 or n in (one, two)
    return one in proper, two in proper


def _pairs_and_their_curves(bits, b1, b2):
    """(n, the pair's answer on c and c + 1, its two curves' answers) over a few semiprimes and curves."""
    for n in _semiprimes(bits, 12, bits * b1):
        for c in range(1, 80, 2):
            d, over = _primes._ecm64(n, c, b1, b2, UNLIMITED, True)
            assert not over and d and n % d == 0
            yield n, d, [_primes._ecm64(n, k, b1, b2, UNLIMITED, False)[0] for k in (c, c + 1)]


@pytest.mark.parametrize("bits, b1, b2", [(bits, b1, 1) for bits, b1, _ in PAIR_BOUNDS])
def test_a_pair_of_64_bit_curves_answers_as_one_of_its_two_curves_would(bits, b1, b2):
    """ecm64_pair runs the curves c and c + 1 side by side (factor takes it from 2^60 on; on either side of that
    here): after stage 1 (b2 = 1: no stage 2) its answer is 1 when both curves' are, a proper divisor only
    when one of theirs is (either, when both split n), n only when a curve met every prime of n at once. A lane
    alone splitting n occurs."""
    seen = set()
    for n, d, (one, two) in _pairs_and_their_curves(bits, b1, b2):
        assert (d == 1) == (one == two == 1)
        seen.add(_as_its_curves(n, d, one, two))
    assert seen & {(False, True), (True, False)}  # one lane alone splits n


@pytest.mark.parametrize("bits, b1, b2", PAIR_BOUNDS + [(40, 7, 3000)])
def test_a_pair_s_stage_2_meets_the_primes_its_curves_meet(bits, b1, b2):
    """The pair's stage 2 (baby and giant steps made z = 1, a giant step of 120 where its curves' is 60 below
    B2 = 20,000, 210 above) meets the same primes of (b1, b2] as its two curves: their answers differ only where
    a point's order is a composite beside such a prime (vD +- u), which the two giant steps pair differently.
    With the bounds of ecm64_b1 and their plans, bounds with no plan (100, 3000), the 210 step's (1000) and a B1 of 7,
    whose points' small orders (11 to 23) can put a giant step at infinity (its z not invertible: the two-product
    stage 2 takes over). Where they agree, the pair answers as one of its curves would; both curves splitting n occurs, and
    one of them."""
    cases, differ, seen = 0, 0, set()
    for n, d, (one, two) in _pairs_and_their_curves(bits, b1, b2):
        cases += 1
        if (d == 1) != (one == two == 1):
            differ += 1
        else:
            seen.add(_as_its_curves(n, d, one, two))
    assert differ <= cases // 50 and {(True, True), (False, True)} <= seen


def test_pairs_of_64_bit_curves_stop_on_their_budget():
    """Both stages of a pair charge the budget (a stage 1 chunk of 12 steps a bit; in stage 2 8 a giant step made,
    two a pair), and ecm_until_split stops on it, by steps or by the clock, on a prime that no curve splits."""
    n = next(n for n in _semiprimes(64, 20, 7) if _primes._ecm64(n, 1, 205, 25 * 205, UNLIMITED, True)[0] == 1)
    answers = [_primes._ecm64(n, 1, 205, 25 * 205, steps, True) for steps in range(100, 8000, 100)]
    assert answers[0] == (0, True) and answers[-1] == (1, False)
    first = answers.index((1, False))
    assert set(answers[:first]) == {(0, True)} and set(answers[first:]) == {(1, False)}
    assert 100 * (first + 1) > 12 * 298  # more than stage 1 charges at most (12 a bit of lcm(1..205), 298 bits)
    assert _primes._ecm_until_split(P64, 205, 25 * 205, math.inf, 1_000_000) == (0, True)
    began = time.monotonic()
    assert _primes._ecm_until_split(P64, 205, 25 * 205, began + 0.05, UNLIMITED) == (0, True)


@pytest.mark.parametrize("bits, b1, twin", [(44, 47, 48), (52, 85, 86), (58, 125, 126), (60, 165, 166),
                                            (64, 205, 206)])
def test_stage_1_on_a_plan_s_chunks_from_z_1_meets_what_the_ladder_over_the_primes_meets(bits, b1, twin):
    """With a plan (the B1 of ecm64_b1), stage 1 runs its odd chunks, the first from the curve's start point with
    z = 1 (one product a bit fewer), then its power of 2 by doublings; with a B1 of no plan, the ladders over the
    prime powers in turn. `twin` is no prime power, so lcm(1..twin) = lcm(1..b1): each curve (and pair) gives the
    same answer both ways, the stage 2 of the same primes (its masks made on the spot for the twin) included."""
    for n in _semiprimes(bits, 6, b1):
        for c in range(1, 40):
            for b2 in (1, 25 * b1):
                for pair in (False, True):
                    assert (_primes._ecm64(n, c, b1, b2, UNLIMITED, pair)
                            == _primes._ecm64(n, c, twin, b2, UNLIMITED, pair)), (n, c, b2, pair)


def test_single_64_bit_curves_stop_on_their_budget():
    """A curve's stage 1 on its plan charges 6 steps a bit of lcm(1..b1) (chunks and doublings), its stage 2 more:
    past the budget the answer is (0, True), and once a budget suffices every larger one gives the same answer."""
    n = next(n for n in _semiprimes(52, 20, 5) if _primes._ecm64(n, 1, 85, 25 * 85, UNLIMITED, False)[0] == 1)
    answers = [_primes._ecm64(n, 1, 85, 25 * 85, steps, False) for steps in range(50, 3000, 50)]
    first = answers.index((1, False))
    assert set(answers[:first]) == {(0, True)} and set(answers[first:]) == {(1, False)}
    assert 50 * (first + 1) > 6 * 123  # lcm(1..85) has 123 bits


def test_semiprimes_just_below_2_64():
    primes = [4294967291, 4294967279, 4294967231, 4294967197]
    for p in primes:
        for q in primes:
            assert factorize(p * q) == sorted([p, q])


@pytest.mark.parametrize("seed", range(3))
def test_semiprimes_of_40_bit_primes(seed):
    rng = random.Random(seed)
    p, q = (sympy.nextprime(2**39 + rng.getrandbits(38)) for _ in range(2))
    assert factorize(p * q) == sorted([p, q])
    assert factorize(p * q * 2**70) == [2] * 70 + sorted([p, q])


@settings(max_examples=40, deadline=None)
@given(st.integers(2**32, 2**46), st.integers(2**32, 2**46))
def test_products_of_33_to_47_bit_primes_on_suyamas_128_bit_curves(a, b):
    """n from 2^64 on: the 128-bit ECM on Suyama's curves, each set up with a 128-bit inverse."""
    primes = sorted(sympy.nextprime(x) for x in (a, b))
    assert factorize(math.prod(primes)) == primes


@pytest.mark.parametrize("n", [sympy.nextprime(2**32) * sympy.nextprime(2**32 + 2**20), 2**64 + 13,
                               sympy.prevprime(2**40) * sympy.nextprime(2**24) * sympy.nextprime(2**30)])
def test_composites_just_above_2_64(n):
    assert n > 2**64 and factorize(n) == expected(n)


@pytest.mark.parametrize("powers", [{1009: 7, 1013: 3}, {65537: 5}, {4099: 5, 4111: 2, 1019: 2}])
def test_powers_of_small_primes_that_every_128_bit_curve_meets_at_once(powers):
    n = math.prod(p**k for p, k in powers.items())
    assert n > 2**64 and factorize(n) == expected(n)


@pytest.mark.parametrize("n", [2**64 + 13, 10**30 + 7, 2**300 + 1])
def test_big_composites_match_sympy(n):
    assert factorize(n) == expected(n)


@contextlib.contextmanager
def gmpy2_absent():
    """The big-integer path as it runs where gmpy2 is not installed."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_primes, "gmpy2", None)
        patch.setattr(_primes, "_mpz", int)
        yield


@pytest.fixture
def without_gmpy2():
    with gmpy2_absent():
        yield


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=2**128, max_value=2**300))
def test_is_prime_without_gmpy2_matches_sympy(n):
    with gmpy2_absent():
        assert is_prime(n) == sympy.isprime(n)


@pytest.mark.parametrize("n", [sympy.nextprime(2**200) * 1031**2 * 65537,
                               sympy.nextprime(2**150) ** 2, 3**5 * sympy.nextprime(2**70) ** 3])
def test_factorize_without_gmpy2(without_gmpy2, n):
    assert factorize(n) == expected(n)


def test_random_prime_without_gmpy2(without_gmpy2):
    p = random_prime(300, 1)
    assert p.bit_length() == 300 and sympy.isprime(p)


@pytest.mark.parametrize("func, args, error, words", [
    (factorize, (2.0,), TypeError, ["n", "int", "float"]),
    (factorize, ("12",), TypeError, ["n", "int", "str"]),
    (factorize, (True,), TypeError, ["n", "int", "bool"]),
    (factorize, (0,), ValueError, ["n", ">= 1", "0"]),
    (factorize, (-12,), ValueError, ["n", ">= 1", "-12"]),
    (is_prime, (3.0,), TypeError, ["n", "int", "float"]),
    (is_prime, ("3",), TypeError, ["n", "int", "str"]),
    (random_prime, (1,), ValueError, ["bits", "[2, 4096]", "1"]),
    (random_prime, (4097,), ValueError, ["bits", "[2, 4096]", "4097"]),
    (random_prime, (20.0,), TypeError, ["bits", "int", "float"]),
    (random_prime, (20, "seed"), TypeError, ["rng", "random.Random", "str"]),
    (random_prime, (20, 1.5), TypeError, ["rng", "seed", "float"]),
    (task_number, (30, 20), ValueError, ["min_bits", "max_bits", "30", "20"]),
    (task_number, (1, 20), ValueError, ["min_bits", "[2, 4096]"]),
    (task_number, (20, 30, 0), ValueError, ["factors", ">= 1", "0"]),
    (task_number, (20, 30, 2.0), TypeError, ["factors", "int", "float"]),
    (task_numbers, (-1, 20, 30), ValueError, ["task_numbers", "count", ">= 0", "-1"]),
    (task_numbers, (2, 30, 20), ValueError, ["task_numbers", "min_bits", "30"]),
])
def test_bad_arguments_are_named(func, args, error, words):
    with pytest.raises(error) as caught:
        func(*args)
    assert all(word in str(caught.value) for word in words), str(caught.value)


@pytest.mark.parametrize("kwargs, error, words", [
    ({"budget": 0}, ValueError, ["budget", "> 0", "0"]),
    ({"budget": -1.5}, ValueError, ["budget", "-1.5"]),
    ({"budget": 0.0}, ValueError, ["budget", "> 0", "0.0"]),
    ({"budget": float("nan")}, ValueError, ["budget", "nan"]),
    ({"budget": "1"}, TypeError, ["budget", "seconds", "str"]),
    ({"budget": True}, TypeError, ["budget", "bool"]),
    ({"max_iterations": 0}, ValueError, ["max_iterations", "0"]),
    ({"max_iterations": 1.0}, TypeError, ["max_iterations", "int", "float"]),
])
def test_bad_budgets_are_named(kwargs, error, words):
    with pytest.raises(error) as caught:
        factorize(12, **kwargs)
    assert all(word in str(caught.value) for word in words), str(caught.value)


P32 = sympy.prevprime(2**32)
HARD_64 = P32 * sympy.prevprime(P32)
# Two 64-bit primes that the 128-bit ECM takes ~1.3 s to split, the slowest of 120 random pairs (its curves are seeded:
# the same on every run). With Suyama's curves it splits prevprime(2**62) * prevprime(2**64) in 0.18 s.
HARD_128 = 10525254006057215129 * 17399717979334355909
HARD_BIG = HARD_128 * (2**127 - 1) * 2**3 * 1031
SLOW_64 = (2**32 - 923) * (2**32 - 929)  # ECM's first curves miss both factors: ~60,000 steps to split


@pytest.mark.parametrize("n, limit", [
    (HARD_64, {"max_iterations": 1000}),
    (HARD_128, {"max_iterations": 1000}),
    (HARD_128, {"budget": 0.001}),
    (HARD_BIG, {"max_iterations": 1000}),
    (HARD_BIG, {"budget": 0.001}),
])
def test_budget_exceeded_carries_the_partial_result(n, limit):
    with pytest.raises(BudgetExceeded) as caught:
        factorize(n, **limit)
    partial = caught.value
    assert math.prod(partial.factors) * partial.remainder == n
    assert all(sympy.isprime(p) for p in partial.factors)
    assert partial.remainder > 1 and str(n) in str(partial)


def test_budget_large_enough_changes_nothing():
    n = 4294967291 * 4294967279
    assert factorize(n, budget=60.0, max_iterations=10**9) == [4294967279, 4294967291]


def _factorize_hard_128():
    with pytest.raises(BudgetExceeded):
        factorize(HARD_128, budget=0.3)


def _pairs_of_64_bit_curves_on_a_prime():
    assert _primes._ecm_until_split(P64, 205, 25 * 205, time.monotonic() + 0.3, UNLIMITED) == (0, True)


@pytest.mark.parametrize("in_kernel", [_factorize_hard_128, _pairs_of_64_bit_curves_on_a_prime])
def test_kernel_releases_the_gil(in_kernel):
    """A Python thread keeps counting while the main thread spends 0.3 s in the kernel (the 128-bit ECM; the
    64-bit one's pairs of curves, which never split a prime).

    The control, a builtin that holds the GIL about as long, lets it count only in the
    moments around the call (a few ms at most on a loaded machine).
    """
    counts, stop = [0], threading.Event()

    def count():
        while not stop.is_set():
            counts[0] += 1

    with_gil = _count_during(lambda: sum(range(10_000_000)), counts, count, stop)
    stop.clear()
    without_gil = _count_during(in_kernel, counts, count, stop)
    assert without_gil > 5 * max(with_gil, 1000)


def _count_during(call, counts, count, stop):
    import sys
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    thread = threading.Thread(target=count)
    try:
        thread.start()
        while counts[0] == 0:
            pass
        before = counts[0]
        call()
        after = counts[0]
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    counts[0] = 0
    return after - before


values = st.integers(1, 2**64 - 1) | st.integers(2**64, 2**80) | st.integers(-5, 0) | st.sampled_from([1.5, "15", True])


@settings(max_examples=300, deadline=None)
@given(st.lists(values, max_size=8), st.floats(0, 1e9))
def test_factor_run_answers_the_longest_run_of_64_bit_ints_as_sympy_does_with_chained_times(numbers, began):
    from grid.primes import factor_run

    factors, started, completed, over = factor_run(numbers, 60.0, began)
    k = next((i for i, n in enumerate(numbers) if type(n) is not int or not 1 <= n < 2**64), len(numbers))
    assert over is None and len(factors) == k
    assert factors == [sympy.factorint(n, multiple=True) for n in numbers[:k]]
    assert all(type(p) is int for found in factors for p in found)
    assert started[:1] == [began][:k] and started[1:] == completed[:-1]
    assert all(s <= c for s, c in zip(started, completed))


def test_factor_run_reads_the_clock_after_its_last_number_whatever_came_before():
    """Primes read the clock only every few numbers: the end of a run of them is read all the same, on both exits."""
    from grid.primes import factor_run

    long_ago = time.time() - 1000.0
    for numbers in ([7] * 21, [15] + [7] * 10, [7, 15, 7, 7]):
        before = time.time()
        factors, started, completed, over = factor_run(numbers, 60.0, long_ago)
        assert over is None and factors == [expected(n) for n in numbers]
        assert started[0] == long_ago and started[1:] == completed[:-1]
        assert all(s <= c for s, c in zip(started, completed)) and before <= completed[-1] <= time.time()
    before = time.time()
    factors, started, completed, over = factor_run([7, 11, SLOW_64], 1e-6, long_ago)
    assert factors == [[7], [11]] and over is not None and before <= completed[-1] <= time.time()


def test_factor_run_leaves_its_lists_of_ints_to_reference_counting():
    """They cannot be in a cycle; the worker keeps them until it sends them, and tracked they cost full collections."""
    import gc
    from grid.primes import factor_run

    factors, _, _, _ = factor_run([15, 7, 2**64 - 1, 1], 60.0, 0.0)
    assert factors == [[3, 5], [7], sympy.factorint(2**64 - 1, multiple=True), []]
    assert not any(gc.is_tracked(found) for found in factors)


def test_factor_run_stops_at_the_number_past_its_budget_with_what_factorize_would_raise():
    from grid.primes import factor_run

    with pytest.raises(BudgetExceeded):  # the clock is read every few thousand steps: SLOW_64 takes many more
        factorize(SLOW_64, max_iterations=20_000)
    factors, started, completed, over = factor_run([15, SLOW_64, 21], 1e-6, 0.0)
    assert factors == [[3, 5]] and len(completed) == 1
    assert isinstance(over, BudgetExceeded) and over.n == SLOW_64
    assert math.prod(over.factors) * over.remainder == SLOW_64 and "1e-06 s" in str(over)


def test_the_kernel_imports_nothing_of_the_grid_above_it():
    code = "import sys, grid._primes; print(sorted(m for m in sys.modules if m.startswith('grid')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert ast.literal_eval(out) == ["grid", "grid._primes"]


def test_the_kernel_stub_names_what_the_kernel_defines():
    stub = ast.parse((pathlib.Path(_primes.__file__).parent / "_primes.pyi").read_text())
    stubbed = {node.name: [a.arg for a in node.args.args] for node in stub.body if isinstance(node, ast.FunctionDef)}
    stubbed |= {node.target.id: None for node in stub.body if isinstance(node, ast.AnnAssign)}
    public = {name: list(inspect.signature(v).parameters) if getattr(v, "__module__", None) == "grid._primes" else None
              for name, v in vars(_primes).items() if not name.startswith("_") and not inspect.ismodule(v)}
    assert stubbed == public
