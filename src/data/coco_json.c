/* COCO instances JSON -> training/validation index, and its binary cache (coco_json.h).
 *
 * Parsing (ssd_coco_index_parse):
 *   1. The whole file is read into one buffer.
 *   2. A small scanner walks the buffer and, for every object key "segmentation", checks that its
 *      value is one well-formed JSON value and overwrites it in place with `0` followed by spaces
 *      (newlines are kept). The buffer keeps its length and line structure, so cJSON's error
 *      offsets and the line numbers we print still point into the file as the user has it, and
 *      cJSON builds one node where a COCO polygon list would cost dozens (the 448 MB train2017
 *      file is ~75% polygons and RLE counts). A value that is not well-formed is left alone for
 *      cJSON to report.
 *   3. cJSON builds the tree; we walk categories (label = 1-based file position), images (JSON
 *      order, an open-addressing hash from id to position), annotations (JSON order), validating
 *      every field the index needs and naming the JSON path in each error. When a key appears
 *      twice in one object the LAST one counts, as in Python's json module (the reference).
 *   4. The result is packed into one block laid out exactly like the cache file (below); the
 *      index's arrays point into it, so a parsed index and a cached one are the same thing and
 *      writing the cache is one write of the block.
 *
 * Cache file (little-endian; every section starts at a multiple of 8 bytes):
 *   0   char[8] magic "SSDCOIDX"      8  u32 version (1)           12 u32 header bytes (96)
 *   16  u64 json size                 24 i64 json mtime (ns since the epoch)
 *   32  i64 num_categories            40 i64 num_images_json       48 i64 num_samples
 *   56  i64 num_boxes                 64 i64 names_len             72 u64 path length (no NUL)
 *   80  u64 total file size           88 u64 reserved (0)
 *   96  json realpath + NUL, padded; category_ids i64[nc]; samples [ns] x 32 bytes, laid out as
 *       ssd_coco_sample (id i64, width i32, height i32, first_box u32, num_boxes u32,
 *       name_off u32, 4 zero bytes); boxes f32[nb][4]; labels i32[nb]; crowd u8[nb]; names
 *       (NUL-separated, names_len bytes); each section padded to 8 with zeros;
 *   end-8  u64 FNV-1a 64 of every byte before it.
 * The file name is coco_index-<FNV-1a 64 of the json realpath, 16 hex digits>.bin. Loading
 * checks magic, version, sizes against the file length, the checksum, that the stored path,
 * json size and mtime are the json's, and then every value an index user relies on (sample
 * boxes contiguous and in range, names inside the name block and non-empty, labels in range,
 * crowd 0/1, boxes finite with l <= r and t <= b, positive image sizes). Anything else is a
 * stale or corrupt cache: a warning (for corruption), a reparse, and a rewrite. On a big-endian
 * host the cache is not used (the block layout is the host's little-endian layout). */
#define _XOPEN_SOURCE 700 /* realpath (XSI), on top of the build's _POSIX_C_SOURCE */
#include "data/coco_json.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/mem.h"
#include "io/file.h"

#define MAX_EXACT_INT 9007199254740992.0 /* 2^53: ids must be whole numbers within it */
#define MAX_FILE_NAME 4095               /* bytes; PATH_MAX - 1 */
#define MAX_BOXES 2147483647u            /* 2^31 - 1 */

#define CACHE_MAGIC "SSDCOIDX"
#define CACHE_VERSION 1u
#define HDR_BYTES 96u

_Static_assert(sizeof(ssd_coco_sample) == 32 && offsetof(ssd_coco_sample, width) == 8 &&
                   offsetof(ssd_coco_sample, height) == 12 &&
                   offsetof(ssd_coco_sample, first_box) == 16 &&
                   offsetof(ssd_coco_sample, num_boxes) == 20 &&
                   offsetof(ssd_coco_sample, name_off) == 24,
               "the cache stores ssd_coco_sample as 32 bytes in this layout");
_Static_assert(sizeof(float) == 4, "boxes are IEEE single precision");

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define CACHE_USABLE 1
#else
#define CACHE_USABLE 0
#endif

/* ---- small helpers ---- */

