/* safetensors reader and atomic writer (format and guarantees in safetensors.h). */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/strbuf.h"
#include "io/file.h"

struct ssd_st_file {
    char *path;
    int n;
    ssd_tensor *tensors; /* views into data (or into own[i] when misaligned) */
    char **names;        /* full names, header order */
    void **own;          /* per-tensor aligned copies, NULL where a view suffices */
    int *by_name;        /* tensor indices sorted by name, for ssd_st_get */
    unsigned char *data; /* the data section, 64-byte aligned */
    size_t data_len;
    int n_meta;
    char **meta_keys;
    char **meta_vals;
};

/* ---- dtypes ---- */

static const struct {
    const char *name;
    ssd_dtype dt;
} k_st_dtypes[] = {{"F32", SSD_F32}, {"BF16", SSD_BF16}, {"F64", SSD_F64}, {"I64", SSD_I64}, {"F16", SSD_F16}};

/* Dtypes the format defines that we do not handle (a clearer message than "unknown"). */
static const char *const k_st_other_dtypes[] = {
    "BOOL", "U8",  "I8",  "F8_E5M2", "F8_E4M3", "I16",     "U16",  "I32",
    "U32",  "U64", "C64", "F4",      "F6_E2M3", "F6_E3M2", "E8M0", "F8_E8M0"};

static const char *st_dtype_str(ssd_dtype dt) {
    for (size_t i = 0; i < sizeof k_st_dtypes / sizeof k_st_dtypes[0]; i++)
        if (k_st_dtypes[i].dt == dt) return k_st_dtypes[i].name;
    return NULL;
}

static bool host_is_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ---- reading ---- */

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct {
    uint64_t begin, end;
    int idx;
} st_range;

static int cmp_range(const void *a, const void *b) {
    const st_range *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

typedef struct {
    const char *name;
    int idx;
} name_idx;

static int cmp_name_idx(const void *a, const void *b) {
    const name_idx *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->idx - y->idx;
}

/* A JSON number that is a non-negative integer <= 2^53 (exact in a double). Returns false with
 * *why set otherwise. */
static bool json_uint(const cJSON *v, uint64_t *out, const char **why) {
    if (!cJSON_IsNumber(v)) {
        *why = "is not a number";
        return false;
    }
    double d = v->valuedouble;
    if (d < 0) {
        *why = "is negative";
        return false;
    }
    if (d != floor(d)) {
        *why = "is not an integer";
        return false;
    }
    if (d > 9007199254740992.0) {
        *why = "is too large";
        return false;
    }
    *out = (uint64_t)d;
    return true;
}

static const char *json_type_name(const cJSON *v) {
    if (!v) return "missing";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "invalid";
}

void ssd_st_free(ssd_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) {
        if (f->names) free(f->names[i]);
        if (f->own) ssd_aligned_free(f->own[i]);
    }
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->names);
    free(f->own);
    free(f->tensors);
    free(f->by_name);
    free(f->meta_keys);
    free(f->meta_vals);
    ssd_aligned_free(f->data);
    free(f->path);
    free(f);
}

/* Fills f's metadata from the "__metadata__" object. */
static ssd_status parse_metadata(ssd_st_file *f, const cJSON *meta, const char *path,
                                 ssd_error *err) {
    if (!cJSON_IsObject(meta))
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: \"__metadata__\" is %s, expected an object", path,
                        json_type_name(meta));
    int n = cJSON_GetArraySize(meta);
    f->meta_keys = ssd_xcalloc((size_t)n, sizeof(char *));
    f->meta_vals = ssd_xcalloc((size_t)n, sizeof(char *));
    for (const cJSON *e = meta->child; e; e = e->next) {
        if (!cJSON_IsString(e))
            return ssd_fail(err, SSD_ERR_FORMAT,
                            "%s: \"__metadata__\" entry \"%s\" is %s, expected a string", path,
                            e->string, json_type_name(e));
        f->meta_keys[f->n_meta] = ssd_xstrdup(e->string);
        f->meta_vals[f->n_meta] = ssd_xstrdup(e->valuestring);
        f->n_meta++;
    }
    if (n > 1) {
        char **sorted = ssd_xmalloc((size_t)n * sizeof(char *));
        memcpy(sorted, f->meta_keys, (size_t)n * sizeof(char *));
        qsort(sorted, (size_t)n, sizeof(char *), cmp_str_ptr);
        for (int i = 1; i < n; i++)
            if (strcmp(sorted[i - 1], sorted[i]) == 0) {
                ssd_status s =
                    ssd_fail(err, SSD_ERR_FORMAT, "%s: duplicate \"__metadata__\" key \"%s\"", path,
                             sorted[i]);
                free(sorted);
                return s;
            }
        free(sorted);
    }
    return SSD_OK;
}

