#include "eval/nms.h"

#include <string.h>

#include "box/box_coder.h"

int ssd_nms_greedy(const float (*boxes)[4], const int *order, int n, float iou_thresh,
                   unsigned char *removed, int *keep) {
    if (n <= 0) return 0;
    memset(removed, 0, (size_t)n);
    int nk = 0;
    for (int i = 0; i < n; i++) {
        if (removed[i]) continue;
        keep[nk++] = i;
        const float *bi = boxes[order[i]];
        for (int j = i + 1; j < n; j++) {
            if (removed[j]) continue;
            float iou = ssd_iou_ltrb(bi, boxes[order[j]]);
            if (!(iou < iou_thresh)) removed[j] = 1;
        }
    }
    return nk;
}
