/* COCO ground truth and results json (coco.h). */
#include "eval/coco.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/strbuf.h"
#include "io/file.h"

#define MAX_EXACT_INT 9007199254740992.0 /* 2^53 */

/* ---- reading ---- */

/* Where a record is, for messages: "<name>: annotations[17]". */
typedef struct where {
    const char *name, *array;
    size_t index;
} where;

static ssd_status bad(ssd_error *err, const where *w, const char *key, const char *what) {
    return ssd_fail(err, SSD_ERR_FORMAT, "%s: %s[%zu].%s: %s", w->name, w->array, w->index, key,
                    what);
}

static ssd_status get_number(const cJSON *obj, const char *key, const where *w, double *out,
                             ssd_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return bad(err, w, key, "missing");
    if (!cJSON_IsNumber(v)) return bad(err, w, key, "not a number");
    if (!isfinite(v->valuedouble)) return bad(err, w, key, "not a finite number");
    *out = v->valuedouble;
    return SSD_OK;
}

static ssd_status get_id(const cJSON *obj, const char *key, const where *w, int64_t *out,
                         ssd_error *err) {
    double d;
    ssd_status st = get_number(obj, key, w, &d, err);
    if (st != SSD_OK) return st;
    if (d != floor(d) || fabs(d) > MAX_EXACT_INT)
        return bad(err, w, key, "not an integer (ids must be whole numbers up to 2^53)");
    *out = (int64_t)d;
    return SSD_OK;
}

static ssd_status get_bbox(const cJSON *obj, const where *w, double bb[4], ssd_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "bbox");
    if (!v) return bad(err, w, "bbox", "missing");
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 4)
        return bad(err, w, "bbox", "not an array of 4 numbers [x, y, w, h]");
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble))
            return bad(err, w, "bbox", "not an array of 4 finite numbers [x, y, w, h]");
        bb[i] = e->valuedouble;
    }
    return SSD_OK;
}

static ssd_status parse_root(const char *json, size_t len, const char *name, cJSON **root,
                             ssd_error *err) {
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    if (!*root) {
        size_t off = end && end >= json ? (size_t)(end - json) : 0;
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: malformed JSON near byte %zu", name, off);
    }
    return SSD_OK;
}

static const cJSON *get_array(const cJSON *root, const char *key, const char *name,
                              ssd_status *st, ssd_error *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!a || !cJSON_IsArray(a)) {
        *st = ssd_fail(err, SSD_ERR_FORMAT, "%s: no \"%s\" array at the top level", name, key);
        return NULL;
    }
    return a;
}

static int json_int_or0(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble < 1e9)) return 0;
    return (int)v->valuedouble;
}