/* Validates one tensor entry; fills t (data still NULL) and its byte range. */
static ssd_status parse_entry(const cJSON *e, ssd_tensor *t, st_range *range, uint64_t data_len,
                              const char *path, ssd_error *err) {
    const char *nm = e->string;
    const char *why = NULL;
    if (!cJSON_IsObject(e))
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor \"%s\": entry is %s, expected an object",
                        path, nm, json_type_name(e));
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dtype))
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: tensor \"%s\": \"dtype\" is %s, expected a string", path, nm,
                        json_type_name(dtype));
    if (!cJSON_IsArray(shape))
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: tensor \"%s\": \"shape\" is %s, expected an array", path, nm,
                        json_type_name(shape));
    if (!cJSON_IsArray(offs))
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: tensor \"%s\": \"data_offsets\" is %s, expected an array", path, nm,
                        json_type_name(offs));

    memset(t, 0, sizeof *t);
    bool known = false;
    for (size_t i = 0; i < sizeof k_st_dtypes / sizeof k_st_dtypes[0]; i++)
        if (strcmp(dtype->valuestring, k_st_dtypes[i].name) == 0) {
            t->dtype = k_st_dtypes[i].dt;
            known = true;
        }
    if (!known) {
        for (size_t i = 0; i < sizeof k_st_other_dtypes / sizeof k_st_other_dtypes[0]; i++)
            if (strcmp(dtype->valuestring, k_st_other_dtypes[i]) == 0)
                return ssd_fail(err, SSD_ERR_UNSUPPORTED,
                                "%s: tensor \"%s\": dtype %s is not supported (F32, BF16, F64, F16, "
                                "I64 are)",
                                path, nm, dtype->valuestring);
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: tensor \"%s\": unknown dtype \"%.40s\" (supported: F32, BF16, F64, F16, "
                        "I64)",
                        path, nm, dtype->valuestring);
    }

    int ndim = cJSON_GetArraySize(shape);
    if (ndim > SSD_MAX_DIMS)
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: tensor \"%s\": shape has %d dims, at most %d allowed", path, nm, ndim,
                        SSD_MAX_DIMS);
    t->ndim = ndim;
    t->device.kind = SSD_DEVICE_HOST;
    size_t esize = ssd_dtype_size(t->dtype);
    /* numel * esize, saturating at UINT64_MAX ("more than the file could hold"). */
    uint64_t bytes = esize;
    bool zero = false;
    int d = 0;
    for (const cJSON *v = shape->child; v; v = v->next, d++) {
        uint64_t dim;
        if (!json_uint(v, &dim, &why))
            return ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor \"%s\": shape[%d] %s", path, nm, d,
                            why);
        t->shape[d] = (int64_t)dim;
        if (dim == 0) zero = true;
    }
    if (zero) {
        bytes = 0;
    } else {
        for (d = 0; d < ndim; d++) {
            uint64_t dim = (uint64_t)t->shape[d];
            if (bytes > UINT64_MAX / dim) {
                bytes = UINT64_MAX;
                break;
            }
            bytes *= dim;
        }
    }

    if (cJSON_GetArraySize(offs) != 2)
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: tensor \"%s\": \"data_offsets\" has %d entries, expected [begin, end]",
                        path, nm, cJSON_GetArraySize(offs));
    uint64_t b, en;
    if (!json_uint(offs->child, &b, &why) || !json_uint(offs->child->next, &en, &why))
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor \"%s\": a data offset %s", path, nm, why);
    if (en < b)
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: tensor \"%s\": data_offsets [%llu, %llu] end before begin", path, nm,
                        (unsigned long long)b, (unsigned long long)en);
    if (en > data_len)
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: tensor \"%s\": data_offsets [%llu, %llu] outside the %llu-byte data "
                        "section",
                        path, nm, (unsigned long long)b, (unsigned long long)en,
                        (unsigned long long)data_len);
    char sh[128], need[64];
    if (bytes == UINT64_MAX) snprintf(need, sizeof need, "more than 2^64");
    else snprintf(need, sizeof need, "%llu", (unsigned long long)bytes);
    if (bytes != en - b)
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: tensor \"%s\": %s %s needs %s bytes but data_offsets [%llu, %llu] "
                        "span %llu",
                        path, nm, dtype->valuestring, ssd_shape_str(t, sh, sizeof sh), need,
                        (unsigned long long)b, (unsigned long long)en,
                        (unsigned long long)(en - b));
    range->begin = b;
    range->end = en;
    return SSD_OK;
}