static uint64_t fnv1a64(const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static uint64_t al8(uint64_t x) { return (x + 7u) & ~(uint64_t)7u; }

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get_u32(const unsigned char *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Shortest "%.Ng" that reads back to the same double, for messages. */
static const char *num_str(char buf[32], double v) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    return buf;
}

/* Open-addressing map int64 id -> int32 position (positions >= 0; -1 = empty slot). */
typedef struct id_map {
    int64_t *keys;
    int32_t *vals;
    size_t mask;
} id_map;

static void map_init(id_map *m, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 1) cap *= 2;
    m->keys = ssd_xmalloc(cap * sizeof *m->keys);
    m->vals = ssd_xmalloc(cap * sizeof *m->vals);
    for (size_t i = 0; i < cap; i++) m->vals[i] = -1;
    m->mask = cap - 1;
}
static void map_free(id_map *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}
static size_t map_slot(const id_map *m, int64_t key) {
    uint64_t x = (uint64_t)key; /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    size_t i = (size_t)x & m->mask;
    while (m->vals[i] >= 0 && m->keys[i] != key) i = (i + 1) & m->mask;
    return i;
}
static int32_t map_get(const id_map *m, int64_t key) { return m->vals[map_slot(m, key)]; }
/* Inserts key -> val, or returns the position already stored for key (and inserts nothing). */
static int32_t map_put(id_map *m, int64_t key, int32_t val) {
    size_t i = map_slot(m, key);
    if (m->vals[i] >= 0) return m->vals[i];
    m->keys[i] = key;
    m->vals[i] = val;
    return -1;
}

/* ---- step 2: blanking `segmentation` values ---- */

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* p at an opening quote: one past the closing quote of a valid JSON string, or NULL. */
static const char *skip_string_strict(const char *p, const char *end) {
    for (p++; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL;
        if (c == '\\') {
            if (++p >= end) return NULL;
            if (*p == 'u') {
                if (end - p < 5 || !is_hex(p[1]) || !is_hex(p[2]) || !is_hex(p[3]) ||
                    !is_hex(p[4]))
                    return NULL;
                p += 4;
            } else if (!strchr("\"\\/bfnrt", *p) || *p == '\0') {
                return NULL;
            }
        }
    }
    return NULL;
}

static const char *skip_digits(const char *p, const char *end) {
    while (p < end && *p >= '0' && *p <= '9') p++;
    return p;
}

/* A JSON number (RFC 8259 grammar), or NULL. */
static const char *skip_number(const char *p, const char *end) {
    if (p < end && *p == '-') p++;
    if (p >= end) return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        p = skip_digits(p, end);
    } else {
        return NULL;
    }
    if (p < end && *p == '.') {
        const char *q = skip_digits(p + 1, end);
        if (q == p + 1) return NULL;
        p = q;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        const char *q = skip_digits(p, end);
        if (q == p) return NULL;
        p = q;
    }
    return p;
}

/* One well-formed JSON value starting at p (no leading white space): returns one past its
 * end, or NULL when it is not well-formed before `end`. Iterative: any nesting depth. *stack
 * (capacity *cap) holds the closing bracket of every open container. */
static const char *skip_value(const char *p, const char *end, char **stack, size_t *cap) {
    size_t depth = 0;
    for (;;) {
        /* a value is expected at p */
        p = skip_ws(p, end);
        if (p >= end) return NULL;
        char c = *p;
        if (c == '{' || c == '[') {
            if (depth == *cap) {
                *cap = *cap ? 2 * *cap : 64;
                *stack = ssd_xrealloc(*stack, *cap);
            }
            (*stack)[depth++] = c == '{' ? '}' : ']';
            p = skip_ws(p + 1, end);
            if (p < end && *p == (*stack)[depth - 1]) {
                p++;
                depth--;
                goto after_value;
            }
            if (c == '[') continue;
            goto expect_key;
        } else if (c == '"') {
            p = skip_string_strict(p, end);
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            p = skip_number(p, end);
        } else if (end - p >= 4 && (!memcmp(p, "true", 4) || !memcmp(p, "null", 4))) {
            p += 4;
        } else if (end - p >= 5 && !memcmp(p, "false", 5)) {
            p += 5;
        } else {
            return NULL;
        }
        if (!p) return NULL;
    after_value:
        for (;;) {
            if (depth == 0) return p;
            p = skip_ws(p, end);
            if (p >= end) return NULL;
            if (*p == (*stack)[depth - 1]) {
                p++;
                depth--;
                continue;
            }
            if (*p != ',') return NULL;
            p++;
            if ((*stack)[depth - 1] == ']') break; /* next array element */
            goto expect_key;
        }
        continue;
    expect_key:
        p = skip_ws(p, end);
        if (p >= end || *p != '"' || !(p = skip_string_strict(p, end))) return NULL;
        p = skip_ws(p, end);
        if (p >= end || *p != ':') return NULL;
        p++;
    }
}

/* Overwrites the value of every "segmentation" key with `0` and spaces (newlines kept). */
static void blank_segmentations(char *buf, size_t len) {
    static const char key[] = "segmentation";
    const size_t klen = sizeof key - 1;
    const char *end = buf + len;
    char *stack = NULL;
    size_t cap = 0;
    char *p = buf;
    while (p < end && (p = memchr(p, '"', (size_t)(end - p))) != NULL) {
        /* p opens a string (outside strings every quote does): find its closing quote */
        char *s = p + 1, *q = s;
        while (q < end && *q != '"') q += *q == '\\' ? 2 : 1;
        if (q >= end) break;
        p = q + 1;
        if ((size_t)(q - s) != klen || memcmp(s, key, klen) != 0) continue;
        const char *colon = skip_ws(p, end);
        if (colon >= end || *colon != ':') continue;
        char *v = (char *)skip_ws(colon + 1, end);
        const char *ve = skip_value(v, end, &stack, &cap);
        if (!ve) continue; /* malformed: cJSON will say where */
        v[0] = '0';
        for (char *x = v + 1; x < ve; x++)
            if (*x != '\n') *x = ' ';
        p = (char *)ve;
    }
    free(stack);
}

