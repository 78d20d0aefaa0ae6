/* The cpu backend's f32 activations in nChw16c (backend.h; cpu_blocked.c, cpu_winograd.c and the
 * oneDNN convolutions taking them as they lie), on CPUs with avx512f (elsewhere the backend keeps
 * f32 activations row-major and the test says SKIPPED).
 *
 * Oracle: the same ops on row-major f32 tensors (a backend made with SSD_CPU_F32_ACTS=nchw,
 * whose loops test_ops_parity checks against ref's float64, as it checks the blocked ones on its
 * shapes with 16k channels). The blocked loops promise the row-major loops' bits, so every
 * output is compared bit for bit:
 * - batch norm (train forward, backward with ReLU and a residual, inference) on shapes whose
 *   planes have a 512-value block and a tail not a multiple of 8;
 * - max-pool forward and backward with ties and NaNs;
 * - ReLU and the elementwise ops;
 * - convolutions in each mix of forms the network has (blocked in and out; f32 row-major
 *   images in, blocked out; blocked in, row-major head outputs out) on Winograd's shapes and on
 *   oneDNN's (3x3 stride 2, 1x1, 3x3 on small maps), separate and fused backward;
 * - a convolution between blocked activations runs no activation reorder;
 * - two whole training steps (forward, loss, backward, SGD) of the network at batch 2: the same
 *   losses, gradients and parameters, bit for bit, in either form. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "model/ssd_model.h"
#include "op_runner.h"
#include "testutil.h"
#include "train/runner.h"

static void check_bits(const ssd_tensor *got, const ssd_tensor *exp, const char *what) {
    assert_int_equal(ssd_tensor_numel(got), ssd_tensor_numel(exp));
    for (int64_t i = 0; i < ssd_tensor_numel(exp); i++) {
        const double g = ssd_tensor_get(got, i), e = ssd_tensor_get(exp, i);
        if (g != e && !(isnan(g) && isnan(e))) {
            print_error("%s[%lld]: %.9g, expected %.9g bit for bit\n", what, (long long)i, g, e);
            fail();
        }
    }
}

static void check_outputs(const or_outputs *got, const or_outputs *exp, const char *what) {
    assert_int_equal(got->n, exp->n);
    for (int i = 0; i < got->n; i++) {
        char w[96];
        snprintf(w, sizeof w, "%s %s", what, got->names[i]);
        check_bits(&got->t[i], &exp->t[i], w);
    }
}

typedef struct fixture {
    ssd_backend *blk, *nchw;
} fixture;

static int setup(void **state) {
    static fixture f;
    ssd_error err;
    unsetenv("SSD_CPU_F32_ACTS");
    if (ssd_backend_create("cpu", &f.blk, &err) != SSD_OK) return -1;
    setenv("SSD_CPU_F32_ACTS", "nchw", 1);
    if (ssd_backend_create("cpu", &f.nchw, &err) != SSD_OK) return -1;
    unsetenv("SSD_CPU_F32_ACTS");
    if (!f.blk->act_custom || f.blk->act_layout != SSD_LAYOUT_NCHW16C || f.nchw->act_custom)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    ssd_backend_destroy(f->blk);
    ssd_backend_destroy(f->nchw);
    return 0;
}

static void test_bn(void **state) {
    fixture *f = *state;
    ssd_rng r = ssd_rng_stream(51, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    /* 35 values per plane: lanes and a tail of 3; 575: a block of 512 and a tail of 63 */
    const int64_t shapes[2][4] = {{2, 32, 5, 7}, {3, 48, 23, 25}};
    for (int si = 0; si < 2; si++)
        for (int mode = 0; mode < 3; mode++) { /* plain, relu, residual + relu */
            const int64_t *s = shapes[si];
            or_bn_inputs in = or_bn_inputs_rand(&r, s, false);
            ssd_tensor *x = &in.x, *dy = &in.dy, *g = &in.gamma, *b = &in.beta, *rm = &in.rmean,
                       *rv = &in.rvar;
            ssd_bn_desc d = {1e-5, 0.1, mode > 0};
            const ssd_tensor *rp = mode == 2 ? &in.res : NULL;
            char what[64];
            snprintf(what, sizeof what, "bn shape %d mode %d", si, mode);
            or_outputs got = or_bn_train(f->blk, SSD_F32, x, g, b, rm, rv, rp, dy, &d);
            assert_non_null(strstr(f->blk->stats.last_impl, "nChw16c"));
            or_outputs exp = or_bn_train(f->nchw, SSD_F32, x, g, b, rm, rv, rp, dy, &d);
            check_outputs(&got, &exp, what);
            or_free(&got);
            or_free(&exp);
            got = or_bn_infer(f->blk, SSD_F32, x, g, b, rm, rv, rp, &d);
            exp = or_bn_infer(f->nchw, SSD_F32, x, g, b, rm, rv, rp, &d);
            check_outputs(&got, &exp, "bn infer");
            or_free(&got);
            or_free(&exp);
            or_bn_inputs_free(&in);
        }
}

