#include "testutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "box/box_coder.h"
#include "core/log.h"
#include "core/mem.h"
#include "io/file.h"

double tu_nmse(const ssd_tensor *a, const ssd_tensor *ref) {
    int64_t n = ssd_tensor_numel(ref);
    SSD_ASSERT(ssd_tensor_numel(a) == n, "nmse: numel differs");
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double x = ssd_tensor_get(a, i), y = ssd_tensor_get(ref, i);
        num += (x - y) * (x - y);
        den += y * y;
    }
    if (isnan(num)) return INFINITY;
    return den > 0 ? num / den : num;
}

double tu_max_abs_diff(const ssd_tensor *a, const ssd_tensor *b) {
    int64_t n = ssd_tensor_numel(b);
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(ssd_tensor_get(a, i) - ssd_tensor_get(b, i));
        if (isnan(d)) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

void tu_fill_uniform(ssd_tensor *t, ssd_rng *r, double lo, double hi) {
    int64_t n = ssd_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) ssd_tensor_set(t, i, ssd_rng_range(r, lo, hi));
}

ssd_tensor tu_to_backend(ssd_backend *be, const ssd_tensor *host, ssd_dtype dt) {
    ssd_tensor conv = ssd_tensor_alloc_host(dt, host->ndim, host->shape, host->name);
    int64_t n = ssd_tensor_numel(host);
    for (int64_t i = 0; i < n; i++) ssd_tensor_set(&conv, i, ssd_tensor_get(host, i));
    ssd_tensor t = ssd_backend_tensor_alloc(be, dt, host->ndim, host->shape, host->name);
    ssd_backend_upload(be, &t, &conv);
    ssd_tensor_free(&conv);
    return t;
}

ssd_tensor tu_to_backend_layout(ssd_backend *be, const ssd_tensor *host, ssd_dtype dt,
                                ssd_layout layout) {
    if (layout == SSD_LAYOUT_ROWMAJOR) return tu_to_backend(be, host, dt);
    SSD_ASSERT(host->ndim == 4, "tu_to_backend_layout: '%s' is not 4-d", host->name);
    const int64_t N = host->shape[0], C = host->shape[1], H = host->shape[2], W = host->shape[3];
    ssd_tensor conv = ssd_tensor_alloc_host(dt, 4, host->shape, host->name);
    conv.layout = layout;
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++)
                    ssd_tensor_set(&conv, ssd_layout_offset(layout, host->shape, n, c, h, w),
                                   ssd_tensor_get(host, ((n * C + c) * H + h) * W + w));
    ssd_tensor t = ssd_backend_tensor_alloc(be, dt, 4, host->shape, host->name);
    t.layout = layout;
    ssd_backend_upload(be, &t, &conv);
    ssd_tensor_free(&conv);
    return t;
}

ssd_tensor tu_to_backend_nhwc(ssd_backend *be, const ssd_tensor *host, ssd_dtype dt) {
    return tu_to_backend_layout(be, host, dt, SSD_LAYOUT_NHWC);
}

ssd_layout tu_act_layout(const ssd_backend *be, const ssd_tensor *like, ssd_dtype dt) {
    if (!be->act_custom || dt != be->act_dtype ||
        !ssd_layout_holds(be->act_layout, like->ndim, like->shape))
        return SSD_LAYOUT_ROWMAJOR;
    return be->act_layout;
}

ssd_tensor tu_to_backend_act(ssd_backend *be, const ssd_tensor *host, ssd_dtype dt) {
    return tu_to_backend_layout(be, host, dt, tu_act_layout(be, host, dt));
}

ssd_tensor tu_zeros_layout(ssd_backend *be, const ssd_tensor *like, ssd_dtype dt,
                           ssd_layout layout) {
    ssd_tensor t = ssd_backend_tensor_alloc(be, dt, like->ndim, like->shape, like->name);
    t.layout = layout;
    ssd_fill(be, &t, 0.0);
    return t;
}

ssd_tensor tu_zeros_act(ssd_backend *be, const ssd_tensor *like, ssd_dtype dt) {
    return tu_zeros_layout(be, like, dt, tu_act_layout(be, like, dt));
}

ssd_tensor tu_to_host(ssd_backend *be, const ssd_tensor *t, ssd_dtype dt) {
    return ssd_backend_download_as(be, t, dt);
}

ssd_tensor tu_zeros_like(ssd_backend *be, const ssd_tensor *like, ssd_dtype dt) {
    ssd_tensor t = ssd_backend_tensor_alloc(be, dt, like->ndim, like->shape, like->name);
    ssd_fill(be, &t, 0.0);
    return t;
}

