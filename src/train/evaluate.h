/* COCO evaluation of a model on a validation set (spec section 8): the validation transform,
 * an inference-mode forward (running BN statistics), decode + per-class NMS with the reference's
 * batch-drop quirk, export to COCO results rows, and the pycocotools-exact COCOeval. */
#ifndef SSD_TRAIN_EVALUATE_H
#define SSD_TRAIN_EVALUATE_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "dist/dist.h"
#include "data/coco_json.h"
#include "eval/coco.h"
#include "eval/cocoeval.h"
#include "eval/postprocess.h"
#include "train/runner.h"

typedef struct ssd_eval_cfg {
    const ssd_coco_index *index; /* validation samples (images with >= 1 annotation) */
    const char *image_dir;
    const ssd_coco_gt *gt;       /* the same annotation file, for COCOeval */
    int batch_size;              /* --val-batch-size */
    int num_workers;
    const struct ssd_cpus *loader_cpus; /* nullable: see ssd_loader_cfg.worker_cpus */
    ssd_post_cfg post;           /* ssd_post_cfg_default(), score_thresh = --nms-valid-thresh */
    const char *dets_path;       /* nullable: also write the detections (COCO results json) */
    int log_interval;            /* progress line every N batches (0: none) */
    FILE *progress;              /* where progress lines go (nullable: nowhere) */
    ssd_dist *dist;              /* nullable: one process. With W ranks every rank must call
                                    ssd_evaluate: rank r runs batches r, r+W, ... (the same
                                    batches as one process), rank 0 gathers the detections,
                                    writes dets_path and runs COCOeval, and every rank gets the
                                    stats and the summed counts */
} ssd_eval_cfg;

typedef struct ssd_eval_result {
    double stats[SSD_COCO_NSTATS]; /* stats[0] = AP@[.50:.95], the MLPerf metric */
    int64_t images;                /* validation images run through the network */
    int64_t detections;            /* rows given to COCOeval */
    int dropped_batches;           /* batches dropped by the reference quirk (spec 8) */
    int64_t bad_files;             /* unreadable JPEGs replaced by the loader */
    double seconds;                /* wall time, whole evaluation */
    double infer_seconds;          /* of which forward + post-processing */
} ssd_eval_result;

ssd_status ssd_evaluate(ssd_runner *r, const ssd_eval_cfg *cfg, ssd_eval_result *res,
                        ssd_error *err);

#endif
