/* data/augment against independent oracles.
 *
 * Pixel operations against Pillow 9.4 / torchvision 0.14 / torch 1.13 (tools/pil_augment_oracle.py,
 * run at test time): BILINEAR resize bit-exact for many sizes (up, down, one axis, 1xN, same
 * size, real photos), crop and flip, brightness / contrast / saturation / hue bit-exact (l_round 1
 * against Pillow itself, l_round 0 against a numpy model of Pillow 5.2.0 that the oracle checks
 * against Pillow 9.4 wherever the two agree), ToTensor + Normalize bit-exact, the validation
 * transform bit-exact. Every resize runs through the portable and the AVX2 kernels.
 *
 * Geometry: the C crop is run with its draws recorded (augment_internal.h's tape) and a torch
 * re-implementation of the reference's SSDCropping replays the same draws: boxes, labels, pixel
 * box, mode and number of draws identical for thousands of cases (crowded images, degenerate and
 * edge boxes, 1 and 50 tries). The whole training transform is replayed the same way on real
 * images (committed fixtures; ../shared/data/coco_tiny when present) and must give the same
 * float32 tensor bit for bit (l_round 1: Pillow; l_round 0: the numpy Pillow 5.2.0 model).
 *
 * Statistics: the first drawn mode is uniform (chi-square), the final mode distribution for a
 * fixed box set equals the Python re-implementation's with Python's own RNG (two-sample
 * chi-square), and the same test rejects the re-implementation when it is mutated ("any box"
 * IoU rule, ratio of pixels instead of fractions), so it has the power to catch those bugs.
 *
 * C-only checks (run without Python): box validity and range, label alignment, flip, mode 0,
 * determinism, 50 tries, fused crop+flip+resize = the composition of the public operations,
 * portable = AVX2. Without python3 + torch + torchvision the oracle tests print SKIPPED. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/rng.h"
#include "data/augment.h"
#include "data/augment_internal.h"
#include "testutil.h"

#define TEST "test_augment"

static char g_py[1024], g_src[1024], g_dir[1024];
static int g_have_oracle;

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static void write_ppm(const char *path, const ssd_image *im) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    fprintf(f, "P6\n%d %d\n255\n", im->w, im->h);
    fwrite(im->px, 1, (size_t)im->w * im->h * 3, f);
    fclose(f);
}

static int ppm_int(FILE *f) {
    int c = fgetc(f);
    while (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '#') {
        if (c == '#')
            while (c != '\n' && c != EOF) c = fgetc(f);
        c = fgetc(f);
    }
    int v = 0;
    while (c >= '0' && c <= '9') {
        v = v * 10 + (c - '0');
        c = fgetc(f);
    }
    return v; /* the single whitespace after the number is consumed */
}

static void read_ppm(const char *path, ssd_image *im) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s", path);
    char magic[2];
    if (fread(magic, 1, 2, f) != 2 || magic[0] != 'P' || magic[1] != '6') fail_msg("%s: not P6", path);
    int w = ppm_int(f), h = ppm_int(f), mx = ppm_int(f);
    if (w <= 0 || h <= 0 || mx != 255) fail_msg("%s: bad header", path);
    ssd_image_reserve(im, w, h);
    if (fread(im->px, 1, (size_t)w * h * 3, f) != (size_t)w * h * 3) fail_msg("%s: short", path);
    fclose(f);
}

static float *read_f32(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s", path);
    float *v = ssd_xmalloc(n * sizeof *v);
    size_t got = fread(v, sizeof *v, n, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != n || extra != EOF) fail_msg("%s: %zu floats, expected %zu", path, got, n);
    return v;
}