const char *tu_env(const char *name) {
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

void tu_skip(const char *test, const char *reason) {
    printf("SKIPPED %s: %s\n", test, reason);
    fflush(stdout);
}

bool tu_backend_starts(const char *name, char *why, size_t len) {
    ssd_backend *be = NULL;
    ssd_error err;
    if (ssd_backend_create(name, &be, &err) != SSD_OK) {
        snprintf(why, len, "%s", err.msg);
        return false;
    }
    ssd_backend_destroy(be);
    return true;
}

int tu_torch_oracle(const char *test, char *cmd_prefix, size_t len) {
    const char *src = tu_env("SSD_SOURCE_DIR"), *py = tu_env("SSD_PYTHON_TORCH");
    if (!src) {
        tu_skip(test, "SSD_SOURCE_DIR is not set (run through ctest)");
        return 1;
    }
    if (!py) {
        tu_skip(test, "SSD_PYTHON_TORCH is not set (cmake -DSSD_PYTHON_TORCH=...)");
        return 1;
    }
    char why[1400], cmd[2400];
    if (access(py, X_OK) != 0) {
        snprintf(why, sizeof why, "python '%s' not found or not executable", py);
        tu_skip(test, why);
        return 1;
    }
    snprintf(cmd, sizeof cmd, "\"%s\" -c \"import torch, numpy\" >/dev/null 2>&1", py);
    if (system(cmd) != 0) {
        snprintf(why, sizeof why, "'%s' cannot import torch (apt-get install python3-torch)", py);
        tu_skip(test, why);
        return 1;
    }
    int n = snprintf(cmd_prefix, len, "\"%s\" \"%s/tools/torchref/run.py\"", py, src);
    return (n > 0 && (size_t)n < len) ? 0 : -1;
}

int tu_system(const char *cmd) {
    printf("+ %s\n", cmd);
    fflush(stdout);
    int rc = system(cmd);
    if (rc != 0) printf("command failed (status %d): %s\n", rc, cmd);
    return rc == 0 ? 0 : -1;
}

int tu_source_dir(char *buf, size_t len) {
    const char *src = tu_env("SSD_SOURCE_DIR");
    if (!src) {
        printf("SSD_SOURCE_DIR is not set (run the test through ctest)\n");
        return -1;
    }
    int n = snprintf(buf, len, "%s", src);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

const char *tu_scratch_dir(const char *test, char *buf, size_t len) {
    const char *build = tu_env("SSD_BUILD_DIR");
    snprintf(buf, len, "%s/test_scratch/%s", build ? build : "/tmp", test);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p \"%s\"", buf);
    SSD_ASSERT(system(cmd) == 0, "cannot create %s", buf);
    return buf;
}

void tu_naive_encode(const ssd_anchors *an, int B, const float (*gt)[4], const int *lab, float *gbox,
                         int64_t *label) {
    float *best_iou = ssd_xmalloc(SSD_NUM_ANCHORS * sizeof(float));
    int *best_gt = ssd_xmalloc(SSD_NUM_ANCHORS * sizeof(int));
    for (int a = 0; a < SSD_NUM_ANCHORS; a++) {
        best_iou[a] = -1.0f;
        best_gt[a] = 0;
        for (int g = 0; g < B; g++) {
            float v = ssd_iou_ltrb(gt[g], an->ltrb[a]);
            if (v > best_iou[a]) best_iou[a] = v, best_gt[a] = g;
        }
    }
    for (int g = 0; g < B; g++) {
        int ba = 0;
        float bv = -1.0f;
        for (int a = 0; a < SSD_NUM_ANCHORS; a++) {
            float v = ssd_iou_ltrb(gt[g], an->ltrb[a]);
            if (v > bv) bv = v, ba = a;
        }
        best_iou[ba] = 2.0f;
        best_gt[ba] = g; /* g ascending: the last GT wins a shared anchor */
    }
    for (int a = 0; a < SSD_NUM_ANCHORS; a++) {
        int pos = best_iou[a] > 0.5f;
        label[a] = pos ? lab[best_gt[a]] : 0;
        ssd_ltrb_to_xywh(pos ? gt[best_gt[a]] : an->ltrb[a], gbox + 4 * (size_t)a);
    }
    free(best_iou);
    free(best_gt);
}

int tu_run_capture(const char *cmdline, const char *log, char *out, size_t len) {
    size_t n = strlen(cmdline) + strlen(log) + 16;
    char *cmd = malloc(n);
    snprintf(cmd, n, "%s > \"%s\" 2>&1", cmdline, log);
    int rc = system(cmd);
    free(cmd);
    FILE *f = fopen(log, "rb");
    size_t got = f ? fread(out, 1, len - 1, f) : 0;
    if (f) fclose(f);
    out[got] = 0;
    int status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    printf("$ %s\n-> %d\n%s", cmdline, status, out);
    return status;
}

cJSON *tu_read_json(const char *path) {
    char *text;
    size_t len;
    ssd_error err;
    if (ssd_read_file(path, &text, &len, &err) != SSD_OK) fail_msg("%s", err.msg);
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j) fail_msg("%s: malformed JSON", path);
    return j;
}

