# cython: language_level=3
"""Placeholder kernel, replaced by the real one in the kernel work."""

def is_prime(n):
    if n < 2:
        return False
    d = 2
    while d * d <= n:
        if n % d == 0:
            return False
        d += 1
    return True
