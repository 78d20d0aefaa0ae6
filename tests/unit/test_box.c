/* Unit tests of src/box (no Python): the 8732 anchors against the golden values of
 * spec/ssd-reference.md section 3, the level table, IoU, xywh <-> ltrb, the box coder round
 * trip, and the encoder (section 4): the spec's golden examples, constructed ties for both
 * argmax rules, B = 0, and a brute-force comparison with a naive re-implementation.
 * The PyTorch comparison of the same code lives in tests/golden/test_box_torch.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "box/anchors.h"
#include "box/box_coder.h"
#include "box/encoder.h"
#include "core/mem.h"
#include "core/rng.h"
#include "testutil.h"

#define A SSD_NUM_ANCHORS

static ssd_anchors g_anchors; /* built once in main */
static float g_box[A][4];     /* encoder outputs */
static int64_t g_label[A];

/* ---- anchors ---- */

/* The spec prints the golden values to 7-8 significant digits; 1e-7 abs covers that rounding.
 * 0.5 (level-5 centres) and 1.0 (clamped sizes) are exact in float32 and compared exactly. */
#define GOLDEN_TOL 1e-7

static void test_anchor_golden(void **state) {
    (void)state;
    static const struct { int idx; double v[4]; } gold[] = {
        {0, {0.01333333, 0.01333333, 0.07, 0.07}},
        {1, {0.04, 0.01333333, 0.07, 0.07}},
        {5776, {0.02666667, 0.02666667, 0.15, 0.15}},
        {5777, {0.08, 0.02666667, 0.15, 0.15}},
        {5795, {0.02666667, 0.08, 0.15, 0.15}},
        {7942, {0.05333333, 0.05333333, 0.33, 0.33}},
        {8542, {0.10666667, 0.10666667, 0.51, 0.51}},
        {8692, {0.16666667, 0.16666667, 0.69, 0.69}},
        {8728, {0.5, 0.5, 0.87, 0.87}},
        {8729, {0.5, 0.5, 0.9557719, 0.9557719}},
        {8730, {0.5, 0.5, 1.0, 0.6151829}},
        {8731, {0.5, 0.5, 0.6151829, 1.0}},
    };
    for (size_t k = 0; k < sizeof gold / sizeof gold[0]; k++)
        for (int c = 0; c < 4; c++) {
            double got = g_anchors.xywh[gold[k].idx][c], want = gold[k].v[c];
            if (want == 0.5 || want == 1.0) assert_true(got == want);
            assert_true(fabs(got - want) <= GOLDEN_TOL);
        }
}

static void test_anchor_sum_and_range(void **state) {
    (void)state;
    double sum = 0.0, lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < A; i++)
        for (int c = 0; c < 4; c++) {
            sum += g_anchors.xywh[i][c];
            lo = fmin(lo, g_anchors.ltrb[i][c]);
            hi = fmax(hi, g_anchors.ltrb[i][c]);
            assert_true(g_anchors.xywh[i][c] >= 0.0f && g_anchors.xywh[i][c] <= 1.0f);
        }
    /* spec 3: float64 sum in index order; any single wrong anchor moves it by >= ~1e-8 */
    assert_true(fabs(sum - 11230.228705629706) <= 1e-9 * 11230.228705629706);
    assert_true(fabs(lo - -0.3350063) <= GOLDEN_TOL);
    assert_true(fabs(hi - 1.4016730) <= GOLDEN_TOL);
    /* ltrb is derived from the clamped xywh in float32 */
    for (int i = 0; i < A; i++) {
        float l[4];
        ssd_xywh_to_ltrb(g_anchors.xywh[i], l);
        assert_memory_equal(l, g_anchors.ltrb[i], sizeof l);
    }
}

