/* data/augment's geometry and whole transforms against the reference's algorithm.
 *
 * Replays: the C crop is run with its draws recorded (augment_internal.h's tape) and a torch
 * re-implementation of the reference's SSDCropping (tools/pil_augment_oracle.py) replays the
 * same draws: boxes, labels, pixel box, mode and number of draws identical for thousands of
 * cases (crowded images, degenerate and edge boxes, no boxes, 1 to 50 tries, images of 1 to 15
 * px a side). The whole training transform is replayed the same way on real photos (committed
 * fixtures; ../shared/data/coco_tiny when present) and generated images: the same float32
 * tensor bit for bit (l_round 1: Pillow; l_round 0: the numpy Pillow 5.2.0 model), the same
 * boxes, labels, size and recorded parameters, on the portable and the AVX2 path.
 *
 * Statistics: the first drawn mode is uniform (chi-square), the final mode distribution for a
 * fixed box set equals the Python re-implementation's with Python's own RNG (two-sample
 * chi-square), and the same test rejects the re-implementation when it is mutated ("any box"
 * IoU rule, ratio of pixels instead of fractions), so it has the power to catch those bugs;
 * 50 tries per mode give more successes per draw.
 *
 * C-only checks (run without Python): box validity and range, label alignment, flip, mode 0,
 * determinism, fused crop+flip+resize = the composition of the public operations, portable =
 * AVX2, the strict centre test on each crop edge, images under 4 px. */
#include "augment_tu.h"

/* ---------------------------------------------------------------------------------------- */
/* crop geometry vs the reference re-implemented in torch, same draws                        */
/* ---------------------------------------------------------------------------------------- */

typedef struct crop_result {
    ssd_aug_record rec;
    int n;
    float *boxes;
    int32_t *labels;
} crop_result;

static void test_crop_vs_reference(void **state) {
    (void)state;
    if (!g_have_oracle) return;
    enum { NC = 2000, MAXB = 121 };
    crop_result *res = ssd_xcalloc(NC, sizeof *res);
    cJSON *cases = cJSON_CreateArray();
    ssd_aug_tape tape = {0};
    long nboxes = 0, ntries50 = 0;
    for (int c = 0; c < NC; c++) {
        ssd_rng g = ssd_rng_stream(13, SSD_RNG_DOMAIN_TEST, 0, 0, (uint64_t)c);
        int W = c % 10 == 0 ? 1 + (int)ssd_rng_below(&g, 15) : 20 + (int)ssd_rng_below(&g, 1200);
        int H = c % 10 == 5 ? 1 + (int)ssd_rng_below(&g, 15) : 20 + (int)ssd_rng_below(&g, 1200);
        int it = c % 23 == 0 ? 50 : c % 11 == 0 ? 2 + (int)ssd_rng_below(&g, 4) : 1;
        int n = c % 13 == 0 ? 0 : random_box_count(&g); /* no boxes: only "keep" can succeed */
        float b[MAXB * 4];
        int32_t lab[MAXB];
        gen_boxes(&g, n, W, H, b, lab);
        if (c % 17 == 1) { /* one box (nearly) the whole image, 50 tries: min IoU 0.9 succeeds */
            n = 1, it = 50;
            b[0] = b[1] = 0.0f, b[2] = b[3] = 1.0f;
            if (c % 2) b[0] = 0.01f, b[3] = 0.995f;
        }
        cJSON *j = cJSON_CreateObject();
        add_num(j, "W", W);
        add_num(j, "H", H);
        add_num(j, "iterations", it);
        cJSON_AddItemToObject(j, "boxes", floats_json(b, 4 * n));
        cJSON_AddItemToObject(j, "labels", cJSON_CreateIntArray(lab, n));
        ssd_rng d = ssd_rng_stream(14, SSD_RNG_DOMAIN_AUGMENT, 0, 0, (uint64_t)c);
        tape.n = 0;
        crop_result *cr = &res[c];
        cr->n = n;
        cr->boxes = ssd_xmalloc(sizeof(float) * 4 * (size_t)(n + 1));
        cr->labels = ssd_xmalloc(sizeof(int32_t) * (size_t)(n + 1));
        memcpy(cr->boxes, b, sizeof(float) * 4 * (size_t)n);
        memcpy(cr->labels, lab, sizeof(int32_t) * (size_t)n);
        ssd_random_crop_boxes_tape(&d, &tape, it, W, H, cr->boxes, cr->labels, &cr->n, &cr->rec);
        cJSON_AddItemToObject(j, "tape", tape_json(&tape));
        cJSON_AddItemToArray(cases, j);
        nboxes += n;
        ntries50 += it == 50;
    }
    write_json(P("crop_cases.json"), cases);
    cJSON_Delete(cases);
    cJSON *out = oracle("crop", P("crop_cases.json"), P("crop_out.json"));
    const cJSON *results = cJSON_GetObjectItem(out, "results");
    assert_int_equal(cJSON_GetArraySize(results), NC);
    int bad = 0, guarded = 0, hist[SSD_CROP_MODES] = {0};
    for (int c = 0; c < NC; c++) {
        const cJSON *e = cJSON_GetArrayItem(results, c);
        crop_result *cr = &res[c];
        int ok = 1;
        const char *why = "";
#define CHECK(cond, msg) \
    if (ok && !(cond)) ok = 0, why = msg
        CHECK(cJSON_GetObjectItem(e, "mode")->valueint == cr->rec.crop_mode, "mode");
        CHECK(cJSON_GetObjectItem(e, "draws")->valueint == cr->rec.mode_draws, "mode draws");
        CHECK(cJSON_GetObjectItem(e, "used")->valueint == cJSON_GetObjectItem(e, "tape")->valueint,
              "the reference did not use every draw");
        const cJSON *crop = cJSON_GetObjectItem(e, "crop");
        for (int k = 0; k < 4; k++)
            CHECK(cJSON_GetArrayItem(crop, k)->valuedouble == cr->rec.crop[k], "crop fractions");
        const cJSON *px = cJSON_GetObjectItem(e, "px");
        int raw[4], nonempty;
        for (int k = 0; k < 4; k++) raw[k] = cJSON_GetArrayItem(px, k)->valueint;
        nonempty = raw[2] > raw[0] && raw[3] > raw[1];
        if (nonempty) {
            for (int k = 0; k < 4; k++) CHECK(raw[k] == cr->rec.crop_px[k], "pixel box");
        } else { /* the reference would fail on an empty image; we keep one pixel */
            guarded++;
            const int *q = cr->rec.crop_px;
            CHECK(q[2] > q[0] && q[3] > q[1] && q[0] >= 0 && q[1] >= 0, "guarded pixel box");
        }
        CHECK(json_floats_equal(cJSON_GetObjectItem(e, "boxes"), cr->boxes, 4 * cr->n), "boxes");
        CHECK(json_ints_equal(cJSON_GetObjectItem(e, "labels"), cr->labels, cr->n), "labels");
#undef CHECK
        if (!ok && bad++ < 10) printf("case %d: %s differs from the reference\n", c, why);
        hist[cr->rec.crop_mode]++;
    }
    printf("crop: %d cases (%ld boxes, %ld with 50 tries) replayed through the torch "
           "SSDCropping: %d differ; %d tiny-image cases used the 1-pixel guard; final modes",
           NC, nboxes, ntries50, bad, guarded);
    for (int m = 0; m < SSD_CROP_MODES; m++) printf(" %d", hist[m]);
    printf("\n");
    assert_int_equal(bad, 0);
    for (int m = 0; m < SSD_CROP_MODES; m++) assert_true(hist[m] > 0); /* every mode exercised */
    assert_true(guarded > 0);
    cJSON_Delete(out);
    for (int c = 0; c < NC; c++) free(res[c].boxes), free(res[c].labels);
    free(res);
    ssd_aug_tape_free(&tape);
}