ssd_status ssd_st_read(const char *path, ssd_st_file **out, ssd_error *err) {
    ssd_status st = SSD_OK;
    FILE *fp = NULL;
    char *hdr = NULL;
    cJSON *root = NULL;
    st_range *ranges = NULL;
    ssd_st_file *f = NULL;
    *out = NULL;

    if (!host_is_little_endian())
        return ssd_fail(err, SSD_ERR_UNSUPPORTED, "%s: safetensors needs a little-endian host",
                        path);
    fp = fopen(path, "rb");
    if (!fp) return ssd_fail(err, SSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0) {
        st = ssd_fail(err, SSD_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        goto cleanup;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = ssd_fail(err, SSD_ERR_IO, "%s: not a regular file", path);
        goto cleanup;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    if (fsize < 8) {
        st = ssd_fail(err, SSD_ERR_FORMAT,
                      "%s: file is %llu bytes, shorter than the 8-byte header length field", path,
                      (unsigned long long)fsize);
        goto cleanup;
    }
    unsigned char lenb[8];
    if (fread(lenb, 1, 8, fp) != 8) {
        st = ssd_fail(err, SSD_ERR_IO, "%s: short read of the header length", path);
        goto cleanup;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | lenb[i];
    if (hlen > SSD_ST_MAX_HEADER) {
        st = ssd_fail(err, SSD_ERR_FORMAT,
                      "%s: header length %llu is absurd (limit %llu): not a safetensors file or "
                      "corrupt",
                      path, (unsigned long long)hlen, SSD_ST_MAX_HEADER);
        goto cleanup;
    }
    if (hlen > fsize - 8) {
        st = ssd_fail(err, SSD_ERR_FORMAT,
                      "%s: header length %llu is larger than the %llu bytes after the length "
                      "field (truncated file?)",
                      path, (unsigned long long)hlen, (unsigned long long)(fsize - 8));
        goto cleanup;
    }
    hdr = ssd_xmalloc((size_t)hlen + 1);
    if (fread(hdr, 1, (size_t)hlen, fp) != (size_t)hlen) {
        st = ssd_fail(err, SSD_ERR_IO, "%s: short read of the %llu-byte header", path,
                      (unsigned long long)hlen);
        goto cleanup;
    }
    hdr[hlen] = '\0';
    if (memchr(hdr, '\0', (size_t)hlen)) {
        st = ssd_fail(err, SSD_ERR_FORMAT, "%s: header contains a NUL byte (invalid JSON)", path);
        goto cleanup;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) {
        size_t at = end ? (size_t)(end - hdr) : 0;
        if (at > hlen) at = (size_t)hlen;
        st = ssd_fail(err, SSD_ERR_FORMAT,
                      "%s: header is not valid JSON (error near byte %zu: \"%.24s\")", path, at,
                      hdr + at);
        goto cleanup;
    }
    for (const char *p = end; p < hdr + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st = ssd_fail(
                err, SSD_ERR_FORMAT,
                "%s: header has trailing bytes after the JSON object (byte %zu: \"%.24s\")", path,
                (size_t)(p - hdr), p);
            goto cleanup;
        }
    if (!cJSON_IsObject(root)) {
        st = ssd_fail(err, SSD_ERR_FORMAT, "%s: header is %s, expected a JSON object", path,
                      json_type_name(root));
        goto cleanup;
    }

    f = ssd_xcalloc(1, sizeof *f);
    f->path = ssd_xstrdup(path);
    uint64_t data_len = fsize - 8 - hlen;
    f->data_len = (size_t)data_len;
    int n_entries = cJSON_GetArraySize(root);
    f->tensors = ssd_xcalloc((size_t)n_entries, sizeof(ssd_tensor));
    f->names = ssd_xcalloc((size_t)n_entries, sizeof(char *));
    f->own = ssd_xcalloc((size_t)n_entries, sizeof(void *));
    ranges = ssd_xcalloc((size_t)n_entries, sizeof(st_range));
    const cJSON *meta = NULL;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (meta) {
                st = ssd_fail(err, SSD_ERR_FORMAT, "%s: duplicate \"__metadata__\" entry", path);
                goto cleanup;
            }
            meta = e;
            continue;
        }
        int i = f->n;
        st = parse_entry(e, &f->tensors[i], &ranges[i], data_len, path, err);
        if (st != SSD_OK) goto cleanup;
        ranges[i].idx = i;
        f->names[i] = ssd_xstrdup(e->string);
        ssd_tensor_set_name(&f->tensors[i], e->string);
        f->n++;
    }
    if (meta) {
        st = parse_metadata(f, meta, path, err);
        if (st != SSD_OK) goto cleanup;
    }

    /* Name index for ssd_st_get, which also finds duplicate names (cJSON keeps every member
     * of an object, duplicates included). */
    {
        name_idx *pr = ssd_xmalloc((size_t)(f->n ? f->n : 1) * sizeof(name_idx));
        for (int i = 0; i < f->n; i++) {
            pr[i].name = f->names[i];
            pr[i].idx = i;
        }
        qsort(pr, (size_t)f->n, sizeof(name_idx), cmp_name_idx);
        f->by_name = ssd_xmalloc((size_t)(f->n ? f->n : 1) * sizeof(int));
        for (int i = 0; i < f->n; i++)
            f->by_name[i] = pr[i].idx;
        free(pr);
        for (int i = 1; i < f->n; i++)
            if (strcmp(f->names[f->by_name[i - 1]], f->names[f->by_name[i]]) == 0) {
                st = ssd_fail(err, SSD_ERR_FORMAT, "%s: duplicate tensor name \"%s\"", path,
                              f->names[f->by_name[i]]);
                goto cleanup;
            }
    }

    /* The data section must be covered exactly: sorted by offset, each tensor begins where the
     * previous ended, the first at 0, the last at the end of the file. */
    qsort(ranges, (size_t)f->n, sizeof(st_range), cmp_range);
    uint64_t pos = 0;
    for (int k = 0; k < f->n; k++) {
        const st_range *r = &ranges[k];
        if (r->begin > pos) {
            st = ssd_fail(err, SSD_ERR_FORMAT,
                          "%s: data section has a hole: bytes [%llu, %llu) belong to no tensor "
                          "(next is \"%s\")",
                          path, (unsigned long long)pos, (unsigned long long)r->begin,
                          f->names[r->idx]);
            goto cleanup;
        }
        if (r->begin < pos) {
            st = ssd_fail(err, SSD_ERR_FORMAT,
                          "%s: tensor \"%s\" data_offsets [%llu, %llu] overlap the previous "
                          "tensor \"%s\" (ends at %llu)",
                          path, f->names[r->idx], (unsigned long long)r->begin,
                          (unsigned long long)r->end, f->names[ranges[k - 1].idx],
                          (unsigned long long)pos);
            goto cleanup;
        }
        pos = r->end;
    }
    if (pos != data_len) {
        st = ssd_fail(err, SSD_ERR_FORMAT,
                      "%s: data section is %llu bytes but the tensors cover only [0, %llu): "
                      "trailing bytes or a hole",
                      path, (unsigned long long)data_len, (unsigned long long)pos);
        goto cleanup;
    }

    /* The data, read into a 64-byte aligned block so the views are aligned. */
    f->data = ssd_aligned_alloc(f->data_len);
    if (fread(f->data, 1, f->data_len, fp) != f->data_len) {
        st = ssd_fail(err, SSD_ERR_IO, "%s: short read of the %zu-byte data section", path,
                      f->data_len);
        goto cleanup;
    }
    for (int k = 0; k < f->n; k++) {
        int i = ranges[k].idx;
        ssd_tensor *t = &f->tensors[i];
        size_t esize = ssd_dtype_size(t->dtype);
        size_t nbytes = (size_t)(ranges[k].end - ranges[k].begin);
        unsigned char *src = f->data + ranges[k].begin;
        if (ranges[k].begin % esize != 0) { /* legal but misaligned: give it its own copy */
            f->own[i] = ssd_aligned_alloc(nbytes);
            memcpy(f->own[i], src, nbytes);
            t->data = f->own[i];
        } else {
            t->data = src;
        }
        t->owns = false;
    }

cleanup:
    if (fp) fclose(fp);
    free(hdr);
    cJSON_Delete(root);
    free(ranges);
    if (st != SSD_OK) {
        ssd_st_free(f);
        return st;
    }
    *out = f;
    return SSD_OK;
}

int ssd_st_count(const ssd_st_file *f) { return f->n; }

const ssd_tensor *ssd_st_at(const ssd_st_file *f, int i) {
    return (i >= 0 && i < f->n) ? &f->tensors[i] : NULL;
}

const char *ssd_st_name(const ssd_st_file *f, int i) {
    return (i >= 0 && i < f->n) ? f->names[i] : NULL;
}

const ssd_tensor *ssd_st_get(const ssd_st_file *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->names[f->by_name[mid]]);
        if (c == 0) return &f->tensors[f->by_name[mid]];
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const char *ssd_st_meta(const ssd_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

int ssd_st_meta_count(const ssd_st_file *f) { return f->n_meta; }
const char *ssd_st_meta_key(const ssd_st_file *f, int i) {
    return (i >= 0 && i < f->n_meta) ? f->meta_keys[i] : NULL;
}
const char *ssd_st_meta_value(const ssd_st_file *f, int i) {
    return (i >= 0 && i < f->n_meta) ? f->meta_vals[i] : NULL;
}

/* ---- writing ---- */

static ssd_status check_distinct(const char *const *names, int n, const char *path,
                                 const char *what, ssd_error *err) {
    if (n < 2) return SSD_OK;
    const char **s = ssd_xmalloc((size_t)n * sizeof(char *));
    memcpy(s, names, (size_t)n * sizeof(char *));
    qsort(s, (size_t)n, sizeof(char *), cmp_str_ptr);
    ssd_status st = SSD_OK;
    for (int i = 1; i < n && st == SSD_OK; i++)
        if (strcmp(s[i - 1], s[i]) == 0)
            st = ssd_fail(err, SSD_ERR_ARG, "%s: cannot write: duplicate %s \"%s\"", path, what,
                          s[i]);
    free(s);
    return st;
}

ssd_status ssd_st_write_meta(const char *path, const ssd_tensor *const *tensors, int n,
                             const char *const *meta_keys, const char *const *meta_values,
                             int n_meta, ssd_error *err) {
    if (!host_is_little_endian())
        return ssd_fail(err, SSD_ERR_UNSUPPORTED, "%s: safetensors needs a little-endian host",
                        path);
    if (n < 0 || n_meta < 0 || (n > 0 && !tensors) || (n_meta > 0 && (!meta_keys || !meta_values)))
        return ssd_fail(err, SSD_ERR_ARG, "%s: cannot write: bad tensor or metadata list", path);

    /* Validate everything before touching the disk. */
    const char **names = ssd_xmalloc((size_t)(n ? n : 1) * sizeof(char *));
    ssd_status st = SSD_OK;
    for (int i = 0; i < n && st == SSD_OK; i++) {
        const ssd_tensor *t = tensors[i];
        if (!t) {
            st = ssd_fail(err, SSD_ERR_ARG, "%s: cannot write: tensor %d is NULL", path, i);
            break;
        }
        names[i] = t->name;
        if (!t->name[0])
            st = ssd_fail(err, SSD_ERR_ARG, "%s: cannot write: tensor %d has no name", path, i);
        else if (strcmp(t->name, "__metadata__") == 0)
            st = ssd_fail(err, SSD_ERR_ARG, "%s: cannot write: \"__metadata__\" is reserved", path);
        else if (t->device.kind != SSD_DEVICE_HOST)
            st = ssd_fail(err, SSD_ERR_ARG,
                          "%s: cannot write: tensor \"%s\" is not on the host (download it first)",
                          path, t->name);
        else if (!st_dtype_str(t->dtype))
            st = ssd_fail(err, SSD_ERR_ARG, "%s: cannot write: tensor \"%s\" has a bad dtype", path,
                          t->name);
        else if (t->ndim < 0 || t->ndim > SSD_MAX_DIMS)
            st = ssd_fail(err, SSD_ERR_ARG, "%s: cannot write: tensor \"%s\" has rank %d", path,
                          t->name, t->ndim);
        else {
            for (int d = 0; d < t->ndim; d++)
                if (t->shape[d] < 0)
                    st = ssd_fail(err, SSD_ERR_ARG,
                                  "%s: cannot write: tensor \"%s\" has a negative dimension", path,
                                  t->name);
            if (st == SSD_OK && !t->data && ssd_tensor_nbytes(t) > 0)
                st = ssd_fail(err, SSD_ERR_ARG, "%s: cannot write: tensor \"%s\" has no data", path,
                              t->name);
        }
    }
    if (st == SSD_OK) st = check_distinct(names, n, path, "tensor name", err);
    free(names);
    if (st != SSD_OK) return st;
    for (int i = 0; i < n_meta; i++)
        if (!meta_keys[i] || !meta_values[i])
            return ssd_fail(err, SSD_ERR_ARG, "%s: cannot write: metadata entry %d is NULL", path,
                            i);
    st = check_distinct(meta_keys, n_meta, path, "metadata key", err);
    if (st != SSD_OK) return st;

    /* The header. */
    ssd_strbuf h = {0};
    ssd_sb_puts(&h, "{");
    bool first = true;
    if (n_meta > 0) {
        ssd_sb_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) ssd_sb_puts(&h, ",");
            ssd_sb_json_str(&h, meta_keys[i]);
            ssd_sb_puts(&h, ":");
            ssd_sb_json_str(&h, meta_values[i]);
        }
        ssd_sb_puts(&h, "}");
        first = false;
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const ssd_tensor *t = tensors[i];
        uint64_t nb = (uint64_t)ssd_tensor_nbytes(t);
        if (!first) ssd_sb_puts(&h, ",");
        first = false;
        ssd_sb_json_str(&h, t->name);
        ssd_sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_str(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            ssd_sb_printf(&h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        ssd_sb_printf(&h, "],\"data_offsets\":[%llu,", (unsigned long long)off);
        ssd_sb_printf(&h, "%llu]}", (unsigned long long)(off + nb));
        off += nb;
    }
    ssd_sb_puts(&h, "}");
    while (h.len % 8 != 0)
        ssd_sb_puts(&h, " ");
    if (h.len > SSD_ST_MAX_HEADER) {
        free(h.s);
        return ssd_fail(err, SSD_ERR_ARG, "%s: cannot write: header of %zu bytes exceeds the limit",
                        path, h.len);
    }

    /* Temp file, fsync, rename, fsync the directory. */
    ssd_atomic_file af;
    st = ssd_atomic_open(&af, path, err);
    if (st != SSD_OK) {
        ssd_sb_free(&h);
        return st;
    }
    unsigned char lenb[8];
    uint64_t hl = h.len;
    for (int i = 0; i < 8; i++)
        lenb[i] = (unsigned char)(hl >> (8 * i));
    bool ok = fwrite(lenb, 1, 8, af.fp) == 8 && fwrite(h.s, 1, h.len, af.fp) == h.len;
    for (int i = 0; ok && i < n; i++) {
        size_t nb = ssd_tensor_nbytes(tensors[i]);
        if (nb) ok = fwrite(tensors[i]->data, 1, nb, af.fp) == nb;
    }
    ssd_sb_free(&h);
    if (!ok) {
        st = ssd_fail(err, SSD_ERR_IO, "%s: writing %s failed: %s", path, af.tmp, strerror(errno));
        ssd_atomic_abort(&af);
        return st;
    }
    return ssd_atomic_commit(&af, err);
}

ssd_status ssd_st_write(const char *path, const ssd_tensor *const *tensors, int n, ssd_error *err) {
    return ssd_st_write_meta(path, tensors, n, NULL, NULL, 0, err);
}
