#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"

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

ssd_tensor tu_to_host(ssd_backend *be, const ssd_tensor *t, ssd_dtype dt) {
    ssd_tensor raw = ssd_tensor_alloc_host(t->dtype, t->ndim, t->shape, t->name);
    ssd_backend_download(be, &raw, t);
    if (dt == t->dtype) return raw;
    ssd_tensor conv = ssd_tensor_alloc_host(dt, t->ndim, t->shape, t->name);
    int64_t n = ssd_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) ssd_tensor_set(&conv, i, ssd_tensor_get(&raw, i));
    ssd_tensor_free(&raw);
    return conv;
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
