/* The threaded loader on a synthetic COCO-format dataset (always) and on ../shared/data/coco_tiny
 * (real COCO images; skipped with the reason when absent):
 *   - batches are bit-identical whatever the number of workers and the prefetch depth;
 *   - a training sample equals decode -> ssd_augment_train with its (seed, epoch, slot) stream,
 *     and its targets equal the literal encoder of spec 4 (tu_naive_encode);
 *   - every epoch visits every sample once, in a new order; validation keeps the file order and
 *     the JSON sizes and matches torchvision's Resize/ToTensor/Normalize bit for bit;
 *   - a stream resumed from ssd_loader_position() continues identically;
 *   - 2 ranks of batch B/2 together see exactly the 1-rank batch B, sample for sample;
 *   - missing, truncated and garbage JPEGs are counted and replaced, never crash, and a wrong
 *     image directory stops the loader with an error instead of looping. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include "core/mem.h"
#include "data/augment.h"
#include "data/coco_json.h"
#include "data/jpeg.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "data/synth.h"
#include "io/safetensors.h"

#define IMGF ((size_t)3 * 300 * 300)

typedef struct fixture {
    char root[1024], images[1100], ann[1100];
    ssd_coco_index *idx;
} fixture;

static fixture g_syn; /* synthetic train set, made once for the whole file */