static void test_maxpool_eltwise(void **state) {
    fixture *f = *state;
    ssd_rng r = ssd_rng_stream(52, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    const int64_t N = 2, C = 32, H = 12, W = 11;
    ssd_pool_desc d = {3, 2, 1};
    const int64_t P = ssd_conv_out_size(H, 3, 2, 1), Q = ssd_conv_out_size(W, 3, 2, 1);
    ssd_tensor x = or_rand4(&r, N, C, H, W, 0, 1, "x");
    for (int64_t i = 0; i < ssd_tensor_numel(&x); i++) /* 5 levels: many ties */
        ssd_tensor_set(&x, i, floor(ssd_tensor_get(&x, i) * 5) - 2);
    const int64_t nans[] = {5, 77, 78, 1000, 2345, 7000}; /* a NaN wins its windows */
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) ssd_tensor_set(&x, nans[i], NAN);
    ssd_tensor dy = or_rand4(&r, N, C, P, Q, -1, 1, "dy");
    or_outputs got = or_maxpool(f->blk, SSD_F32, &x, &dy, &d);
    assert_non_null(strstr(f->blk->stats.last_impl, "nChw16c"));
    or_outputs exp = or_maxpool(f->nchw, SSD_F32, &x, &dy, &d);
    check_outputs(&got, &exp, "maxpool");
    or_free(&got);
    or_free(&exp);
    ssd_tensor dyx = or_rand4(&r, N, C, H, W, -1, 1, "dyx"), b = or_rand4(&r, N, C, H, W, -1, 1, "b");
    ssd_tensor_set(&x, 5, 0.0); /* ReLU of a NaN is compared too, at 77 */
    got = or_relu(f->blk, SSD_F32, &x, &dyx);
    exp = or_relu(f->nchw, SSD_F32, &x, &dyx);
    check_outputs(&got, &exp, "relu");
    or_free(&got);
    or_free(&exp);
    got = or_eltwise(f->blk, SSD_F32, &x, &b, 0.3, -1.7);
    exp = or_eltwise(f->nchw, SSD_F32, &x, &b, 0.3, -1.7);
    check_outputs(&got, &exp, "eltwise");
    or_free(&got);
    or_free(&exp);
    ssd_tensor *all[] = {&x, &dy, &dyx, &b};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ssd_tensor_free(all[i]);
}

/* y, dx, dw, db of one f32 convolution with the input side in layout xl and the output side in
 * yl; fused: both backward passes through ssd_conv2d_backward */
static void conv_run(ssd_backend *be, ssd_tensor out[4], ssd_layout xl, ssd_layout yl,
                     const ssd_tensor *x, const ssd_tensor *w, const ssd_tensor *b,
                     const ssd_tensor *dy, const ssd_conv_desc *d, bool fused) {
    or_conv_forms(be, out, SSD_F32, xl, SSD_F32, yl, x, w, b, dy, d, fused);
}

