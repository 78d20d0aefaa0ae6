/* SSD training and validation transforms (spec/ssd-reference.md 6.2-6.4).
 *
 * Pixel operations reproduce Pillow 5.2.0 (the reference's Pillow) bit for bit:
 *   - ssd_pil_resize_bilinear: Pillow's antialiased BILINEAR resample (separable, horizontal
 *     pass first, 22-bit fixed-point weights); identical in Pillow 9.4, so Debian's python3-pil
 *     is an exact oracle;
 *   - blend-based brightness / contrast / saturation in float32, as ImageEnhance does;
 *   - hue through Pillow's RGB<->HSV conversions and a uint8 wrap of trunc(h*255);
 *   - the grayscale conversion used by contrast and saturation is Pillow 5.2.0's
 *     (19595R + 38470G + 7471B) >> 16; with l_round = 1 it is Pillow >= 8's (+ 0x8000), which
 *     makes the python3-pil (9.4) oracle exact as well.
 * Geometry (crop, flip, box renormalisation, keep rule) follows the reference's SSDCropping
 * and RandomHorizontalFlip including its float32/float64 mix.
 *
 * Randomness: every draw comes from the caller's ssd_rng, in the reference's order:
 * crop (mode; per try U(w), U(h), [U(left), U(top)]), flip (one uniform), jitter
 * (U(b), U(c), U(s), U(h), then a Fisher-Yates shuffle of the 4 operations). The same stream
 * gives the same output bit for bit. */
#ifndef SSD_DATA_AUGMENT_H
#define SSD_DATA_AUGMENT_H

#include <stdint.h>

#include "core/rng.h"
#include "data/image.h"

#define SSD_AUG_SIZE 300
#define SSD_CROP_MODES 7

typedef struct ssd_augment_cfg {
    int crop_iterations;  /* tries per drawn crop mode (reference default 1; MLPerf allows 50) */
    float brightness, contrast, saturation, hue; /* ColorJitter(0.125, 0.5, 0.5, 0.05) */
    int l_round;          /* 0: Pillow 5.2.0 grayscale (reference); 1: Pillow >= 8 rounding */
} ssd_augment_cfg;

void ssd_augment_cfg_default(ssd_augment_cfg *cfg);

/* What the random draws chose for one sample (for tests and debugging). */
typedef struct ssd_aug_record {
    int crop_mode;      /* 0 = keep image, 1..5 = min IoU 0.1/0.3/0.5/0.7/0.9, 6 = no constraint */
    int mode_draws;     /* modes drawn until one succeeded (>= 1) */
    double crop[4];     /* left, top, right, bottom as fractions (0,0,1,1 when kept) */
    int crop_px[4];     /* L, T, R, B pixel box actually cut */
    int flipped;
    float factors[4];   /* brightness, contrast, saturation, hue */
    int order[4];       /* application order: a permutation of 0=b, 1=c, 2=s, 3=h */
} ssd_aug_record;

/* Scratch for one thread (temporary images, resize coefficients). */
typedef struct ssd_augment_ws ssd_augment_ws;
ssd_augment_ws *ssd_augment_ws_create(void);
void ssd_augment_ws_destroy(ssd_augment_ws *ws); /* NULL is fine */

/* ---- Pillow-exact pixel operations ---- */
/* in (any size) -> out (ow x oh); tmp is scratch for the intermediate pass. in != out. */
void ssd_pil_resize_bilinear(const ssd_image *in, ssd_image *out, int ow, int oh, ssd_image *tmp);
/* img.crop((l, t, r, b)) with 0 <= l < r <= w, 0 <= t < b <= h. in != out. */
void ssd_pil_crop(const ssd_image *in, int l, int t, int r, int b, ssd_image *out);
void ssd_pil_flip_lr(ssd_image *im);                 /* in place */
void ssd_pil_brightness(ssd_image *im, float f);     /* ImageEnhance.Brightness(f) */
void ssd_pil_contrast(ssd_image *im, float f, int l_round);
void ssd_pil_saturation(ssd_image *im, float f, int l_round);
void ssd_pil_hue(ssd_image *im, float h);            /* torchvision adjust_hue, h in [-0.5, 0.5] */
/* ToTensor + Normalize(ImageNet mean/std), float32: chw[c][y][x] = (px/255 - mean_c) / std_c. */
void ssd_image_to_chw_normalized(const ssd_image *im, float *chw);

/* ---- box geometry ---- */
/* SSD random crop on the boxes (ltrb normalised, n in/out, labels follow them);
 * fills rec->crop/crop_px/crop_mode/mode_draws. Image size w x h. */
void ssd_random_crop_boxes(ssd_rng *rng, int iterations, int w, int h, float *boxes,
                           int32_t *labels, int *n, ssd_aug_record *rec);

/* ---- whole transforms ---- */
/* decoded image + its boxes (ltrb normalised to it; n >= 0 (with 0 only "keep the image"
 * can succeed), arrays may shrink in place) ->
 * out_chw [3][300][300] normalised, boxes renormalised to the output; *out_h, *out_w = the
 * size after the crop (the reference's (H, W) for the sample). rec may be NULL. */
void ssd_augment_train(const ssd_augment_cfg *cfg, ssd_rng *rng, ssd_augment_ws *ws,
                       const ssd_image *decoded, float *boxes, int32_t *labels, int *n,
                       float *out_chw, int *out_h, int *out_w, ssd_aug_record *rec);
/* Validation: resize to 300x300 bilinear, ToTensor, Normalize. */
void ssd_augment_val(ssd_augment_ws *ws, const ssd_image *decoded, float *out_chw);

#endif
