/* The sampler against brute force: PyTorch DistributedSampler's rules written out the plain
 * way (pad the epoch's permutation with its head, rank r takes r::world, cut into batches), the
 * reference's epoch lengths (spec 6.5), and the properties of the shuffle. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "data/sampler.h"

/* Brute force: the padded list of DistributedSampler, then rank r's sub-list. */
static int64_t *brute_rank_list(const int64_t *perm, int64_t n, int rank, int world,
                                int64_t *len) {
    int64_t per = (n + world - 1) / world, total = per * world;
    int64_t *padded = malloc((size_t)total * sizeof *padded);
    int64_t m = 0;
    while (m < total) /* indices += indices[:padding], repeated while too short */
        for (int64_t i = 0; i < n && m < total; i++) padded[m++] = perm[i];
    int64_t *mine = malloc((size_t)per * sizeof *mine);
    for (int64_t i = 0; i < per; i++) mine[i] = padded[rank + i * world];
    free(padded);
    *len = per;
    return mine;
}

static void check_layout(int64_t n, int batch, int world, int shuffle, uint32_t seed) {
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    for (int r = 0; r < world; r++) {
        ssd_sampler s;
        ssd_sampler_init(&s, n, batch, r, world, shuffle, seed);
        for (int64_t epoch = 0; epoch < 2; epoch++) {
            ssd_sampler_permutation(&s, epoch, perm);
            int64_t len;
            int64_t *mine = brute_rank_list(perm, n, r, world, &len);
            assert_int_equal(s.per_rank, len);
            int64_t pos = 0;
            for (int64_t it = 0; it < s.iters; it++) {
                int bs = ssd_sampler_batch_size(&s, it);
                assert_true(bs >= 1 && bs <= batch);
                if (it + 1 < s.iters) assert_int_equal(bs, batch);
                for (int k = 0; k < bs; k++, pos++) {
                    int64_t idx, slot;
                    ssd_sampler_sample(&s, perm, it, k, &idx, &slot);
                    assert_int_equal(idx, mine[pos]);
                    assert_int_equal(slot, r + pos * world);
                }
            }
            assert_int_equal(pos, len);
            free(mine);
        }
    }
    free(perm);
}

static void test_layout_brute_force(void **state) {
    (void)state;
    check_layout(10, 3, 1, 1, 7);
    check_layout(10, 3, 3, 1, 7);   /* padding 2 */
    check_layout(11, 4, 4, 1, 9);   /* padding 1, last batch 3 */
    check_layout(3, 2, 8, 1, 1);    /* world > n: head repeated more than once */
    check_layout(37, 5, 2, 0, 1);   /* no shuffle: identity */
    check_layout(1, 1, 1, 1, 1);
}

/* Epoch lengths quoted by the spec for the 117,266 train images. */
static void test_reference_epoch_lengths(void **state) {
    (void)state;
    struct { int world, batch; int64_t per_rank, iters; int last; } cases[] = {
        {1, 32, 117266, 3665, 18}, {8, 128, 14659, 115, 67}, {16, 64, 7330, 115, 34}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ssd_sampler s;
        ssd_sampler_init(&s, 117266, cases[i].batch, 0, cases[i].world, 1, 1);
        assert_int_equal(s.per_rank, cases[i].per_rank);
        assert_int_equal(s.iters, cases[i].iters);
        assert_int_equal(ssd_sampler_batch_size(&s, s.iters - 1), cases[i].last);
    }
}

/* A permutation, the same on every rank, new every epoch, fixed by the seed, and not biased:
 * over many epochs every index visits every position about equally often. */
static void test_shuffle_properties(void **state) {
    (void)state;
    enum { N = 50, EPOCHS = 4000 };
    ssd_sampler a, b, c;
    ssd_sampler_init(&a, N, 4, 0, 2, 1, 123);
    ssd_sampler_init(&b, N, 4, 1, 2, 1, 123);
    ssd_sampler_init(&c, N, 4, 0, 2, 1, 124);
    int64_t pa[N], pb[N], pc[N], prev[N];
    static int count[N][N];
    memset(count, 0, sizeof count);
    int same_as_prev = 0, same_as_other_seed = 0;
    for (int e = 0; e < EPOCHS; e++) {
        ssd_sampler_permutation(&a, e, pa);
        ssd_sampler_permutation(&b, e, pb);
        ssd_sampler_permutation(&c, e, pc);
        assert_memory_equal(pa, pb, sizeof pa);
        int seen[N] = {0};
        for (int i = 0; i < N; i++) {
            assert_true(pa[i] >= 0 && pa[i] < N);
            assert_int_equal(seen[pa[i]]++, 0);
            count[pa[i]][i]++;
        }
        if (e > 0 && !memcmp(pa, prev, sizeof pa)) same_as_prev++;
        if (!memcmp(pa, pc, sizeof pa)) same_as_other_seed++;
        memcpy(prev, pa, sizeof pa);
    }
    assert_int_equal(same_as_prev, 0);
    assert_int_equal(same_as_other_seed, 0);
    /* Expected 80 per cell; a binomial(4000, 1/50) has sd 8.85: 6 sd either side over 2500
     * cells is a bound a correct shuffle essentially never crosses and a biased one does. */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) assert_true(count[i][j] > 27 && count[i][j] < 133);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_brute_force),
        cmocka_unit_test(test_reference_epoch_lengths),
        cmocka_unit_test(test_shuffle_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
