/* DistributedSampler-style epoch order; see sampler.h. */
#include "data/sampler.h"

#include "core/log.h"
#include "core/rng.h"

void ssd_sampler_init(ssd_sampler *s, int64_t n, int batch, int rank, int world, int shuffle,
                      uint32_t seed) {
    SSD_ASSERT(n > 0 && n < ((int64_t)1 << 32), "sampler: dataset size %lld", (long long)n);
    SSD_ASSERT(batch > 0 && world > 0 && rank >= 0 && rank < world,
               "sampler: batch %d rank %d world %d", batch, rank, world);
    s->n = n;
    s->batch = batch;
    s->rank = rank;
    s->world = world;
    s->shuffle = shuffle;
    s->seed = seed;
    s->per_rank = (n + world - 1) / world;
    s->iters = (s->per_rank + batch - 1) / batch;
}

void ssd_sampler_permutation(const ssd_sampler *s, int64_t epoch, int64_t *perm) {
    for (int64_t i = 0; i < s->n; i++) perm[i] = i;
    if (!s->shuffle) return;
    ssd_rng r = ssd_rng_stream(s->seed, SSD_RNG_DOMAIN_SHUFFLE, 0, 0, (uint64_t)epoch);
    for (int64_t i = s->n - 1; i > 0; i--) {
        int64_t j = ssd_rng_below(&r, (uint32_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

int ssd_sampler_batch_size(const ssd_sampler *s, int64_t iter) {
    SSD_ASSERT(iter >= 0 && iter < s->iters, "sampler: batch %lld of %lld", (long long)iter,
               (long long)s->iters);
    int64_t left = s->per_rank - iter * s->batch;
    return left < s->batch ? (int)left : s->batch;
}

void ssd_sampler_sample(const ssd_sampler *s, const int64_t *perm, int64_t iter, int k,
                        int64_t *index, int64_t *slot) {
    int64_t local = iter * s->batch + k; /* position in this rank's list */
    SSD_ASSERT(k >= 0 && local < s->per_rank, "sampler: sample %d of batch %lld", k,
               (long long)iter);
    int64_t g = local * s->world + s->rank; /* position in the padded global list */
    *slot = g;
    *index = perm[g % s->n]; /* padding repeats the head of the permutation */
}