static int make_synth(void **state) {
    (void)state;
    char scratch[1024];
    tu_scratch_dir("test_loader", scratch, sizeof scratch);
    snprintf(g_syn.root, sizeof g_syn.root, "%.1000s/synth", scratch);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf \"%s\"", g_syn.root);
    if (system(cmd) != 0) return -1;
    ssd_synth_cfg sc = {.out_dir = g_syn.root, .n_train = 23, .n_val = 8, .seed = 5};
    ssd_error err;
    if (ssd_synth_write(&sc, &err) != SSD_OK) {
        fprintf(stderr, "synth: %s\n", err.msg);
        return -1;
    }
    snprintf(g_syn.images, sizeof g_syn.images, "%s/train2017", g_syn.root);
    snprintf(g_syn.ann, sizeof g_syn.ann, "%s/annotations/instances_train2017.json", g_syn.root);
    if (ssd_coco_index_load(g_syn.ann, "", &g_syn.idx, NULL, &err) != SSD_OK) {
        fprintf(stderr, "index: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int free_synth(void **state) {
    (void)state;
    ssd_coco_index_free(g_syn.idx);
    return 0;
}

static void base_cfg(ssd_loader_cfg *c, const fixture *f, int train) {
    ssd_loader_cfg_default(c);
    c->index = f->idx;
    c->image_dir = f->images;
    c->train = train;
    c->batch_size = 5;
    c->seed = 77;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ULL;
    return h;
}

static uint64_t batch_hash(const ssd_batch *b) {
    uint64_t h = 1469598103934665603ULL;
    h = fnv(h, &b->n, sizeof b->n);
    h = fnv(h, &b->epoch, sizeof b->epoch);
    h = fnv(h, &b->iter, sizeof b->iter);
    h = fnv(h, b->images, (size_t)b->n * IMGF * sizeof(float));
    if (b->bboxes) h = fnv(h, b->bboxes, (size_t)b->n * SSD_NUM_ANCHORS * 4 * sizeof(float));
    if (b->labels) h = fnv(h, b->labels, (size_t)b->n * SSD_NUM_ANCHORS * sizeof(int64_t));
    h = fnv(h, b->image_ids, (size_t)b->n * sizeof(int64_t));
    h = fnv(h, b->indices, (size_t)b->n * sizeof(int64_t));
    h = fnv(h, b->sizes, (size_t)b->n * 2 * sizeof(int32_t));
    h = fnv(h, b->orig_sizes, (size_t)b->n * 2 * sizeof(int32_t));
    return h;
}

/* Streams `epochs` epochs and returns the per-batch hashes (malloc'd, *count of them). */
static uint64_t *stream_hashes(const ssd_loader_cfg *c, int64_t *count) {
    ssd_loader *l;
    ssd_error err;
    assert_int_equal(ssd_loader_create(c, &l, &err), SSD_OK);
    int64_t cap = ssd_loader_iters_per_epoch(l) * (c->epochs ? c->epochs : 1) + 1, n = 0;
    uint64_t *h = malloc((size_t)cap * sizeof *h);
    const ssd_batch *b;
    while ((b = ssd_loader_next(l)) != NULL) {
        assert_true(n < cap);
        h[n++] = batch_hash(b);
    }
    assert_null(ssd_loader_error(l));
    assert_int_equal(ssd_loader_bad_files(l), 0);
    ssd_loader_destroy(l);
    *count = n;
    return h;
}

static void test_worker_count_invariance(void **state) {
    (void)state;
    for (int train = 1; train >= 0; train--) {
        ssd_loader_cfg c;
        base_cfg(&c, &g_syn, train);
        c.epochs = 2;
        c.num_workers = 0;
        int64_t n0;
        uint64_t *ref = stream_hashes(&c, &n0);
        assert_true(n0 >= 6);
        const int workers[][2] = {{1, 0}, {1, 1}, {2, 0}, {3, 2}, {4, 9}};
        for (size_t k = 0; k < sizeof workers / sizeof workers[0]; k++) {
            c.num_workers = workers[k][0];
            c.prefetch = workers[k][1];
            int64_t n;
            uint64_t *h = stream_hashes(&c, &n);
            assert_int_equal(n, n0);
            assert_memory_equal(h, ref, (size_t)n * sizeof *h);
            free(h);
        }
        /* and a different seed gives different training batches */
        if (train) {
            c.seed = 78;
            int64_t n;
            uint64_t *h = stream_hashes(&c, &n);
            assert_true(memcmp(h, ref, (size_t)n * sizeof *h) != 0);
            free(h);
        }
        free(ref);
    }
}

/* Each sample of a training batch, rebuilt by hand from its documented stream. */
static void test_train_sample_recomputed(void **state) {
    (void)state;
    ssd_loader_cfg c;
    base_cfg(&c, &g_syn, 1);
    c.num_workers = 2;
    c.start_epoch = 3;
    c.epochs = 1;
    ssd_loader *l;
    ssd_error err;
    assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_OK);
    ssd_sampler smp;
    ssd_sampler_init(&smp, g_syn.idx->num_samples, c.batch_size, 0, 1, 1, c.seed);
    int64_t *perm = malloc((size_t)smp.n * sizeof *perm);
    ssd_sampler_permutation(&smp, 3, perm);
    ssd_anchors *an = malloc(sizeof *an);
    ssd_anchors_build(an);
    ssd_jpeg *j = ssd_jpeg_create();
    ssd_augment_ws *ws = ssd_augment_ws_create();
    ssd_image img = {0};
    float *chw = malloc(IMGF * sizeof(float));
    float *gbox = malloc(SSD_NUM_ANCHORS * 4 * sizeof(float));
    int64_t *glab = malloc(SSD_NUM_ANCHORS * sizeof(int64_t));
    const ssd_batch *b;
    int checked = 0, positives_min = 1 << 30;
    while ((b = ssd_loader_next(l)) != NULL) {
        assert_int_equal(b->epoch, 3);
        for (int k = 0; k < b->n; k++) {
            int64_t idx, slot;
            ssd_sampler_sample(&smp, perm, b->iter, k, &idx, &slot);
            assert_int_equal(b->indices[k], idx);
            const ssd_coco_sample *s = &g_syn.idx->samples[idx];
            assert_int_equal(b->image_ids[k], s->image_id);
            assert_int_equal(b->orig_sizes[2 * k], s->height);
            assert_int_equal(b->orig_sizes[2 * k + 1], s->width);
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", g_syn.images, ssd_coco_file_name(g_syn.idx, idx));
            assert_int_equal(ssd_jpeg_decode_file(j, path, &img, &err), SSD_OK);
            int n = (int)s->num_boxes, oh, ow;
            float boxes[4 * 64];
            int32_t labels[64];
            assert_true(n <= 64);
            memcpy(boxes, g_syn.idx->boxes + (size_t)s->first_box * 4, (size_t)n * 4 * sizeof(float));
            memcpy(labels, g_syn.idx->labels + s->first_box, (size_t)n * sizeof(int32_t));
            ssd_rng r = ssd_rng_stream(c.seed, SSD_RNG_DOMAIN_AUGMENT, 0, 0,
                                       ((uint64_t)3 << 32) | (uint64_t)slot);
            ssd_augment_train(&c.aug, &r, ws, &img, boxes, labels, &n, chw, &oh, &ow, NULL);
            assert_memory_equal(b->images + (size_t)k * IMGF, chw, IMGF * sizeof(float));
            assert_int_equal(b->sizes[2 * k], oh);
            assert_int_equal(b->sizes[2 * k + 1], ow);
            int lab[64];
            for (int q = 0; q < n; q++) lab[q] = labels[q];
            tu_naive_encode(an, n, (const float(*)[4])boxes, lab, gbox, glab);
            assert_memory_equal(b->bboxes + (size_t)k * SSD_NUM_ANCHORS * 4, gbox,
                                SSD_NUM_ANCHORS * 4 * sizeof(float));
            assert_memory_equal(b->labels + (size_t)k * SSD_NUM_ANCHORS, glab,
                                SSD_NUM_ANCHORS * sizeof(int64_t));
            int pos = 0;
            for (int a = 0; a < SSD_NUM_ANCHORS; a++) {
                assert_true(glab[a] >= 0 && glab[a] <= 80);
                pos += glab[a] > 0;
            }
            if (pos < positives_min) positives_min = pos;
            checked++;
        }
    }
    assert_int_equal(checked, smp.per_rank);
    assert_true(positives_min >= 1);
    free(perm), free(an), free(chw), free(gbox), free(glab);
    ssd_image_free(&img);
    ssd_jpeg_destroy(j);
    ssd_augment_ws_destroy(ws);
    ssd_loader_destroy(l);
}

