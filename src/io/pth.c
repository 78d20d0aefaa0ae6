/* PyTorch checkpoints: the three containers, the storage table and the tensors (pth.h). */
#include "io/pth.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "io/file.h"
#include "io/pickle.h"

/* ---- the storage table ---- */

typedef struct pth_storage {
    char key[64];        /* record name (zip), key string (legacy), decimal key (tar) */
    ssd_pth_dtype dtype;
    int64_t numel;
    int root;            /* -1: a root storage with its own bytes; else the root's index */
    int64_t root_off;    /* elements into the root (views) */
    const uint8_t *data; /* root: numel elements once known */
} pth_storage;

/* Tar container: integer keys of storages and tensors (one key space, SER:870-932). */
typedef struct pth_object {
    int64_t key;
    int storage;   /* >= 0: a storage */
    pk_value *tensor; /* else this tensor */
} pth_object;

typedef struct pth_reader {
    const char *file;
    size_t len;           /* input size (limits) */
    pk_heap heap;
    pth_storage *st;
    int nst, capst;
    pth_object *obj;
    int nobj, capobj;
    bool big_endian;
    struct pth_member *mem; /* zip/tar members read into memory */
    int nmem;
    ssd_pth_file *out;
    size_t out_bytes, out_limit;
} pth_reader;

struct ssd_pth_file {
    ssd_pth_container kind;
    ssd_pth_tensor *t;
    int n, cap, skipped;
};

typedef struct pth_member {
    char *name;
    uint8_t *data;
    size_t size;
} pth_member;

static int find_storage(const pth_reader *r, const char *key) {
    for (int i = 0; i < r->nst; i++)
        if (strcmp(r->st[i].key, key) == 0) return i;
    return -1;
}

static int add_storage(pth_reader *r, const char *key, ssd_pth_dtype dt, int64_t numel) {
    if (r->nst == r->capst) {
        r->capst = r->capst ? 2 * r->capst : 64;
        r->st = ssd_xrealloc(r->st, (size_t)r->capst * sizeof *r->st);
    }
    pth_storage *s = &r->st[r->nst];
    memset(s, 0, sizeof *s);
    snprintf(s->key, sizeof s->key, "%s", key);
    s->dtype = dt;
    s->numel = numel;
    s->root = -1;
    return r->nst++;
}

/* A view [off, off + numel) of storage `root` under `key` (legacy view metadata, tar views). */
static ssd_status add_view(pth_reader *r, const pk_where *w, size_t pos, const char *key,
                           int root, int64_t off, int64_t numel, int *idx, ssd_error *err) {
    const pth_storage *rs = &r->st[root];
    if (off < 0 || numel < 0 || off > rs->numel || numel > rs->numel - off)
        return pk_fail(err, w, pos, "storage view '%s' [%" PRId64 ", +%" PRId64
                       ") is outside storage '%s' of %" PRId64 " elements", key, off, numel,
                       rs->key, rs->numel);
    int base = rs->root >= 0 ? rs->root : root;
    int64_t boff = (rs->root >= 0 ? rs->root_off : 0) + off;
    *idx = add_storage(r, key, rs->dtype, numel);
    r->st[*idx].root = base;
    r->st[*idx].root_off = boff;
    return SSD_OK;
}

static pk_value *storage_value(pth_reader *r, int idx) {
    pk_value *v = pk_new(&r->heap, PK_STORAGE);
    v->i = idx;
    v->dtype = r->st[idx].dtype;
    return v;
}

/* A key (string, or an int in old files) as text. */
static bool key_text(const pk_value *v, char *buf, size_t len) {
    if (v->type == PK_STR && v->len < len && !memchr(v->s, 0, v->len)) {
        memcpy(buf, v->s, v->len + 1);
        return true;
    }
    if (v->type == PK_INT) {
        snprintf(buf, len, "%" PRId64, v->i);
        return true;
    }
    return false;
}

