/* The SSD training loss, forward and backward (spec/ssd-reference.md section 5; quirks 11.2
 * items 3, 6 and 7). Host code, float32 in and out, float64 inside.
 *
 * Layouts (A = SSD_NUM_ANCHORS = 8732, anchor order of anchors.h):
 *   ploc   (n,4,A)   predicted offsets, coordinate-major (the heads' layout, spec 2.3)
 *   pconf  (n,81,A)  raw class logits, class 0 = background
 *   gbox   (n,A,4)   encoder output: ABSOLUTE xywh per anchor (spec 4), as the loader emits it
 *   glabel (n,A)     labels 0..80 (0 = background); anything else is a bug (SSD_ASSERT)
 *
 * Rules, per image (P = number of anchors with glabel > 0):
 *  1. Targets t = ssd_box_encode(gbox[a], anchor xywh[a]) computed in FLOAT32 in the reference's
 *     operation order (10 (gx-dx)/dw, 10 (gy-dy)/dh, 5 ln(gw/dw), 5 ln(gh/dh)), then widened to
 *     double. Only positives' targets are used (the reference multiplies the negatives' terms by
 *     0; their targets are always finite there, since negatives carry their anchor's own box).
 *  2. L_loc = sum over positives and the 4 coordinates of SmoothL1(z), z = ploc - t, beta = 1:
 *     0.5 z^2 if |z| < 1 else |z| - 0.5. A degenerate positive (gw or gh = 0, spec 11.2 item 3)
 *     has t = -inf, z = +inf: its term is +inf and so is the loss (returned, never an abort).
 *  3. ce[a] = logsumexp_k pconf[k,a] - pconf[glabel[a],a] (max-subtracted, natural log).
 *  4. Hard negatives: ce_neg = ce with positives set to 0; the K = min(3P, A) anchors ranked
 *     first by ce_neg DESCENDING, ties by ASCENDING anchor index (the reference's GPU sort
 *     leaves ties unspecified; this is a stable sort's order), form neg_mask.
 *  5. L_conf = sum_a ce[a] * (pos[a] + neg_mask[a]). A positive that is also among the top K
 *     (only when K exceeds the negatives with ce_neg > 0, e.g. 3P > A - P) is counted TWICE
 *     (spec 11.2 item 6).
 *  6. loss_n = (L_loc + L_conf) / P if P > 0, else 0. Batch loss = (1/n) sum_n loss_n: an image
 *     without positives counts in n (spec 11.2 item 7).
 *
 * Gradients of the BATCH loss (written over dloc / dconf, not accumulated), scale s = 1/(P n):
 *   dloc[c,a]  = s * SmoothL1'(z)  for positives: z if |z| < 1 else sign(z) (|z| = inf takes the
 *                linear branch, so the gradient stays +-s and finite); 0 for negatives.
 *   dconf[k,a] = s * m[a] * (softmax_k(pconf[:,a]) - [k == glabel[a]]), m = pos + neg_mask
 *                (0, 1 or 2); 0 where m = 0.
 *   Images with P = 0: loss 0, gradients 0.
 * No gradient flows into the targets (they are data).
 *
 * Precision: everything after rule 1 is double (exp/log from libm); the outputs are rounded to
 * float once. The reference computes in float32 on the GPU, so it differs from us by its own
 * float32 rounding (relative ~1e-6 on the loss). The selection in rule 4 uses double ce values:
 * only exact float32 ties in the reference could order differently (tie order is unspecified
 * there, spec 11.3).
 *
 * Threads: OpenMP over images (each image has its own workspace slot); the batch sum is taken
 * in image order, so results do not depend on the thread count. No global state. */
#ifndef SSD_LOSS_SSD_LOSS_H
#define SSD_LOSS_SSD_LOSS_H

#include <stdint.h>

#include "box/anchors.h"

#define SSD_LOSS_NEG_RATIO 3

/* Reusable scratch: grows to the largest batch seen, then allocates nothing. Not shareable
 * between concurrent calls. */
typedef struct ssd_loss_ws ssd_loss_ws;

ssd_loss_ws *ssd_loss_ws_create(void);
void ssd_loss_ws_destroy(ssd_loss_ws *ws); /* NULL is fine */

/* Per-image breakdown of the last call (image i < the last n), in double. */
typedef struct ssd_loss_image_stats {
    double loc;     /* L_loc (may be +inf) */
    double conf;    /* L_conf, double counting included */
    double loss;    /* (loc + conf) / P, or 0 when P = 0 */
    int num_pos;    /* P */
    int num_neg;    /* K = min(3P, A): size of neg_mask */
    int num_double; /* positives inside neg_mask (counted twice in L_conf) */
} ssd_loss_image_stats;

const ssd_loss_image_stats *ssd_loss_ws_image(const ssd_loss_ws *ws, int i);

/* Loss of a batch of n >= 1 images (layouts above) and, when dloc / dconf are non-NULL, the
 * gradient of the batch loss with respect to ploc / pconf, written over them. per_image (n)
 * receives loss_n when non-NULL. Returns the batch loss (may be +inf, rule 2). ws may be NULL
 * (a temporary workspace is made and freed: convenient, but allocates). */
float ssd_loss_forward_backward(const ssd_anchors *a, int n, const float *ploc,
                                const float *pconf, const float *gbox, const int64_t *glabel,
                                float *dloc, float *dconf, float *per_image, ssd_loss_ws *ws);

#endif
