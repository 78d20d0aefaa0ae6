/* COCO evaluation against pycocotools' numbers without running Python: the golden cases in
 * tests/fixtures/cocoeval (expected = pycocotools, bit for bit), hand-derived cases for each rule
 * of the spec (crowd, ignore overwrite, area field, closed area ranges, maxDets cut, ties across
 * images, interpolation, absent categories, no detections), thread-count independence, the COCO
 * json readers' errors, the results writer's round trip, and `ssd cocoeval` as a user runs it. */
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "core/mem.h"
#include "core/rng.h"
#include "core/strbuf.h"
#include "eval/coco.h"
#include "eval/cocoeval.h"
#include "io/file.h"
#include "testutil.h"

static const char *const k_cases[] = {"crowd_areas",   "edge_empty_degenerate", "large_random",
                                      "maxdets_ties",  "multicat_basic",        "perfect",
                                      "realgt_tiny_val"};

static void case_path(char *buf, size_t len, const char *c, const char *file) {
    const char *src = tu_env("SSD_SOURCE_DIR");
    assert_non_null(src);
    snprintf(buf, len, "%s/tests/fixtures/cocoeval/%s/%s", src, c, file);
}

static void eval_files(const char *gtp, const char *dtp, int threads, ssd_coco_gt *gt,
                       ssd_coco_dets *dt, ssd_cocoeval_result *res) {
    ssd_error err;
    if (ssd_coco_gt_load(gtp, gt, &err) != SSD_OK) fail_msg("%s", err.msg);
    if (ssd_coco_dets_load(dtp, gt, dt, &err) != SSD_OK) fail_msg("%s", err.msg);
    ssd_cocoeval_opts o = {.threads = threads};
    if (ssd_cocoeval(gt, dt, &o, res, &err) != SSD_OK) fail_msg("%s", err.msg);
}

/* Every golden case: 12 stats and per-category AP bit-identical to pycocotools (the spec asks
 * 1e-9; we compute in pycocotools' operation order, so we hold ourselves to equality). The same
 * numbers with 1, 2, 3 and 8 threads. */
static void test_golden_cases(void **state) {
    (void)state;
    for (size_t c = 0; c < sizeof k_cases / sizeof *k_cases; c++) {
        char gtp[1024], dtp[1024], exp[1024];
        case_path(gtp, sizeof gtp, k_cases[c], "gt.json");
        case_path(dtp, sizeof dtp, k_cases[c], "dt.json");
        case_path(exp, sizeof exp, k_cases[c], "expected.json");
        cJSON *e = tu_read_json(exp);
        const cJSON *stats = cJSON_GetObjectItem(e, "stats");
        const cJSON *per = cJSON_GetObjectItem(e, "per_category_ap");
        assert_int_equal(cJSON_GetArraySize(stats), SSD_COCO_NSTATS);

        ssd_cocoeval_result base = {0};
        for (int threads = 1; threads <= 8; threads = threads == 3 ? 8 : threads + 1) {
            ssd_coco_gt gt;
            ssd_coco_dets dt;
            ssd_cocoeval_result res;
            eval_files(gtp, dtp, threads, &gt, &dt, &res);
            int bad = 0;
            for (int s = 0; s < SSD_COCO_NSTATS; s++) {
                double want = cJSON_GetArrayItem(stats, s)->valuedouble;
                if (res.stats[s] != want) {
                    printf("%s stat %d: ours %.17g pycocotools %.17g\n", k_cases[c], s,
                           res.stats[s], want);
                    bad++;
                }
            }
            assert_int_equal(cJSON_GetArraySize(per), res.n_categories);
            for (int k = 0; k < res.n_categories; k++) {
                char key[32];
                snprintf(key, sizeof key, "%lld", (long long)res.category_ids[k]);
                const cJSON *v = cJSON_GetObjectItem(per, key);
                assert_non_null(v);
                double want = cJSON_IsNumber(v) ? v->valuedouble : -1.0;
                if (res.category_ap[k] != want) {
                    printf("%s category %s: ours %.17g pycocotools %.17g\n", k_cases[c], key,
                           res.category_ap[k], want);
                    bad++;
                }
            }
            assert_int_equal(bad, 0);
            if (threads == 1) {
                base = res;
            } else {
                size_t np = (size_t)SSD_COCO_T * SSD_COCO_R * res.n_categories * SSD_COCO_A *
                            SSD_COCO_M;
                assert_memory_equal(base.precision, res.precision, np * sizeof(double));
                assert_memory_equal(base.stats, res.stats, sizeof res.stats);
                ssd_cocoeval_result_free(&res);
            }
            ssd_coco_dets_free(&dt);
            ssd_coco_gt_free(&gt);
        }
        printf("golden %-22s AP %.6f: 12 stats + per-category AP equal pycocotools, 1/2/3/8 "
               "threads identical\n",
               k_cases[c], base.stats[0]);
        ssd_cocoeval_result_free(&base);
        cJSON_Delete(e);
    }
}

