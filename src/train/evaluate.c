/* See evaluate.h. */
#include "train/evaluate.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/timer.h"
#include "data/loader.h"

ssd_status ssd_evaluate(ssd_runner *r, const ssd_eval_cfg *cfg, ssd_eval_result *res,
                        ssd_error *err) {
    memset(res, 0, sizeof *res);
    double t0 = ssd_now();
    ssd_loader_cfg lc;
    ssd_loader_cfg_default(&lc);
    lc.index = cfg->index;
    lc.image_dir = cfg->image_dir;
    lc.train = 0;
    lc.batch_size = cfg->batch_size;
    lc.num_workers = cfg->num_workers;
    lc.shuffle = 0;
    lc.epochs = 1;
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
                ssd_coco_dets_push(&all, bt->image_ids[i], (int64_t)row[6], row + 1, row[5]);
            }
        }
        res->images += bt->n;
        res->infer_seconds += ssd_now() - ti;
        b++;
        if (cfg->progress && cfg->log_interval > 0 && b % cfg->log_interval == 0)
            fprintf(cfg->progress, "eval: batch %lld/%lld, %.1f img/s\n", (long long)b,
                    (long long)nbatches, res->images / (ssd_now() - t0));
    }
    ssd_status st = SSD_OK;
    if (ssd_loader_error(ld)) {
        st = ssd_fail(err, SSD_ERR_IO, "evaluation: %s", ssd_loader_error(ld));
        goto done;
    }
    res->bad_files = ssd_loader_bad_files(ld);
    res->detections = (int64_t)all.n;
    if (cfg->dets_path && (st = ssd_coco_dets_write(cfg->dets_path, &all, err)) != SSD_OK)
        goto done;
    ssd_cocoeval_opts o = {.threads = 0, .chunk = 0};
    ssd_cocoeval_result cr = {0};
    if ((st = ssd_cocoeval(cfg->gt, &all, &o, &cr, err)) != SSD_OK) goto done;
    memcpy(res->stats, cr.stats, sizeof res->stats);
    ssd_cocoeval_result_free(&cr);
done:
    res->seconds = ssd_now() - t0;
    ssd_coco_dets_free(&all);
    ssd_post_ws_destroy(ws);
    free(dets);
    free(ndets);
    ssd_loader_destroy(ld);
    return st;
}
