/* Private to src/data/augment*.c: the pieces the three files of the augmentation module share.
 *   augment.c         draws, SSD crop on the boxes, the workspace, the train / val transforms
 *   augment_resize.c  Pillow BILINEAR resize (weights cache, passes), crop, flip
 *   augment_color.c   brightness / contrast / saturation / hue, ToTensor + Normalize */
#ifndef SSD_DATA_AUGMENT_IMPL_H
#define SSD_DATA_AUGMENT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "data/augment.h"

/* AVX2 kernels, chosen at run time; -DSSD_AUG_NO_SIMD builds the portable code only. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(SSD_AUG_NO_SIMD)
#define SSD_AUG_AVX2 1
#include <immintrin.h>
#endif

/* Resize weight cache and scratch (augment_resize.c). */
typedef struct ssd_rs_state ssd_rs_state;
ssd_rs_state *ssd_rs_state_create(void);
void ssd_rs_state_destroy(ssd_rs_state *st); /* NULL is fine */

/* A window of an RGB image: the resize source. */
typedef struct ssd_rs_view {
    const uint8_t *px;  /* top-left pixel of the window */
    ptrdiff_t stride;   /* bytes per source row */
    int w, h;
    const uint8_t *end; /* end of the source buffer (bound for the SIMD loads) */
} ssd_rs_view;

ssd_rs_view ssd_rs_whole(const ssd_image *im);
/* out (ow x oh, packed RGB) = Pillow resize(mirror ? flip(src) : src, BILINEAR); tmp holds the
 * horizontal pass; simd: use the AVX2 kernels if the CPU has them. */
void ssd_rs_resize(ssd_rs_state *st, int simd, ssd_rs_view src, int mirror, uint8_t *out, int ow,
                   int oh, ssd_image *tmp);

struct ssd_augment_ws {
    ssd_rs_state *rs;
    ssd_image tmp; /* horizontal pass output */
    ssd_image out; /* the 300x300 sample before ToTensor */
    int simd;
};

#endif