static const char *P(const char *name) { /* path in the scratch folder (rotating buffers) */
    static char buf[8][1400];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

/* Random test images of a few kinds: noise, smooth gradients, flat blocks (gray pixels, equal
 * channels, saturated colours), extremes. */
static void gen_image(ssd_image *im, int w, int h, int kind, ssd_rng *r) {
    ssd_image_reserve(im, w, h);
    uint8_t *p = im->px;
    double fx = ssd_rng_range(r, 0.5, 8), fy = ssd_rng_range(r, 0.5, 8);
    int block = 1 + (int)ssd_rng_below(r, 16);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++, p += 3) {
            switch (kind % 4) {
            case 0:
                for (int c = 0; c < 3; c++) p[c] = (uint8_t)ssd_rng_below(r, 256);
                break;
            case 1:
                for (int c = 0; c < 3; c++) {
                    double v = 127.5 + 120 * sin(fx * x / w * 6.283 + c) * cos(fy * y / h * 6.283);
                    v += ssd_rng_range(r, -6, 6);
                    p[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
                break;
            case 2: {
                uint32_t s = (uint32_t)((x / block) * 7919 + (y / block) * 104729) * 2654435761u;
                int g = (int)(s >> 24);
                if ((s >> 8) % 3 == 0) p[0] = p[1] = p[2] = (uint8_t)g; /* gray */
                else {
                    p[0] = (uint8_t)g;
                    p[1] = (uint8_t)(s >> 16);
                    p[2] = (s >> 4) & 1 ? p[0] : (uint8_t)(s >> 12); /* ties of max/min */
                }
                break;
            }
            default:
                for (int c = 0; c < 3; c++) p[c] = ssd_rng_below(r, 2) ? 255 : (uint8_t)ssd_rng_below(r, 3);
                break;
            }
        }
}

static int images_equal(const ssd_image *a, const ssd_image *b, const char *what) {
    if (a->w != b->w || a->h != b->h) {
        printf("%s: size %dx%d vs %dx%d\n", what, a->w, a->h, b->w, b->h);
        return 0;
    }
    size_t n = (size_t)a->w * a->h * 3;
    for (size_t i = 0; i < n; i++)
        if (a->px[i] != b->px[i]) {
            size_t px = i / 3;
            int diff = 0;
            for (size_t j = 0; j < n; j++) diff += a->px[j] != b->px[j];
            printf("%s: first difference at (x %zu, y %zu, c %zu): %d vs %d; %d bytes differ\n", what,
                   px % (size_t)a->w, px / (size_t)a->w, i % 3, a->px[i], b->px[i], diff);
            return 0;
        }
    return 1;
}

static int floats_equal(const float *a, const float *b, size_t n, const char *what) {
    if (memcmp(a, b, n * sizeof *a) == 0) return 1;
    size_t first = 0, cnt = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(a + i, b + i, sizeof *a) != 0) {
            if (!cnt) first = i;
            cnt++;
        }
    printf("%s: %zu of %zu floats differ, first at %zu: %.9g vs %.9g\n", what, cnt, n, first,
           (double)a[first], (double)b[first]);
    return 0;
}

/* Runs the oracle; returns its JSON answer (cJSON_Delete it), with the self-checks verified. */
static cJSON *oracle(const char *cmd, const char *in_json, const char *out_json) {
    char line[4096];
    snprintf(line, sizeof line, "\"%s\" \"%s/tools/pil_augment_oracle.py\" %s \"%s\" \"%s\"", g_py,
             g_src, cmd, in_json, out_json);
    assert_int_equal(tu_system(line), 0);
    cJSON *o = tu_read_json(out_json);
    const cJSON *checks = cJSON_GetObjectItem(o, "checks");
    int bad = 0, n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, checks) {
        n++;
        if (!cJSON_IsTrue(cJSON_GetObjectItem(c, "ok"))) {
            bad++;
            printf("oracle self-check failed: %s (%s)\n",
                   cJSON_GetObjectItem(c, "check")->valuestring,
                   cJSON_GetObjectItem(c, "job")->valuestring);
        }
    }
    if (n) printf("oracle self-checks: %d, failed %d\n", n, bad);
    assert_int_equal(bad, 0);
    return o;
}

static void write_json(const char *path, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    fputs(s, f);
    fclose(f);
    free(s);
}

