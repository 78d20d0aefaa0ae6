/* The SSD loss (src/loss/ssd_loss.h) against spec/ssd-reference.md section 5: the golden values,
 * finite differences of both gradients, the P = 0, inf-loss and double-counting quirks, and
 * the hard-negative tie rule.
 *
 * Targets come from a small naive encoder written here from spec section 4 (the project's
 * encoder is tested on its own; this keeps the loss test independent of it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "box/anchors.h"
#include "box/box_coder.h"
#include "core/mem.h"
#include "core/rng.h"
#include "loss/ssd_loss.h"
#include "testutil.h"

#define A SSD_NUM_ANCHORS
#define NC SSD_NUM_CLASSES

static ssd_anchors *g_an;

static int setup(void **state) {
    g_an = ssd_xmalloc(sizeof *g_an);
    ssd_anchors_build(g_an);
    return 0;
}
static int teardown(void **state) {
    free(g_an);
    return 0;
}


typedef struct {
    int n;
    float *ploc, *pconf, *gbox, *dloc, *dconf, *per;
    int64_t *glabel;
} batch;

static batch batch_new(int n) {
    batch b;
    b.n = n;
    b.ploc = ssd_xcalloc((size_t)n * 4 * A, sizeof(float));
    b.pconf = ssd_xcalloc((size_t)n * NC * A, sizeof(float));
    b.gbox = ssd_xcalloc((size_t)n * 4 * A, sizeof(float));
    b.dloc = ssd_xcalloc((size_t)n * 4 * A, sizeof(float));
    b.dconf = ssd_xcalloc((size_t)n * NC * A, sizeof(float));
    b.per = ssd_xcalloc((size_t)n, sizeof(float));
    b.glabel = ssd_xcalloc((size_t)n * A, sizeof(int64_t));
    return b;
}
static void batch_free(batch *b) {
    free(b->ploc), free(b->pconf), free(b->gbox), free(b->dloc), free(b->dconf), free(b->per);
    free(b->glabel);
}

/* Poison the gradient buffers: the loss must overwrite every entry. */
static void poison(batch *b) {
    for (size_t i = 0; i < (size_t)b->n * 4 * A; i++) b->dloc[i] = NAN;
    for (size_t i = 0; i < (size_t)b->n * NC * A; i++) b->dconf[i] = NAN;
}

static float run(batch *b, ssd_loss_ws *ws) {
    poison(b);
    return ssd_loss_forward_backward(g_an, b->n, b->ploc, b->pconf, b->gbox, b->glabel, b->dloc,
                                     b->dconf, b->per, ws);
}

static void assert_all_finite(const batch *b) {
    for (size_t i = 0; i < (size_t)b->n * 4 * A; i++) assert_true(isfinite(b->dloc[i]));
    for (size_t i = 0; i < (size_t)b->n * NC * A; i++) assert_true(isfinite(b->dconf[i]));
}

static const float k_gt0[1][4] = {{0.1f, 0.1f, 0.4f, 0.5f}};
static const int k_lab0[1] = {7};
static const float k_gt1[3][4] = {{0, 0, 1, 1}, {0.2f, 0.3f, 0.25f, 0.38f}, {0.6f, 0.1f, 0.9f, 0.3f}};
static const int k_lab1[3] = {1, 2, 80};

static int count_pos(const int64_t *l) {
    int p = 0;
    for (int a = 0; a < A; a++) p += l[a] > 0;
    return p;
}

/* The spec prints fp32 results of the reference to 8 significant digits; we compute in double,
 * so the difference is the reference's own float32 error (sums of ~10^4 terms of size ~4:
 * relative ~1e-6 at most) plus the print rounding (5e-7 absolute). */
static void assert_golden(double got, double want) {
    double tol = 5e-7 * fabs(want) + 5e-7;
    printf("  golden %.7f vs spec %.7f (diff %.2e, tol %.2e)\n", got, want, fabs(got - want), tol);
    assert_true(fabs(got - want) <= tol);
}