static void test_epochs_cover_and_reshuffle(void **state) {
    (void)state;
    ssd_loader_cfg c;
    base_cfg(&c, &g_syn, 1);
    c.num_workers = 2;
    c.epochs = 3;
    ssd_loader *l;
    ssd_error err;
    assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_OK);
    int64_t n = g_syn.idx->num_samples;
    int64_t *order = calloc((size_t)(3 * n), sizeof *order), pos = 0;
    int *seen = calloc((size_t)(3 * n), sizeof *seen);
    const ssd_batch *b;
    int64_t last_epoch = 0, last_iter = -1;
    while ((b = ssd_loader_next(l)) != NULL) {
        /* strictly in order */
        if (b->epoch == last_epoch) assert_int_equal(b->iter, last_iter + 1);
        else assert_true(b->epoch == last_epoch + 1 && b->iter == 0);
        last_epoch = b->epoch, last_iter = b->iter;
        for (int k = 0; k < b->n; k++) {
            order[pos++] = b->indices[k];
            seen[b->epoch * n + b->indices[k]]++;
        }
    }
    assert_int_equal(pos, 3 * n);
    for (int64_t i = 0; i < 3 * n; i++) assert_int_equal(seen[i], 1);
    assert_true(memcmp(order, order + n, (size_t)n * sizeof *order) != 0);
    assert_true(memcmp(order + n, order + 2 * n, (size_t)n * sizeof *order) != 0);
    free(order), free(seen);
    ssd_loader_destroy(l);
}