static cJSON *job(cJSON *list, const char *op, const char *in, const char *out) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "op", op);
    cJSON_AddStringToObject(j, "in", in);
    cJSON_AddStringToObject(j, "out", out);
    cJSON_AddItemToArray(list, j);
    return j;
}

/* Real photos to test on: the committed fixtures always, coco_tiny when present. Fills names
 * (scratch-relative .ppm written by the oracle's decode job); returns the count. */
#define MAX_PHOTOS 24
#define NFIXTURES 3
static const char *fixtures[NFIXTURES] = {"coco_train2017_000000401416.jpg",
                                          "coco_val2017_000000343937.jpg",
                                          "coco_val2017_000000168974.jpg"};
static int g_nphotos;
static char g_photos[MAX_PHOTOS][64];

static void decode_photos(void) {
    if (g_nphotos) return;
    cJSON *jobs = cJSON_CreateArray();
    for (int i = 0; i < NFIXTURES; i++) {
        char in[1400];
        snprintf(in, sizeof in, "%s/tests/fixtures/augment/%s", g_src, fixtures[i]);
        snprintf(g_photos[g_nphotos], 64, "photo%d.ppm", g_nphotos);
        job(jobs, "decode", in, g_photos[g_nphotos]);
        g_nphotos++;
    }
    char tiny[1400];
    snprintf(tiny, sizeof tiny, "%s/../shared/data/coco_tiny/val2017", g_src);
    if (access(tiny, R_OK) != 0) {
        tu_skip(TEST " (coco_tiny photos)",
                "../shared/data/coco_tiny is absent: real-photo cases use the 3 committed fixtures only");
    } else {
        char cmd[1600];
        snprintf(cmd, sizeof cmd, "ls \"%s\" | sort | head -n %d", tiny, MAX_PHOTOS - NFIXTURES);
        FILE *ls = popen(cmd, "r");
        char name[256];
        while (ls && fgets(name, sizeof name, ls) && g_nphotos < MAX_PHOTOS) {
            name[strcspn(name, "\n")] = 0;
            char in[1800];
            snprintf(in, sizeof in, "%s/%s", tiny, name);
            snprintf(g_photos[g_nphotos], 64, "photo%d.ppm", g_nphotos);
            job(jobs, "decode", in, g_photos[g_nphotos]);
            g_nphotos++;
        }
        if (ls) pclose(ls);
    }
    write_json(P("decode.json"), jobs);
    cJSON_Delete(jobs);
    cJSON_Delete(oracle("jobs", P("decode.json"), P("decode_out.json")));
    printf("%d real photos decoded by Pillow\n", g_nphotos);
}

