/* An 8-bit interleaved RGB image on the host: the unit every data-pipeline stage passes on
 * (decode -> crop -> flip -> resize -> colour jitter -> tensor). Pixel (x, y), channel c is
 * px[(y * w + x) * 3 + c]; rows are packed (stride = 3 * w).
 *
 * An image owns its buffer and grows it on demand (ssd_image_reserve), so a worker thread can
 * reuse one image per stage for a whole epoch without allocating in the steady state. */
#ifndef SSD_DATA_IMAGE_H
#define SSD_DATA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ssd_image {
    int w, h;
    uint8_t *px;   /* w * h * 3 bytes, RGB */
    size_t cap;    /* bytes allocated at px */
} ssd_image;

/* Sets w, h and makes room for w*h*3 bytes (contents undefined). Aborts on out-of-memory. */
void ssd_image_reserve(ssd_image *im, int w, int h);
/* Deep copy of src into dst (dst's buffer is reused). */
void ssd_image_copy(ssd_image *dst, const ssd_image *src);
void ssd_image_free(ssd_image *im); /* leaves an empty image; safe twice */

#endif
