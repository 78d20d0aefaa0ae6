#include "core/rng.h"

#include <math.h>

#include "core/log.h"

/* Philox4x32 constants from the SC'11 paper. */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static inline void mulhilo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    *lo = (uint32_t)p;
}

void ssd_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mulhilo(PHILOX_M0, c0, &hi0, &lo0);
        mulhilo(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n1 = lo1;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        uint32_t n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

ssd_rng ssd_rng_stream(uint32_t seed, uint32_t domain, uint32_t rank, uint32_t worker,
                       uint64_t index) {
    SSD_ASSERT(rank < 65536u && worker < 65536u, "rng stream rank %u worker %u out of range",
               rank, worker);
    ssd_rng r;
    r.key[0] = seed;
    r.key[1] = domain;
    r.ctr[0] = 0;
    r.ctr[1] = rank | (worker << 16);
    r.ctr[2] = (uint32_t)index;
    r.ctr[3] = (uint32_t)(index >> 32);
    r.used = 4;
    r.buf[0] = r.buf[1] = r.buf[2] = r.buf[3] = 0;
    return r;
}

uint32_t ssd_rng_u32(ssd_rng *r) {
    if (r->used == 4) {
        ssd_philox4x32_10(r->ctr, r->key, r->buf);
        r->ctr[0]++;
        SSD_ASSERT(r->ctr[0] != 0, "rng stream exhausted (2^32 blocks)");
        r->used = 0;
    }
    return r->buf[r->used++];
}

uint64_t ssd_rng_u64(ssd_rng *r) {
    uint64_t lo = ssd_rng_u32(r);
    uint64_t hi = ssd_rng_u32(r);
    return lo | (hi << 32);
}

float ssd_rng_uniform(ssd_rng *r) { return (float)(ssd_rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

double ssd_rng_uniform_f64(ssd_rng *r) {
    return (double)(ssd_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

double ssd_rng_range(ssd_rng *r, double lo, double hi) {
    return lo + (hi - lo) * ssd_rng_uniform_f64(r);
}

uint32_t ssd_rng_below(ssd_rng *r, uint32_t n) {
    SSD_ASSERT(n > 0, "ssd_rng_below(0)");
    /* Reject the top partial bucket so every value is equally likely. */
    uint32_t limit = UINT32_MAX - (uint32_t)(((uint64_t)UINT32_MAX + 1) % n);
    for (;;) {
        uint32_t x = ssd_rng_u32(r);
        if (x <= limit) return x % n;
    }
}

double ssd_rng_normal(ssd_rng *r) {
    double u1 = 1.0 - ssd_rng_uniform_f64(r); /* (0, 1] so log is finite */
    double u2 = ssd_rng_uniform_f64(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}