/* Zip and legacy persistent ids: ('storage', type, key, location, numel[, view_metadata]). */
static ssd_status storage_pid(void *ctx, pk_heap *h, const pk_value *pid, const pk_where *w,
                              size_t pos, pk_value **out, ssd_error *err) {
    pth_reader *r = ctx;
    (void)h;
    if (pid->type != PK_TUPLE || pid->n < 5 || pid->n > 6 || !pk_str_is(pid->items[0], "storage"))
        return pk_fail(err, w, pos, "persistent id is not ('storage', type, key, location, "
                       "numel[, view])");
    const pk_value *ty = pid->items[1], *numel = pid->items[4];
    char key[64];
    if (ty->type != PK_GLOBAL || ty->i != PKG_STORAGE_TYPE)
        return pk_fail(err, w, pos, "persistent id names no torch storage type");
    if (!key_text(pid->items[2], key, sizeof key))
        return pk_fail(err, w, pos, "persistent id has a bad storage key");
    if (numel->type != PK_INT || numel->i < 0)
        return pk_fail(err, w, pos, "storage '%s' has a bad element count", key);
    int idx = find_storage(r, key);
    if (idx < 0) {
        idx = add_storage(r, key, ty->dtype, numel->i);
    } else if (r->st[idx].root < 0 && r->st[idx].numel != numel->i) {
        return pk_fail(err, w, pos, "storage '%s' is %" PRId64 " elements here but %" PRId64
                       " before", key, numel->i, r->st[idx].numel);
    }
    const pk_value *view = pid->n == 6 ? pid->items[5] : NULL;
    if (view && view->type != PK_NONE) { /* (view_key, offset, view_numel): files of <= 0.3 */
        char vkey[64];
        if (view->type != PK_TUPLE || view->n != 3 || !key_text(view->items[0], vkey, sizeof vkey) ||
            view->items[1]->type != PK_INT || view->items[2]->type != PK_INT)
            return pk_fail(err, w, pos, "storage '%s' has malformed view metadata", key);
        int v = find_storage(r, vkey);
        if (v < 0) {
            ssd_status st = add_view(r, w, pos, vkey, idx, view->items[1]->i, view->items[2]->i,
                                     &v, err);
            if (st) return st;
        }
        idx = v;
    }
    *out = storage_value(r, idx);
    return SSD_OK;
}

/* Tar persistent ids: the decimal key of a tensor (or storage) of the tensors member. */
static ssd_status tar_pid(void *ctx, pk_heap *h, const pk_value *pid, const pk_where *w,
                          size_t pos, pk_value **out, ssd_error *err) {
    pth_reader *r = ctx;
    (void)h;
    char txt[32], *end;
    if (!key_text(pid, txt, sizeof txt)) return pk_fail(err, w, pos, "persistent id is not a key");
    errno = 0;
    long long key = strtoll(txt, &end, 10);
    if (errno || *end || !*txt) return pk_fail(err, w, pos, "persistent id '%s' is not an integer",
                                                txt);
    for (int i = 0; i < r->nobj; i++)
        if (r->obj[i].key == key) {
            *out = r->obj[i].tensor ? r->obj[i].tensor : storage_value(r, r->obj[i].storage);
            return SSD_OK;
        }
    return pk_fail(err, w, pos, "persistent id %lld names no tensor or storage of the file", key);
}

static void add_object(pth_reader *r, int64_t key, int storage, pk_value *tensor) {
    if (r->nobj == r->capobj) {
        r->capobj = r->capobj ? 2 * r->capobj : 64;
        r->obj = ssd_xrealloc(r->obj, (size_t)r->capobj * sizeof *r->obj);
    }
    r->obj[r->nobj++] = (pth_object){key, storage, tensor};
}

static int find_object(const pth_reader *r, int64_t key) {
    for (int i = 0; i < r->nobj; i++)
        if (r->obj[i].key == key) return i;
    return -1;
}

/* ---- raw little-endian reads with bounds ---- */

static bool rd_i64(const uint8_t *b, size_t len, size_t *pos, int64_t *v) {
    if (len - *pos < 8) return false;
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) u = (u << 8) | b[*pos + (size_t)i];
    *v = (int64_t)u;
    *pos += 8;
    return true;
}

/* [int64 count][count x elsize bytes] of storage idx, checked against the table. */
static ssd_status read_raw_storage(pth_reader *r, const pk_where *w, const uint8_t *b, size_t len,
                                   size_t *pos, int idx, ssd_error *err) {
    pth_storage *s = &r->st[idx];
    size_t at = *pos;
    int64_t n;
    if (!rd_i64(b, len, pos, &n))
        return pk_fail(err, w, at, "truncated: storage '%s' has no element count", s->key);
    if (n != s->numel)
        return pk_fail(err, w, at, "storage '%s' has %" PRId64 " elements in the data but %" PRId64
                       " in the pickle", s->key, n, s->numel);
    size_t es = ssd_pth_dtype_size(s->dtype);
    if ((uint64_t)n > (len - *pos) / es)
        return pk_fail(err, w, *pos, "truncated: storage '%s' needs %" PRId64 " x %zu bytes, %zu "
                       "left", s->key, n, es, len - *pos);
    s->data = b + *pos;
    *pos += (size_t)n * es;
    return SSD_OK;
}