/* ---------------------------------------------------------------------------------------- */
/* resize                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void test_resize_vs_pil(void **state) {
    (void)state;
    if (!g_have_oracle) return;
    decode_photos();
    ssd_rng r = ssd_rng_stream(11, SSD_RNG_DOMAIN_TEST, 0, 0, 1);
    /* (in w, in h, out w, out h); out 0 = 300 */
    static const int fixed[][4] = {
        {1, 1, 0, 0},     {1, 517, 0, 0},   {517, 1, 0, 0},   {300, 300, 0, 0}, {300, 517, 0, 0},
        {517, 300, 0, 0}, {299, 301, 0, 0}, {301, 299, 0, 0}, {600, 600, 0, 0}, {150, 150, 0, 0},
        {640, 480, 0, 0}, {1000, 50, 0, 0}, {37, 1200, 0, 0}, {2, 3, 0, 0},     {900, 900, 0, 0},
        {3000, 7, 0, 0},  {640, 480, 1, 1}, {640, 480, 640, 1}, {5, 5, 1000, 3}, {33, 71, 71, 33},
    };
    enum { NFIX = sizeof fixed / sizeof fixed[0], NRAND = 90 };
    int ncase = NFIX + NRAND + g_nphotos;
    int (*cs)[4] = ssd_xmalloc((size_t)ncase * sizeof *cs);
    cJSON *jobs = cJSON_CreateArray();
    ssd_image im = {0};
    for (int i = 0; i < ncase; i++) {
        int *c = cs[i];
        char in[64], out[64];
        snprintf(in, sizeof in, "rs_in%d.ppm", i);
        snprintf(out, sizeof out, "rs_out%d.ppm", i);
        if (i < NFIX) {
            memcpy(c, fixed[i], sizeof fixed[i]);
        } else if (i < NFIX + NRAND) {
            int k = i - NFIX;
            c[0] = 1 + (int)ssd_rng_below(&r, k % 3 == 0 ? 1300 : 700);
            c[1] = 1 + (int)ssd_rng_below(&r, k % 3 == 1 ? 1300 : 700);
            if (k % 5 == 0) c[0] = 300; /* one axis only */
            if (k % 7 == 0) c[1] = 300;
            c[2] = c[3] = 0;
            if (k % 4 == 3) { /* other output sizes */
                c[2] = 1 + (int)ssd_rng_below(&r, 600);
                c[3] = 1 + (int)ssd_rng_below(&r, 600);
            }
        }
        if (i < NFIX + NRAND) {
            gen_image(&im, c[0], c[1], i, &r);
            write_ppm(P(in), &im);
        } else {
            snprintf(in, sizeof in, "%s", g_photos[i - NFIX - NRAND]);
            read_ppm(P(in), &im);
            c[0] = im.w, c[1] = im.h, c[2] = c[3] = 0;
        }
        if (c[2] == 0) c[2] = c[3] = SSD_AUG_SIZE;
        cJSON *j = job(jobs, "resize", in, out);
        cJSON_AddNumberToObject(j, "w", c[2]);
        cJSON_AddNumberToObject(j, "h", c[3]);
    }
    write_json(P("resize.json"), jobs);
    cJSON_Delete(jobs);
    cJSON_Delete(oracle("jobs", P("resize.json"), P("resize_out.json")));

    ssd_augment_ws *ws = ssd_augment_ws_create();
    ssd_image want = {0}, got = {0}, tmp = {0};
    int bad = 0, simd = ssd_augment_simd_available();
    for (int i = 0; i < ncase; i++) {
        char in[64], out[64], what[160];
        if (i < NFIX + NRAND) snprintf(in, sizeof in, "rs_in%d.ppm", i);
        else snprintf(in, sizeof in, "%s", g_photos[i - NFIX - NRAND]);
        snprintf(out, sizeof out, "rs_out%d.ppm", i);
        read_ppm(P(in), &im);
        read_ppm(P(out), &want);
        snprintf(what, sizeof what, "resize %dx%d -> %dx%d (public)", im.w, im.h, cs[i][2], cs[i][3]);
        ssd_pil_resize_bilinear(&im, &got, cs[i][2], cs[i][3], &tmp);
        bad += !images_equal(&got, &want, what);
        for (int s = 0; s <= simd; s++) {
            ssd_augment_ws_set_simd(ws, s);
            snprintf(what, sizeof what, "resize %dx%d -> %dx%d (workspace, %s)", im.w, im.h,
                     cs[i][2], cs[i][3], s ? "AVX2" : "portable");
            ssd_pil_resize_bilinear_ws(ws, &im, &got, cs[i][2], cs[i][3]);
            bad += !images_equal(&got, &want, what);
        }
    }
    printf("resize: %d cases (%d real photos) x %d paths vs Pillow %s: %d mismatches\n", ncase,
           g_nphotos, 2 + simd, "BILINEAR", bad);
    assert_int_equal(bad, 0);
    ssd_augment_ws_destroy(ws);
    ssd_image_free(&im);
    ssd_image_free(&want);
    ssd_image_free(&got);
    ssd_image_free(&tmp);
    free(cs);
}


/* ---------------------------------------------------------------------------------------- */
/* colour, ToTensor, crop, flip, val                                                         */
/* ---------------------------------------------------------------------------------------- */

enum { OP_BRIGHT, OP_CONTRAST, OP_SAT, OP_HUE, OP_TENSOR, OP_CROP, OP_FLIP, OP_VAL, NOPS };
static const char *op_name[NOPS] = {"brightness", "contrast", "saturation", "hue",
                                    "to_tensor",  "crop",     "flip",       "val"};