/* ---- step 3: the tree -> validated records ---- */

typedef struct parsed {
    int ncat;
    int64_t *cat_ids;
    size_t nimg;
    int64_t *img_id;
    int32_t *img_w, *img_h;
    const char **img_name; /* into the cJSON tree */
    uint32_t *img_count;   /* annotations per image */
    size_t nann;
    uint32_t *ann_img;
    int32_t *ann_label;
    uint8_t *ann_crowd;
    float *ann_box; /* [nann][4] */
} parsed;

static void parsed_free(parsed *p) {
    free(p->cat_ids);
    free(p->img_id);
    free(p->img_w);
    free(p->img_h);
    free(p->img_name);
    free(p->img_count);
    free(p->ann_img);
    free(p->ann_label);
    free(p->ann_crowd);
    free(p->ann_box);
    memset(p, 0, sizeof *p);
}

/* "<file>: <array>[<i>]<rest>" as an SSD_ERR_FORMAT. */
static ssd_status bad(ssd_error *err, const char *file, const char *array, size_t i,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static ssd_status bad(ssd_error *err, const char *file, const char *array, size_t i,
                      const char *fmt, ...) {
    char rest[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rest, sizeof rest, fmt, ap);
    va_end(ap);
    return ssd_fail(err, SSD_ERR_FORMAT, "%s: %s[%zu]%s", file, array, i, rest);
}

/* The value of KEY in OBJ; the last one when the key repeats (Python's json keeps the last). */
static const cJSON *member(const cJSON *obj, const char *key) {
    const cJSON *found = NULL;
    for (const cJSON *c = obj->child; c; c = c->next)
        if (c->string && strcmp(c->string, key) == 0) found = c;
    return found;
}

typedef struct where {
    const char *file, *array;
    size_t i;
} where;

/* A whole number in [lo, hi] under KEY. */
static ssd_status get_int(const cJSON *obj, const char *key, double lo, double hi,
                          const where *w, int64_t *out, ssd_error *err) {
    const cJSON *v = member(obj, key);
    char nb[32];
    if (!v) return bad(err, w->file, w->array, w->i, ".%s: missing", key);
    if (!cJSON_IsNumber(v)) return bad(err, w->file, w->array, w->i, ".%s: not a number", key);
    double d = v->valuedouble;
    if (!isfinite(d))
        return bad(err, w->file, w->array, w->i, ".%s: not a finite number", key);
    if (d != floor(d))
        return bad(err, w->file, w->array, w->i, ".%s: %s is not a whole number", key,
                   num_str(nb, d));
    if (d < lo || d > hi) {
        char lb[32], hb[32];
        return bad(err, w->file, w->array, w->i, ".%s: %s is out of range [%s, %s]", key,
                   num_str(nb, d), num_str(lb, lo), num_str(hb, hi));
    }
    *out = (int64_t)d;
    return SSD_OK;
}

static ssd_status walk_categories(const cJSON *cats, const char *file, parsed *p, id_map *cmap,
                                  ssd_error *err) {
    size_t n = 0;
    for (const cJSON *e = cats->child; e; e = e->next) n++;
    if (n > SSD_COCO_MAX_CATEGORIES)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: categories: %zu categories, more than %d", file,
                        n, SSD_COCO_MAX_CATEGORIES);
    p->cat_ids = ssd_xmalloc((n + 1) * sizeof *p->cat_ids);
    map_init(cmap, n);
    where w = {file, "categories", 0};
    for (const cJSON *e = cats->child; e; e = e->next, w.i++) {
        if (!cJSON_IsObject(e)) return bad(err, file, "categories", w.i, ": not an object");
        int64_t id;
        ssd_status st = get_int(e, "id", -MAX_EXACT_INT, MAX_EXACT_INT, &w, &id, err);
        if (st != SSD_OK) return st;
        int32_t prev = map_put(cmap, id, (int32_t)w.i);
        if (prev >= 0)
            return bad(err, file, "categories", w.i, ".id %lld appears twice (also categories[%d])",
                       (long long)id, prev);
        p->cat_ids[w.i] = id;
    }
    p->ncat = (int)n;
    return SSD_OK;
}