static void test_resume(void **state) {
    (void)state;
    ssd_loader_cfg c;
    base_cfg(&c, &g_syn, 1);
    c.num_workers = 2;
    c.epochs = 2;
    int64_t n;
    uint64_t *full = stream_hashes(&c, &n);
    /* stop somewhere inside epoch 0, read the position, restart there */
    ssd_loader *l;
    ssd_error err;
    assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_OK);
    int64_t iters = ssd_loader_iters_per_epoch(l), e, it;
    for (int k = 0; k < 3; k++) assert_non_null(ssd_loader_next(l));
    ssd_loader_position(l, &e, &it);
    assert_int_equal(e * iters + it, 3);
    ssd_loader_destroy(l);
    c.start_epoch = e;
    c.start_iter = it;
    c.epochs = 2 - e;
    int64_t m;
    uint64_t *rest = stream_hashes(&c, &m);
    assert_int_equal(m, n - 3);
    assert_memory_equal(rest, full + 3, (size_t)m * sizeof *rest);
    free(rest);
    /* and from the start of epoch 1 */
    c.start_epoch = 1;
    c.start_iter = 0;
    c.epochs = 1;
    rest = stream_hashes(&c, &m);
    assert_int_equal(m, iters);
    assert_memory_equal(rest, full + iters, (size_t)m * sizeof *rest);
    free(rest);
    free(full);
    /* a start iteration past the epoch is a clear error */
    c.start_iter = iters;
    assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_ERR_ARG);
    assert_non_null(strstr(err.msg, "start iteration"));
}

/* world 2 x batch 2 == world 1 x batch 4, sample by sample (images and targets). */
static void test_sharding_matches_one_rank(void **state) {
    (void)state;
    ssd_loader_cfg c1, r0, r1;
    base_cfg(&c1, &g_syn, 1);
    c1.batch_size = 4;
    c1.epochs = 1;
    c1.num_workers = 1;
    r0 = r1 = c1;
    r0.batch_size = r1.batch_size = 2;
    r0.world = r1.world = 2;
    r1.rank = 1;
    r0.num_workers = 2;
    ssd_loader *l1, *l0, *lr1;
    ssd_error err;
    assert_int_equal(ssd_loader_create(&c1, &l1, &err), SSD_OK);
    assert_int_equal(ssd_loader_create(&r0, &l0, &err), SSD_OK);
    assert_int_equal(ssd_loader_create(&r1, &lr1, &err), SSD_OK);
    /* 23 samples minus dropped ones; the 2-rank epoch is padded to an even count */
    assert_int_equal(ssd_loader_samples_per_epoch(l0), (g_syn.idx->num_samples + 1) / 2);
    const ssd_batch *a, *b0, *b1;
    int compared = 0;
    while ((a = ssd_loader_next(l1)) != NULL) {
        b0 = ssd_loader_next(l0);
        b1 = ssd_loader_next(lr1);
        assert_non_null(b0);
        assert_non_null(b1);
        for (int k = 0; k < a->n; k++) {
            const ssd_batch *src = (k % 2) ? b1 : b0;
            int kk = k / 2;
            assert_true(kk < src->n);
            assert_int_equal(a->indices[k], src->indices[kk]);
            assert_memory_equal(a->images + k * IMGF, src->images + kk * IMGF, IMGF * sizeof(float));
            assert_memory_equal(a->labels + (size_t)k * SSD_NUM_ANCHORS,
                                src->labels + (size_t)kk * SSD_NUM_ANCHORS,
                                SSD_NUM_ANCHORS * sizeof(int64_t));
            compared++;
        }
    }
    assert_int_equal(compared, g_syn.idx->num_samples);
    ssd_loader_destroy(l1);
    ssd_loader_destroy(l0);
    ssd_loader_destroy(lr1);
}

