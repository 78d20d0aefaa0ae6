/* The encoder: ground-truth boxes of one image -> per-anchor targets
 * (spec/ssd-reference.md section 4; quirks of section 11.2 items 3 and 5).
 *
 * For each of the 8732 anchors it produces an absolute xywh box (not offsets: the regression
 * offsets are taken later, in the loss) and a label, with M = IoU[B x 8732] of the GTs against
 * the anchors' ltrb form in float32 (ssd_iou_ltrb):
 *   - per anchor a: best_gt[a] = argmax_g M[g,a]; ties -> the LOWEST GT index
 *     (PyTorch CPU max(dim) semantics);
 *   - per GT g: best_anchor[g] = argmax_a M[g,a]; ties -> the LOWEST anchor index, so a GT with
 *     IoU 0 everywhere (zero area) is forced onto anchor 0;
 *   - forced matches: for g = 0..B-1 in increasing order, best_gt_iou[best_anchor[g]] = 2.0 and
 *     best_gt[best_anchor[g]] = g, so when GTs share a best anchor the LAST GT wins;
 *   - positive iff best_gt_iou[a] > 0.5 (strict): label = gt_labels[best_gt[a]],
 *     box = gt ltrb of best_gt[a]; otherwise label 0 (background) and the anchor's own ltrb box;
 *   - every box is then converted ltrb -> xywh in float32: cx=(l+r)/2, cy=(t+b)/2, w=r-l,
 *     h=b-t. (Background boxes are therefore the anchors' ltrb converted back, which can differ
 *     from the stored clamped xywh in the last bit, exactly as in the reference.)
 * The results are bit-identical to a float32 PyTorch evaluation (tools/torchref/boxes.encode).
 *
 * B = 0 (an image without boxes: the reference never encodes one, our loader might): every
 * anchor is background and its box is its own ltrb converted to xywh; the same rule as above
 * with no positives. gt_ltrb and gt_labels may then be NULL.
 *
 * Preconditions (tier 1, asserted): num_gt >= 0; every GT box has l <= r and t <= b (no NaN).
 * Boxes of zero width or height are allowed (the reference's infinite-loss quirk).
 *
 * Threads: ssd_encode touches only its arguments; give each data-loader thread its own
 * workspace. The anchors are read only and may be shared. */
#ifndef SSD_BOX_ENCODER_H
#define SSD_BOX_ENCODER_H

#include <stdint.h>

#include "box/anchors.h"

#define SSD_MATCH_THRESHOLD 0.5f

/* Scratch for one ssd_encode call at a time: per-anchor best GT and IoU (8732 each) and per-GT
 * best anchor. Sized for `capacity` GTs at creation; a call with more GTs grows it once, so
 * the steady state allocates nothing. */
typedef struct ssd_encoder_ws ssd_encoder_ws;

ssd_encoder_ws *ssd_encoder_ws_create(int capacity);
void ssd_encoder_ws_destroy(ssd_encoder_ws *ws); /* NULL is fine */

/* gt_ltrb (num_gt,4), gt_labels (num_gt) -> out_xywh (8732,4), out_labels (8732). */
void ssd_encode(const ssd_anchors *a, const float *gt_ltrb, const int64_t *gt_labels,
                int num_gt, float *out_xywh, int64_t *out_labels, ssd_encoder_ws *ws);

#endif