static void test_golden_one_image(void **state) {
    batch b = batch_new(1);
    tu_naive_encode(g_an, 1, k_gt0, k_lab0, b.gbox, b.glabel);
    static const int want_pos[7] = {7964, 7974, 8063, 8064, 8074, 8264, 8274};
    assert_int_equal(count_pos(b.glabel), 7);
    for (int i = 0; i < 7; i++) assert_int_equal(b.glabel[want_pos[i]], 7);
    ssd_loss_ws *ws = ssd_loss_ws_create();
    float loss = run(&b, ws);
    assert_golden(loss, 19.664722);
    assert_golden(ssd_loss_ws_image(ws, 0)->loss, 19.664722);
    /* CE = ln 81 everywhere: L_conf = 28 ln 81 exactly (7 positives + 21 negatives) */
    assert_true(fabs(ssd_loss_ws_image(ws, 0)->conf - 28.0 * log(81.0)) < 1e-12);
    assert_int_equal(ssd_loss_ws_image(ws, 0)->num_neg, 21);
    assert_int_equal(ssd_loss_ws_image(ws, 0)->num_double, 0);
    assert_all_finite(&b);
    ssd_loss_ws_destroy(ws);
    batch_free(&b);
}

static void fill_sincos(batch *b) {
    for (int n = 0; n < b->n; n++) {
        for (int c = 0; c < 4; c++)
            for (int a = 0; a < A; a++)
                b->ploc[((size_t)n * 4 + c) * A + a] = (float)(0.5 * sin(0.001 * a + c + n));
        for (int k = 0; k < NC; k++)
            for (int a = 0; a < A; a++)
                b->pconf[((size_t)n * NC + k) * A + a] = (float)(2.0 * cos(0.37 * k + 0.011 * a + n));
    }
}

static void test_golden_two_images(void **state) {
    batch b = batch_new(2);
    tu_naive_encode(g_an, 1, k_gt0, k_lab0, b.gbox, b.glabel);
    tu_naive_encode(g_an, 3, k_gt1, k_lab1, b.gbox + 4 * A, b.glabel + A);
    assert_int_equal(count_pos(b.glabel + A), 13);
    fill_sincos(&b);
    ssd_loss_ws *ws = ssd_loss_ws_create();
    float loss = run(&b, ws);
    assert_golden(b.per[0], 30.111174);
    assert_golden(b.per[1], 29.836100);
    assert_golden(loss, 29.973637);
    assert_all_finite(&b);
    /* same answer with a temporary workspace, and after the workspace was reused */
    float again = ssd_loss_forward_backward(g_an, 2, b.ploc, b.pconf, b.gbox, b.glabel, NULL, NULL,
                                            NULL, NULL);
    assert_true(again == loss);
    assert_true(run(&b, ws) == loss);
    ssd_loss_ws_destroy(ws);
    batch_free(&b);
}

/* ---- finite differences ---- */

/* Batch loss in double: the mean of the per-image double losses (the float return value would
 * limit central differences to ~1e-3). */
static double loss_f64(batch *b, ssd_loss_ws *ws) {
    ssd_loss_forward_backward(g_an, b->n, b->ploc, b->pconf, b->gbox, b->glabel, NULL, NULL, NULL,
                              ws);
    double s = 0;
    for (int i = 0; i < b->n; i++) s += ssd_loss_ws_image(ws, i)->loss;
    return s / b->n;
}

static float quant(double v) { return (float)(ldexp(nearbyint(ldexp(v, 10)), -10)); }

/* ce of anchor a of image n, naive double */
static double naive_ce(const batch *b, int n, int a) {
    const float *x = b->pconf + (size_t)n * NC * A;
    double m = -INFINITY, s = 0;
    for (int k = 0; k < NC; k++) m = fmax(m, x[(size_t)k * A + a]);
    for (int k = 0; k < NC; k++) s += exp(x[(size_t)k * A + a] - m);
    return m + log(s) - x[(size_t)b->glabel[(size_t)n * A + a] * A + a];
}

static int cmp_desc(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a < b) - (a > b);
}

static double g_fd_worst; /* max |fd - analytic| / (|fd| + 1e-3) over the checks */
static int g_fd_count;

static void fd_check(batch *b, ssd_loss_ws *ws, float *x, float g, const char *what, int idx) {
    /* inputs are multiples of 2^-10 below 2^13, so x +- h (h = 2^-8) is exact in float32 */
    const float h = 0x1p-8f;
    float x0 = *x;
    *x = x0 + h;
    double lp = loss_f64(b, ws);
    *x = x0 - h;
    double lm = loss_f64(b, ws);
    *x = x0;
    double fd = (lp - lm) / (2.0 * h);
    /* central-difference truncation h^2/6 |f'''| ~ 1e-5 * scale for the CE (|f'''| <= 1),
     * 0 for the piecewise-quadratic smooth L1 away from its kink; g is rounded to float */
    double tol = 1e-4 * fabs(fd) + 2e-6;
    g_fd_worst = fmax(g_fd_worst, fabs(fd - g) / (fabs(fd) + 1e-3));
    g_fd_count++;
    if (fabs(fd - g) > tol)
        printf("  FD %s[%d]: analytic %.9g vs fd %.9g (tol %.2e)\n", what, idx, g, fd, tol);
    assert_true(fabs(fd - g) <= tol);
}

