/* Every op of a backend under test (`cpu`, or the one SSD_TEST_BACKEND names, e.g. `cuda`)
 * against `ref`, at random shapes and at every distinct layer shape of SSD300-ResNet34
 * (src/backend/layer_shapes.h). A backend other than cpu that cannot start here (no GPU) makes
 * the test print SKIPPED with the reason and exit 77, which ctest reports as skipped.
 *
 * The truth is `ref` in f64 on the same inputs (inputs are generated as f32 values, so every
 * backend sees identical numbers). The measure is the normalised MSE
 *     nmse = sum((got - truth)^2) / sum(truth^2).
 * Thresholds (why they are what they are):
 * - conv (all passes): an f32 dot product of length K accumulates ~sqrt(K)*eps_f32 relative
 *   error for random-sign terms (eps_f32 = 2^-24 ~ 6e-8); with K up to 512*9 = 4608 that is
 *   nmse ~ K*eps^2 ~ 1.6e-11. Blocked/reordered summation orders change the constant, not the
 *   order. We allow 1e-9 (60x margin, still 6 orders below anything a wrong index produces).
 *   cuda runs cuDNN in plain f32 (no TF32), whatever algorithm it times fastest (implicit GEMM,
 *   FFT, Winograd): the same bound holds for all of them (measured worst on an H200: 1.5e-11).
 *   With SSD_CUDA_MATH=tf32 the inputs of each product carry TF32's 10-bit mantissa (relative
 *   rounding up to 2^-11, rms ~3e-4 per input, ~4e-4 per product): nmse ~2e-7, allowed 2e-6
 *   (measured worst 4.7e-7). With SSD_CUDA_MATH=bf16 the inputs carry bf16's 7-bit mantissa
 *   (2^-9, rms ~1e-3 per input) and the output is rounded to bf16 too: nmse ~3e-6 typical,
 *   allowed 5e-5 (measured worst 1.0e-5: the 16-element output of a 40->1 channel 4x4 conv, too
 *   few values for the roundings to average out; the f32 bias terms add nothing).
 * - batch norm: reductions over N*H*W up to 45,000 values in f32 (oneDNN) -> mean/var relative
 *   error ~ sqrt(n)*eps ~ 1.3e-5 worst case in a naive sum, nmse ~ 1e-10; 1e-8 allowed.
 *   Running statistics and save_mean/var are checked the same way.
 * - relu, maxpool forward, copy, fill: exact selections/copies: must be bit-equal (nmse 0).
 * - maxpool backward: each input receives at most 4 (3x3/2 windows overlap) summed gradients;
 *   the order may differ: 1e-14. A gradient routed to the wrong tie gives nmse ~ 1e-1.
 * - add, scale: one rounding each, so equal to the f32-rounded truth: 1e-14.
 * - SGD (f32, 3 steps): a handful of roundings per element: 1e-12.
 * - ssd_loss (backends that compute the loss themselves, e.g. cuda): against the host loss
 *   (loss/ssd_loss.c) on the same float inputs. Both work in double after the float32 targets,
 *   but the targets take CUDA's logf (within an ulp of glibc's correctly rounded one), so a
 *   positive's smooth-L1 term can differ by ~1e-7 of itself, and the sums run in another
 *   order: per-image losses within 1e-8 relative (measured on an H200: 2e-11 with 30
 *   positives, 1.5e-10 with 2530), gradients nmse 1e-12 (one float rounding each; one anchor
 *   selected differently would cost ~1e-3). Cases: ~30 positives per image, an image without
 *   positives (loss 0, zero gradients), an image with ~2560 positives (3P > A - P: every
 *   negative selected and positives twice, ties at ce_neg = 0) and exact ties at the threshold (identical logits for a block
 *   of anchors; ties go to the lower anchor index). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/layer_shapes.h"
#include "box/anchors.h"
#include "loss/ssd_loss.h"
#include "core/log.h"
#include "op_runner.h"

#define TOL_CONV 1e-9
#define TOL_CONV_TF32 2e-6
#define TOL_CONV_BF16 5e-5
#define TOL_BF16_FLOOR 1e-9 /* bf16 math: below this nmse an output cannot have been rounded */
#define TOL_BN 1e-8
#define TOL_EXACT 0.0
#define TOL_POOL_BWD 1e-14
#define TOL_ELTWISE 1e-14
#define TOL_SGD 1e-12

typedef struct {
    ssd_backend *ref;
    ssd_backend *cpu; /* the backend under test (named cpu for history: it may be cuda) */
} backends;

/* The backend under test: SSD_TEST_BACKEND, default cpu. */
static const char *dut_name(void) {
    const char *n = getenv("SSD_TEST_BACKEND");
    return n && *n ? n : "cpu";
}

static bool dut_is_cpu(void) { return strcmp(dut_name(), "cpu") == 0; }

/* The conv math of the backend under test: SSD_CPU_MATH (cpu) or SSD_CUDA_MATH; "f32" if unset. */
static const char *dut_math(void) {
    const char *m = getenv(dut_is_cpu() ? "SSD_CPU_MATH" : "SSD_CUDA_MATH");
    return m && *m ? m : "f32";
}

/* The cpu backend runs oneDNN's native bf16 kernels (SSD_CPU_MATH=bf16 on an avx512_bf16 CPU);
 * with SSD_CPU_BF16_WGRAD=native for the weight gradients too. */
static bool native_bf16(void) {
    return dut_is_cpu() && !strcmp(dut_math(), "bf16") && __builtin_cpu_supports("avx512bf16");
}
static bool wgrad_native(void) {
    const char *w = getenv("SSD_CPU_BF16_WGRAD");
    return w && !strcmp(w, "native");
}

static int setup(void **state) {
    static backends b;
    ssd_error err;
    b.ref = ssd_backend_ref_create();
    b.cpu = NULL;
    if (ssd_backend_create(dut_name(), &b.cpu, &err) != SSD_OK) b.cpu = NULL;
    *state = &b;
    return 0;
}

static int teardown(void **state) {
    backends *b = *state;
    ssd_backend_destroy(b->ref);
    ssd_backend_destroy(b->cpu);
    return 0;
}

static ssd_backend *need_cpu(void **state) {
    backends *b = *state;
    if (!dut_is_cpu()) {
        assert_non_null(b->cpu); /* main() checked that it starts */
        return b->cpu;
    }
#ifdef SSD_HAVE_CPU
    assert_non_null(b->cpu); /* built in, so it must work */
#else
    if (!b->cpu) {
        tu_skip("test_ops_parity", "the cpu (oneDNN) backend is not built into this binary");
        skip();
    }
#endif
    return b->cpu;
}

