/* Inference post-processing: decode, softmax, per-class score threshold + top-k + greedy NMS,
 * merge to the best detections per image, COCO export (spec/ssd-reference.md section 8;
 * quirk 11.2 item 9).
 *
 * Per image (A = 8732 anchors, ploc (4,A) and pconf (81,A) in the heads' coordinate-major layout):
 *  1. boxes: ssd_box_decode of (ploc[0..3][a]) against anchor xywh[a] -> ltrb, float32, not clipped.
 *  2. scores: softmax over the 81 logits of each anchor, computed in double (max-subtracted,
 *     libm exp) and rounded to float once. The reference computes it in float32; the two agree
 *     to ~1 ulp of float, which can only matter for a score within ~1e-8 of the threshold or for
 *     near-equal scores' order.
 *  3. for each class k = 1..80 (background skipped):
 *       candidates = anchors with score > cfg.score_thresh (strict, compared in float32);
 *       the cfg.topk_per_class best candidates are kept (ordered by score descending, EQUAL
 *       SCORES -> LOWER ANCHOR INDEX FIRST; the reference's sort leaves ties unspecified);
 *       greedy NMS (nms.h): remove every later candidate with IoU >= cfg.iou_thresh (or NaN).
 *  4. the survivors of all classes are merged and the cfg.max_dets best are returned, ordered by
 *     score descending, ties by ascending label, then ascending anchor index. (The reference
 *     returns them in ascending score order; order does not matter to COCOeval beyond ties.)
 *  The number of candidates over all classes (step 3, before top-k and NMS) is reported: the
 *  reference raises "No object detected in batch" when it is 0 for any image of a val batch
 *  and drops the WHOLE batch (ssd_postprocess_batch reproduces this when
 *  cfg.drop_batch_on_empty, the default).
 *
 * Workspaces are reusable: after the first images of a given cfg nothing is allocated. */
#ifndef SSD_EVAL_POSTPROCESS_H
#define SSD_EVAL_POSTPROCESS_H

#include <stdbool.h>
#include <stdint.h>

#include "box/anchors.h"

typedef struct ssd_post_cfg {
    float score_thresh;       /* 0.05 (--nms-valid-thresh): candidate iff score > this */
    int topk_per_class;       /* 200: candidates per class entering NMS */
    float iou_thresh;         /* 0.5: NMS removes IoU >= this (overlap_threshold = 0.50) */
    int max_dets;             /* 200 detections per image after merging classes */
    bool drop_batch_on_empty; /* true: reference quirk, see ssd_postprocess_batch */
} ssd_post_cfg;

/* The reference's values (above). */
ssd_post_cfg ssd_post_cfg_default(void);

typedef struct ssd_detection {
    float ltrb[4]; /* normalised to the (300x300) network input, unclipped */
    float score;
    int label; /* 1..80 */
} ssd_detection;

/* Scratch for one image per OpenMP thread (as many slots as omp_get_max_threads() at creation). */
typedef struct ssd_post_ws ssd_post_ws;
ssd_post_ws *ssd_post_ws_create(void);
void ssd_post_ws_destroy(ssd_post_ws *ws); /* NULL is fine */

/* One image. Writes at most cfg->max_dets detections to out and returns their number;
 * *num_candidates (if non-NULL) gets the candidate count over all classes before top-k/NMS.
 * Uses slot 0 of ws (ws may be NULL: a temporary workspace is made and freed). */
int ssd_postprocess_image(const ssd_anchors *a, const float *ploc, const float *pconf,
                          const ssd_post_cfg *cfg, ssd_detection *out, int *num_candidates,
                          ssd_post_ws *ws);

/* A batch of n images: ploc (n,4,A), pconf (n,81,A); out (n, cfg->max_dets) with image i's
 * detections at out + i*max_dets, their number in num_dets[i]. Images run in parallel (OpenMP),
 * results do not depend on the thread count.
 * Returns the number of images that had NO candidate in any class. When that is > 0 and
 * cfg->drop_batch_on_empty, every num_dets[i] is set to 0: the whole batch yields nothing (the
 * reference quirk); otherwise each image keeps its own detections (per-image fallback). */
int ssd_postprocess_batch(const ssd_anchors *a, int n, const float *ploc, const float *pconf,
                          const ssd_post_cfg *cfg, ssd_detection *out, int *num_dets,
                          ssd_post_ws *ws);

/* Label -> COCO category id for COCO 2017 (spec 6.1: categories in file order = ascending id):
 * [0] = 0 (background, never emitted), [1..80] = 1, 2, ..., 90 (80 ids, gaps at 12, 26, 29, 30,
 * 45, 66, 68, 69, 71, 83). */
extern const int ssd_coco_label_to_category[SSD_NUM_CLASSES];

/* One detection as a COCO results row (the reference's export, spec 8):
 *   out = [image_id, l*W, t*H, (r-l)*W, (b-t)*H, score, category_id]
 * with W = width, H = height of the ORIGINAL image (from the JSON). As in the reference (numpy
 * float32 boxes times Python ints, stored float64): the differences r-l, b-t are taken in
 * float32, every product in double. label_to_category: 81 entries, NULL = the COCO table
 * above. */
void ssd_detection_to_coco(const ssd_detection *d, int64_t image_id, double width, double height,
                           const int *label_to_category, double out[7]);

#endif