static void test_finite_differences(void **state) {
    const int N = 2;
    batch b = batch_new(N);
    ssd_rng r = ssd_rng_stream(7, SSD_RNG_DOMAIN_TEST, 0, 0, 501);
    static const float gts[2][3][4] = {
        {{0.1f, 0.12f, 0.45f, 0.5f}, {0.55f, 0.6f, 0.7f, 0.92f}, {0.3f, 0.05f, 0.38f, 0.2f}},
        {{0.2f, 0.2f, 0.9f, 0.85f}, {0.02f, 0.6f, 0.2f, 0.7f}, {0, 0, 0, 0}}};
    static const int labs[2][3] = {{3, 17, 44}, {80, 1, 0}};
    tu_naive_encode(g_an, 3, gts[0], labs[0], b.gbox, b.glabel);
    tu_naive_encode(g_an, 2, gts[1], labs[1], b.gbox + 4 * A, b.glabel + A);
    for (size_t i = 0; i < (size_t)N * 4 * A; i++) b.ploc[i] = quant(ssd_rng_range(&r, -1.6, 1.6));
    for (size_t i = 0; i < (size_t)N * NC * A; i++) b.pconf[i] = quant(2.0 * ssd_rng_normal(&r));

    ssd_loss_ws *ws = ssd_loss_ws_create();
    run(&b, ws);
    assert_all_finite(&b);
    float *dloc = ssd_xmalloc((size_t)N * 4 * A * sizeof(float));
    float *dconf = ssd_xmalloc((size_t)N * NC * A * sizeof(float));
    memcpy(dloc, b.dloc, (size_t)N * 4 * A * sizeof(float));
    memcpy(dconf, b.dconf, (size_t)N * NC * A * sizeof(float));

    const float h = 0x1p-8f;
    double *ces = ssd_xmalloc(A * sizeof(double));
    for (int n = 0; n < N; n++) {
        const int64_t *lab = b.glabel + (size_t)n * A;
        int P = count_pos(lab);
        assert_true(P > 0);
        /* loc: positives away from the kink |z| = 1, and two negatives (gradient 0) */
        int done = 0;
        for (int a = 0; a < A && done < 8; a++) {
            if (lab[a] <= 0) continue;
            float t[4];
            ssd_box_encode(b.gbox + ((size_t)n * A + a) * 4, g_an->xywh[a], t);
            for (int c = 0; c < 4; c++) {
                size_t i = ((size_t)n * 4 + c) * A + a;
                double z = (double)b.ploc[i] - t[c];
                if (fabs(fabs(z) - 1.0) < 4 * h) continue;
                fd_check(&b, ws, &b.ploc[i], dloc[i], "ploc", (int)i);
                done++;
            }
        }
        assert_true(done >= 4);
        for (int a = 0, neg = 0; a < A && neg < 2; a += 997) {
            if (lab[a] > 0) continue;
            size_t i = ((size_t)n * 4 + 1) * A + a;
            assert_true(dloc[i] == 0.0f);
            fd_check(&b, ws, &b.ploc[i], dloc[i], "ploc", (int)i);
            neg++;
        }
        /* conf: the K-th largest negative CE is the mining boundary; only perturb anchors whose
         * CE is more than 4h from it (a logit step of h moves a CE by at most h) */
        int K = 3 * P < A ? 3 * P : A, nneg = 0;
        for (int a = 0; a < A; a++)
            if (lab[a] <= 0) ces[nneg++] = naive_ce(&b, n, a);
        qsort(ces, (size_t)nneg, sizeof(double), cmp_desc);
        double hi_edge = ces[K - 1], lo_edge = ces[K];
        int in_neg = 0, out_neg = 0, pos_done = 0;
        for (int a = 0; a < A; a++) {
            int want;
            if (lab[a] > 0) {
                want = pos_done < 2;
                pos_done += want;
            } else {
                double ce = naive_ce(&b, n, a);
                if (ce > hi_edge + 4 * h && in_neg < 3) {
                    want = 1;
                    in_neg++;
                } else if (ce < lo_edge - 4 * h && out_neg < 1 && a > 4000) {
                    want = 1;
                    out_neg++;
                } else {
                    want = 0;
                }
            }
            if (!want) continue;
            int ks[3] = {0, (int)lab[a], 1 + (a % 80)};
            for (int j = 0; j < 3; j++) {
                size_t i = ((size_t)n * NC + ks[j]) * A + a;
                fd_check(&b, ws, &b.pconf[i], dconf[i], "pconf", (int)i);
            }
        }
        assert_int_equal(in_neg, 3);
        assert_int_equal(out_neg, 1);
        assert_int_equal(pos_done, 2);
    }
    printf("  %d finite-difference checks, worst |fd - analytic| / (|fd| + 1e-3) = %.2e\n",
           g_fd_count, g_fd_worst);
    free(ces);
    free(dloc);
    free(dconf);
    ssd_loss_ws_destroy(ws);
    batch_free(&b);
}