/* ---- tensors out ---- */

static bool add_overflow(int64_t a, int64_t b, int64_t *r) { return __builtin_add_overflow(a, b, r); }
static bool mul_overflow(int64_t a, int64_t b, int64_t *r) { return __builtin_mul_overflow(a, b, r); }

static void swap_bytes(uint8_t *p, size_t n, size_t es) {
    for (size_t i = 0; i < n; i++, p += es)
        for (size_t a = 0, b = es - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* Copies tensor `t` out of its storage as a contiguous array under `name`. */
static ssd_status emit_tensor(pth_reader *r, const char *name, const pk_tensor *t, ssd_error *err) {
    const pth_storage *s = &r->st[t->storage];
    const pth_storage *root = s->root >= 0 ? &r->st[s->root] : s;
    int64_t base = (s->root >= 0 ? s->root_off : 0);
    size_t es = ssd_pth_dtype_size(s->dtype);
    int64_t numel = 1, last = t->offset, expect = 1;
    bool contiguous = true;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (mul_overflow(numel, t->size[d], &numel) || numel > INT64_MAX / 16)
            return ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor '%s' has too many elements", r->file,
                            name);
        if (t->size[d] != 1 && t->stride[d] != expect) contiguous = false;
        if (mul_overflow(expect, t->size[d] ? t->size[d] : 1, &expect)) contiguous = false;
    }
    if (numel > 0) {
        for (int d = 0; d < t->ndim; d++) {
            int64_t span;
            if (mul_overflow(t->size[d] - 1, t->stride[d], &span) || add_overflow(last, span, &last))
                return ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor '%s': strides overflow", r->file,
                                name);
        }
        if (last >= s->numel)
            return ssd_fail(err, SSD_ERR_FORMAT,
                            "%s: tensor '%s' reaches element %" PRId64 " of storage '%s', which "
                            "has %" PRId64, r->file, name, last, s->key, s->numel);
        if (!root->data)
            return ssd_fail(err, SSD_ERR_FORMAT, "%s: the data of storage '%s' (tensor '%s') is "
                            "missing", r->file, root->key, name);
    }
    size_t nbytes = (size_t)numel * es;
    if (nbytes > r->out_limit - r->out_bytes)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor '%s' would need %zu bytes: over the "
                        "limit of 8 x the file size + 64 MiB for all tensors", r->file, name, nbytes);
    r->out_bytes += nbytes;
    ssd_pth_file *f = r->out;
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 64;
        f->t = ssd_xrealloc(f->t, (size_t)f->cap * sizeof *f->t);
    }
    ssd_pth_tensor *o = &f->t[f->n++];
    memset(o, 0, sizeof *o);
    o->name = ssd_xstrdup(name);
    o->dtype = s->dtype;
    o->ndim = t->ndim;
    memcpy(o->shape, t->size, sizeof o->shape);
    o->numel = numel;
    o->nbytes = nbytes;
    o->data = ssd_aligned_alloc(nbytes ? nbytes : 1);
    if (numel == 0) return SSD_OK;
    const uint8_t *src = root->data + (size_t)(base + t->offset) * es;
    if (contiguous) {
        memcpy(o->data, src, nbytes);
    } else { /* gather in row-major order with an odometer over the indices */
        int64_t idx[SSD_MAX_DIMS] = {0}, off = 0;
        uint8_t *dst = o->data;
        for (int64_t i = 0; i < numel; i++) {
            memcpy(dst + (size_t)i * es, src + (size_t)off * es, es);
            for (int d = t->ndim - 1; d >= 0; d--) {
                off += t->stride[d];
                if (++idx[d] < t->size[d]) break;
                off -= t->stride[d] * t->size[d];
                idx[d] = 0;
            }
        }
    }
    if (r->big_endian && es > 1) {
        size_t sub = (s->dtype == SSD_PTH_C64 || s->dtype == SSD_PTH_C128) ? es / 2 : es;
        swap_bytes(o->data, nbytes / sub, sub);
    }
    return SSD_OK;
}

