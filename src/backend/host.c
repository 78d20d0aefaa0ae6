#include "backend/host.h"

#include <string.h>

#include "core/mem.h"

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
