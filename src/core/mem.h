/* Memory: allocation that aborts on exhaustion (tier 1: running out of memory for a buffer the
 * program cannot do without is not an input error), 64-byte aligned buffers, and a bump arena. */
#ifndef SSD_CORE_MEM_H
#define SSD_CORE_MEM_H

#include <stddef.h>

void *ssd_xmalloc(size_t bytes);
void *ssd_xcalloc(size_t count, size_t size);
void *ssd_xrealloc(void *p, size_t bytes);
char *ssd_xstrdup(const char *s);
/* 64-byte aligned (cache line / AVX-512), freed with ssd_aligned_free. bytes may be 0. */
void *ssd_aligned_alloc(size_t bytes);
void ssd_aligned_free(void *p);

/* Bump allocator over one aligned block: many small allocations, freed all at once.
 * Used for per-step scratch and for planning activation memory. Not thread-safe. */
typedef struct ssd_arena {
    unsigned char *base;
    size_t capacity;
    size_t used;
    size_t high_water;
} ssd_arena;

void ssd_arena_init(ssd_arena *a, size_t capacity);
void ssd_arena_destroy(ssd_arena *a);
/* 64-byte aligned; aborts with a clear message when the arena is full. */
void *ssd_arena_alloc(ssd_arena *a, size_t bytes);
/* Mark / release to a mark: everything allocated after the mark is dropped. */
size_t ssd_arena_mark(const ssd_arena *a);
void ssd_arena_release(ssd_arena *a, size_t mark);
void ssd_arena_reset(ssd_arena *a);

#endif
