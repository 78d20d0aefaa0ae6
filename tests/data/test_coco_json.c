/* The COCO annotation index (data/coco_json.h) and its binary cache.
 *
 * Oracle: tools/coco_index_oracle.py, an independent re-statement of the reference's
 * COCODetection with Python's json module (label map in file order, images keyed by id in JSON
 * order, annotations appended per image, empty images dropped, float64 -> float32 boxes),
 * compared EXACTLY (float32 bit patterns) with our index on
 *   - tests/fixtures/data/coco_index_small.json (hand-written: sparse category ids in
 *     non-ascending order, category id 0, image id 0 and a negative and a > 2^32 id, images
 *     without annotations, annotations out of image order, crowd boxes with RLE counts lists and
 *     strings full of brackets and escaped quotes, a repeated key, zero-size and out-of-image
 *     boxes, exponent-notation numbers, segmentations pretty-printed over several lines),
 *   - a file from tools/make_big_instances.py (3 MB, seed 7),
 *   - ../shared/data/coco_tiny/annotations/instances_{train,val}2017.json (skipped, with the
 *     reason printed, when that directory is absent).
 * The fixture's structure is also asserted directly, so the core checks run without Python.
 * Cache: cold/warm identity, invalidation by mtime and content, bytes flipped and files cut at
 * many offsets, semantically bad files with a correct checksum (the test recomputes FNV-1a 64
 * itself), a cache made for another json, unwritable and disabled cache directories, the
 * $SSD_CACHE_DIR / $XDG_CACHE_HOME defaults. Errors: every malformed input is SSD_ERR_FORMAT
 * naming the file and the JSON path (or the byte and line for broken JSON); a missing file is
 * SSD_ERR_IO naming it. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/strbuf.h"
#include "data/coco_json.h"
#include "io/file.h"
#include "testutil.h"

#define TEST "test_coco_json"

static char g_scratch[1024], g_src[1024], g_py[1024];
static int g_have_py; /* the oracle can run */

static const char *fixture(char *buf, size_t len) {
    snprintf(buf, len, "%s/tests/fixtures/data/coco_index_small.json", g_src);
    return buf;
}

static const char *scratch(char *buf, size_t len, const char *name) {
    snprintf(buf, len, "%s/%s", g_scratch, name);
    return buf;
}