/* Collects the tensors of a (nested) dict in order; depth-bounded. */
static ssd_status walk(pth_reader *r, const pk_value *d, const char *prefix, int depth,
                       ssd_error *err) {
    for (size_t i = 0; i + 1 < d->n; i += 2) {
        const pk_value *k = d->items[i], *v = d->items[i + 1];
        char key[SSD_PTH_MAX_NAME], name[SSD_PTH_MAX_NAME];
        if (!key_text(k, key, sizeof key))
            return ssd_fail(err, SSD_ERR_FORMAT, "%s: a dict key under '%s' is a %s, not a name",
                            r->file, prefix, pk_type_name(k->type));
        int n = snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", key);
        if (n < 0 || (size_t)n >= sizeof name)
            return ssd_fail(err, SSD_ERR_FORMAT, "%s: name '%s.%s' is too long", r->file, prefix,
                            key);
        ssd_status st = SSD_OK;
        if (v->type == PK_TENSOR) {
            st = emit_tensor(r, name, v->t, err);
        } else if (v->type == PK_DICT) {
            if (depth >= 8)
                return ssd_fail(err, SSD_ERR_FORMAT, "%s: dicts nested deeper than 8 at '%s'",
                                r->file, name);
            st = walk(r, v, name, depth + 1, err);
        } else {
            r->out->skipped++;
        }
        if (st) return st;
    }
    return SSD_OK;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp((*(const ssd_pth_tensor *const *)a)->name, (*(const ssd_pth_tensor *const *)b)->name);
}

static ssd_status collect(pth_reader *r, const pk_value *root, ssd_error *err) {
    if (!root || root->type != PK_DICT)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: the checkpoint holds a %s, not a state_dict",
                        r->file, root ? pk_type_name(root->type) : "nothing");
    ssd_status st = walk(r, root, "", 0, err);
    if (st || r->out->n < 2) return st;
    const ssd_pth_tensor **s = ssd_xmalloc((size_t)r->out->n * sizeof *s);
    for (int i = 0; i < r->out->n; i++) s[i] = &r->out->t[i];
    qsort(s, (size_t)r->out->n, sizeof *s, cmp_names);
    for (int i = 1; i < r->out->n && !st; i++)
        if (strcmp(s[i]->name, s[i - 1]->name) == 0)
            st = ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor name '%s' appears twice", r->file,
                          s[i]->name);
    free(s);
    return st;
}

/* ---- zip and tar members (libarchive) ---- */

static const pth_member *member(const pth_reader *r, const char *name) {
    for (int i = 0; i < r->nmem; i++)
        if (strcmp(r->mem[i].name, name) == 0) return &r->mem[i];
    return NULL;
}

