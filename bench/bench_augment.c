/* bench_augment: single-thread throughput of the SSD training transform (data/augment.h) on a
 * 640x480 image: crop, flip, resize to 300x300, colour jitter, ToTensor + Normalize, as
 * images/s, plus the time of each stage on its own; and, with --python, the same transform in
 * PIL + torchvision (tools/bench_augment_pil.py, one process, one torch thread) on the same image
 * in the same run. JPEG decoding and box encoding are not included (other modules).
 *
 *   bench_augment [--images N] [--ppm FILE] [--no-simd] [--python PY] [--tools DIR] [--json]
 *
 * The image is a decoded photo given as a binary PPM (--ppm), else a synthetic 640x480 picture
 * (smooth colour fields plus noise). A benchmark never decides pass/fail: exit 0 when the run
 * completed, 2 on bad flags. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "core/mem.h"
#include "core/rng.h"
#include "core/timer.h"
#include "data/augment.h"
#include "data/augment_internal.h"
#include "sysload.h"

typedef struct opts {
    int images;
    const char *ppm, *python, *tools;
    int no_simd, json;
} opts;

static void usage(FILE *f) {
    fprintf(f, "usage: bench_augment [--images N] [--ppm FILE] [--no-simd] [--python PY] "
               "[--tools DIR] [--json]\n"
               "  --images N   training transforms to time (default 400)\n"
               "  --ppm FILE   input image (binary PPM); default: synthetic 640x480\n"
               "  --no-simd    portable C kernels only\n"
               "  --python PY  also time PIL + torchvision (tools/bench_augment_pil.py) with PY\n"
               "  --tools DIR  where bench_augment_pil.py is (default $SSD_SOURCE_DIR/tools, or\n"
               "               ../tools next to this executable)\n"
               "  --json       one JSON object on stdout\n");
}

static int load_ppm(const char *path, ssd_image *im) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int w = 0, h = 0, mx = 0;
    if (fscanf(f, "P6 %d %d %d", &w, &h, &mx) != 3 || w <= 0 || h <= 0 || mx != 255 ||
        fgetc(f) == EOF) {
        fclose(f);
        return -1;
    }
    ssd_image_reserve(im, w, h);
    size_t n = (size_t)w * h * 3;
    int ok = fread(im->px, 1, n, f) == n;
    fclose(f);
    return ok ? 0 : -1;
}

static void synth(ssd_image *im) {
    ssd_image_reserve(im, 640, 480);
    ssd_rng r = ssd_rng_stream(1, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    uint8_t *p = im->px;
    for (int y = 0; y < 480; y++)
        for (int x = 0; x < 640; x++, p += 3)
            for (int c = 0; c < 3; c++) {
                double v = 128 + 90 * sin(x * (0.011 + 0.004 * c)) * cos(y * (0.017 - 0.003 * c));
                v += ssd_rng_range(&r, -20, 20);
                p[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
}

/* A typical COCO annotation set (ltrb, normalised). */
static const float k_boxes[][4] = {
    {0.10f, 0.20f, 0.45f, 0.90f}, {0.50f, 0.15f, 0.95f, 0.85f}, {0.30f, 0.60f, 0.40f, 0.75f},
    {0.02f, 0.02f, 0.12f, 0.10f}, {0.62f, 0.40f, 0.70f, 0.52f}, {0.05f, 0.70f, 0.30f, 0.98f},
    {0.80f, 0.05f, 0.99f, 0.30f},
};
#define NBOX ((int)(sizeof k_boxes / sizeof k_boxes[0]))

static double time_op(int reps, void (*fn)(ssd_image *, float, int, int), const ssd_image *src,
                      ssd_image *work, float f, int l_round, int simd) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        ssd_image_copy(work, src);
        double t0 = ssd_now();
        fn(work, f, l_round, simd);
        double dt = ssd_now() - t0;
        if (dt < best) best = dt;
    }
    return best;
}
static void op_brightness(ssd_image *im, float f, int l, int simd) {
    (void)l, ssd_pil_brightness_simd(im, f, simd);
}
static void op_contrast(ssd_image *im, float f, int l, int simd) {
    ssd_pil_contrast_simd(im, f, l, simd);
}
static void op_saturation(ssd_image *im, float f, int l, int simd) {
    ssd_pil_saturation_simd(im, f, l, simd);
}
static void op_hue(ssd_image *im, float f, int l, int simd) { (void)l, ssd_pil_hue_simd(im, f, simd); }