/* ---- hand-built cases (spec sections 9 and 12) ---- */

typedef struct hand {
    ssd_coco_gt gt;
    ssd_coco_dets dt;
    ssd_cocoeval_result r;
} hand;

/* GT json from a compact annotation list "img cat x y w h area crowd; ..." over images 1..n_img
 * and categories cats. */
static void hand_gt(hand *h, int n_img, const char *cats, const char *anns) {
    ssd_strbuf b = {0};
    ssd_sb_puts(&b, "{\"images\":[");
    for (int i = 1; i <= n_img; i++)
        ssd_sb_printf(&b, "%s{\"id\":%d}", i > 1 ? "," : "", i);
    ssd_sb_printf(&b, "],\"categories\":[");
    int first = 1, id = 1;
    for (const char *p = cats; *p;) {
        int c, n;
        if (sscanf(p, "%d%n", &c, &n) != 1) break;
        ssd_sb_printf(&b, "%s{\"id\":%d}", first ? "" : ",", c);
        first = 0;
        p += n;
    }
    ssd_sb_puts(&b, "],\"annotations\":[");
    first = 1;
    for (const char *p = anns; *p;) {
        int img, cat, crowd, n;
        double x, y, w, hh, area;
        if (sscanf(p, " %d %d %lf %lf %lf %lf %lf %d ;%n", &img, &cat, &x, &y, &w, &hh, &area,
                   &crowd, &n) != 8)
            break;
        ssd_sb_printf(&b,
                      "%s{\"id\":%d,\"image_id\":%d,\"category_id\":%d,\"bbox\":[%.17g,%.17g,%.17g,"
                      "%.17g],\"area\":%.17g,\"iscrowd\":%d,\"ignore\":1}",
                      first ? "" : ",", id++, img, cat, x, y, w, hh, area, crowd);
        first = 0;
        p += n;
    }
    ssd_sb_puts(&b, "]}");
    ssd_error err;
    if (ssd_coco_gt_parse(b.s, b.len, "<hand gt>", &h->gt, &err) != SSD_OK) fail_msg("%s", err.msg);
    ssd_sb_free(&b);
    memset(&h->dt, 0, sizeof h->dt);
}

static void hand_dt(hand *h, int img, int cat, double x, double y, double w, double hh,
                    double score) {
    const double bb[4] = {x, y, w, hh};
    ssd_coco_dets_push(&h->dt, img, cat, bb, score);
}

static void hand_eval(hand *h) {
    ssd_error err;
    ssd_cocoeval_opts o = {.threads = 2};
    if (ssd_cocoeval(&h->gt, &h->dt, &o, &h->r, &err) != SSD_OK) fail_msg("%s", err.msg);
}

static void hand_free(hand *h) {
    ssd_cocoeval_result_free(&h->r);
    ssd_coco_dets_free(&h->dt);
    ssd_coco_gt_free(&h->gt);
}

/* tp/(tp+fp+eps) with tp+fp = 1: what a lone true positive scores in pycocotools. */
static const double k_one_minus = 1.0 / (1.0 + DBL_EPSILON);

