# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The factorization kernel: nogil loops on uint64_t and unsigned __int128, Python ints beyond.

Layout, bottom up: small-prime tables; 64-bit Montgomery arithmetic and BPSW; the same on
128 bits; the budget; Hart's one line factoring and Brent's rho; ECM on 128 bits; the nogil
drivers that factor a whole 64- or 128-bit number; the Python-level entry points; the
Python-int path beyond 128 bits. The 64- and 128-bit functions mirror each other on purpose:
Cython has no templates, and a shared 128-bit version would slow the 64-bit path threefold.
"""
from libc.stdint cimport uint64_t, int64_t, uint32_t
from libc.math cimport sqrt, cbrt
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC

cdef extern from *:
    """
    typedef unsigned __int128 grid_u128;
    typedef __int128 grid_i128;
    static inline int grid_ctz64(unsigned long long x) { return __builtin_ctzll(x); }
    static inline int grid_clz64(unsigned long long x) { return __builtin_clzll(x); }
    static inline long double grid_sqrtl(long double x) { return __builtin_sqrtl(x); }
    static inline long double grid_cbrtl(long double x) { return __builtin_cbrtl(x); }
    """
    ctypedef unsigned long long u128 "grid_u128"
    ctypedef long long i128 "grid_i128"
    int ctz64 "grid_ctz64"(uint64_t x) noexcept nogil
    int clz64 "grid_clz64"(uint64_t x) noexcept nogil
    long double sqrtl "grid_sqrtl"(long double x) noexcept nogil
    long double cbrtl "grid_cbrtl"(long double x) noexcept nogil

DEF N_TRIAL = 172          # odd primes below 1024: tables, and trial division beyond 2^128
DEF N_TRIAL_FACTOR = 53    # odd primes below 257, divided out before any splitting
DEF N_QUICK = 53           # odd primes below 257, screened before a 64-bit primality test
DEF N_QUICK128 = 15        # odd primes up to 53, before a 128-bit test (its remainders cost more)
DEF MAX_FACTORS = 130      # a 128-bit number has at most 128 prime factors
DEF CLOCK_EVERY = 4096     # rho steps between two looks at the clock
DEF HART_BITS = 38         # below 2^38 Hart's one line factoring comes first (above, rho is faster)
DEF HART_STEPS = 4096      # for this many steps (n * 480 * HART_STEPS < 2^64)
DEF RHO_BLOCK = 128        # rho steps between two gcds
DEF WALKS = 2              # rho walks in lockstep: k walks do sqrt(k) times the work, and
                           # two keep the multiplier busy (one waits on latency, three spill)
DEF ECM64_BITS = 52        # from 2^52 on, rho hands over to ECM
DEF ECM64_AFTER = 1 << 7   # once its cycle bound passes this (it catches small factors)
DEF ECM60_B1 = 150         # ECM's bounds below 2^60 (factors of 26 to 30 bits),
DEF ECM60_B2 = 6000
DEF ECM64_B1 = 300         # and up to 2^64 (32 bits); all tuned on the benchmark's A rows
DEF ECM64_B2 = 15000
DEF ECM_AFTER = 1 << 14    # the same hand-over on 128 bits
DEF ECM_B1 = 1000          # and ECM's bounds there (tuned on 40-bit factors)
DEF ECM_B2 = 50000
DEF ECM_D = 210            # 2*3*5*7, the giant step of ECM's stage 2
DEF ECM_BABY = 52          # the odd u < ECM_D / 2

cdef uint64_t TRIAL_P[N_TRIAL]
cdef uint64_t TRIAL_INV[N_TRIAL]   # p^-1 mod 2^64: n*inv <= lim iff p divides n
cdef uint64_t TRIAL_LIM[N_TRIAL]   # (2^64 - 1) / p
cdef uint64_t SMALL_PRIME_MASK = 0x28208a20a08a28ac  # bit k set iff k < 64 is prime
cdef uint64_t SQUARES_MOD_64 = 0x202021202030213   # bit k set iff k is a square mod 64


cdef void _init_tables():
    cdef uint64_t p = 3, inv
    cdef int i = 0, k
    cdef bint prime
    while i < N_TRIAL:
        prime = True
        k = 0
        while k < i and TRIAL_P[k] * TRIAL_P[k] <= p:
            if p % TRIAL_P[k] == 0:
                prime = False
                break
            k += 1
        if prime:
            inv = p  # Newton: each step doubles the correct low bits
            for k in range(5):
                inv *= 2 - p * inv
            TRIAL_P[i] = p
            TRIAL_INV[i] = inv
            TRIAL_LIM[i] = <uint64_t>(-1) // p
            i += 1
        p += 2

_init_tables()


cdef inline bint divides(int i, uint64_t n) noexcept nogil:
    return n * TRIAL_INV[i] <= TRIAL_LIM[i]


# ---------------------------------------------------------------- 64-bit Montgomery

cdef struct Mont64:
    uint64_t n, ninv, one, two
    bint lazy  # n < 2^60: rho may skip reductions (see mulm_lazy)

cdef inline uint64_t gcd64(uint64_t a, uint64_t b) noexcept nogil:
    cdef int shift
    cdef uint64_t t
    if a == 0:
        return b
    if b == 0:
        return a
    shift = ctz64(a | b)
    a >>= ctz64(a)
    while b:
        b >>= ctz64(b)
        if a > b:
            t = a; a = b; b = t
        b -= a
    return a << shift

cdef inline uint64_t addm(uint64_t a, uint64_t b, uint64_t n) noexcept nogil:
    return a - (n - b) if a >= n - b else a + b

cdef inline uint64_t subm(uint64_t a, uint64_t b, uint64_t n) noexcept nogil:
    return a - b if a >= b else a + (n - b)

cdef inline uint64_t mulm(uint64_t a, uint64_t b, const Mont64* m) noexcept nogil:
    # REDC with n^-1 (not -n^-1): the low halves cancel exactly, so no 65-bit carry for n near 2^64
    cdef u128 t = <u128>a * b
    cdef uint64_t hi = <uint64_t>(t >> 64)
    cdef uint64_t q = <uint64_t>t * m.ninv
    cdef uint64_t qh = <uint64_t>((<u128>q * m.n) >> 64)
    return hi - qh + (m.n if hi < qh else 0)

cdef inline void mont_init(Mont64* m, uint64_t n) noexcept nogil:
    cdef uint64_t inv = n
    cdef int k
    for k in range(5):
        inv *= 2 - n * inv
    m.n = n
    m.ninv = inv
    m.one = (<uint64_t>0 - n) % n
    m.two = addm(m.one, m.one, n)
    m.lazy = (n >> 60) == 0

cdef inline uint64_t to_mont_small(uint64_t a, const Mont64* m) noexcept nogil:
    cdef uint64_t r = 0, x = m.one
    while a:
        if a & 1:
            r = addm(r, x, m.n)
        x = addm(x, x, m.n)
        a >>= 1
    return r

cdef inline uint64_t powm(uint64_t b, uint64_t e, const Mont64* m) noexcept nogil:
    cdef uint64_t r = b
    cdef int i = 62 - clz64(e)
    while i >= 0:
        r = mulm(r, r, m)
        if (e >> i) & 1:
            r = mulm(r, b, m)
        i -= 1
    return r

cdef inline uint64_t pow2m(uint64_t e, const Mont64* m) noexcept nogil:
    """2^e in Montgomery form, e >= 1: a doubling instead of a product on every 1 bit."""
    cdef uint64_t r = m.two
    cdef int i = 62 - clz64(e)
    while i >= 0:
        r = mulm(r, r, m)
        if (e >> i) & 1:
            r = addm(r, r, m.n)
        i -= 1
    return r

cdef int jacobi64(uint64_t a, uint64_t n) noexcept nogil:
    cdef int result = 1
    cdef uint64_t t
    a %= n
    while a:
        while not (a & 1):
            a >>= 1
            if (n & 7) == 3 or (n & 7) == 5:
                result = -result
        t = a; a = n; n = t
        if (a & 3) == 3 and (n & 3) == 3:
            result = -result
        a %= n
    return result if n == 1 else 0

cdef inline uint64_t isqrt64(uint64_t n) noexcept nogil:
    cdef uint64_t r = <uint64_t>sqrt(<double>n)
    while r > 0 and <u128>r * r > n:
        r -= 1
    while <u128>(r + 1) * (r + 1) <= n:
        r += 1
    return r

cdef bint sprp2_64(const Mont64* m) noexcept nogil:
    """Strong probable prime to base 2 (n odd > 2)."""
    cdef uint64_t d = m.n - 1, x, mone = m.n - m.one
    cdef int s = ctz64(d), r
    d >>= s
    x = pow2m(d, m)
    if x == m.one or x == mone:
        return True
    for r in range(s - 1):
        x = mulm(x, x, m)
        if x == mone:
            return True
    return False

cdef int lucas_p64(uint64_t n) noexcept nogil:
    """The least P >= 3 with jacobi(P^2 - 4, n) == -1, or 0 if n is composite on the way."""
    cdef uint64_t p = 3, r
    cdef int j
    while True:
        j = jacobi64(p * p - 4, n)
        if j == -1:
            return <int>p
        if j == 0:  # n > 257^2 > p^2 - 4 here, so n shares a proper factor with it
            return 0
        p += 1
        if p == 40:
            r = isqrt64(n)
            if r * r == n:
                return 0

cdef bint es_lucas64(const Mont64* m) noexcept nogil:
    """Extra strong Lucas probable prime (Baillie's parameters P, Q = 1), n odd, gcd(n, small) = 1."""
    cdef int P = lucas_p64(m.n), s, i, r
    if P == 0:
        return False
    cdef uint64_t n = m.n, d = n + 1, v, w, pm = to_mont_small(P, m)
    s = ctz64(d)
    d >>= s
    v = m.two
    w = pm
    i = 63 - clz64(d)
    while i >= 0:
        if (d >> i) & 1:
            v = subm(mulm(v, w, m), pm, n)
            w = subm(mulm(w, w, m), m.two, n)
        else:
            w = subm(mulm(v, w, m), pm, n)
            v = subm(mulm(v, v, m), m.two, n)
        i -= 1
    # D*U_d = 2*V_(d+1) - P*V_d, and gcd(D, n) = 1
    if addm(w, w, n) == mulm(pm, v, m) and (v == m.two or v == n - m.two):
        return True
    for r in range(s - 1):
        if v == 0:
            return True
        v = subm(mulm(v, v, m), m.two, n)
    return False

cdef bint is_prime64(uint64_t n) noexcept nogil:
    cdef int i
    cdef Mont64 m
    if n < 64:
        return (SMALL_PRIME_MASK >> n) & 1
    if not (n & 1):
        return False
    for i in range(N_QUICK):
        if divides(i, n):
            return n == TRIAL_P[i]
    if n < TRIAL_P[N_QUICK] * TRIAL_P[N_QUICK]:
        return True
    mont_init(&m, n)
    return sprp2_64(&m) and es_lucas64(&m)


# ---------------------------------------------------------------- 128-bit Montgomery

cdef struct Mont128:
    u128 n, ninv, one, two

cdef inline u128 addm128(u128 a, u128 b, u128 n) noexcept nogil:
    return a - (n - b) if a >= n - b else a + b

cdef inline u128 subm128(u128 a, u128 b, u128 n) noexcept nogil:
    return a - b if a >= b else a + (n - b)

cdef inline u128 mulhi128(u128 a, u128 b, u128* lo) noexcept nogil:
    cdef uint64_t a0 = <uint64_t>a, a1 = <uint64_t>(a >> 64)
    cdef uint64_t b0 = <uint64_t>b, b1 = <uint64_t>(b >> 64)
    cdef u128 p00 = <u128>a0 * b0, p01 = <u128>a0 * b1, p10 = <u128>a1 * b0, p11 = <u128>a1 * b1
    cdef u128 mid = (p00 >> 64) + <uint64_t>p01 + <uint64_t>p10
    lo[0] = (mid << 64) | <uint64_t>p00
    return p11 + (p01 >> 64) + (p10 >> 64) + (mid >> 64)

cdef inline u128 mulm128(u128 a, u128 b, const Mont128* m) noexcept nogil:
    cdef u128 lo, qlo
    cdef u128 hi = mulhi128(a, b, &lo)
    cdef u128 q = lo * m.ninv
    cdef u128 qh = mulhi128(q, m.n, &qlo)
    return hi - qh + (m.n if hi < qh else 0)

cdef inline void mont128_init(Mont128* m, u128 n) noexcept nogil:
    cdef u128 inv = n
    cdef int k
    for k in range(6):
        inv *= 2 - n * inv
    m.n = n
    m.ninv = inv
    m.one = (<u128>0 - n) % n
    m.two = addm128(m.one, m.one, n)

cdef inline u128 to_mont128_small(uint64_t a, const Mont128* m) noexcept nogil:
    cdef u128 r = 0, x = m.one
    while a:
        if a & 1:
            r = addm128(r, x, m.n)
        x = addm128(x, x, m.n)
        a >>= 1
    return r

cdef inline int bitlen128(u128 x) noexcept nogil:
    cdef uint64_t hi = <uint64_t>(x >> 64)
    if hi:
        return 128 - clz64(hi)
    if <uint64_t>x:
        return 64 - clz64(<uint64_t>x)
    return 0

cdef inline int ctz128(u128 x) noexcept nogil:
    if <uint64_t>x:
        return ctz64(<uint64_t>x)
    return 64 + ctz64(<uint64_t>(x >> 64))

cdef u128 gcd128(u128 a, u128 b) noexcept nogil:
    cdef int shift
    cdef u128 t
    if a == 0:
        return b
    if b == 0:
        return a
    shift = ctz128(a | b)
    a >>= ctz128(a)
    while b:
        b >>= ctz128(b)
        if a > b:
            t = a; a = b; b = t
        b -= a
        if (a >> 64) == 0 and (b >> 64) == 0:
            return (<u128>gcd64(<uint64_t>a, <uint64_t>b)) << shift
    return a << shift

cdef u128 powm128(u128 b, u128 e, const Mont128* m) noexcept nogil:
    cdef u128 r = b
    cdef int i = bitlen128(e) - 2
    while i >= 0:
        r = mulm128(r, r, m)
        if (e >> i) & 1:
            r = mulm128(r, b, m)
        i -= 1
    return r

cdef int jacobi128(uint64_t a, u128 n) noexcept nogil:
    cdef int result = 1
    while not (a & 1):
        a >>= 1
        if (n & 7) == 3 or (n & 7) == 5:
            result = -result
    if a == 1:
        return result
    if (a & 3) == 3 and (n & 3) == 3:
        result = -result
    return result * jacobi64(<uint64_t>(n % a), a)

cdef u128 isqrt128(u128 n) noexcept nogil:
    cdef u128 top = <uint64_t>0xFFFFFFFFFFFFFFFF
    cdef u128 r = <u128>sqrtl(<long double>n)
    if r > top:
        r = top
    while r > 0 and r * r > n:
        r -= 1
    while r < top and (r + 1) * (r + 1) <= n:
        r += 1
    return r

cdef u128 icbrt128(u128 n) noexcept nogil:
    cdef u128 top = <uint64_t>6981463658331  # floor(2^(128/3)): no cube above it fits
    cdef u128 r = <u128>cbrtl(<long double>n)
    if r > top:
        r = top
    while r > 0 and r * r * r > n:
        r -= 1
    while r < top and (r + 1) * (r + 1) * (r + 1) <= n:
        r += 1
    return r

cdef bint sprp2_128(const Mont128* m) noexcept nogil:
    cdef u128 d = m.n - 1, x, mone = m.n - m.one
    cdef int s = ctz128(d), r
    d >>= s
    x = powm128(m.two, d, m)
    if x == m.one or x == mone:
        return True
    for r in range(s - 1):
        x = mulm128(x, x, m)
        if x == mone:
            return True
    return False

cdef bint es_lucas128(const Mont128* m) noexcept nogil:
    cdef u128 n = m.n, d = n + 1, v, w, pm
    cdef uint64_t p = 3
    cdef int j, s, i, r
    while True:
        j = jacobi128(p * p - 4, n)
        if j == -1:
            break
        if j == 0:
            return False
        p += 1
        if p == 40:
            v = isqrt128(n)
            if v * v == n:
                return False
    pm = to_mont128_small(p, m)
    s = ctz128(d)
    d >>= s
    v = m.two
    w = pm
    i = bitlen128(d) - 1
    while i >= 0:
        if (d >> i) & 1:
            v = subm128(mulm128(v, w, m), pm, n)
            w = subm128(mulm128(w, w, m), m.two, n)
        else:
            w = subm128(mulm128(v, w, m), pm, n)
            v = subm128(mulm128(v, v, m), m.two, n)
        i -= 1
    if addm128(w, w, n) == mulm128(pm, v, m) and (v == m.two or v == n - m.two):
        return True
    for r in range(s - 1):
        if v == 0:
            return True
        v = subm128(mulm128(v, v, m), m.two, n)
    return False

cdef inline uint64_t mod128_small(u128 n, uint64_t p) noexcept nogil:
    return <uint64_t>(n % p)

cdef bint is_prime128(u128 n) noexcept nogil:
    cdef int i
    cdef Mont128 m
    if (n >> 64) == 0:
        return is_prime64(<uint64_t>n)
    if not (n & 1):
        return False
    for i in range(N_QUICK128):
        if mod128_small(n, TRIAL_P[i]) == 0:
            return False
    mont128_init(&m, n)
    return sprp2_128(&m) and es_lucas128(&m)


# ---------------------------------------------------------------- budget

cdef struct Budget:
    double deadline        # CLOCK_MONOTONIC seconds, the clock of time.monotonic()
    int64_t iterations     # rho steps left
    int64_t since_clock    # rho steps since the last look at the clock
    bint exceeded

cdef inline double monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9

cdef inline bint spend(Budget* b, int64_t steps) noexcept nogil:
    """Charge `steps` rho steps; True once the budget is gone."""
    b.iterations -= steps
    b.since_clock += steps
    if b.iterations < 0:
        b.exceeded = True
    elif b.since_clock >= CLOCK_EVERY:
        b.since_clock = 0
        if monotonic() > b.deadline:
            b.exceeded = True
    return b.exceeded


# ---------------------------------------------------------------- Brent's rho

cdef inline uint64_t absdiff(uint64_t a, uint64_t b) noexcept nogil:
    return a - b if a > b else b - a

cdef inline uint64_t mulm_lazy(uint64_t a, uint64_t b, const Mont64* m) noexcept nogil:
    # a * b < n 2^64 gives hi < n, so hi - qh + n lies in (0, 2n) with no branch
    cdef u128 t = <u128>a * b
    cdef uint64_t q = <uint64_t>t * m.ninv
    return <uint64_t>(t >> 64) - <uint64_t>((<u128>q * m.n) >> 64) + m.n

cdef inline uint64_t rho_acc(uint64_t q, uint64_t x, uint64_t y, const Mont64* m) noexcept nogil:
    """q * (x - y), the product of rho's differences, in Montgomery form."""
    # lazy: q < 2n and x + 2n - y < 5n, so the product stays below n 2^64 for n < 2^60
    if m.lazy:
        return mulm_lazy(q, x + 2 * m.n - y, m)
    return mulm(q, absdiff(x, y), m)

cdef inline uint64_t rho_step(uint64_t y, uint64_t c, const Mont64* m) noexcept nogil:
    # lazy: y < 2n + c keeps y^2 < n 2^64, so neither the product nor the sum is reduced
    if m.lazy:
        return mulm_lazy(y, y, m) + c
    return addm(mulm(y, y, m), c, m.n)

cdef inline bint square_root(uint64_t m, uint64_t* root) noexcept nogil:
    """True iff m < 2^62 is a square, with its root in `root`."""
    if not (SQUARES_MOD_64 >> (m & 63)) & 1:
        return False
    cdef uint64_t t = <uint64_t>sqrt(<double>m)
    while t * t > m:
        t -= 1
    while (t + 1) * (t + 1) <= m:
        t += 1
    root[0] = t
    return t * t == m

cdef uint64_t hart64(uint64_t n, uint64_t iterations) noexcept nogil:
    """Hart's one line factoring (multiplier 480) of odd composite n < 2^42; 0 if it gives up.

    Balanced semiprimes split in a few dozen steps where rho needs hundreds.
    """
    cdef uint64_t step = n * 480, ni = step, s, t, g, i
    for i in range(iterations):
        s = <uint64_t>sqrt(<double>ni)
        while s * s > ni:
            s -= 1
        while s * s < ni:
            s += 1
        if square_root(s * s - ni, &t):
            g = gcd64(n, s - t)
            if 1 < g < n:
                return g
        ni += step
    return 0


cdef uint64_t rho64(uint64_t n, uint64_t c, Budget* b, uint64_t max_r) noexcept nogil:
    """A divisor of odd composite n by Brent's rho, n on failure, 0 past the budget.

    WALKS walks x -> x^2 + c + j run in lockstep: one walk waits on the multiplier's
    latency, several keep it busy, and the first to collide mod a prime wins.
    """
    cdef Mont64 m
    mont_init(&m, n)
    cdef uint64_t x[WALKS]
    cdef uint64_t y[WALKS]
    cdef uint64_t ys[WALKS]
    cdef uint64_t q[WALKS]
    cdef uint64_t cs[WALKS]
    cdef uint64_t g = 1, r = 1, k, i, block, prod
    cdef int j
    for j in range(WALKS):
        y[j] = m.two
        q[j] = m.one
        cs[j] = (c + <uint64_t>j) % n
    while g == 1:
        for j in range(WALKS):
            x[j] = y[j]
        for i in range(r):
            for j in range(WALKS):
                y[j] = rho_step(y[j], cs[j], &m)
        k = 0
        while k < r and g == 1:
            for j in range(WALKS):
                ys[j] = y[j]
            block = min(<uint64_t>RHO_BLOCK, r - k)
            for i in range(block):
                for j in range(WALKS):
                    y[j] = rho_step(y[j], cs[j], &m)
                    q[j] = rho_acc(q[j], x[j], y[j], &m)
            prod = q[0]
            for j in range(1, WALKS):
                prod = mulm(prod, q[j], &m)
            g = gcd64(prod, n)
            k += block
            if spend(b, 2 * WALKS * block):
                return 0
        r <<= 1
        if r > max_r and g == 1:
            return n
    if g != n:
        return g
    for j in range(WALKS):  # several walks met in one block: replay each alone
        g = gcd64(q[j], n)
        if g != n:
            if g != 1:
                return g
            continue
        g = 1
        while g == 1:
            ys[j] = rho_step(ys[j], cs[j], &m)
            g = gcd64(absdiff(x[j], ys[j]), n)
        if g != n:
            return g
    return n

cdef inline u128 absdiff128(u128 a, u128 b) noexcept nogil:
    return a - b if a > b else b - a

cdef inline u128 rho_step128(u128 y, u128 c, const Mont128* m) noexcept nogil:
    return addm128(mulm128(y, y, m), c, m.n)

cdef u128 rho128(u128 n, u128 c, Budget* b, uint64_t max_r) noexcept nogil:
    """Brent's rho on 128 bits, as rho64; gives up (returns n) once the cycle bound passes max_r."""
    cdef Mont128 m
    mont128_init(&m, n)
    cdef u128 x = 0, y = m.two, ys = y, q = m.one, g = 1
    cdef uint64_t r = 1, k, i, block
    while g == 1:
        x = y
        for i in range(r):
            y = rho_step128(y, c, &m)
        k = 0
        while k < r and g == 1:
            ys = y
            block = min(<uint64_t>RHO_BLOCK, r - k)
            for i in range(block):
                y = rho_step128(y, c, &m)
                q = mulm128(q, absdiff128(x, y), &m)
            g = gcd128(q, n)
            k += block
            if spend(b, 2 * block):
                return 0
        r <<= 1
        if r > max_r and g == 1:
            return n
    if g == n:
        g = 1
        while g == 1:
            ys = rho_step128(ys, c, &m)
            g = gcd128(absdiff128(x, ys), n)
    return g


# ---------------------------------------------------------------- ECM on 128 bits

cdef struct Point:
    u128 x, z

cdef inline void xdbl(Point* r, const Point* p, u128 a24, const Mont128* m) noexcept nogil:
    cdef u128 s = addm128(p.x, p.z, m.n), d = subm128(p.x, p.z, m.n)
    s = mulm128(s, s, m)
    d = mulm128(d, d, m)
    cdef u128 t = subm128(s, d, m.n)
    r.x = mulm128(s, d, m)
    r.z = mulm128(t, addm128(d, mulm128(a24, t, m), m.n), m)

cdef inline void xadd(Point* r, const Point* p, const Point* q, const Point* diff,
                      const Mont128* m) noexcept nogil:
    cdef u128 u = mulm128(subm128(p.x, p.z, m.n), addm128(q.x, q.z, m.n), m)
    cdef u128 v = mulm128(addm128(p.x, p.z, m.n), subm128(q.x, q.z, m.n), m)
    cdef u128 s = addm128(u, v, m.n), d = subm128(u, v, m.n)
    cdef u128 x = mulm128(diff.z, mulm128(s, s, m), m)
    r.z = mulm128(diff.x, mulm128(d, d, m), m)
    r.x = x

cdef void ladder(Point* p, uint64_t k, u128 a24, const Mont128* m) noexcept nogil:
    """p = [k]p, k >= 1, by Montgomery's ladder."""
    cdef Point r0 = p[0], r1, base = p[0]
    cdef int i = 62 - clz64(k)
    xdbl(&r1, &r0, a24, m)
    while i >= 0:
        if (k >> i) & 1:
            xadd(&r0, &r0, &r1, &base, m)
            xdbl(&r1, &r1, a24, m)
        else:
            xadd(&r1, &r0, &r1, &base, m)
            xdbl(&r0, &r0, a24, m)
        i -= 1
    p[0] = r0

cdef u128 ecm_stage1(Point* p, u128 a24, uint64_t b1, const Mont128* m, Budget* b) noexcept nogil:
    """p = [lcm(1..b1)]p; returns its z (b.exceeded tells a stop on the budget)."""
    cdef uint64_t q, pk, chunk = 1, i
    for i in range(N_TRIAL + 1):
        q = 2 if i == 0 else TRIAL_P[i - 1]
        if q > b1:
            break
        pk = q
        while pk * q <= b1:
            pk *= q
        if chunk > (<uint64_t>1 << 63) // pk:
            ladder(p, chunk, a24, m)
            if spend(b, 6 * (64 - clz64(chunk))):
                return 0
            chunk = 1
        chunk *= pk
    ladder(p, chunk, a24, m)
    return p.z

cdef u128 ecm_stage2(const Point* q, u128 a24, uint64_t b1, uint64_t b2, const Mont128* m,
                     Budget* b) noexcept nogil:
    """The product of x([vD]q) z([u]q) - x([u]q) z([vD]q) over vD +- u in (b1, b2], gcd(u, D) = 1.

    b.exceeded tells a stop on the budget."""
    cdef Point baby[ECM_BABY]   # [u]q for odd u < D/2
    cdef Point two, step, prev, cur, nxt
    cdef u128 acc = m.one
    cdef uint64_t v, j
    baby[0] = q[0]
    xdbl(&two, q, a24, m)
    xadd(&baby[1], &two, &baby[0], &baby[0], m)
    for j in range(2, ECM_BABY):
        xadd(&baby[j], &baby[j - 1], &two, &baby[j - 2], m)
    step = q[0]
    ladder(&step, ECM_D, a24, m)
    v = b1 // ECM_D + 1
    prev = q[0]
    ladder(&prev, (v - 1) * ECM_D if v > 1 else ECM_D, a24, m)
    cur = q[0]
    ladder(&cur, v * ECM_D, a24, m)
    if v == 1:  # prev must be [0]q: start one giant step later instead
        prev = cur
        xdbl(&cur, &cur, a24, m)
        v = 2
    while v * ECM_D <= b2 + ECM_D:
        for j in range(ECM_BABY):
            if (2 * j + 1) % 3 and (2 * j + 1) % 5 and (2 * j + 1) % 7:
                acc = mulm128(acc, subm128(mulm128(cur.x, baby[j].z, m),
                                           mulm128(baby[j].x, cur.z, m), m.n), m)
        xadd(&nxt, &cur, &step, &prev, m)
        prev = cur
        cur = nxt
        v += 1
        if spend(b, 60):
            return 0
    return acc

cdef u128 ecm128(u128 n, uint64_t curve, uint64_t b1, uint64_t b2, Budget* b) noexcept nogil:
    """A divisor of n from one curve (a24 = curve + 2, start x = 2): 1 or n on failure, 0 past the budget."""
    cdef Mont128 m
    mont128_init(&m, n)
    cdef u128 a24 = to_mont128_small(curve + 2, &m), g
    cdef Point p
    p.x = m.two
    p.z = m.one
    g = ecm_stage1(&p, a24, b1, &m, b)
    if b.exceeded:
        return 0
    g = gcd128(g, n)
    if g != 1:
        return g
    g = ecm_stage2(&p, a24, b1, b2, &m, b)
    if b.exceeded:
        return 0
    return gcd128(g, n)


# ---------------------------------------------------------------- ECM on 64 bits, the same on Mont64

# The 128-bit functions above, word for word on uint64_t: about three times faster for n < 2^64.

cdef struct Point64:
    uint64_t x, z

cdef inline void xdbl64(Point64* r, const Point64* p, uint64_t a24, const Mont64* m) noexcept nogil:
    cdef uint64_t s = addm(p.x, p.z, m.n), d = subm(p.x, p.z, m.n)
    s = mulm(s, s, m)
    d = mulm(d, d, m)
    cdef uint64_t t = subm(s, d, m.n)
    r.x = mulm(s, d, m)
    r.z = mulm(t, addm(d, mulm(a24, t, m), m.n), m)

cdef inline void xadd64(Point64* r, const Point64* p, const Point64* q, const Point64* diff,
                      const Mont64* m) noexcept nogil:
    cdef uint64_t u = mulm(subm(p.x, p.z, m.n), addm(q.x, q.z, m.n), m)
    cdef uint64_t v = mulm(addm(p.x, p.z, m.n), subm(q.x, q.z, m.n), m)
    cdef uint64_t s = addm(u, v, m.n), d = subm(u, v, m.n)
    cdef uint64_t x = mulm(diff.z, mulm(s, s, m), m)
    r.z = mulm(diff.x, mulm(d, d, m), m)
    r.x = x

cdef void ladder64(Point64* p, uint64_t k, uint64_t a24, const Mont64* m) noexcept nogil:
    cdef Point64 r0 = p[0], r1, base = p[0]
    cdef int i = 62 - clz64(k)
    xdbl64(&r1, &r0, a24, m)
    while i >= 0:
        if (k >> i) & 1:
            xadd64(&r0, &r0, &r1, &base, m)
            xdbl64(&r1, &r1, a24, m)
        else:
            xadd64(&r1, &r0, &r1, &base, m)
            xdbl64(&r0, &r0, a24, m)
        i -= 1
    p[0] = r0

cdef uint64_t ecm64_stage1(Point64* p, uint64_t a24, uint64_t b1, const Mont64* m, Budget* b) noexcept nogil:
    cdef uint64_t q, pk, chunk = 1, i
    for i in range(N_TRIAL + 1):
        q = 2 if i == 0 else TRIAL_P[i - 1]
        if q > b1:
            break
        pk = q
        while pk * q <= b1:
            pk *= q
        if chunk > (<uint64_t>1 << 63) // pk:
            ladder64(p, chunk, a24, m)
            if spend(b, 6 * (64 - clz64(chunk))):
                return 0
            chunk = 1
        chunk *= pk
    ladder64(p, chunk, a24, m)
    return p.z

cdef uint64_t ecm64_stage2(const Point64* q, uint64_t a24, uint64_t b1, uint64_t b2, const Mont64* m,
                     Budget* b) noexcept nogil:
    cdef Point64 baby[ECM_BABY]   # [u]q for odd u < D/2
    cdef Point64 two, step, prev, cur, nxt
    cdef uint64_t acc = m.one
    cdef uint64_t v, j
    baby[0] = q[0]
    xdbl64(&two, q, a24, m)
    xadd64(&baby[1], &two, &baby[0], &baby[0], m)
    for j in range(2, ECM_BABY):
        xadd64(&baby[j], &baby[j - 1], &two, &baby[j - 2], m)
    step = q[0]
    ladder64(&step, ECM_D, a24, m)
    v = b1 // ECM_D + 1
    prev = q[0]
    ladder64(&prev, (v - 1) * ECM_D if v > 1 else ECM_D, a24, m)
    cur = q[0]
    ladder64(&cur, v * ECM_D, a24, m)
    if v == 1:  # prev must be [0]q: start one giant step later instead
        prev = cur
        xdbl64(&cur, &cur, a24, m)
        v = 2
    while v * ECM_D <= b2 + ECM_D:
        for j in range(ECM_BABY):
            if (2 * j + 1) % 3 and (2 * j + 1) % 5 and (2 * j + 1) % 7:
                acc = mulm(acc, subm(mulm(cur.x, baby[j].z, m),
                                           mulm(baby[j].x, cur.z, m), m.n), m)
        xadd64(&nxt, &cur, &step, &prev, m)
        prev = cur
        cur = nxt
        v += 1
        if spend(b, 60):
            return 0
    return acc

cdef uint64_t inv_mod64(uint64_t a, uint64_t n) noexcept nogil:
    """a^-1 mod n by Euclid, 0 when gcd(a, n) != 1."""
    cdef uint64_t r0 = n, r1 = a % n, q, t
    cdef i128 s0 = 0, s1 = 1, st
    while r1:
        q = r0 // r1
        t = r0 - q * r1
        r0 = r1
        r1 = t
        st = s0 - <i128>q * s1
        s0 = s1
        s1 = st
    if r0 != 1:
        return 0
    return <uint64_t>(s0 + n if s0 < 0 else s0)

cdef uint64_t suyama64(uint64_t sigma, Point64* p, uint64_t* a24, const Mont64* m) noexcept nogil:
    """Suyama's curve for sigma (its group order is a multiple of 12, not just 4): 1, or a
    divisor of n met on the way. The start point goes to p, (A + 2) / 4 to a24, in Montgomery form."""
    cdef uint64_t n = m.n, s = to_mont_small(sigma, m), g, inv
    cdef uint64_t u = subm(mulm(s, s, m), to_mont_small(5, m), n)
    cdef uint64_t v = addm(addm(s, s, n), addm(s, s, n), n)
    cdef uint64_t u3 = mulm(mulm(u, u, m), u, m), d = subm(v, u, n)
    cdef uint64_t num = mulm(mulm(mulm(d, d, m), d, m), addm(addm(u, u, n), addm(u, v, n), n), m)
    cdef uint64_t den = mulm(u3, v, m)
    cdef int k
    for k in range(4):
        den = addm(den, den, n)
    p.x = u3
    p.z = mulm(mulm(v, v, m), v, m)
    den = mulm(den, 1, m)  # out of Montgomery form
    inv = inv_mod64(den, n)
    if inv == 0:
        g = gcd64(den, n)
        return g if g != n else 1
    g = <uint64_t>(((<u128>m.one) << 64) % n)  # R^2 mod n
    a24[0] = mulm(mulm(num, inv, m), g, m)
    return 1

cdef uint64_t ecm64(uint64_t n, uint64_t curve, uint64_t b1, uint64_t b2, Budget* b) noexcept nogil:
    """ecm128 on Suyama's curves (sigma = curve + 5)."""
    cdef Mont64 m
    mont_init(&m, n)
    cdef uint64_t a24 = 0, g
    cdef Point64 p
    g = suyama64(curve + 5, &p, &a24, &m)
    if g != 1:
        return g
    g = ecm64_stage1(&p, a24, b1, &m, b)
    if b.exceeded:
        return 0
    g = gcd64(g, n)
    if g != 1:
        return g
    g = ecm64_stage2(&p, a24, b1, b2, &m, b)
    if b.exceeded:
        return 0
    return gcd64(g, n)


# ---------------------------------------------------------------- whole factorizations, nogil

cdef struct Work:
    u128 factors[MAX_FACTORS]   # primes found
    int nfactors
    u128 pending[MAX_FACTORS]   # cofactors not yet split
    int npending

cdef inline void push_factor(Work* w, u128 p, int times) noexcept nogil:
    cdef int i
    for i in range(times):
        w.factors[w.nfactors] = p
        w.nfactors += 1

cdef u128 trial_divide(Work* w, u128 n) noexcept nogil:
    """Remove the factors below 257 from n; returns the cofactor."""
    cdef int i, tz
    cdef uint64_t p, n64
    if n == 0:
        return 0
    tz = ctz128(n)
    push_factor(w, 2, tz)
    n >>= tz
    for i in range(N_TRIAL_FACTOR):
        p = TRIAL_P[i]
        if <u128>p * p > n:
            break
        if (n >> 64) == 0:
            n64 = <uint64_t>n
            while divides(i, n64):
                push_factor(w, p, 1)
                n64 = n64 // p
            n = n64
        else:
            while n % p == 0:
                push_factor(w, p, 1)
                n //= p
    if n > 1 and n < <u128>257 * 257:
        push_factor(w, n, 1)
        n = 1
    return n

cdef u128 ecm_until_split(u128 n, uint64_t b1, uint64_t b2, Budget* b) noexcept nogil:
    """A proper divisor of n from ECM's curves one after the other, 0 past the budget."""
    cdef u128 d
    cdef uint64_t curve
    for curve in range(1, 1 << 62):
        if (n >> 64) == 0:
            d = ecm64(<uint64_t>n, curve, b1, b2, b)
        else:
            d = ecm128(n, curve, b1, b2, b)
        if d == 0 or (d != 1 and d != n):
            return d
    return 0

cdef uint64_t split64(uint64_t n, Budget* b) noexcept nogil:
    """A proper divisor of the odd composite n < 2^64, 0 past the budget."""
    cdef uint64_t d, c, r = isqrt64(n)
    if r * r == n:
        return r
    if (n >> HART_BITS) == 0:
        d = hart64(n, HART_STEPS)
        if d:
            return d
    if (n >> ECM64_BITS) != 0:
        d = rho64(n, 1, b, ECM64_AFTER)
        if d != n:
            return d
        if (n >> 60) == 0:
            return <uint64_t>ecm_until_split(n, ECM60_B1, ECM60_B2, b)
        return <uint64_t>ecm_until_split(n, ECM64_B1, ECM64_B2, b)
    for c in range(1, 1 << 62, WALKS):
        d = rho64(n, c, b, <uint64_t>1 << 62)
        if d != n:
            return d
    return 0

cdef u128 split(u128 n, Budget* b) noexcept nogil:
    """A proper divisor of the odd composite n, 0 past the budget."""
    cdef u128 d, r
    if (n >> 64) == 0:
        return split64(<uint64_t>n, b)
    r = isqrt128(n)
    if r * r == n:
        return r
    r = icbrt128(n)
    if r * r * r == n:
        return r
    d = rho128(n, 1, b, ECM_AFTER)
    return d if d != n else ecm_until_split(n, ECM_B1, ECM_B2, b)

cdef bint factor_work(Work* w, u128 n, Budget* b) noexcept nogil:
    """Factor n into w.factors; False past the budget, with the rest left in w.pending."""
    cdef u128 m, d
    w.nfactors = 0
    w.npending = 0
    n = trial_divide(w, n)
    if n > 1:
        w.pending[0] = n
        w.npending = 1
    while w.npending:
        m = w.pending[w.npending - 1]
        if is_prime128(m):
            push_factor(w, m, 1)
            w.npending -= 1
            continue
        d = split(m, b)
        if d == 0:
            return False
        w.pending[w.npending - 1] = d
        w.pending[w.npending] = m // d
        w.npending += 1
    return True


# ---------------------------------------------------------------- Python-facing helpers

cdef object u128_to_int(u128 x):
    return (<object>(<uint64_t>(x >> 64)) << 64) | <object>(<uint64_t>x)

cdef u128 int_to_u128(object x):
    return ((<u128>(<uint64_t>(x >> 64))) << 64) | <uint64_t>(x & 0xFFFFFFFFFFFFFFFF)

cdef object _int_arg(object n, str func, str name):
    if type(n) is int:
        return n
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"{func}: {name} must be an int, got {type(n).__name__} {n!r}")
    return n.__index__()