/* Validation: file order, JSON sizes, no targets, pixels = decode + ssd_augment_val. */
static void test_validation_stream(void **state) {
    (void)state;
    ssd_loader_cfg c;
    base_cfg(&c, &g_syn, 0);
    c.num_workers = 2;
    c.epochs = 1;
    ssd_loader *l;
    ssd_error err;
    assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_OK);
    ssd_jpeg *j = ssd_jpeg_create();
    ssd_augment_ws *ws = ssd_augment_ws_create();
    ssd_image img = {0};
    float *chw = malloc(IMGF * sizeof(float));
    const ssd_batch *b;
    int64_t next = 0;
    while ((b = ssd_loader_next(l)) != NULL) {
        assert_null(b->bboxes);
        assert_null(b->labels);
        for (int k = 0; k < b->n; k++, next++) {
            assert_int_equal(b->indices[k], next);
            const ssd_coco_sample *s = &g_syn.idx->samples[next];
            assert_int_equal(b->sizes[2 * k], s->height);
            assert_int_equal(b->sizes[2 * k + 1], s->width);
            char path[2048];
            snprintf(path, sizeof path, "%s/%s", g_syn.images, ssd_coco_file_name(g_syn.idx, next));
            assert_int_equal(ssd_jpeg_decode_file(j, path, &img, &err), SSD_OK);
            ssd_augment_val(ws, &img, chw);
            assert_memory_equal(b->images + k * IMGF, chw, IMGF * sizeof(float));
        }
    }
    assert_int_equal(next, g_syn.idx->num_samples);
    free(chw);
    ssd_image_free(&img);
    ssd_jpeg_destroy(j);
    ssd_augment_ws_destroy(ws);
    ssd_loader_destroy(l);
}

/* The sharded evaluation's stream: with batch offset r and stride 3, ranks 0..2 together
 * deliver every batch of the unstrided validation loader exactly once, identical (the same
 * epoch/iter, indices and pixels), each rank in increasing batch order; bad offsets are refused. */
static void test_batch_stride(void **state) {
    (void)state;
    ssd_loader_cfg all;
    base_cfg(&all, &g_syn, 0);
    all.batch_size = 3;
    all.epochs = 1;
    all.num_workers = 2;
    ssd_loader *l;
    ssd_error err;
    assert_int_equal(ssd_loader_create(&all, &l, &err), SSD_OK);
    int64_t nb = ssd_loader_iters_per_epoch(l);
    assert_true(nb >= 7); /* ranks with different batch counts */
    uint64_t *want = calloc((size_t)nb, sizeof *want);
    const ssd_batch *b;
    int64_t seen = 0;
    while ((b = ssd_loader_next(l)) != NULL) want[seen++] = batch_hash(b);
    assert_int_equal(seen, nb);
    ssd_loader_destroy(l);
    int64_t got = 0;
    for (int r = 0; r < 3; r++) {
        ssd_loader_cfg c = all;
        c.batch_offset = r;
        c.batch_stride = 3;
        c.num_workers = r; /* 0, 1, 2 workers: the same batches */
        assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_OK);
        int64_t expect = r;
        while ((b = ssd_loader_next(l)) != NULL) {
            assert_int_equal(b->iter, expect);
            assert_true(batch_hash(b) == want[expect]);
            expect += 3;
            got++;
        }
        assert_true(expect >= nb && expect < nb + 3);
        ssd_loader_destroy(l);
    }
    assert_int_equal(got, nb);
    ssd_loader_cfg bad = all;
    bad.batch_offset = 3;
    bad.batch_stride = 3;
    assert_int_equal(ssd_loader_create(&bad, &l, &err), SSD_ERR_ARG);
    bad.batch_offset = 1;
    bad.start_iter = 1;
    assert_int_equal(ssd_loader_create(&bad, &l, &err), SSD_ERR_ARG);
    free(want);
}

