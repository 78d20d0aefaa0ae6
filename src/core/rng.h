/* Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11). There is no global generator: every stream is an explicit value
 * derived from (seed, domain, rank, worker, index), so results never depend on which thread
 * ran first or how many threads there are.
 *
 * Stream layout: key = (seed, domain); counter = (block, rank | worker << 16, index lo, index hi).
 * `domain` separates uses (parameter init, shuffling, augmentation, ...); `index` is whatever
 * the caller iterates (e.g. epoch << 32 | sample). A stream yields 2^32 blocks of 4 words. */
#ifndef SSD_CORE_RNG_H
#define SSD_CORE_RNG_H

#include <stdint.h>

typedef struct ssd_rng {
    uint32_t key[2];
    uint32_t ctr[4];
    uint32_t buf[4]; /* the current block's output */
    int used;        /* words of buf already consumed (4 = need a new block) */
} ssd_rng;

/* Well-known domains; callers may define more (any 32-bit value). */
enum {
    SSD_RNG_DOMAIN_INIT = 1,    /* parameter initialisation */
    SSD_RNG_DOMAIN_SHUFFLE = 2, /* per-epoch sampler permutation */
    SSD_RNG_DOMAIN_AUGMENT = 3, /* data augmentation */
    SSD_RNG_DOMAIN_TEST = 100   /* tests and benchmarks */
};

/* rank and worker must be < 65536. */
ssd_rng ssd_rng_stream(uint32_t seed, uint32_t domain, uint32_t rank, uint32_t worker,
                       uint64_t index);

/* The bare Philox4x32-10 block function (exposed for known-answer tests). */
void ssd_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

uint32_t ssd_rng_u32(ssd_rng *r);
uint64_t ssd_rng_u64(ssd_rng *r);
/* Uniform in [0, 1): 24 random bits for float, 53 for double. */
float ssd_rng_uniform(ssd_rng *r);
double ssd_rng_uniform_f64(ssd_rng *r);
/* Uniform in [lo, hi). */
double ssd_rng_range(ssd_rng *r, double lo, double hi);
/* Unbiased integer in [0, n), n > 0 (rejection sampling). */
uint32_t ssd_rng_below(ssd_rng *r, uint32_t n);
/* Standard normal (Box-Muller on two doubles). */
double ssd_rng_normal(ssd_rng *r);

#endif
