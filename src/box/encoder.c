#include "box/encoder.h"

#include <stdlib.h>

#include "box/box_coder.h"
#include "core/log.h"
#include "core/mem.h"

struct ssd_encoder_ws {
    int capacity;                          /* GTs best_anchor can hold */
    int *best_anchor;                      /* (capacity) per GT: best anchor index */
    int best_gt[SSD_NUM_ANCHORS];          /* per anchor: best GT index */
    float best_gt_iou[SSD_NUM_ANCHORS];    /* per anchor: its IoU (2.0 when forced) */
};

ssd_encoder_ws *ssd_encoder_ws_create(int capacity) {
    SSD_ASSERT(capacity >= 0, "capacity %d", capacity);
    ssd_encoder_ws *ws = ssd_xcalloc(1, sizeof *ws);
    ws->capacity = capacity > 0 ? capacity : 1;
    ws->best_anchor = ssd_xmalloc((size_t)ws->capacity * sizeof *ws->best_anchor);
    return ws;
}

void ssd_encoder_ws_destroy(ssd_encoder_ws *ws) {
    if (!ws) return;
    free(ws->best_anchor);
    free(ws);
}

/* Grows the per-GT buffer to at least n (doubling, so growth happens O(log n) times). */
static void ws_reserve(ssd_encoder_ws *ws, int n) {
    if (n <= ws->capacity) return;
    int cap = ws->capacity;
    while (cap < n) cap = cap > (1 << 29) ? n : 2 * cap;
    ws->best_anchor = ssd_xrealloc(ws->best_anchor, (size_t)cap * sizeof *ws->best_anchor);
    ws->capacity = cap;
}

/* One pass over M = IoU[g, a]: per-anchor best GT (strict '>' while g increases keeps the
 * lowest GT on ties) and per-GT best anchor (strict '>' while a increases keeps the lowest
 * anchor; IoU 0 everywhere leaves anchor 0). */
static void match_ious(const ssd_anchors *a, const float *gt, int num_gt, ssd_encoder_ws *ws) {
    for (int i = 0; i < SSD_NUM_ANCHORS; i++) {
        ws->best_gt_iou[i] = -1.0f; /* below any IoU, so GT 0 always takes it first */
        ws->best_gt[i] = 0;
    }
    for (int g = 0; g < num_gt; g++) {
        const float *box = gt + 4 * (size_t)g;
        int best = 0;
        float best_iou = -1.0f;
        for (int i = 0; i < SSD_NUM_ANCHORS; i++) {
            float iou = ssd_iou_ltrb(box, a->ltrb[i]);
            if (iou > best_iou) best_iou = iou, best = i;
            if (iou > ws->best_gt_iou[i]) ws->best_gt_iou[i] = iou, ws->best_gt[i] = g;
        }
        ws->best_anchor[g] = best;
    }
}

/* Forced matches in increasing GT order: the last GT wins an anchor several GTs share. */
static void force_best_anchors(int num_gt, ssd_encoder_ws *ws) {
    for (int g = 0; g < num_gt; g++) {
        int i = ws->best_anchor[g];
        ws->best_gt_iou[i] = 2.0f;
        ws->best_gt[i] = g;
    }
}

static void check_boxes(const float *gt, int num_gt) {
    for (int g = 0; g < num_gt; g++) {
        const float *b = gt + 4 * (size_t)g;
        SSD_ASSERT(b[0] <= b[2] && b[1] <= b[3], "GT %d ltrb (%g,%g,%g,%g) is inverted or NaN",
                   g, b[0], b[1], b[2], b[3]);
    }
}

void ssd_encode(const ssd_anchors *a, const float *gt_ltrb, const int64_t *gt_labels,
                int num_gt, float *out_xywh, int64_t *out_labels, ssd_encoder_ws *ws) {
    SSD_ASSERT(num_gt >= 0, "num_gt %d", num_gt);
    SSD_ASSERT(num_gt == 0 || (gt_ltrb && gt_labels), "NULL ground truth with num_gt %d", num_gt);
    check_boxes(gt_ltrb, num_gt);
    ws_reserve(ws, num_gt);
    match_ious(a, gt_ltrb, num_gt, ws);
    force_best_anchors(num_gt, ws);
    for (int i = 0; i < SSD_NUM_ANCHORS; i++) {
        int pos = ws->best_gt_iou[i] > SSD_MATCH_THRESHOLD; /* never true when num_gt == 0 */
        const float *ltrb = pos ? gt_ltrb + 4 * (size_t)ws->best_gt[i] : a->ltrb[i];
        out_labels[i] = pos ? gt_labels[ws->best_gt[i]] : 0;
        ssd_ltrb_to_xywh(ltrb, out_xywh + 4 * (size_t)i);
    }
}