def is_prime(n):
    """True iff n is prime: exact below 2^64, BPSW (strong base 2 + extra strong Lucas) above."""
    if type(n) is not int:
        n = _int_arg(n, "is_prime", "n")
    if n < 2:
        return False
    if n < 0x10000000000000000:
        return is_prime64(<uint64_t>n)
    if n.bit_length() <= 128:
        return is_prime128(int_to_u128(n))
    return _is_prime_big(n)


U64_MAX = 0xFFFFFFFFFFFFFFFF
U128_MAX = (1 << 128) - 1


def next_prime(start, last):
    """The least prime p with start <= p <= last, or None (start >= 0)."""
    if start <= U64_MAX:
        p = _next_prime64(start, min(last, U64_MAX))
        if p is not None or last <= U64_MAX:
            return p
        start = U64_MAX + 1
    if start <= U128_MAX:
        p = _next_prime128(start, min(last, U128_MAX))
        if p is not None or last <= U128_MAX:
            return p
        start = U128_MAX + 1
    return _next_prime_big(start, last)


def random_prime(bits, rng=None):
    """A random prime in [2^(bits-1), 2^bits), 2 <= bits <= 4096; `rng` a seed or a random.Random.

    The prime is the first one at or after a uniform random start (wrapping around to the
    bottom of the range), so primes after long gaps are a little more likely.
    """
    cdef uint64_t low, x
    if type(bits) is not int or not 2 <= bits <= 4096 or type(rng) is not _Random:
        from grid.primes import _random_prime_args  # the checks and their messages live there
        bits, rng = _random_prime_args(bits, rng)
    start = rng.getrandbits(bits - 1)
    if bits > 64:
        bottom = 1 << (bits - 1)
        top = 2 * bottom - 1
        return next_prime(bottom | start, top) or next_prime(bottom, top)
    low = (<uint64_t>1) << (bits - 1)
    x = low | <uint64_t>start
    with nogil:
        x = _next_prime_u64(x, low + (low - 1))
        if x == 0:
            x = _next_prime_u64(low, low + (low - 1))
    return x


