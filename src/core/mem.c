#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#define _POSIX_C_SOURCE 200809L
#include "core/mem.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/log.h"

#define SSD_ALIGN 64

void *ssd_xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) ssd_die(__FILE__, __LINE__, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *ssd_xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) ssd_die(__FILE__, __LINE__, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *ssd_xrealloc(void *p, size_t bytes) {
    void *q = realloc(p, bytes ? bytes : 1);
    if (!q) ssd_die(__FILE__, __LINE__, "out of memory reallocating to %zu bytes", bytes);
    return q;
}

char *ssd_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = ssd_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

#define SSD_HUGE ((size_t)2 << 20)

void *ssd_aligned_alloc(size_t bytes) {
    /* buffers of 2 MiB and more (activations, scratch): 2 MiB aligned and offered to the
     * kernel for transparent huge pages (where THP is in madvise mode, nothing else asks) */
    const bool huge = bytes >= SSD_HUGE;
    const size_t align = huge ? SSD_HUGE : SSD_ALIGN;
    size_t rounded = (bytes + align - 1) / align * align;
    if (rounded == 0) rounded = SSD_ALIGN;
    void *p = NULL;
    if (posix_memalign(&p, align, rounded) != 0 || !p)
        ssd_die(__FILE__, __LINE__, "out of memory allocating %zu aligned bytes", bytes);
#ifdef MADV_HUGEPAGE
    if (huge) (void)madvise(p, rounded, MADV_HUGEPAGE); /* advice only: failure is harmless */
#endif
    return p;
}

void ssd_aligned_free(void *p) { free(p); }

void ssd_arena_init(ssd_arena *a, size_t capacity) {
    a->base = capacity ? ssd_aligned_alloc(capacity) : NULL;
    a->capacity = capacity;
    a->used = 0;
    a->high_water = 0;
}

void ssd_arena_destroy(ssd_arena *a) {
    ssd_aligned_free(a->base);
    memset(a, 0, sizeof *a);
}

void *ssd_arena_alloc(ssd_arena *a, size_t bytes) {
    size_t start = (a->used + SSD_ALIGN - 1) / SSD_ALIGN * SSD_ALIGN;
    SSD_ASSERT(start <= a->capacity && bytes <= a->capacity - start,
               "arena full: %zu bytes requested, %zu of %zu used", bytes, a->used, a->capacity);
    a->used = start + bytes;
    if (a->used > a->high_water) a->high_water = a->used;
    return a->base + start;
}

size_t ssd_arena_mark(const ssd_arena *a) { return a->used; }

void ssd_arena_release(ssd_arena *a, size_t mark) {
    SSD_ASSERT(mark <= a->used, "arena release to %zu beyond used %zu", mark, a->used);
    a->used = mark;
}

void ssd_arena_reset(ssd_arena *a) { a->used = 0; }
