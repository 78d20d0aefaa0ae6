/* `ssd batch`: one batch of the data pipeline, written as safetensors -- the training batch in
 * exactly the form `ssd step --batch` takes (images, bboxes, labels), plus the bookkeeping the
 * loader emits (image ids, dataset indices, JSON and post-crop sizes). It shows what the trainer
 * would see at (epoch, iteration) for a seed, and feeds `ssd step` with real images.
 *
 *   ssd batch --data DIR --out B.safetensors [--split train|val] [--batch N] [--epoch E]
 *             [--iter I] [--seed S] [--num-workers K] [--rank R --world W] ...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/mem.h"
#include "core/tensor.h"
#include "data/coco_json.h"
#include "data/loader.h"
#include "io/safetensors.h"

typedef struct batch_args {
    const char *data, *out, *split, *cache_dir;
    long batch, epoch, iter, seed, workers, rank, world, crop_iterations;
} batch_args;

/* Writes the batch; i64 copies of the 32-bit bookkeeping (safetensors here has no i32). */
static ssd_status write_batch(const batch_args *a, const ssd_batch *b, int train, ssd_error *err) {
    int64_t n = b->n;
    int64_t s_img[4] = {n, 3, 300, 300}, s_box[3] = {n, SSD_NUM_ANCHORS, 4};
    int64_t s_lab[2] = {n, SSD_NUM_ANCHORS}, s_n[1] = {n}, s_hw[2] = {n, 2};
    int64_t *sizes = ssd_xmalloc((size_t)n * 2 * sizeof *sizes);
    int64_t *orig = ssd_xmalloc((size_t)n * 2 * sizeof *orig);
    for (int64_t i = 0; i < 2 * n; i++) sizes[i] = b->sizes[i], orig[i] = b->orig_sizes[i];
    ssd_tensor t[7];
    int k = 0;
    t[k++] = ssd_tensor_view(b->images, SSD_F32, 4, s_img, "images");
    if (train) {
        t[k++] = ssd_tensor_view(b->bboxes, SSD_F32, 3, s_box, "bboxes");
        t[k++] = ssd_tensor_view(b->labels, SSD_I64, 2, s_lab, "labels");
    }
    t[k++] = ssd_tensor_view(b->image_ids, SSD_I64, 1, s_n, "image_ids");
    t[k++] = ssd_tensor_view(b->indices, SSD_I64, 1, s_n, "indices");
    t[k++] = ssd_tensor_view(sizes, SSD_I64, 2, s_hw, "sizes");
    t[k++] = ssd_tensor_view(orig, SSD_I64, 2, s_hw, "orig_sizes");
    const ssd_tensor *tp[7];
    for (int i = 0; i < k; i++) tp[i] = &t[i];
    char ep[32], it[32], sd[32];
    snprintf(ep, sizeof ep, "%lld", (long long)b->epoch);
    snprintf(it, sizeof it, "%lld", (long long)b->iter);
    snprintf(sd, sizeof sd, "%ld", a->seed);
    const char *keys[] = {"split", "epoch", "iter", "seed"};
    const char *vals[] = {a->split, ep, it, sd};
    ssd_status st = ssd_st_write_meta(a->out, tp, k, keys, vals, 4, err);
    free(sizes);
    free(orig);
    return st;
}

