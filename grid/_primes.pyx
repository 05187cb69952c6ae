# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The factorization kernel: nogil loops on uint64_t and unsigned __int128, Python ints beyond.

Layout, bottom up: small-prime tables; 64-bit Montgomery arithmetic, a base-2 test and a
table of its pseudoprimes below 2^32, BPSW above; the same on 128 bits; the budget; Hart's one
line factoring and Brent's rho; ECM on 128 bits, and on 64 bits with Suyama's curves; the nogil
drivers that factor a whole 64- or 128-bit number; the Python-level entry points; the
Python-int path beyond 128 bits; the pseudoprime table. The 64- and 128-bit functions mirror
each other on purpose: Cython has no templates, and a shared 128-bit version would slow the
64-bit path threefold.
"""
from libc.stdint cimport uint64_t, int64_t, uint32_t
from libc.math cimport sqrt, cbrt
from posix.time cimport clock_gettime, timespec, CLOCK_MONOTONIC, CLOCK_REALTIME

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

DEF N_SPSP2_32 = 1971      # base-2 strong pseudoprimes below 2^32 free of primes below 257
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
cdef uint32_t SPSP2_32[N_SPSP2_32]  # filled from _SPSP2_32 at the end of this module
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

cdef bint spsp2_32(uint32_t n) noexcept nogil:
    """True iff n is in SPSP2_32 (binary search)."""
    cdef int lo = 0, hi = N_SPSP2_32, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if SPSP2_32[mid] < n:
            lo = mid + 1
        else:
            hi = mid
    return lo < N_SPSP2_32 and SPSP2_32[lo] == n

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
    if (n >> 32) == 0:
        return sprp2_64(&m) and not spsp2_32(<uint32_t>n)
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
    # lazy: x, y < 2n + c < 3n, so 0 < x + 3n - y < 6n, and with q < 2n the product stays
    # below 12 n^2 < n 2^64 for n < 2^60
    if m.lazy:
        return mulm_lazy(q, x + 3 * m.n - y, m)
    return mulm(q, absdiff(x, y), m)

cdef inline uint64_t rho_step(uint64_t y, uint64_t c, const Mont64* m) noexcept nogil:
    # lazy: y < 2n + c < 3n keeps y^2 < n 2^64, so neither the product nor the sum is reduced
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
    if (x >> 64) == 0:
        return <uint64_t>x
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
    if n <= U64_MAX:
        n128 = <uint64_t>n
        if is_prime64(<uint64_t>n):  # a task of one prime, as the original sent: no GIL round trip
            return [n], 1
    elif n.bit_length() > 128:
        return _factor_big(n, _PyBudget(deadline, iterations))
    else:
        n128 = int_to_u128(n)
    b.deadline = deadline
    b.iterations = iterations
    b.since_clock = 0
    b.exceeded = False
    with nogil:
        factor_work(&w, n128, &b)
    rest = 1
    for i in range(w.npending):
        rest *= u128_to_int(w.pending[i])
    return [u128_to_int(w.factors[i]) for i in range(w.nfactors)], rest


cdef inline double wall_clock() noexcept nogil:
    """The clock of time.time()."""
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef list _sorted_texts(Work* w):
    cdef int i, j
    cdef u128 x
    for i in range(1, w.nfactors):  # a few factors: insertion sort
        x = w.factors[i]
        j = i - 1
        while j >= 0 and w.factors[j] > x:
            w.factors[j + 1] = w.factors[j]
            j -= 1
        w.factors[j + 1] = x
    return [str(u128_to_int(w.factors[i])) for i in range(w.nfactors)]


def factor_run(list numbers, double budget, double began):
    """The worker's loop over the numbers of a compact bundle, in C.

    Factors numbers[0], numbers[1], ... in turn, each within `budget` seconds (a deadline of its own), while they are
    ints in [1, 2^64). Returns (factors, started, completed, over): each one's prime factors as sorted decimal strings
    and its start and end on the clock of time.time() (the first starts at `began`, each one where the last ended),
    and `over`: None, or (found, rest) of the number whose budget ran out, the next after those answered. The caller
    takes the numbers left, from there on, one by one.
    """
    cdef list factors = [], started = [], completed = []
    cdef Work w
    cdef Budget b
    cdef uint64_t x
    cdef double done
    cdef bint whole
    cdef int i
    for n in numbers:
        if type(n) is not int or n < 1 or n > U64_MAX:
            break
        x = <uint64_t>n
        if is_prime64(x):
            texts = [str(n)]
        else:
            b.deadline = monotonic() + budget
            b.iterations = 0x7FFFFFFFFFFFFFFF
            b.since_clock = 0
            b.exceeded = False
            with nogil:
                whole = factor_work(&w, <u128>x, &b)
            if not whole:
                rest = 1
                for i in range(w.npending):
                    rest *= u128_to_int(w.pending[i])
                return factors, started, completed, ([u128_to_int(w.factors[i]) for i in range(w.nfactors)], rest)
            texts = _sorted_texts(&w)
        done = wall_clock()
        factors.append(texts)
        started.append(began)
        completed.append(done)
        began = done
    return factors, started, completed, None


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


# ---------------------------------------------------------------- tables

# Every odd composite n < 2^32 with no prime factor below 257 that passes the strong base-2
# test (1971 numbers), from an exhaustive scan by tools/spsp32.c: with trial division below
# 257, one base-2 test and a look-up here decide primality below 2^32.
_SPSP2_32 = (
    280601, 390937, 458989, 514447, 580337, 741751, 838861, 873181, 877099, 916327, 976873, 983401,
    1082401, 1194649, 1207361, 1251949, 1252697, 1302451, 1325843, 1357441, 1373653, 1441091,
    1493857, 1507963, 1509709, 1530787, 1678541, 1730977, 1811573, 1876393, 1969417, 1987021,
    2004403, 2081713, 2181961, 2205967, 2264369, 2269093, 2284453, 2304167, 2387797, 2510569,
    2746477, 2748023, 2757241, 2811271, 2909197, 2976487, 3090091, 3116107, 3125281, 3375041,
    3400013, 3539101, 3567481, 3898129, 4181921, 4188889, 4360621, 4469471, 4513841, 4863127,
    5016191, 5044033, 5173169, 5173601, 5256091, 5489641, 5590621, 5672041, 5919187, 6140161,
    6226193, 6233977, 6334351, 6368689, 6386993, 6787327, 6836233, 6952037, 7306261, 7306561,
    7462001, 7674967, 7759937, 7820201, 7883731, 8036033, 8095447, 8384513, 8534233, 8725753,
    9006401, 9056501, 9073513, 9371251, 9564169, 9567673, 9729301, 9863461, 10323769, 10386241,
    10425511, 10610063, 10712857, 10763653, 10974881, 11335501, 11541307, 11585293, 12263131,
    12327121, 13057787, 13338371, 13446253, 13635289, 13694761, 13747361, 14179537, 14324473,
    14709241, 14794081, 15101893, 15139199, 15188557, 15479777, 15802681, 15976747, 15978007,
    16070429, 16132321, 16324001, 16360381, 16705021, 16773121, 16822081, 16853077, 16879501,
    17116837, 17134043, 17208601, 17327773, 17375249, 18073817, 18366937, 18443701, 18454921,
    18535177, 18653353, 18740971, 19328653, 19404139, 19471033, 19607561, 20261251, 20417311,
    20647621, 21303343, 21306157, 21359521, 21400481, 21623659, 22087477, 22591301, 22669501,
    22849481, 22953673, 23464033, 23577497, 23734901, 23828017, 23872213, 23963869, 24214051,
    25080101, 25326001, 25629913, 26377921, 26821601, 26877421, 27108397, 27219697, 27271151,
    27279409, 27331921, 27380831, 27392041, 27509653, 27664033, 27798461, 27808463, 28325881,
    28527049, 28572961, 29214541, 29581501, 30185569, 30219757, 30295141, 30388753, 30662497,
    30740417, 30881551, 30894307, 31166803, 31436123, 33627301, 33704101, 34003061, 34856167,
    35576599, 35820937, 35851037, 36307981, 36919681, 37109467, 37439201, 38010307, 38046817,
    38118763, 38210323, 39465091, 39655153, 40629601, 40782589, 40827473, 40987201, 41121433,
    41604109, 41642681, 41662297, 41840809, 42485119, 42623017, 42984589, 43363601, 43661257,
    44314129, 45100177, 45414433, 45819541, 46325029, 46517857, 46679761, 47220367, 47903701,
    47918581, 48191653, 48269761, 48316969, 48448661, 48551161, 49303801, 49411801, 50155733,
    51129781, 51302353, 51500521, 52072021, 52119289, 52204237, 53656021, 53675623, 54029741,
    54449431, 55109401, 55318957, 55729957, 56420033, 58422409, 58449847, 58509977, 59631211,
    59840537, 59913157, 60352921, 60547831, 60566431, 60581401, 60696661, 60738257, 61201009,
    61219789, 61832377, 63001801, 63065281, 63167743, 63318169, 63346999, 63388033, 64605041,
    65254393, 65301013, 65359477, 66096253, 67194401, 67642513, 68102641, 68165761, 68512867,
    69030901, 69128641, 69176647, 69228967, 69231061, 69485281, 69885649, 70149631, 70593931,
    70728121, 72498253, 72543547, 73562833, 73645001, 74411131, 74927161, 75140137, 75565873,
    76725091, 76745101, 77533123, 77812153, 77817979, 78939089, 79398901, 79417801, 79786523,
    80375707, 80556337, 80687881, 81433591, 82870517, 83204801, 84421081, 84487457, 84998503,
    85519337, 86027329, 86999837, 87499651, 87694261, 88368853, 89308771, 91433281, 93431521,
    93541537, 94316401, 94502701, 95451361, 95452781, 96618397, 96904081, 96925921, 97496449,
    97796953, 97863529, 97924217, 99115297, 99486889, 99789673, 100463443, 100618933, 100943201,
    101270251, 101276579, 102004421, 102678031, 102690677, 104078857, 105305443, 105919633,
    106485121, 106743073, 107543333, 108596953, 109437751, 110139499, 110312773, 110717861,
    111654401, 112402981, 112828801, 114305441, 114701341, 115174681, 115804501, 115873801,
    116090081, 116617289, 117987841, 119204809, 119558011, 120517021, 121472359, 122166307,
    123671671, 123987793, 124145473, 126132553, 127050067, 128079409, 128124151, 128665319,
    128987429, 129256273, 129357061, 131567929, 132332201, 132338881, 132575071, 133216381,
    133467517, 134696801, 134767153, 135263269, 135308881, 135969401, 136043641, 136661201,
    137415821, 137763037, 138030721, 139487041, 143168581, 145348529, 146156617, 146884393,
    147028001, 147287141, 148109473, 148910653, 149389633, 150960239, 150988753, 151533377,
    152716537, 153754873, 153928133, 154287451, 156114061, 156532799, 157069189, 157405249,
    157725829, 158068153, 158192317, 158397247, 158496911, 158895281, 160348189, 160491329,
    160587841, 160672201, 161304001, 162026869, 162067441, 162690481, 165224321, 165938653,
    166082309, 166827943, 167579497, 167692141, 167881121, 168566501, 169655641, 170782921,
    172116181, 174479729, 176030977, 176597821, 177927641, 177951973, 179285137, 179820257,
    180497633, 180703451, 181285537, 181542601, 181647497, 182383111, 183677341, 184411567,
    186183469, 187667969, 187761241, 189714193, 189738361, 190382161, 190913297, 191233813,
    191981609, 192346153, 192857761, 193330237, 193949641, 194556451, 196035001, 196049701,
    198982759, 199674721, 200143351, 202130197, 203505697, 204582457, 205057561, 206304961,
    206504033, 206529737, 207008569, 207030541, 207477001, 207618781, 208051201, 208969223,
    210842113, 213035761, 214858717, 215436241, 217875571, 218642029, 218947121, 220531501,
    220883521, 221368153, 222630193, 223449463, 223625851, 223782263, 225853633, 226359547,
    226450297, 227444101, 227475481, 228652201, 229589413, 230357761, 231383461, 232771501,
    235426913, 235928071, 237791143, 238001653, 240068041, 240785047, 242650717, 244883981,
    245006623, 245950561, 246099317, 246282511, 246434761, 247318957, 247416101, 250958401,
    251663837, 252853921, 253610281, 253893397, 255416897, 257590661, 258020473, 258043229,
    259765747, 260156101, 260518801, 260963389, 261703417, 262979501, 264269449, 265020001,
    270525737, 271272569, 271763467, 271950829, 273480637, 274919401, 275619961, 276131137,
    276638321, 280885153, 282471853, 282769771, 284166877, 284301751, 284736091, 284834299,
    287449091, 288099001, 288117721, 288735277, 290643601, 290953921, 292902481, 293847721,
    295419097, 298212601, 301413001, 302635351, 307694323, 307972801, 310978027, 311177213,
    311411629, 311655829, 311671361, 312408113, 312614021, 314184487, 315034513, 315351521,
    317365933, 317796119, 319440769, 319726177, 320326003, 321324589, 322469701, 322941881,
    324477697, 325546873, 326266051, 326405713, 326695141, 327398009, 328302901, 329153653,
    331658081, 331934989, 337135501, 337420679, 337665901, 338125537, 338458807, 339492169,
    341958121, 341994131, 343017529, 344201441, 344255551, 344776301, 346080391, 348989101,
    349752913, 350031973, 351058753, 352802803, 356836819, 357872971, 358416577, 359394751,
    359727073, 360145633, 360787771, 361312337, 363170837, 365077373, 366487201, 367559501,
    369667561, 371011801, 371611153, 372167101, 373533617, 373669453, 373906513, 374988661,
    376957153, 377192353, 377334497, 377806687, 377869031, 385319089, 390612221, 392679737,
    393611653, 394723177, 399156661, 399302581, 403095967, 405782623, 407889161, 410613809,
    410680357, 412836689, 413429801, 414216461, 414368641, 415204501, 415476343, 417779909,
    418044563, 418226581, 418616161, 418617281, 418667401, 419184481, 421942951, 422928101,
    423465001, 424411501, 425967301, 426770437, 426783811, 427294141, 428180191, 429135841,
    429509837, 430046857, 430646401, 430733701, 435016187, 435993301, 437462101, 437866087,
    439309261, 441650591, 441758461, 442050577, 442181291, 446414621, 450807481, 450866021,
    453366029, 453967739, 455198563, 460251733, 461151121, 461272267, 462587329, 462639409,
    464012033, 464955857, 466290949, 466758181, 467100937, 470268137, 470644021, 471535373,
    473581057, 475723849, 478614067, 480668347, 482488393, 483029821, 486902929, 487896601,
    488585521, 489994201, 493108481, 494288677, 495909871, 496560349, 497148599, 497285713,
    498662561, 500747293, 501172241, 504870241, 505473263, 505532773, 505798213, 506349421,
    507142567, 508606771, 509302873, 509551201, 510925609, 511215521, 511611673, 514738981,
    516764063, 517662001, 518216201, 518548801, 522758233, 523756711, 528220117, 531681281,
    533429881, 534782293, 535252867, 535428577, 536114197, 536342419, 540621181, 540654409,
    540680141, 544861633, 545550433, 546117301, 546322201, 548989561, 550132741, 550230409,
    550635373, 550853137, 551313001, 553027201, 554487121, 554599051, 555321007, 556069849,
    556095433, 556114609, 558235109, 558900821, 561448487, 562367821, 564298489, 564689381,
    565664761, 567358513, 568902001, 570941881, 572123521, 572228929, 572567353, 572936869,
    576724219, 577352641, 577613261, 579956653, 581618143, 582799951, 585261637, 586706821,
    587343541, 588049001, 592467451, 592468777, 593682169, 593728489, 597537361, 599135767,
    600893921, 601606487, 602379181, 609361567, 609813781, 611770513, 611812321, 613849601,
    615361183, 616280897, 617087701, 619239457, 620544961, 620755537, 621769669, 626717471,
    627886657, 628868467, 629134081, 630811513, 631767943, 631974613, 633289807, 635155291,
    635291077, 635319361, 636337073, 636936697, 638837761, 639807781, 640650931, 640977373,
    643036321, 643552909, 644457551, 644731357, 645556481, 651151801, 651514753, 653260633,
    660095641, 660754117, 661122881, 661207177, 662134201, 663760681, 672103001, 673778827,
    676359391, 678481693, 680983817, 681124207, 682528687, 687741401, 693456521, 696998251,
    698192041, 698819711, 702683101, 705303457, 705351583, 707691601, 709409993, 710721001,
    714490481, 717096641, 717653129, 717831211, 722955773, 724160251, 724969087, 725508241,
    731276521, 732805681, 739444021, 740988151, 741214237, 742017181, 745493761, 745745461,
    746331041, 747406801, 750632137, 751705597, 753233717, 753574537, 753594001, 756205633,
    756271909, 758581651, 758687581, 758901701, 759252367, 763907741, 764033999, 764240611,
    765378241, 766823797, 770909107, 770937931, 771337891, 773131927, 773807401, 775368901,
    775896181, 776443769, 777218989, 781471001, 782823281, 784450393, 784777393, 784783477,
    787085857, 787209277, 788046901, 790453049, 791118043, 794201333, 796072003, 796200901,
    796560703, 797834017, 799630753, 799898833, 799916101, 801093011, 801227269, 801866647,
    805771501, 809790881, 811607777, 811730923, 816024161, 816215401, 819466201, 822018961,
    826004467, 830664451, 832048447, 839268139, 839280691, 839908217, 840749761, 841217653,
    842785841, 842824981, 843161887, 844545271, 846961321, 848090377, 849548671, 854094781,
    862678081, 867022747, 867110501, 867638201, 868691401, 870985223, 871157233, 878940833,
    879995689, 880870513, 880922657, 883276549, 884304037, 888868441, 893692819, 894264337,
    899019353, 900736411, 902566501, 903108821, 903390643, 905040953, 907378669, 907670501,
    910202509, 914906539, 921858631, 923437213, 926756881, 927106561, 929159941, 932148253,
    936421141, 938376181, 946034057, 947878081, 949317217, 949697233, 952893881, 954924013,
    958131157, 960946321, 962489557, 962523169, 965501857, 967266451, 967287751, 968283247,
    970586713, 974113601, 974471243, 977483449, 979363153, 980056507, 981484561, 994133479,
    995586373, 998590601, 998596741, 999828727, 1005833971, 1006800829, 1008839999, 1009025263,
    1009140161, 1011319501, 1011333061, 1011570457, 1011909271, 1012438391, 1013833153, 1020515761,
    1022336611, 1027744453, 1028494429, 1040234231, 1054999441, 1056121453, 1057426651, 1065602281,
    1069388497, 1070941987, 1072898711, 1078467589, 1084241341, 1084444481, 1094042321, 1097416321,
    1098743563, 1100624857, 1102573501, 1104194521, 1105038871, 1106529761, 1106595493, 1108135381,
    1109304913, 1110582947, 1111205873, 1111939201, 1112671603, 1116379301, 1117202557, 1117828001,
    1117890019, 1119412321, 1120981021, 1121176981, 1123406047, 1123625501, 1124396521, 1130933429,
    1134367777, 1140573601, 1147434289, 1151670001, 1153164097, 1154987209, 1156761911, 1157839381,
    1160844821, 1163227759, 1165717129, 1166598217, 1168221121, 1168256953, 1180970407, 1181566219,
    1183338241, 1184554801, 1186325981, 1187235193, 1191153937, 1192314817, 1192903531, 1193557093,
    1196852273, 1202142061, 1204205449, 1205772499, 1209998077, 1210653541, 1213619761, 1217823517,
    1217924159, 1220114377, 1221127013, 1222861271, 1223531677, 1223941657, 1226855293, 1229491063,
    1229751667, 1230446653, 1232445677, 1235188597, 1236313501, 1236442421, 1238825569, 1242171349,
    1254277909, 1255665613, 1265477791, 1267345081, 1270489621, 1270667353, 1272866167, 1282568741,
    1286298263, 1296613501, 1297443913, 1301926081, 1302745481, 1307823661, 1308998741, 1309983901,
    1310329567, 1312573123, 1313396221, 1318717531, 1319992181, 1320793813, 1321058213, 1323668917,
    1325172421, 1325329297, 1328256247, 1331973329, 1344597577, 1344975721, 1345514101, 1350685001,
    1352453257, 1356328121, 1357459183, 1362463807, 1362515701, 1366608377, 1368769681, 1375322101,
    1378646179, 1383283129, 1385656829, 1386705433, 1391890033, 1394640941, 1397357851, 1398883201,
    1400859847, 1404008369, 1404253369, 1406826241, 1409372779, 1414154827, 1414529533, 1421475031,
    1424503849, 1425860101, 1426319563, 1427771089, 1438648993, 1440922891, 1441678411, 1442945689,
    1443388481, 1446818651, 1448921633, 1454282449, 1456527461, 1457378449, 1461307717, 1463065501,
    1463178817, 1464568381, 1465908193, 1465945417, 1468824787, 1469960377, 1470080501, 1470650851,
    1481626513, 1485061471, 1486564301, 1493114149, 1495190699, 1497965713, 1499971457, 1499989177,
    1500142001, 1502171117, 1502403121, 1503240559, 1503705601, 1504832033, 1509156013, 1515175087,
    1517039371, 1518290707, 1521221473, 1526732803, 1529648231, 1529819971, 1530495289, 1532419099,
    1532569681, 1532755369, 1534063081, 1535020133, 1536251047, 1537433899, 1537641691, 1538012449,
    1539583921, 1541955409, 1545019813, 1545177581, 1546106773, 1546508057, 1547140841, 1547712601,
    1554270481, 1565893201, 1566594551, 1567830241, 1568916311, 1574362441, 1577983489, 1578009401,
    1581576641, 1582783777, 1583230241, 1586436193, 1593706201, 1603765021, 1603810561, 1603994701,
    1609916491, 1614508267, 1617795181, 1617921667, 1620646177, 1630062253, 1631314609, 1633044241,
    1637434657, 1637930893, 1638294661, 1639846391, 1641971701, 1644637051, 1647225529, 1648076041,
    1649430889, 1650265549, 1650682153, 1656229921, 1661202113, 1668037621, 1671603667, 1672125131,
    1675978193, 1678274581, 1679130641, 1685433413, 1686001861, 1692605041, 1695158921, 1700250049,
    1709909293, 1714322377, 1716774481, 1718013133, 1721061497, 1721986313, 1726372441, 1731048937,
    1734059291, 1735071913, 1740214841, 1743166441, 1746721681, 1760014561, 1769267761, 1770236893,
    1773582977, 1776820033, 1779649381, 1785843547, 1787934881, 1790023861, 1791426787, 1792442737,
    1792588813, 1794814103, 1802510669, 1803768091, 1804906517, 1805947313, 1809888967, 1816408273,
    1819829749, 1835114401, 1844028961, 1846171781, 1850233897, 1850598961, 1854940231, 1856689453,
    1860373241, 1862880401, 1873177693, 1878691753, 1879111697, 1879775501, 1894909141, 1894955311,
    1899081757, 1905958891, 1909566073, 1910134309, 1911197947, 1912950241, 1914303841, 1916987593,
    1917397637, 1920301951, 1921309633, 1922092567, 1922687293, 1923224689, 1923311317, 1923845801,
    1928903971, 1930534453, 1930915169, 1934350351, 1938264241, 1950987193, 1957705177, 1959659857,
    1960708261, 1965007601, 1968002149, 1970065681, 1988965861, 1991063449, 1995830761, 1996231189,
    1996339649, 1997844157, 1999053601, 2007646961, 2013554869, 2016481477, 2017021333, 2017509601,
    2021392369, 2021884343, 2028812399, 2029830409, 2036224321, 2050617713, 2055634561, 2057835781,
    2062612033, 2068867841, 2076192007, 2081039297, 2081551753, 2082146617, 2086645009, 2093300401,
    2095627153, 2096046457, 2100292841, 2101744837, 2104994449, 2107148761, 2114643217, 2115769633,
    2116483027, 2116541221, 2117031263, 2117555641, 2118621097, 2120096161, 2123601751, 2124691213,
    2127197489, 2129304997, 2131811501, 2140771609, 2141340833, 2144961253, 2147418113, 2152627801,
    2155416251, 2172155819, 2173540951, 2173579801, 2175126601, 2175406201, 2177645557, 2185362233,
    2187717761, 2200115713, 2201924341, 2202205897, 2203649197, 2206095589, 2210578759, 2213431729,
    2216960929, 2217879901, 2229468697, 2231332357, 2241880033, 2241982009, 2246762899, 2251732033,
    2256748777, 2256751837, 2262861901, 2269307587, 2274584089, 2283289681, 2284416181, 2289251669,
    2290910257, 2292068143, 2295209281, 2296995121, 2300795353, 2309241601, 2311558021, 2311575001,
    2315137261, 2320527613, 2323147201, 2324867399, 2330569541, 2331181621, 2335341601, 2338157597,
    2340460487, 2345907961, 2347597981, 2352371251, 2354453561, 2355230749, 2355622721, 2355735089,
    2370928337, 2372976563, 2375415841, 2381782597, 2382678101, 2385574201, 2389544977, 2394311233,
    2398393661, 2411128441, 2412172153, 2413973071, 2428648967, 2430697513, 2431144801, 2432761633,
    2432860273, 2433791593, 2434974433, 2435091221, 2437907779, 2438778413, 2443708961, 2448039497,
    2471205361, 2473120961, 2473189441, 2474676949, 2476283239, 2477814193, 2478643907, 2480147521,
    2482435981, 2482682131, 2484408301, 2488420801, 2492480233, 2494660033, 2495834329, 2499327041,
    2501012599, 2502525637, 2506733189, 2507121037, 2508178843, 2513230891, 2519297089, 2526566041,
    2528291341, 2530351561, 2532630787, 2533465661, 2533797017, 2537105761, 2539406281, 2541660367,
    2542479481, 2545934077, 2550780277, 2551365769, 2555391481, 2561945401, 2565186137, 2571180247,
    2575060949, 2582952769, 2584460701, 2588582089, 2597294701, 2602343521, 2604803701, 2611122229,
    2611461529, 2617563031, 2621080741, 2621977627, 2625903601, 2626783921, 2627284987, 2632605049,
    2634284801, 2634804481, 2634820813, 2639099233, 2642159809, 2642582251, 2646751249, 2649907201,
    2651507713, 2656494271, 2658696301, 2668469431, 2672605657, 2672651521, 2681041843, 2682823681,
    2683742491, 2684284441, 2687655169, 2688124001, 2693739751, 2695115473, 2700818017, 2700891839,
    2701878941, 2704957909, 2706863833, 2707661501, 2716157989, 2716275007, 2717428033, 2721721939,
    2725357249, 2736316301, 2738184697, 2753333227, 2759392633, 2765323397, 2766006253, 2767672189,
    2769080161, 2769602333, 2777887297, 2778304273, 2781117721, 2800352011, 2809635901, 2823570433,
    2824256377, 2824804693, 2828205397, 2832743713, 2837917633, 2840634109, 2840871041, 2847894377,
    2848466281, 2848722131, 2855512909, 2866005139, 2866527841, 2871536561, 2872948321, 2874382853,
    2877769501, 2881429741, 2882370481, 2885594497, 2890316801, 2890414873, 2895004927, 2899294889,
    2903776129, 2916247819, 2918295451, 2920691161, 2929106753, 2930831641, 2931708097, 2932327549,
    2936227603, 2936958181, 2941343633, 2944555681, 2945208001, 2951136343, 2956724317, 2957320351,
    2965700233, 2968206601, 2974506841, 2986025677, 2993462713, 2994098281, 2994415201, 2998202353,
    3004443679, 3014101261, 3015502181, 3016957381, 3018147217, 3018576689, 3025350343, 3028586471,
    3035375047, 3036079729, 3037295801, 3037781251, 3038880473, 3039681457, 3041984353, 3050190163,
    3056100623, 3057886591, 3058670677, 3059397793, 3063685633, 3065998717, 3082054697, 3083053387,
    3083537689, 3083884651, 3094763851, 3103800701, 3114125071, 3120445697, 3122287981, 3133899409,
    3150972917, 3156599161, 3156643141, 3166504273, 3172658653, 3175204531, 3175255717, 3181356263,
    3182606857, 3182655361, 3187035113, 3187421077, 3187939921, 3197565001, 3197911001, 3199164901,
    3207297773, 3208902491, 3219808411, 3222693421, 3227082823, 3227209057, 3237992101, 3242533897,
    3248236309, 3250348417, 3252148621, 3257334541, 3258647809, 3261114601, 3263097641, 3263626957,
    3265122451, 3267417677, 3274264033, 3275671969, 3278640289, 3282974857, 3287174129, 3295362727,
    3296403601, 3299246833, 3302322241, 3305829073, 3306686659, 3306957593, 3312536569, 3315139717,
    3320669437, 3323590463, 3323829169, 3328354801, 3334350781, 3340214413, 3344191241, 3346172189,
    3349218881, 3352091557, 3355382857, 3369139201, 3371024521, 3371693063, 3381052177, 3385842877,
    3386603221, 3387487351, 3389030261, 3395091311, 3399205591, 3402234749, 3407772817, 3407952169,
    3408135121, 3411829693, 3415379701, 3415832137, 3417522841, 3420143941, 3423580481, 3427050673,
    3428133103, 3429982081, 3430804297, 3432695921, 3433458073, 3434575327, 3443704261, 3449768513,
    3450717901, 3458257741, 3464236901, 3466158361, 3470716657, 3482161261, 3492178873, 3492883081,
    3504132113, 3512291021, 3513604657, 3519318721, 3524086333, 3525088961, 3529119361, 3529864391,
    3533662129, 3533856913, 3538213381, 3542303047, 3548378341, 3552158521, 3553567057, 3557646401,
    3562963973, 3563340457, 3566428301, 3574891757, 3583249921, 3583604161, 3586833253, 3587553971,
    3590409439, 3594110081, 3596491907, 3596815169, 3605151241, 3612298321, 3614770573, 3628526287,
    3630596257, 3651572609, 3662387977, 3662503093, 3663084541, 3672754633, 3679657997, 3685775741,
    3692307161, 3695628133, 3697278427, 3700801861, 3705582073, 3708123301, 3708905341, 3709626961,
    3712887289, 3713287801, 3723699373, 3725016749, 3729097633, 3733761739, 3746101189, 3749383681,
    3751782737, 3754680403, 3756668401, 3760622689, 3762110881, 3767640601, 3798040471, 3798626833,
    3800084401, 3805699501, 3807308269, 3807749821, 3809018947, 3813919453, 3817706621, 3827035237,
    3846174151, 3846532801, 3847106803, 3852800033, 3865604023, 3867183937, 3874471147, 3874523017,
    3875096893, 3886515361, 3887423437, 3891892421, 3894053311, 3897241129, 3897869201, 3900327241,
    3903711841, 3905533721, 3907577521, 3907752241, 3914880337, 3914923211, 3918227437, 3922321561,
    3926912669, 3935864017, 3947383201, 3953408801, 3958930441, 3959578801, 3966350203, 3979485931,
    3987528793, 3987960913, 3991124341, 3997536427, 4005660961, 4011996871, 4015548769, 4034969401,
    4034993269, 4036395581, 4042538497, 4044601751, 4048493983, 4058433931, 4060942381, 4061009971,
    4064633821, 4067039461, 4071644893, 4076009857, 4079665633, 4079682361, 4083376067, 4098258707,
    4100934241, 4103745689, 4108970251, 4109461709, 4110320663, 4113013141, 4115891893, 4117058221,
    4117447441, 4121286907, 4127050621, 4139015987, 4155375349, 4157008813, 4166032873, 4183664101,
    4186561633, 4187360341, 4191864013, 4192060699, 4195843037, 4196323561, 4204344601, 4206006229,
    4206295433, 4212105409, 4218900001, 4232966251, 4234224601, 4237212061, 4244022301, 4244663651,
    4247990917, 4250920459, 4251904273, 4255695013, 4271267333, 4275011401, 4277526901, 4278305651,
)
for _i, _n in enumerate(_SPSP2_32):
    SPSP2_32[_i] = _n
del _i, _n