cdef uint64_t _next_prime_u64(uint64_t x, uint64_t last) noexcept nogil:
    """The least prime in [x, last], 0 if none."""
    if x <= 2:
        return 2 if last >= 2 else 0
    x |= 1
    while x <= last:
        if is_prime64(x):
            return x
        if x > last - 2:
            break
        x += 2
    return 0


cdef object _next_prime64(object start, object last):
    cdef uint64_t x
    if last < 2 or start > last:
        return None
    x = _next_prime_u64(<uint64_t>start, <uint64_t>last)
    return x if x else None


cdef object _next_prime128(object start, object last):
    cdef u128 x = int_to_u128(start | 1)
    cdef u128 stop = int_to_u128(last)
    cdef bint found = False
    with nogil:
        while x <= stop:
            if is_prime128(x):
                found = True
                break
            if x > stop - 2:
                break
            x += 2
    return u128_to_int(x) if found else None


def factor(n, double deadline, int64_t iterations):
    """(prime factors found, unfactored rest) of n >= 1; rest == 1 unless the budget ran out.

    The budget is a CLOCK_MONOTONIC deadline (time.monotonic()) and a number of rho steps.
    """
    cdef Work w
    cdef Budget b
    cdef u128 n128
    cdef int i
    if n.bit_length() > 128:
        return _factor_big(n, _PyBudget(deadline, iterations))
    b.deadline = deadline
    b.iterations = iterations
    b.since_clock = 0
    b.exceeded = False
    n128 = int_to_u128(n)
    with nogil:
        factor_work(&w, n128, &b)
    rest = 1
    for i in range(w.npending):
        rest *= u128_to_int(w.pending[i])
    return [u128_to_int(w.factors[i]) for i in range(w.nfactors)], rest


