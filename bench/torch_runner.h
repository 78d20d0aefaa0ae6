/* The PyTorch side of bench_ops --torch: find tools/bench_torch_conv.py and a python, run it
 * through popen for one conv shape, parse the JSON it prints. Header-only (static functions)
 * because each bench/ source file is its own executable; included by bench_ops.c only. */
#ifndef SSD_BENCH_TORCH_RUNNER_H
#define SSD_BENCH_TORCH_RUNNER_H

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "backend/layer_shapes.h"
#include "core/mem.h"

static bool file_exists(const char *path) { return access(path, R_OK) == 0; }

/* Finds tools/bench_torch_conv.py; returns false (and says where it looked) if not found. */
static bool find_torch_script(const char *tools_dir, const char *argv0, char *out, size_t len,
                              char *looked, size_t looked_len) {
    char cands[6][PATH_MAX];
    int nc = 0;
    if (tools_dir) snprintf(cands[nc++], PATH_MAX, "%s/bench_torch_conv.py", tools_dir);
    else {
        const char *src = getenv("SSD_SOURCE_DIR");
        if (src && *src) snprintf(cands[nc++], PATH_MAX, "%s/tools/bench_torch_conv.py", src);
        char exe[PATH_MAX];
        ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (k > 0) exe[k] = '\0';
        else snprintf(exe, sizeof exe, "%s", argv0);
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        else snprintf(exe, sizeof exe, ".");
        snprintf(cands[nc++], PATH_MAX, "%.3800s/../tools/bench_torch_conv.py", exe);
        snprintf(cands[nc++], PATH_MAX, "%.3800s/../../tools/bench_torch_conv.py", exe);
        snprintf(cands[nc++], PATH_MAX, "tools/bench_torch_conv.py");
    }
    looked[0] = '\0';
    for (int i = 0; i < nc; i++) {
        if (file_exists(cands[i])) {
            snprintf(out, len, "%s", cands[i]);
            return true;
        }
        size_t used = strlen(looked);
        snprintf(looked + used, looked_len - used, "%s%s", i ? ", " : "", cands[i]);
    }
    return false;
}

/* Appends s to buf in single quotes for /bin/sh. */
static void sh_quote(char *buf, size_t len, const char *s) {
    size_t u = strlen(buf);
    if (u + 1 < len) buf[u++] = '\'';
    for (; *s && u + 5 < len; s++) {
        if (*s == '\'') {
            memcpy(buf + u, "'\\''", 4);
            u += 4;
        } else buf[u++] = *s;
    }
    if (u + 1 < len) buf[u++] = '\'';
    buf[u] = '\0';
}

/* Locates the script and python; false with *why filled when either is missing. */
static bool torch_locate(const char *tools_dir, const char *argv0, char *script, size_t script_len,
                         const char **py, char *why, size_t why_len) {
    char looked[4 * PATH_MAX];
    if (!find_torch_script(tools_dir, argv0, script, script_len, looked, sizeof looked)) {
        snprintf(why, why_len, "tools/bench_torch_conv.py not found (looked at: %.900s; "
                 "use --tools DIR or SSD_SOURCE_DIR)", looked);
        return false;
    }
    *py = getenv("SSD_PYTHON_TORCH");
    if (!*py || !**py) *py = "/usr/bin/python3";
    if (access(*py, X_OK) != 0) {
        snprintf(why, why_len, "python not found at %s (set SSD_PYTHON_TORCH)", *py);
        return false;
    }
    return true;
}

/* Runs the python script; returns its parsed JSON or NULL with *why filled. */
static cJSON *run_torch(int warmup, int reps, const char *script, const char *py,
                        const ssd_conv_shape *s, const int *batches, int nb, int threads,
                        char *why, size_t why_len) {
    char cmd[3 * PATH_MAX] = "";
    sh_quote(cmd, sizeof cmd, py);
    strncat(cmd, " ", sizeof cmd - strlen(cmd) - 1);
    sh_quote(cmd, sizeof cmd, script);
    char args[256], bl[64] = "";
    for (int i = 0; i < nb; i++) {
        size_t u = strlen(bl);
        snprintf(bl + u, sizeof bl - u, "%s%d", i ? "," : "", batches[i]);
    }
    snprintf(args, sizeof args,
             " --threads %d --batches %s --warmup %d --reps %d --c %d --k %d --h %d --r %d "
             "--stride %d --pad %d --bias %d",
             threads, bl, warmup, reps, s->c, s->k, s->h, s->r, s->stride, s->pad,
             s->bias ? 1 : 0);
    strncat(cmd, args, sizeof cmd - strlen(cmd) - 1);
    fflush(stdout);
    FILE *f = popen(cmd, "r");
    if (!f) {
        snprintf(why, why_len, "cannot run %s: %s", py, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = ssd_xmalloc(cap);
    size_t k;
    while ((k = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += k;
        if (len + 1 == cap) buf = ssd_xrealloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    int st = pclose(f);
    cJSON *j = cJSON_Parse(buf);
    if (!j) {
        snprintf(why, why_len, "%.200s %.600s exited with status %d and printed no JSON%s%.300s", py,
                 script, st, len ? ": " : "", buf);
        free(buf);
        return NULL;
    }
    free(buf);
    cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsString(err)) {
        snprintf(why, why_len, "%s", err->valuestring);
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

#endif
