/* Shared by tests/data/test_augment_*.c (header-only: each test executable is one source file).
 * Scratch files, the Pillow/torch oracle (tools/pil_augment_oracle.py), image and box
 * generators, and the real photos (committed fixtures; ../shared/data/coco_tiny when present)
 * with their COCO boxes. Call atu_init(name) first in main(). */
#ifndef SSD_TESTS_DATA_AUGMENT_TU_H
#define SSD_TESTS_DATA_AUGMENT_TU_H

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

static const char *g_test = "test_augment";
static char g_py[1024], g_src[1024], g_dir[1024];
static int g_have_oracle;

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static inline void write_ppm(const char *path, const ssd_image *im) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    fprintf(f, "P6\n%d %d\n255\n", im->w, im->h);
    fwrite(im->px, 1, (size_t)im->w * im->h * 3, f);
    fclose(f);
}

static inline int ppm_int(FILE *f) {
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

static inline void read_ppm(const char *path, ssd_image *im) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s", path);
    char magic[2];
    if (fread(magic, 1, 2, f) != 2 || magic[0] != 'P' || magic[1] != '6')
        fail_msg("%s: not P6", path);
    int w = ppm_int(f), h = ppm_int(f), mx = ppm_int(f);
    if (w <= 0 || h <= 0 || mx != 255) fail_msg("%s: bad header", path);
    ssd_image_reserve(im, w, h);
    if (fread(im->px, 1, (size_t)w * h * 3, f) != (size_t)w * h * 3) fail_msg("%s: short", path);
    fclose(f);
}

static inline float *read_f32(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s", path);
    float *v = ssd_xmalloc(n * sizeof *v);
    size_t got = fread(v, sizeof *v, n, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != n || extra != EOF) fail_msg("%s: %zu floats, expected %zu", path, got, n);
    return v;
}

static inline const char *P(const char *name) { /* path in the scratch folder (rotating buffers) */
    static char buf[8][1400];
    static int k;
    k = (k + 1) % 8;
    if (snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name) >= (int)sizeof buf[k])
        fail_msg("path too long: %s/%s", g_dir, name);
    return buf[k];
}

/* Random test images of a few kinds: noise, smooth gradients, flat blocks (gray pixels, equal
 * channels, saturated colours), extremes. */
static inline void gen_image(ssd_image *im, int w, int h, int kind, ssd_rng *r) {
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
                for (int c = 0; c < 3; c++)
                    p[c] = ssd_rng_below(r, 2) ? 255 : (uint8_t)ssd_rng_below(r, 3);
                break;
            }
        }
}

static inline int images_equal(const ssd_image *a, const ssd_image *b, const char *what) {
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
            printf("%s: first difference at (x %zu, y %zu, c %zu): %d vs %d; %d bytes differ\n",
                   what, px % (size_t)a->w, px / (size_t)a->w, i % 3, a->px[i], b->px[i], diff);
            return 0;
        }
    return 1;
}