/* ---- quirks ---- */

static void test_zero_positives(void **state) {
    /* alone: loss 0, gradient 0 */
    batch b = batch_new(1);
    tu_naive_encode(g_an, 0, NULL, NULL, b.gbox, b.glabel);
    assert_int_equal(count_pos(b.glabel), 0);
    fill_sincos(&b);
    ssd_loss_ws *ws = ssd_loss_ws_create();
    float loss = run(&b, ws);
    assert_true(loss == 0.0f && b.per[0] == 0.0f);
    for (size_t i = 0; i < 4 * A; i++) assert_true(b.dloc[i] == 0.0f);
    for (size_t i = 0; i < NC * A; i++) assert_true(b.dconf[i] == 0.0f);
    batch_free(&b);

    /* beside an image with positives: still counts in N (halves the loss and the gradient) */
    batch one = batch_new(1), two = batch_new(2);
    tu_naive_encode(g_an, 1, k_gt0, k_lab0, one.gbox, one.glabel);
    fill_sincos(&one);
    fill_sincos(&two);
    memcpy(two.gbox, one.gbox, 4 * A * sizeof(float));
    memcpy(two.glabel, one.glabel, A * sizeof(int64_t));
    tu_naive_encode(g_an, 0, NULL, NULL, two.gbox + 4 * A, two.glabel + A);
    memcpy(two.ploc, one.ploc, 4 * A * sizeof(float));
    memcpy(two.pconf, one.pconf, NC * A * sizeof(float));
    float l1 = run(&one, ws), l2 = run(&two, ws);
    assert_true(two.per[1] == 0.0f);
    assert_true(fabsf(l2 - 0.5f * l1) <= 1e-6f * l1);
    for (size_t i = 0; i < 4 * A; i++) {
        assert_true(two.dloc[i] == 0.5f * one.dloc[i]);
        assert_true(two.dloc[4 * A + i] == 0.0f);
    }
    for (size_t i = 0; i < NC * A; i++) {
        assert_true(fabsf(two.dconf[i] - 0.5f * one.dconf[i]) <= 1e-7f * fabsf(one.dconf[i]));
        assert_true(two.dconf[NC * A + i] == 0.0f);
    }
    ssd_loss_ws_destroy(ws);
    batch_free(&one);
    batch_free(&two);
}

static void test_inf_loss(void **state) {
    /* spec 4: a zero-height GT is forced onto anchor 0, encoded (0.55, 0.5, 0.1, 0.0) */
    static const float gt[1][4] = {{0.5f, 0.5f, 0.6f, 0.5f}};
    static const int lab[1] = {5};
    batch b = batch_new(2);
    tu_naive_encode(g_an, 1, gt, lab, b.gbox, b.glabel);
    tu_naive_encode(g_an, 1, k_gt0, k_lab0, b.gbox + 4 * A, b.glabel + A);
    assert_int_equal(count_pos(b.glabel), 1);
    assert_int_equal(b.glabel[0], 5);
    assert_true(b.gbox[3] == 0.0f);
    fill_sincos(&b);
    ssd_loss_ws *ws = ssd_loss_ws_create();
    float loss = run(&b, ws);
    assert_true(isinf(loss) && loss > 0);
    assert_true(isinf(b.per[0]) && b.per[0] > 0);
    assert_true(isfinite(b.per[1]));
    assert_all_finite(&b);
    /* t_h = 5 ln 0 = -inf, z = +inf: linear branch, gradient +1 / (P N) = 0.5 */
    assert_true(b.dloc[3 * A + 0] == 0.5f);
    /* the other coordinates of that anchor are ordinary */
    float t[4];
    ssd_box_encode(b.gbox, g_an->xywh[0], t);
    assert_true(isinf(t[3]) && isfinite(t[0]) && isfinite(t[1]) && isfinite(t[2]));
    for (int c = 0; c < 3; c++) {
        double z = (double)b.ploc[(size_t)c * A] - t[c];
        double g = fabs(z) < 1 ? z : (z > 0 ? 1 : -1);
        assert_true(fabs(b.dloc[(size_t)c * A] - 0.5 * g) <= 1e-7);
    }
    ssd_loss_ws_destroy(ws);
    batch_free(&b);
}