/* T1: an annotation's own "ignore" key is overwritten by iscrowd (hand_gt writes ignore:1 on
 * every annotation); one GT + a perfect detection gives AP = 1/(1+eps) < 1 (spec 12 T1). */
static void test_ignore_overwritten_and_eps(void **state) {
    (void)state;
    hand h;
    hand_gt(&h, 1, "1", "1 1 10 10 50 50 2500 0;");
    hand_dt(&h, 1, 1, 10, 10, 50, 50, 0.9);
    hand_eval(&h);
    assert_true(k_one_minus < 1.0);
    assert_true(fabs(h.r.stats[0] - k_one_minus) < 1e-15 && h.r.stats[0] < 1.0);
    assert_true(fabs(h.r.stats[1] - k_one_minus) < 1e-15 && h.r.stats[1] < 1.0); /* AP50 */
    assert_true(h.r.stats[8] == 1.0);         /* AR100 */
    hand_free(&h);
}

/* T2: a category with no GT anywhere is -1 throughout and drops out of every mean. */
static void test_absent_category(void **state) {
    (void)state;
    hand h;
    hand_gt(&h, 1, "1 2", "1 1 10 10 50 50 2500 0;");
    hand_dt(&h, 1, 1, 10, 10, 50, 50, 0.9);
    hand_dt(&h, 1, 2, 100, 100, 50, 50, 0.8); /* a detection of the GT-less category */
    hand_eval(&h);
    assert_int_equal(h.r.n_categories, 2);
    assert_true(h.r.category_ap[1] == -1.0);
    assert_true(fabs(h.r.stats[0] - k_one_minus) < 1e-15);
    size_t n = (size_t)SSD_COCO_T * SSD_COCO_R * 2 * SSD_COCO_A * SSD_COCO_M;
    for (size_t i = 0; i < n; i++)
        if ((i / (SSD_COCO_A * SSD_COCO_M)) % 2 == 1) assert_true(h.r.precision[i] == -1.0);
    hand_free(&h);
}

/* T3: a detection inside a crowd region has IoU = intersection / detection area = 1 and is
 * ignored, not a false positive; the crowd absorbs several detections. */
static void test_crowd(void **state) {
    (void)state;
    hand h;
    hand_gt(&h, 1, "1", "1 1 0 0 40 40 1600 0; 1 1 100 100 200 200 40000 1;");
    hand_dt(&h, 1, 1, 0, 0, 40, 40, 0.5);       /* TP on the regular GT */
    hand_dt(&h, 1, 1, 120, 120, 30, 30, 0.9);   /* inside the crowd: ignored */
    hand_dt(&h, 1, 1, 150, 150, 20, 20, 0.8);   /* inside the crowd again: ignored */
    hand_eval(&h);
    assert_true(fabs(h.r.stats[0] - k_one_minus) < 1e-15 && h.r.stats[0] < 1.0);
    /* Without the crowd flag the two become false positives ranked first. */
    hand h2;
    hand_gt(&h2, 1, "1", "1 1 0 0 40 40 1600 0; 1 1 100 100 200 200 40000 0;");
    h2.dt = h.dt;
    h.dt = (ssd_coco_dets){0};
    hand_eval(&h2);
    assert_true(h2.r.stats[0] < 0.5);
    hand_free(&h);
    hand_free(&h2);
}

/* T4: the GT's `area` field, not its box, decides the size class. */
static void test_area_field(void **state) {
    (void)state;
    hand h;
    hand_gt(&h, 1, "1", "1 1 10 10 20 20 10000 0;");
    hand_dt(&h, 1, 1, 10, 10, 20, 20, 0.9);
    hand_eval(&h);
    assert_true(h.r.stats[3] == -1.0); /* APs: no small GT */
    assert_true(h.r.stats[4] == -1.0); /* APm */
    assert_true(fabs(h.r.stats[5] - k_one_minus) < 1e-15); /* APl */
    hand_free(&h);
}

