/* The cpu backend's bf16 channels-last activations (backend.h, cpu_nhwc.c), with its native bf16
 * math (SSD_CPU_MATH=bf16 on a CPU with avx512_bf16; elsewhere the test says SKIPPED).
 *
 * Oracles:
 * - batch norm, ReLU, maxpool forward and the elementwise ops: ref's float64 result on the same
 *   bf16 inputs (parameters f32), rounded to bf16. Ours computes in f32 and rounds once, so an
 *   element may land one bf16 step away where the f64 value lies near a rounding boundary (and
 *   batch norm's dx loses a little more to cancellation: a floor of 1e-5 of the largest value);
 *   at most 2% of the elements may miss the rounded oracle by that step. The f32 statistics and
 *   parameter gradients within 1e-5 relative to the f64 ones.
 * - maxpool backward: a brute-force loop of PyTorch's bf16 rule (first maximum of each window, a
 *   NaN winning it, each routed gradient added into the bf16 dinp with a rounding per addition, in output
 *   order): bit for bit.
 * - convolutions: the same convolution on f32 NCHW tensors in the bf16 math (cpu_ops_parity_bf16
 *   checks that rule against ref) on the same bf16 values, bit for bit, for each mix of forms
 *   the network uses (bf16 NHWC in and out; f32 images in; f32 head outputs out), with the weight
 *   gradients on the default GEMMs and on oneDNN's kernel, and through the fused backward; where
 *   backward-data runs as a forward convolution (256+ channels), its dx against ref's f64 result
 *   as above. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_runner.h"
#include "testutil.h"

static double bf16r(double v) { return ssd_bf16_to_f32(ssd_f32_to_bf16((float)v)); }

/* host f64 tensor with values rounded to bf16 */
static ssd_tensor rand_bf16(ssd_rng *r, int64_t n, int64_t c, int64_t h, int64_t w, double lo,
                            double hi, const char *name) {
    ssd_tensor t = or_rand4(r, n, c, h, w, lo, hi, name);
    for (int64_t i = 0; i < ssd_tensor_numel(&t); i++)
        ssd_tensor_set(&t, i, bf16r(ssd_tensor_get(&t, i)));
    return t;
}

static double max_abs(const ssd_tensor *t) {
    double m = 0;
    for (int64_t i = 0; i < ssd_tensor_numel(t); i++) m = fmax(m, fabs(ssd_tensor_get(t, i)));
    return m;
}

/* got (bf16 values) against bf16(exp): every element within one bf16 step of bf16(exp) (plus
 * floor * max|exp|), at most 2% of them not equal to it */
static void check_bf16(const ssd_tensor *got, const ssd_tensor *exp, const char *what,
                       double floor) {
    const int64_t n = ssd_tensor_numel(exp);
    const double fl = floor * max_abs(exp);
    int64_t off = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = bf16r(ssd_tensor_get(exp, i)), g = ssd_tensor_get(got, i);
        if (g == e) continue;
        off++;
        const double step = e == 0 ? ldexp(1.0, -133) : ldexp(1.0, ilogb(e) - 7);
        if (!(fabs(g - e) <= step + fl)) {
            print_error("%s[%lld]: got %.9g, oracle %.9g (bf16 %.9g)\n", what, (long long)i, g,
                        ssd_tensor_get(exp, i), e);
            fail();
        }
    }
    printf("%-28s %6lld of %7lld elements one bf16 step from the oracle\n", what,
           (long long)off, (long long)n);
    assert_true(off <= n / 50);
}

static void check_rel(const ssd_tensor *got, const ssd_tensor *exp, const char *what, double tol) {
    const double fl = 1e-6 * max_abs(exp);
    for (int64_t i = 0; i < ssd_tensor_numel(exp); i++) {
        const double e = ssd_tensor_get(exp, i), g = ssd_tensor_get(got, i);
        if (!(fabs(g - e) <= tol * fabs(e) + fl)) {
            print_error("%s[%lld]: got %.9g, oracle %.9g\n", what, (long long)i, g, e);
            fail();
        }
    }
}