ssd_status ssd_coco_gt_parse(const char *json, size_t len, const char *name, ssd_coco_gt *gt,
                             ssd_error *err) {
    memset(gt, 0, sizeof *gt);
    cJSON *root = NULL;
    ssd_status st = parse_root(json, len, name, &root, err);
    if (st != SSD_OK) return st;
    if (!cJSON_IsObject(root)) {
        st = ssd_fail(err, SSD_ERR_FORMAT, "%s: the top level is not a JSON object", name);
        goto cleanup;
    }
    const cJSON *imgs = get_array(root, "images", name, &st, err);
    const cJSON *cats = imgs ? get_array(root, "categories", name, &st, err) : NULL;
    const cJSON *anns = cats ? get_array(root, "annotations", name, &st, err) : NULL;
    if (!anns) goto cleanup;

    gt->n_images = cJSON_GetArraySize(imgs);
    gt->images = ssd_xcalloc((size_t)gt->n_images + 1, sizeof *gt->images);
    where w = {name, "images", 0};
    for (const cJSON *e = imgs->child; e; e = e->next, w.index++) {
        if (!cJSON_IsObject(e)) {
            st = ssd_fail(err, SSD_ERR_FORMAT, "%s: images[%zu] is not an object", name, w.index);
            goto cleanup;
        }
        ssd_coco_image *im = &gt->images[w.index];
        if ((st = get_id(e, "id", &w, &im->id, err)) != SSD_OK) goto cleanup;
        im->width = json_int_or0(e, "width");
        im->height = json_int_or0(e, "height");
    }
    gt->n_categories = cJSON_GetArraySize(cats);
    gt->category_ids = ssd_xcalloc((size_t)gt->n_categories + 1, sizeof(int64_t));
    w = (where){name, "categories", 0};
    for (const cJSON *e = cats->child; e; e = e->next, w.index++) {
        if (!cJSON_IsObject(e)) {
            st = ssd_fail(err, SSD_ERR_FORMAT, "%s: categories[%zu] is not an object", name,
                          w.index);
            goto cleanup;
        }
        if ((st = get_id(e, "id", &w, &gt->category_ids[w.index], err)) != SSD_OK) goto cleanup;
    }
    gt->n_anns = (size_t)cJSON_GetArraySize(anns);
    gt->anns = ssd_xcalloc(gt->n_anns + 1, sizeof *gt->anns);
    w = (where){name, "annotations", 0};
    for (const cJSON *e = anns->child; e; e = e->next, w.index++) {
        if (!cJSON_IsObject(e)) {
            st = ssd_fail(err, SSD_ERR_FORMAT, "%s: annotations[%zu] is not an object", name,
                          w.index);
            goto cleanup;
        }
        ssd_coco_ann *a = &gt->anns[w.index];
        int64_t crowd;
        if ((st = get_id(e, "id", &w, &a->id, err)) != SSD_OK ||
            (st = get_id(e, "image_id", &w, &a->image_id, err)) != SSD_OK ||
            (st = get_id(e, "category_id", &w, &a->category_id, err)) != SSD_OK ||
            (st = get_bbox(e, &w, a->bbox, err)) != SSD_OK ||
            (st = get_number(e, "area", &w, &a->area, err)) != SSD_OK)
            goto cleanup;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "iscrowd");
        if (cJSON_IsBool(c)) {
            crowd = cJSON_IsTrue(c);
        } else if ((st = get_id(e, "iscrowd", &w, &crowd, err)) != SSD_OK) {
            goto cleanup;
        }
        a->iscrowd = crowd != 0;
    }

cleanup:
    cJSON_Delete(root);
    if (st != SSD_OK) ssd_coco_gt_free(gt);
    return st;
}

ssd_status ssd_coco_gt_load(const char *path, ssd_coco_gt *gt, ssd_error *err) {
    char *buf;
    size_t len;
    memset(gt, 0, sizeof *gt);
    ssd_status st = ssd_read_file(path, &buf, &len, err);
    if (st != SSD_OK) return st;
    st = ssd_coco_gt_parse(buf, len, path, gt, err);
    free(buf);
    return st;
}

void ssd_coco_gt_free(ssd_coco_gt *gt) {
    free(gt->images);
    free(gt->category_ids);
    free(gt->anns);
    memset(gt, 0, sizeof *gt);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int64_t *ssd_coco_sorted_unique(const int64_t *ids, size_t n, int *out_n) {
    int64_t *u = ssd_xmalloc((n + 1) * sizeof *u);
    if (n) memcpy(u, ids, n * sizeof *u);
    qsort(u, n, sizeof *u, cmp_i64);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || u[i] != u[m - 1]) u[m++] = u[i];
    *out_n = (int)m;
    return u;
}

int64_t *ssd_coco_image_ids(const ssd_coco_gt *gt, int *n) {
    int64_t *ids = ssd_xmalloc(((size_t)gt->n_images + 1) * sizeof *ids);
    for (int i = 0; i < gt->n_images; i++)
        ids[i] = gt->images[i].id;
    int64_t *u = ssd_coco_sorted_unique(ids, (size_t)gt->n_images, n);
    free(ids);
    return u;
}

int ssd_coco_find_id(const int64_t *sorted, int n, int64_t id) {
    const int64_t *p = bsearch(&id, sorted, (size_t)n, sizeof *sorted, cmp_i64);
    return p ? (int)(p - sorted) : -1;
}