static ssd_status walk_images(const cJSON *imgs, const char *file, parsed *p, id_map *imap,
                              ssd_error *err) {
    size_t n = 0;
    for (const cJSON *e = imgs->child; e; e = e->next) n++;
    if (n > (size_t)INT32_MAX)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: images: %zu images, more than 2^31 - 1", file, n);
    p->img_id = ssd_xmalloc((n + 1) * sizeof *p->img_id);
    p->img_w = ssd_xmalloc((n + 1) * sizeof *p->img_w);
    p->img_h = ssd_xmalloc((n + 1) * sizeof *p->img_h);
    p->img_name = ssd_xmalloc((n + 1) * sizeof *p->img_name);
    p->img_count = ssd_xcalloc(n + 1, sizeof *p->img_count);
    map_init(imap, n);
    where w = {file, "images", 0};
    for (const cJSON *e = imgs->child; e; e = e->next, w.i++) {
        if (!cJSON_IsObject(e)) return bad(err, file, "images", w.i, ": not an object");
        int64_t id, wd, ht;
        ssd_status st = get_int(e, "id", -MAX_EXACT_INT, MAX_EXACT_INT, &w, &id, err);
        if (st == SSD_OK) st = get_int(e, "width", 1, INT32_MAX, &w, &wd, err);
        if (st == SSD_OK) st = get_int(e, "height", 1, INT32_MAX, &w, &ht, err);
        if (st != SSD_OK) return st;
        const cJSON *fn = member(e, "file_name");
        if (!fn) return bad(err, file, "images", w.i, ".file_name: missing");
        if (!cJSON_IsString(fn) || !fn->valuestring)
            return bad(err, file, "images", w.i, ".file_name: not a string");
        size_t flen = strlen(fn->valuestring);
        if (flen == 0) return bad(err, file, "images", w.i, ".file_name: empty");
        if (flen > MAX_FILE_NAME)
            return bad(err, file, "images", w.i, ".file_name: %zu bytes, longer than %d", flen,
                       MAX_FILE_NAME);
        int32_t prev = map_put(imap, id, (int32_t)w.i);
        if (prev >= 0)
            return bad(err, file, "images", w.i, ".id %lld appears twice (also images[%d])",
                       (long long)id, prev);
        p->img_id[w.i] = id;
        p->img_w[w.i] = (int32_t)wd;
        p->img_h[w.i] = (int32_t)ht;
        p->img_name[w.i] = fn->valuestring;
    }
    p->nimg = n;
    return SSD_OK;
}

static ssd_status walk_annotations(const cJSON *anns, const char *file, parsed *p,
                                   const id_map *imap, const id_map *cmap, ssd_error *err) {
    size_t n = 0;
    for (const cJSON *e = anns->child; e; e = e->next) n++;
    if (n > MAX_BOXES)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: annotations: %zu boxes, more than 2^31 - 1",
                        file, n);
    p->ann_img = ssd_xmalloc((n + 1) * sizeof *p->ann_img);
    p->ann_label = ssd_xmalloc((n + 1) * sizeof *p->ann_label);
    p->ann_crowd = ssd_xmalloc(n + 1);
    p->ann_box = ssd_xmalloc((n + 1) * 4 * sizeof *p->ann_box);
    where w = {file, "annotations", 0};
    for (const cJSON *e = anns->child; e; e = e->next, w.i++) {
        const size_t i = w.i;
        if (!cJSON_IsObject(e)) return bad(err, file, "annotations", i, ": not an object");
        int64_t image_id, cat_id, crowd = 0;
        ssd_status st = get_int(e, "image_id", -MAX_EXACT_INT, MAX_EXACT_INT, &w, &image_id, err);
        if (st == SSD_OK)
            st = get_int(e, "category_id", -MAX_EXACT_INT, MAX_EXACT_INT, &w, &cat_id, err);
        if (st == SSD_OK && member(e, "iscrowd")) st = get_int(e, "iscrowd", 0, 1, &w, &crowd, err);
        if (st != SSD_OK) return st;
        int32_t img = map_get(imap, image_id);
        if (img < 0)
            return bad(err, file, "annotations", i, ".image_id %lld: no image has this id",
                       (long long)image_id);
        int32_t cat = map_get(cmap, cat_id);
        if (cat < 0)
            return bad(err, file, "annotations", i, ".category_id %lld: no category has this id",
                       (long long)cat_id);

        const cJSON *bb = member(e, "bbox");
        if (!bb) return bad(err, file, "annotations", i, ".bbox: missing");
        if (!cJSON_IsArray(bb))
            return bad(err, file, "annotations", i, ".bbox: not an array [x, y, w, h]");
        double v[4];
        int k = 0;
        char nb[32];
        for (const cJSON *x = bb->child; x; x = x->next, k++) {
            if (k == 4) break;
            if (!cJSON_IsNumber(x))
                return bad(err, file, "annotations", i, ".bbox[%d]: not a number", k);
            if (!isfinite(x->valuedouble))
                return bad(err, file, "annotations", i, ".bbox[%d]: not a finite number", k);
            v[k] = x->valuedouble;
        }
        if (k != 4 || cJSON_GetArraySize(bb) != 4)
            return bad(err, file, "annotations", i, ".bbox: %d elements, not 4 [x, y, w, h]",
                       cJSON_GetArraySize(bb));
        if (v[2] < 0)
            return bad(err, file, "annotations", i, ".bbox[2]: negative width %s",
                       num_str(nb, v[2]));
        if (v[3] < 0)
            return bad(err, file, "annotations", i, ".bbox[3]: negative height %s",
                       num_str(nb, v[3]));
        /* the reference: (l/W, t/H, (l+w)/W, (t+h)/H) in float64, then torch.tensor -> float32 */
        const double W = p->img_w[img], H = p->img_h[img];
        float *o = p->ann_box + 4 * i;
        o[0] = (float)(v[0] / W);
        o[1] = (float)(v[1] / H);
        o[2] = (float)((v[0] + v[2]) / W);
        o[3] = (float)((v[1] + v[3]) / H);
        for (int j = 0; j < 4; j++)
            if (!isfinite(o[j]))
                return bad(err, file, "annotations", i,
                           ".bbox: the normalised box overflows float32 (image %lldx%lld)",
                           (long long)p->img_w[img], (long long)p->img_h[img]);
        p->ann_img[i] = (uint32_t)img;
        p->ann_label[i] = cat + 1;
        p->ann_crowd[i] = (uint8_t)crowd;
        p->img_count[img]++;
    }
    p->nann = n;
    return SSD_OK;
}

