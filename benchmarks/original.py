"""The original project's algorithms (asksac/AWSGridWithSQS), written fresh as the benchmark's baseline.

Generation (its producer): a uniform random number of the size until one passes trial
division by the primes below 1000 and then Miller-Rabin with 5 random bases. Factorization
(its worker): Pollard's rho from x = 2 with c = 1 and Brent's cycle search (the anchor
moves at powers of two), a gcd after every step, no primality test first; each divisor it
returns is kept as found, unsplit, and the search goes on with the cofactor. So a prime
costs a whole rho cycle, and some composites come back as "factors" (4 -> [4]).
"""
import math
import random

LOW_PRIMES = [p for p in range(2, 1000) if all(p % d for d in range(2, math.isqrt(p) + 1))]


def miller_rabin(n: int, rng: random.Random, rounds: int = 5) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x == 1:
            continue
        i = 0
        while x != n - 1:
            if i == s - 1:
                return False
            i += 1
            x = x * x % n
    return True


def is_prime(n: int, rng: random.Random) -> bool:
    if n < 2:
        return False
    if n in LOW_PRIMES:  # a list, as the original scanned it
        return True
    for p in LOW_PRIMES:
        if n % p == 0:
            return False
    return miller_rabin(n, rng)


def random_prime(bits: int, rng: random.Random) -> int:
    while True:
        n = rng.randrange(1 << (bits - 1), 1 << bits)
        if is_prime(n, rng):
            return n


def pollard_rho(n: int) -> int:
    """A divisor d > 1 of n; d == n when rho finds nothing smaller (always for a prime)."""
    anchor = x = 2
    length, d = 2, 1
    while d == 1:
        for _ in range(length):
            x = (x * x + 1) % n
            d = math.gcd(x - anchor, n)
            if d > 1:
                break
        length *= 2
        anchor = x
    return d


def factorize(n: int) -> list[int]:
    factors = []
    while n > 1:
        d = pollard_rho(n)
        factors.append(d)
        n //= d
    return factors