/* Reads every file member into memory (zip: under the first entry's top folder). */
static ssd_status read_members(pth_reader *r, const void *buf, size_t len, bool zip,
                               ssd_error *err) {
    struct archive *a = archive_read_new();
    if (zip) archive_read_support_format_zip_seekable(a);
    else archive_read_support_format_tar(a);
    const char *kind = zip ? "zip" : "tar";
    ssd_status st = SSD_OK;
    size_t limit = 1024 * len + (1u << 20); /* decompression bombs */
    if (archive_read_open_memory(a, buf, len) != ARCHIVE_OK) {
        st = ssd_fail(err, SSD_ERR_FORMAT, "%s: %s container: %s", r->file, kind,
                      archive_error_string(a) ? archive_error_string(a) : "cannot open");
        goto done;
    }
    struct archive_entry *e;
    char top[SSD_PTH_MAX_NAME] = "";
    for (;;) {
        int rc = archive_read_next_header(a, &e);
        if (rc == ARCHIVE_EOF) break;
        if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) {
            st = ssd_fail(err, SSD_ERR_FORMAT, "%s: %s container, near byte %lld: %s", r->file,
                          kind, (long long)archive_filter_bytes(a, -1),
                          archive_error_string(a) ? archive_error_string(a) : "bad header");
            goto done;
        }
        const char *name = archive_entry_pathname(e);
        if (!name || archive_entry_filetype(e) != AE_IFREG) continue;
        if (!zip && strncmp(name, "./", 2) == 0) name += 2;
        if (zip) {
            if (!*top) {
                const char *slash = strchr(name, '/');
                size_t tl = slash ? (size_t)(slash - name) : 0;
                if (!slash || tl + 2 > sizeof top) {
                    st = ssd_fail(err, SSD_ERR_FORMAT, "%s: zip container: first entry '%.100s' "
                                  "is not under a top folder", r->file, name);
                    goto done;
                }
                memcpy(top, name, tl + 1);
                top[tl + 1] = 0;
            }
            if (strncmp(name, top, strlen(top)) != 0) continue;
            name += strlen(top);
        }
        if (member(r, name)) continue; /* first one wins */
        pth_member m = {ssd_xstrdup(name), NULL, 0};
        size_t cap = 0;
        for (;;) {
            if (m.size == cap) {
                cap = cap ? 2 * cap : 4096;
                m.data = ssd_xrealloc(m.data, cap);
            }
            la_ssize_t got = archive_read_data(a, m.data + m.size, cap - m.size);
            if (got == 0) break;
            if (got < 0 || m.size + (size_t)got > limit) {
                st = ssd_fail(err, SSD_ERR_FORMAT, "%s: %s member '%s': %s", r->file, kind, m.name,
                              got < 0 && archive_error_string(a) ? archive_error_string(a)
                                                                 : "too large");
                free(m.name);
                free(m.data);
                goto done;
            }
            m.size += (size_t)got;
        }
        r->mem = ssd_xrealloc(r->mem, (size_t)(r->nmem + 1) * sizeof *r->mem);
        r->mem[r->nmem++] = m;
    }
done:
    archive_read_free(a);
    return st;
}

static ssd_status need_member(const pth_reader *r, const char *name, const char *kind,
                              const pth_member **m, ssd_error *err) {
    *m = member(r, name);
    if (!*m) return ssd_fail(err, SSD_ERR_FORMAT, "%s: %s container has no member '%s'", r->file,
                             kind, name);
    return SSD_OK;
}

static ssd_status load_zip(pth_reader *r, const void *buf, size_t len, ssd_error *err) {
    const pth_member *pkl, *bo;
    ssd_status st = read_members(r, buf, len, true, err);
    if (!st) st = need_member(r, "data.pkl", "zip", &pkl, err);
    if (st) return st;
    if ((bo = member(r, "byteorder"))) {
        if (bo->size == 3 && memcmp(bo->data, "big", 3) == 0) r->big_endian = true;
        else if (!(bo->size == 6 && memcmp(bo->data, "little", 6) == 0))
            return ssd_fail(err, SSD_ERR_FORMAT, "%s: zip member 'byteorder' is neither 'little' "
                            "nor 'big'", r->file);
    }
    pk_where w = {r->file, "zip member 'data.pkl'", 0};
    size_t pos = 0;
    pk_value *root;
    if ((st = pk_load(&r->heap, pkl->data, pkl->size, &pos, &w, storage_pid, r, &root, err)))
        return st;
    for (int i = 0; i < r->nst; i++) {
        pth_storage *s = &r->st[i];
        if (s->root >= 0) continue;
        char rec[80];
        snprintf(rec, sizeof rec, "data/%s", s->key);
        const pth_member *m = member(r, rec);
        size_t es = ssd_pth_dtype_size(s->dtype);
        if (!m) return ssd_fail(err, SSD_ERR_FORMAT, "%s: zip container has no record '%s'",
                                r->file, rec);
        if ((uint64_t)s->numel > SIZE_MAX / es || m->size != (size_t)s->numel * es)
            return ssd_fail(err, SSD_ERR_FORMAT, "%s: zip record '%s' has %zu bytes, but the "
                            "pickle says %" PRId64 " x %zu", r->file, rec, m->size, s->numel, es);
        s->data = m->data;
    }
    return collect(r, root, err);
}

static const uint8_t k_magic[15] = {0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46,
                                    0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E};