/* Compares every output of `got` with `truth`; prints one line per output. */
static void compare(const char *op, const char *shape, const or_outputs *got,
                    const or_outputs *truth, const double *tols) {
    assert_int_equal(got->n, truth->n);
    for (int i = 0; i < got->n; i++) {
        double e = tu_nmse(&got->t[i], &truth->t[i]);
        printf("parity %-14s %-44s %-13s %s/%s nmse=%.3e (tol %.0e)\n", op, shape,
               truth->names[i], dut_name(), dut_math(), e, tols[i]);
        if (!(e <= tols[i]))
            fail_msg("%s %s output %s: nmse %.3e > %.0e", op, shape, truth->names[i], e, tols[i]);
    }
}

/* A copy of host tensor t with every value rounded to bf16 (through f32, nearest even). */
static ssd_tensor bf16_rounded(const ssd_tensor *t) {
    ssd_tensor c = ssd_tensor_alloc_host(t->dtype, t->ndim, t->shape, t->name);
    for (int64_t i = 0; i < ssd_tensor_numel(t); i++)
        ssd_tensor_set(&c, i, ssd_bf16_to_f32(ssd_f32_to_bf16((float)ssd_tensor_get(t, i))));
    return c;
}

/* The cpu backend's bf16 math is defined exactly: operands rounded to bf16, f32 sums, results
 * (and the weight/bias gradients before they are added) rounded to bf16. The oracle: ref in f64
 * on the rounded operands, its outputs rounded to bf16. Ours must equal it except where the
 * f32 and f64 sums fall on two sides of a bf16 rounding boundary: then they differ by one bf16
 * step. The chance of that is about the f32 sum's relative error (~sqrt(K) 6e-8, K <= 4608)
 * over bf16's relative step (2^-8): < 0.5%; we allow 2% of the elements, and none may differ
 * by more than one step, except by less than 1e-6 of the output's rms where a sum cancels.
 * (dw and db are read back as ACC0 + ours - ACC0 in f32: a few f32 ulps of ACC0 on top.) */
static void check_bf16_exact(backends *b, const or_outputs *got, const ssd_tensor *x,
                             const ssd_tensor *w, const ssd_tensor *bias, const ssd_tensor *dy,
                             const ssd_conv_desc *d, const char *shape) {
    ssd_tensor xr = bf16_rounded(x), wr = bf16_rounded(w), dyr = bf16_rounded(dy);
    ssd_tensor br = bias ? bf16_rounded(bias) : (ssd_tensor){0};
    or_outputs t = or_conv(b->ref, SSD_F64, &xr, &wr, bias ? &br : NULL, &dyr, d);
    for (int i = 0; i < t.n; i++) {
        int64_t n = ssd_tensor_numel(&t.t[i]), off = 0;
        double worst = 0, ss = 0;
        for (int64_t j = 0; j < n; j++) ss += ssd_tensor_get(&t.t[i], j) * ssd_tensor_get(&t.t[i], j);
        /* where a sum cancels to far below the output's size its f32 error (~sqrt(K) 6e-8 of
         * the terms, themselves ~rms/sqrt(K)) can exceed a bf16 step of the small result:
         * differences within 1e-6 rms do not count as steps */
        const double abs_tol = 1e-6 * sqrt(ss / (n ? n : 1));
        for (int64_t j = 0; j < n; j++) {
            double rt = ssd_bf16_to_f32(ssd_f32_to_bf16((float)ssd_tensor_get(&t.t[i], j)));
            double g = ssd_tensor_get(&got->t[i], j), diff = fabs(g - rt);
            int e;
            frexp(rt, &e);
            double step = rt == 0 ? 0 : ldexp(1.0, e - 8); /* bf16 spacing at |rt| */
            if (diff <= 1e-6 * fabs(rt) + 4e-8) continue;   /* equal (up to ACC0's f32 ulps) */
            off++;
            double r = diff <= abs_tol ? 0 : step > 0 ? diff / step : INFINITY;
            if (r > worst) worst = r;
        }
        double frac = n ? (double)off / n : 0;
        printf("bf16 exact %-44s %-3s %lld of %lld elements one bf16 step apart (%.3f%%), "
               "worst %.2f steps\n", shape, t.names[i], (long long)off, (long long)n, 100 * frac,
               worst);
        if (!(worst <= 1.0 + 1e-6) || !(frac <= 0.02))
            fail_msg("%s output %s: %lld elements differ from the bf16 oracle, worst %.2f steps",
                     shape, t.names[i], (long long)off, worst);
    }
    or_free(&t);
    ssd_tensor *all[] = {&xr, &wr, &dyr, &br};
    for (int i = 0; i < 4; i++) ssd_tensor_free(all[i]);
}

/* Runs one conv case on ref (f64, the truth) and cpu (f32); *impl_out (nullable) gets the
 * implementations cpu reported for fwd, bwd_data and bwd_weights. */
static void run_conv_case_impl(backends *b, ssd_rng *r, int n, int c, int k, int h, int ksize,
                               int stride, int pad, bool bias, const char *label,
                               char (*impl_out)[160]) {
    ssd_conv_desc d = {stride, stride, pad, pad};
    int p = (int)ssd_conv_out_size(h, ksize, stride, pad);
    /* He-like scale keeps outputs O(1) whatever the fan-in. */
    double ws = sqrt(3.0 / (c * ksize * ksize));
    ssd_tensor x = or_rand4(r, n, c, h, h, -1, 1, "x");
    ssd_tensor w = or_rand4(r, k, c, ksize, ksize, -ws, ws, "w");
    ssd_tensor bb = or_rand4(r, 1, 1, 1, k, -0.5, 0.5, "b");
    bb.ndim = 1;
    bb.shape[0] = k;
    ssd_tensor dy = or_rand4(r, n, k, p, p, -1, 1, "dy");
    or_outputs truth = or_conv(b->ref, SSD_F64, &x, &w, bias ? &bb : NULL, &dy, &d);
    or_outputs got = or_conv(b->cpu, SSD_F32, &x, &w, bias ? &bb : NULL, &dy, &d);
    char shape[160];
    snprintf(shape, sizeof shape, "%s N%d %d->%d %dx%d k%d/s%d/p%d%s", label, n, c, k, h, h,
             ksize, stride, pad, bias ? " +b" : "");
    const char *math = dut_math();
    const bool bf16 = !strncmp(math, "bf16", 4) /* bf16 or bf16emu */;
    const double tc = bf16 ? TOL_CONV_BF16 : !strcmp(math, "tf32") ? TOL_CONV_TF32 : TOL_CONV;
    const double tols[] = {tc, tc, tc, tc};
    printf("          implementations: %s / %s / %s\n", got.impl[0], got.impl[1], got.impl[2]);
    compare("conv2d", shape, &got, &truth, tols);
    if (bf16 && dut_is_cpu()) { /* (cuda runs a pass in f32 where cuDNN has no bf16 algorithm) */
        /* the rounding happened: every output carries bf16's error, far above f32's */
        for (int i = 0; i < got.n; i++)
            if (!(tu_nmse(&got.t[i], &truth.t[i]) >= TOL_BF16_FLOOR))
                fail_msg("%s output %s: nmse %.3e below %.0e: not rounded to bf16", shape,
                         truth.names[i], tu_nmse(&got.t[i], &truth.t[i]), TOL_BF16_FLOOR);
        check_bf16_exact(b, &got, &x, &w, bias ? &bb : NULL, &dy, &d, shape);
    }
    if (impl_out) memcpy(impl_out, got.impl, sizeof got.impl);
    or_free(&truth);
    or_free(&got);
    ssd_tensor *all[] = {&x, &w, &bb, &dy};
    for (int i = 0; i < 4; i++) ssd_tensor_free(all[i]);
}

