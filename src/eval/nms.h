/* Greedy non-maximum suppression (spec/ssd-reference.md section 8, per-class step 3).
 *
 * Candidates come in priority order (best first). Repeatedly the first remaining candidate is
 * emitted and every remaining candidate j with NOT (IoU(kept, j) < iou_thresh) is removed:
 * IoU >= thresh removes (the reference keeps iff IoU < 0.5), and so does a NaN IoU (0/0 between
 * two zero-area boxes), since the reference's `iou < criteria` is false for NaN. IoU is
 * ssd_iou_ltrb (float32, section 4 formula, no "+1"). */
#ifndef SSD_EVAL_NMS_H
#define SSD_EVAL_NMS_H

/* boxes: ltrb boxes indexed by order[i] (i < n, order = priority order, best first).
 * removed: scratch of n bytes. keep: receives the POSITIONS i (into order) of the kept
 * candidates, ascending (= in emission order). Returns the number kept. O(n * kept). */
int ssd_nms_greedy(const float (*boxes)[4], const int *order, int n, float iou_thresh,
                   unsigned char *removed, int *keep);

#endif