/* T5: 2 GT; TP(0.9), FP(0.8), TP(0.7): AP50 = (51 (1-ulp) + 50 * 2/3) / 101. */
static void test_interpolation(void **state) {
    (void)state;
    hand h;
    hand_gt(&h, 1, "1", "1 1 0 0 10 10 100 0; 1 1 50 50 10 10 100 0;");
    hand_dt(&h, 1, 1, 0, 0, 10, 10, 0.9);
    hand_dt(&h, 1, 1, 200, 200, 10, 10, 0.8);
    hand_dt(&h, 1, 1, 50, 50, 10, 10, 0.7);
    hand_eval(&h);
    assert_true(fabs(h.r.stats[1] - 0.834983498349835) < 1e-15);
    hand_free(&h);
}

/* T6: equal scores across images keep image order (stable sort): the TP in the later image
 * comes after the FP, so AP50 = 0.5; in the earlier image, ~1. */
static void test_ties_across_images(void **state) {
    (void)state;
    for (int tp_first = 0; tp_first < 2; tp_first++) {
        hand h;
        hand_gt(&h, 2, "1", tp_first ? "1 1 0 0 10 10 100 0;" : "2 1 0 0 10 10 100 0;");
        hand_dt(&h, 2, 1, 0, 0, 10, 10, 0.5);
        hand_dt(&h, 1, 1, 0, 0, 10, 10, 0.5);
        hand_eval(&h);
        if (tp_first) assert_true(fabs(h.r.stats[1] - k_one_minus) < 1e-15);
        else assert_true(h.r.stats[1] == 0.5);
        hand_free(&h);
    }
}

/* Closed area ranges: an unmatched detection of area exactly 32^2 counts as a false positive in
 * both small and medium; at 32*32.03125 it is outside small and ignored there. */
static void test_closed_area_ranges(void **state) {
    (void)state;
    for (int just_over = 0; just_over < 2; just_over++) {
        hand h;
        hand_gt(&h, 1, "1", "1 1 0 0 10 10 100 0; 1 1 300 300 50 100 5000 0;");
        hand_dt(&h, 1, 1, 0, 0, 10, 10, 0.5);
        hand_dt(&h, 1, 1, 300, 300, 50, 100, 0.5);
        hand_dt(&h, 1, 1, 100, 100, 32, just_over ? 32.03125 : 32, 0.9); /* unmatched */
        hand_eval(&h);
        double aps = h.r.stats[3], apm = h.r.stats[4];
        assert_true(apm < 0.6); /* the FP outranks the medium TP either way */
        if (just_over) assert_true(aps == k_one_minus);
        else assert_true(aps < 0.6);
        hand_free(&h);
    }
}

/* maxDets: only the 100 best detections of an (image, category) are evaluated; with 101 equal
 * scores the last one given is the one cut. AR@1 / AR@10 cut per (image, category). */
static void test_max_dets(void **state) {
    (void)state;
    hand h;
    hand_gt(&h, 1, "1", "1 1 500 500 10 10 100 0;");
    for (int i = 0; i < 100; i++)
        hand_dt(&h, 1, 1, 5.0 * i, 0, 4, 4, 0.5); /* 100 FPs */
    hand_dt(&h, 1, 1, 500, 500, 10, 10, 0.5);      /* the TP, 101st with a tied score */
    hand_eval(&h);
    assert_true(h.r.stats[8] == 0.0); /* AR100: cut */
    hand_free(&h);
    hand_gt(&h, 1, "1", "1 1 500 500 10 10 100 0;");
    for (int i = 0; i < 10; i++)
        hand_dt(&h, 1, 1, 5.0 * i, 0, 4, 4, 0.9 - 0.01 * i);
    hand_dt(&h, 1, 1, 500, 500, 10, 10, 0.5); /* 11th by score */
    hand_eval(&h);
    assert_true(h.r.stats[6] == 0.0 && h.r.stats[7] == 0.0 && h.r.stats[8] == 1.0);
    hand_free(&h);
}