/* The checker's python (.venv-oracle) into py; 0 when it has mlperf_logging, 1 after a SKIPPED
 * line when not. */
static int has_checker(const char *py) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "\"%s\" -c 'import mlperf_logging.compliance_checker' >/dev/null 2>&1", py);
    return system(cmd) == 0;
}

/* The checker's python into py: $SSD_PYTHON_COCO, else <source>/.venv-oracle/bin/python (a build
 * configured before the venv existed caches plain python3). 0 when it has mlperf_logging, 1
 * after a SKIPPED line when neither has it. */
int tu_checker_python(const char *test, char *py, size_t len) {
    const char *env = tu_env("SSD_PYTHON_COCO");
    if (env && *env) {
        snprintf(py, len, "%s", env);
        if (has_checker(py)) return 0;
    }
    char src[1024];
    if (tu_source_dir(src, sizeof src) == 0) {
        snprintf(py, len, "%s/.venv-oracle/bin/python", src);
        if (has_checker(py)) return 0;
    }
    char why[1400];
    snprintf(why, sizeof why,
             "neither SSD_PYTHON_COCO (%s) nor .venv-oracle can import mlperf_logging "
             "(tools/install_pydeps.sh installs it)",
             env ? env : "unset");
    tu_skip(test, why);
    return 1;
}

/* Runs the checker; returns its exit status, output in out. */
int tu_run_checker(const char *py, const char *ruleset, const char *flags, const char *log,
                       char *out, size_t len) {
    char cmd[4096], clog[1200], cap[1200];
    snprintf(clog, sizeof clog, "%s.checker.log", log);
    snprintf(cap, sizeof cap, "%s.checker.out", log);
    snprintf(cmd, sizeof cmd,
             "\"%s\" -m mlperf_logging.compliance_checker --usage training --ruleset %s %s "
             "--log_output \"%s\" \"%s\"",
             py, ruleset, flags, clog, log);
    return tu_run_capture(cmd, cap, out, len);
}

const char *tu_fmt(const char *fmt, ...) {
    static char buf[8][1400];
    static int k;
    k = (k + 1) % 8;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf[k], sizeof buf[k], fmt, ap);
    va_end(ap);
    return buf[k];
}

int tu_curve_losses(const char *out_dir, double *loss, int max) {
    FILE *f = fopen(tu_fmt("%s/curves.jsonl", out_dir), "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        if (!strstr(line, "\"type\": \"step\"") && !strstr(line, "\"type\":\"step\"")) continue;
        const char *p = strstr(line, "\"loss\":");
        assert_non_null(p);
        loss[n++] = strtod(p + 7, NULL);
    }
    fclose(f);
    return n;
}

double tu_max_rel(const double *a, const double *b, int n) {
    double w = 0.0;
    for (int i = 0; i < n; i++) {
        double r = fabs(a[i] - b[i]) / fabs(b[i]);
        if (!(r <= w)) w = r; /* NaN wins */
    }
    return w;
}

void tu_track_run(const char *ssd, const char *dir, const char *backend, const char *flags,
                  const char *name, double *loss, char *log, size_t len) {
    char data[1400], out[1400], cmd[6000];
    snprintf(data, sizeof data, "%s/synth", dir);
    snprintf(out, sizeof out, "%s/run-%s", dir, name);
    if (access(tu_fmt("%s/annotations", data), F_OK) != 0) {
        snprintf(cmd, sizeof cmd, "\"%s\" synth --out '%s' --images 16 --val-images 4 --seed 5",
                 ssd, data);
        if (tu_run_capture(cmd, tu_fmt("%s/cmd.log", dir), log, len) != 0)
            fail_msg("%s failed:\n%s", cmd, log);
    }
    snprintf(cmd, sizeof cmd,
             "\"%s\" train --backend %s --data '%s' --output '%s' -b 4 --epochs 10 "
             "--end-iteration %d --val-interval 0 --seed 7 --num-workers 1 --warmup 4 "
             "--log-interval 1 --no-progress-line --no-save --cache-dir '' %s",
             ssd, backend, data, out, TU_TRACK_STEPS, flags);
    if (tu_run_capture(cmd, tu_fmt("%s/cmd.log", dir), log, len) != 0)
        fail_msg("%s failed:\n%s", cmd, log);
    double got[TU_TRACK_STEPS + 4];
    assert_int_equal(tu_curve_losses(out, got, TU_TRACK_STEPS + 4), TU_TRACK_STEPS);
    memcpy(loss, got, TU_TRACK_STEPS * sizeof *loss);
}