/* "<file>: malformed JSON near byte N (line L)<what>" */
static ssd_status malformed(ssd_error *err, const char *file, const char *buf, size_t len,
                            size_t off, const char *what) {
    if (off > len) off = len;
    size_t line = 1;
    for (const char *q = buf; (q = memchr(q, '\n', (size_t)(buf + off - q))) != NULL; q++) line++;
    return ssd_fail(err, SSD_ERR_FORMAT, "%s: malformed JSON near byte %zu (line %zu)%s", file,
                    off, line, what);
}

static const cJSON *top_array(const cJSON *root, const char *key, const char *file,
                              ssd_status *st, ssd_error *err) {
    const cJSON *a = member(root, key);
    if (!a) {
        *st = ssd_fail(err, SSD_ERR_FORMAT, "%s: %s: missing (no \"%s\" key at the top level)",
                       file, key, key);
        return NULL;
    }
    if (!cJSON_IsArray(a)) {
        *st = ssd_fail(err, SSD_ERR_FORMAT, "%s: %s: not an array", file, key);
        return NULL;
    }
    return a;
}

/* Parses buf (len bytes + a NUL; modified: segmentations blanked) into *p. */
static ssd_status parse_buffer(char *buf, size_t len, const char *file, parsed *p, cJSON **tree,
                               ssd_error *err) {
    memset(p, 0, sizeof *p);
    blank_segmentations(buf, len);
    const char *stop = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &stop, false);
    *tree = root;
    if (!root) {
        size_t off = stop && stop >= buf ? (size_t)(stop - buf) : len;
        return malformed(err, file, buf, len, off, "");
    }
    const char *after = skip_ws(stop, buf + len);
    if (after < buf + len)
        return malformed(err, file, buf, len, (size_t)(after - buf),
                         ": extra data after the top-level value");
    if (!cJSON_IsObject(root))
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: the top level is not a JSON object", file);
    ssd_status st = SSD_OK;
    const cJSON *cats = top_array(root, "categories", file, &st, err);
    const cJSON *imgs = cats ? top_array(root, "images", file, &st, err) : NULL;
    const cJSON *anns = imgs ? top_array(root, "annotations", file, &st, err) : NULL;
    if (!anns) return st;
    id_map cmap = {0}, imap = {0};
    st = walk_categories(cats, file, p, &cmap, err);
    if (st == SSD_OK) st = walk_images(imgs, file, p, &imap, err);
    if (st == SSD_OK) st = walk_annotations(anns, file, p, &imap, &cmap, err);
    map_free(&cmap);
    map_free(&imap);
    return st;
}

/* ---- step 4: the block (= the cache file) ---- */

typedef struct layout {
    uint64_t path, cats, samples, boxes, labels, crowd, names, trailer, total;
} layout;

static layout make_layout(uint64_t path_len, uint64_t nc, uint64_t ns, uint64_t nb, uint64_t nl) {
    layout L;
    L.path = HDR_BYTES;
    L.cats = L.path + al8(path_len + 1);
    L.samples = L.cats + 8 * nc;
    L.boxes = L.samples + 32 * ns;
    L.labels = L.boxes + 16 * nb;
    L.crowd = L.labels + al8(4 * nb);
    L.names = L.crowd + al8(nb);
    L.trailer = L.names + al8(nl);
    L.total = L.trailer + 8;
    return L;
}

typedef struct json_meta {
    const char *path; /* realpath, "" when unknown */
    uint64_t size;
    int64_t mtime_ns;
} json_meta;