static void test_double_counting(void **state) {
    /* P = 2500 positives at anchors 0..2499 (targets = their own anchors): K = 7500 > 6232
     * negatives, so the 1268 lowest-index positives (ce_neg = 0, tied) are also negatives */
    const int P = 2500, K = 3 * P, D = K - (A - P);
    batch b = batch_new(1);
    ssd_rng r = ssd_rng_stream(7, SSD_RNG_DOMAIN_TEST, 0, 0, 502);
    for (int a = 0; a < A; a++) {
        memcpy(b.gbox + 4 * (size_t)a, g_an->xywh[a], sizeof(float[4]));
        b.glabel[a] = a < P ? 1 + (int64_t)ssd_rng_below(&r, 80) : 0;
    }
    for (size_t i = 0; i < 4 * A; i++) b.ploc[i] = (float)ssd_rng_range(&r, -2, 2);
    for (size_t i = 0; i < NC * A; i++) b.pconf[i] = (float)ssd_rng_normal(&r);
    ssd_loss_ws *ws = ssd_loss_ws_create();
    float loss = run(&b, ws);
    const ssd_loss_image_stats *st = ssd_loss_ws_image(ws, 0);
    assert_int_equal(st->num_pos, P);
    assert_int_equal(st->num_neg, K);
    assert_int_equal(st->num_double, D);

    /* naive expectation: every CE once, plus the first D positives again */
    double conf = 0, loc = 0;
    for (int a = 0; a < A; a++) conf += naive_ce(&b, 0, a) * (1 + (a < D));
    for (int a = 0; a < P; a++) {
        float t[4];
        ssd_box_encode(b.gbox + 4 * (size_t)a, g_an->xywh[a], t);
        for (int c = 0; c < 4; c++) {
            double z = (double)b.ploc[(size_t)c * A + a] - t[c];
            loc += fabs(z) < 1 ? 0.5 * z * z : fabs(z) - 0.5;
        }
    }
    assert_true(fabs(st->conf - conf) <= 1e-12 * conf);
    assert_true(fabs(st->loc - loc) <= 1e-12 * loc);
    assert_true(fabs(loss - (loc + conf) / P) <= 1e-6 * loss);
    assert_all_finite(&b);

    /* dconf multiplicity: 2 below D, 1 from D on (positives and negatives alike) */
    for (int a = 0; a < A; a += 37) {
        const float *x = b.pconf;
        double m = -INFINITY, s = 0;
        for (int k = 0; k < NC; k++) m = fmax(m, x[(size_t)k * A + a]);
        for (int k = 0; k < NC; k++) s += exp(x[(size_t)k * A + a] - m);
        double mult = 1 + (a < D);
        for (int k = 0; k < NC; k += 9) {
            double g = (exp(x[(size_t)k * A + a] - m) / s - (b.glabel[a] == k)) * mult / P;
            assert_true(fabs(b.dconf[(size_t)k * A + a] - g) <= 1e-6 * fabs(g) + 1e-12);
        }
    }
    ssd_loss_ws_destroy(ws);
    batch_free(&b);
}

static void test_tie_rule(void **state) {
    /* all logits 0: every CE is ln 81, so the 21 hard negatives are the 21 lowest-index
     * negatives (ties by ascending anchor index) */
    batch b = batch_new(1);
    tu_naive_encode(g_an, 1, k_gt0, k_lab0, b.gbox, b.glabel);
    run(&b, NULL);
    int seen = 0;
    for (int a = 0; a < A; a++) {
        int nz = b.dconf[a] != 0.0f; /* class 0 row: softmax - onehot != 0 iff selected */
        if (b.glabel[a] > 0) {
            assert_true(nz);
        } else {
            assert_int_equal(nz, seen < 21);
            seen += nz;
        }
    }
    assert_int_equal(seen, 21);
    for (int a = 0; a < 21; a++) assert_true(b.dconf[a] != 0.0f);
    batch_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_one_image),  cmocka_unit_test(test_golden_two_images),
        cmocka_unit_test(test_finite_differences), cmocka_unit_test(test_zero_positives),
        cmocka_unit_test(test_inf_loss),           cmocka_unit_test(test_double_counting),
        cmocka_unit_test(test_tie_rule),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
