/* SSD training and validation transforms (spec/ssd-reference.md 6.2-6.4): the reference's
 * SSDCropping, RandomHorizontalFlip, Resize((300, 300)), ColorJitter, ToTensor and Normalize,
 * reproduced bit for bit (see augment.h for the contract and the draw order). This file holds
 * the random draws, the crop on the boxes and the two transforms; the pixel operations are in
 * augment_resize.c and augment_color.c.
 *
 * Geometry uses the reference's number types: the crop fractions are doubles (Python floats);
 * the boxes are float32 tensors, and every tensor-scalar operation of torch (IoU, the centre
 * test, the clamp, the renormalisation) casts the Python scalar to float32 and computes in
 * float32 (checked against torch 1.13: comparisons, subtraction and true division by a scalar
 * all round like float32 C arithmetic). Each rounding step is its own statement, so no
 * multiply-add can be fused (GCC in ISO C mode does not contract; clang is told by the pragma).
 *
 * The training transform never materialises its crop or flip: the resize reads the crop window
 * of the decoded image in place, mirrored when the sample is flipped (augment_resize.c). The
 * workspace's buffers only grow, so the steady state allocates nothing. */
#include "data/augment.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "data/augment_impl.h"
#include "data/augment_internal.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* ====================================================================================== */
/* Draws                                                                                   */
/* ====================================================================================== */

typedef struct draws {
    ssd_rng *rng;
    ssd_aug_tape *tape;
} draws;

static void tape_push(ssd_aug_tape *t, double v) {
    if (!t) return;
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->v = ssd_xrealloc(t->v, (size_t)t->cap * sizeof *t->v);
    }
    t->v[t->n++] = v;
}

void ssd_aug_tape_free(ssd_aug_tape *t) {
    free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}

/* U(lo, hi) as Python's random.uniform computes it: lo + (hi - lo) * u. */
static double draw_uniform(draws *d, double lo, double hi) {
    double u = ssd_rng_uniform_f64(d->rng);
    tape_push(d->tape, u);
    double span = hi - lo;
    double scaled = span * u;
    return lo + scaled;
}

static double draw_unit(draws *d) {
    double u = ssd_rng_uniform_f64(d->rng);
    tape_push(d->tape, u);
    return u;
}

static int draw_below(draws *d, int n) {
    int v = (int)ssd_rng_below(d->rng, (uint32_t)n);
    tape_push(d->tape, (double)v);
    return v;
}

/* ====================================================================================== */
/* Workspace                                                                               */
/* ====================================================================================== */

ssd_augment_ws *ssd_augment_ws_create(void) {
    ssd_augment_ws *ws = ssd_xcalloc(1, sizeof *ws);
    ws->rs = ssd_rs_state_create();
    ws->simd = ssd_augment_simd_available();
    ssd_image_reserve(&ws->out, SSD_AUG_SIZE, SSD_AUG_SIZE);
    return ws;
}

void ssd_augment_ws_destroy(ssd_augment_ws *ws) {
    if (!ws) return;
    ssd_rs_state_destroy(ws->rs);
    ssd_image_free(&ws->tmp);
    ssd_image_free(&ws->out);
    free(ws);
}

int ssd_augment_ws_set_simd(ssd_augment_ws *ws, int on) {
    int prev = ws->simd;
    ws->simd = on && ssd_augment_simd_available();
    return prev;
}

void ssd_pil_resize_bilinear_ws(ssd_augment_ws *ws, const ssd_image *in, ssd_image *out, int ow,
                                int oh) {
    SSD_ASSERT(in != out, "resize in place");
    ssd_image_reserve(out, ow, oh);
    ssd_rs_resize(ws->rs, ws->simd, ssd_rs_whole(in), 0, out->px, ow, oh, &ws->tmp);
}

/* ====================================================================================== */
/* SSD random crop on the boxes (reference SSDCropping)                                    */
/* ====================================================================================== */

/* torch.max / torch.min propagate NaN. */
static inline float maxf_nan(float a, float b) { return (a != a || a > b) ? a : b; }
static inline float minf_nan(float a, float b) { return (a != a || a < b) ? a : b; }

