/* Post-processing (src/eval/postprocess.h, nms.h) against spec/ssd-reference.md section 8:
 * the golden decode example, greedy NMS vs a brute-force definition, the per-class top-k and
 * per-image caps, the strict score threshold, the tie order, the batch-drop quirk (on and off)
 * and the COCO export. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "box/anchors.h"
#include "box/box_coder.h"
#include "core/mem.h"
#include "core/rng.h"
#include "eval/nms.h"
#include "eval/postprocess.h"
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

/* logits of one image, every anchor: background = bg, other classes 0 */
static void fill_logits(float *pconf, float bg) {
    for (int a = 0; a < A; a++) pconf[a] = bg;
    memset(pconf + A, 0, (size_t)(NC - 1) * A * sizeof(float));
}

static void test_golden_decode(void **state) {
    float *ploc = ssd_xcalloc(4 * A, sizeof(float));
    float *pconf = ssd_xmalloc(NC * A * sizeof(float));
    fill_logits(pconf, 5.0f);
    pconf[3 * A + 7964] = 8.0f;
    pconf[3 * A + 7974] = 7.5f;
    pconf[3 * A + 8264] = 7.0f;
    pconf[5 * A + 100] = 6.0f;
    ssd_post_cfg cfg = ssd_post_cfg_default();
    ssd_detection det[200];
    int ncand = -1;
    int n = ssd_postprocess_image(g_an, ploc, pconf, &cfg, det, &ncand, NULL);
    assert_int_equal(ncand, 4);
    assert_int_equal(n, 2);
    /* spec values are printed to 6 decimals: 5e-7 rounding + float32 */
    static const float want_box[2][4] = {{0.101667f, 0.101667f, 0.431667f, 0.431667f},
                                         {0.618333f, 0.031667f, 0.688333f, 0.101667f}};
    static const float want_score[2] = {0.929119f, 0.639509f};
    static const int want_label[2] = {3, 5};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(det[i].label, want_label[i]);
        assert_true(fabsf(det[i].score - want_score[i]) <= 1e-6f);
        for (int c = 0; c < 4; c++) assert_true(fabsf(det[i].ltrb[c] - want_box[i][c]) <= 1e-6f);
    }
    /* the suppressions the spec names */
    float b7974[4], b8264[4], zero[4] = {0, 0, 0, 0};
    ssd_box_decode(zero, g_an->xywh[7974], b7974);
    ssd_box_decode(zero, g_an->xywh[8264], b8264);
    assert_true(fabsf(ssd_iou_ltrb(det[0].ltrb, b7974) - 0.511450f) < 1e-6f);
    assert_true(fabsf(ssd_iou_ltrb(det[0].ltrb, b8264) - 0.546918f) < 1e-6f);
    /* exact score: softmax of (5, 8, 0 x 79) */
    double s = exp(8.0) / (exp(8.0) + exp(5.0) + 79.0);
    assert_true(det[0].score == (float)s);
    free(ploc);
    free(pconf);
}

/* ---- NMS vs its definition: candidate i is kept iff no KEPT candidate before it has
 * NOT(IoU < thr) with it ---- */

static int brute_nms(const float (*boxes)[4], const int *order, int n, float thr, int *keep) {
    int nk = 0;
    for (int i = 0; i < n; i++) {
        int ok = 1;
        for (int j = 0; j < nk && ok; j++)
            if (!(ssd_iou_ltrb(boxes[order[keep[j]]], boxes[order[i]]) < thr)) ok = 0;
        if (ok) keep[nk++] = i;
    }
    return nk;
}