/* The private owner of an index: the public struct first, then the block its arrays live in. */
typedef struct owned_index {
    ssd_coco_index idx;
    unsigned char *block;
} owned_index;

static unsigned char *pack(const parsed *p, const json_meta *meta, size_t *block_len,
                           const char *file, ssd_error *err) {
    size_t ns = 0, names_len = 0;
    for (size_t i = 0; i < p->nimg; i++)
        if (p->img_count[i]) {
            ns++;
            names_len += strlen(p->img_name[i]) + 1;
        }
    if (names_len > UINT32_MAX) {
        ssd_fail(err, SSD_ERR_FORMAT, "%s: the file names take %zu bytes, more than 4 GiB", file,
                 names_len);
        return NULL;
    }
    size_t path_len = strlen(meta->path);
    layout L = make_layout(path_len, (uint64_t)p->ncat, ns, p->nann, names_len);
    unsigned char *b = ssd_xcalloc(1, L.total);
    memcpy(b, CACHE_MAGIC, 8);
    put_u32(b + 8, CACHE_VERSION);
    put_u32(b + 12, HDR_BYTES);
    put_u64(b + 16, meta->size);
    put_u64(b + 24, (uint64_t)meta->mtime_ns);
    put_u64(b + 32, (uint64_t)p->ncat);
    put_u64(b + 40, p->nimg);
    put_u64(b + 48, ns);
    put_u64(b + 56, p->nann);
    put_u64(b + 64, names_len);
    put_u64(b + 72, path_len);
    put_u64(b + 80, L.total);
    memcpy(b + L.path, meta->path, path_len);

    memcpy(b + L.cats, p->cat_ids, (size_t)p->ncat * sizeof(int64_t));
    /* samples, and each image's first box: a stable counting sort of annotations by image */
    uint32_t *first = ssd_xmalloc((p->nimg + 1) * sizeof *first);
    ssd_coco_sample *smp = (ssd_coco_sample *)(b + L.samples);
    char *names = (char *)(b + L.names);
    uint32_t box = 0, name_off = 0;
    size_t s = 0;
    for (size_t i = 0; i < p->nimg; i++) {
        first[i] = box;
        if (!p->img_count[i]) continue;
        smp[s] = (ssd_coco_sample){.image_id = p->img_id[i],
                                   .width = p->img_w[i],
                                   .height = p->img_h[i],
                                   .first_box = box,
                                   .num_boxes = p->img_count[i],
                                   .name_off = name_off};
        size_t fl = strlen(p->img_name[i]) + 1;
        memcpy(names + name_off, p->img_name[i], fl);
        name_off += (uint32_t)fl;
        box += p->img_count[i];
        s++;
    }
    float *boxes = (float *)(b + L.boxes);
    int32_t *labels = (int32_t *)(b + L.labels);
    uint8_t *crowd = b + L.crowd;
    for (size_t a = 0; a < p->nann; a++) {
        uint32_t d = first[p->ann_img[a]]++;
        memcpy(boxes + 4 * (size_t)d, p->ann_box + 4 * a, 4 * sizeof(float));
        labels[d] = p->ann_label[a];
        crowd[d] = p->ann_crowd[a];
    }
    free(first);
    put_u64(b + L.trailer, fnv1a64(b, L.trailer));
    *block_len = L.total;
    return b;
}

/* Validates a block of n bytes (the cache file format) and points *idx into it. With `want`,
 * the stored json path/size/mtime must match it. On failure writes the reason to why and
 * sets *stale when the block is intact but for another version of the json. */
