/* See evaluate.h. */
#include "train/evaluate.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/timer.h"
#include "data/loader.h"

/* One detection row as gathered: the batch it came from, then the COCO fields. */
typedef struct eval_row {
    double batch, image_id, category_id, bbox[4], score;
} eval_row;

typedef struct eval_rows {
    eval_row *v;
    size_t n, cap;
} eval_rows;

static void rows_push(eval_rows *r, int64_t batch, int64_t image_id, const double row[7]) {
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 1024;
        r->v = ssd_xrealloc(r->v, r->cap * sizeof *r->v);
    }
    eval_row *e = &r->v[r->n++];
    e->batch = (double)batch;
    e->image_id = (double)image_id;
    e->category_id = row[6];
    memcpy(e->bbox, row + 1, sizeof e->bbox);
    e->score = row[5];
}

typedef struct row_ref {
    double batch;
    size_t at;
} row_ref;

static int cmp_row_ref(const void *a, const void *b) {
    const row_ref *x = a, *y = b;
    if (x->batch != y->batch) return x->batch < y->batch ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* The gathered rows (rank by rank) in batch order, as one process would have produced them:
 * every batch comes from one rank, so ordering by (batch, position) restores that order. */
static void rows_to_dets(const eval_row *v, size_t n, ssd_coco_dets *all) {
    row_ref *ord = ssd_xmalloc((n ? n : 1) * sizeof *ord);
    for (size_t i = 0; i < n; i++) ord[i] = (row_ref){v[i].batch, i};
    qsort(ord, n, sizeof *ord, cmp_row_ref);
    for (size_t i = 0; i < n; i++) {
        const eval_row *e = &v[ord[i].at];
        ssd_coco_dets_push(all, (int64_t)e->image_id, (int64_t)e->category_id, e->bbox, e->score);
    }
    free(ord);
}

ssd_status ssd_evaluate(ssd_runner *r, const ssd_eval_cfg *cfg, ssd_eval_result *res,
                        ssd_error *err) {
    memset(res, 0, sizeof *res);
    double t0 = ssd_now();
    ssd_loader_cfg lc;
    ssd_loader_cfg_default(&lc);
    lc.index = cfg->index;
    lc.image_dir = cfg->image_dir;
    lc.train = 0;
    lc.host_alloc = ssd_backend_pinned_alloc; /* pinned on a GPU: uploads at DMA speed */
    lc.host_free = ssd_backend_pinned_free;
    lc.host_ctx = ssd_runner_model(r)->be;
    lc.batch_size = cfg->batch_size;
    lc.num_workers = cfg->num_workers;
    lc.worker_cpus = cfg->loader_cpus;
    lc.shuffle = 0;
    lc.epochs = 1;
    const int rank = ssd_dist_rank(cfg->dist), world = ssd_dist_world(cfg->dist);
    if (world > 1) {
        lc.batch_offset = rank;
        lc.batch_stride = world;
    }
    ssd_loader *ld = NULL;
    if (ssd_loader_create(&lc, &ld, err) != SSD_OK) return err->code;

    /* label -> COCO category id of this dataset; labels beyond its categories give nothing */
    int to_cat[SSD_NUM_CLASSES] = {0};
    for (int l = 1; l < SSD_NUM_CLASSES; l++)
        to_cat[l] = (int)ssd_coco_label_to_id(cfg->index, l);
    const int max_dets = cfg->post.max_dets;
    ssd_detection *dets = ssd_xmalloc((size_t)cfg->batch_size * max_dets * sizeof *dets);
    int *ndets = ssd_xmalloc((size_t)cfg->batch_size * sizeof *ndets);
    ssd_post_ws *ws = ssd_post_ws_create();
    ssd_coco_dets all = {0};
    eval_rows rows = {0}; /* this rank's detections, tagged with their batch */
    int64_t nbatches = ssd_loader_iters_per_epoch(ld), b = 0;
    const ssd_batch *bt;
    while ((bt = ssd_loader_next(ld)) != NULL) {
        double ti = ssd_now();
        const float *loc, *conf;
        ssd_runner_infer(r, bt->n, bt->images, &loc, &conf);
        int empty = ssd_postprocess_batch(ssd_runner_anchors(r), bt->n, loc, conf, &cfg->post,
                                          dets, ndets, ws);
        if (empty > 0 && cfg->post.drop_batch_on_empty) res->dropped_batches++;
        for (int i = 0; i < bt->n; i++) {
            double h = bt->orig_sizes[2 * i], w = bt->orig_sizes[2 * i + 1];
            for (int k = 0; k < ndets[i]; k++) {
                const ssd_detection *d = &dets[(size_t)i * max_dets + k];
                if (d->label < 1 || d->label >= SSD_NUM_CLASSES || !to_cat[d->label]) continue;
                double row[7];
                ssd_detection_to_coco(d, bt->image_ids[i], w, h, to_cat, row);
                rows_push(&rows, bt->iter, bt->image_ids[i], row);
            }
        }
        res->images += bt->n;
        res->infer_seconds += ssd_now() - ti;
        b++;
        if (cfg->progress && cfg->log_interval > 0 && b % cfg->log_interval == 0)
            fprintf(cfg->progress, "eval: batch %lld/%lld, %.1f img/s\n",
                    (long long)(bt->iter + 1), (long long)nbatches,
                    world * res->images / (ssd_now() - t0));
    }
    ssd_status st = SSD_OK;
    if (ssd_loader_error(ld)) {
        /* every rank fails its own way; a distributed caller aborts the job */
        st = ssd_fail(err, SSD_ERR_IO, "evaluation: %s", ssd_loader_error(ld));
        goto done;
    }
    /* counts summed over ranks; detections in batch order at rank 0 */
    int64_t counts[3] = {res->images, res->dropped_batches, ssd_loader_bad_files(ld)};
    double dcounts[3] = {(double)counts[0], (double)counts[1], (double)counts[2]};
    ssd_dist_allreduce_sum_f64(cfg->dist, dcounts, 3);
    res->images = (int64_t)dcounts[0];
    res->dropped_batches = (int)dcounts[1];
    res->bad_files = (int64_t)dcounts[2];
    void *gathered = NULL;
    size_t gbytes = 0;
    ssd_dist_gather_bytes(cfg->dist, rows.v, rows.n * sizeof *rows.v, 0, &gathered, &gbytes);
    double stats_ok[SSD_COCO_NSTATS + 2] = {0};
    if (rank == 0) {
        rows_to_dets(gathered, gbytes / sizeof *rows.v, &all);
        res->detections = (int64_t)all.n;
        if (cfg->dets_path && (st = ssd_coco_dets_write(cfg->dets_path, &all, err)) != SSD_OK)
            goto gathered_done;
        ssd_cocoeval_opts o = {.threads = 0, .chunk = 0};
        ssd_cocoeval_result cr = {0};
        if ((st = ssd_cocoeval(cfg->gt, &all, &o, &cr, err)) != SSD_OK) goto gathered_done;
        memcpy(stats_ok, cr.stats, sizeof res->stats);
        ssd_cocoeval_result_free(&cr);
    gathered_done:
        stats_ok[SSD_COCO_NSTATS] = (double)all.n;
        stats_ok[SSD_COCO_NSTATS + 1] = st == SSD_OK;
    }
    free(gathered);
    /* a failure at rank 0 returns there; the other ranks return an error naming it */
    ssd_dist_bcast(cfg->dist, stats_ok, sizeof stats_ok, 0);
    if (rank != 0 && !stats_ok[SSD_COCO_NSTATS + 1])
        st = ssd_fail(err, SSD_ERR_IO, "evaluation failed at rank 0 (see its message)");
    memcpy(res->stats, stats_ok, sizeof res->stats);
    res->detections = (int64_t)stats_ok[SSD_COCO_NSTATS];
done:
    free(rows.v);
    res->seconds = ssd_now() - t0;
    ssd_coco_dets_free(&all);
    ssd_post_ws_destroy(ws);
    free(dets);
    free(ndets);
    ssd_loader_destroy(ld);
    return st;
}