static void test_conv(void **state) {
    fixture *f = *state;
    ssd_rng r = ssd_rng_stream(53, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    const ssd_layout B = SSD_LAYOUT_NCHW16C, R = SSD_LAYOUT_ROWMAJOR;
    struct {
        int64_t N, C, H, W, K, S;
        ssd_conv_desc d;
        ssd_layout xl, yl;
        const char *name;
    } cases[] = {
        {2, 64, 19, 21, 80, 3, {1, 1, 1, 1}, B, B, "winograd"},
        {2, 64, 20, 19, 64, 3, {1, 1, 1, 1}, B, R, "winograd, row-major out (conf.0)"},
        {2, 32, 9, 9, 48, 3, {1, 1, 1, 1}, B, B, "3x3 small map"},
        {2, 32, 10, 9, 48, 3, {2, 2, 1, 1}, B, B, "3x3 stride 2"},
        {2, 48, 6, 7, 32, 1, {1, 1, 0, 0}, B, B, "1x1"},
        {2, 3, 20, 18, 16, 7, {2, 2, 3, 3}, R, B, "conv1: images in"},
        {2, 32, 5, 5, 24, 3, {1, 1, 1, 1}, B, R, "head: row-major out"},
    };
    const char *names[4] = {"y", "dx", "dw", "db"};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int64_t P = ssd_conv_out_size(cases[ci].H, cases[ci].S, cases[ci].d.stride_h,
                                            cases[ci].d.pad_h);
        const int64_t Q = ssd_conv_out_size(cases[ci].W, cases[ci].S, cases[ci].d.stride_w,
                                            cases[ci].d.pad_w);
        ssd_tensor x = or_rand4(&r, cases[ci].N, cases[ci].C, cases[ci].H, cases[ci].W, -1, 1, "x");
        ssd_tensor w = or_rand4(&r, cases[ci].K, cases[ci].C, cases[ci].S, cases[ci].S, -.5, .5, "w");
        ssd_tensor dy = or_rand4(&r, cases[ci].N, cases[ci].K, P, Q, -1, 1, "dy");
        const int64_t ks[1] = {cases[ci].K};
        ssd_tensor b = or_rand(&r, 1, ks, -.5, .5, "b");
        ssd_tensor want[4];
        conv_run(f->nchw, want, R, R, &x, &w, &b, &dy, &cases[ci].d, false);
        for (int fused = 0; fused < 2; fused++) {
            ssd_tensor got[4];
            conv_run(f->blk, got, cases[ci].xl, cases[ci].yl, &x, &w, &b, &dy, &cases[ci].d,
                     fused);
            for (int i = 0; i < 4; i++) {
                char what[128];
                snprintf(what, sizeof what, "conv %s%s %s", cases[ci].name, fused ? " fused" : "",
                         names[i]);
                check_bits(&got[i], &want[i], what);
                ssd_tensor_free(&got[i]);
            }
        }
        for (int i = 0; i < 4; i++) ssd_tensor_free(&want[i]);
        ssd_tensor *all[] = {&x, &w, &dy, &b};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ssd_tensor_free(all[i]);
    }
}

/* A oneDNN convolution between blocked activations converts only its weights. */
static void test_conv_no_activation_reorders(void **state) {
    fixture *f = *state;
    ssd_rng r = ssd_rng_stream(54, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    ssd_tensor x = or_rand4(&r, 2, 32, 12, 12, -1, 1, "x"), dy = or_rand4(&r, 2, 64, 6, 6, -1, 1, "dy");
    ssd_tensor w = or_rand4(&r, 64, 32, 3, 3, -.5, .5, "w");
    const int64_t ks[1] = {64};
    ssd_tensor b = or_rand(&r, 1, ks, -.5, .5, "b");
    ssd_conv_desc d = {2, 2, 1, 1};
    const ssd_layout B = SSD_LAYOUT_NCHW16C;
    ssd_tensor out[4];
    conv_run(f->blk, out, B, B, &x, &w, &b, &dy, &d, true); /* warm the caches */
    for (int i = 0; i < 4; i++) ssd_tensor_free(&out[i]);
    const ssd_backend_stats s0 = f->blk->stats;
    conv_run(f->blk, out, B, B, &x, &w, &b, &dy, &d, true);
    const uint64_t all = f->blk->stats.reorders - s0.reorders;
    const uint64_t wts = f->blk->stats.weight_reorders - s0.weight_reorders;
    printf("f32 nChw16c conv, forward + fused backward: %llu reorders, %llu of them of weights\n",
           (unsigned long long)all, (unsigned long long)wts);
    assert_true(all == wts);
    assert_true(wts > 0);
    for (int i = 0; i < 4; i++) ssd_tensor_free(&out[i]);
    ssd_tensor *t[] = {&x, &w, &dy, &b};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) ssd_tensor_free(t[i]);
}

