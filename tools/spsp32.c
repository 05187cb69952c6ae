// The table SPSP2_32 of grid/_primes.pyx: every odd composite n < 2^32 with no prime factor below
// 257 that is a strong probable prime to base 2. With it, one base-2 test decides primality below
// 2^32. Exhaustive: every odd n is tried. Build and run (about 4 CPU minutes):
//   gcc -O3 -o spsp32 tools/spsp32.c && ./spsp32 > spsp32.txt
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
typedef unsigned __int128 u128;
static inline uint64_t redc(u128 t, uint64_t n, uint64_t ninv) {  // t < n 2^64, ninv = n^-1 mod 2^64
    uint64_t hi = t >> 64, q = (uint64_t)t * ninv, qh = ((u128)q * n) >> 64;
    return hi - qh + (hi < qh ? n : 0);
}
static int sprp(uint64_t n, uint64_t a) {
    uint64_t inv = n; for (int k = 0; k < 5; k++) inv *= 2 - n * inv;
    uint64_t one = ((u128)1 << 64) % n, mone = n - one;
    uint64_t d = n - 1; int s = __builtin_ctzll(d); d >>= s;
    uint64_t x = one, am = ((u128)(a % n) << 64) % n;  // a^d, left to right
    for (int i = 63 - __builtin_clzll(d); i >= 0; i--) {
        x = redc((u128)x * x, n, inv);
        if ((d >> i) & 1) x = redc((u128)x * am, n, inv);
    }
    if (a % n == 0) return 1;
    if (x == one || x == mone) return 1;
    for (int r = 1; r < s; r++) { x = redc((u128)x * x, n, inv); if (x == mone) return 1; }
    return 0;
}
// Jaeschke: n < 4,759,123,141 is prime iff it is a strong probable prime to bases 2, 7 and 61
static int is_composite(uint64_t n) { return !(sprp(n, 7) && sprp(n, 61)); }
static int coprime_small(uint64_t n) {  // no odd prime factor below 257: grid's trial division takes those
    for (uint64_t p = 3; p < 257; p += 2) if (n % p == 0) return 0;
    return 1;
}
static int coprime_53(uint64_t n) {  // the same for primes up to 53 with constant divisors: a cheap first pass
    return n % 3 && n % 5 && n % 7 && n % 11 && n % 13 && n % 17 && n % 19 && n % 23 && n % 29
        && n % 31 && n % 37 && n % 41 && n % 43 && n % 47 && n % 53;
}
int main(int argc, char** argv) {
    uint64_t lo = argc > 1 ? strtoull(argv[1], 0, 0) : 3, hi = argc > 2 ? strtoull(argv[2], 0, 0) : ((uint64_t)1 << 32);
    lo |= 1;
    for (uint64_t n = lo; n < hi; n += 2)
        if (coprime_53(n) && sprp(n, 2) && is_composite(n) && coprime_small(n)) printf("%llu\n", (unsigned long long)n);
    return 0;
}