void ssd_coco_dets_push(ssd_coco_dets *dets, int64_t image_id, int64_t category_id,
                        const double bbox[4], double score) {
    /* Grow geometrically: capacity is the next power of two above n. */
    size_t n = dets->n;
    if ((n & (n - 1)) == 0) dets->d = ssd_xrealloc(dets->d, (n ? 2 * n : 1) * sizeof *dets->d);
    ssd_coco_ann *a = &dets->d[n];
    memset(a, 0, sizeof *a);
    a->id = (int64_t)n + 1;
    a->image_id = image_id;
    a->category_id = category_id;
    memcpy(a->bbox, bbox, 4 * sizeof(double));
    a->area = bbox[2] * bbox[3];
    a->score = score;
    dets->n = n + 1;
}

ssd_status ssd_coco_dets_parse(const char *json, size_t len, const char *name,
                               const ssd_coco_gt *gt, ssd_coco_dets *dets, ssd_error *err) {
    memset(dets, 0, sizeof *dets);
    cJSON *root = NULL;
    ssd_status st = parse_root(json, len, name, &root, err);
    if (st != SSD_OK) return st;
    int n_ids;
    int64_t *ids = ssd_coco_image_ids(gt, &n_ids);
    if (!cJSON_IsArray(root)) {
        st = ssd_fail(err, SSD_ERR_FORMAT,
                      "%s: the top level is not a JSON array of detections [{image_id, "
                      "category_id, bbox, score}, ...]",
                      name);
        goto cleanup;
    }
    where w = {name, "detections", 0};
    for (const cJSON *e = root->child; e; e = e->next, w.index++) {
        if (!cJSON_IsObject(e)) {
            st = ssd_fail(err, SSD_ERR_FORMAT, "%s: detections[%zu] is not an object", name,
                          w.index);
            goto cleanup;
        }
        int64_t img, cat;
        double bb[4], score;
        if ((st = get_id(e, "image_id", &w, &img, err)) != SSD_OK ||
            (st = get_id(e, "category_id", &w, &cat, err)) != SSD_OK ||
            (st = get_bbox(e, &w, bb, err)) != SSD_OK ||
            (st = get_number(e, "score", &w, &score, err)) != SSD_OK)
            goto cleanup;
        if (ssd_coco_find_id(ids, n_ids, img) < 0) {
            st = ssd_fail(err, SSD_ERR_FORMAT,
                          "%s: detections[%zu].image_id %lld is not an image of the ground truth",
                          name, w.index, (long long)img);
            goto cleanup;
        }
        ssd_coco_dets_push(dets, img, cat, bb, score);
    }

cleanup:
    free(ids);
    cJSON_Delete(root);
    if (st != SSD_OK) ssd_coco_dets_free(dets);
    return st;
}

ssd_status ssd_coco_dets_load(const char *path, const ssd_coco_gt *gt, ssd_coco_dets *dets,
                              ssd_error *err) {
    char *buf;
    size_t len;
    memset(dets, 0, sizeof *dets);
    ssd_status st = ssd_read_file(path, &buf, &len, err);
    if (st != SSD_OK) return st;
    st = ssd_coco_dets_parse(buf, len, path, gt, dets, err);
    free(buf);
    return st;
}

void ssd_coco_dets_free(ssd_coco_dets *dets) {
    free(dets->d);
    memset(dets, 0, sizeof *dets);
}

/* ---- writing ---- */

/* The first record whose box (or score / area) is not finite, or n. */
static size_t first_non_finite(const ssd_coco_ann *a, size_t n, bool score, bool area) {
    for (size_t i = 0; i < n; i++) {
        bool finite = (!score || isfinite(a[i].score)) && (!area || isfinite(a[i].area));
        for (int k = 0; k < 4; k++)
            finite = finite && isfinite(a[i].bbox[k]);
        if (!finite) return i;
    }
    return n;
}