static void test_nms_brute_force(void **state) {
    enum { NB = 300 };
    float boxes[NB][4];
    int order[NB], keep[NB], keep2[NB];
    unsigned char removed[NB];
    long total_kept = 0, total = 0;
    for (int trial = 0; trial < 200; trial++) {
        ssd_rng r = ssd_rng_stream(11, SSD_RNG_DOMAIN_TEST, 0, 0, 600 + trial);
        int nb = 1 + (int)ssd_rng_below(&r, NB);
        /* a few clusters so that many pairs overlap around the threshold; some boxes
         * degenerate (zero width: NaN IoU with another degenerate box, 0 otherwise) */
        int ncl = 1 + (int)ssd_rng_below(&r, 6);
        for (int i = 0; i < nb; i++) {
            double cx = 0.15 * (double)(i % ncl) + 0.3, cy = 0.4;
            cx += ssd_rng_range(&r, -0.05, 0.05);
            cy += ssd_rng_range(&r, -0.05, 0.05);
            double w = ssd_rng_range(&r, 0.05, 0.3), h = ssd_rng_range(&r, 0.05, 0.3);
            if (ssd_rng_below(&r, 20) == 0) w = 0;
            float xywh[4] = {(float)cx, (float)cy, (float)w, (float)h};
            ssd_xywh_to_ltrb(xywh, boxes[i]);
            order[i] = i;
        }
        for (int i = nb - 1; i > 0; i--) { /* random priority order */
            int j = (int)ssd_rng_below(&r, (uint32_t)i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        float thr = trial % 3 == 0 ? 0.5f : (float)ssd_rng_range(&r, 0.1, 0.9);
        int nk = ssd_nms_greedy((const float(*)[4])boxes, order, nb, thr, removed, keep);
        int nk2 = brute_nms((const float(*)[4])boxes, order, nb, thr, keep2);
        assert_int_equal(nk, nk2);
        assert_memory_equal(keep, keep2, (size_t)nk * sizeof(int));
        total_kept += nk;
        total += nb;
    }
    printf("  NMS: %ld of %ld boxes kept over 200 trials\n", total_kept, total);
    assert_true(total_kept > 200 && total_kept < total / 2); /* the test exercised suppression */

    /* the threshold itself: IoU exactly 0.5 suppresses (kept iff IoU < 0.5) */
    float b2[2][4] = {{0, 0, 1, 1}, {0, 0, 1, 0.5f}}; /* IoU = 0.5 / 1 */
    int o2[2] = {0, 1};
    assert_true(ssd_iou_ltrb(b2[0], b2[1]) == 0.5f);
    assert_int_equal(ssd_nms_greedy((const float(*)[4])b2, o2, 2, 0.5f, removed, keep), 1);
    assert_int_equal(ssd_nms_greedy((const float(*)[4])b2, o2, 2, nextafterf(0.5f, 1.0f), removed,
                                     keep),
                     2);
}

/* ---- caps ---- */

static void test_topk_and_max_dets(void **state) {
    float *ploc = ssd_xcalloc(4 * A, sizeof(float));
    float *pconf = ssd_xmalloc(NC * A * sizeof(float));
    fill_logits(pconf, 0.0f);
    /* class 1 high at 300 level-0 small-square anchors (rows 0..7 of the 38x38 map: neighbours
     * have IoU 0.448 < 0.5, so NMS keeps all of them), distinct scores increasing with j */
    for (int j = 0; j < 300; j++) pconf[1 * A + j] = 3.0f + 0.01f * j;
    ssd_post_cfg cfg = ssd_post_cfg_default();
    cfg.max_dets = 1000;
    ssd_detection *det = ssd_xmalloc(1000 * sizeof(ssd_detection));
    ssd_post_ws *ws = ssd_post_ws_create();
    int ncand = 0;
    int n = ssd_postprocess_image(g_an, ploc, pconf, &cfg, det, &ncand, ws);
    assert_int_equal(ncand, 300);
    assert_int_equal(n, 200); /* top 200 per class enter NMS, none is suppressed */
    for (int i = 0; i < 200; i++) {
        int a = 299 - i; /* the highest scores, best first */
        assert_int_equal(det[i].label, 1);
        float want[4], zero[4] = {0, 0, 0, 0};
        ssd_box_decode(zero, g_an->xywh[a], want);
        assert_memory_equal(det[i].ltrb, want, sizeof want);
        if (i) assert_true(det[i].score < det[i - 1].score);
    }
    /* smaller top-k */
    cfg.topk_per_class = 50;
    assert_int_equal(ssd_postprocess_image(g_an, ploc, pconf, &cfg, det, NULL, ws), 50);
    /* per-image cap after merging: add class 2 at 300 other anchors (rows 8..15), higher */
    for (int j = 0; j < 300; j++) pconf[2 * A + 304 + j] = 3.005f + 0.01f * j;
    cfg = ssd_post_cfg_default();
    n = ssd_postprocess_image(g_an, ploc, pconf, &cfg, det, &ncand, ws);
    assert_int_equal(ncand, 600);
    assert_int_equal(n, 200);
    /* 400 survivors, the best 200 interleave the two classes by score */
    int n1 = 0, n2 = 0;
    for (int i = 0; i < 200; i++) {
        n1 += det[i].label == 1;
        n2 += det[i].label == 2;
        if (i) assert_true(det[i].score <= det[i - 1].score);
    }
    printf("  merged top 200: %d of class 1, %d of class 2\n", n1, n2);
    assert_true(n1 > 50 && n2 > 50);
    ssd_post_ws_destroy(ws);
    free(det);
    free(ploc);
    free(pconf);
}

static void test_score_threshold_strict(void **state) {
    float *ploc = ssd_xcalloc(4 * A, sizeof(float));
    float *pconf = ssd_xmalloc(NC * A * sizeof(float));
    fill_logits(pconf, 10.0f);
    /* anchor 50: 20 logits 0 (background + classes 1..19), the rest -200: score = 1/20 exactly,
     * i.e. 0.05f after rounding: NOT a candidate. Anchor 4000: 19 logits 0: 1/19 > 0.05. */
    const int ax = 50, ay = 4000;
    for (int k = 0; k < NC; k++) {
        pconf[(size_t)k * A + ax] = k < 20 ? 0.0f : -200.0f;
        pconf[(size_t)k * A + ay] = k < 19 ? 0.0f : -200.0f;
    }
    ssd_post_cfg cfg = ssd_post_cfg_default();
    ssd_detection det[200];
    int ncand = 0;
    int n = ssd_postprocess_image(g_an, ploc, pconf, &cfg, det, &ncand, NULL);
    assert_int_equal(ncand, 18);
    assert_int_equal(n, 18);
    for (int i = 0; i < n; i++) {
        assert_true(det[i].score == (float)(1.0 / 19.0));
        assert_int_equal(det[i].label, i + 1); /* equal scores: ascending label */
    }
    assert_true((float)(1.0 / 20.0) == 0.05f);
    /* a threshold one float below 0.05 admits anchor 50's 19 classes */
    cfg.score_thresh = nextafterf(0.05f, 0.0f);
    n = ssd_postprocess_image(g_an, ploc, pconf, &cfg, det, &ncand, NULL);
    assert_int_equal(ncand, 18 + 19);
    assert_int_equal(n, 18 + 19);
    free(ploc);
    free(pconf);
}

static void test_tie_order(void **state) {
    /* equal scores within a class: lower anchor first; across classes: lower label first */
    float *ploc = ssd_xcalloc(4 * A, sizeof(float));
    float *pconf = ssd_xmalloc(NC * A * sizeof(float));
    fill_logits(pconf, 0.0f);
    pconf[4 * A + 1000] = 6.0f;
    pconf[4 * A + 10] = 6.0f;
    pconf[2 * A + 3000] = 6.0f;
    pconf[2 * A + 20] = 4.0f;
    ssd_post_cfg cfg = ssd_post_cfg_default();
    ssd_detection det[200];
    int n = ssd_postprocess_image(g_an, ploc, pconf, &cfg, det, NULL, NULL);
    assert_int_equal(n, 4);
    static const int want_label[4] = {2, 4, 4, 2}, want_anchor[4] = {3000, 10, 1000, 20};
    for (int i = 0; i < 4; i++) {
        float want[4], zero[4] = {0, 0, 0, 0};
        ssd_box_decode(zero, g_an->xywh[want_anchor[i]], want);
        assert_int_equal(det[i].label, want_label[i]);
        assert_memory_equal(det[i].ltrb, want, sizeof want);
    }
    free(ploc);
    free(pconf);
}

static void test_batch_drop(void **state) {
    const int N = 3;
    float *ploc = ssd_xmalloc((size_t)N * 4 * A * sizeof(float));
    float *pconf = ssd_xmalloc((size_t)N * NC * A * sizeof(float));
    ssd_rng r = ssd_rng_stream(11, SSD_RNG_DOMAIN_TEST, 0, 0, 700);
    for (size_t i = 0; i < (size_t)N * 4 * A; i++) ploc[i] = (float)ssd_rng_range(&r, -1, 1);
    for (int n = 0; n < N; n++) {
        float *pc = pconf + (size_t)n * NC * A;
        fill_logits(pc, n == 1 ? 12.0f : 2.0f); /* image 1: every class score ~ e^-12 */
        if (n == 1) continue;
        for (int j = 0; j < 500; j++) {
            int a = (int)ssd_rng_below(&r, A), k = 1 + (int)ssd_rng_below(&r, 80);
            pc[(size_t)k * A + a] = (float)ssd_rng_range(&r, 0, 6);
        }
    }
    ssd_post_cfg cfg = ssd_post_cfg_default();
    ssd_detection *det = ssd_xmalloc((size_t)N * 200 * sizeof(ssd_detection));
    ssd_detection *one = ssd_xmalloc(200 * sizeof(ssd_detection));
    int nd[3] = {-1, -1, -1};
    ssd_post_ws *ws = ssd_post_ws_create();

    /* quirk on (default): one empty image drops the whole batch */
    assert_int_equal(ssd_postprocess_batch(g_an, N, ploc, pconf, &cfg, det, nd, ws), 1);
    for (int i = 0; i < N; i++) assert_int_equal(nd[i], 0);

    /* quirk off: per-image results, identical to single-image calls */
    cfg.drop_batch_on_empty = false;
    assert_int_equal(ssd_postprocess_batch(g_an, N, ploc, pconf, &cfg, det, nd, ws), 1);
    assert_int_equal(nd[1], 0);
    for (int i = 0; i < N; i++) {
        int nc = -1;
        int n1 = ssd_postprocess_image(g_an, ploc + (size_t)i * 4 * A, pconf + (size_t)i * NC * A,
                                       &cfg, one, &nc, ws);
        assert_int_equal(n1, nd[i]);
        assert_int_equal(nc == 0, i == 1);
        if (i != 1) assert_true(n1 > 0);
        for (int j = 0; j < n1; j++) {
            assert_memory_equal(&one[j], &det[(size_t)i * 200 + j], sizeof(ssd_detection));
        }
    }
    /* a batch without an empty image is not dropped, quirk on */
    cfg.drop_batch_on_empty = true;
    assert_int_equal(ssd_postprocess_batch(g_an, 1, ploc, pconf, &cfg, det, nd, ws), 0);
    assert_true(nd[0] > 0);
    ssd_post_ws_destroy(ws);
    free(det);
    free(one);
    free(ploc);
    free(pconf);
}

static void test_to_coco(void **state) {
    /* the default map: 80 increasing ids in 1..90 without the 10 gaps */
    static const int gaps[10] = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83};
    assert_int_equal(ssd_coco_label_to_category[0], 0);
    assert_int_equal(ssd_coco_label_to_category[1], 1);
    assert_int_equal(ssd_coco_label_to_category[80], 90);
    for (int l = 2; l <= 80; l++)
        assert_true(ssd_coco_label_to_category[l] > ssd_coco_label_to_category[l - 1]);
    for (int l = 1; l <= 80; l++)
        for (int g = 0; g < 10; g++) assert_int_not_equal(ssd_coco_label_to_category[l], gaps[g]);

    ssd_detection d = {{0.1f, 0.2f, 0.5f, 0.7f}, 0.75f, 12};
    double out[7];
    ssd_detection_to_coco(&d, 397133, 640.0, 427.0, NULL, out);
    assert_true(out[0] == 397133.0);
    assert_true(out[1] == (double)0.1f * 640.0);
    assert_true(out[2] == (double)0.2f * 427.0);
    assert_true(out[3] == (double)(0.5f - 0.1f) * 640.0);
    assert_true(out[4] == (double)(0.7f - 0.2f) * 427.0);
    assert_true(fabs(out[1] - 64.0) < 1e-5 && fabs(out[2] - 85.4) < 1e-5);
    assert_true(fabs(out[3] - 256.0) < 1e-4 && fabs(out[4] - 213.5) < 1e-4);
    assert_true(out[5] == 0.75);
    assert_true(out[6] == 13.0); /* label 12 -> id 13 (12 is a gap) */
    /* negative / out-of-image coordinates pass through; a custom map */
    int map[NC];
    for (int l = 0; l < NC; l++) map[l] = 1000 + l;
    ssd_detection e = {{-0.1f, 0.9f, 1.2f, 1.1f}, 0.06f, 80};
    ssd_detection_to_coco(&e, 7, 100.0, 200.0, map, out);
    assert_true(out[1] < 0 && out[2] + out[4] > 200.0);
    assert_true(out[6] == 1080.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_decode),       cmocka_unit_test(test_nms_brute_force),
        cmocka_unit_test(test_topk_and_max_dets),   cmocka_unit_test(test_score_threshold_strict),
        cmocka_unit_test(test_tie_order),           cmocka_unit_test(test_batch_drop),
        cmocka_unit_test(test_to_coco),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