static void test_bad_files_replaced(void **state) {
    (void)state;
    char scratch[1024], dir[1200], cmd[4096], path[2048];
    tu_scratch_dir("test_loader", scratch, sizeof scratch);
    snprintf(dir, sizeof dir, "%s/bad_images", scratch);
    snprintf(cmd, sizeof cmd, "rm -rf \"%s\" && cp -r \"%s\" \"%s\"", dir, g_syn.images, dir);
    assert_int_equal(system(cmd), 0);
    /* sample 1: deleted; 3: truncated to half; 5: garbage; 7: a PNG header (not adjacent, so each
     * is replaced by the next sample at the first attempt) */
    const ssd_coco_index *ix = g_syn.idx;
    snprintf(path, sizeof path, "%s/%s", dir, ssd_coco_file_name(ix, 1));
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof path, "%s/%s", dir, ssd_coco_file_name(ix, 3));
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fclose(f);
    assert_int_equal(truncate(path, len / 2), 0);
    snprintf(path, sizeof path, "%s/%s", dir, ssd_coco_file_name(ix, 5));
    f = fopen(path, "wb");
    fputs("this is not a JPEG at all", f);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s", dir, ssd_coco_file_name(ix, 7));
    f = fopen(path, "wb");
    fwrite("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 1, 16, f);
    fclose(f);

    for (int train = 1; train >= 0; train--) {
        ssd_loader_cfg c;
        base_cfg(&c, &g_syn, train);
        c.image_dir = dir;
        c.num_workers = 2;
        c.epochs = 2;
        ssd_loader *l;
        ssd_error err;
        assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_OK);
        const ssd_batch *b;
        int64_t samples = 0, replaced = 0;
        while ((b = ssd_loader_next(l)) != NULL) {
            replaced += b->replaced;
            for (int k = 0; k < b->n; k++, samples++) {
                int64_t i = b->indices[k];
                assert_true(i != 1 && i != 3 && i != 5 && i != 7);
                /* a real image: not all pixels equal */
                const float *p = b->images + k * IMGF;
                int varied = 0;
                for (size_t q = 1; q < IMGF && !varied; q++) varied = p[q] != p[0];
                assert_true(varied);
            }
        }
        assert_null(ssd_loader_error(l));
        assert_int_equal(samples, 2 * ssd_loader_samples_per_epoch(l));
        assert_int_equal(ssd_loader_bad_files(l), 2 * 4);
        assert_int_equal(replaced, 2 * 4);
        ssd_loader_destroy(l);
    }

    /* A directory without the images: an error naming it, not an endless loop. */
    char empty[1300];
    snprintf(empty, sizeof empty, "%s/empty", scratch);
    snprintf(cmd, sizeof cmd, "rm -rf \"%s\" && mkdir -p \"%s\"", empty, empty);
    assert_int_equal(system(cmd), 0);
    ssd_loader_cfg c;
    base_cfg(&c, &g_syn, 1);
    c.image_dir = empty;
    c.num_workers = 2;
    ssd_loader *l;
    ssd_error err;
    assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_OK);
    assert_null(ssd_loader_next(l));
    assert_non_null(ssd_loader_error(l));
    assert_non_null(strstr(ssd_loader_error(l), empty));
    assert_null(ssd_loader_next(l));
    ssd_loader_destroy(l);
    /* not a directory / missing: refused at creation */
    c.image_dir = g_syn.ann;
    assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_ERR_IO);
    assert_non_null(strstr(err.msg, "not a directory"));
    c.image_dir = "/nonexistent/dir";
    assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent/dir"));
    c.image_dir = g_syn.images;
    c.batch_size = 0;
    assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_ERR_ARG);
}

/* Real COCO images: one training epoch (all decodable, every sample has positives) and the
 * validation transform against torchvision's Resize + ToTensor + Normalize. */