# ---------------------------------------------------------------- beyond 128 bits: Python ints

import math
import time
from random import Random as _Random

try:
    import gmpy2
except ImportError:  # gmpy2 only speeds up numbers beyond 128 bits
    gmpy2 = None

_mpz = gmpy2.mpz if gmpy2 is not None else int
_TRIAL_PRIMES = [2] + [TRIAL_P[i] for i in range(N_TRIAL)]
_TRIAL_PRODUCT = math.prod(_TRIAL_PRIMES)


def _primes_below(limit):
    sieve = bytearray([1]) * limit
    sieve[:2] = b"\x00\x00"
    for p in range(2, math.isqrt(limit) + 1):
        if sieve[p]:
            sieve[p * p::p] = bytes(len(range(p * p, limit, p)))
    return [p for p in range(3, limit) if sieve[p]]

_SIEVE_PRIMES = _primes_below(1 << 16)  # odd primes, for the windows of _next_prime_big


class _PyBudget:
    """The Budget struct for the Python-int path: rho steps left and a deadline."""

    def __init__(self, deadline, iterations):
        self.deadline = deadline
        self.iterations = iterations

    def spend(self, steps):
        self.iterations -= steps
        return self.iterations < 0 or time.monotonic() > self.deadline


def _sprp2(n):
    d = n - 1
    s = (d & -d).bit_length() - 1
    x = pow(2, d >> s, n)
    if x == 1 or x == n - 1:
        return True
    for _ in range(s - 1):
        x = x * x % n
        if x == n - 1:
            return True
    return False