/* An empty directory at scratch/name. */
static const char *fresh_dir(char *buf, size_t len, const char *name) {
    scratch(buf, len, name);
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "rm -rf \"%s\" && mkdir -p \"%s\"", buf, buf);
    assert_int_equal(system(cmd), 0);
    return buf;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void write_text(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

static void set_mtime(const char *path, long sec) {
    struct timespec ts[2] = {{sec, 123456789}, {sec, 123456789}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static int setup(void **state) {
    (void)state;
    if (tu_source_dir(g_src, sizeof g_src) != 0) return -1;
    tu_scratch_dir(TEST, g_scratch, sizeof g_scratch);
    const char *py = tu_env("SSD_PYTHON_TORCH");
    snprintf(g_py, sizeof g_py, "%s", py ? py : "/usr/bin/python3");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "\"%s\" -c \"import json, struct\" >/dev/null 2>&1", g_py);
    g_have_py = access(g_py, X_OK) == 0 && system(cmd) == 0;
    if (!g_have_py) {
        char why[1200];
        snprintf(why, sizeof why,
                 "python '%s' not usable: the oracle comparisons are skipped (the fixture's "
                 "direct checks still run)", g_py);
        tu_skip(TEST, why);
    }
    return 0;
}

/* ---- comparisons ---- */

static void assert_same_index(const ssd_coco_index *a, const ssd_coco_index *b) {
    assert_int_equal(a->num_categories, b->num_categories);
    assert_int_equal(a->num_images_json, b->num_images_json);
    assert_int_equal(a->num_samples, b->num_samples);
    assert_int_equal(a->num_boxes, b->num_boxes);
    assert_int_equal(a->names_len, b->names_len);
    assert_memory_equal(a->category_ids, b->category_ids,
                        (size_t)a->num_categories * sizeof(int64_t));
    assert_memory_equal(a->samples, b->samples, (size_t)a->num_samples * sizeof(ssd_coco_sample));
    assert_memory_equal(a->boxes, b->boxes, (size_t)a->num_boxes * 4 * sizeof(float));
    assert_memory_equal(a->labels, b->labels, (size_t)a->num_boxes * sizeof(int32_t));
    assert_memory_equal(a->crowd, b->crowd, (size_t)a->num_boxes);
    assert_memory_equal(a->names, b->names, (size_t)a->names_len);
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Runs the oracle on JSON and compares every field of idx with it, exactly. */
static void compare_with_oracle(const char *json, const ssd_coco_index *idx) {
    if (!g_have_py) return;
    char out[1200], cmd[4096];
    scratch(out, sizeof out, "oracle.json");
    remove(out);
    snprintf(cmd, sizeof cmd, "\"%s\" \"%s/tools/coco_index_oracle.py\" \"%s\" \"%s\"", g_py,
             g_src, json, out);
    assert_int_equal(tu_system(cmd), 0);
    cJSON *o = tu_read_json(out);
    const cJSON *cats = cJSON_GetObjectItem(o, "category_ids");
    const cJSON *samples = cJSON_GetObjectItem(o, "samples");
    assert_int_equal(cJSON_GetArraySize(cats), idx->num_categories);
    for (int i = 0; i < idx->num_categories; i++) {
        assert_true(cJSON_GetArrayItem(cats, i)->valuedouble == (double)idx->category_ids[i]);
        assert_int_equal(ssd_coco_label_to_id(idx, i + 1), idx->category_ids[i]);
    }
    assert_true(cJSON_GetObjectItem(o, "num_images_json")->valuedouble ==
                (double)idx->num_images_json);
    assert_true(cJSON_GetObjectItem(o, "num_annotations")->valuedouble == (double)idx->num_boxes);
    assert_int_equal(cJSON_GetArraySize(samples), idx->num_samples);
    int64_t mismatches = 0, i = 0, nbox = 0;
    for (const cJSON *s = samples->child; s; s = s->next, i++) {
        const ssd_coco_sample *m = &idx->samples[i];
        assert_true(cJSON_GetObjectItem(s, "image_id")->valuedouble == (double)m->image_id);
        assert_int_equal(cJSON_GetObjectItem(s, "width")->valueint, m->width);
        assert_int_equal(cJSON_GetObjectItem(s, "height")->valueint, m->height);
        assert_string_equal(cJSON_GetObjectItem(s, "file_name")->valuestring,
                            ssd_coco_file_name(idx, i));
        const cJSON *boxes = cJSON_GetObjectItem(s, "boxes");
        assert_int_equal(cJSON_GetArraySize(boxes), m->num_boxes);
        assert_int_equal(m->first_box, nbox);
        int k = 0;
        for (const cJSON *b = boxes->child; b; b = b->next, k++) {
            int64_t j = m->first_box + k;
            double want[6];
            for (int c = 0; c < 6; c++) want[c] = cJSON_GetArrayItem(b, c)->valuedouble;
            double got[6] = {idx->labels[j], idx->crowd[j]};
            for (int c = 0; c < 4; c++) got[2 + c] = f32_bits(idx->boxes[4 * j + c]);
            if (memcmp(want, got, sizeof want) != 0) {
                if (mismatches++ < 10)
                    printf("sample %lld box %d: ours label %g crowd %g bits %08llx %08llx %08llx "
                           "%08llx, oracle %g %g %08llx %08llx %08llx %08llx\n",
                           (long long)i, k, got[0], got[1], (unsigned long long)got[2],
                           (unsigned long long)got[3], (unsigned long long)got[4],
                           (unsigned long long)got[5], want[0], want[1],
                           (unsigned long long)want[2], (unsigned long long)want[3],
                           (unsigned long long)want[4], (unsigned long long)want[5]);
            }
        }
        nbox += m->num_boxes;
    }
    assert_int_equal(nbox, idx->num_boxes);
    assert_int_equal(mismatches, 0);
    printf("oracle agrees on %s: %d categories, %lld images, %lld samples, %lld boxes\n", json,
           idx->num_categories, (long long)idx->num_images_json, (long long)idx->num_samples,
           (long long)idx->num_boxes);
    cJSON_Delete(o);
}

static ssd_coco_index *parse_ok(const char *path) {
    ssd_coco_index *idx = NULL;
    ssd_error err;
    ssd_status st = ssd_coco_index_parse(path, &idx, &err);
    if (st != SSD_OK) fail_msg("%s", err.msg);
    return idx;
}

static ssd_coco_index *load_ok(const char *path, const char *cache, bool want_cached) {
    ssd_coco_index *idx = NULL;
    ssd_error err;
    bool cached = !want_cached;
    ssd_status st = ssd_coco_index_load(path, cache, &idx, &cached, &err);
    if (st != SSD_OK) fail_msg("%s", err.msg);
    assert_int_equal(cached, want_cached);
    return idx;
}

/* ---- the fixture, the generated file and coco_tiny against the oracle ---- */

static void test_fixture(void **state) {
    (void)state;
    char path[1200];
    ssd_coco_index *idx = parse_ok(fixture(path, sizeof path));
    /* the structure, stated by hand (independent of Python) */
    static const int64_t cats[] = {90, 3, 17, 1, 0, 44, 2};
    assert_int_equal(idx->num_categories, 7);
    assert_memory_equal(idx->category_ids, cats, sizeof cats);
    assert_int_equal(idx->num_images_json, 7);
    static const int64_t ids[] = {0, 123456789012LL, 7, 42, 8}; /* 5 and -3 have no boxes */
    static const uint32_t counts[] = {3, 2, 1, 2, 1};
    static const char *const names[] = {"id_zero.jpg", "big/id \xc3\xa9 \"quoted\".jpg",
                                        "tiny.jpg", "odd.jpg", "last.jpg"};
    assert_int_equal(idx->num_samples, 5);
    assert_int_equal(idx->num_boxes, 9);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(idx->samples[i].image_id, ids[i]);
        assert_int_equal(idx->samples[i].num_boxes, counts[i]);
        assert_string_equal(ssd_coco_file_name(idx, i), names[i]);
    }
    assert_int_equal(idx->samples[0].width, 333);
    assert_int_equal(idx->samples[0].height, 500);
    /* image 0's boxes in annotation order: ids 2 (crowd, category 90), 3 (category 3), 8 */
    static const int32_t labels[] = {1, 2, 3, 4, 6, 5, 3, 1, 6};
    static const uint8_t crowd[] = {1, 0, 0, 0, 0, 1, 0, 0, 0};
    assert_memory_equal(idx->labels, labels, sizeof labels);
    assert_memory_equal(idx->crowd, crowd, sizeof crowd);
    assert_true(idx->boxes[0] == (float)(0.1 / 333));
    assert_true(idx->boxes[2] == (float)((0.1 + 0.30000000000000004) / 333));
    assert_true(idx->boxes[3] == (float)((0.2 + 100.0) / 500));
    /* annotation 5 repeats "bbox": the last one counts, as in Python's json */
    const float *b5 = idx->boxes + 4 * 8;
    assert_true(b5[0] == (float)(166.66666666666666 / 500));
    assert_true(b5[1] == (float)(150.0 / 375));
    assert_true(b5[2] == (float)((166.66666666666666 + 333.3333333333333) / 500));
    assert_true(b5[3] == (float)((150.0 + 225.00000000000003) / 375));
    assert_int_equal(ssd_coco_label_to_id(idx, 1), 90);
    assert_int_equal(ssd_coco_label_to_id(idx, 5), 0);
    assert_int_equal(ssd_coco_label_to_id(idx, 7), 2);
    assert_int_equal(ssd_coco_label_to_id(idx, 0), 0);
    assert_int_equal(ssd_coco_label_to_id(idx, 8), 0);
    assert_int_equal(ssd_coco_label_to_id(idx, -1), 0);
    compare_with_oracle(path, idx);
    ssd_coco_index_free(idx);
    ssd_coco_index_free(NULL);
}

static void test_generated(void **state) {
    (void)state;
    if (!g_have_py) skip();
    char path[1200], cmd[4096], log[1200], out[4096];
    scratch(path, sizeof path, "generated.json");
    scratch(log, sizeof log, "generated.log");
    snprintf(cmd, sizeof cmd,
             "\"%s\" \"%s/tools/make_big_instances.py\" \"%s\" --size-mb 3 --seed 7", g_py, g_src,
             path);
    assert_int_equal(tu_run_capture(cmd, log, out, sizeof out), 0);
    cJSON *rep = cJSON_Parse(out);
    assert_non_null(rep);
    ssd_coco_index *idx = parse_ok(path);
    assert_int_equal(idx->num_categories, 80);
    assert_true((double)idx->num_images_json == cJSON_GetObjectItem(rep, "images")->valuedouble);
    assert_true((double)(idx->num_images_json - idx->num_samples) ==
                cJSON_GetObjectItem(rep, "images_without_annotations")->valuedouble);
    assert_true((double)idx->num_boxes == cJSON_GetObjectItem(rep, "annotations")->valuedouble);
    int64_t ncrowd = 0;
    for (int64_t k = 0; k < idx->num_boxes; k++) ncrowd += idx->crowd[k];
    assert_true(ncrowd > 0);
    compare_with_oracle(path, idx);
    cJSON_Delete(rep);
    ssd_coco_index_free(idx);
    remove(path);
}

static void test_coco_tiny(void **state) {
    (void)state;
    static const struct {
        const char *split;
        int64_t images, anns, crowd;
    } k[] = {{"train2017", 80, 705, 6}, {"val2017", 80, 815, 11}};
    /* spec 6.1: label i -> COCO category id */
    static const int64_t ids[80] = {
        1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
        22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
        46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
        67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90};
    for (int s = 0; s < 2; s++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/../shared/data/coco_tiny/annotations/instances_%s.json",
                 g_src, k[s].split);
        if (access(path, R_OK) != 0) {
            char why[1400];
            snprintf(why, sizeof why, "%s is absent (coco_tiny lives outside the repository)",
                     path);
            tu_skip(TEST, why);
            skip();
        }
        ssd_coco_index *idx = parse_ok(path);
        assert_int_equal(idx->num_images_json, k[s].images);
        assert_int_equal(idx->num_boxes, k[s].anns);
        /* every coco_tiny image has annotations: none is dropped */
        assert_int_equal(idx->num_samples, k[s].images);
        int64_t crowd = 0;
        for (int64_t b = 0; b < idx->num_boxes; b++) crowd += idx->crowd[b];
        assert_int_equal(crowd, k[s].crowd);
        assert_int_equal(idx->num_categories, 80);
        assert_memory_equal(idx->category_ids, ids, sizeof ids);
        compare_with_oracle(path, idx);
        ssd_coco_index_free(idx);
    }
}

/* ---- the cache ---- */

/* The one coco_index-*.bin in DIR (asserted). */
static const char *cache_file(const char *dir, char *buf, size_t len) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int found = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "coco_index-", 11) == 0 && n > 4 &&
            strcmp(e->d_name + n - 4, ".bin") == 0) {
            snprintf(buf, len, "%s/%s", dir, e->d_name);
            found++;
        }
    }
    closedir(d);
    assert_int_equal(found, 1);
    return buf;
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void test_cache_round_trip(void **state) {
    (void)state;
    char path[1200], dir[1200], cf[1400];
    fixture(path, sizeof path);
    fresh_dir(dir, sizeof dir, "cache_rt/nested/deeper"); /* created by mkdir -p */
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "rm -rf \"%s/cache_rt\"", g_scratch);
    assert_int_equal(system(cmd), 0);
    ssd_coco_index *ref = parse_ok(path);
    ssd_coco_index *cold = load_ok(path, dir, false);
    ssd_coco_index *warm = load_ok(path, dir, true);
    ssd_coco_index *again = load_ok(path, dir, true);
    assert_same_index(ref, cold);
    assert_same_index(ref, warm);
    assert_same_index(ref, again);
    cache_file(dir, cf, sizeof cf);
    assert_int_equal(count_entries(dir), 1); /* no temp file left behind */
    /* the same file through another spelling of its path: same realpath, same cache */
    char other[2400];
    snprintf(other, sizeof other, "%s/tests/fixtures/../fixtures/data/./coco_index_small.json",
             g_src);
    ssd_coco_index *alias = load_ok(other, dir, true);
    assert_same_index(ref, alias);
    compare_with_oracle(path, warm);
    ssd_coco_index_free(ref);
    ssd_coco_index_free(cold);
    ssd_coco_index_free(warm);
    ssd_coco_index_free(again);
    ssd_coco_index_free(alias);
}