static void check_bits(const ssd_tensor *got, const ssd_tensor *exp, const char *what) {
    for (int64_t i = 0; i < ssd_tensor_numel(exp); i++)
        if (ssd_tensor_get(got, i) != ssd_tensor_get(exp, i) &&
            !(isnan(ssd_tensor_get(got, i)) && isnan(ssd_tensor_get(exp, i)))) {
            print_error("%s[%lld]: %.9g, expected %.9g bit for bit\n", what, (long long)i,
                        ssd_tensor_get(got, i), ssd_tensor_get(exp, i));
            fail();
        }
}

typedef struct fixture {
    ssd_backend *cpu, *cpu_wgrad, *ref; /* cpu_wgrad: weight gradients on oneDNN's kernel */
} fixture;

static int setup(void **state) {
    static fixture f;
    setenv("SSD_CPU_MATH", "bf16", 1);
    ssd_error err;
    if (ssd_backend_create("cpu", &f.cpu, &err) != SSD_OK) return -1;
    setenv("SSD_CPU_BF16_WGRAD", "native", 1);
    if (ssd_backend_create("cpu", &f.cpu_wgrad, &err) != SSD_OK) return -1;
    unsetenv("SSD_CPU_BF16_WGRAD");
    f.ref = ssd_backend_ref_create();
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    ssd_backend_destroy(f->cpu);
    ssd_backend_destroy(f->cpu_wgrad);
    ssd_backend_destroy(f->ref);
    return 0;
}