typedef struct pcase {
    int op, l_round, img; /* img: index of the input image */
    float f;
    int box[4];
} pcase;

static void test_pixel_ops_vs_pil(void **state) {
    (void)state;
    if (!g_have_oracle) return;
    decode_photos();
    ssd_rng r = ssd_rng_stream(12, SSD_RNG_DOMAIN_TEST, 0, 0, 2);
    /* inputs: random 300x300 images of every kind, odd small sizes, and 300x300 photos */
    enum { NSYN = 12, MAXC = 1000 };
    int nimg = 0;
    char (*names)[64] = ssd_xmalloc((size_t)(NSYN + MAX_PHOTOS) * sizeof *names);
    ssd_image im = {0}, tmp = {0}, big = {0};
    static const int small[][2] = {{1, 1}, {7, 3}, {64, 33}, {2, 300}};
    for (int i = 0; i < NSYN; i++) {
        int w = SSD_AUG_SIZE, h = SSD_AUG_SIZE;
        if (i >= NSYN - 4) w = small[i - (NSYN - 4)][0], h = small[i - (NSYN - 4)][1];
        gen_image(&im, w, h, i, &r);
        snprintf(names[nimg], 64, "px_in%d.ppm", nimg);
        write_ppm(P(names[nimg++]), &im);
    }
    for (int i = 0; i < g_nphotos; i++) {
        read_ppm(P(g_photos[i]), &big);
        ssd_pil_resize_bilinear(&big, &im, SSD_AUG_SIZE, SSD_AUG_SIZE, &tmp);
        snprintf(names[nimg], 64, "px_in%d.ppm", nimg);
        write_ppm(P(names[nimg++]), &im);
    }
    /* cases: every op on every image with jitter-range factors, plus special factors */
    pcase *cs = ssd_xcalloc(MAXC, sizeof *cs);
    int nc = 0;
    static const float special[][4] = {
        /* brightness, contrast, saturation, hue */
        {0.0f, 0.0f, 0.0f, 0.0f},   {1.0f, 1.0f, 1.0f, -0.001f}, {2.0f, 3.0f, 2.5f, 0.5f},
        {0.5f, 0.25f, 0.3f, -0.5f}, {1.7f, 1.9f, 4.0f, -0.05f},  {0.875f, 1.5f, 0.5f, 0.05f},
        {1.125f, 0.5f, 1.5f, -1.0f / 255}, {0.999f, 1.001f, 1.0001f, 1.0f / 255},
    };
    for (int i = 0; i < nimg; i++) {
        for (int op = 0; op < NOPS; op++) {
            for (int rep = 0; rep < (op <= OP_HUE ? 4 : 1); rep++) {
                pcase *c = &cs[nc++];
                SSD_ASSERT(nc <= MAXC, "too many cases");
                c->op = op, c->img = i, c->l_round = rep & 1;
                int sp = (i + rep) % 8;
                switch (op) {
                case OP_BRIGHT: c->f = rep < 2 ? (float)ssd_rng_range(&r, 0.875, 1.125) : special[sp][0]; break;
                case OP_CONTRAST: c->f = rep < 2 ? (float)ssd_rng_range(&r, 0.5, 1.5) : special[sp][1]; break;
                case OP_SAT: c->f = rep < 2 ? (float)ssd_rng_range(&r, 0.5, 1.5) : special[sp][2]; break;
                case OP_HUE: c->f = rep < 2 ? (float)ssd_rng_range(&r, -0.05, 0.05) : special[sp][3]; break;
                case OP_CROP: {
                    read_ppm(P(names[i]), &im);
                    c->box[0] = (int)ssd_rng_below(&r, (uint32_t)im.w);
                    c->box[1] = (int)ssd_rng_below(&r, (uint32_t)im.h);
                    c->box[2] = c->box[0] + 1 + (int)ssd_rng_below(&r, (uint32_t)(im.w - c->box[0]));
                    c->box[3] = c->box[1] + 1 + (int)ssd_rng_below(&r, (uint32_t)(im.h - c->box[1]));
                    break;
                }
                default: break;
                }
            }
        }
    }
    cJSON *jobs = cJSON_CreateArray();
    for (int k = 0; k < nc; k++) {
        pcase *c = &cs[k];
        char out[64];
        snprintf(out, sizeof out, "px_out%d.%s", k, c->op == OP_TENSOR || c->op == OP_VAL ? "f32" : "ppm");
        cJSON *j = job(jobs, c->op == OP_VAL ? "resize" : op_name[c->op], names[c->img], out);
        if (c->op == OP_HUE) cJSON_AddNumberToObject(j, "h", (double)c->f);
        else cJSON_AddNumberToObject(j, "f", (double)c->f);
        cJSON_AddNumberToObject(j, "l_round", c->l_round);
        if (c->op == OP_CROP) cJSON_AddItemToObject(j, "box", cJSON_CreateIntArray(c->box, 4));
        if (c->op == OP_VAL) { /* resize to 300x300, then ToTensor + Normalize */
            char mid[64];
            snprintf(mid, sizeof mid, "px_mid%d.ppm", k);
            cJSON_ReplaceItemInObject(j, "out", cJSON_CreateString(mid));
            cJSON_AddNumberToObject(j, "w", SSD_AUG_SIZE);
            cJSON_AddNumberToObject(j, "h", SSD_AUG_SIZE);
            job(jobs, "to_tensor", mid, out);
        }
    }
    write_json(P("pixel.json"), jobs);
    cJSON_Delete(jobs);
    cJSON *res = oracle("jobs", P("pixel.json"), P("pixel_out.json"));
    const cJSON *ver = cJSON_GetObjectItem(res, "versions");
    printf("oracle: Pillow %s, torchvision %s, torch %s, numpy %s\n",
           cJSON_GetObjectItem(ver, "pillow")->valuestring,
           cJSON_GetObjectItem(ver, "torchvision")->valuestring,
           cJSON_GetObjectItem(ver, "torch")->valuestring,
           cJSON_GetObjectItem(ver, "numpy")->valuestring);
    cJSON_Delete(res);

    ssd_augment_ws *ws = ssd_augment_ws_create();
    int bad[NOPS] = {0}, count[NOPS] = {0};
    ssd_image want = {0}, got = {0};
    size_t nf = 3 * SSD_AUG_SIZE * SSD_AUG_SIZE;
    float *chw = ssd_xmalloc(nf * sizeof *chw);
    for (int k = 0; k < nc; k++) {
        pcase *c = &cs[k];
        char out[64], what[200];
        snprintf(out, sizeof out, "px_out%d.%s", k, c->op == OP_TENSOR || c->op == OP_VAL ? "f32" : "ppm");
        read_ppm(P(names[c->img]), &im);
        snprintf(what, sizeof what, "%s(%.9g, l_round %d) on %s (%dx%d)", op_name[c->op], (double)c->f,
                 c->l_round, names[c->img], im.w, im.h);
        count[c->op]++;
        if (c->op == OP_TENSOR || c->op == OP_VAL) {
            size_t n = c->op == OP_VAL ? nf : (size_t)im.w * im.h * 3;
            float *w = read_f32(P(out), n);
            float *mine = c->op == OP_VAL ? chw : ssd_xmalloc(n * sizeof *mine);
            if (c->op == OP_VAL) ssd_augment_val(ws, &im, mine);
            else ssd_image_to_chw_normalized(&im, mine);
            bad[c->op] += !floats_equal(mine, w, n, what);
            if (mine != chw) free(mine);
            free(w);
            continue;
        }
        read_ppm(P(out), &want);
        if (c->op <= OP_HUE) { /* the portable kernels too (the public call takes AVX2 if present) */
            ssd_image_copy(&got, &im);
            switch (c->op) {
            case OP_BRIGHT: ssd_pil_brightness_simd(&got, c->f, 0); break;
            case OP_CONTRAST: ssd_pil_contrast_simd(&got, c->f, c->l_round, 0); break;
            case OP_SAT: ssd_pil_saturation_simd(&got, c->f, c->l_round, 0); break;
            default: ssd_pil_hue_simd(&got, c->f, 0); break;
            }
            char w2[240];
            snprintf(w2, sizeof w2, "%s [portable]", what);
            bad[c->op] += !images_equal(&got, &want, w2);
        }
        switch (c->op) {
        case OP_BRIGHT: ssd_pil_brightness(&im, c->f); break;
        case OP_CONTRAST: ssd_pil_contrast(&im, c->f, c->l_round); break;
        case OP_SAT: ssd_pil_saturation(&im, c->f, c->l_round); break;
        case OP_HUE: ssd_pil_hue(&im, c->f); break;
        case OP_FLIP: ssd_pil_flip_lr(&im); break;
        case OP_CROP:
            ssd_pil_crop(&im, c->box[0], c->box[1], c->box[2], c->box[3], &got);
            ssd_image_copy(&im, &got);
            break;
        default: break;
        }
        bad[c->op] += !images_equal(&im, &want, what);
    }
    int total = 0;
    for (int op = 0; op < NOPS; op++) {
        printf("%-10s %3d cases, %d mismatches\n", op_name[op], count[op], bad[op]);
        total += bad[op];
    }
    assert_int_equal(total, 0);
    free(chw);
    free(cs);
    free(names);
    ssd_augment_ws_destroy(ws);
    ssd_image_free(&im);
    ssd_image_free(&tmp);
    ssd_image_free(&big);
    ssd_image_free(&want);
    ssd_image_free(&got);
}

