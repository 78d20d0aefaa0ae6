/* The cpu backend's primitive cache: one entry per (op, shapes, strides/pads, flags, dtype)
 * key, created on the first call and reused on every later one. An entry is an op-specific
 * struct (primitive descriptors, primitives, reorders, memory objects) with its own free
 * function; the cache owns it from insertion until cpu_cache_destroy. Misses count in
 * stats->prims_created, hits in stats->prims_reused. */
#ifndef SSD_BACKEND_CPU_CPU_CACHE_H
#define SSD_BACKEND_CPU_CPU_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

#define CPU_KEY_MAXV 20

typedef struct cpu_key {
    int32_t op;    /* ssd_op */
    int32_t dtype; /* ssd_dtype */
    int32_t nv;    /* used entries of v */
    int32_t unused;
    int64_t v[CPU_KEY_MAXV]; /* shapes, strides, pads, flags, eps bits ... */
} cpu_key;

/* Zeroes the key (so it can be compared bytewise) and sets op and dtype. */
void cpu_key_init(cpu_key *k, ssd_op op, ssd_dtype dt);
void cpu_key_add(cpu_key *k, int64_t v);
/* Adds the bit pattern of a double (eps, ...). */
void cpu_key_add_f64(cpu_key *k, double v);

typedef void (*cpu_entry_free_fn)(void *entry);

typedef struct cpu_cache_node cpu_cache_node;

typedef struct cpu_cache {
    cpu_cache_node **buckets;
    size_t nbuckets;
    size_t count;
} cpu_cache;

void cpu_cache_init(cpu_cache *c);
/* The entry stored under k, or NULL; a hit counts in stats->prims_reused. */
void *cpu_cache_find(cpu_cache *c, const cpu_key *k, ssd_backend_stats *stats);
/* Stores a new entry (k must not be present); counts in stats->prims_created. */
void cpu_cache_insert(cpu_cache *c, const cpu_key *k, void *entry, cpu_entry_free_fn free_fn,
                      ssd_backend_stats *stats);
/* Frees every entry through its free function, then the table. */
void cpu_cache_destroy(cpu_cache *c);

#endif