int ssd_cmd_batch(int argc, char **argv) {
    batch_args a = {.split = "train", .batch = 8, .seed = 1, .workers = 2, .world = 1,
                    .crop_iterations = 1};
    const ssd_opt opts[] = {
        {"--data", SSD_OPT_STR, &a.data, true, 1, 0, "DIR",
         "COCO-format root: annotations/instances_<split>2017.json, <split>2017/"},
        {"--out", SSD_OPT_STR, &a.out, true, 1, 0, "B.safetensors", "where the batch goes"},
        {"--split", SSD_OPT_STR, &a.split, false, 1, 0, "train|val",
         "training transform + encoded targets, or the validation transform"},
        {"--batch", SSD_OPT_INT, &a.batch, false, 1, 4096, "N", "samples per batch (per rank)"},
        {"--epoch", SSD_OPT_INT, &a.epoch, false, 0, 1e9, "E", "epoch (0-based)"},
        {"--iter", SSD_OPT_INT, &a.iter, false, 0, 1e9, "I", "iteration within the epoch"},
        {"--seed", SSD_OPT_INT, &a.seed, false, 0, 4294967295.0, "S", "shuffle/augment seed"},
        {"--num-workers", SSD_OPT_INT, &a.workers, false, 0, 256, "K",
         "loader threads (the batch is the same for any K)"},
        {"--rank", SSD_OPT_INT, &a.rank, false, 0, 65535, "R", "this rank's shard"},
        {"--world", SSD_OPT_INT, &a.world, false, 1, 65536, "W", "number of ranks"},
        {"--num-cropping-iterations", SSD_OPT_INT, &a.crop_iterations, false, 1, 1000, "T",
         "crop tries per drawn mode (reference: 1)"},
        {"--cache-dir", SSD_OPT_STR, &a.cache_dir, false, 0, 0, "DIR",
         "annotation index cache ('' = none; default $SSD_CACHE_DIR, ~/.cache/ssd)"},
    };
    int nopts = (int)(sizeof opts / sizeof opts[0]);
    const char *summary =
        "Writes one batch of the data pipeline as safetensors: for --split train the tensors\n"
        "`ssd step --batch` takes (images, bboxes, labels) plus image_ids, indices, sizes and\n"
        "orig_sizes; for --split val the validation images and their ids and sizes.";
    int early = ssd_opts_cli("batch", summary, opts, nopts, argc, argv);
    if (early >= 0) return early;
    int train = !strcmp(a.split, "train");
    if (!train && strcmp(a.split, "val") != 0) {
        fprintf(stderr, "ssd batch: --split '%s': expected train or val\n", a.split);
        return 2;
    }
    if (a.rank >= a.world) {
        fprintf(stderr, "ssd batch: --rank %ld must be below --world %ld\n", a.rank, a.world);
        return 2;
    }
    ssd_error err;
    ssd_error_clear(&err);
    int rc = 1;
    char ann[4200], imgs[4200];
    ssd_coco_index *idx = NULL;
    ssd_loader *l = NULL;
    if (ssd_coco_split_paths(a.data, a.split, ann, sizeof ann, imgs, sizeof imgs) != 0) {
        ssd_fail(&err, SSD_ERR_ARG, "--data: path too long");
        goto cleanup;
    }
    if (ssd_coco_index_load(ann, a.cache_dir, &idx, NULL, &err) != SSD_OK) goto cleanup;
    ssd_loader_cfg c;
    ssd_loader_cfg_default(&c);
    c.index = idx;
    c.image_dir = imgs;
    c.train = train;
    c.batch_size = (int)a.batch;
    c.num_workers = (int)a.workers;
    c.prefetch = 1;
    c.rank = (int)a.rank;
    c.world = (int)a.world;
    c.seed = (uint32_t)a.seed;
    c.aug.crop_iterations = (int)a.crop_iterations;
    c.start_epoch = a.epoch;
    c.start_iter = a.iter;
    c.epochs = 1;
    if (ssd_loader_create(&c, &l, &err) != SSD_OK) goto cleanup;
    const ssd_batch *b = ssd_loader_next(l);
    if (!b) {
        ssd_fail(&err, SSD_ERR_IO, "%s", ssd_loader_error(l));
        goto cleanup;
    }
    if (write_batch(&a, b, train, &err) != SSD_OK) goto cleanup;
    printf("ssd batch: %s epoch %lld iteration %lld of %lld: %d samples (%d replaced unreadable "
           "files); wrote %s\n", a.split, (long long)b->epoch, (long long)b->iter,
           (long long)ssd_loader_iters_per_epoch(l), b->n, b->replaced, a.out);
    rc = 0;
cleanup:
    if (rc) fprintf(stderr, "ssd batch: %s\n", err.msg);
    ssd_loader_destroy(l);
    ssd_coco_index_free(idx);
    return rc;
}
