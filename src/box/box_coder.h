/* IoU and the box coder (spec/ssd-reference.md sections 4, 5 and 8).
 *
 * All arithmetic is float32 in the reference's operation order, so results match a float32
 * PyTorch evaluation of the same formulas up to the libm exp/log rounding (<= 1 ulp). */
#ifndef SSD_BOX_BOX_CODER_H
#define SSD_BOX_BOX_CODER_H

#include "box/anchors.h"

#define SSD_SCALE_XY 0.1f
#define SSD_SCALE_WH 0.2f

/* IoU of two ltrb boxes: intersection sides clamped at 0 separately, no "+1";
 * inter / (area_a + area_b - inter). 0/0 (two empty boxes) gives NaN as in the reference. */
float ssd_iou_ltrb(const float a[4], const float b[4]);

/* xywh <-> ltrb, float32: l = cx - 0.5w ...; cx = (l + r)/2, w = r - l. */
void ssd_xywh_to_ltrb(const float xywh[4], float ltrb[4]);
void ssd_ltrb_to_xywh(const float ltrb[4], float xywh[4]);

/* Regression target of box g (xywh) against anchor d (xywh):
 * t = (10 (gx-dx)/dw, 10 (gy-dy)/dh, 5 ln(gw/dw), 5 ln(gh/dh)). ln(0) = -inf (degenerate GT)
 * is kept: the loss handles it (spec 5, "Inf loss quirk"). */
void ssd_box_encode(const float g[4], const float d[4], float t[4]);

/* Inverse: prediction p = (px,py,pw,ph) against anchor d (xywh) -> ltrb:
 * cx = 0.1 px dw + dx, cy = 0.1 py dh + dy, w = exp(0.2 pw) dw, h = exp(0.2 ph) dh. Not clipped. */
void ssd_box_decode(const float p[4], const float d[4], float ltrb[4]);

#endif
