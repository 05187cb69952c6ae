"""The original project's algorithms, written fresh as the benchmark's baseline.

Generation: random odd numbers of the size until one passes Miller-Rabin with 5 random
bases. Factorization: Pollard's rho (Floyd's cycle finding, a gcd at every step) on n
itself, with no primality test first, so a prime is only recognised when rho returns n.
"""
import math
import random


def miller_rabin(n: int, rng: random.Random, rounds: int = 5) -> bool:
    if n < 4:
        return n in (2, 3)
    if n % 2 == 0:
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def random_prime(bits: int, rng: random.Random) -> int:
    while True:
        n = rng.getrandbits(bits) | (1 << (bits - 1)) | 1
        if miller_rabin(n, rng):
            return n


def pollard_rho(n: int, c: int = 1) -> int:
    x = y = 2
    d = 1
    while d == 1:
        x = (x * x + c) % n
        y = (y * y + c) % n
        y = (y * y + c) % n
        d = math.gcd(abs(x - y), n)
    return d


def factorize(n: int) -> list[int]:
    if n == 1:
        return []
    if n % 2 == 0:
        return [2] + factorize(n // 2)
    if n < 4:
        return [n]
    d = pollard_rho(n)
    if d == n:
        return [n]
    return sorted(factorize(d) + factorize(n // d))