static ssd_status load_legacy(pth_reader *r, const uint8_t *b, size_t len, ssd_error *err) {
    pk_where w = {r->file, "legacy container", 0};
    size_t pos = sizeof k_magic;
    pk_value *ver, *sys, *root, *keys;
    ssd_status st = pk_load(&r->heap, b, len, &pos, &w, NULL, NULL, &ver, err);
    if (st) return st;
    if (ver->type != PK_INT || ver->i != 1001)
        return pk_fail(err, &w, sizeof k_magic, "protocol version is not 1001");
    if ((st = pk_load(&r->heap, b, len, &pos, &w, NULL, NULL, &sys, err))) return st;
    w.part = "legacy container, main pickle";
    if ((st = pk_load(&r->heap, b, len, &pos, &w, storage_pid, r, &root, err))) return st;
    w.part = "legacy container, storage key list";
    size_t at = pos;
    if ((st = pk_load(&r->heap, b, len, &pos, &w, NULL, NULL, &keys, err))) return st;
    if (keys->type != PK_LIST) return pk_fail(err, &w, at, "the storage keys are not a list");
    w.part = "legacy container, storage data";
    for (size_t i = 0; i < keys->n; i++) {
        char key[64];
        int idx = key_text(keys->items[i], key, sizeof key) ? find_storage(r, key) : -1;
        if (idx < 0 || r->st[idx].root >= 0 || r->st[idx].data)
            return pk_fail(err, &w, pos, "storage key %zu is not a storage of the pickle (or "
                           "appears twice)", i);
        if ((st = read_raw_storage(r, &w, b, len, &pos, idx, err))) return st;
    }
    return collect(r, root, err);
}

static ssd_status int_value(const pk_value *v, const pk_where *w, size_t pos, const char *what,
                            int64_t *out, ssd_error *err) {
    if (v->type != PK_INT) return pk_fail(err, w, pos, "%s is not an int", what);
    *out = v->i;
    return SSD_OK;
}

/* The pickled entry count that starts the storages and tensors members. */
static ssd_status tar_count(pth_reader *r, const pth_member *m, const pk_where *w, size_t *pos,
                            int64_t *n, ssd_error *err) {
    pk_value *v;
    ssd_status st = pk_load(&r->heap, m->data, m->size, pos, w, NULL, NULL, &v, err);
    if (!st) st = int_value(v, w, 0, "the entry count", n, err);
    return st;
}

/* One entry header (key, <storage key | location>, <type global>) with a new integer key. */
static ssd_status tar_entry(pth_reader *r, const pth_member *m, const pk_where *w, size_t *pos,
                            pk_global type, pk_value **v, int64_t *key, ssd_error *err) {
    size_t at = *pos;
    ssd_status st = pk_load(&r->heap, m->data, m->size, pos, w, NULL, NULL, v, err);
    if (st) return st;
    const pk_value *e = *v;
    if (e->type != PK_TUPLE || e->n != 3 || e->items[2]->type != PK_GLOBAL ||
        e->items[2]->i != type)
        return pk_fail(err, w, at, "entry is not (key, %s, %s type)",
                       type == PKG_STORAGE_TYPE ? "location" : "storage key",
                       type == PKG_STORAGE_TYPE ? "storage" : "tensor");
    if ((st = int_value(e->items[0], w, at, "entry key", key, err))) return st;
    if (find_object(r, *key) >= 0)
        return pk_fail(err, w, at, "key %" PRId64 " is used twice", *key);
    return SSD_OK;
}

/* storages member: count, then (key, location, type) + raw storage each, then the views. */
static ssd_status tar_storages(pth_reader *r, const pth_member *m, ssd_error *err) {
    pk_where w = {r->file, "tar member 'storages'", 0};
    size_t pos = 0, at;
    pk_value *v;
    int64_t n = 0, key = 0;
    ssd_status st = tar_count(r, m, &w, &pos, &n, err);
    for (int64_t i = 0; !st && i < n; i++) {
        at = pos;
        if ((st = tar_entry(r, m, &w, &pos, PKG_STORAGE_TYPE, &v, &key, err))) break;
        char txt[32];
        snprintf(txt, sizeof txt, "%" PRId64, key);
        size_t c = pos;
        int64_t cnt;
        if (!rd_i64(m->data, m->size, &c, &cnt) || cnt < 0)
            return pk_fail(err, &w, pos, "truncated or negative storage element count");
        int idx = add_storage(r, txt, v->items[2]->dtype, cnt);
        add_object(r, key, idx, NULL);
        st = read_raw_storage(r, &w, m->data, m->size, &pos, idx, err);
    }
    if (st) return st;
    at = pos;
    if ((st = pk_load(&r->heap, m->data, m->size, &pos, &w, NULL, NULL, &v, err))) return st;
    if (v->type != PK_LIST && v->type != PK_TUPLE) return pk_fail(err, &w, at, "views are not a list");
    for (size_t i = 0; i < v->n; i++) { /* (view_key, root_key, offset, numel) */
        const pk_value *t = v->items[i];
        int64_t f[4];
        if (t->type != PK_TUPLE || t->n != 4) return pk_fail(err, &w, at, "view %zu is malformed", i);
        for (int j = 0; j < 4; j++)
            if ((st = int_value(t->items[j], &w, at, "a view field", &f[j], err))) return st;
        int root = find_object(r, f[1]), idx;
        if (root < 0 || r->obj[root].storage < 0 || find_object(r, f[0]) >= 0)
            return pk_fail(err, &w, at, "view %zu names an unknown root or a used key", i);
        char txt[32];
        snprintf(txt, sizeof txt, "%" PRId64, f[0]);
        if ((st = add_view(r, &w, at, txt, r->obj[root].storage, f[2], f[3], &idx, err))) return st;
        add_object(r, f[0], idx, NULL);
    }
    return SSD_OK;
}