/* ---------------------------------------------------------------------------------------- */
/* whole training transform vs a PIL/torchvision pipeline replaying the same draws           */
/* ---------------------------------------------------------------------------------------- */

typedef struct train_case {
    ssd_augment_cfg cfg;
    char in[64];
    int n, oh, ow;
    float *boxes;
    int32_t *labels;
    ssd_aug_record rec;
    float *chw;
} train_case;

static void test_train_vs_reference(void **state) {
    (void)state;
    if (!g_have_oracle) return;
    decode_photos();
    enum { NSYN = 14, MAXB = 121 };
    int ncase = 2 * g_nphotos + NSYN;
    train_case *tc = ssd_xcalloc((size_t)ncase, sizeof *tc);
    cJSON *cases = cJSON_CreateArray();
    ssd_augment_ws *ws = ssd_augment_ws_create(), *ws_c = ssd_augment_ws_create();
    ssd_augment_ws_set_simd(ws_c, 0);
    ssd_image im = {0};
    ssd_aug_tape tape = {0};
    size_t nf = 3 * SSD_AUG_SIZE * SSD_AUG_SIZE;
    float *chw2 = ssd_xmalloc(nf * sizeof *chw2);
    int bad_paths = 0, nl0 = 0, n50 = 0;
    static const int syn[NSYN][2] = {{300, 300}, {300, 451}, {451, 300}, {640, 480}, {480, 640},
                                      {4, 4},     {5, 977},   {1200, 9}, {150, 150}, {301, 299},
                                      {1024, 768}, {37, 61},  {600, 300}, {333, 500}};
    for (int c = 0; c < ncase; c++) {
        train_case *t = &tc[c];
        ssd_rng g = ssd_rng_stream(15, SSD_RNG_DOMAIN_TEST, 0, 0, (uint64_t)c);
        ssd_augment_cfg_default(&t->cfg);
        float *b0;
        int32_t *l0;
        int n;
        if (c < 2 * g_nphotos) {
            int i = c / 2;
            snprintf(t->in, sizeof t->in, "%s", g_photos[i]);
            read_ppm(P(t->in), &im);
            read_photo_boxes(i, &b0, &l0, &n);
            t->cfg.l_round = c & 1 ? 0 : 1;
            if (c % 6 == 3) t->cfg.crop_iterations = 50;
        } else {
            int k = c - 2 * g_nphotos;
            gen_image(&im, syn[k][0], syn[k][1], k, &g);
            snprintf(t->in, sizeof t->in, "train_in%d.ppm", k);
            write_ppm(P(t->in), &im);
            n = random_box_count(&g);
            b0 = ssd_xmalloc(sizeof(float) * 4 * MAXB);
            l0 = ssd_xmalloc(sizeof(int32_t) * MAXB);
            gen_boxes(&g, n, im.w, im.h, b0, l0);
            t->cfg.l_round = k & 1;
            if (k % 4 == 2) t->cfg.crop_iterations = 1 + (int)ssd_rng_below(&g, 50);
            if (k % 5 == 4) t->cfg.hue = 0, t->cfg.brightness = 0; /* ops dropped from the jitter */
        }
        nl0 += t->cfg.l_round == 0;
        n50 += t->cfg.crop_iterations > 1;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "in", t->in);
        char out[64];
        snprintf(out, sizeof out, "train_out%d.f32", c);
        cJSON_AddStringToObject(j, "out", out);
        cJSON_AddItemToObject(j, "boxes", floats_json(b0, 4 * n));
        cJSON_AddItemToObject(j, "labels", cJSON_CreateIntArray(l0, n));
        cJSON *cf = cJSON_CreateObject();
        add_num(cf, "iterations", t->cfg.crop_iterations);
        add_num(cf, "brightness", (double)t->cfg.brightness);
        add_num(cf, "contrast", (double)t->cfg.contrast);
        add_num(cf, "saturation", (double)t->cfg.saturation);
        add_num(cf, "hue", (double)t->cfg.hue);
        add_num(cf, "l_round", t->cfg.l_round);
        cJSON_AddItemToObject(j, "cfg", cf);

        /* ours, AVX2 (if present) and portable paths */
        t->boxes = ssd_xmalloc(sizeof(float) * 4 * (size_t)(n + 1));
        t->labels = ssd_xmalloc(sizeof(int32_t) * (size_t)(n + 1));
        float *b2 = ssd_xmalloc(sizeof(float) * 4 * (size_t)(n + 1));
        int32_t *l2 = ssd_xmalloc(sizeof(int32_t) * (size_t)(n + 1));
        memcpy(t->boxes, b0, sizeof(float) * 4 * (size_t)n),
            memcpy(b2, b0, sizeof(float) * 4 * (size_t)n);
        memcpy(t->labels, l0, sizeof(int32_t) * (size_t)n),
            memcpy(l2, l0, sizeof(int32_t) * (size_t)n);
        t->n = n;
        t->chw = ssd_xmalloc(nf * sizeof *t->chw);
        ssd_rng d = ssd_rng_stream(16, SSD_RNG_DOMAIN_AUGMENT, 0, 0, (uint64_t)c), d2 = d;
        tape.n = 0;
        ssd_augment_train_tape(&t->cfg, &d, &tape, ws, &im, t->boxes, t->labels, &t->n, t->chw,
                               &t->oh, &t->ow, &t->rec);
        int n2 = n, oh2, ow2;
        ssd_aug_record rec2;
        ssd_augment_train(&t->cfg, &d2, ws_c, &im, b2, l2, &n2, chw2, &oh2, &ow2, &rec2);
        if (memcmp(chw2, t->chw, nf * sizeof *chw2) != 0 || n2 != t->n || oh2 != t->oh ||
            ow2 != t->ow || memcmp(b2, t->boxes, sizeof(float) * 4 * (size_t)n2) != 0) {
            printf("case %d: portable and AVX2 paths differ\n", c);
            bad_paths++;
        }
        cJSON_AddItemToObject(j, "tape", tape_json(&tape));
        cJSON_AddItemToArray(cases, j);
        free(b0), free(l0), free(b2), free(l2);
    }
    write_json(P("train_cases.json"), cases);
    cJSON_Delete(cases);
    cJSON *out = oracle("train", P("train_cases.json"), P("train_out.json"));
    const cJSON *results = cJSON_GetObjectItem(out, "results");
    assert_int_equal(cJSON_GetArraySize(results), ncase);
    int bad = 0, flips = 0, modes[SSD_CROP_MODES] = {0};
    for (int c = 0; c < ncase; c++) {
        train_case *t = &tc[c];
        const cJSON *e = cJSON_GetArrayItem(results, c);
        char out_name[64], what[160];
        snprintf(out_name, sizeof out_name, "train_out%d.f32", c);
        snprintf(what, sizeof what, "train case %d (%s, l_round %d, %d tries)", c, t->in,
                 t->cfg.l_round, t->cfg.crop_iterations);
        float *want = read_f32(P(out_name), nf);
        int ok = floats_equal(t->chw, want, nf, what);
        unlink(P(out_name));
        free(want);
        const ssd_aug_record *r = &t->rec;
        ok &= cJSON_GetObjectItem(e, "mode")->valueint == r->crop_mode;
        ok &= cJSON_GetObjectItem(e, "draws")->valueint == r->mode_draws;
        ok &= cJSON_GetObjectItem(e, "flip")->valueint == r->flipped;
        ok &= cJSON_GetObjectItem(e, "h")->valueint == t->oh;
        ok &= cJSON_GetObjectItem(e, "w")->valueint == t->ow;
        ok &= cJSON_GetObjectItem(e, "used")->valueint == cJSON_GetObjectItem(e, "tape")->valueint;
        for (int k = 0; k < 4; k++) {
            ok &= cJSON_GetArrayItem(cJSON_GetObjectItem(e, "crop"), k)->valuedouble == r->crop[k];
            ok &= cJSON_GetArrayItem(cJSON_GetObjectItem(e, "px"), k)->valueint == r->crop_px[k];
            ok &= (float)cJSON_GetArrayItem(cJSON_GetObjectItem(e, "factors"), k)->valuedouble ==
                  r->factors[k];
            ok &= cJSON_GetArrayItem(cJSON_GetObjectItem(e, "order"), k)->valueint == r->order[k];
        }
        ok &= json_floats_equal(cJSON_GetObjectItem(e, "boxes"), t->boxes, 4 * t->n);
        ok &= json_ints_equal(cJSON_GetObjectItem(e, "labels"), t->labels, t->n);
        if (!ok) {
            bad++;
            printf("%s: differs from the reference pipeline (mode %d, flip %d, px %d %d %d %d)\n",
                   what, r->crop_mode, r->flipped, r->crop_px[0], r->crop_px[1], r->crop_px[2],
                   r->crop_px[3]);
        }
        flips += r->flipped;
        modes[r->crop_mode]++;
        free(t->boxes), free(t->labels), free(t->chw);
    }
    printf("train: %d whole transforms (%d on real photos, %d with l_round 0, %d with > 1 try, %d "
           "flipped) vs PIL/torchvision replaying the same draws: %d differ; portable vs AVX2: "
           "%d differ; modes", ncase, 2 * g_nphotos, nl0, n50, flips, bad, bad_paths);
    for (int m = 0; m < SSD_CROP_MODES; m++) printf(" %d", modes[m]);
    printf("\n");
    assert_int_equal(bad, 0);
    assert_int_equal(bad_paths, 0);
    assert_true(flips > 0 && flips < ncase);
    cJSON_Delete(out);
    free(tc);
    free(chw2);
    ssd_image_free(&im);
    ssd_aug_tape_free(&tape);
    ssd_augment_ws_destroy(ws);
    ssd_augment_ws_destroy(ws_c);
}