static void test_coco_tiny(void **state) {
    (void)state;
    const char *src = tu_env("SSD_SOURCE_DIR");
    fixture f;
    snprintf(f.root, sizeof f.root, "%s/../shared/data/coco_tiny", src ? src : ".");
    snprintf(f.ann, sizeof f.ann, "%s/annotations/instances_val2017.json", f.root);
    snprintf(f.images, sizeof f.images, "%s/val2017", f.root);
    if (access(f.ann, R_OK) != 0) {
        tu_skip("test_loader coco_tiny", "../shared/data/coco_tiny is not present (the synthetic "
                "checks above still ran)");
        return;
    }
    ssd_error err;
    assert_int_equal(ssd_coco_index_load(f.ann, "", &f.idx, NULL, &err), SSD_OK);
    ssd_loader_cfg c;
    base_cfg(&c, &f, 1);
    c.batch_size = 16;
    c.num_workers = 2;
    c.epochs = 1;
    ssd_loader *l;
    assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_OK);
    const ssd_batch *b;
    int64_t samples = 0;
    while ((b = ssd_loader_next(l)) != NULL) {
        for (int k = 0; k < b->n; k++, samples++) {
            int pos = 0;
            for (int a = 0; a < SSD_NUM_ANCHORS; a++) pos += b->labels[(size_t)k * SSD_NUM_ANCHORS + a] > 0;
            assert_true(pos >= 1);
            for (size_t q = 0; q < (size_t)SSD_NUM_ANCHORS * 4; q++)
                assert_true(isfinite(b->bboxes[(size_t)k * SSD_NUM_ANCHORS * 4 + q]));
        }
    }
    assert_int_equal(samples, f.idx->num_samples);
    assert_int_equal(ssd_loader_bad_files(l), 0);
    ssd_loader_destroy(l);

    /* validation pixels of the first batch vs torchvision */
    char prefix[2048];
    int o = tu_torch_oracle("test_loader coco_tiny val vs torchvision", prefix, sizeof prefix);
    if (o == 0) {
        base_cfg(&c, &f, 0);
        c.batch_size = 4;
        c.num_workers = 1;
        c.epochs = 1;
        assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_OK);
        b = ssd_loader_next(l);
        assert_non_null(b);
        char scratch[1024], out[1300], cmd[8192], log[1400], text[4096];
        tu_scratch_dir("test_loader", scratch, sizeof scratch);
        for (int k = 0; k < b->n; k++) {
            snprintf(out, sizeof out, "%s/val_%d.f32", scratch, k);
            snprintf(log, sizeof log, "%s/val_%d.log", scratch, k);
            snprintf(cmd, sizeof cmd, "\"%s\" \"%s/tools/val_transform_oracle.py\" \"%s/%s\" \"%s\"",
                     tu_env("SSD_PYTHON_TORCH"), src, f.images,
                     ssd_coco_file_name(f.idx, b->indices[k]), out);
            assert_int_equal(tu_run_capture(cmd, log, text, sizeof text), 0);
            FILE *fp = fopen(out, "rb");
            assert_non_null(fp);
            float *ref = malloc(IMGF * sizeof(float));
            assert_int_equal(fread(ref, sizeof(float), IMGF, fp), IMGF);
            fclose(fp);
            double maxd = 0;
            for (size_t q = 0; q < IMGF; q++) {
                double d = fabs((double)ref[q] - b->images[k * IMGF + q]);
                if (d > maxd) maxd = d;
            }
            printf("coco_tiny val %s: max |ours - torchvision| = %g\n",
                   ssd_coco_file_name(f.idx, b->indices[k]), maxd);
            assert_true(maxd == 0.0);
            free(ref);
        }
        ssd_loader_destroy(l);
    }
    ssd_coco_index_free(f.idx);
}

