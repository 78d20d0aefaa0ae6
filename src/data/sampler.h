/* Which samples each rank sees, in which order, epoch by epoch (spec/ssd-reference.md 6.5).
 *
 * The scheme is PyTorch's DistributedSampler, which with one rank is also the reference's
 * single-process shuffle:
 *   - per epoch, one permutation of the n samples, identical on every rank: a Fisher-Yates
 *     shuffle driven by the Philox stream (seed, SHUFFLE domain, epoch) -- or the identity when
 *     shuffling is off (validation);
 *   - the list is padded to a multiple of the world size by repeating its head;
 *   - rank r takes positions r, r + world, r + 2*world, ...;
 *   - batches are consecutive runs of `batch` of those; the last batch of an epoch may be
 *     smaller (drop_last = False).
 * Every sample position also has a GLOBAL SLOT, its position in the padded list. The loader keys
 * a sample's augmentation randomness by (epoch, slot), so a global batch gets the same pixels
 * whether it is cut over 1 rank or 8, and whatever the number of worker threads. */
#ifndef SSD_DATA_SAMPLER_H
#define SSD_DATA_SAMPLER_H

#include <stdint.h>

typedef struct ssd_sampler {
    int64_t n;           /* dataset size (> 0) */
    int batch;           /* per-rank batch size (> 0) */
    int rank, world;     /* 0 <= rank < world */
    int shuffle;
    uint32_t seed;
    int64_t per_rank;    /* ceil(n / world) */
    int64_t iters;       /* batches per epoch per rank: ceil(per_rank / batch) */
} ssd_sampler;

void ssd_sampler_init(ssd_sampler *s, int64_t n, int batch, int rank, int world, int shuffle,
                      uint32_t seed);

/* The epoch's permutation of 0..n-1 into perm[n] (same on every rank). */
void ssd_sampler_permutation(const ssd_sampler *s, int64_t epoch, int64_t *perm);

/* Number of samples in batch `iter` (0 <= iter < iters) of this rank. */
int ssd_sampler_batch_size(const ssd_sampler *s, int64_t iter);

/* Dataset index and global slot of the k-th sample (0 <= k < batch_size) of batch `iter`,
 * given the epoch's permutation. */
void ssd_sampler_sample(const ssd_sampler *s, const int64_t *perm, int64_t iter, int k,
                        int64_t *index, int64_t *slot);

#endif
