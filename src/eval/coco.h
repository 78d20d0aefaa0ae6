/* COCO-format ground truth and detection results, as the bbox evaluation needs them.
 *
 * Ground truth (instances_*.json): `images[].id`, `categories[].id` and `annotations[]` with `id`,
 * `image_id`, `category_id`, `bbox` [x,y,w,h], `area` and `iscrowd` (all required; other keys,
 * segmentations included, are skipped). Results: a JSON array of {image_id, category_id,
 * bbox [x,y,w,h], score}, as pycocotools' loadRes reads them: detection i gets id i+1, area w*h
 * and iscrowd 0, and every image_id must be a ground-truth image.
 *
 * Ids must be integers (a number with no fraction, |id| <= 2^53); coordinates, areas and scores
 * any finite number. Every problem is reported as SSD_ERR_FORMAT naming the file, the record
 * index and the key. Numbers are parsed by cJSON (strtod, correctly rounded; cJSON reads at most
 * 63 characters of one number, far more than the 17 significant digits any writer emits). */
#ifndef SSD_EVAL_COCO_H
#define SSD_EVAL_COCO_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct ssd_coco_ann {
    int64_t id, image_id, category_id;
    double bbox[4]; /* x, y, w, h */
    double area;    /* ground truth: the file's `area`; detections: w*h */
    double score;   /* detections only */
    int iscrowd;    /* ground truth only; nonzero = crowd */
} ssd_coco_ann;

typedef struct ssd_coco_image {
    int64_t id;
    int width, height; /* 0 when the file has none */
} ssd_coco_image;

typedef struct ssd_coco_gt {
    int n_images;
    ssd_coco_image *images; /* file order */
    int n_categories;
    int64_t *category_ids; /* file order */
    size_t n_anns;
    ssd_coco_ann *anns; /* file order */
} ssd_coco_gt;

typedef struct ssd_coco_dets {
    size_t n;
    ssd_coco_ann *d; /* input order; id = index+1 */
} ssd_coco_dets;

/* NAME labels messages (the path, or "<memory>"). */
ssd_status ssd_coco_gt_parse(const char *json, size_t len, const char *name, ssd_coco_gt *gt,
                             ssd_error *err);
ssd_status ssd_coco_gt_load(const char *path, ssd_coco_gt *gt, ssd_error *err);
void ssd_coco_gt_free(ssd_coco_gt *gt);

/* Results against GT (image ids are checked against it, as loadRes asserts). */
ssd_status ssd_coco_dets_parse(const char *json, size_t len, const char *name,
                               const ssd_coco_gt *gt, ssd_coco_dets *dets, ssd_error *err);
ssd_status ssd_coco_dets_load(const char *path, const ssd_coco_gt *gt, ssd_coco_dets *dets,
                              ssd_error *err);
/* Appends one detection (id = n+1, area = w*h, iscrowd 0); for detections made in memory. */
void ssd_coco_dets_push(ssd_coco_dets *dets, int64_t image_id, int64_t category_id,
                        const double bbox[4], double score);
void ssd_coco_dets_free(ssd_coco_dets *dets);

/* Writes DETS to PATH in the COCO results format, one record per line:
 *   [{"image_id":42,"category_id":18,"bbox":[x,y,w,h],"score":s}, ...]
 * every double in a form that reads back to the same bits; atomically (io/file.h). Non-finite
 * values are refused (SSD_ERR_ARG) before anything is written. */
ssd_status ssd_coco_dets_write(const char *path, const ssd_coco_dets *dets, ssd_error *err);

/* Sorted copy of ids[0..n) without repeats (malloc'd; *out_n = its length). */
int64_t *ssd_coco_sorted_unique(const int64_t *ids, size_t n, int *out_n);
/* The GT's image ids, sorted, without repeats (malloc'd): pycocotools' imgIds. */
int64_t *ssd_coco_image_ids(const ssd_coco_gt *gt, int *n);
/* Index of id in a sorted id array, or -1. */
int ssd_coco_find_id(const int64_t *sorted, int n, int64_t id);

/* Writes GT to PATH as a COCO instances json (images with width/height when known, categories
 * with a name "c<id>", annotations with id, image_id, category_id, bbox, area, iscrowd), every
 * double exact, atomically. For synthetic sets and tests. */
ssd_status ssd_coco_gt_write(const char *path, const ssd_coco_gt *gt, ssd_error *err);

#endif