static void put_bbox(ssd_strbuf *b, const double bb[4]) {
    ssd_sb_puts(b, "\"bbox\":[");
    for (int k = 0; k < 4; k++) {
        if (k) ssd_sb_puts(b, ",");
        ssd_sb_json_double(b, bb[k]);
    }
    ssd_sb_puts(b, "]");
}

ssd_status ssd_coco_gt_write(const char *path, const ssd_coco_gt *gt, ssd_error *err) {
    size_t bad = first_non_finite(gt->anns, gt->n_anns, false, true);
    if (bad < gt->n_anns)
        return ssd_fail(err, SSD_ERR_ARG,
                        "%s: cannot write: annotation %zu has a non-finite box or area", path, bad);
    ssd_atomic_file af;
    ssd_status st = ssd_atomic_open(&af, path, err);
    if (st != SSD_OK) return st;
    ssd_strbuf b = {0};
    ssd_sb_puts(&b, "{\"images\":[");
    for (int i = 0; i < gt->n_images; i++) {
        const ssd_coco_image *im = &gt->images[i];
        ssd_sb_printf(&b, "%s\n{\"id\":%lld", i ? "," : "", (long long)im->id);
        if (im->width > 0 && im->height > 0)
            ssd_sb_printf(&b, ",\"width\":%d,\"height\":%d", im->width, im->height);
        ssd_sb_puts(&b, "}");
    }
    ssd_sb_puts(&b, "],\n\"categories\":[");
    for (int k = 0; k < gt->n_categories; k++)
        ssd_sb_printf(&b, "%s{\"id\":%lld,\"name\":\"c%lld\"}", k ? "," : "",
                      (long long)gt->category_ids[k], (long long)gt->category_ids[k]);
    ssd_sb_puts(&b, "],\n\"annotations\":[");
    fwrite(b.s, 1, b.len, af.fp);
    for (size_t i = 0; i < gt->n_anns; i++) {
        const ssd_coco_ann *a = &gt->anns[i];
        b.len = 0;
        ssd_sb_printf(&b, "%s\n{\"id\":%lld,\"image_id\":%lld,\"category_id\":%lld,", i ? "," : "",
                      (long long)a->id, (long long)a->image_id, (long long)a->category_id);
        put_bbox(&b, a->bbox);
        ssd_sb_puts(&b, ",\"area\":");
        ssd_sb_json_double(&b, a->area);
        ssd_sb_printf(&b, ",\"iscrowd\":%d}", a->iscrowd ? 1 : 0);
        fwrite(b.s, 1, b.len, af.fp);
    }
    fputs("\n]}\n", af.fp);
    ssd_sb_free(&b);
    return ssd_atomic_commit(&af, err);
}

ssd_status ssd_coco_dets_write(const char *path, const ssd_coco_dets *dets, ssd_error *err) {
    size_t bad = first_non_finite(dets->d, dets->n, true, false);
    if (bad < dets->n)
        return ssd_fail(err, SSD_ERR_ARG,
                        "%s: cannot write: detection %zu has a non-finite box or score", path, bad);
    ssd_atomic_file af;
    ssd_status st = ssd_atomic_open(&af, path, err);
    if (st != SSD_OK) return st;
    ssd_strbuf b = {0};
    fputs("[", af.fp);
    for (size_t i = 0; i < dets->n; i++) {
        const ssd_coco_ann *a = &dets->d[i];
        b.len = 0;
        ssd_sb_printf(&b, "%s{\"image_id\":%lld,\"category_id\":%lld,", i ? ",\n" : "\n",
                      (long long)a->image_id, (long long)a->category_id);
        put_bbox(&b, a->bbox);
        ssd_sb_puts(&b, ",\"score\":");
        ssd_sb_json_double(&b, a->score);
        ssd_sb_puts(&b, "}");
        fwrite(b.s, 1, b.len, af.fp);
    }
    fputs("\n]\n", af.fp);
    ssd_sb_free(&b);
    return ssd_atomic_commit(&af, err);
}