/* ---- whole training steps ---- */

typedef struct run {
    ssd_model *m;
    ssd_runner *r;
} run;

static run run_create(ssd_backend *be) {
    run u;
    u.m = ssd_model_create(be, SSD_F32, 5);
    u.r = ssd_runner_create(u.m);
    return u;
}

static void run_destroy(run *u) {
    ssd_runner_destroy(u->r);
    ssd_model_destroy(u->m);
}

static void test_training_steps(void **state) {
    fixture *f = *state;
    const int n = 2;
    const size_t img = (size_t)n * 3 * SSD_IMAGE_SIZE * SSD_IMAGE_SIZE;
    float *images = ssd_xmalloc(img * sizeof *images);
    float *bboxes = ssd_xcalloc((size_t)n * SSD_NUM_ANCHORS * 4, sizeof *bboxes);
    int64_t *labels = ssd_xcalloc((size_t)n * SSD_NUM_ANCHORS, sizeof *labels);
    ssd_rng rng = ssd_rng_stream(55, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    for (size_t i = 0; i < img; i++) images[i] = (float)ssd_rng_range(&rng, -2, 2);
    for (int k = 0; k < n; k++)
        for (int j = 0; j < 20; j++) {
            const size_t a = (size_t)k * SSD_NUM_ANCHORS + ssd_rng_u32(&rng) % SSD_NUM_ANCHORS;
            labels[a] = 1 + (int64_t)(ssd_rng_u32(&rng) % 80);
            for (int q = 0; q < 4; q++) bboxes[a * 4 + q] = (float)ssd_rng_range(&rng, 0.05, 0.5);
        }
    run a = run_create(f->blk), b = run_create(f->nchw);
    for (int step = 0; step < 2; step++) {
        const float la = ssd_runner_train_step(a.r, n, images, bboxes, labels, NULL);
        const float lb = ssd_runner_train_step(b.r, n, images, bboxes, labels, NULL);
        printf("step %d: loss %.9g (nChw16c), %.9g (row-major)\n", step, la, lb);
        assert_true(la == lb && la == la);
        char what[64];
        snprintf(what, sizeof what, "step %d gradients", step);
        ssd_tensor ga = tu_to_host(f->blk, &a.m->grads, SSD_F32);
        ssd_tensor gb = tu_to_host(f->nchw, &b.m->grads, SSD_F32);
        check_bits(&ga, &gb, what);
        ssd_tensor_free(&ga);
        ssd_tensor_free(&gb);
        ssd_model_sgd_step(a.m, 1e-2, 0.9, 5e-4);
        ssd_model_sgd_step(b.m, 1e-2, 0.9, 5e-4);
    }
    ssd_tensor pa = tu_to_host(f->blk, &a.m->params, SSD_F32);
    ssd_tensor pb = tu_to_host(f->nchw, &b.m->params, SSD_F32);
    check_bits(&pa, &pb, "parameters after two steps");
    ssd_tensor_free(&pa);
    ssd_tensor_free(&pb);
    run_destroy(&a);
    run_destroy(&b);
    free(images);
    free(bboxes);
    free(labels);
}

int main(void) {
    ssd_backend *be = NULL;
    ssd_error err;
    unsetenv("SSD_CPU_F32_ACTS");
    unsetenv("SSD_CPU_MATH");
    if (ssd_backend_create("cpu", &be, &err) != SSD_OK) {
        tu_skip("test_blocked_f32", "no cpu backend in this build");
        return 77;
    }
    const bool blocked = be->act_custom && be->act_layout == SSD_LAYOUT_NCHW16C;
    ssd_backend_destroy(be);
    if (!blocked) {
        tu_skip("test_blocked_f32", "this CPU has no avx512f: the cpu backend keeps f32 "
                                    "activations row-major there");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn),
        cmocka_unit_test(test_maxpool_eltwise),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_conv_no_activation_reorders),
        cmocka_unit_test(test_training_steps),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