static bool check_block(const unsigned char *b, size_t n, const json_meta *want,
                        ssd_coco_index *idx, char *why, size_t whylen, bool *stale) {
    *stale = false;
#define FAIL(...)                               \
    do {                                        \
        snprintf(why, whylen, __VA_ARGS__);     \
        return false;                           \
    } while (0)
    if (n < HDR_BYTES + 8) FAIL("%zu bytes, shorter than a header", n);
    if (memcmp(b, CACHE_MAGIC, 8) != 0) FAIL("bad magic");
    if (get_u32(b + 8) != CACHE_VERSION)
        FAIL("format version %u, this program writes %u", get_u32(b + 8), CACHE_VERSION);
    if (get_u32(b + 12) != HDR_BYTES) FAIL("header size %u", get_u32(b + 12));
    uint64_t total = get_u64(b + 80);
    if (total != n) FAIL("header says %llu bytes, the file has %zu", (unsigned long long)total, n);
    uint64_t nc = get_u64(b + 32), nimg = get_u64(b + 40), ns = get_u64(b + 48);
    uint64_t nb = get_u64(b + 56), nl = get_u64(b + 64), pl = get_u64(b + 72);
    if (nc > SSD_COCO_MAX_CATEGORIES || ns > nimg || nimg > INT32_MAX || nb > MAX_BOXES ||
        nl > UINT32_MAX || pl > n || ns > nb)
        FAIL("counts out of range");
    layout L = make_layout(pl, nc, ns, nb, nl);
    if (L.total != n) FAIL("counts need %llu bytes, the file has %zu",
                           (unsigned long long)L.total, n);
    if (get_u64(b + L.trailer) != fnv1a64(b, L.trailer)) FAIL("checksum mismatch");
    /* intact: is it for this json? */
    if (want) {
        if (pl != strlen(want->path) || memcmp(b + L.path, want->path, pl) != 0) {
            *stale = true;
            FAIL("made for another json file");
        }
        if (get_u64(b + 16) != want->size || (int64_t)get_u64(b + 24) != want->mtime_ns) {
            *stale = true;
            FAIL("the json changed since (size or modification time differs)");
        }
    }
    /* every value an index user relies on */
    const ssd_coco_sample *smp = (const ssd_coco_sample *)(b + L.samples);
    const char *names = (const char *)(b + L.names);
    if (nl > 0 && names[nl - 1] != '\0') FAIL("file names not NUL-terminated");
    uint64_t next = 0;
    for (uint64_t i = 0; i < ns; i++) {
        const ssd_coco_sample *s = &smp[i];
        if (s->width <= 0 || s->height <= 0) FAIL("sample %llu: bad image size",
                                                  (unsigned long long)i);
        if (s->first_box != next || s->num_boxes == 0 || s->num_boxes > nb - next)
            FAIL("sample %llu: boxes out of order or range", (unsigned long long)i);
        next += s->num_boxes;
        if (s->name_off >= nl || names[s->name_off] == '\0')
            FAIL("sample %llu: file name out of range or empty", (unsigned long long)i);
    }
    if (next != nb) FAIL("boxes not all owned by samples");
    const float *boxes = (const float *)(b + L.boxes);
    const int32_t *labels = (const int32_t *)(b + L.labels);
    const uint8_t *crowd = b + L.crowd;
    for (uint64_t k = 0; k < nb; k++) {
        const float *o = boxes + 4 * k;
        if (labels[k] < 1 || (uint64_t)labels[k] > nc || crowd[k] > 1)
            FAIL("box %llu: label or crowd flag out of range", (unsigned long long)k);
        if (!(isfinite(o[0]) && isfinite(o[1]) && isfinite(o[2]) && isfinite(o[3]) &&
              o[0] <= o[2] && o[1] <= o[3]))
            FAIL("box %llu: not finite or inverted", (unsigned long long)k);
    }
#undef FAIL
    idx->num_categories = (int)nc;
    idx->category_ids = (int64_t *)(b + L.cats);
    idx->num_images_json = (int64_t)nimg;
    idx->num_samples = (int64_t)ns;
    idx->samples = (ssd_coco_sample *)(b + L.samples);
    idx->num_boxes = (int64_t)nb;
    idx->boxes = (float *)(b + L.boxes);
    idx->labels = (int32_t *)(b + L.labels);
    idx->crowd = (uint8_t *)(b + L.crowd);
    idx->names = (char *)(b + L.names);
    idx->names_len = (int64_t)nl;
    return true;
}

static ssd_coco_index *adopt_block(unsigned char *block, const ssd_coco_index *view) {
    owned_index *o = ssd_xmalloc(sizeof *o);
    o->idx = *view;
    o->block = block;
    return &o->idx;
}

/* Reads and parses PATH (messages name it) into a packed block described by meta. */
static ssd_status parse_to_block(const char *path, const json_meta *meta, unsigned char **block,
                                 size_t *block_len, ssd_error *err) {
    *block = NULL;
    char *buf = NULL;
    size_t len = 0;
    ssd_status st = ssd_read_file(path, &buf, &len, err);
    if (st != SSD_OK) return st;
    parsed p;
    cJSON *tree = NULL;
    st = parse_buffer(buf, len, path, &p, &tree, err);
    if (st == SSD_OK) {
        *block = pack(&p, meta, block_len, path, err);
        if (!*block) st = SSD_ERR_FORMAT;
    }
    cJSON_Delete(tree);
    parsed_free(&p);
    free(buf);
    return st;
}

static ssd_coco_index *index_from_new_block(unsigned char *block, size_t len) {
    ssd_coco_index view;
    char why[256];
    bool stale;
    bool ok = check_block(block, len, NULL, &view, why, sizeof why, &stale);
    SSD_ASSERT(ok, "a freshly packed COCO index fails its own check: %s", why);
    return adopt_block(block, &view);
}

ssd_status ssd_coco_index_parse(const char *json_path, ssd_coco_index **out, ssd_error *err) {
    *out = NULL;
    json_meta meta = {"", 0, 0};
    unsigned char *block;
    size_t len;
    ssd_status st = parse_to_block(json_path, &meta, &block, &len, err);
    if (st != SSD_OK) return st;
    *out = index_from_new_block(block, len);
    return SSD_OK;
}