static void test_level_offsets(void **state) {
    (void)state;
    static const int off[SSD_NUM_LEVELS] = {0, 5776, 7942, 8542, 8692, 8728};
    static const int size[SSD_NUM_LEVELS] = {38, 19, 10, 5, 3, 1};
    static const int nd[SSD_NUM_LEVELS] = {4, 6, 6, 6, 4, 4};
    int next = 0;
    for (int k = 0; k < SSD_NUM_LEVELS; k++) {
        const ssd_level_geom *g = ssd_level(k);
        assert_int_equal(g->offset, off[k]);
        assert_int_equal(g->offset, next);
        assert_int_equal(g->size, size[k]);
        assert_int_equal(g->per_loc, nd[k]);
        assert_int_equal(g->count, g->per_loc * g->size * g->size);
        next += g->count;
    }
    assert_int_equal(next, A);
    /* anchor-type-major: the first anchor of each level is type 0 at cell (0,0), centre
     * 0.5 * step / 300 (before the clamp, which never bites at the first cell) */
    for (int k = 0; k < SSD_NUM_LEVELS; k++) {
        const ssd_level_geom *g = ssd_level(k);
        float c = (float)(0.5 / (300.0 / g->step));
        assert_true(g_anchors.xywh[g->offset][0] == c && g_anchors.xywh[g->offset][1] == c);
    }
}

/* ---- IoU and conversions ---- */

static float iou4(float l0, float t0, float r0, float b0, float l1, float t1, float r1,
                  float b1) {
    const float a[4] = {l0, t0, r0, b0}, b[4] = {l1, t1, r1, b1};
    float x = ssd_iou_ltrb(a, b);
    assert_true(x == ssd_iou_ltrb(b, a)); /* symmetric, bit for bit */
    return x;
}

static void test_iou(void **state) {
    (void)state;
    /* disjoint on both axes: the two negative sides must be clamped separately, not multiplied */
    assert_true(iou4(0, 0, 1, 1, 2, 2, 3, 3) == 0.0f);
    assert_true(iou4(0, 0, 1, 1, 0.5f, 2, 1.5f, 3) == 0.0f); /* overlaps in x only */
    assert_true(iou4(0.1f, 0.2f, 0.5f, 0.7f, 0.1f, 0.2f, 0.5f, 0.7f) == 1.0f); /* identical */
    assert_true(iou4(0, 0, 1, 1, 1, 0, 2, 1) == 0.0f);                    /* touching edge */
    assert_true(iou4(0, 0, 1, 1, 1, 1, 2, 2) == 0.0f);                    /* touching corner */
    assert_true(iou4(0, 0, 1, 1, 0.25f, 0.25f, 0.75f, 0.75f) == 0.25f);   /* nested */
    assert_true(iou4(0, 0, 2, 2, 1, 1, 3, 3) == 1.0f / 7.0f);             /* 1 / (4+4-1) */
    assert_true(iou4(0, 0, 1, 1, 0.5f, 0, 1.5f, 1) == 0.5f / 1.5f);       /* half shift */
    assert_true(iou4(0, 0, 1, 1, 0.25f, 0.5f, 0.75f, 0.5f) == 0.0f);      /* zero height */
    assert_true(iou4(0, 0, 4, 1, 1, 0, 2, 1) == 0.25f);                   /* no "+1" */
}

static void test_xywh_ltrb_round_trip(void **state) {
    (void)state;
    ssd_rng r = ssd_rng_stream(7, SSD_RNG_DOMAIN_TEST, 0, 0, 1);
    for (int n = 0; n < 10000; n++) {
        /* dyadic coordinates (multiples of 2^-12 in [0,1]): every step is exact */
        float l[4], x[4], back[4];
        for (int c = 0; c < 2; c++) {
            float p = ssd_rng_below(&r, 4097) / 4096.0f, q = ssd_rng_below(&r, 4097) / 4096.0f;
            l[c] = fminf(p, q), l[c + 2] = fmaxf(p, q);
        }
        ssd_ltrb_to_xywh(l, x);
        ssd_xywh_to_ltrb(x, back);
        assert_memory_equal(l, back, sizeof l);
        /* arbitrary floats: cx, w, then cx -/+ w/2 is at most three roundings of values
         * below 2, so |error| <= 3 * 2^-24 * 2 < 4e-7 */
        for (int c = 0; c < 2; c++) {
            float p = ssd_rng_uniform(&r), q = ssd_rng_uniform(&r);
            l[c] = fminf(p, q), l[c + 2] = fmaxf(p, q);
        }
        ssd_ltrb_to_xywh(l, x);
        ssd_xywh_to_ltrb(x, back);
        for (int c = 0; c < 4; c++) assert_true(fabsf(back[c] - l[c]) <= 4e-7f);
    }
}