/* ---------------------------------------------------------------------------------------- */
/* statistics of the crop modes                                                              */
/* ---------------------------------------------------------------------------------------- */

/* Regularised upper incomplete gamma Q(a, x): series for x < a + 1, else continued fraction
 * (modified Lentz). Enough for chi-square p-values. */
static double gamma_q(double a, double x) {
    if (x <= 0) return 1.0;
    double lg = lgamma(a);
    if (x < a + 1) {
        double term = 1.0 / a, sum = term;
        for (int n = 1; n < 100000; n++) {
            term *= x / (a + n);
            sum += term;
            if (term < sum * 1e-16) break;
        }
        return 1.0 - sum * exp(-x + a * log(x) - lg);
    }
    double b = x + 1 - a, c = 1e300, d = 1 / b, h = d;
    for (int i = 1; i < 100000; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < 1e-300) d = 1e-300;
        c = b + an / c;
        if (fabs(c) < 1e-300) c = 1e-300;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-16) break;
    }
    return exp(-x + a * log(x) - lg) * h;
}

static double chi2_sf(double x, int df) { return gamma_q(df / 2.0, x / 2.0); }

/* Two-sample chi-square test of homogeneity over k bins; bins whose pooled count is below 20
 * are merged into one. Returns the p-value; *stat and *df get the statistic and the degrees. */