def _jacobi(a, n):
    result = 1
    a %= n
    while a:
        while not a & 1:
            a >>= 1
            if n & 7 in (3, 5):
                result = -result
        a, n = n, a
        if a & 3 == 3 and n & 3 == 3:
            result = -result
        a %= n
    return result if n == 1 else 0


def _lucas_p(n):
    """Baillie's P for the extra strong Lucas test, or 0 when n is composite on the way."""
    p = 3
    while True:
        j = _jacobi(p * p - 4, n)
        if j == -1:
            return p
        if j == 0:
            return 0
        p += 1
        if p == 40 and math.isqrt(n) ** 2 == n:
            return 0


def _es_lucas(n, p):
    """Extra strong Lucas probable prime with parameters (p, 1); n odd, gcd(n, 2(p^2 - 4)) = 1."""
    d = n + 1
    s = (d & -d).bit_length() - 1
    d >>= s
    n = _mpz(n)
    v, w = _mpz(2), _mpz(p)
    for bit in bin(d)[2:]:
        if bit == "1":
            v, w = (v * w - p) % n, (w * w - 2) % n
        else:
            v, w = (v * v - 2) % n, (v * w - p) % n
    if (2 * w - p * v) % n == 0 and (v == 2 or v == n - 2):
        return True
    for _ in range(s - 1):
        if v == 0:
            return True
        v = (v * v - 2) % n
    return False