/* decode(encode(g, d), d) == g up to float32 rounding. encode then decode is ~6 roundings on
 * the centre path (|t| <= 10 * 1.5 / 0.05), and 5 ln / exp(0.2 t) on the size path, where the
 * absolute error of t (<= ulp(|t| <= 30) ~ 2e-6) comes back as a relative error of 0.2 * that in
 * w; with boxes below 1.5 the bound 2e-6 abs is ~7x what is reached (3.0e-7 on x86-64). */
static void test_box_coder_round_trip(void **state) {
    (void)state;
    ssd_rng r = ssd_rng_stream(7, SSD_RNG_DOMAIN_TEST, 0, 0, 2);
    double worst = 0.0;
    for (int n = 0; n < 100000; n++) {
        const float *d = g_anchors.xywh[ssd_rng_below(&r, A)];
        float l[4], g[4], t[4], back[4];
        for (int c = 0; c < 2; c++) {
            float p = ssd_rng_uniform(&r), q = ssd_rng_uniform(&r);
            l[c] = fminf(p, q), l[c + 2] = fmaxf(p, q) + 1e-3f; /* non-degenerate */
        }
        ssd_ltrb_to_xywh(l, g);
        ssd_box_encode(g, d, t);
        ssd_box_decode(t, d, back);
        for (int c = 0; c < 4; c++) worst = fmax(worst, fabs((double)back[c] - l[c]));
    }
    print_message("box coder round trip: max |decode(encode(g)) - g| = %.3g\n", worst);
    assert_true(worst <= 2e-6);
}

/* ---- encoder ---- */

static void encode(const float *gt, const int64_t *lab, int n) {
    ssd_encoder_ws *ws = ssd_encoder_ws_create(1);
    ssd_encode(&g_anchors, gt, lab, n, &g_box[0][0], g_label, ws);
    ssd_encoder_ws_destroy(ws);
}

/* The anchor's own ltrb converted back to xywh: what every background anchor gets. */
static void assert_background(int i) {
    float x[4];
    ssd_ltrb_to_xywh(g_anchors.ltrb[i], x);
    assert_int_equal(g_label[i], 0);
    assert_memory_equal(g_box[i], x, sizeof x);
}

/* Positives (label != 0) must be exactly `idx` (ascending, n of them). */
static void assert_positives(const int *idx, int n) {
    int k = 0;
    for (int i = 0; i < A; i++) {
        if (g_label[i] == 0) {
            assert_background(i);
            continue;
        }
        assert_true(k < n);
        assert_int_equal(i, idx[k]);
        k++;
    }
    assert_int_equal(k, n);
}

static void test_encode_single_gt(void **state) {
    (void)state;
    const float gt[4] = {0.1f, 0.1f, 0.4f, 0.5f};
    const int64_t lab[1] = {7};
    static const int pos[7] = {7964, 7974, 8063, 8064, 8074, 8264, 8274};
    encode(gt, lab, 1);
    assert_positives(pos, 7);
    for (int k = 0; k < 7; k++) {
        /* float32 (l+r)/2 etc. of this box are exactly the floats nearest 0.25, 0.3, 0.3, 0.4 */
        const float want[4] = {0.25f, 0.3f, 0.3f, 0.4f};
        assert_int_equal(g_label[pos[k]], 7);
        assert_memory_equal(g_box[pos[k]], want, sizeof want);
    }
}

