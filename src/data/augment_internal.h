/* Test and benchmark hooks of data/augment.c. Not part of the module's contract (augment.h):
 * the loader never calls these.
 *
 * The draw tape: when a tape is given, every random draw of the crop / train transform is
 * appended to it, in the order it is made, as the value the reference's Python code would have
 * received from its `random` module:
 *   - a crop mode choice: the index 0..6 (random.choice over the 7 options);
 *   - a U(a, b): the unit uniform u in [0, 1) (the value used is a + (b - a) * u, which is
 *     Python's random.uniform formula);
 *   - the flip test: the unit uniform (flip iff u < 0.5);
 *   - each step of the Fisher-Yates shuffle: the index j drawn in [0, i] (random.shuffle order:
 *     i = 3, 2, 1).
 * A Python re-implementation of the reference that consumes the tape in its own order then
 * reproduces the C result exactly, and a draw made in the wrong order shows up as a mismatch. */
#ifndef SSD_DATA_AUGMENT_INTERNAL_H
#define SSD_DATA_AUGMENT_INTERNAL_H

#include "data/augment.h"

typedef struct ssd_aug_tape {
    double *v;
    int n, cap;
} ssd_aug_tape;

void ssd_aug_tape_free(ssd_aug_tape *t);

/* ssd_random_crop_boxes / ssd_augment_train that also record their draws (tape may be NULL). */
void ssd_random_crop_boxes_tape(ssd_rng *rng, ssd_aug_tape *tape, int iterations, int w, int h,
                                float *boxes, int32_t *labels, int *n, ssd_aug_record *rec);
void ssd_augment_train_tape(const ssd_augment_cfg *cfg, ssd_rng *rng, ssd_aug_tape *tape,
                            ssd_augment_ws *ws, const ssd_image *decoded, float *boxes,
                            int32_t *labels, int *n, float *out_chw, int *out_h, int *out_w,
                            ssd_aug_record *rec);

/* Whether this CPU runs the AVX2 resize kernels (x86-64 with AVX2). */
int ssd_augment_simd_available(void);
/* Use (1) or bypass (0) the AVX2 kernels in this workspace; returns the previous setting.
 * Both paths give identical bytes; tests run both. */
int ssd_augment_ws_set_simd(ssd_augment_ws *ws, int on);
/* The colour operations with the AVX2 kernels (simd = 1, if the CPU has them) or the portable
 * code (0); both give the same bytes. */
void ssd_pil_brightness_simd(ssd_image *im, float f, int simd);
void ssd_pil_contrast_simd(ssd_image *im, float f, int l_round, int simd);
void ssd_pil_saturation_simd(ssd_image *im, float f, int l_round, int simd);
void ssd_pil_hue_simd(ssd_image *im, float h, int simd);
/* ssd_pil_resize_bilinear through the workspace: its coefficient cache, its scratch and its
 * SIMD setting (the path ssd_augment_train / _val take). */
void ssd_pil_resize_bilinear_ws(ssd_augment_ws *ws, const ssd_image *in, ssd_image *out, int ow,
                                int oh);

#endif