static void run_conv_case(backends *b, ssd_rng *r, int n, int c, int k, int h, int ksize,
                          int stride, int pad, bool bias, const char *label) {
    run_conv_case_impl(b, r, n, c, k, h, ksize, stride, pad, bias, label, NULL);
}

static void test_conv_random(void **state) {
    ssd_backend *cpu = need_cpu(state);
    (void)cpu;
    backends *b = *state;
    ssd_rng r = ssd_rng_stream(11, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    static const int ks[] = {1, 3, 5, 7};
    for (int t = 0; t < 24; t++) {
        int ksize = ks[ssd_rng_below(&r, 4)];
        int stride = 1 + (int)ssd_rng_below(&r, 2);
        int pad = (int)ssd_rng_below(&r, (uint32_t)(ksize / 2 + 1));
        int h = ksize + (int)ssd_rng_below(&r, 14);
        int c = 1 + (int)ssd_rng_below(&r, 40), k = 1 + (int)ssd_rng_below(&r, 40);
        int n = 1 + (int)ssd_rng_below(&r, 3);
        run_conv_case(b, &r, n, c, k, h, ksize, stride, pad, ssd_rng_below(&r, 2), "random");
    }
}

static void test_conv_layers(void **state) {
    need_cpu(state);
    backends *b = *state;
    ssd_rng r = ssd_rng_stream(12, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    for (int i = 0; i < ssd_n_conv_shapes; i++) {
        const ssd_conv_shape *s = &ssd_conv_shapes[i];
        run_conv_case(b, &r, 1, s->c, s->k, s->h, s->r, s->stride, s->pad, s->bias, s->name);
    }
    /* the heaviest layer again at batch 2, so batch strides are exercised at a real shape */
    run_conv_case(b, &r, 2, 256, 256, 38, 3, 1, 1, false, "layer3 3x3 batch 2");
}

/* The Winograd path is the default (where the CPU has AVX2 + FMA), so the other tests run it
 * at every layer shape it takes; here: it must be taken for the shapes it is meant for, in all
 * three passes, odd channel counts and a map that is not a multiple of 4 with a bias, never for
 * the loc heads and small maps; with SSD_WINOGRAD=0 it is never taken, and oneDNN's direct
 * kernels meet the same bound at every 3x3 stride-1 layer shape; and its results do not depend
 * on the thread count. */
static void test_conv_winograd(void **state) {
    need_cpu(state);
    if (!dut_is_cpu()) {
        printf("test_conv_winograd: the cpu backend's Winograd path; not run for %s\n",
               dut_name());
        return;
    }
    backends *b = *state;
    ssd_rng r = ssd_rng_stream(19, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    char impl[3][160];
    if (!strncmp(dut_math(), "bf16", 4)) { /* bf16 runs oneDNN kernels, Winograd or not */
        run_conv_case_impl(b, &r, 2, 64, 64, 20, 3, 1, 1, false, "bf16 (Winograd's shape)", impl);
        for (int p = 0; p < 3; p++) {
            assert_null(strstr(impl[p], "winograd"));
            assert_non_null(strstr(impl[p], ":bf16"));
        }
        /* the native path runs oneDNN's bf16 kernels ("..._bf16:bf16"); its weight gradient
         * runs as GEMMs on the bf16 matmul unless SSD_CPU_BF16_WGRAD=native */
        if (native_bf16()) {
            assert_non_null(strstr(impl[0], "_bf16:bf16"));
            assert_non_null(strstr(impl[1], "_bf16:bf16"));
            assert_non_null(strstr(impl[2], wgrad_native() ? "_bf16:bf16" : "_bf16:matmul:bf16"));
        }
        return;
    }
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!avx2) print_message("no AVX2+FMA: the cpu backend runs oneDNN's direct convs only\n");
    ssd_backend *wino = b->cpu; /* the default backend */
    run_conv_case_impl(b, &r, 2, 64, 64, 20, 3, 1, 1, false, "winograd (default)", impl);
    if (avx2) {
        assert_non_null(strstr(impl[0], "winograd"));
        assert_non_null(strstr(impl[1], "winograd"));
        assert_non_null(strstr(impl[2], "winograd"));
    }
    /* channel counts that are not multiples of 8 on both sides (conf heads: 324, 486), a map
     * that is not a multiple of 4 and a bias */
    run_conv_case_impl(b, &r, 1, 68, 75, 21, 3, 1, 1, true, "winograd odd channels", impl);
    if (avx2) assert_non_null(strstr(impl[2], "winograd")); /* + the bias gradient */
    if (avx2) assert_non_null(strstr(impl[0], "winograd"));
    /* where it does not win: a loc head's 16 channels, a 10x10 map */
    run_conv_case_impl(b, &r, 1, 256, 16, 38, 3, 1, 1, true, "loc head: direct", impl);
    for (int p = 0; p < 3; p++) assert_null(strstr(impl[p], "winograd"));
    run_conv_case_impl(b, &r, 1, 128, 96, 10, 3, 1, 1, true, "10x10: direct", impl);
    for (int p = 0; p < 3; p++) assert_null(strstr(impl[p], "winograd"));
    /* SSD_WINOGRAD=0: oneDNN's direct kernels at every 3x3 stride-1 layer shape */
    setenv("SSD_WINOGRAD", "0", 1);
    ssd_backend *direct = NULL;
    ssd_error err;
    assert_int_equal(ssd_backend_create("cpu", &direct, &err), SSD_OK);
    unsetenv("SSD_WINOGRAD");
    b->cpu = direct;
    for (int i = 0; i < ssd_n_conv_shapes; i++) {
        const ssd_conv_shape *s = &ssd_conv_shapes[i];
        if (s->r != 3 || s->stride != 1 || s->pad != 1) continue;
        run_conv_case_impl(b, &r, 1, s->c, s->k, s->h, s->r, s->stride, s->pad, s->bias,
                           s->name, impl);
        for (int p = 0; p < 3; p++) assert_null(strstr(impl[p], "winograd"));
    }
    b->cpu = wino;
    ssd_backend_destroy(direct);
    /* bit for bit the same results with 1 and 2 threads (each of the 36 GEMMs runs on one
     * thread), so rank-vs-process parity and resume hold with Winograd on */
    ssd_conv_desc d = {1, 1, 1, 1};
    ssd_tensor x = or_rand4(&r, 2, 64, 75, 75, -1, 1, "x");
    ssd_tensor w = or_rand4(&r, 64, 64, 3, 3, -0.07, 0.07, "w");
    ssd_tensor bb = or_rand4(&r, 1, 1, 1, 64, -0.5, 0.5, "b");
    bb.ndim = 1;
    bb.shape[0] = 64;
    ssd_tensor dy = or_rand4(&r, 2, 64, 75, 75, -1, 1, "dy");
    const int threads = omp_get_max_threads();
    or_outputs o[2];
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        o[t] = or_conv(wino, SSD_F32, &x, &w, &bb, &dy, &d);
    }
    omp_set_num_threads(threads);
    assert_int_equal(o[0].n, o[1].n);
    for (int i = 0; i < o[0].n; i++)
        assert_memory_equal(o[0].t[i].data, o[1].t[i].data, ssd_tensor_nbytes(&o[0].t[i]));
    printf("winograd: 1 and 2 threads give bit-identical y, dx, dw, db\n");
    or_free(&o[0]);
    or_free(&o[1]);
    ssd_tensor *all[] = {&x, &w, &bb, &dy};
    for (int i = 0; i < 4; i++) ssd_tensor_free(all[i]);
}

static void run_bn_case(backends *b, ssd_rng *r, int n, int c, int h, bool residual, bool relu,
                        const char *label) {
    ssd_bn_desc d = {1e-5, 0.1, relu};
    int64_t cs[1] = {c};
    /* non-zero mean and non-unit spread so normalisation does something */
    ssd_tensor x = or_rand4(r, n, c, h, h, -1.5, 2.5, "x");
    ssd_tensor g = or_rand(r, 1, cs, 0.5, 1.5, "gamma"), be = or_rand(r, 1, cs, -0.5, 0.5, "beta");
    ssd_tensor rm = or_rand(r, 1, cs, -0.2, 0.2, "rm"), rv = or_rand(r, 1, cs, 0.5, 2.0, "rv");
    ssd_tensor res = or_rand4(r, n, c, h, h, -1, 1, "res");
    ssd_tensor dy = or_rand4(r, n, c, h, h, -1, 1, "dy");
    char shape[160];
    snprintf(shape, sizeof shape, "%s N%d C%d %dx%d%s%s", label, n, c, h, h,
             residual ? " +res" : "", relu ? " relu" : "");
    or_outputs truth = or_bn_train(b->ref, SSD_F64, &x, &g, &be, &rm, &rv, residual ? &res : NULL,
                                   &dy, &d);
    or_outputs got = or_bn_train(b->cpu, SSD_F32, &x, &g, &be, &rm, &rv, residual ? &res : NULL,
                                 &dy, &d);
    const double tols[] = {TOL_BN, TOL_BN, TOL_BN, TOL_BN, TOL_BN, TOL_BN, TOL_BN, TOL_BN, TOL_BN};
    compare("bn_train", shape, &got, &truth, tols);
    or_free(&truth);
    or_free(&got);
    truth = or_bn_infer(b->ref, SSD_F64, &x, &g, &be, &rm, &rv, residual ? &res : NULL, &d);
    got = or_bn_infer(b->cpu, SSD_F32, &x, &g, &be, &rm, &rv, residual ? &res : NULL, &d);
    compare("bn_infer", shape, &got, &truth, tols);
    or_free(&truth);
    or_free(&got);
    ssd_tensor *all[] = {&x, &g, &be, &rm, &rv, &res, &dy};
    for (int i = 0; i < 7; i++) ssd_tensor_free(all[i]);
}

static void test_bn(void **state) {
    need_cpu(state);
    backends *b = *state;
    ssd_rng r = ssd_rng_stream(13, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    /* every fusion variant at small random shapes */
    for (int t = 0; t < 8; t++) {
        int n = 1 + (int)ssd_rng_below(&r, 3), c = 1 + (int)ssd_rng_below(&r, 33);
        int h = 2 + (int)ssd_rng_below(&r, 12);
        run_bn_case(b, &r, n, c, h, t & 1, (t >> 1) & 1, "random");
    }
    /* the network's shapes: plain BN+ReLU, BN+add+ReLU (block end), BN alone (downsample) */
    for (int i = 0; i < ssd_n_bn_shapes; i++) {
        const ssd_bn_shape *s = &ssd_bn_shapes[i];
        run_bn_case(b, &r, 2, s->c, s->h, false, true, s->name);
        if (s->h <= 75) {
            run_bn_case(b, &r, 2, s->c, s->h, true, true, s->name);
            run_bn_case(b, &r, 2, s->c, s->h, false, false, s->name);
        }
    }
}

static void test_relu(void **state) {
    need_cpu(state);
    backends *b = *state;
    ssd_rng r = ssd_rng_stream(14, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    int shapes[][4] = {{1, 1, 1, 1}, {2, 3, 5, 7}, {2, 64, 150, 150}, {3, 17, 9, 4}};
    for (int i = 0; i < 4; i++) {
        ssd_tensor x = or_rand4(&r, shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], -1, 1, "x");
        ssd_tensor dy = or_rand4(&r, shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3], -1, 1, "dy");
        /* exact zeros in the input: relu(0) = 0 and its gradient is 0, as in PyTorch */
        for (int64_t j = 0; j < ssd_tensor_numel(&x); j += 5) ssd_tensor_set(&x, j, 0.0);
        or_outputs truth = or_relu(b->ref, SSD_F64, &x, &dy);
        or_outputs got = or_relu(b->cpu, SSD_F32, &x, &dy);
        char shape[64];
        snprintf(shape, sizeof shape, "(%d,%d,%d,%d)", shapes[i][0], shapes[i][1], shapes[i][2],
                 shapes[i][3]);
        const double tols[] = {TOL_EXACT, TOL_EXACT};
        compare("relu", shape, &got, &truth, tols);
        or_free(&truth);
        or_free(&got);
        ssd_tensor_free(&x);
        ssd_tensor_free(&dy);
    }
}

static void run_pool_case(backends *b, ssd_rng *r, int n, int c, int h, int w, int ties,
                          const char *label) {
    ssd_pool_desc d = {3, 2, 1};
    int p = (int)ssd_conv_out_size(h, 3, 2, 1), q = (int)ssd_conv_out_size(w, 3, 2, 1);
    ssd_tensor x = or_rand4(r, n, c, h, w, -1, 1, "x");
    if (ties) /* relu'd input, quantised: most windows hold repeated maxima (zeros and others) */
        for (int64_t j = 0; j < ssd_tensor_numel(&x); j++) {
            double v = ssd_tensor_get(&x, j);
            ssd_tensor_set(&x, j, v < 0 ? 0.0 : floor(v * 4) / 4);
        }
    ssd_tensor dy = or_rand4(r, n, c, p, q, -1, 1, "dy");
    or_outputs truth = or_maxpool(b->ref, SSD_F64, &x, &dy, &d);
    or_outputs got = or_maxpool(b->cpu, SSD_F32, &x, &dy, &d);
    char shape[128];
    snprintf(shape, sizeof shape, "%s N%d C%d %dx%d%s", label, n, c, h, w, ties ? " ties" : "");
    const double tols[] = {TOL_EXACT, TOL_POOL_BWD};
    compare("maxpool", shape, &got, &truth, tols);
    or_free(&truth);
    or_free(&got);
    ssd_tensor_free(&x);
    ssd_tensor_free(&dy);
}

static void test_maxpool(void **state) {
    need_cpu(state);
    backends *b = *state;
    ssd_rng r = ssd_rng_stream(15, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    for (int t = 0; t < 8; t++) {
        int h = 1 + (int)ssd_rng_below(&r, 20), w = 1 + (int)ssd_rng_below(&r, 20);
        run_pool_case(b, &r, 1 + (int)ssd_rng_below(&r, 2), 1 + (int)ssd_rng_below(&r, 9), h, w,
                      t & 1, "random");
    }
    run_pool_case(b, &r, 2, ssd_pool_shape.c, ssd_pool_shape.h, ssd_pool_shape.h, 0,
                  ssd_pool_shape.name);
    run_pool_case(b, &r, 2, ssd_pool_shape.c, ssd_pool_shape.h, ssd_pool_shape.h, 1,
                  ssd_pool_shape.name);
}

static void test_eltwise(void **state) {
    need_cpu(state);
    backends *b = *state;
    ssd_rng r = ssd_rng_stream(16, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    int64_t sizes[] = {1, 7, 1000, 2 * 256 * 38 * 38};
    for (int i = 0; i < 4; i++) {
        ssd_tensor a = or_rand(&r, 1, &sizes[i], -3, 3, "a");
        ssd_tensor c = or_rand(&r, 1, &sizes[i], -3, 3, "b");
        /* truth rounded to f32 as the f32 result must be: compare f32 ref with cpu exactly */
        or_outputs truth = or_eltwise(b->ref, SSD_F32, &a, &c, 0.3125, -0.7);
        or_outputs got = or_eltwise(b->cpu, SSD_F32, &a, &c, 0.3125, -0.7);
        char shape[64];
        snprintf(shape, sizeof shape, "n=%lld", (long long)sizes[i]);
        const double tols[] = {TOL_ELTWISE, TOL_EXACT, TOL_EXACT, TOL_ELTWISE, TOL_ELTWISE};
        compare("eltwise", shape, &got, &truth, tols);
        or_free(&truth);
        or_free(&got);
        ssd_tensor_free(&a);
        ssd_tensor_free(&c);
    }
}

static void test_sgd(void **state) {
    need_cpu(state);
    backends *b = *state;
    ssd_rng r = ssd_rng_stream(17, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    int64_t n = 19972534 / 64; /* a slice of the model's parameter count */
    ssd_tensor p0 = or_rand(&r, 1, &n, -0.1, 0.1, "p");
    ssd_tensor g[3];
    const ssd_tensor *gp[3];
    for (int s = 0; s < 3; s++) {
        g[s] = or_rand(&r, 1, &n, -1, 1, "g");
        gp[s] = &g[s];
    }
    ssd_sgd_desc configs[] = {
        {0.08, 0.9, 5e-4, 0.0, false, true}, /* the reference's optimizer */
        {0.01, 0.9, 0.0, 0.1, false, true},  /* dampening */
        {0.01, 0.9, 1e-4, 0.0, true, true},  /* nesterov */
        {0.05, 0.0, 5e-4, 0.0, false, true}, /* plain SGD, no buffer */
    };
    for (int c = 0; c < 4; c++) {
        or_outputs truth = or_sgd(b->ref, SSD_F32, &p0, gp, 3, &configs[c]);
        or_outputs got = or_sgd(b->cpu, SSD_F32, &p0, gp, 3, &configs[c]);
        char shape[64];
        snprintf(shape, sizeof shape, "config %d n=%lld", c, (long long)n);
        const double tols[] = {TOL_SGD, TOL_SGD};
        compare("sgd", shape, &got, &truth, tols);
        or_free(&truth);
        or_free(&got);
    }
    ssd_tensor_free(&p0);
    for (int s = 0; s < 3; s++) ssd_tensor_free(&g[s]);
}

/* The device loss against the host loss (see the file comment). */
static void test_ssd_loss(void **state) {
    ssd_backend *dut = need_cpu(state);
    if (!ssd_backend_has_loss(dut)) {
        printf("test_ssd_loss: backend %s leaves the loss to the host; nothing to compare\n",
               dut->name);
        return;
    }
    enum { N = 5, A = SSD_NUM_ANCHORS, NC = SSD_NUM_CLASSES };
    static ssd_anchors an;
    ssd_anchors_build(&an);
    ssd_rng r = ssd_rng_stream(23, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    int64_t s_loc[3] = {N, 4, A}, s_conf[3] = {N, NC, A}, s_box[3] = {N, A, 4}, s_lab[2] = {N, A};
    int64_t s_anc[2] = {A, 4}, s_pi[1] = {N};
    ssd_tensor ploc = ssd_tensor_alloc_host(SSD_F32, 3, s_loc, "ploc");
    ssd_tensor pconf = ssd_tensor_alloc_host(SSD_F32, 3, s_conf, "pconf");
    ssd_tensor gbox = ssd_tensor_alloc_host(SSD_F32, 3, s_box, "gbox");
    ssd_tensor glab = ssd_tensor_alloc_host(SSD_I64, 2, s_lab, "glabel");
    float *pl = ploc.data, *pc = pconf.data, *gb = gbox.data;
    int64_t *lb = glab.data;
    for (int64_t i = 0; i < ssd_tensor_numel(&ploc); i++) pl[i] = 2.0f * ssd_rng_uniform(&r) - 1.0f;
    for (int64_t i = 0; i < ssd_tensor_numel(&pconf); i++) pc[i] = 4.0f * ssd_rng_uniform(&r) - 2.0f;
    for (int n = 0; n < N; n++) {
        /* positive draws: 30 per image; none in image 1; 3000 in image 2 (about 2560 distinct
         * anchors: 3P > A - P, so K takes every negative and some positives twice) */
        int npos = n == 1 ? 0 : (n == 2 ? 3000 : 30);
        for (int a = 0; a < A; a++) {
            int64_t k = (int64_t)n * A + a;
            lb[k] = 0;
            for (int c = 0; c < 4; c++) gb[4 * k + c] = an.xywh[a][c];
        }
        for (int p = 0; p < npos; p++) {
            int a = (int)ssd_rng_below(&r, A);
            int64_t k = (int64_t)n * A + a;
            lb[k] = 1 + (int64_t)ssd_rng_below(&r, NC - 1);
            gb[4 * k + 0] = an.xywh[a][0] + 0.02f * (ssd_rng_uniform(&r) - 0.5f);
            gb[4 * k + 1] = an.xywh[a][1] + 0.02f * (ssd_rng_uniform(&r) - 0.5f);
            gb[4 * k + 2] = an.xywh[a][2] * (0.7f + 0.6f * ssd_rng_uniform(&r));
            gb[4 * k + 3] = an.xywh[a][3] * (0.7f + 0.6f * ssd_rng_uniform(&r));
        }
        /* image 3: a run of 400 background anchors with identical logits, whose equal ce
         * values straddle the threshold (their ce is made the largest, and K < 400) */
        if (n == 3)
            for (int a = 1000; a < 1400; a++) {
                if (lb[(int64_t)n * A + a]) continue;
                for (int c = 0; c < NC; c++) pc[((int64_t)n * NC + c) * A + a] = c == 0 ? -5.0f : 1.0f;
            }
    }
    /* the host truth */
    ssd_tensor dloc_h = ssd_tensor_alloc_host(SSD_F32, 3, s_loc, "dloc");
    ssd_tensor dconf_h = ssd_tensor_alloc_host(SSD_F32, 3, s_conf, "dconf");
    ssd_loss_ws *ws = ssd_loss_ws_create();
    ssd_loss_forward_backward(&an, N, pl, pc, gb, lb, dloc_h.data, dconf_h.data, NULL, ws);
    /* the device */
    ssd_tensor anc = ssd_tensor_view(an.xywh, SSD_F32, 2, s_anc, "anchors");
    ssd_tensor d_ploc = tu_to_backend(dut, &ploc, SSD_F32), d_pconf = tu_to_backend(dut, &pconf, SSD_F32);
    ssd_tensor d_gbox = tu_to_backend(dut, &gbox, SSD_F32);
    ssd_tensor d_lab = ssd_backend_tensor_alloc(dut, SSD_I64, 2, s_lab, "glabel");
    ssd_backend_upload(dut, &d_lab, &glab);
    ssd_tensor d_anc = tu_to_backend(dut, &anc, SSD_F32);
    ssd_tensor d_dloc = ssd_backend_tensor_alloc(dut, SSD_F32, 3, s_loc, "dloc");
    ssd_tensor d_dconf = ssd_backend_tensor_alloc(dut, SSD_F32, 3, s_conf, "dconf");
    ssd_tensor d_pi = ssd_backend_tensor_alloc(dut, SSD_F64, 1, s_pi, "per_image");
    ssd_loss_on_backend(dut, &d_pi, &d_dloc, &d_dconf, &d_ploc, &d_pconf, &d_gbox, &d_lab,
                        &d_anc, 1.0f);
    ssd_tensor pi_g = tu_to_host(dut, &d_pi, SSD_F64);
    ssd_tensor dloc_g = tu_to_host(dut, &d_dloc, SSD_F32), dconf_g = tu_to_host(dut, &d_dconf, SSD_F32);
    for (int n = 0; n < N; n++) {
        const ssd_loss_image_stats *st = ssd_loss_ws_image(ws, n);
        double g = ssd_tensor_get(&pi_g, n), h = st->loss;
        double rel = h == 0 ? fabs(g) : fabs(g - h) / fabs(h);
        printf("parity ssd_loss       image %d (%4d pos, K %4d, %4d twice)  loss host %.12g %s "
               "%.12g rel %.2e (tol 1e-8)\n",
               n, st->num_pos, st->num_neg, st->num_double, h, dut->name, g, rel);
        assert_true(rel <= 1e-8);
        if (n == 1) assert_true(g == 0.0);
    }
    double el = tu_nmse(&dloc_g, &dloc_h), ec = tu_nmse(&dconf_g, &dconf_h);
    printf("parity ssd_loss       gradients  dloc nmse %.3e  dconf nmse %.3e (tol 1e-12)\n", el, ec);
    assert_true(el <= 1e-12);
    assert_true(ec <= 1e-12);
    /* image 1 (no positives): all-zero gradients */
    const float *dc = dconf_g.data;
    for (int64_t i = (int64_t)1 * NC * A; i < (int64_t)2 * NC * A; i++) assert_true(dc[i] == 0.0f);
    ssd_tensor *dev[] = {&d_ploc, &d_pconf, &d_gbox, &d_lab, &d_anc, &d_dloc, &d_dconf, &d_pi};
    for (int i = 0; i < 8; i++) ssd_backend_tensor_free(dut, dev[i]);
    ssd_tensor *host[] = {&ploc, &pconf, &gbox, &glab, &dloc_h, &dconf_h, &pi_g, &dloc_g, &dconf_g};
    for (int i = 0; i < 9; i++) ssd_tensor_free(host[i]);
    ssd_loss_ws_destroy(ws);
}

/* ssd_conv2d_backward (both passes from one dout; the cpu backend converts dout once where
 * oneDNN runs both passes in the same layout) against the two separate calls on the backend
 * under test and on ref (which has no fused op: the dispatcher's fallback): bit-identical dx,
 * dW and db, with dW and db pre-filled (they accumulate). Prints the layout reorders each way;
 * with the native bf16 kernels at least one shape must save its second conversion of dout. */
static void fused_case(ssd_backend *be, ssd_rng *r, int n, int c, int k, int h, int ksize,
                       int stride, int pad, bool bias, uint64_t *saved) {
    const ssd_conv_desc d = {.stride_h = stride, .stride_w = stride, .pad_h = pad, .pad_w = pad};
    const int p = (int)ssd_conv_out_size(h, ksize, stride, pad);
    ssd_tensor x = or_rand4(r, n, c, h, h, -1, 1, "x"), w = or_rand4(r, k, c, ksize, ksize, -1, 1, "w");
    ssd_tensor dy = or_rand4(r, n, k, p, p, -1, 1, "dy"), w0 = or_rand4(r, k, c, ksize, ksize, -1, 1, "dw0");
    int64_t ks = k;
    ssd_tensor b0 = or_rand(r, 1, &ks, -1, 1, "db0");
    ssd_tensor bx = tu_to_backend(be, &x, SSD_F32), bw = tu_to_backend(be, &w, SSD_F32);
    ssd_tensor bdy = tu_to_backend(be, &dy, SSD_F32);
    ssd_tensor out[2][3]; /* [separate, fused][dx, dw, db] */
    uint64_t reorders[2];
    for (int f = 0; f < 2; f++) {
        ssd_tensor dx = tu_zeros_like(be, &bx, SSD_F32), dw = tu_to_backend(be, &w0, SSD_F32);
        ssd_tensor db = tu_to_backend(be, &b0, SSD_F32);
        const uint64_t r0 = be->stats.reorders;
        if (f) {
            ssd_conv2d_backward(be, &dw, bias ? &db : NULL, &dx, &bdy, &bx, &bw, &d);
        } else {
            ssd_conv2d_backward_weights(be, &dw, bias ? &db : NULL, &bdy, &bx, &d);
            ssd_conv2d_backward_data(be, &dx, &bdy, &bw, &d);
        }
        be->ops->sync(be);
        reorders[f] = be->stats.reorders - r0;
        out[f][0] = tu_to_host(be, &dx, SSD_F32);
        out[f][1] = tu_to_host(be, &dw, SSD_F32);
        out[f][2] = tu_to_host(be, &db, SSD_F32);
        ssd_backend_tensor_free(be, &dx);
        ssd_backend_tensor_free(be, &dw);
        ssd_backend_tensor_free(be, &db);
    }
    printf("fused conv backward on %s: N%d %d->%d %dx%d k%d/s%d/p%d%s: reorders %llu separate, "
           "%llu fused\n", be->name, n, c, k, h, h, ksize, stride, pad, bias ? " +b" : "",
           (unsigned long long)reorders[0], (unsigned long long)reorders[1]);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ssd_tensor_nbytes(&out[0][i]), ssd_tensor_nbytes(&out[1][i]));
        if (memcmp(out[0][i].data, out[1][i].data, ssd_tensor_nbytes(&out[0][i])))
            fail_msg("fused conv backward on %s differs from the two calls (output %d)",
                     be->name, i);
        ssd_tensor_free(&out[0][i]);
        ssd_tensor_free(&out[1][i]);
    }
    assert_true(reorders[1] <= reorders[0]);
    *saved += reorders[0] - reorders[1];
    ssd_backend_tensor_free(be, &bx);
    ssd_backend_tensor_free(be, &bw);
    ssd_backend_tensor_free(be, &bdy);
    ssd_tensor *host[] = {&x, &w, &dy, &w0, &b0};
    for (int i = 0; i < 5; i++) ssd_tensor_free(host[i]);
}

static void test_conv_backward_fused(void **state) {
    ssd_backend *dut = need_cpu(state);
    backends *b = *state;
    ssd_backend *bes[2] = {dut, b->ref};
    for (int i = 0; i < 2; i++) {
        ssd_rng r = ssd_rng_stream(23, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
        uint64_t saved = 0;
        fused_case(bes[i], &r, 2, 16, 32, 12, 3, 1, 1, true, &saved);
        fused_case(bes[i], &r, 2, 64, 64, 20, 3, 1, 1, false, &saved); /* Winograd's shape */
        fused_case(bes[i], &r, 2, 32, 48, 15, 3, 2, 1, true, &saved);
        fused_case(bes[i], &r, 2, 24, 40, 10, 1, 1, 0, false, &saved);
        fused_case(bes[i], &r, 3, 9, 10, 7, 5, 2, 2, true, &saved);
        if (i == 0 && native_bf16())
            assert_true(saved > 0); /* the native bf16 kernels (or GEMMs) share dout's layout */
    }
}

/* A backend may keep converted copies of a convolution's input and weight between calls (cuda's
 * bf16 shadows). After any op or upload rewrites the input or the weight, the convolution must
 * see the new values: for each kind of write, forward, backward-weights and backward-data on
 * the rewritten tensors must be bit-identical to the same calls on fresh tensors holding the
 * same values. The write changes the forward's output, so a stale copy cannot pass. */
enum { W_UPLOAD, W_FILL, W_RELU, W_ADD, W_SCALE, W_COPY, W_COPY_ROWS, W_BN, W_SGD, W_COUNT };
static const char *const k_write_names[W_COUNT] = {"upload", "fill",      "relu_forward",
                                                   "add",    "scale",     "copy",
                                                   "copy_rows", "batchnorm_train_forward",
                                                   "sgd_update (weight)"};

/* y = conv(x, w), dw = conv_bwd_weights(dy, x), dx = conv_bwd_data(dy, w), on the host */
static void conv_three(ssd_backend *be, const ssd_tensor *x, const ssd_tensor *w,
                       const ssd_tensor *dy, const ssd_conv_desc *d, ssd_tensor out[3]) {
    int64_t ys[4] = {x->shape[0], w->shape[0], dy->shape[2], dy->shape[3]};
    ssd_tensor y = ssd_backend_tensor_alloc(be, SSD_F32, 4, ys, "y");
    ssd_tensor dw = tu_zeros_like(be, w, SSD_F32), dx = tu_zeros_like(be, x, SSD_F32);
    ssd_conv2d_forward(be, &y, x, w, NULL, d);
    ssd_conv2d_backward_weights(be, &dw, NULL, dy, x, d);
    ssd_conv2d_backward_data(be, &dx, dy, w, d);
    out[0] = tu_to_host(be, &y, SSD_F32);
    out[1] = tu_to_host(be, &dw, SSD_F32);
    out[2] = tu_to_host(be, &dx, SSD_F32);
    ssd_backend_tensor_free(be, &y);
    ssd_backend_tensor_free(be, &dw);
    ssd_backend_tensor_free(be, &dx);
}

static void test_conv_after_write(void **state) {
    ssd_backend *be = need_cpu(state);
    const ssd_conv_desc d = {.stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1};
    const int n = 2, c = 16, k = 16, h = 8;
    for (int wk = 0; wk < W_COUNT; wk++) {
        ssd_rng r = ssd_rng_stream(29, SSD_RNG_DOMAIN_TEST, (uint64_t)wk, 0, 0);
        ssd_tensor hx = or_rand4(&r, n, c, h, h, -1, 1, "x"), hw = or_rand4(&r, k, c, 3, 3, -1, 1, "w");
        ssd_tensor hdy = or_rand4(&r, n, k, h, h, -1, 1, "dy");
        ssd_tensor ho = or_rand4(&r, n, c, h, h, -1, 1, "other");
        ssd_tensor hw2 = or_rand4(&r, k, c, 3, 3, -1, 1, "grad");
        ssd_tensor x = tu_to_backend(be, &hx, SSD_F32), w = tu_to_backend(be, &hw, SSD_F32);
        ssd_tensor dy = tu_to_backend(be, &hdy, SSD_F32), o = tu_to_backend(be, &ho, SSD_F32);
        ssd_tensor g = tu_to_backend(be, &hw2, SSD_F32), mom = tu_zeros_like(be, &w, SSD_F32);
        int64_t cs = c;
        ssd_tensor hgam = or_rand(&r, 1, &cs, 0.5, 1.5, "gamma"), hbet = or_rand(&r, 1, &cs, -1, 1, "beta");
        ssd_tensor gam = tu_to_backend(be, &hgam, SSD_F32), bet = tu_to_backend(be, &hbet, SSD_F32);
        ssd_tensor st[4];
        for (int i = 0; i < 4; i++) st[i] = tu_zeros_like(be, &gam, SSD_F32);
        ssd_tensor before[3], after[3], fresh[3];
        conv_three(be, &x, &w, &dy, &d, before); /* leaves any converted copies behind */
        switch (wk) {
        case W_UPLOAD: {
            ssd_tensor o32 = tu_to_host(be, &o, SSD_F32); /* the host's f32 values */
            ssd_backend_upload(be, &x, &o32);
            ssd_tensor_free(&o32);
            break;
        }
        case W_FILL: ssd_fill(be, &x, 0.375); break;
        case W_RELU: ssd_relu_forward(be, &x, &o); break;
        case W_ADD: ssd_add(be, &x, &x, &o); break;
        case W_SCALE: ssd_scale(be, &x, &x, -1.5); break;
        case W_COPY: ssd_copy(be, &x, &o); break;
        case W_COPY_ROWS: /* the second image's planes only */
            ssd_copy_rows(be, &x, (int64_t)c * h * h, h * h, &o, 0, h * h, c, h * h);
            break;
        case W_BN: {
            ssd_bn_desc bd = {1e-5, 0.1, true};
            ssd_batchnorm_train_forward(be, &x, &st[0], &st[1], &st[2], &st[3], &o, &gam, &bet,
                                        NULL, &bd);
            break;
        }
        case W_SGD: {
            ssd_sgd_desc sd = {.lr = 0.5, .momentum = 0.9, .first_step = true};
            ssd_sgd_update(be, &w, &mom, &g, &sd);
            break;
        }
        }
        conv_three(be, &x, &w, &dy, &d, after);
        ssd_tensor nx = tu_to_host(be, &x, SSD_F32), nw = tu_to_host(be, &w, SSD_F32);
        ssd_tensor fx = tu_to_backend(be, &nx, SSD_F32), fw = tu_to_backend(be, &nw, SSD_F32);
        conv_three(be, &fx, &fw, &dy, &d, fresh);
        printf("conv after %s on %s/%s\n", k_write_names[wk], be->name, dut_math());
        /* the write changed the forward (else staleness could not show) */
        assert_true(memcmp(before[0].data, after[0].data, ssd_tensor_nbytes(&before[0])) != 0);
        for (int i = 0; i < 3; i++)
            if (memcmp(after[i].data, fresh[i].data, ssd_tensor_nbytes(&after[i])))
                fail_msg("conv output %d after %s on %s differs from fresh tensors", i,
                         k_write_names[wk], be->name);
        ssd_tensor *dev[] = {&x, &w, &dy, &o, &g, &mom, &gam, &bet, &fx, &fw,
                             &st[0], &st[1], &st[2], &st[3]};
        for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) ssd_backend_tensor_free(be, dev[i]);
        ssd_tensor *host[] = {&hx, &hw, &hdy, &ho, &hw2, &hgam, &hbet, &nx, &nw};
        for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) ssd_tensor_free(host[i]);
        for (int i = 0; i < 3; i++) {
            ssd_tensor_free(&before[i]);
            ssd_tensor_free(&after[i]);
            ssd_tensor_free(&fresh[i]);
        }
    }
}

/* Primitive caching: the same shape twice creates nothing new the second time. */
static void test_cache_reuse(void **state) {
    ssd_backend *cpu = need_cpu(state);
    backends *b = *state;
    ssd_rng r = ssd_rng_stream(18, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    run_conv_case(b, &r, 2, 16, 32, 12, 3, 1, 1, true, "cache warm-up");
    uint64_t created = cpu->stats.prims_created, reused = cpu->stats.prims_reused;
    run_conv_case(b, &r, 2, 16, 32, 12, 3, 1, 1, true, "cache again");
    assert_int_equal(cpu->stats.prims_created, created);
    assert_true(cpu->stats.prims_reused > reused);
}

int main(void) {
    if (!dut_is_cpu()) {
        ssd_backend *probe = NULL;
        ssd_error err;
        if (ssd_backend_create(dut_name(), &probe, &err) != SSD_OK) {
            tu_skip("test_ops_parity", err.msg);
            return 77;
        }
        ssd_backend_destroy(probe);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_random), cmocka_unit_test(test_conv_layers),
        cmocka_unit_test(test_conv_winograd), cmocka_unit_test(test_conv_backward_fused),
        cmocka_unit_test(test_bn),          cmocka_unit_test(test_relu),
        cmocka_unit_test(test_maxpool),     cmocka_unit_test(test_eltwise),
        cmocka_unit_test(test_sgd),         cmocka_unit_test(test_cache_reuse),
        cmocka_unit_test(test_ssd_loss),    cmocka_unit_test(test_conv_after_write),
    };
    /* the cpu backend's bf16 math changes the convolutions only: run those */
    const struct CMUnitTest conv_tests[] = {
        cmocka_unit_test(test_conv_random), cmocka_unit_test(test_conv_layers),
        cmocka_unit_test(test_conv_winograd), cmocka_unit_test(test_conv_backward_fused),
        cmocka_unit_test(test_cache_reuse), cmocka_unit_test(test_conv_after_write),
    };
    if (dut_is_cpu() && !strncmp(dut_math(), "bf16", 4))
        return cmocka_run_group_tests(conv_tests, setup, teardown);
    return cmocka_run_group_tests(tests, setup, teardown);
}
