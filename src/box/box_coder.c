#include "box/box_coder.h"

#include <math.h>

static float pos(float v) { return v > 0.0f ? v : 0.0f; }

float ssd_iou_ltrb(const float a[4], const float b[4]) {
    float l = a[0] > b[0] ? a[0] : b[0], t = a[1] > b[1] ? a[1] : b[1];
    float r = a[2] < b[2] ? a[2] : b[2], btm = a[3] < b[3] ? a[3] : b[3];
    float inter = pos(r - l) * pos(btm - t);
    float area_a = (a[2] - a[0]) * (a[3] - a[1]);
    float area_b = (b[2] - b[0]) * (b[3] - b[1]);
    return inter / (area_a + area_b - inter);
}

void ssd_xywh_to_ltrb(const float x[4], float l[4]) {
    l[0] = x[0] - 0.5f * x[2];
    l[1] = x[1] - 0.5f * x[3];
    l[2] = x[0] + 0.5f * x[2];
    l[3] = x[1] + 0.5f * x[3];
}

void ssd_ltrb_to_xywh(const float l[4], float x[4]) {
    x[0] = 0.5f * (l[0] + l[2]);
    x[1] = 0.5f * (l[1] + l[3]);
    x[2] = l[2] - l[0];
    x[3] = l[3] - l[1];
}

void ssd_box_encode(const float g[4], const float d[4], float t[4]) {
    /* the reference multiplies by 1/scale (10 and 5, exact in float32) before dividing */
    t[0] = 10.0f * (g[0] - d[0]) / d[2];
    t[1] = 10.0f * (g[1] - d[1]) / d[3];
    t[2] = 5.0f * logf(g[2] / d[2]);
    t[3] = 5.0f * logf(g[3] / d[3]);
}

void ssd_box_decode(const float p[4], const float d[4], float ltrb[4]) {
    float cx = SSD_SCALE_XY * p[0] * d[2] + d[0];
    float cy = SSD_SCALE_XY * p[1] * d[3] + d[1];
    float w = expf(SSD_SCALE_WH * p[2]) * d[2];
    float h = expf(SSD_SCALE_WH * p[3]) * d[3];
    float xywh[4] = {cx, cy, w, h};
    ssd_xywh_to_ltrb(xywh, ltrb);
}