static void test_encode_zero_height(void **state) {
    (void)state;
    const float gt[4] = {0.5f, 0.5f, 0.6f, 0.5f};
    const int64_t lab[1] = {3};
    const int pos[1] = {0}; /* IoU 0 everywhere -> lowest anchor index */
    encode(gt, lab, 1);
    assert_positives(pos, 1);
    assert_int_equal(g_label[0], 3);
    /* spec: (0.55, 0.5, 0.1, 0.0); w = 0.6f - 0.5f is 0.10000002 in float32 */
    const float want[4] = {0.5f * (0.5f + 0.6f), 0.5f, 0.6f - 0.5f, 0.0f};
    assert_memory_equal(g_box[0], want, sizeof want);
    const double spec[4] = {0.55, 0.5, 0.1, 0.0};
    for (int c = 0; c < 4; c++) assert_true(fabs(g_box[0][c] - spec[c]) <= GOLDEN_TOL);
}

static void test_encode_duplicate_gts(void **state) {
    (void)state;
    const float gt[8] = {0.1f, 0.1f, 0.4f, 0.5f, 0.1f, 0.1f, 0.4f, 0.5f};
    const int64_t lab[2] = {7, 9};
    static const int pos[7] = {7964, 7974, 8063, 8064, 8074, 8264, 8274};
    encode(gt, lab, 2);
    assert_positives(pos, 7);
    /* the shared best anchor goes to the last GT; every other positive to the first (ties) */
    for (int k = 0; k < 7; k++) assert_int_equal(g_label[pos[k]], pos[k] == 7964 ? 9 : 7);
}

/* Per-anchor ties -> lowest GT index. GT 1 is GT 0 transposed; against a square anchor on the
 * diagonal (l == t, r == b) both IoUs are the same products in swapped order, hence equal bit
 * for bit. Anchors that are nobody's forced best must take GT 0's label. */
static void test_encode_tie_per_anchor(void **state) {
    (void)state;
    const float gt[8] = {0.05f, 0.1f, 0.9f, 0.95f, 0.1f, 0.05f, 0.95f, 0.9f};
    const int64_t lab[2] = {3, 5};
    encode(gt, lab, 2);
    int forced[2], checked = 0;
    for (int g = 0; g < 2; g++) { /* the per-GT best anchors, found by brute force */
        forced[g] = 0;
        for (int i = 1; i < A; i++)
            if (ssd_iou_ltrb(gt + 4 * g, g_anchors.ltrb[i]) >
                ssd_iou_ltrb(gt + 4 * g, g_anchors.ltrb[forced[g]]))
                forced[g] = i;
    }
    for (int i = 0; i < A; i++) {
        const float *d = g_anchors.ltrb[i];
        float u0 = ssd_iou_ltrb(gt, d), u1 = ssd_iou_ltrb(gt + 4, d);
        if (d[0] != d[1] || d[2] != d[3] || u0 <= 0.5f) continue;
        assert_true(u0 == u1); /* the construction really ties */
        if (i == forced[0] || i == forced[1]) continue;
        assert_int_equal(g_label[i], 3);
        checked++;
    }
    assert_true(checked >= 1);
}

/* Per-GT ties -> lowest anchor index. This tiny box lies inside anchors 2926 and 2964 (level
 * 0, type 2 wide boxes) whose float32 areas are equal, so its IoU with both is the same and is
 * the maximum over all anchors (checked here). Its IoU is tiny: only the forced anchor is
 * positive, and it must be 2926. */