static inline int floats_equal(const float *a, const float *b, size_t n, const char *what) {
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
static inline cJSON *oracle(const char *cmd, const char *in_json, const char *out_json) {
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

/* A number for the oracle, exactly (17 significant digits; see doubles_json). */
static inline void add_num(cJSON *o, const char *name, double v) {
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", v);
    cJSON_AddItemToObject(o, name, cJSON_CreateRaw(buf));
}

static inline void write_json(const char *path, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot write %s", path);
    fputs(s, f);
    fclose(f);
    free(s);
}

static inline cJSON *job(cJSON *list, const char *op, const char *in, const char *out) {
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

/* Each photo comes with its COCO boxes (spec 6.1 normalisation) in photo<i>_boxes.json. */
static inline void decode_photos(void) {
    if (g_nphotos) return;
    cJSON *jobs = cJSON_CreateArray();
    char path[1400];
    snprintf(path, sizeof path, "%s/tests/fixtures/augment/boxes.json", g_src);
    cJSON *fix_boxes = tu_read_json(path);
    for (int i = 0; i < NFIXTURES; i++) {
        snprintf(path, sizeof path, "%s/tests/fixtures/augment/%s", g_src, fixtures[i]);
        snprintf(g_photos[g_nphotos], 64, "photo%d.ppm", g_nphotos);
        job(jobs, "decode", path, g_photos[g_nphotos]);
        char bname[64];
        snprintf(bname, sizeof bname, "photo%d_boxes.json", g_nphotos);
        cJSON *entry = cJSON_GetObjectItem(fix_boxes, fixtures[i]);
        if (!entry) fail_msg("%s: no entry for %s", path, fixtures[i]);
        write_json(P(bname), entry);
        g_nphotos++;
    }
    cJSON_Delete(fix_boxes);
    char tiny[1400];
    snprintf(tiny, sizeof tiny, "%s/../shared/data/coco_tiny/val2017", g_src);
    if (access(tiny, R_OK) != 0) {
        char why_[200];
        snprintf(why_, sizeof why_, "%s (coco_tiny photos)", g_test);
        tu_skip(why_, "../shared/data/coco_tiny is absent: real-photo cases use the 3 committed "
                      "fixtures only");
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
            cJSON *j = job(jobs, "coco", in, g_photos[g_nphotos]);
            char ann[1600], bname[64];
            snprintf(ann, sizeof ann, "%s/../annotations/instances_val2017.json", tiny);
            snprintf(bname, sizeof bname, "photo%d_boxes.json", g_nphotos);
            cJSON_AddStringToObject(j, "ann", ann);
            cJSON_AddStringToObject(j, "file", name);
            cJSON_AddStringToObject(j, "boxes_out", bname);
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
/* boxes                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static inline float clamp01(double v) { return (float)(v < 0 ? 0 : v > 1 ? 1 : v); }

/* n random ltrb boxes (l <= r, t <= b, inside [0, 1]) of many kinds: degenerate (zero width,
 * zero height, points), the whole image, tiny, pixel-aligned, touching the edges, crowded
 * clusters, ordinary. */
static inline void gen_boxes(ssd_rng *r, int n, int W, int H, float *b, int32_t *lab) {
    double cx0 = ssd_rng_range(r, 0.2, 0.8), cy0 = ssd_rng_range(r, 0.2, 0.8);
    for (int i = 0; i < n; i++) {
        float *o = b + 4 * i;
        int u = (int)ssd_rng_below(r, 100);
        double l, t, rr, bb;
        if (u < 8) { /* degenerate */
            l = ssd_rng_uniform_f64(r), t = ssd_rng_uniform_f64(r);
            int k = (int)ssd_rng_below(r, 3);
            rr = k == 1 ? l : l + ssd_rng_range(r, 0, 0.4);
            bb = k == 2 ? t : t + ssd_rng_range(r, 0, 0.4);
            if (k == 0) rr = l, bb = t; /* a point */
        } else if (u < 12) {
            l = t = 0, rr = bb = 1;
        } else if (u < 20) { /* tiny */
            l = ssd_rng_range(r, 0, 0.99), t = ssd_rng_range(r, 0, 0.99);
            rr = l + ssd_rng_range(r, 1e-6, 3e-3), bb = t + ssd_rng_range(r, 1e-6, 3e-3);
        } else if (u < 32) { /* pixel-aligned, as COCO integer boxes are */
            int x0 = (int)ssd_rng_below(r, (uint32_t)W), y0 = (int)ssd_rng_below(r, (uint32_t)H);
            int x1 = x0 + (int)ssd_rng_below(r, (uint32_t)(W - x0 + 1));
            int y1 = y0 + (int)ssd_rng_below(r, (uint32_t)(H - y0 + 1));
            l = (double)x0 / W, t = (double)y0 / H, rr = (double)x1 / W, bb = (double)y1 / H;
        } else if (u < 40) { /* touching the edges */
            l = ssd_rng_below(r, 2) ? 0 : ssd_rng_range(r, 0, 0.5);
            t = ssd_rng_below(r, 2) ? 0 : ssd_rng_range(r, 0, 0.5);
            rr = ssd_rng_below(r, 2) ? 1 : ssd_rng_range(r, l, 1);
            bb = ssd_rng_below(r, 2) ? 1 : ssd_rng_range(r, t, 1);
        } else if (u < 70) { /* a crowd around one point */
            double w = ssd_rng_range(r, 0.01, 0.25), h = ssd_rng_range(r, 0.01, 0.25);
            double cx = cx0 + ssd_rng_range(r, -0.1, 0.1), cy = cy0 + ssd_rng_range(r, -0.1, 0.1);
            l = cx - w / 2, rr = cx + w / 2, t = cy - h / 2, bb = cy + h / 2;
        } else {
            double w = ssd_rng_range(r, 0.02, 0.95), h = ssd_rng_range(r, 0.02, 0.95);
            l = ssd_rng_range(r, 0, 1 - w), t = ssd_rng_range(r, 0, 1 - h), rr = l + w, bb = t + h;
        }
        o[0] = clamp01(l), o[1] = clamp01(t), o[2] = clamp01(rr), o[3] = clamp01(bb);
        if (o[2] < o[0]) o[2] = o[0];
        if (o[3] < o[1]) o[3] = o[1];
        lab[i] = 1 + (int32_t)ssd_rng_below(r, 80);
    }
}

static inline int random_box_count(ssd_rng *r) {
    int u = (int)ssd_rng_below(r, 10);
    if (u < 3) return 1;
    if (u < 6) return 2 + (int)ssd_rng_below(r, 4);
    if (u < 9) return 6 + (int)ssd_rng_below(r, 25);
    return 31 + (int)ssd_rng_below(r, 90); /* crowded */
}

/* cJSON prints a double with 15 digits when that reads back within an epsilon, which loses
 * the last bits: numbers for the oracle are written with 17 significant digits instead. */
static inline cJSON *doubles_json(const double *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        char buf[40];
        snprintf(buf, sizeof buf, "%.17g", v[i]);
        cJSON_AddItemToArray(a, cJSON_CreateRaw(buf));
    }
    return a;
}

static inline cJSON *floats_json(const float *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        char buf[40];
        snprintf(buf, sizeof buf, "%.9g", (double)v[i]); /* 9 digits identify a float32 */
        cJSON_AddItemToArray(a, cJSON_CreateRaw(buf));
    }
    return a;
}

static inline cJSON *tape_json(const ssd_aug_tape *t) { return doubles_json(t->v, t->n); }


/* Compares a float list from the oracle (doubles holding float32 values) with ours. */
static inline int json_floats_equal(const cJSON *arr, const float *v, int n) {
    if (cJSON_GetArraySize(arr) != n) return 0;
    for (int i = 0; i < n; i++)
        if ((float)cJSON_GetArrayItem(arr, i)->valuedouble != v[i]) return 0;
    return 1;
}

static inline int json_ints_equal(const cJSON *arr, const int32_t *v, int n) {
    if (cJSON_GetArraySize(arr) != n) return 0;
    for (int i = 0; i < n; i++)
        if (cJSON_GetArrayItem(arr, i)->valueint != v[i]) return 0;
    return 1;
}

static inline void read_photo_boxes(int i, float **b, int32_t **lab, int *n) {
    char name[64];
    snprintf(name, sizeof name, "photo%d_boxes.json", i);
    cJSON *j = tu_read_json(P(name));
    const cJSON *bx = cJSON_GetObjectItem(j, "boxes"), *lb = cJSON_GetObjectItem(j, "labels");
    *n = cJSON_GetArraySize(lb);
    assert_int_equal(cJSON_GetArraySize(bx), 4 * *n);
    *b = ssd_xmalloc(sizeof(float) * 4 * (size_t)(*n + 1));
    *lab = ssd_xmalloc(sizeof(int32_t) * (size_t)(*n + 1));
    for (int k = 0; k < 4 * *n; k++) (*b)[k] = (float)cJSON_GetArrayItem(bx, k)->valuedouble;
    for (int k = 0; k < *n; k++) (*lab)[k] = cJSON_GetArrayItem(lb, k)->valueint;
    cJSON_Delete(j);
}


/* Sets the scratch folder and finds the oracle (g_have_oracle = 0 after printing SKIPPED). */
static inline void atu_init(const char *test) {
    g_test = test;
    const char *src = tu_env("SSD_SOURCE_DIR"), *py = tu_env("SSD_PYTHON_TORCH");
    snprintf(g_src, sizeof g_src, "%s", src ? src : ".");
    tu_scratch_dir(test, g_dir, sizeof g_dir);
    char what[200];
    snprintf(what, sizeof what, "%s (oracle tests)", test);
    if (!src || !py) {
        tu_skip(what, "SSD_SOURCE_DIR / SSD_PYTHON_TORCH not set (run via ctest)");
        return;
    }
    snprintf(g_py, sizeof g_py, "%s", py);
    char probe[2200];
    snprintf(probe, sizeof probe,
             "\"%s\" -c \"import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) "
             "for m in ('torch', 'torchvision', 'numpy', 'PIL')) else 1)\" > /dev/null 2>&1",
             py);
    if (system(probe) != 0)
        tu_skip(what, "SSD_PYTHON_TORCH cannot import torch, torchvision, numpy and PIL "
                      "(apt-get install python3-torchvision python3-pil)");
    else
        g_have_oracle = 1;
}

#endif
