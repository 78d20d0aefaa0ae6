/* COCO bbox evaluation, equal to pycocotools' COCOeval(gt, gt.loadRes(dt), "bbox") with default
 * Params: evaluate(); accumulate(); summarize(). The rules, cited to the pycocotools source, are
 * in ../shared/spec/coco-eval.md; docs/cocoeval.md says what we chose where it is silent.
 *
 * Every floating-point expression has the operands and order of the Python code, so the results
 * are bit-identical to pycocotools on numpy 1.x, including the final means (numpy's pairwise
 * summation in 8192-element chunks). numpy >= 2 sums a contiguous array in one pairwise pass, so
 * pycocotools there can differ from us in the last bit of a mean over more than 8192 values
 * (AP over 10 IoUs x 101 recalls x more than 8 categories); `chunk` below selects either rule.
 *
 * Work is split over OpenMP threads by (image, category) and by (category, area, maxDets); every
 * result lands in its own slot, so the numbers do not depend on the thread count. */
#ifndef SSD_EVAL_COCOEVAL_H
#define SSD_EVAL_COCOEVAL_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "eval/coco.h"

#define SSD_COCO_T 10 /* IoU thresholds .50:.05:.95 */
#define SSD_COCO_R 101 /* recall thresholds 0:.01:1 */
#define SSD_COCO_A 4  /* area ranges: all, small, medium, large */
#define SSD_COCO_M 3  /* maxDets: 1, 10, 100 */
#define SSD_COCO_NSTATS 12

typedef struct ssd_cocoeval_opts {
    int threads;  /* <= 0: OpenMP's default */
    long chunk;   /* summation chunk of the final means: 8192 (numpy 1.x, default when 0), or
                     -1 for one pass (numpy >= 2) */
} ssd_cocoeval_opts;

typedef struct ssd_cocoeval_result {
    double stats[SSD_COCO_NSTATS]; /* AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl */
    int n_categories;              /* K: the sorted unique GT category ids */
    int64_t *category_ids;         /* (K) */
    double *category_ap; /* (K) AP@[.50:.95], area all, 100 dets; -1 where the category has no GT */
    double *precision;   /* (T,R,K,A,M), -1 where absent (pycocotools' eval['precision']) */
    double *recall;      /* (T,K,A,M), -1 where absent */
    int n_images;        /* I: the sorted unique GT image ids */
} ssd_cocoeval_result;

/* Evaluates DT against GT. Fails (SSD_ERR_ARG) only if a detection names an image that is not in
 * GT (the loaders already refuse that). An empty DT is fine: every category with GT scores 0. */
ssd_status ssd_cocoeval(const ssd_coco_gt *gt, const ssd_coco_dets *dt, const ssd_cocoeval_opts *o,
                        ssd_cocoeval_result *res, ssd_error *err);
void ssd_cocoeval_result_free(ssd_cocoeval_result *res);

/* The 12 lines pycocotools' summarize() prints, e.g.
 *  " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.373" */
void ssd_cocoeval_print(FILE *f, const double stats[SSD_COCO_NSTATS]);

/* numpy's float64 sum of n values (pairwise, in chunks of CHUNK elements, or one pass when
 * chunk <= 0), exposed for the tests. */
double ssd_numpy_sum(const double *a, long n, long chunk);

#endif