def _is_prime_big(n):
    """BPSW for n > 1024^2: strong base 2 and extra strong Lucas, in gmpy2 when installed."""
    if math.gcd(n, _TRIAL_PRODUCT) != 1:
        return False
    p = _lucas_p(n)
    if p == 0:
        return False
    if gmpy2 is not None:
        return gmpy2.is_strong_prp(n, 2) and gmpy2.is_extra_strong_lucas_prp(n, p)
    return _sprp2(n) and _es_lucas(n, p)


def _next_prime_big(start, last, window=4096):
    """The least prime in [start, last] for start > 2^64, by sieving windows of odd numbers."""
    x = start | 1
    limit = min(1 << 16, 16 * last.bit_length())
    primes = [p for p in _SIEVE_PRIMES if p < limit]
    while x <= last:
        sieve = bytearray([1]) * window
        for p in primes:
            first = (p - x % p) * ((p + 1) // 2) % p  # x + 2*first == 0 mod p
            sieve[first::p] = bytes(len(range(first, window, p)))
        i = sieve.find(1)
        while i >= 0:
            c = x + 2 * i
            if c > last:
                return None
            if _is_prime_big(c):
                return c
            i = sieve.find(1, i + 1)
        x += 2 * window
    return None


def _iroot(n, k):
    if gmpy2 is not None:
        return int(gmpy2.iroot(n, k)[0])
    x = 1 << -(-n.bit_length() // k)
    while True:
        y = ((k - 1) * x + n // x ** (k - 1)) // k
        if y >= x:
            return x
        x = y


def _perfect_power(n):
    """(root, k) with root^k == n and k prime, for n free of factors below 1024; else None."""
    for k in _TRIAL_PRIMES:
        if 10 * k > n.bit_length():
            return None
        r = _iroot(n, k)
        if r ** k == n:
            return r, k
    return None


def _rho_big(n, c, budget):
    """Brent's rho on Python ints: a divisor of n, n on failure, 0 past the budget."""
    n = _mpz(n)
    y = _mpz(2)
    x = ys = y
    q = g = r = 1
    while g == 1:
        x = y
        for _ in range(r):
            y = (y * y + c) % n
        k = 0
        while k < r and g == 1:
            ys = y
            block = min(RHO_BLOCK, r - k)
            for _ in range(block):
                y = (y * y + c) % n
                q = q * (x - y) % n
            g = math.gcd(int(q), int(n))
            k += block
            if budget.spend(2 * block):
                return 0
        r *= 2
    if g == n:
        g = 1
        while g == 1:
            ys = (ys * ys + c) % n
            g = math.gcd(int(x - ys), int(n))
    return int(g)


def _split_big(m, budget):
    """[d, m // d] for a proper divisor d of the composite m, or None past the budget."""
    power = _perfect_power(m)
    if power is not None:
        return [power[0]] * power[1]
    for c in range(1, 1 << 30):
        d = _rho_big(m, c, budget)
        if d == 0:
            return None
        if d != m:
            return [d, m // d]


def _factor_big(n, budget):
    factors = []
    for p in _TRIAL_PRIMES:
        while n % p == 0:
            factors.append(p)
            n //= p
    pending = [n] if n > 1 else []
    while pending:
        m = pending.pop()
        if m.bit_length() <= 128:
            found, rest = factor(m, budget.deadline, budget.iterations)
            factors += found
            if rest > 1:
                return factors, math.prod(pending) * rest
        elif _is_prime_big(m):
            factors.append(m)
        else:
            parts = _split_big(m, budget)
            if parts is None:
                return factors, math.prod(pending) * m
            pending += parts
    return factors, 1