/* Every byte value in every channel through ToTensor + Normalize. */
static void test_to_tensor_all_values(void **state) {
    (void)state;
    if (!g_have_oracle) return;
    ssd_image im = {0};
    ssd_image_reserve(&im, 256, 3);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 256; x++)
            for (int c = 0; c < 3; c++) im.px[(y * 256 + x) * 3 + c] = (uint8_t)((x + 85 * (y + c)) & 255);
    write_ppm(P("tt_in.ppm"), &im);
    cJSON *jobs = cJSON_CreateArray();
    job(jobs, "to_tensor", "tt_in.ppm", "tt_out.f32");
    write_json(P("tt.json"), jobs);
    cJSON_Delete(jobs);
    cJSON_Delete(oracle("jobs", P("tt.json"), P("tt_out.json")));
    size_t n = 256 * 3 * 3;
    float *want = read_f32(P("tt_out.f32"), n), *got = ssd_xmalloc(n * sizeof *got);
    ssd_image_to_chw_normalized(&im, got);
    assert_true(floats_equal(got, want, n, "ToTensor+Normalize, all 768 (channel, value) pairs"));
    free(want);
    free(got);
    ssd_image_free(&im);
}

int main(void) {
    const char *src = tu_env("SSD_SOURCE_DIR"), *py = tu_env("SSD_PYTHON_TORCH");
    snprintf(g_src, sizeof g_src, "%s", src ? src : ".");
    tu_scratch_dir(TEST, g_dir, sizeof g_dir);
    if (!src || !py) {
        tu_skip(TEST " (oracle tests)", "SSD_SOURCE_DIR / SSD_PYTHON_TORCH not set (run via ctest)");
    } else {
        snprintf(g_py, sizeof g_py, "%s", py);
        char probe[2200];
        snprintf(probe, sizeof probe,
                 "\"%s\" -c \"import torch, torchvision, numpy, PIL\" > /dev/null 2>&1", py);
        if (system(probe) != 0)
            tu_skip(TEST " (oracle tests)",
                    "SSD_PYTHON_TORCH cannot import torch, torchvision, numpy and PIL "
                    "(apt-get install python3-torchvision python3-pil)");
        else
            g_have_oracle = 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_vs_pil),
        cmocka_unit_test(test_pixel_ops_vs_pil),
        cmocka_unit_test(test_to_tensor_all_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
