#include "data/image.h"

#include <string.h>

#include "core/log.h"
#include "core/mem.h"

void ssd_image_reserve(ssd_image *im, int w, int h) {
    SSD_ASSERT(w > 0 && h > 0, "image size %dx%d", w, h);
    size_t need = (size_t)w * (size_t)h * 3;
    if (need > im->cap) {
        ssd_aligned_free(im->px);
        im->px = ssd_aligned_alloc(need);
        im->cap = need;
    }
    im->w = w;
    im->h = h;
}

void ssd_image_copy(ssd_image *dst, const ssd_image *src) {
    ssd_image_reserve(dst, src->w, src->h);
    memcpy(dst->px, src->px, (size_t)src->w * src->h * 3);
}

void ssd_image_free(ssd_image *im) {
    ssd_aligned_free(im->px);
    im->px = NULL;
    im->cap = 0;
    im->w = im->h = 0;
}