/* No detections at all: every stat is 0 where there is GT, -1 where none. */
static void test_no_detections(void **state) {
    (void)state;
    hand h;
    hand_gt(&h, 3, "1 5", "1 1 0 0 10 10 100 0; 2 1 0 0 100 100 10000 0;");
    hand_eval(&h);
    for (int s = 0; s < SSD_COCO_NSTATS; s++)
        assert_true(h.r.stats[s] == (s == 4 || s == 10 ? -1.0 : 0.0)); /* no medium GT */
    assert_true(h.r.category_ap[0] == 0.0 && h.r.category_ap[1] == -1.0);
    hand_free(&h);
    hand_gt(&h, 2, "1", "");
    hand_eval(&h);
    for (int s = 0; s < SSD_COCO_NSTATS; s++)
        assert_true(h.r.stats[s] == -1.0);
    hand_free(&h);
}

/* numpy's pairwise sum differs from a plain loop; spot values where they differ, and the
 * chunked (numpy 1.x) vs one-pass (numpy 2.x) rules agree below 8193 values. */
static void test_numpy_sum(void **state) {
    (void)state;
    ssd_rng r = ssd_rng_stream(7, 0, 0, 0, 0);
    enum { N = 20000 };
    double *a = ssd_xmalloc(N * sizeof *a);
    for (int i = 0; i < N; i++)
        a[i] = ssd_rng_uniform_f64(&r);
    int differ_loop = 0;
    for (long n = 1; n <= 8192; n = n * 3 + 1) {
        double naive = 0;
        for (long i = 0; i < n; i++)
            naive += a[i];
        assert_true(ssd_numpy_sum(a, n, 8192) == ssd_numpy_sum(a, n, -1));
        differ_loop += naive != ssd_numpy_sum(a, n, 8192);
        if (n < 8) assert_true(naive == ssd_numpy_sum(a, n, 8192));
    }
    assert_true(differ_loop > 0);
    /* A chunk boundary: sum(20000) = sum(first 8192) + sum(next 8192) + sum(rest). */
    double chunked = ssd_numpy_sum(a, 8192, -1);
    chunked += ssd_numpy_sum(a + 8192, 8192, -1);
    chunked += ssd_numpy_sum(a + 16384, N - 16384, -1);
    assert_true(ssd_numpy_sum(a, N, 8192) == chunked);
    free(a);
}

/* ---- readers: every error names the file and the record ---- */

static void expect_gt_error(const char *json, const char *needle) {
    ssd_coco_gt gt;
    ssd_error err;
    ssd_status st = ssd_coco_gt_parse(json, strlen(json), "gt.json", &gt, &err);
    printf("gt %s -> %s\n", json, err.msg);
    assert_int_equal(st, SSD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "gt.json"));
    assert_non_null(strstr(err.msg, needle));
    assert_null(gt.anns);
}

static void expect_dt_error(const ssd_coco_gt *gt, const char *json, const char *needle) {
    ssd_coco_dets dt;
    ssd_error err;
    ssd_status st = ssd_coco_dets_parse(json, strlen(json), "dt.json", gt, &dt, &err);
    printf("dt %s -> %s\n", json, err.msg);
    assert_int_equal(st, SSD_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "dt.json"));
    assert_non_null(strstr(err.msg, needle));
    assert_null(dt.d);
}