/* tensors member: count, then (key, storage_key, tensor type) + raw metadata each. */
static ssd_status tar_tensors(pth_reader *r, const pth_member *m, ssd_error *err) {
    pk_where w = {r->file, "tar member 'tensors'", 0};
    size_t pos = 0, at;
    pk_value *v;
    int64_t n = 0, key = 0;
    ssd_status st = tar_count(r, m, &w, &pos, &n, err);
    for (int64_t i = 0; !st && i < n; i++) {
        at = pos;
        if ((st = tar_entry(r, m, &w, &pos, PKG_TENSOR_TYPE, &v, &key, err))) break;
        pk_tensor t = {.dtype = v->items[2]->dtype};
        if (v->items[1]->type == PK_NONE) { /* no storage: an empty tensor */
            t.storage = add_storage(r, "(none)", t.dtype, 0);
        } else {
            int64_t sk = 0;
            if ((st = int_value(v->items[1], &w, at, "storage key", &sk, err))) break;
            int o = find_object(r, sk);
            if (o < 0 || r->obj[o].storage < 0)
                return pk_fail(err, &w, at, "tensor %" PRId64 " names unknown storage %" PRId64,
                               key, sk);
            t.storage = r->obj[o].storage;
            t.dtype = r->st[t.storage].dtype;
        }
        at = pos;
        if (m->size - pos < 8) return pk_fail(err, &w, at, "truncated tensor metadata");
        uint32_t nd = (uint32_t)m->data[pos] | (uint32_t)m->data[pos + 1] << 8 |
                      (uint32_t)m->data[pos + 2] << 16 | (uint32_t)m->data[pos + 3] << 24;
        pos += 8; /* int32 ndim + 4 padding bytes */
        if (nd > SSD_MAX_DIMS) return pk_fail(err, &w, at, "tensor with %u dims (at most %d)", nd,
                                              SSD_MAX_DIMS);
        t.ndim = (int)nd;
        bool ok = true;
        for (int d = 0; d < t.ndim; d++) ok = ok && rd_i64(m->data, m->size, &pos, &t.size[d]);
        for (int d = 0; d < t.ndim; d++) ok = ok && rd_i64(m->data, m->size, &pos, &t.stride[d]);
        ok = ok && rd_i64(m->data, m->size, &pos, &t.offset);
        if (!ok) return pk_fail(err, &w, at, "truncated tensor metadata");
        for (int d = 0; d < t.ndim; d++)
            if (t.size[d] < 0 || t.stride[d] < 0) ok = false;
        if (!ok || t.offset < 0) return pk_fail(err, &w, at, "negative size, stride or offset");
        pk_value *tv = pk_new(&r->heap, PK_TENSOR);
        tv->t = ssd_xmalloc(sizeof t);
        *tv->t = t;
        add_object(r, key, -1, tv);
    }
    return st;
}

static ssd_status load_tar(pth_reader *r, const void *buf, size_t len, ssd_error *err) {
    const pth_member *ms, *mt, *mp;
    ssd_status st = read_members(r, buf, len, false, err);
    if (!st) st = need_member(r, "storages", "tar", &ms, err);
    if (!st) st = need_member(r, "tensors", "tar", &mt, err);
    if (!st) st = need_member(r, "pickle", "tar", &mp, err);
    if (!st) st = tar_storages(r, ms, err);
    if (!st) st = tar_tensors(r, mt, err);
    if (st) return st;
    pk_where w = {r->file, "tar member 'pickle'", 0};
    size_t pos = 0;
    pk_value *root;
    if ((st = pk_load(&r->heap, mp->data, mp->size, &pos, &w, tar_pid, r, &root, err))) return st;
    return collect(r, root, err);
}