static void test_encode_tie_per_gt(void **state) {
    (void)state;
    const float gt[4] = {0.0005f, 0.0425f, 0.0025f, 0.0445f};
    const int64_t lab[1] = {11};
    float best = 0.0f;
    for (int i = 0; i < A; i++) best = fmaxf(best, ssd_iou_ltrb(gt, g_anchors.ltrb[i]));
    for (int i = 0; i < 2964; i++)
        if (ssd_iou_ltrb(gt, g_anchors.ltrb[i]) == best) assert_int_equal(i, 2926);
    assert_true(ssd_iou_ltrb(gt, g_anchors.ltrb[2926]) == best && best > 0.0f);
    assert_true(ssd_iou_ltrb(gt, g_anchors.ltrb[2964]) == best);
    const int pos[1] = {2926};
    encode(gt, lab, 1);
    assert_positives(pos, 1);
    assert_int_equal(g_label[2926], 11);
}

/* Positives need IoU > 0.5 strictly. The left half of anchor 8730 (l = 0, r = 1 exactly) has
 * IoU exactly 0.5 with it (checked), and its best anchor is another one, so 8730 must stay
 * background. */
static void test_encode_threshold_strict(void **state) {
    (void)state;
    const float *d = g_anchors.ltrb[8730];
    const float gt[4] = {d[0], d[1], d[0] + (d[2] - d[0]) * 0.5f, d[3]};
    const int64_t lab[1] = {4};
    assert_true(ssd_iou_ltrb(gt, d) == 0.5f);
    encode(gt, lab, 1);
    assert_background(8730);
    int npos = 0;
    for (int i = 0; i < A; i++) npos += g_label[i] != 0;
    assert_int_equal(npos, 8); /* as tools/torchref/boxes.encode finds */
}

static void test_encode_no_gt(void **state) {
    (void)state;
    memset(g_label, 0xff, sizeof g_label);
    encode(NULL, NULL, 0);
    assert_positives(NULL, 0); /* every anchor background with its own box */
    /* and that box is the anchor's xywh within one rounding (ltrb -> xywh round trip) */
    for (int i = 0; i < A; i++)
        for (int c = 0; c < 4; c++) assert_true(fabsf(g_box[i][c] - g_anchors.xywh[i][c]) <= 2e-7f);
}

/* ---- brute force against a naive re-implementation ---- */

/* Spec 4 written directly over the full IoU matrix m (n x A), with a different loop structure
 * from src/box/encoder.c: argmaxes scan downwards with '>=' (so the lowest index still wins). */
static float *naive_ious(const float *gt, int n) {
    float *m = ssd_xmalloc(sizeof(float) * (size_t)(n > 0 ? n : 1) * A);
    for (int g = 0; g < n; g++)
        for (int i = 0; i < A; i++)
            m[(size_t)g * A + i] = ssd_iou_ltrb(gt + 4 * g, g_anchors.ltrb[i]);
    return m;
}

static int naive_best_anchor(const float *row) {
    int b = A - 1;
    for (int i = A - 2; i >= 0; i--)
        if (row[i] >= row[b]) b = i;
    return b;
}

static void naive_encode(const float *gt, const int64_t *lab, int n, float (*box)[4],
                         int64_t *label) {
    float *m = naive_ious(gt, n);
    int *best_anchor = ssd_xmalloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    for (int g = 0; g < n; g++) best_anchor[g] = naive_best_anchor(m + (size_t)g * A);
    for (int i = 0; i < A; i++) {
        int bg = n - 1;
        for (int g = n - 2; g >= 0; g--)
            if (m[(size_t)g * A + i] >= m[(size_t)bg * A + i]) bg = g;
        float iou = n > 0 ? m[(size_t)bg * A + i] : 0.0f;
        for (int g = 0; g < n; g++) /* forced: the highest g naming this anchor wins */
            if (best_anchor[g] == i) iou = 2.0f, bg = g;
        int pos = n > 0 && iou > 0.5f;
        label[i] = pos ? lab[bg] : 0;
        const float *l = pos ? gt + 4 * bg : g_anchors.ltrb[i];
        box[i][0] = (l[0] + l[2]) * 0.5f;
        box[i][1] = (l[1] + l[3]) * 0.5f;
        box[i][2] = l[2] - l[0];
        box[i][3] = l[3] - l[1];
    }
    free(m);
    free(best_anchor);
}

