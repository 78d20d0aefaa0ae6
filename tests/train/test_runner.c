/* train/runner: gradient accumulation (--batch-splits). Oracle: the same fragments run one at a
 * time with their gradients zeroed in between, combined by hand. Backward is linear in the
 * output gradient, so share-weighted accumulation must equal w0 g(f0) + w1 g(f1) up to the f32
 * rounding of the backward; the losses must be equal exactly (same forward). The check can fail: an unweighted
 * sum (the bug of forgetting the shares) is far outside the tolerance. Runs on `cpu` (f32). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "box/anchors.h"
#include "core/rng.h"
#include "model/ssd_model.h"
#include "testutil.h"
#include "train/runner.h"

#define N 3 /* images: fragments of 2 and 1 (weights 2/3, 1/3) */
#define A SSD_NUM_ANCHORS
#define IMG (3 * SSD_IMAGE_SIZE * SSD_IMAGE_SIZE)

static const float k_gt[N][2][4] = {{{0.1f, 0.1f, 0.43f, 0.43f}, {0.6f, 0.55f, 0.9f, 0.95f}},
                                    {{0.2f, 0.3f, 0.5f, 0.8f}, {0.05f, 0.6f, 0.3f, 0.7f}},
                                    {{0.3f, 0.2f, 0.9f, 0.6f}, {0.0f, 0.0f, 0.2f, 0.25f}}};
static const int k_lab[N][2] = {{3, 17}, {1, 44}, {62, 5}};

/* Exports the gradients as one flat double array (caller frees). */
static double *grads(ssd_model *m, int64_t *len) {
    int cnt = 0;
    ssd_tensor *g = ssd_model_export(m, 'g', SSD_F64, NULL, &cnt);
    int64_t n = 0;
    for (int i = 0; i < cnt; i++) n += ssd_tensor_numel(&g[i]);
    double *out = malloc(sizeof *out * (size_t)n), *p = out;
    for (int i = 0; i < cnt; i++) {
        int64_t k = ssd_tensor_numel(&g[i]);
        memcpy(p, g[i].data, sizeof *p * (size_t)k);
        p += k;
        ssd_tensor_free(&g[i]);
    }
    free(g);
    *len = n;
    return out;
}

static void test_fragments_accumulate(void **state) {
    (void)state;
    ssd_backend *be = NULL;
    ssd_error err;
    if (ssd_backend_create("cpu", &be, &err) != SSD_OK) {
        tu_skip("test_runner/fragments_accumulate", "no cpu backend in this build");
        skip();
    }
    ssd_model *m = ssd_model_create(be, SSD_F32, 7);
    ssd_runner *r = ssd_runner_create(m);
    float *img = malloc(sizeof(float) * (size_t)N * IMG), *box = malloc(sizeof(float) * N * A * 4);
    int64_t *lab = malloc(sizeof(int64_t) * N * A);
    ssd_rng rng = ssd_rng_stream(11, 0, 0, 0, 0);
    for (size_t i = 0; i < (size_t)N * IMG; i++) img[i] = 4.0f * ssd_rng_uniform(&rng) - 2.0f;
    for (int n = 0; n < N; n++)
        tu_naive_encode(ssd_runner_anchors(r), 2, k_gt[n], k_lab[n], box + (size_t)n * A * 4,
                        lab + (size_t)n * A);
    const float w0 = 2.0f / 3.0f, w1 = 1.0f / 3.0f;
    /* accumulated, as the trainer does */
    float la0 = ssd_runner_train_fragment(r, 2, img, box, lab, NULL, w0, true);
    float la1 = ssd_runner_train_fragment(r, 1, img + 2 * (size_t)IMG, box + 2 * A * 4,
                                          lab + 2 * A, NULL, w1, false);
    int64_t n = 0;
    double *acc = grads(m, &n);
    /* one at a time */
    float l0 = ssd_runner_train_step(r, 2, img, box, lab, NULL);
    double *g0 = grads(m, &n);
    float l1 = ssd_runner_train_step(r, 1, img + 2 * (size_t)IMG, box + 2 * A * 4, lab + 2 * A, NULL);
    double *g1 = grads(m, &n);
    assert_true(la0 == l0 && la1 == l1);
    double num = 0, den = 0, bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double want = (double)w0 * g0[i] + (double)w1 * g1[i];
        num += (acc[i] - want) * (acc[i] - want);
        den += want * want;
        double unweighted = g0[i] + g1[i];
        bad += (acc[i] - unweighted) * (acc[i] - unweighted);
    }
    double nmse = num / den, nmse_bad = bad / den;
    print_message("fragments: loss %.6f + %.6f, gradient nmse %.3g (unweighted sum: %.3g), %lld "
                  "values\n",
                  (double)l0, (double)l1, nmse, nmse_bad, (long long)n);
    /* Scaling the output gradient before the f32 backward changes every rounding after it, so
     * the two paths differ by the backward's own f32 error: measured nmse 1.6e-11. A wrong
     * weight gives ~1 (unweighted sum: 1.79). */
    assert_true(den > 0);
    assert_true(nmse < 1e-8);
    assert_true(nmse_bad > 1e-3);
    free(acc);
    free(g0);
    free(g1);
    free(img);
    free(box);
    free(lab);
    ssd_runner_destroy(r);
    ssd_model_destroy(m);
    ssd_backend_destroy(be);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fragments_accumulate)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