static double chi2_two_sample(const long *a, const long *b, int k, double *stat, int *df) {
    double na = 0, nb = 0;
    for (int i = 0; i < k; i++) na += (double)a[i], nb += (double)b[i];
    double ka = sqrt(nb / na), kb = sqrt(na / nb), chi = 0;
    long ra = 0, rb = 0;
    int bins = 0;
    for (int i = 0; i <= k; i++) {
        long x, y;
        if (i < k && a[i] + b[i] < 20) {
            ra += a[i], rb += b[i];
            continue;
        }
        if (i < k) x = a[i], y = b[i];
        else if (ra + rb > 0) x = ra, y = rb;
        else break;
        double dd = ka * (double)x - kb * (double)y;
        chi += dd * dd / (double)(x + y);
        bins++;
    }
    *stat = chi;
    *df = bins - 1;
    return *df > 0 ? chi2_sf(chi, *df) : 1.0;
}

static void test_crop_mode_statistics(void **state) {
    (void)state;
    /* Two overlapping boxes: IoU modes 0.1 .. 0.5 succeed sometimes, 0.7 rarely, 0.9 never. */
    static const float set[2][4] = {{0.2f, 0.25f, 0.6f, 0.7f}, {0.35f, 0.3f, 0.75f, 0.8f}};
    const int W = 640, H = 360, NC = 40000, N50 = 10000;
    long first[SSD_CROP_MODES] = {0}, fin[SSD_CROP_MODES] = {0}, fin50[SSD_CROP_MODES] = {0};
    long draws1 = 0, draws50 = 0, keep_bad = 0, kept_none = 0;
    ssd_aug_tape tape = {0};
    for (int i = 0; i < NC + N50; i++) {
        int t50 = i >= NC;
        float b[2][4];
        int32_t lab[2] = {1, 2};
        int n = 2;
        memcpy(b, set, sizeof b);
        ssd_rng d = ssd_rng_stream(17, SSD_RNG_DOMAIN_AUGMENT, 0, 0, (uint64_t)i);
        ssd_aug_record rec;
        tape.n = 0;
        ssd_random_crop_boxes_tape(&d, &tape, t50 ? 50 : 1, W, H, &b[0][0], lab, &n, &rec);
        if (rec.crop_mode == 0) { /* mode 0 keeps the image and every box as it is */
            keep_bad += n != 2 || memcmp(b, set, sizeof b) != 0 || lab[0] != 1 || lab[1] != 2 ||
                        rec.crop_px[0] != 0 || rec.crop_px[1] != 0 || rec.crop_px[2] != W ||
                        rec.crop_px[3] != H;
        } else {
            kept_none += n < 1;
        }
        if (t50) {
            fin50[rec.crop_mode]++;
            draws50 += rec.mode_draws;
        } else {
            first[(int)tape.v[0]]++;
            fin[rec.crop_mode]++;
            draws1 += rec.mode_draws;
        }
    }
    ssd_aug_tape_free(&tape);
    assert_int_equal(keep_bad, 0);
    assert_int_equal(kept_none, 0);

    /* (1) the first drawn mode is uniform over the 7 options */
    double gof = 0, e = NC / 7.0;
    for (int m = 0; m < SSD_CROP_MODES; m++) gof += (first[m] - e) * (first[m] - e) / e;
    double p_first = chi2_sf(gof, 6);
    printf("first drawn mode over %d crops:", NC);
    for (int m = 0; m < SSD_CROP_MODES; m++) printf(" %ld", first[m]);
    printf("  chi2 %.2f (df 6) p = %.3g\n", gof, p_first);
    assert_true(p_first > 1e-4);

    /* (2) more tries per drawn mode: more successes per draw, fewer mode draws */
    double succ1 = (double)NC / (double)draws1, succ50 = (double)N50 / (double)draws50;
    printf("successes per mode draw: %.3f with 1 try, %.3f with 50 tries; final modes (1 try):",
           succ1, succ50);
    for (int m = 0; m < SSD_CROP_MODES; m++) printf(" %ld", fin[m]);
    printf(" (50 tries):");
    for (int m = 0; m < SSD_CROP_MODES; m++) printf(" %ld", fin50[m]);
    printf("\n");
    assert_true(succ50 > succ1 + 0.1);
    /* the constrained modes succeed more often, so "keep" ends fewer samples */
    assert_true((double)fin50[0] / N50 < (double)fin[0] / NC - 0.05);
    assert_true((double)fin50[3] / N50 > 5.0 * (double)fin[3] / NC); /* IoU 0.5: rare with 1 try */

    if (!g_have_oracle) return;
    /* (3) the final mode distribution equals the Python re-implementation's (Python's RNG) */
    char boxes_arg[256], cmd[2400];
    snprintf(boxes_arg, sizeof boxes_arg, "[[%.9g,%.9g,%.9g,%.9g],[%.9g,%.9g,%.9g,%.9g]]",
             (double)set[0][0], (double)set[0][1], (double)set[0][2], (double)set[0][3],
             (double)set[1][0], (double)set[1][1], (double)set[1][2], (double)set[1][3]);
    static const struct { const char *mutation; int n; int must_reject; } runs[] = {
        {NULL, 12000, 0}, {"any", 4000, 1}, {"ratio_px", 4000, 1}};
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        char outp[1400];
        snprintf(outp, sizeof outp, "%s/modes%zu.json", g_dir, k);
        if (snprintf(cmd, sizeof cmd,
                     "\"%s\" \"%s/tools/pil_augment_oracle.py\" modes --boxes '%s' --W %d --H %d "
                     "--n %d --seed %zu%s%s \"%s\"",
                     g_py, g_src, boxes_arg, W, H, runs[k].n, 100 + k,
                     runs[k].mutation ? " --mutation " : "",
                     runs[k].mutation ? runs[k].mutation : "", outp) >= (int)sizeof cmd)
            fail_msg("command too long");
        assert_int_equal(tu_system(cmd), 0);
        cJSON *j = tu_read_json(outp);
        long py[SSD_CROP_MODES];
        const cJSON *h = cJSON_GetObjectItem(j, "hist");
        for (int m = 0; m < SSD_CROP_MODES; m++)
            py[m] = (long)cJSON_GetArrayItem(h, m)->valuedouble;
        cJSON_Delete(j);
        double stat;
        int df;
        double p = chi2_two_sample(fin, py, SSD_CROP_MODES, &stat, &df);
        printf("final modes, C (%d):", NC);
        for (int m = 0; m < SSD_CROP_MODES; m++) printf(" %ld", fin[m]);
        printf(" | Python %s (%d):", runs[k].mutation ? runs[k].mutation : "reference", runs[k].n);
        for (int m = 0; m < SSD_CROP_MODES; m++) printf(" %ld", py[m]);
        printf(" | chi2 %.1f df %d p = %.3g\n", stat, df, p);
        if (runs[k].must_reject) assert_true(p < 1e-6); /* the test has the power to see it */
        else assert_true(p > 1e-4);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* C-only invariants                                                                         */
/* ---------------------------------------------------------------------------------------- */

static void test_train_invariants(void **state) {
    (void)state;
    enum { NS = 1500, MAXB = 121 };
    ssd_augment_cfg cfg;
    ssd_augment_cfg_default(&cfg);
    ssd_augment_ws *ws = ssd_augment_ws_create(), *ws_c = ssd_augment_ws_create();
    ssd_augment_ws_set_simd(ws_c, 0);
    size_t nf = 3 * SSD_AUG_SIZE * SSD_AUG_SIZE;
    float *chw = ssd_xmalloc(nf * sizeof *chw), *chw2 = ssd_xmalloc(nf * sizeof *chw2);
    ssd_image img = {0}, tiny = {0}, a = {0}, b = {0}, tmp = {0};
    ssd_rng g = ssd_rng_stream(18, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    gen_image(&img, 320, 240, 1, &g);
    float b0[MAXB * 4], bx[MAXB * 4], bx2[MAXB * 4];
    int32_t l0[MAXB], lx[MAXB], lx2[MAXB];
    long outside = 0, nbox = 0, checked = 0;
    double overshoot = 0;
    int modes[SSD_CROP_MODES] = {0}, flips = 0;
    for (int s = 0; s < NS; s++) {
        int n0 = random_box_count(&g);
        gen_boxes(&g, n0, img.w, img.h, b0, l0);
        for (int i = 0; i < n0; i++) l0[i] = 1000 + i; /* labels say which box is which */
        memcpy(bx, b0, sizeof(float) * 4 * n0);
        memcpy(lx, l0, sizeof(int32_t) * n0);
        int n = n0, oh, ow;
        ssd_aug_record rec;
        ssd_rng d = ssd_rng_stream(19, SSD_RNG_DOMAIN_AUGMENT, 0, 0, (uint64_t)s), d2 = d;
        ssd_augment_train(&cfg, &d, ws, &img, bx, lx, &n, chw, &oh, &ow, &rec);
        modes[rec.crop_mode]++;
        flips += rec.flipped;
        /* record, pixel box and sizes */
        const int *q = rec.crop_px;
        assert_true(n >= 1 && n <= n0);
        assert_true(0 <= q[0] && q[0] < q[2] && q[2] <= img.w && 0 <= q[1] && q[1] < q[3] &&
                    q[3] <= img.h);
        assert_int_equal(oh, q[3] - q[1]);
        assert_int_equal(ow, q[2] - q[0]);
        if (rec.crop_mode == 0) {
            assert_true(rec.crop[0] == 0 && rec.crop[1] == 0 && rec.crop[2] == 1 &&
                        rec.crop[3] == 1);
            assert_int_equal(n, n0);
        } else {
            assert_int_equal(q[0], (int)(rec.crop[0] * img.w));
            assert_int_equal(q[3], (int)(rec.crop[3] * img.h));
            double fw = rec.crop[2] - rec.crop[0], fh = rec.crop[3] - rec.crop[1];
            assert_true(fw >= 0.3 - 1e-12 && fw <= 1 && fh >= 0.3 - 1e-12 && fh <= 1 &&
                        fw / fh >= 0.5 - 1e-9 && fw / fh <= 2 + 1e-9);
        }
        assert_true(rec.factors[0] >= 0.875f && rec.factors[0] <= 1.125f);
        assert_true(rec.factors[1] >= 0.5f && rec.factors[1] <= 1.5f);
        assert_true(rec.factors[2] >= 0.5f && rec.factors[2] <= 1.5f);
        assert_true(rec.factors[3] >= -0.05f && rec.factors[3] <= 0.05f);
        int seen = 0;
        for (int k = 0; k < 4; k++) seen |= 1 << rec.order[k];
        assert_int_equal(seen, 15);
        /* boxes: finite, ordered, in [0, 1] up to float32 rounding of the renormalisation,
         * labels in input order, each box where its input box goes (double arithmetic) */
        double L = rec.crop[0], T = rec.crop[1], R = rec.crop[2], B = rec.crop[3];
        int prev = -1;
        for (int i = 0; i < n; i++) {
            const float *o = bx + 4 * i;
            for (int k = 0; k < 4; k++) assert_true(isfinite(o[k]));
            assert_true(o[0] <= o[2] && o[1] <= o[3]);
            for (int k = 0; k < 4; k++) {
                if (o[k] < 0 || o[k] > 1) {
                    outside++;
                    double over = o[k] < 0 ? -o[k] : o[k] - 1;
                    if (over > overshoot) overshoot = over;
                }
                assert_true(o[k] >= -1e-6f && o[k] <= 1 + 1e-6f);
            }
            int id = lx[i] - 1000;
            assert_true(id > prev && id < n0); /* kept boxes keep their order and their label */
            prev = id;
            const float *in = b0 + 4 * id;
            double e[4] = {(fmax(in[0], L) - L) / (R - L), (fmax(in[1], T) - T) / (B - T),
                           (fmin(in[2], R) - L) / (R - L), (fmin(in[3], B) - T) / (B - T)};
            if (rec.flipped) {
                double l = e[0];
                e[0] = 1 - e[2], e[2] = 1 - l;
            }
            for (int k = 0; k < 4; k++) assert_true(fabs(o[k] - e[k]) < 1e-5);
            nbox++;
        }
        /* dropped boxes: centre outside the crop (strictly-inside rule; skip rounding ties) */
        if (rec.crop_mode != 0) {
            int k = 0;
            for (int id = 0; id < n0; id++) {
                if (k < n && lx[k] - 1000 == id) {
                    k++;
                    continue;
                }
                double cx = 0.5 * ((double)b0[4 * id] + b0[4 * id + 2]);
                double cy = 0.5 * ((double)b0[4 * id + 1] + b0[4 * id + 3]);
                double m = fmin(fmin(cx - L, R - cx), fmin(cy - T, B - cy));
                if (fabs(m) > 1e-6) assert_true(m < 0), checked++;
            }
        }
        /* the same stream gives the same sample, on the portable path too */
        if (s % 10 == 0) {
            memcpy(bx2, b0, sizeof(float) * 4 * n0);
            memcpy(lx2, l0, sizeof(int32_t) * n0);
            int n2 = n0, oh2, ow2;
            ssd_aug_record rec2;
            ssd_augment_train(&cfg, &d2, s % 20 == 0 ? ws : ws_c, &img, bx2, lx2, &n2, chw2, &oh2,
                              &ow2, &rec2);
            assert_int_equal(n2, n);
            assert_memory_equal(bx2, bx, sizeof(float) * 4 * n);
            assert_memory_equal(lx2, lx, sizeof(int32_t) * n);
            assert_memory_equal(chw2, chw, nf * sizeof *chw);
            assert_true(rec2.crop_mode == rec.crop_mode && rec2.mode_draws == rec.mode_draws &&
                        rec2.flipped == rec.flipped);
            assert_memory_equal(rec2.crop, rec.crop, sizeof rec.crop);
            assert_memory_equal(rec2.crop_px, rec.crop_px, sizeof rec.crop_px);
            assert_memory_equal(rec2.factors, rec.factors, sizeof rec.factors);
            assert_memory_equal(rec2.order, rec.order, sizeof rec.order);
        }
    }
    printf("invariants: %d samples, %ld boxes; %ld coordinates outside [0, 1] by at most %.3g "
           "(float32 renormalisation); %ld dropped boxes checked; modes", NS, nbox, outside,
           overshoot, checked);
    for (int m = 0; m < SSD_CROP_MODES; m++) printf(" %d", modes[m]);
    printf("; %d flipped\n", flips);
    assert_true(modes[0] > 0 && modes[1] > 0 && modes[2] > 0 && modes[6] > 0);
    assert_true(flips > NS / 3 && flips < 2 * NS / 3);

    /* a different stream gives a different sample */
    {
        int n = 1, oh, ow;
        float one[4] = {0.1f, 0.1f, 0.9f, 0.9f};
        int32_t lab = 1;
        ssd_rng d = ssd_rng_stream(19, SSD_RNG_DOMAIN_AUGMENT, 0, 0, 1);
        ssd_augment_train(&cfg, &d, ws, &img, one, &lab, &n, chw, &oh, &ow, NULL);
        float one2[4] = {0.1f, 0.1f, 0.9f, 0.9f};
        n = 1;
        d = ssd_rng_stream(19, SSD_RNG_DOMAIN_AUGMENT, 0, 0, 2);
        ssd_augment_train(&cfg, &d, ws, &img, one2, &lab, &n, chw2, &oh, &ow, NULL);
        assert_true(memcmp(chw, chw2, nf * sizeof *chw) != 0);
    }

    /* without jitter the fused crop+flip+resize equals the composition of the public operations
     * (crop, then flip_lr, then resize): the flip mirrors the cropped image's columns */
    ssd_augment_cfg plain = cfg;
    plain.brightness = plain.contrast = plain.saturation = plain.hue = 0;
    int seen_flip[2] = {0, 0};
    for (int s = 0; s < 200; s++) {
        float one[4] = {0.3f, 0.2f, 0.6f, 0.9f};
        int32_t lab = 1;
        int n = 1, oh, ow;
        ssd_aug_record rec;
        ssd_rng d = ssd_rng_stream(20, SSD_RNG_DOMAIN_AUGMENT, 0, 0, (uint64_t)s);
        ssd_augment_train(&plain, &d, s & 1 ? ws : ws_c, &img, one, &lab, &n, chw, &oh, &ow, &rec);
        assert_true(rec.factors[0] == 1 && rec.factors[1] == 1 && rec.factors[2] == 1);
        const int *q = rec.crop_px;
        ssd_pil_crop(&img, q[0], q[1], q[2], q[3], &a);
        if (rec.flipped) {
            ssd_image_copy(&b, &a);
            ssd_pil_flip_lr(&b);
            for (int y = 0; y < a.h; y++) /* flip_lr is a column mirror */
                for (int x = 0; x < a.w; x++)
                    assert_memory_equal(b.px + 3 * ((size_t)y * a.w + x),
                                        a.px + 3 * ((size_t)y * a.w + (a.w - 1 - x)), 3);
            ssd_image_copy(&a, &b);
        }
        ssd_pil_resize_bilinear(&a, &b, SSD_AUG_SIZE, SSD_AUG_SIZE, &tmp);
        ssd_image_to_chw_normalized(&b, chw2);
        assert_memory_equal(chw, chw2, nf * sizeof *chw);
        seen_flip[rec.flipped]++;
    }
    assert_true(seen_flip[0] > 0 && seen_flip[1] > 0);

    /* images under 4 px a side: the pixel box always keeps at least one pixel */
    static const int sizes[][2] = {{1, 1}, {2, 3}, {3, 1}, {1, 7}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        gen_image(&tiny, sizes[k][0], sizes[k][1], 0, &g);
        for (int s = 0; s < 300; s++) {
            float one[4] = {0.0f, 0.0f, 1.0f, 1.0f};
            int32_t lab = 1;
            int n = 1, oh, ow;
            ssd_aug_record rec;
            ssd_rng d = ssd_rng_stream(21, SSD_RNG_DOMAIN_AUGMENT, 0, (uint32_t)k, (uint64_t)s);
            ssd_augment_train(&cfg, &d, ws, &tiny, one, &lab, &n, chw, &oh, &ow, &rec);
            assert_true(oh >= 1 && ow >= 1 && rec.crop_px[2] <= tiny.w && rec.crop_px[3] <= tiny.h);
            for (size_t i = 0; i < nf; i += 997) assert_true(isfinite(chw[i]));
        }
    }
    free(chw), free(chw2);
    ssd_image_free(&img), ssd_image_free(&tiny), ssd_image_free(&a), ssd_image_free(&b);
    ssd_image_free(&tmp);
    ssd_augment_ws_destroy(ws);
    ssd_augment_ws_destroy(ws_c);
}

/* The centre test is strict on all four sides (spec 6.2: a box whose centre lies exactly on the
 * crop's edge is dropped; one a float32 ulp inside is kept). Random boxes never hit an edge, so
 * they are placed there: for streams whose first try succeeds in mode 6 (no IoU constraint) a
 * zero-width (or zero-height) box is put with its centre exactly on one edge (as float32, where
 * the reference compares) and the same stream is run again; the added box changes no earlier
 * decision, since there is none. */
static void test_crop_center_on_edge(void **state) {
    (void)state;
    static const float big[4] = {0.2f, 0.2f, 0.8f, 0.8f};
    int tested = 0;
    for (uint64_t s = 0; s < 4000 && tested < 40; s++) {
        float b[2][4];
        int32_t lab[2] = {1, 2};
        int n = 1;
        memcpy(b[0], big, sizeof big);
        ssd_aug_record rec;
        ssd_rng d = ssd_rng_stream(22, SSD_RNG_DOMAIN_AUGMENT, 0, 0, s), d0 = d;
        ssd_random_crop_boxes(&d, 1, 640, 480, &b[0][0], lab, &n, &rec);
        if (rec.crop_mode != 6 || rec.mode_draws != 1) continue;
        float cl = (float)rec.crop[0], ct = (float)rec.crop[1];
        float cr = (float)rec.crop[2], cb = (float)rec.crop[3];
        float ym = 0.5f * (ct + cb), xm = 0.5f * (cl + cr);
        for (int side = 0; side < 4; side++)
            for (int inside = 0; inside < 2; inside++) {
                float e = side == 0 ? cl : side == 1 ? cr : side == 2 ? ct : cb;
                if (inside) e = nextafterf(e, side == 0 || side == 2 ? 1.0f : 0.0f);
                float nb[2][4];
                memcpy(nb[0], big, sizeof big);
                if (side < 2) nb[1][0] = nb[1][2] = e, nb[1][1] = ym - 0.01f, nb[1][3] = ym + 0.01f;
                else nb[1][1] = nb[1][3] = e, nb[1][0] = xm - 0.01f, nb[1][2] = xm + 0.01f;
                int32_t nl[2] = {1, 2};
                int m = 2;
                ssd_rng d2 = d0;
                ssd_aug_record r2;
                ssd_random_crop_boxes(&d2, 1, 640, 480, &nb[0][0], nl, &m, &r2);
                assert_int_equal(r2.crop_mode, 6);
                assert_true(r2.crop[0] == rec.crop[0] && r2.crop[3] == rec.crop[3]);
                if (inside) { /* kept, clipped to the crop */
                    assert_int_equal(m, 2);
                    assert_int_equal(nl[1], 2);
                } else {
                    assert_int_equal(m, 1);
                    assert_int_equal(nl[0], 1);
                }
            }
        tested++;
    }
    printf("centre on a crop edge: %d crops x 4 edges, on the edge dropped, one ulp inside kept\n",
           tested);
    assert_true(tested >= 20);
}


int main(void) {
    atu_init("test_augment_crop");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crop_vs_reference),
        cmocka_unit_test(test_train_vs_reference),
        cmocka_unit_test(test_crop_mode_statistics),
        cmocka_unit_test(test_train_invariants),
        cmocka_unit_test(test_crop_center_on_edge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