/* Random GT set: ordinary boxes of all sizes, tiny ones, exact duplicates, zero width or
 * height, the whole image, boxes exactly equal to an anchor's ltrb, and half anchors. */
static void random_gts(ssd_rng *r, int n, float *gt, int64_t *lab) {
    for (int g = 0; g < n; g++) {
        float *b = gt + 4 * g;
        uint32_t kind = ssd_rng_below(r, 10);
        float w = kind == 1 ? 1e-4f + 1e-3f * ssd_rng_uniform(r) : 0.01f + ssd_rng_uniform(r);
        float h = kind == 1 ? 1e-4f + 1e-3f * ssd_rng_uniform(r) : 0.01f + ssd_rng_uniform(r);
        b[0] = ssd_rng_uniform(r) * (1.0f - fminf(w, 1.0f));
        b[1] = ssd_rng_uniform(r) * (1.0f - fminf(h, 1.0f));
        b[2] = fminf(b[0] + w, 1.0f);
        b[3] = fminf(b[1] + h, 1.0f);
        if (kind == 2 && g > 0) memcpy(b, gt + 4 * ssd_rng_below(r, (uint32_t)g), 4 * sizeof *b);
        if (kind == 3) b[2] = b[0];
        if (kind == 4) b[3] = b[1];
        if (kind == 5) b[0] = b[1] = 0.0f, b[2] = b[3] = 1.0f;
        if (kind == 6) memcpy(b, g_anchors.ltrb[ssd_rng_below(r, A)], 4 * sizeof *b);
        if (kind == 7) { /* half an anchor: IoU often exactly 0.5 with it */
            const float *d = g_anchors.ltrb[ssd_rng_below(r, A)];
            memcpy(b, d, 4 * sizeof *b);
            b[2] = d[0] + (d[2] - d[0]) * 0.5f;
        }
        lab[g] = 1 + ssd_rng_below(r, 80);
    }
}

static void test_encode_vs_naive(void **state) {
    (void)state;
    static float want_box[A][4];
    static int64_t want_label[A];
    float gt[4 * 40];
    int64_t lab[40];
    ssd_encoder_ws *ws = ssd_encoder_ws_create(2); /* grows during the loop */
    for (int c = 0; c < 60; c++) {
        ssd_rng r = ssd_rng_stream(2024, SSD_RNG_DOMAIN_TEST, 0, 0, 1000 + c);
        int n = (int)ssd_rng_below(&r, 41);
        random_gts(&r, n, gt, lab);
        ssd_encode(&g_anchors, gt, lab, n, &g_box[0][0], g_label, ws);
        naive_encode(gt, lab, n, want_box, want_label);
        assert_memory_equal(g_label, want_label, sizeof g_label);
        assert_memory_equal(g_box, want_box, sizeof g_box);
    }
    ssd_encoder_ws_destroy(ws);
}

int main(void) {
    ssd_anchors_build(&g_anchors);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anchor_golden),        cmocka_unit_test(test_anchor_sum_and_range),
        cmocka_unit_test(test_level_offsets),        cmocka_unit_test(test_iou),
        cmocka_unit_test(test_xywh_ltrb_round_trip), cmocka_unit_test(test_box_coder_round_trip),
        cmocka_unit_test(test_encode_single_gt),     cmocka_unit_test(test_encode_zero_height),
        cmocka_unit_test(test_encode_duplicate_gts), cmocka_unit_test(test_encode_tie_per_anchor),
        cmocka_unit_test(test_encode_tie_per_gt),    cmocka_unit_test(test_encode_threshold_strict),
        cmocka_unit_test(test_encode_no_gt),
        cmocka_unit_test(test_encode_vs_naive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