/* ---- public ---- */

void ssd_pth_free(ssd_pth_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) {
        free(f->t[i].name);
        ssd_aligned_free(f->t[i].data);
    }
    free(f->t);
    free(f);
}

ssd_status ssd_pth_read_mem(const void *buf, size_t len, const char *name, ssd_pth_file **out,
                            ssd_error *err) {
    const uint8_t *b = buf;
    pth_reader r = {.file = name, .len = len};
    r.out = ssd_xcalloc(1, sizeof *r.out);
    r.out_limit = 8 * len + (64u << 20);
    *out = NULL;
    ssd_status st;
    if (len >= 4 && memcmp(b, "PK\3\4", 4) == 0) {
        r.out->kind = SSD_PTH_ZIP;
        st = load_zip(&r, buf, len, err);
    } else if (len >= 512 && memcmp(b + 257, "ustar", 5) == 0) {
        r.out->kind = SSD_PTH_TAR;
        st = load_tar(&r, buf, len, err);
    } else if (len >= sizeof k_magic && memcmp(b, k_magic, sizeof k_magic) == 0) {
        r.out->kind = SSD_PTH_LEGACY;
        st = load_legacy(&r, b, len, err);
    } else {
        st = ssd_fail(err, SSD_ERR_FORMAT, "%s: not a PyTorch checkpoint (no zip, tar or "
                      "legacy-magic header at byte 0)", name);
    }
    pk_heap_free(&r.heap);
    free(r.st);
    free(r.obj);
    for (int i = 0; i < r.nmem; i++) {
        free(r.mem[i].name);
        free(r.mem[i].data);
    }
    free(r.mem);
    if (st) ssd_pth_free(r.out);
    else *out = r.out;
    return st;
}

ssd_status ssd_pth_read(const char *path, ssd_pth_file **out, ssd_error *err) {
    *out = NULL;
    char *buf;
    size_t len;
    ssd_status st = ssd_read_file(path, &buf, &len, err);
    if (!st) st = ssd_pth_read_mem((const uint8_t *)buf, len, path, out, err);
    free(buf);
    return st;
}

const char *ssd_pth_container_name(ssd_pth_container c) {
    return c == SSD_PTH_ZIP ? "zip" : c == SSD_PTH_TAR ? "tar" : "legacy";
}
ssd_pth_container ssd_pth_kind(const ssd_pth_file *f) { return f->kind; }
int ssd_pth_count(const ssd_pth_file *f) { return f->n; }
int ssd_pth_skipped(const ssd_pth_file *f) { return f->skipped; }
const ssd_pth_tensor *ssd_pth_at(const ssd_pth_file *f, int i) {
    return i >= 0 && i < f->n ? &f->t[i] : NULL;
}
const ssd_pth_tensor *ssd_pth_get(const ssd_pth_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

ssd_status ssd_pth_as_tensor(const ssd_pth_tensor *t, ssd_tensor *view, ssd_error *err) {
    static const struct { ssd_pth_dtype p; ssd_dtype d; } map[] = {
        {SSD_PTH_F32, SSD_F32}, {SSD_PTH_F64, SSD_F64}, {SSD_PTH_F16, SSD_F16},
        {SSD_PTH_BF16, SSD_BF16}, {SSD_PTH_I64, SSD_I64}};
    if (strlen(t->name) >= SSD_TENSOR_NAME_LEN)
        return ssd_fail(err, SSD_ERR_UNSUPPORTED, "tensor name '%s' is longer than %d bytes",
                        t->name, SSD_TENSOR_NAME_LEN - 1);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].p == t->dtype) {
            *view = ssd_tensor_view(t->data, map[i].d, t->ndim, t->shape, t->name);
            return SSD_OK;
        }
    return ssd_fail(err, SSD_ERR_UNSUPPORTED, "tensor '%s' is %s (f32, f64, f16, bf16 and i64 "
                    "are supported)", t->name, ssd_pth_dtype_name(t->dtype));
}