/* `ssd batch` writes the loader's batch (same seed/position, any worker count) as safetensors. */
static void test_cli_batch(void **state) {
    (void)state;
    char scratch[1024], out[1200], log[1200], cmd[4096], text[8192];
    tu_scratch_dir("test_loader", scratch, sizeof scratch);
    snprintf(out, sizeof out, "%.1000s/batch.safetensors", scratch);
    snprintf(log, sizeof log, "%.1000s/batch.log", scratch);
    remove(out);
    snprintf(cmd, sizeof cmd, "\"%s/ssd\" batch --data \"%s\" --out \"%s\" --batch 5 --epoch 1 "
             "--iter 2 --seed 77 --num-workers 3 --cache-dir ''", tu_env("SSD_BUILD_DIR"),
             g_syn.root, out);
    assert_int_equal(tu_run_capture(cmd, log, text, sizeof text), 0);
    ssd_st_file *f;
    ssd_error err;
    assert_int_equal(ssd_st_read(out, &f, &err), SSD_OK);
    ssd_loader_cfg c;
    base_cfg(&c, &g_syn, 1);
    c.num_workers = 0;
    c.start_epoch = 1;
    c.start_iter = 2;
    c.epochs = 1;
    ssd_loader *l;
    assert_int_equal(ssd_loader_create(&c, &l, &err), SSD_OK);
    const ssd_batch *b = ssd_loader_next(l);
    assert_non_null(b);
    const ssd_tensor *im = ssd_st_get(f, "images"), *bb = ssd_st_get(f, "bboxes"),
                     *lb = ssd_st_get(f, "labels"), *ids = ssd_st_get(f, "image_ids"),
                     *sz = ssd_st_get(f, "sizes");
    assert_non_null(im);
    assert_non_null(bb);
    assert_non_null(lb);
    assert_non_null(ids);
    assert_non_null(sz);
    assert_int_equal(im->shape[0], b->n);
    assert_memory_equal(im->data, b->images, (size_t)b->n * IMGF * sizeof(float));
    assert_memory_equal(bb->data, b->bboxes, (size_t)b->n * SSD_NUM_ANCHORS * 4 * sizeof(float));
    assert_memory_equal(lb->data, b->labels, (size_t)b->n * SSD_NUM_ANCHORS * sizeof(int64_t));
    assert_memory_equal(ids->data, b->image_ids, (size_t)b->n * sizeof(int64_t));
    for (int k = 0; k < 2 * b->n; k++) assert_int_equal(((int64_t *)sz->data)[k], b->sizes[k]);
    assert_string_equal(ssd_st_meta(f, "epoch"), "1");
    assert_string_equal(ssd_st_meta(f, "iter"), "2");
    ssd_st_free(f);
    ssd_loader_destroy(l);
    /* usage and input errors */
    snprintf(cmd, sizeof cmd, "\"%s/ssd\" batch --data \"%s\" --out \"%s\" --split test",
             tu_env("SSD_BUILD_DIR"), g_syn.root, out);
    assert_int_equal(tu_run_capture(cmd, log, text, sizeof text), 2);
    assert_non_null(strstr(text, "--split"));
    snprintf(cmd, sizeof cmd, "\"%s/ssd\" batch --data /nonexistent --out \"%s\"",
             tu_env("SSD_BUILD_DIR"), out);
    assert_int_equal(tu_run_capture(cmd, log, text, sizeof text), 1);
    assert_non_null(strstr(text, "/nonexistent/annotations/instances_train2017.json"));
    snprintf(cmd, sizeof cmd, "\"%s/ssd\" batch --data \"%s\" --out \"%s\" --iter 100000",
             tu_env("SSD_BUILD_DIR"), g_syn.root, out);
    assert_int_equal(tu_run_capture(cmd, log, text, sizeof text), 1);
    assert_non_null(strstr(text, "start iteration"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_count_invariance),
        cmocka_unit_test(test_train_sample_recomputed),
        cmocka_unit_test(test_epochs_cover_and_reshuffle),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_sharding_matches_one_rank),
        cmocka_unit_test(test_validation_stream),
        cmocka_unit_test(test_batch_stride),
        cmocka_unit_test(test_bad_files_replaced),
        cmocka_unit_test(test_coco_tiny),
        cmocka_unit_test(test_cli_batch),
    };
    return cmocka_run_group_tests(tests, make_synth, free_synth);
}