static void crop_boxes(draws *d, int iterations, int W, int H, float *boxes, int32_t *labels,
                       int *n, ssd_aug_record *rec) {
    /* Options in the reference's order: None, min IoU 0.1 .. 0.9, no constraint. */
    static const double min_iou[SSD_CROP_MODES] = {0.0, 0.1, 0.3, 0.5, 0.7, 0.9, -INFINITY};
    int nb = *n;
    rec->mode_draws = 0;
    for (;;) {
        int mode = draw_below(d, SSD_CROP_MODES);
        rec->mode_draws++;
        if (mode == 0) {
            rec->crop_mode = 0;
            rec->crop[0] = rec->crop[1] = 0.0;
            rec->crop[2] = rec->crop[3] = 1.0;
            rec->crop_px[0] = rec->crop_px[1] = 0;
            rec->crop_px[2] = W;
            rec->crop_px[3] = H;
            return;
        }
        /* `ious > min_iou` compares float32 with the threshold cast to float32. */
        float thr = (float)min_iou[mode];
        for (int it = 0; it < iterations; it++) {
            double w = draw_uniform(d, 0.3, 1.0);
            double h = draw_uniform(d, 0.3, 1.0);
            if (w / h < 0.5 || w / h > 2) continue; /* ratio of the fractions */
            double left = draw_uniform(d, 0.0, 1.0 - w);
            double top = draw_uniform(d, 0.0, 1.0 - h);
            double right = left + w, bottom = top + h;
            /* torch.tensor([[left, top, right, bottom]]) is float32. */
            float cl = (float)left, ct = (float)top, cr = (float)right, cb = (float)bottom;
            float cw = cr - cl, ch = cb - ct;
            float area2 = cw * ch;
            int ok = 1;
            for (int i = 0; i < nb && ok; i++) {
                const float *bx = boxes + 4 * i;
                float dx = minf_nan(bx[2], cr) - maxf_nan(bx[0], cl);
                float dy = minf_nan(bx[3], cb) - maxf_nan(bx[1], ct);
                if (dx < 0) dx = 0;
                if (dy < 0) dy = 0;
                float inter = dx * dy;
                float bw = bx[2] - bx[0], bh = bx[3] - bx[1];
                float area1 = bw * bh;
                float uni = area1 + area2;
                uni = uni - inter;
                float iou = inter / uni;
                /* every box must pass (min_iou < iou < +inf) */
                if (!(iou > thr && iou < INFINITY)) ok = 0;
            }
            if (!ok) continue;
            int any = 0;
            for (int i = 0; i < nb && !any; i++) {
                const float *bx = boxes + 4 * i;
                float xs = bx[0] + bx[2], ys = bx[1] + bx[3];
                float xc = 0.5f * xs, yc = 0.5f * ys;
                any = xc > cl && xc < cr && yc > ct && yc < cb;
            }
            if (!any) continue;
            /* Clip, keep the boxes whose centre is inside, renormalise by the drawn w, h. */
            float wf = (float)w, hf = (float)h;
            int m = 0;
            for (int i = 0; i < nb; i++) {
                float b[4];
                memcpy(b, boxes + 4 * i, sizeof b);
                float xs = b[0] + b[2], ys = b[1] + b[3];
                float xc = 0.5f * xs, yc = 0.5f * ys;
                if (!(xc > cl && xc < cr && yc > ct && yc < cb)) continue;
                if (b[0] < cl) b[0] = cl;
                if (b[1] < ct) b[1] = ct;
                if (b[2] > cr) b[2] = cr;
                if (b[3] > cb) b[3] = cb;
                float *o = boxes + 4 * m;
                o[0] = (b[0] - cl) / wf;
                o[1] = (b[1] - ct) / hf;
                o[2] = (b[2] - cl) / wf;
                o[3] = (b[3] - ct) / hf;
                labels[m] = labels[i];
                m++;
            }
            *n = m;
            /* Pixel box: int(left * W) etc. (truncation of doubles). */
            int L = (int)(left * W), T = (int)(top * H), R = (int)(right * W),
                B = (int)(bottom * H);
            /* Not in the reference (where Pillow would fail on an empty image): images under
             * 4 px on a side can give an empty window; keep at least one pixel. */
            if (R > W) R = W;
            if (B > H) B = H;
            if (R <= L) {
                if (L >= W) L = W - 1;
                R = L + 1;
            }
            if (B <= T) {
                if (T >= H) T = H - 1;
                B = T + 1;
            }
            rec->crop_mode = mode;
            rec->crop[0] = left;
            rec->crop[1] = top;
            rec->crop[2] = right;
            rec->crop[3] = bottom;
            rec->crop_px[0] = L;
            rec->crop_px[1] = T;
            rec->crop_px[2] = R;
            rec->crop_px[3] = B;
            return;
        }
    }
}

void ssd_random_crop_boxes_tape(ssd_rng *rng, ssd_aug_tape *tape, int iterations, int w, int h,
                                float *boxes, int32_t *labels, int *n, ssd_aug_record *rec) {
    SSD_ASSERT(iterations >= 1 && w > 0 && h > 0 && *n >= 0, "crop: %d tries, %dx%d, %d boxes",
               iterations, w, h, *n);
    ssd_aug_record local;
    draws d = {rng, tape};
    crop_boxes(&d, iterations, w, h, boxes, labels, n, rec ? rec : &local);
}

void ssd_random_crop_boxes(ssd_rng *rng, int iterations, int w, int h, float *boxes,
                           int32_t *labels, int *n, ssd_aug_record *rec) {
    ssd_random_crop_boxes_tape(rng, NULL, iterations, w, h, boxes, labels, n, rec);
}

/* ====================================================================================== */
/* Whole transforms                                                                        */
/* ====================================================================================== */

