/* The 8732 default boxes of SSD300 (spec/ssd-reference.md section 3) and the level geometry
 * the heads share with them (section 2.3).
 *
 * Anchors are generated in float64 and stored in float32, anchor-type-major within a level
 * (index d*s*s + y*s + x), levels concatenated 0..5. The xywh form is clamped to [0,1]
 * component-wise (a reference quirk, spec 11.2 item 4); ltrb is derived from the CLAMPED xywh
 * in float32 and is not clamped. xywh is used by the box coder and the loss, ltrb for IoU. */
#ifndef SSD_BOX_ANCHORS_H
#define SSD_BOX_ANCHORS_H

#include <stdint.h>

#define SSD_NUM_ANCHORS 8732
#define SSD_NUM_CLASSES 81 /* index 0 = background */
#define SSD_NUM_LEVELS 6
#define SSD_IMAGE_SIZE 300

typedef struct ssd_level_geom {
    int size;        /* feature map side s: 38, 19, 10, 5, 3, 1 */
    int step;        /* 8, 16, 32, 64, 100, 300 */
    int per_loc;     /* anchors per location nd: 4, 6, 6, 6, 4, 4 */
    int offset;      /* first global anchor index: 0, 5776, 7942, 8542, 8692, 8728 */
    int count;       /* nd*s*s: 5776, 2166, 600, 150, 36, 4 */
    int channels;    /* channels of the feature map feeding the heads: 256, 512, 512, 256, 256, 256 */
} ssd_level_geom;

/* The six levels (static table). */
const ssd_level_geom *ssd_level(int level);

typedef struct ssd_anchors {
    float xywh[SSD_NUM_ANCHORS][4]; /* (cx, cy, w, h), clamped to [0,1] */
    float ltrb[SSD_NUM_ANCHORS][4]; /* (l, t, r, b) from the clamped xywh, unclamped */
} ssd_anchors;

void ssd_anchors_build(ssd_anchors *a);

#endif