static int find_script(const opts *o, char *out, size_t len) {
    char cand[3][PATH_MAX];
    int n = 0;
    if (o->tools) snprintf(cand[n++], PATH_MAX, "%s/bench_augment_pil.py", o->tools);
    const char *src = getenv("SSD_SOURCE_DIR");
    if (src && *src) snprintf(cand[n++], PATH_MAX, "%s/tools/bench_augment_pil.py", src);
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        if (snprintf(cand[n], PATH_MAX, "%s/../tools/bench_augment_pil.py", exe) < PATH_MAX) n++;
    }
    for (int i = 0; i < n; i++)
        if (access(cand[i], R_OK) == 0) {
            snprintf(out, len, "%s", cand[i]);
            return 0;
        }
    return -1;
}

int main(int argc, char **argv) {
    opts o = {.images = 400};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--images") && v) o.images = atoi(v), i++;
        else if (!strcmp(a, "--ppm") && v) o.ppm = v, i++;
        else if (!strcmp(a, "--python") && v) o.python = v, i++;
        else if (!strcmp(a, "--tools") && v) o.tools = v, i++;
        else if (!strcmp(a, "--no-simd")) o.no_simd = 1;
        else if (!strcmp(a, "--json")) o.json = 1;
        else if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (o.images < 1) {
        usage(stderr);
        return 2;
    }
    ssd_image img = {0};
    if (o.ppm) {
        if (load_ppm(o.ppm, &img) != 0) {
            fprintf(stderr, "bench_augment: %s: not a readable binary PPM (P6, maxval 255)\n", o.ppm);
            return 2;
        }
    } else {
        synth(&img);
    }

    ssd_augment_ws *ws = ssd_augment_ws_create();
    ssd_augment_ws_set_simd(ws, !o.no_simd);
    int simd = !o.no_simd && ssd_augment_simd_available();
    ssd_augment_cfg cfg;
    ssd_augment_cfg_default(&cfg);
    float *chw = ssd_xmalloc(3 * SSD_AUG_SIZE * SSD_AUG_SIZE * sizeof *chw);
    float boxes[NBOX][4];
    int32_t labels[NBOX];

    /* whole training transform */
    int warm = o.images / 10 + 1;
    double t0 = 0;
    load_mark m0 = load_mark_now();
    long kept = 0, pixels = 0;
    for (int i = -warm; i < o.images; i++) {
        if (i == 0) t0 = ssd_now();
        ssd_rng r = ssd_rng_stream(7, SSD_RNG_DOMAIN_AUGMENT, 0, 0, (uint64_t)(i + warm));
        memcpy(boxes, k_boxes, sizeof boxes);
        for (int b = 0; b < NBOX; b++) labels[b] = b + 1;
        int n = NBOX, oh, ow;
        ssd_augment_train(&cfg, &r, ws, &img, &boxes[0][0], labels, &n, chw, &oh, &ow, NULL);
        if (i >= 0) kept += n, pixels += (long)oh * ow;
    }
    double train_s = (ssd_now() - t0) / o.images;
    load_mark m1 = load_mark_now();

    /* validation transform */
    int nval = o.images / 2 + 1;
    t0 = ssd_now();
    for (int i = 0; i < nval; i++) ssd_augment_val(ws, &img, chw);
    double val_s = (ssd_now() - t0) / nval;

    /* stages on their own (best of reps) */
    int reps = 30;
    ssd_image small = {0}, work = {0}, tmp = {0};
    ssd_pil_resize_bilinear_ws(ws, &img, &small, SSD_AUG_SIZE, SSD_AUG_SIZE);
    double resize_s = 1e30, chw_s = 1e30;
    for (int r = 0; r < reps; r++) {
        double a = ssd_now();
        ssd_pil_resize_bilinear_ws(ws, &img, &work, SSD_AUG_SIZE, SSD_AUG_SIZE);
        double b = ssd_now();
        ssd_image_to_chw_normalized(&small, chw);
        double c = ssd_now();
        if (b - a < resize_s) resize_s = b - a;
        if (c - b < chw_s) chw_s = c - b;
    }
    double st[4];
    st[0] = time_op(reps, op_brightness, &small, &work, 1.1f, 0, simd);
    st[1] = time_op(reps, op_contrast, &small, &work, 1.3f, 0, simd);
    st[2] = time_op(reps, op_saturation, &small, &work, 1.3f, 0, simd);
    st[3] = time_op(reps, op_hue, &small, &work, 0.03f, 0, simd);
    double other = load_other(m0, m1);

    /* PIL + torchvision */
    double py_train = -1, py_val = -1;
    char pyver[256] = "";
    if (o.python) {
        char script[PATH_MAX], ppm[PATH_MAX], cmd[3 * PATH_MAX];
        if (find_script(&o, script, sizeof script) != 0) {
            fprintf(stderr, "bench_augment: tools/bench_augment_pil.py not found (--tools DIR)\n");
        } else {
            snprintf(ppm, sizeof ppm, "/tmp/bench_augment_%d.ppm", (int)getpid());
            FILE *f = fopen(ppm, "wb");
            if (f) {
                fprintf(f, "P6\n%d %d\n255\n", img.w, img.h);
                fwrite(img.px, 1, (size_t)img.w * img.h * 3, f);
                fclose(f);
            }
            cJSON *jb = cJSON_CreateFloatArray(&k_boxes[0][0], NBOX * 4);
            char *bj = cJSON_PrintUnformatted(jb);
            snprintf(cmd, sizeof cmd, "\"%s\" \"%s\" --ppm \"%s\" --images %d --boxes '%s'",
                     o.python, script, ppm, o.images / 2 + 1, bj);
            free(bj);
            cJSON_Delete(jb);
            FILE *p = popen(cmd, "r");
            char buf[4096] = "";
            size_t got = p ? fread(buf, 1, sizeof buf - 1, p) : 0;
            buf[got] = 0;
            if (p) pclose(p);
            unlink(ppm);
            cJSON *res = cJSON_Parse(buf);
            if (res) {
                py_train = cJSON_GetObjectItem(res, "train_s")->valuedouble;
                py_val = cJSON_GetObjectItem(res, "val_s")->valuedouble;
                snprintf(pyver, sizeof pyver, "%s", cJSON_GetObjectItem(res, "versions")->valuestring);
                cJSON_Delete(res);
            } else {
                fprintf(stderr, "bench_augment: the python side failed:\n%s\n", buf);
            }
        }
    }

    if (o.json) {
        printf("{\"image\":[%d,%d],\"images\":%d,\"simd\":%d,\"train_images_per_s\":%.1f,"
               "\"val_images_per_s\":%.1f,\"stage_ms\":{\"resize_640x480\":%.4f,"
               "\"brightness\":%.4f,\"contrast\":%.4f,\"saturation\":%.4f,\"hue\":%.4f,"
               "\"to_tensor_normalize\":%.4f},\"mean_crop_pixels\":%.0f,\"mean_boxes_kept\":%.2f,"
               "\"other_load_cpus\":%.2f",
               img.w, img.h, o.images, simd, 1 / train_s, 1 / val_s, resize_s * 1e3, st[0] * 1e3,
               st[1] * 1e3, st[2] * 1e3, st[3] * 1e3, chw_s * 1e3, (double)pixels / o.images,
               (double)kept / o.images, other);
        if (py_train > 0)
            printf(",\"pil_torchvision\":{\"train_images_per_s\":%.1f,\"val_images_per_s\":%.1f,"
                   "\"versions\":\"%s\"},\"speedup_train\":%.2f",
                   1 / py_train, 1 / py_val, pyver, py_train / train_s);
        printf("}\n");
    } else {
        printf("bench_augment: %dx%d image, %d transforms, one thread, %s kernels\n", img.w, img.h,
               o.images, simd ? "AVX2" : "portable C");
        printf("  train transform  %8.1f images/s  (%.3f ms)\n", 1 / train_s, train_s * 1e3);
        printf("  val transform    %8.1f images/s  (%.3f ms)\n", 1 / val_s, val_s * 1e3);
        printf("  stages (best of %d, ms): resize 640x480->300x300 %.3f, brightness %.3f, "
               "contrast %.3f, saturation %.3f, hue %.3f, ToTensor+Normalize %.3f\n",
               reps, resize_s * 1e3, st[0] * 1e3, st[1] * 1e3, st[2] * 1e3, st[3] * 1e3,
               chw_s * 1e3);
        if (py_train > 0)
            printf("  PIL+torchvision  %8.1f images/s train, %.1f images/s val (%s): ours is "
                   "%.1fx / %.1fx\n",
                   1 / py_train, 1 / py_val, pyver, py_train / train_s, py_val / val_s);
        if (other >= 0)
            printf("  other processes used %.2f CPUs on average during the C run%s\n", other,
                   other > 0.15 ? " (numbers are disturbed)" : "");
    }
    ssd_image_free(&img);
    ssd_image_free(&small);
    ssd_image_free(&work);
    ssd_image_free(&tmp);
    free(chw);
    ssd_augment_ws_destroy(ws);
    return 0;
}