static void test_bn(void **state) {
    fixture *f = *state;
    ssd_rng r = ssd_rng_stream(41, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    /* C = 70: two full blocks of 32 channels and a partial one; 646 rows: a block of 512 rows
     * and a tail */
    const int64_t shapes[2][4] = {{2, 70, 5, 7}, {2, 40, 17, 19}};
    for (int si = 0; si < 2; si++)
        for (int mode = 0; mode < 3; mode++) { /* plain, relu, residual + relu */
            const int64_t *s = shapes[si];
            or_bn_inputs in = or_bn_inputs_rand(&r, s, true);
            ssd_tensor *x = &in.x, *dy = &in.dy, *g = &in.gamma, *b = &in.beta, *rm = &in.rmean,
                       *rv = &in.rvar;
            ssd_bn_desc d = {1e-5, 0.1, mode > 0};
            const ssd_tensor *rp = mode == 2 ? &in.res : NULL;
            or_outputs got = or_bn_train(f->cpu, SSD_BF16, x, g, b, rm, rv, rp, dy, &d);
            or_outputs exp = or_bn_train(f->ref, SSD_F64, x, g, b, rm, rv, rp, dy, &d);
            assert_int_equal(got.n, exp.n);
            for (int i = 0; i < got.n; i++) {
                char what[64];
                snprintf(what, sizeof what, "bn %s mode %d %s", si ? "big" : "small", mode,
                         got.names[i]);
                const char *nm = got.names[i];
                if (!strcmp(nm, "y") || !strcmp(nm, "dres"))
                    check_bf16(&got.t[i], &exp.t[i], what, 0.0);
                else if (!strcmp(nm, "dx"))
                    check_bf16(&got.t[i], &exp.t[i], what, 1e-5);
                else
                    check_rel(&got.t[i], &exp.t[i], what, 1e-5);
            }
            or_free(&got);
            or_free(&exp);
            or_outputs gi = or_bn_infer(f->cpu, SSD_BF16, x, g, b, rm, rv, rp, &d);
            or_outputs ei = or_bn_infer(f->ref, SSD_F64, x, g, b, rm, rv, rp, &d);
            check_bf16(&gi.t[0], &ei.t[0], "bn infer y", 0.0);
            or_free(&gi);
            or_free(&ei);
            or_bn_inputs_free(&in);
        }
}

static void test_relu_eltwise(void **state) {
    fixture *f = *state;
    ssd_rng r = ssd_rng_stream(42, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    ssd_tensor x = rand_bf16(&r, 2, 37, 9, 11, -1, 1, "x"), dy = rand_bf16(&r, 2, 37, 9, 11, -1, 1, "dy");
    ssd_tensor b = rand_bf16(&r, 2, 37, 9, 11, -1, 1, "b");
    or_outputs got = or_relu(f->cpu, SSD_BF16, &x, &dy), exp = or_relu(f->ref, SSD_F64, &x, &dy);
    check_bits(&got.t[0], &exp.t[0], "relu y");
    check_bits(&got.t[1], &exp.t[1], "relu dx");
    or_free(&got);
    or_free(&exp);
    got = or_eltwise(f->cpu, SSD_BF16, &x, &b, 0.3, -1.7);
    exp = or_eltwise(f->ref, SSD_F64, &x, &b, 0.3, -1.7);
    assert_int_equal(got.n, exp.n);
    for (int i = 0; i < got.n; i++) check_bf16(&got.t[i], &exp.t[i], got.names[i], 0.0);
    or_free(&got);
    or_free(&exp);
    ssd_tensor_free(&x);
    ssd_tensor_free(&dy);
    ssd_tensor_free(&b);
}

static void test_maxpool(void **state) {
    fixture *f = *state;
    ssd_rng r = ssd_rng_stream(43, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    const int64_t N = 2, C = 37, H = 12, W = 11;
    ssd_pool_desc d = {3, 2, 1};
    const int64_t P = ssd_conv_out_size(H, 3, 2, 1), Q = ssd_conv_out_size(W, 3, 2, 1);
    ssd_tensor x = or_rand4(&r, N, C, H, W, 0, 1, "x");
    for (int64_t i = 0; i < ssd_tensor_numel(&x); i++) /* 5 levels: many ties */
        ssd_tensor_set(&x, i, floor(ssd_tensor_get(&x, i) * 5) - 2);
    const int64_t nans[] = {5, 77, 78, 1000, 2345}; /* a NaN wins its windows, and stays */
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) ssd_tensor_set(&x, nans[i], NAN);
    ssd_tensor dy = rand_bf16(&r, N, C, P, Q, -1, 1, "dy");
    or_outputs got = or_maxpool(f->cpu, SSD_BF16, &x, &dy, &d);
    or_outputs exp = or_maxpool(f->ref, SSD_F64, &x, &dy, &d);
    check_bits(&got.t[0], &exp.t[0], "maxpool y");
    /* the brute-force backward: first maximum, bf16 additions in output order */
    ssd_tensor dx = ssd_tensor_alloc_host(SSD_F64, 4, x.shape, "dx");
    for (int64_t nc = 0; nc < N * C; nc++)
        for (int64_t p = 0; p < P; p++)
            for (int64_t q = 0; q < Q; q++) {
                int64_t best = -1;
                double bv = 0;
                for (int64_t i = 0; i < 3; i++)
                    for (int64_t j = 0; j < 3; j++) {
                        const int64_t h = p * 2 - 1 + i, w = q * 2 - 1 + j;
                        if (h < 0 || h >= H || w < 0 || w >= W) continue;
                        const double v = ssd_tensor_get(&x, nc * H * W + h * W + w);
                        if (best >= 0 && isnan(bv)) continue;
                        if (best < 0 || isnan(v) || v > bv) {
                            best = nc * H * W + h * W + w;
                            bv = v;
                        }
                    }
                const double g = ssd_tensor_get(&dy, nc * P * Q + p * Q + q);
                ssd_tensor_set(&dx, best, bf16r(ssd_tensor_get(&dx, best) + g));
            }
    check_bits(&got.t[1], &dx, "maxpool dx");
    or_free(&got);
    or_free(&exp);
    ssd_tensor_free(&x);
    ssd_tensor_free(&dy);
    ssd_tensor_free(&dx);
}

/* y, dx, dw, db of one convolution with input-side form xdt and output-side form ydt (bf16:
 * NHWC, f32: row-major); fused: both backward passes through ssd_conv2d_backward */
static void conv_run(ssd_backend *be, ssd_tensor out[4], ssd_dtype xdt, ssd_dtype ydt,
                     const ssd_tensor *x, const ssd_tensor *w, const ssd_tensor *b,
                     const ssd_tensor *dy, const ssd_conv_desc *d, bool fused) {
    or_conv_forms(be, out, xdt, tu_act_layout(be, x, xdt), ydt, tu_act_layout(be, dy, ydt), x, w,
                  b, dy, d, fused);
}

static void test_conv(void **state) {
    fixture *f = *state;
    ssd_rng r = ssd_rng_stream(44, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    struct {
        int64_t N, C, H, W, K, R;
        ssd_conv_desc d;
    } cases[] = {
        {2, 24, 9, 9, 40, 3, {1, 1, 1, 1}},  /* 3x3 stride 1 */
        {2, 16, 10, 9, 24, 3, {2, 2, 1, 1}}, /* 3x3 stride 2 */
        {2, 48, 6, 7, 32, 1, {1, 1, 0, 0}},  /* 1x1 */
        {2, 3, 20, 18, 16, 7, {2, 2, 3, 3}}, /* conv1's shape, scaled down */
    };
    const ssd_dtype forms[3][2] = {{SSD_BF16, SSD_BF16}, {SSD_F32, SSD_BF16}, {SSD_BF16, SSD_F32}};
    const char *names[4] = {"y", "dx", "dw", "db"};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int64_t P = ssd_conv_out_size(cases[ci].H, cases[ci].R, cases[ci].d.stride_h,
                                            cases[ci].d.pad_h);
        const int64_t Q = ssd_conv_out_size(cases[ci].W, cases[ci].R, cases[ci].d.stride_w,
                                            cases[ci].d.pad_w);
        ssd_tensor x = rand_bf16(&r, cases[ci].N, cases[ci].C, cases[ci].H, cases[ci].W, -1, 1, "x");
        ssd_tensor w = rand_bf16(&r, cases[ci].K, cases[ci].C, cases[ci].R, cases[ci].R, -.5, .5, "w");
        ssd_tensor dy = rand_bf16(&r, cases[ci].N, cases[ci].K, P, Q, -1, 1, "dy");
        const int64_t ks[1] = {cases[ci].K};
        ssd_tensor b = or_rand(&r, 1, ks, -.5, .5, "b");
        for (int wg = 0; wg < 2; wg++) {
            ssd_backend *be = wg ? f->cpu_wgrad : f->cpu;
            ssd_tensor want[4];
            conv_run(be, want, SSD_F32, SSD_F32, &x, &w, &b, &dy, &cases[ci].d, false);
            for (int fi = 0; fi < 3; fi++)
                for (int fused = 0; fused < 2; fused++) {
                    ssd_tensor got[4];
                    conv_run(be, got, forms[fi][0], forms[fi][1], &x, &w, &b, &dy, &cases[ci].d,
                             fused);
                    for (int i = 0; i < 4; i++) {
                        char what[96];
                        snprintf(what, sizeof what, "conv case %zu forms %d%s%s %s", ci, fi,
                                 wg ? " onednn-wgrad" : "", fused ? " fused" : "", names[i]);
                        check_bits(&got[i], &want[i], what);
                        ssd_tensor_free(&got[i]);
                    }
                }
            for (int i = 0; i < 4; i++) ssd_tensor_free(&want[i]);
        }
        ssd_tensor *all[] = {&x, &w, &dy, &b};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ssd_tensor_free(all[i]);
    }
}

/* Backward-data of a 3x3 stride-1 convolution with 256 channels each side runs as the forward
 * convolution of dout with the rotated, transposed weights when dout is bf16 NHWC: the same
 * products in another summation order, so dx is checked against ref's f64 result (rounded to
 * bf16); y and the parameter gradients stay bit for bit those of the f32-tensor path. */
static void test_conv_bwd_data_as_forward(void **state) {
    fixture *f = *state;
    ssd_rng r = ssd_rng_stream(46, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    const int64_t N = 2, C = 256, K = 272, H = 7, W = 6;
    ssd_conv_desc d = {1, 1, 1, 1};
    ssd_tensor x = rand_bf16(&r, N, C, H, W, -1, 1, "x"), dy = rand_bf16(&r, N, K, H, W, -1, 1, "dy");
    ssd_tensor w = rand_bf16(&r, K, C, 3, 3, -.5, .5, "w");
    const int64_t ks[1] = {K};
    ssd_tensor b = or_rand(&r, 1, ks, -.5, .5, "b");
    ssd_tensor want[4], got[4];
    conv_run(f->cpu, want, SSD_F32, SSD_F32, &x, &w, &b, &dy, &d, false);
    or_outputs exact = or_conv(f->ref, SSD_F64, &x, &w, &b, &dy, &d);
    for (int fused = 0; fused < 2; fused++) {
        conv_run(f->cpu, got, SSD_BF16, SSD_BF16, &x, &w, &b, &dy, &d, fused);
        assert_non_null(strstr(f->cpu->stats.last_impl, "bwd-as-fwd"));
        check_bits(&got[0], &want[0], "conv 256 y");
        check_bf16(&got[1], &exact.t[1], fused ? "conv 256 dx (fused)" : "conv 256 dx", 0.0);
        check_bits(&got[2], &want[2], "conv 256 dw");
        check_bits(&got[3], &want[3], "conv 256 db");
        for (int i = 0; i < 4; i++) ssd_tensor_free(&got[i]);
    }
    for (int i = 0; i < 4; i++) ssd_tensor_free(&want[i]);
    or_free(&exact);
    ssd_tensor *t[] = {&x, &w, &dy, &b};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) ssd_tensor_free(t[i]);
}

/* No conversion runs for a convolution between bf16 NHWC activations but the weights'. */
static void test_conv_no_activation_reorders(void **state) {
    fixture *f = *state;
    ssd_rng r = ssd_rng_stream(45, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    ssd_tensor x = rand_bf16(&r, 2, 32, 12, 12, -1, 1, "x"), dy = rand_bf16(&r, 2, 64, 12, 12, -1, 1, "dy");
    ssd_tensor w = rand_bf16(&r, 64, 32, 3, 3, -.5, .5, "w");
    const int64_t ks[1] = {64};
    ssd_tensor b = or_rand(&r, 1, ks, -.5, .5, "b");
    ssd_conv_desc d = {1, 1, 1, 1};
    ssd_tensor out[4];
    conv_run(f->cpu, out, SSD_BF16, SSD_BF16, &x, &w, &b, &dy, &d, true); /* warm the caches */
    for (int i = 0; i < 4; i++) ssd_tensor_free(&out[i]);
    const ssd_backend_stats s0 = f->cpu->stats;
    conv_run(f->cpu, out, SSD_BF16, SSD_BF16, &x, &w, &b, &dy, &d, true);
    const uint64_t all = f->cpu->stats.reorders - s0.reorders;
    const uint64_t wts = f->cpu->stats.weight_reorders - s0.weight_reorders;
    printf("bf16 NHWC conv, forward + fused backward: %llu reorders, %llu of them of weights\n",
           (unsigned long long)all, (unsigned long long)wts);
    assert_true(all == wts);
    assert_true(wts > 0);
    for (int i = 0; i < 4; i++) ssd_tensor_free(&out[i]);
    ssd_tensor *t[] = {&x, &w, &dy, &b};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) ssd_tensor_free(t[i]);
}

int main(void) {
    setenv("SSD_CPU_MATH", "bf16", 1);
    ssd_backend *be = NULL;
    ssd_error err;
    if (ssd_backend_create("cpu", &be, &err) != SSD_OK) {
        tu_skip("test_nhwc_bf16", "no cpu backend in this build");
        return 77;
    }
    const bool native = be->ops->supports(be, SSD_OP_BN_TRAIN_FWD, SSD_BF16);
    ssd_backend_destroy(be);
    if (!native) {
        tu_skip("test_nhwc_bf16", "this CPU has no avx512_bf16: bf16 activations run only with "
                                  "oneDNN's native bf16 kernels");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn),
        cmocka_unit_test(test_relu_eltwise),
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_conv_bwd_data_as_forward),
        cmocka_unit_test(test_conv_no_activation_reorders),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
