#include "backend/host.h"

#include <string.h>

#include "core/mem.h"
#include "core/par.h"

void *ssd_host_alloc(ssd_backend *be, size_t bytes) {
    (void)be;
    void *p = ssd_aligned_alloc(bytes);
    memset(p, 0, bytes);
    return p;
}

void ssd_host_free(ssd_backend *be, void *p) {
    (void)be;
    ssd_aligned_free(p);
}

void ssd_host_copy(ssd_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (dst != src && bytes) memcpy(dst, src, bytes);
}

void ssd_host_sync(ssd_backend *be) { (void)be; }

void ssd_host_copy_rows(ssd_backend *be, ssd_tensor *dst, int64_t dst_off, int64_t dst_ld,
                        const ssd_tensor *src, int64_t src_off, int64_t src_ld, int64_t rows,
                        int64_t cols) {
    (void)be;
    size_t es = ssd_dtype_size(src->dtype);
    char *d = (char *)dst->data + (size_t)dst_off * es;
    const char *s = (const char *)src->data + (size_t)src_off * es;
    size_t row_bytes = (size_t)cols * es;
    SSD_PARALLEL_FOR_IF(rows * cols > (1 << 16), r, rows,
                        memcpy(d + (size_t)r * dst_ld * es, s + (size_t)r * src_ld * es, row_bytes););
}