static void test_reader_errors(void **state) {
    (void)state;
    expect_gt_error("{\"images\":[", "malformed JSON");
    expect_gt_error("[]", "not a JSON object");
    expect_gt_error("{\"images\":[],\"categories\":[]}", "\"annotations\"");
    expect_gt_error("{\"images\":[{\"id\":1.5}],\"categories\":[],\"annotations\":[]}",
                    "images[0].id: not an integer");
    const char *ok_head = "{\"images\":[{\"id\":1}],\"categories\":[{\"id\":1}],\"annotations\":[";
    char buf[512];
    snprintf(buf, sizeof buf, "%s{\"id\":1,\"image_id\":1,\"category_id\":1,\"bbox\":[1,2,3],"
             "\"area\":1,\"iscrowd\":0}]}", ok_head);
    expect_gt_error(buf, "annotations[0].bbox");
    snprintf(buf, sizeof buf, "%s{\"id\":1,\"image_id\":1,\"category_id\":1,\"bbox\":[1,2,3,4],"
             "\"iscrowd\":0}]}", ok_head);
    expect_gt_error(buf, "annotations[0].area: missing");
    snprintf(buf, sizeof buf, "%s{\"id\":1,\"image_id\":1,\"category_id\":1,\"bbox\":[1,2,3,4],"
             "\"area\":\"big\",\"iscrowd\":0}]}", ok_head);
    expect_gt_error(buf, "annotations[0].area: not a number");

    ssd_coco_gt gt;
    ssd_error err;
    snprintf(buf, sizeof buf, "%s]}", ok_head);
    assert_int_equal(ssd_coco_gt_parse(buf, strlen(buf), "gt.json", &gt, &err), SSD_OK);
    expect_dt_error(&gt, "{}", "not a JSON array");
    expect_dt_error(&gt, "[{\"image_id\":1,\"category_id\":1,\"bbox\":[0,0,1,1],\"score\":1},"
                         "{\"image_id\":7,\"category_id\":1,\"bbox\":[0,0,1,1],\"score\":1}]",
                    "detections[1].image_id 7 is not an image of the ground truth");
    expect_dt_error(&gt, "[{\"image_id\":1,\"category_id\":1,\"bbox\":[0,0,1,1]}]",
                    "detections[0].score: missing");
    expect_dt_error(&gt, "[{\"image_id\":1,\"category_id\":1,\"bbox\":[0,0,1,1],\"score\":1}",
                    "malformed JSON");
    ssd_coco_gt_free(&gt);
    assert_int_equal(ssd_coco_gt_load("/nonexistent/gt.json", &gt, &err), SSD_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/gt.json"));
}

/* ---- the results writer ---- */

static void test_results_round_trip(void **state) {
    (void)state;
    char dir[1024], path[1100];
    tu_scratch_dir("test_cocoeval", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.json", dir);
    ssd_coco_gt gt;
    ssd_error err;
    const char *g = "{\"images\":[{\"id\":3},{\"id\":900100581904}],\"categories\":[{\"id\":1}],"
                    "\"annotations\":[]}";
    assert_int_equal(ssd_coco_gt_parse(g, strlen(g), "gt", &gt, &err), SSD_OK);
    ssd_coco_dets dt = {0};
    ssd_rng r = ssd_rng_stream(11, 0, 0, 0, 0);
    for (int i = 0; i < 2000; i++) {
        double bb[4];
        for (int k = 0; k < 4; k++) {
            double u = ssd_rng_uniform_f64(&r);
            bb[k] = i % 5 == 0 ? floor(u * 640) : i % 5 == 1 ? (float)(u * 300) * 2.1333f
                    : i % 5 == 2 ? ldexp(u, -40) : (u - 0.3) * 1e7;
        }
        ssd_coco_dets_push(&dt, i % 2 ? 3 : 900100581904, 1 + i % 90, bb, ssd_rng_uniform_f64(&r));
    }
    dt.d[5].bbox[1] = -0.0;
    assert_int_equal(ssd_coco_dets_write(path, &dt, &err), SSD_OK);
    ssd_coco_dets back;
    if (ssd_coco_dets_load(path, &gt, &back, &err) != SSD_OK) fail_msg("%s", err.msg);
    assert_int_equal(back.n, dt.n);
    for (size_t i = 0; i < dt.n; i++) {
        assert_memory_equal(back.d[i].bbox, dt.d[i].bbox, sizeof dt.d[i].bbox);
        assert_memory_equal(&back.d[i].score, &dt.d[i].score, sizeof(double));
        assert_memory_equal(&back.d[i].area, &dt.d[i].area, sizeof(double));
        assert_true(back.d[i].image_id == dt.d[i].image_id &&
                    back.d[i].category_id == dt.d[i].category_id &&
                    back.d[i].id == (int64_t)i + 1);
    }
    /* A non-finite value: refused before anything is written; the old file stays. */
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    dt.d[17].score = NAN;
    assert_int_equal(ssd_coco_dets_write(path, &dt, &err), SSD_ERR_ARG);
    assert_non_null(strstr(err.msg, "detection 17"));
    assert_int_equal(stat(path, &after), 0);
    assert_true(before.st_size == after.st_size && before.st_mtime == after.st_mtime);
    ssd_coco_dets_free(&back);
    ssd_coco_dets_free(&dt);
    ssd_coco_gt_free(&gt);
}

/* ---- `ssd cocoeval` ---- */

static int run_ssd(const char *args, char *out, size_t len) {
    char dir[1024], log[1100], cmd[4096];
    tu_scratch_dir("test_cocoeval", dir, sizeof dir);
    snprintf(log, sizeof log, "%s/cli.txt", dir);
    snprintf(cmd, sizeof cmd, "\"%s/ssd\" cocoeval %s", tu_env("SSD_BUILD_DIR"), args);
    return tu_run_capture(cmd, log, out, len);
}

static void test_cli(void **state) {
    (void)state;
    static char out[1 << 16];
    char gtp[1024], dtp[1024], args[3000];
    case_path(gtp, sizeof gtp, "perfect", "gt.json");
    case_path(dtp, sizeof dtp, "perfect", "dt.json");
    snprintf(args, sizeof args, "\"%s\" \"%s\" --threads 2", gtp, dtp);
    assert_int_equal(run_ssd(args, out, sizeof out), 0);
    assert_non_null(strstr(out, " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | "
                                "maxDets=100 ] = 1.000\n"));
    assert_non_null(strstr(out, " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | "
                                "maxDets=100 ] = "));
    /* --json: stdout is exactly one JSON object with the 12 stats and per-category AP. */
    snprintf(args, sizeof args, "\"%s\" \"%s\" --json 2>/dev/null", gtp, dtp);
    assert_int_equal(run_ssd(args, out, sizeof out), 0);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(out, &end, false);
    assert_non_null(j);
    while (*end == '\n' || *end == ' ')
        end++;
    assert_int_equal(*end, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "stats")), 12);
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(j, "per_category")));
    cJSON_Delete(j);
    /* Errors: runtime problems exit 1 naming the file, usage problems exit 2. */
    snprintf(args, sizeof args, "/nonexistent/gt.json \"%s\"", dtp);
    assert_int_equal(run_ssd(args, out, sizeof out), 1);
    assert_non_null(strstr(out, "/nonexistent/gt.json"));
    snprintf(args, sizeof args, "\"%s\" \"%s\"", gtp, gtp); /* a GT file is not a results list */
    assert_int_equal(run_ssd(args, out, sizeof out), 1);
    assert_non_null(strstr(out, "not a JSON array"));
    assert_int_equal(run_ssd("only-one.json", out, sizeof out), 2);
    assert_non_null(strstr(out, "missing required argument DT.json"));
    snprintf(args, sizeof args, "\"%s\" \"%s\" --threads x", gtp, dtp);
    assert_int_equal(run_ssd(args, out, sizeof out), 2);
    snprintf(args, sizeof args, "\"%s\" \"%s\" extra", gtp, dtp);
    assert_int_equal(run_ssd(args, out, sizeof out), 2);
    assert_int_equal(run_ssd("--help", out, sizeof out), 0);
    assert_non_null(strstr(out, "usage: ssd cocoeval [options] GT.json DT.json"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_cases),
        cmocka_unit_test(test_ignore_overwritten_and_eps),
        cmocka_unit_test(test_absent_category),
        cmocka_unit_test(test_crowd),
        cmocka_unit_test(test_area_field),
        cmocka_unit_test(test_interpolation),
        cmocka_unit_test(test_ties_across_images),
        cmocka_unit_test(test_closed_area_ranges),
        cmocka_unit_test(test_max_dets),
        cmocka_unit_test(test_no_detections),
        cmocka_unit_test(test_numpy_sum),
        cmocka_unit_test(test_reader_errors),
        cmocka_unit_test(test_results_round_trip),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
