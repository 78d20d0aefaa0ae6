/* Chained hash table of cache entries keyed on cpu_key (see cpu_cache.h). */
#include "backend/cpu/cpu_cache.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

struct cpu_cache_node {
    cpu_key key;
    uint64_t hash;
    void *entry;
    cpu_entry_free_fn free_fn;
    cpu_cache_node *next;
};

void cpu_key_init(cpu_key *k, ssd_op op, ssd_dtype dt) {
    memset(k, 0, sizeof *k);
    k->op = (int32_t)op;
    k->dtype = (int32_t)dt;
}

void cpu_key_add(cpu_key *k, int64_t v) {
    SSD_ASSERT(k->nv < CPU_KEY_MAXV, "cpu cache key too long (op %d)", (int)k->op);
    k->v[k->nv++] = v;
}

void cpu_key_add_f64(cpu_key *k, double v) {
    int64_t bits;
    memcpy(&bits, &v, sizeof bits);
    cpu_key_add(k, bits);
}

static uint64_t key_hash(const cpu_key *k) {
    /* FNV-1a over the key bytes (the key is zero-initialised, so padding is stable) */
    const unsigned char *p = (const unsigned char *)k;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof *k; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

void cpu_cache_init(cpu_cache *c) {
    c->nbuckets = 256;
    c->count = 0;
    c->buckets = ssd_xcalloc(c->nbuckets, sizeof *c->buckets);
}

void *cpu_cache_find(cpu_cache *c, const cpu_key *k, ssd_backend_stats *stats) {
    uint64_t h = key_hash(k);
    for (cpu_cache_node *n = c->buckets[h % c->nbuckets]; n; n = n->next)
        if (n->hash == h && memcmp(&n->key, k, sizeof *k) == 0) {
            stats->prims_reused++;
            return n->entry;
        }
    return NULL;
}

static void rehash(cpu_cache *c) {
    size_t nb = c->nbuckets * 2;
    cpu_cache_node **b = ssd_xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < c->nbuckets; i++) {
        cpu_cache_node *n = c->buckets[i];
        while (n) {
            cpu_cache_node *next = n->next;
            n->next = b[n->hash % nb];
            b[n->hash % nb] = n;
            n = next;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

void cpu_cache_insert(cpu_cache *c, const cpu_key *k, void *entry, cpu_entry_free_fn free_fn,
                      ssd_backend_stats *stats) {
    if (c->count + 1 > c->nbuckets) rehash(c);
    cpu_cache_node *n = ssd_xcalloc(1, sizeof *n);
    n->key = *k;
    n->hash = key_hash(k);
    n->entry = entry;
    n->free_fn = free_fn;
    n->next = c->buckets[n->hash % c->nbuckets];
    c->buckets[n->hash % c->nbuckets] = n;
    c->count++;
    stats->prims_created++;
}

void cpu_cache_destroy(cpu_cache *c) {
    if (!c->buckets) return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        cpu_cache_node *n = c->buckets[i];
        while (n) {
            cpu_cache_node *next = n->next;
            if (n->free_fn) n->free_fn(n->entry);
            free(n);
            n = next;
        }
    }
    free(c->buckets);
    c->buckets = NULL;
    c->nbuckets = c->count = 0;
}