/* ---- the cache ---- */

char *ssd_cache_dir(const char *cache_dir) {
    if (cache_dir) return cache_dir[0] ? ssd_xstrdup(cache_dir) : NULL;
    const char *env = getenv("SSD_CACHE_DIR");
    if (env) return env[0] ? ssd_xstrdup(env) : NULL; /* set but empty: caching off */
    const char *base = getenv("XDG_CACHE_HOME"), *sub = "/ssd";
    if (!base || base[0] != '/') { /* the XDG spec: relative values are ignored */
        base = getenv("HOME");
        sub = "/.cache/ssd";
        if (!base || !base[0]) return NULL;
    }
    size_t n = strlen(base) + strlen(sub) + 1;
    char *d = ssd_xmalloc(n);
    snprintf(d, n, "%s%s", base, sub);
    return d;
}

ssd_status ssd_coco_index_load(const char *json_path, const char *cache_dir,
                               ssd_coco_index **out, bool *from_cache, ssd_error *err) {
    *out = NULL;
    if (from_cache) *from_cache = false;
    char *dir = CACHE_USABLE ? ssd_cache_dir(cache_dir) : NULL;
    char *real = dir ? realpath(json_path, NULL) : NULL;
    struct stat sb;
    if (!real || stat(real, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        /* no cache, or the json is not there: a plain parse says what is wrong */
        free(real);
        free(dir);
        return ssd_coco_index_parse(json_path, out, err);
    }
    json_meta meta = {real, (uint64_t)sb.st_size,
                      (int64_t)sb.st_mtim.tv_sec * 1000000000 + (int64_t)sb.st_mtim.tv_nsec};
    size_t cplen = strlen(dir) + 64;
    char *cpath = ssd_xmalloc(cplen);
    snprintf(cpath, cplen, "%s/coco_index-%016llx.bin", dir,
             (unsigned long long)fnv1a64(real, strlen(real)));

    ssd_status st = SSD_OK;
    struct stat cs;
    if (stat(cpath, &cs) == 0) {
        char *buf = NULL;
        size_t len = 0;
        ssd_error rerr;
        if (ssd_read_file(cpath, &buf, &len, &rerr) != SSD_OK) {
            SSD_WARN("COCO index cache %s unreadable (%s); parsing %s", cpath, rerr.msg,
                     json_path);
        } else {
            ssd_coco_index view;
            char why[256];
            bool stale;
            if (check_block((unsigned char *)buf, len, &meta, &view, why, sizeof why, &stale)) {
                *out = adopt_block((unsigned char *)buf, &view);
                if (from_cache) *from_cache = true;
                goto cleanup;
            }
            if (stale)
                SSD_INFO("COCO index cache %s is stale (%s); parsing %s", cpath, why, json_path);
            else
                SSD_WARN("COCO index cache %s is corrupt (%s); rebuilding it from %s", cpath, why,
                         json_path);
            free(buf);
        }
    }

    unsigned char *block;
    size_t blen;
    st = parse_to_block(json_path, &meta, &block, &blen, err);
    if (st != SSD_OK) goto cleanup;
    *out = index_from_new_block(block, blen);
    /* cache it only if the json did not change while we read it */
    struct stat after;
    if (stat(real, &after) != 0 || after.st_size != sb.st_size ||
        after.st_mtim.tv_sec != sb.st_mtim.tv_sec || after.st_mtim.tv_nsec != sb.st_mtim.tv_nsec) {
        SSD_WARN("%s changed while it was parsed; its index is not cached", json_path);
        goto cleanup;
    }
    ssd_error derr;
    if (ssd_make_dirs(dir, &derr) != SSD_OK) {
        SSD_WARN("COCO index cache not written (%s); the index is only in memory", derr.msg);
        goto cleanup;
    }
    ssd_error werr;
    if (ssd_write_file_atomic(cpath, block, blen, &werr) != SSD_OK)
        SSD_WARN("COCO index cache not written: %s", werr.msg);

cleanup:
    free(cpath);
    free(real);
    free(dir);
    return st;
}

void ssd_coco_index_free(ssd_coco_index *idx) {
    if (!idx) return;
    owned_index *o = (owned_index *)idx;
    free(o->block);
    free(o);
}

int64_t ssd_coco_label_to_id(const ssd_coco_index *idx, int label) {
    if (label < 1 || label > idx->num_categories) return 0;
    return idx->category_ids[label - 1];
}

int ssd_coco_split_paths(const char *root, const char *split, char *ann, size_t ann_len,
                         char *images, size_t images_len) {
    int a = snprintf(ann, ann_len, "%s/annotations/instances_%s2017.json", root, split);
    int b = snprintf(images, images_len, "%s/%s2017", root, split);
    return a < 0 || (size_t)a >= ann_len || b < 0 || (size_t)b >= images_len ? -1 : 0;
}