void ssd_augment_cfg_default(ssd_augment_cfg *cfg) {
    cfg->crop_iterations = 1;
    cfg->brightness = 0.125f;
    cfg->contrast = 0.5f;
    cfg->saturation = 0.5f;
    cfg->hue = 0.05f;
    cfg->l_round = 0;
}

void ssd_augment_train_tape(const ssd_augment_cfg *cfg, ssd_rng *rng, ssd_aug_tape *tape,
                            ssd_augment_ws *ws, const ssd_image *decoded, float *boxes,
                            int32_t *labels, int *n, float *out_chw, int *out_h, int *out_w,
                            ssd_aug_record *rec) {
    ssd_aug_record local;
    if (!rec) rec = &local;
    draws d = {rng, tape};
    int W = decoded->w, H = decoded->h;
    SSD_ASSERT(W > 0 && H > 0 && *n >= 0 && cfg->crop_iterations >= 1,
               "train transform of a %dx%d image with %d boxes", W, H, *n);

    /* 1. crop (boxes only; the pixels are cut by the resize below) */
    crop_boxes(&d, cfg->crop_iterations, W, H, boxes, labels, n, rec);

    /* 2. horizontal flip, p = 0.5: l' = 1 - r, r' = 1 - l (float32) */
    rec->flipped = draw_unit(&d) < 0.5;
    if (rec->flipped)
        for (int i = 0; i < *n; i++) {
            float l = boxes[4 * i], r = boxes[4 * i + 2];
            boxes[4 * i] = 1.0f - r;
            boxes[4 * i + 2] = 1.0f - l;
        }

    /* 4. ColorJitter draws: factors, then the order (random.shuffle of the 4 operations) */
    double bl = 1.0 - (double)cfg->brightness, cl = 1.0 - (double)cfg->contrast;
    double sl = 1.0 - (double)cfg->saturation;
    rec->factors[0] = (float)draw_uniform(&d, bl > 0 ? bl : 0, 1.0 + (double)cfg->brightness);
    rec->factors[1] = (float)draw_uniform(&d, cl > 0 ? cl : 0, 1.0 + (double)cfg->contrast);
    rec->factors[2] = (float)draw_uniform(&d, sl > 0 ? sl : 0, 1.0 + (double)cfg->saturation);
    rec->factors[3] = (float)draw_uniform(&d, -(double)cfg->hue, (double)cfg->hue);
    for (int i = 0; i < 4; i++) rec->order[i] = i;
    for (int i = 3; i >= 1; i--) {
        int j = draw_below(&d, i + 1);
        int t = rec->order[i];
        rec->order[i] = rec->order[j];
        rec->order[j] = t;
    }

    /* Pixels: 1-3 = crop, flip, resize to 300x300 in one go. */
    const int *px = rec->crop_px;
    ssd_rs_view v = {decoded->px + ((size_t)px[1] * W + (size_t)px[0]) * 3, (ptrdiff_t)W * 3,
                 px[2] - px[0], px[3] - px[1], decoded->px + (size_t)W * H * 3};
    ssd_image *im = &ws->out;
    ssd_image_reserve(im, SSD_AUG_SIZE, SSD_AUG_SIZE);
    ssd_rs_resize(ws->rs, ws->simd, v, rec->flipped, im->px, SSD_AUG_SIZE, SSD_AUG_SIZE, &ws->tmp);

    for (int k = 0; k < 4; k++) {
        switch (rec->order[k]) {
        case 0: ssd_pil_brightness_simd(im, rec->factors[0], ws->simd); break;
        case 1: ssd_pil_contrast_simd(im, rec->factors[1], cfg->l_round, ws->simd); break;
        case 2: ssd_pil_saturation_simd(im, rec->factors[2], cfg->l_round, ws->simd); break;
        default:
            /* ColorJitter(hue=0) has no hue operation (a hue of 0 would still round-trip HSV) */
            if (cfg->hue != 0.0f) ssd_pil_hue_simd(im, rec->factors[3], ws->simd);
            break;
        }
    }
    /* 5-6. ToTensor + Normalize */
    ssd_image_to_chw_normalized(im, out_chw);
    *out_h = px[3] - px[1];
    *out_w = px[2] - px[0];
}

void ssd_augment_train(const ssd_augment_cfg *cfg, ssd_rng *rng, ssd_augment_ws *ws,
                       const ssd_image *decoded, float *boxes, int32_t *labels, int *n,
                       float *out_chw, int *out_h, int *out_w, ssd_aug_record *rec) {
    ssd_augment_train_tape(cfg, rng, NULL, ws, decoded, boxes, labels, n, out_chw, out_h, out_w,
                           rec);
}

void ssd_augment_val(ssd_augment_ws *ws, const ssd_image *decoded, float *out_chw) {
    ssd_image *im = &ws->out;
    ssd_image_reserve(im, SSD_AUG_SIZE, SSD_AUG_SIZE);
    ssd_rs_resize(ws->rs, ws->simd, ssd_rs_whole(decoded), 0, im->px, SSD_AUG_SIZE, SSD_AUG_SIZE,
                  &ws->tmp);
    ssd_image_to_chw_normalized(im, out_chw);
}