static void test_cache_invalidation(void **state) {
    (void)state;
    char src[1200], path[1200], dir[1200];
    fixture(src, sizeof src);
    scratch(path, sizeof path, "inval.json");
    fresh_dir(dir, sizeof dir, "cache_inval");
    char *text;
    size_t len;
    ssd_error err;
    assert_int_equal(ssd_read_file(src, &text, &len, &err), SSD_OK);
    write_text(path, text);
    set_mtime(path, 1600000000);
    ssd_coco_index *a = load_ok(path, dir, false);
    ssd_coco_index_free(load_ok(path, dir, true));
    /* touched: rebuilt, same content */
    set_mtime(path, 1600000001);
    ssd_coco_index *b = load_ok(path, dir, false);
    assert_same_index(a, b);
    ssd_coco_index_free(load_ok(path, dir, true));
    /* only the nanoseconds differ */
    struct timespec ts[2] = {{1600000001, 5}, {1600000001, 5}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
    ssd_coco_index_free(load_ok(path, dir, false));
    /* modified (same size, new mtime): the new content is what we get */
    char *p = strstr(text, "\"tiny.jpg\"");
    assert_non_null(p);
    memcpy(p, "\"tinY.jpg\"", 10);
    write_text(path, text);
    set_mtime(path, 1600000002);
    ssd_coco_index *c = load_ok(path, dir, false);
    assert_string_equal(ssd_coco_file_name(c, 2), "tinY.jpg");
    ssd_coco_index *d = load_ok(path, dir, true);
    assert_same_index(c, d);
    /* another size: a bigger box list for image 8 */
    p = strstr(text, "\"annotations\": [");
    assert_non_null(p);
    ssd_strbuf sb = {0};
    ssd_sb_putn(&sb, text, (size_t)(p - text) + 16);
    ssd_sb_puts(&sb, "{\"image_id\": 8, \"category_id\": 2, \"bbox\": [1, 2, 3, 4]},");
    ssd_sb_puts(&sb, p + 16);
    write_text(path, sb.s);
    ssd_coco_index *e = load_ok(path, dir, false);
    assert_int_equal(e->num_boxes, 10);
    assert_int_equal(e->samples[4].num_boxes, 2);
    assert_int_equal(e->labels[e->samples[4].first_box], 7);
    compare_with_oracle(path, e);
    ssd_sb_free(&sb);
    free(text);
    ssd_coco_index_free(a);
    ssd_coco_index_free(b);
    ssd_coco_index_free(c);
    ssd_coco_index_free(d);
    ssd_coco_index_free(e);
    assert_int_equal(count_entries(dir), 1);
}

/* FNV-1a 64, the cache checksum (standard constants), written again here. */
static uint64_t fnv1a(const unsigned char *p, size_t n) {
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static uint64_t rd64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void wr64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* Section offsets of a cache file as coco_json.c documents them. */
typedef struct sections {
    size_t cats, samples, boxes, labels, crowd, names, trailer;
    uint64_t nc, ns, nb, nl;
} sections;

static sections sections_of(const unsigned char *b) {
    sections s;
    s.nc = rd64(b + 32);
    s.ns = rd64(b + 48);
    s.nb = rd64(b + 56);
    s.nl = rd64(b + 64);
    uint64_t pl = rd64(b + 72);
    s.cats = 96 + ((pl + 1 + 7) & ~7ull);
    s.samples = s.cats + 8 * s.nc;
    s.boxes = s.samples + 32 * s.ns;
    s.labels = s.boxes + 16 * s.nb;
    s.crowd = s.labels + ((4 * s.nb + 7) & ~7ull);
    s.names = s.crowd + ((s.nb + 7) & ~7ull);
    s.trailer = s.names + ((s.nl + 7) & ~7ull);
    return s;
}

/* Writes bytes as the cache file, loads (must rebuild and agree with ref), and checks that
 * the rebuilt cache is then used. */
static void expect_rebuilt(const char *json, const char *dir, const char *cf,
                           const unsigned char *bytes, size_t n, const ssd_coco_index *ref,
                           const char *what) {
    printf("corrupt cache: %s\n", what);
    write_bytes(cf, bytes, n);
    ssd_coco_index *x = load_ok(json, dir, false);
    assert_same_index(ref, x);
    ssd_coco_index_free(x);
    x = load_ok(json, dir, true);
    assert_same_index(ref, x);
    ssd_coco_index_free(x);
}

static void test_cache_corruption(void **state) {
    (void)state;
    char path[1200], dir[1200], cf[1400];
    fixture(path, sizeof path);
    fresh_dir(dir, sizeof dir, "cache_corrupt");
    ssd_coco_index *ref = load_ok(path, dir, false);
    cache_file(dir, cf, sizeof cf);
    char *orig_c;
    size_t n;
    ssd_error err;
    assert_int_equal(ssd_read_file(cf, &orig_c, &n, &err), SSD_OK);
    const unsigned char *orig = (const unsigned char *)orig_c;
    sections s = sections_of(orig);
    assert_int_equal(s.trailer + 8, n);
    assert_int_equal(fnv1a(orig, n - 8), rd64(orig + n - 8));
    unsigned char *buf = ssd_xmalloc(n + 64);
    char what[200];

    /* one byte flipped: header fields, path, each section, the checksum itself */
    size_t offs[] = {0, 7, 8, 12, 16, 24, 31, 32, 40, 48, 56, 64, 72, 80, 88, 96, 100,
                     s.cats, s.samples, s.samples + 8, s.samples + 20, s.samples + 24,
                     s.samples + 28, s.boxes, s.boxes + 5, s.labels, s.crowd, s.names,
                     s.trailer - 1, s.trailer, n - 1, n / 2, n / 3};
    for (size_t i = 0; i < sizeof offs / sizeof *offs; i++) {
        memcpy(buf, orig, n);
        buf[offs[i]] ^= 0x5a;
        snprintf(what, sizeof what, "byte %zu flipped", offs[i]);
        expect_rebuilt(path, dir, cf, buf, n, ref, what);
    }
    /* cut short, or longer */
    size_t cuts[] = {0, 1, 7, 8, 95, 96, 103, s.cats, s.samples + 3, n / 2, n - 9, n - 8, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        snprintf(what, sizeof what, "cut to %zu of %zu bytes", cuts[i], n);
        expect_rebuilt(path, dir, cf, orig, cuts[i], ref, what);
    }
    memcpy(buf, orig, n);
    memset(buf + n, 0, 16);
    expect_rebuilt(path, dir, cf, buf, n + 16, ref, "16 bytes appended");
    memcpy(buf, orig, n);
    wr64(buf + 80, n + 16);
    wr64(buf + n + 8, 0);
    expect_rebuilt(path, dir, cf, buf, n + 16, ref, "16 bytes appended, header total adjusted");

    /* semantically wrong with a correct checksum: values an index user relies on */
    struct {
        const char *what;
        size_t off;
        unsigned char bytes[4];
        int nbytes;
    } sem[] = {
        {"label 0", s.labels, {0, 0, 0, 0}, 4},
        {"label num_categories+1", s.labels + 4, {8, 0, 0, 0}, 4},
        {"crowd flag 2", s.crowd + 1, {2}, 1},
        {"first_box of sample 1 off by one", s.samples + 32 + 16, {4, 0, 0, 0}, 4},
        {"num_boxes 0", s.samples + 20, {0, 0, 0, 0}, 4},
        {"num_boxes past the end", s.samples + 4 * 32 + 20, {2, 0, 0, 0}, 4},
        {"name_off past the names", s.samples + 24, {0, 1, 0, 0}, 4},
        {"name_off at a NUL (empty name)", s.samples + 24, {11, 0, 0, 0}, 4},
        {"width 0", s.samples + 8, {0, 0, 0, 0}, 4},
        {"height negative", s.samples + 12, {0xff, 0xff, 0xff, 0xff}, 4},
        {"box NaN", s.boxes, {0, 0, 0xc0, 0x7f}, 4},
        {"box inverted (l = 1 > r)", s.boxes, {0, 0, 0x80, 0x3f}, 4},
        {"box +inf", s.boxes + 12, {0, 0, 0x80, 0x7f}, 4},
        {"names not NUL-terminated", s.names + s.nl - 1, {'x'}, 1},
        {"num_samples > num_images_json", 40, {4, 0, 0, 0}, 4},
        {"num_categories over the limit", 32, {0xe9, 0x03, 0, 0}, 4},
        {"another format version", 8, {2, 0, 0, 0}, 4},
        {"json size differs", 16, {1, 0, 0, 0}, 4},
        {"json mtime differs", 24, {1, 0, 0, 0}, 4},
        {"path differs", 96, {'X'}, 1},
    };
    for (size_t i = 0; i < sizeof sem / sizeof *sem; i++) {
        memcpy(buf, orig, n);
        memcpy(buf + sem[i].off, sem[i].bytes, (size_t)sem[i].nbytes);
        wr64(buf + n - 8, fnv1a(buf, n - 8));
        snprintf(what, sizeof what, "%s (checksum recomputed)", sem[i].what);
        expect_rebuilt(path, dir, cf, buf, n, ref, what);
    }
    /* a valid cache of another json under this json's cache name */
    char other[1200], odir[1200], ocf[1400];
    scratch(other, sizeof other, "other.json");
    write_text(other, "{\"images\": [{\"id\": 1, \"file_name\": \"o.jpg\", \"width\": 9, "
                      "\"height\": 9}], \"annotations\": [{\"image_id\": 1, \"category_id\": 1, "
                      "\"bbox\": [1, 1, 1, 1]}], \"categories\": [{\"id\": 1}]}");
    fresh_dir(odir, sizeof odir, "cache_other");
    ssd_coco_index_free(load_ok(other, odir, false));
    cache_file(odir, ocf, sizeof ocf);
    char *ob;
    size_t on;
    assert_int_equal(ssd_read_file(ocf, &ob, &on, &err), SSD_OK);
    expect_rebuilt(path, dir, cf, (unsigned char *)ob, on, ref, "a cache of another json");
    free(ob);
    /* a directory where the cache file should be: warns, parses, cannot rewrite */
    remove(cf);
    assert_int_equal(mkdir(cf, 0777), 0);
    ssd_coco_index *x = load_ok(path, dir, false);
    assert_same_index(ref, x);
    ssd_coco_index_free(x);
    assert_int_equal(rmdir(cf), 0);

    free(buf);
    free(orig_c);
    ssd_coco_index_free(ref);
}

static void test_cache_dirs(void **state) {
    (void)state;
    char path[1200], file[1200], bad[1400], dir[1200];
    fixture(path, sizeof path);
    ssd_coco_index *ref = parse_ok(path);
    /* a cache dir below a regular file cannot be created, even by root: warn and go on */
    scratch(file, sizeof file, "not_a_dir");
    write_text(file, "x");
    snprintf(bad, sizeof bad, "%s/sub", file);
    for (int i = 0; i < 2; i++) {
        ssd_coco_index *x = load_ok(path, bad, false);
        assert_same_index(ref, x);
        ssd_coco_index_free(x);
    }
    /* the cache dir is a regular file */
    ssd_coco_index_free(load_ok(path, file, false));
    /* "" = no cache; from_cache may be NULL */
    ssd_coco_index *x = NULL;
    ssd_error err;
    assert_int_equal(ssd_coco_index_load(path, "", &x, NULL, &err), SSD_OK);
    assert_same_index(ref, x);
    ssd_coco_index_free(x);
    /* defaults: $SSD_CACHE_DIR, then $XDG_CACHE_HOME/ssd (absolute only), then $HOME/.cache/ssd */
    const char *old_home = getenv("HOME");
    char *home_copy = old_home ? ssd_xstrdup(old_home) : NULL;
    fresh_dir(dir, sizeof dir, "env_ssd");
    setenv("SSD_CACHE_DIR", dir, 1);
    ssd_coco_index_free(load_ok(path, NULL, false));
    ssd_coco_index_free(load_ok(path, NULL, true));
    assert_int_equal(count_entries(dir), 1);
    setenv("SSD_CACHE_DIR", "", 1); /* set but empty: caching off */
    ssd_coco_index_free(load_ok(path, NULL, false));
    ssd_coco_index_free(load_ok(path, NULL, false));
    unsetenv("SSD_CACHE_DIR");
    fresh_dir(dir, sizeof dir, "env_xdg");
    setenv("XDG_CACHE_HOME", dir, 1);
    ssd_coco_index_free(load_ok(path, NULL, false));
    ssd_coco_index_free(load_ok(path, NULL, true));
    char sub[1400];
    snprintf(sub, sizeof sub, "%s/ssd", dir);
    assert_int_equal(count_entries(sub), 1);
    setenv("XDG_CACHE_HOME", "relative/ignored", 1);
    fresh_dir(dir, sizeof dir, "env_home");
    setenv("HOME", dir, 1);
    ssd_coco_index_free(load_ok(path, NULL, false));
    ssd_coco_index_free(load_ok(path, NULL, true));
    snprintf(sub, sizeof sub, "%s/.cache/ssd", dir);
    assert_int_equal(count_entries(sub), 1);
    unsetenv("XDG_CACHE_HOME");
    if (home_copy) setenv("HOME", home_copy, 1);
    free(home_copy);
    ssd_coco_index_free(ref);
}

/* ---- malformed inputs ---- */

#define IMG1 "{\"id\": 1, \"file_name\": \"a.jpg\", \"width\": 10, \"height\": 20}"
#define IMG2 "{\"id\": 2, \"file_name\": \"b.jpg\", \"width\": 30, \"height\": 40}"
#define ANN1 "{\"image_id\": 1, \"category_id\": 5, \"bbox\": [1, 2, 3, 4]}"
#define CAT5 "{\"id\": 5}"
#define DOC(imgs, anns, cats) \
    "{\"images\": [" imgs "], \"annotations\": [" anns "], \"categories\": [" cats "]}"
#define ANN(bbox_and_more) "{\"image_id\": 1, \"category_id\": 5, " bbox_and_more "}"
#define IMG(fields) "{\"id\": 1, " fields "}"

/* Writes text to scratch/bad.json and expects SSD_ERR_FORMAT with "<path>: <want>..." (or
 * "<path>: " followed somewhere by want, for the malformed-JSON messages); also through
 * ssd_coco_index_load with a cache dir, which must stay empty. */
static void expect_format_error(const char *text, const char *want) {
    char path[1200], dir[1200], prefix[1400];
    scratch(path, sizeof path, "bad.json");
    write_text(path, text);
    ssd_coco_index *idx = (ssd_coco_index *)1;
    ssd_error err;
    ssd_status st = ssd_coco_index_parse(path, &idx, &err);
    printf("-> %s\n", st ? err.msg : "(accepted)");
    assert_int_equal(st, SSD_ERR_FORMAT);
    assert_null(idx);
    snprintf(prefix, sizeof prefix, "%s: %s", path, want);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
        fail_msg("expected a message starting with \"%s\", got \"%s\"", prefix, err.msg);
    fresh_dir(dir, sizeof dir, "cache_bad");
    bool cached = true;
    st = ssd_coco_index_load(path, dir, &idx, &cached, &err);
    assert_int_equal(st, SSD_ERR_FORMAT);
    assert_false(cached);
    assert_null(idx);
    assert_true(strncmp(err.msg, prefix, strlen(prefix)) == 0);
    assert_int_equal(count_entries(dir), 0);
}

/* The byte offset of the first occurrence of needle in text (asserted present). */
static size_t offset_of(const char *text, const char *needle) {
    const char *p = strstr(text, needle);
    assert_non_null(p);
    return (size_t)(p - text);
}

static void test_malformed_json(void **state) {
    (void)state;
    char want[200];
    /* truncated: cJSON stops at the last byte */
    const char *t1 = "{\"images\": [{\"id\": 1,";
    snprintf(want, sizeof want, "malformed JSON near byte %zu (line 1)", strlen(t1) - 1);
    expect_format_error(t1, want);
    expect_format_error("", "malformed JSON near byte 0 (line 1)");
    /* a broken value after pretty-printed segmentations (which are blanked): the byte and
     * line still point into the original text */
    const char *t2 = "{\"images\": [" IMG1 "],\n\"annotations\": [{\"segmentation\": [[1,\n2,\n"
                     "3]],\n\"image_id\": 1, \"category_id\": 5, \"bbox\": [1, 2, 3, 4]},\n"
                     "{\"image_id\": 1,, \"bbox\": []}],\n\"categories\": [" CAT5 "]}";
    /* (where a key should start, cJSON points one byte past the offending one) */
    snprintf(want, sizeof want, "malformed JSON near byte %zu (line 6)",
             offset_of(t2, ",, \"bbox\"") + 2);
    expect_format_error(t2, want);
    /* a broken segmentation is not blanked: cJSON reports it where it is */
    const char *t3 = "{\"images\": [" IMG1 "], \"annotations\": [{\"image_id\": 1, "
                     "\"category_id\": 5, \"bbox\": [1, 2, 3, 4],\n \"segmentation\": [[1, 2,,3]]}"
                     "], \"categories\": [" CAT5 "]}";
    snprintf(want, sizeof want, "malformed JSON near byte %zu (line 2)", offset_of(t3, ",,3") + 1);
    expect_format_error(t3, want);
    /* an unterminated segmentation (truncated file) */
    const char *t4 = "{\"annotations\": [{\"segmentation\": [[1, 2, 3";
    snprintf(want, sizeof want, "malformed JSON near byte %zu (line 1)", strlen(t4) - 1);
    expect_format_error(t4, want);
    /* NaN and Infinity are not JSON (Python's json accepts them; cJSON and we do not) */
    const char *t5 = DOC(IMG1, ANN("\"bbox\": [1, 2, NaN, 4]"), CAT5);
    snprintf(want, sizeof want, "malformed JSON near byte %zu (line 1)", offset_of(t5, "NaN"));
    expect_format_error(t5, want);
    const char *t6 = DOC(IMG1, ANN("\"bbox\": [1, 2, 3, 4]"), CAT5) " {}";
    snprintf(want, sizeof want,
             "malformed JSON near byte %zu (line 1): extra data after the top-level value",
             strlen(t6) - 2);
    expect_format_error(t6, want);
    expect_format_error("[]", "the top level is not a JSON object");
    expect_format_error("{\"images\": [], \"categories\": []}", "annotations: missing");
    expect_format_error("{\"images\": [], \"annotations\": {}, \"categories\": []}",
                        "annotations: not an array");
    expect_format_error("{\"images\": 3, \"annotations\": [], \"categories\": []}",
                        "images: not an array");
    expect_format_error("{\"images\": [], \"annotations\": []}", "categories: missing");
}

static void test_malformed_fields(void **state) {
    (void)state;
    static const struct {
        const char *text, *want;
    } k[] = {
        /* images */
        {DOC(IMG1 ", 3", ANN1, CAT5), "images[1]: not an object"},
        {DOC("{\"file_name\": \"a.jpg\", \"width\": 10, \"height\": 20}", ANN1, CAT5),
         "images[0].id: missing"},
        {DOC(IMG2 ", {\"id\": \"1\", \"file_name\": \"a.jpg\", \"width\": 10, \"height\": 20}",
             ANN1, CAT5),
         "images[1].id: not a number"},
        {DOC("{\"id\": 1.5, \"file_name\": \"a.jpg\", \"width\": 10, \"height\": 20}", ANN1,
             CAT5),
         "images[0].id: 1.5 is not a whole number"},
        {DOC("{\"id\": 1e300, \"file_name\": \"a.jpg\", \"width\": 10, \"height\": 20}", ANN1,
             CAT5),
         "images[0].id: 1e+300 is out of range"},
        {DOC(IMG("\"file_name\": \"a.jpg\", \"width\": -640, \"height\": 20"), ANN1, CAT5),
         "images[0].width: -640 is out of range [1, 2147483647]"},
        {DOC(IMG("\"file_name\": \"a.jpg\", \"width\": 0, \"height\": 20"), ANN1, CAT5),
         "images[0].width: 0 is out of range"},
        {DOC(IMG("\"file_name\": \"a.jpg\", \"width\": 10.5, \"height\": 20"), ANN1, CAT5),
         "images[0].width: 10.5 is not a whole number"},
        {DOC(IMG("\"file_name\": \"a.jpg\", \"width\": 3e9, \"height\": 20"), ANN1, CAT5),
         "images[0].width: 3000000000 is out of range"},
        {DOC(IMG("\"file_name\": \"a.jpg\", \"width\": 1e999, \"height\": 20"), ANN1, CAT5),
         "images[0].width: not a finite number"},
        {DOC(IMG("\"file_name\": \"a.jpg\", \"width\": \"640\", \"height\": 20"), ANN1, CAT5),
         "images[0].width: not a number"},
        {DOC(IMG("\"file_name\": \"a.jpg\", \"width\": 10"), ANN1, CAT5),
         "images[0].height: missing"},
        {DOC(IMG("\"file_name\": \"a.jpg\", \"width\": 10, \"height\": null"), ANN1, CAT5),
         "images[0].height: not a number"},
        {DOC(IMG("\"width\": 10, \"height\": 20"), ANN1, CAT5), "images[0].file_name: missing"},
        {DOC(IMG("\"file_name\": 7, \"width\": 10, \"height\": 20"), ANN1, CAT5),
         "images[0].file_name: not a string"},
        {DOC(IMG("\"file_name\": \"\", \"width\": 10, \"height\": 20"), ANN1, CAT5),
         "images[0].file_name: empty"},
        {DOC(IMG1 ", " IMG2 ", " IMG1, ANN1, CAT5),
         "images[2].id 1 appears twice (also images[0])"},
        /* categories */
        {DOC(IMG1, ANN1, CAT5 ", [5]"), "categories[1]: not an object"},
        {DOC(IMG1, ANN1, CAT5 ", {\"id\": 6}, {\"id\": 5}"),
         "categories[2].id 5 appears twice (also categories[0])"},
        {DOC(IMG1, ANN1, "{\"name\": \"x\"}"), "categories[0].id: missing"},
        /* annotations */
        {DOC(IMG1, ANN1 ", \"x\"", CAT5), "annotations[1]: not an object"},
        {DOC(IMG1, ANN1 ", {\"image_id\": 99, \"category_id\": 5, \"bbox\": [1, 2, 3, 4]}",
             CAT5),
         "annotations[1].image_id 99: no image has this id"},
        {DOC(IMG1, "{\"image_id\": 1, \"category_id\": 6, \"bbox\": [1, 2, 3, 4]}", CAT5),
         "annotations[0].category_id 6: no category has this id"},
        {DOC(IMG1, "{\"category_id\": 5, \"bbox\": [1, 2, 3, 4]}", CAT5),
         "annotations[0].image_id: missing"},
        {DOC(IMG1, "{\"image_id\": 1.5, \"category_id\": 5, \"bbox\": [1, 2, 3, 4]}", CAT5),
         "annotations[0].image_id: 1.5 is not a whole number"},
        {DOC(IMG1, "{\"image_id\": 1, \"bbox\": [1, 2, 3, 4]}", CAT5),
         "annotations[0].category_id: missing"},
        {DOC(IMG1, ANN("\"segmentation\": []"), CAT5), "annotations[0].bbox: missing"},
        {DOC(IMG1, ANN("\"bbox\": \"1, 2, 3, 4\""), CAT5),
         "annotations[0].bbox: not an array [x, y, w, h]"},
        {DOC(IMG1, ANN("\"bbox\": [1, 2, 3]"), CAT5),
         "annotations[0].bbox: 3 elements, not 4 [x, y, w, h]"},
        {DOC(IMG1, ANN("\"bbox\": [1, 2, 3, 4, 5]"), CAT5),
         "annotations[0].bbox: 5 elements, not 4"},
        {DOC(IMG1, ANN1 ", " ANN("\"bbox\": [1, \"2\", 3, 4]"), CAT5),
         "annotations[1].bbox[1]: not a number"},
        {DOC(IMG1, ANN("\"bbox\": [1, 2, -3, 4]"), CAT5),
         "annotations[0].bbox[2]: negative width -3"},
        {DOC(IMG1, ANN("\"bbox\": [1, 2, 3, -0.5]"), CAT5),
         "annotations[0].bbox[3]: negative height -0.5"},
        {DOC(IMG1, ANN("\"bbox\": [1e999, 2, 3, 4]"), CAT5),
         "annotations[0].bbox[0]: not a finite number"},
        {DOC(IMG1, ANN("\"bbox\": [1, 2, -1e999, 4]"), CAT5),
         "annotations[0].bbox[2]: not a finite number"},
        {DOC(IMG1, ANN("\"bbox\": [1e308, 0, 1e308, 1]"), CAT5),
         "annotations[0].bbox: the normalised box overflows float32"},
        {DOC(IMG1, ANN("\"bbox\": [1, 2, 3, 4], \"iscrowd\": 2"), CAT5),
         "annotations[0].iscrowd: 2 is out of range [0, 1]"},
        {DOC(IMG1, ANN("\"bbox\": [1, 2, 3, 4], \"iscrowd\": \"0\""), CAT5),
         "annotations[0].iscrowd: not a number"},
        {DOC(IMG1, ANN("\"bbox\": [1, 2, 3, 4], \"iscrowd\": true"), CAT5),
         "annotations[0].iscrowd: not a number"},
        /* the last of a repeated key counts (the first one here is fine) */
        {DOC(IMG1, ANN("\"bbox\": [1, 2, 3, 4], \"bbox\": [1, 2, -3, 4]"), CAT5),
         "annotations[0].bbox[2]: negative width -3"},
    };
    for (size_t i = 0; i < sizeof k / sizeof *k; i++) {
        printf("case %zu: %s\n", i, k[i].text);
        expect_format_error(k[i].text, k[i].want);
    }
    /* an over-long file name and too many categories */
    ssd_strbuf sb = {0};
    ssd_sb_puts(&sb, "{\"images\": [{\"id\": 1, \"width\": 10, \"height\": 20, \"file_name\": \"");
    for (int i = 0; i < 4096; i++) ssd_sb_puts(&sb, "a");
    ssd_sb_puts(&sb, "\"}], \"annotations\": [], \"categories\": []}");
    expect_format_error(sb.s, "images[0].file_name: 4096 bytes, longer than 4095");
    ssd_sb_free(&sb);
    ssd_sb_puts(&sb, "{\"images\": [], \"annotations\": [], \"categories\": [");
    for (int i = 0; i <= SSD_COCO_MAX_CATEGORIES; i++)
        ssd_sb_printf(&sb, "%s{\"id\": %d}", i ? "," : "", i);
    ssd_sb_puts(&sb, "]}");
    expect_format_error(sb.s, "categories: 1001 categories, more than 1000");
    ssd_sb_free(&sb);
}

static void test_missing_file(void **state) {
    (void)state;
    char path[1200], dir[1200];
    scratch(path, sizeof path, "does/not/exist.json");
    fresh_dir(dir, sizeof dir, "cache_missing");
    ssd_coco_index *idx = NULL;
    ssd_error err;
    bool cached = true;
    assert_int_equal(ssd_coco_index_parse(path, &idx, &err), SSD_ERR_IO);
    printf("-> %s\n", err.msg);
    assert_non_null(strstr(err.msg, path));
    assert_null(idx);
    assert_int_equal(ssd_coco_index_load(path, dir, &idx, &cached, &err), SSD_ERR_IO);
    assert_non_null(strstr(err.msg, path));
    assert_false(cached);
    assert_int_equal(ssd_coco_index_load(path, NULL, &idx, &cached, &err), SSD_ERR_IO);
    /* a directory is not a json file */
    assert_int_equal(ssd_coco_index_load(dir, dir, &idx, &cached, &err), SSD_ERR_IO);
    printf("-> %s\n", err.msg);
    assert_non_null(strstr(err.msg, dir));
    assert_int_equal(count_entries(dir), 0);
}

/* Segmentations are blanked before cJSON builds the tree: a segmentation nested deeper than
 * cJSON's limit (1000) is never seen by cJSON, while the same nesting elsewhere is an error.
 * Escaped quotes and brackets inside RLE strings do not confuse the scanner. */
static void test_segmentation_skipped(void **state) {
    (void)state;
    const int depth = 5000;
    ssd_strbuf deep = {0};
    for (int i = 0; i < depth; i++) ssd_sb_puts(&deep, "[");
    ssd_sb_puts(&deep, "1");
    for (int i = 0; i < depth; i++) ssd_sb_puts(&deep, "]");
    for (int where = 0; where < 2; where++) {
        ssd_strbuf sb = {0};
        ssd_sb_printf(&sb, "{\"images\": [" IMG1 "], \"annotations\": [{\"%s\": %s, "
                           "\"image_id\": 1, \"category_id\": 5, \"bbox\": [1, 2, 3, 4]}], "
                           "\"categories\": [" CAT5 "]}",
                      where ? "other" : "segmentation", deep.s);
        char path[1200];
        scratch(path, sizeof path, "deep.json");
        write_text(path, sb.s);
        ssd_coco_index *idx = NULL;
        ssd_error err;
        ssd_status st = ssd_coco_index_parse(path, &idx, &err);
        if (where == 0) {
            if (st) fail_msg("%s", err.msg);
            assert_int_equal(idx->num_boxes, 1);
        } else {
            printf("-> %s\n", err.msg);
            assert_int_equal(st, SSD_ERR_FORMAT);
            assert_non_null(strstr(err.msg, "malformed JSON near byte"));
        }
        ssd_coco_index_free(idx);
        ssd_sb_free(&sb);
    }
    ssd_sb_free(&deep);
    /* RLE strings with escapes that look like structure; a "segmentation" string value */
    const char *t = "{\"images\": [" IMG1 "], \"annotations\": [{\"segmentation\": {\"counts\": "
                    "\"]}\\\\\\\"[{,\\u005d\", \"size\": [20, 10]}, \"image_id\": 1, "
                    "\"category_id\": 5, \"bbox\": [1, 2, 3, 4], \"note\": \"segmentation\"}, "
                    "{\"segmentation\": \"\\\"\", \"image_id\": 1, \"category_id\": 5, "
                    "\"bbox\": [0, 0, 10, 20]}], \"categories\": [" CAT5 "]}";
    char path[1200];
    scratch(path, sizeof path, "escapes.json");
    write_text(path, t);
    ssd_coco_index *idx = parse_ok(path);
    assert_int_equal(idx->num_boxes, 2);
    assert_true(idx->boxes[4] == 0.0f && idx->boxes[6] == 1.0f && idx->boxes[7] == 1.0f);
    compare_with_oracle(path, idx);
    ssd_coco_index_free(idx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture),
        cmocka_unit_test(test_generated),
        cmocka_unit_test(test_coco_tiny),
        cmocka_unit_test(test_cache_round_trip),
        cmocka_unit_test(test_cache_invalidation),
        cmocka_unit_test(test_cache_corruption),
        cmocka_unit_test(test_cache_dirs),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_malformed_fields),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_segmentation_skipped),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
