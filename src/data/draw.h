/* Drawing on 8-bit RGB images (data/image.h): rectangles, filled rectangles, text in a small
 * built-in bitmap font, and the labelled detection box `ssd detect` draws.
 *
 * Coordinates are integer pixel positions, inclusive at both ends ((l, t) .. (r, b)). Every
 * function clips to the image, so any coordinates are safe: far outside, inverted (l > r or
 * t > b: the corners are swapped), or near INT_MIN / INT_MAX. Nothing here allocates.
 *
 * The font: printable ASCII 32..126, each glyph 5 columns x 8 rows (capitals and digits in rows
 * 0..6, descenders in row 7), drawn in a cell of SSD_FONT_ADVANCE_X x SSD_FONT_ADVANCE_Y pixels
 * (one blank column on the right, one blank row below), every font pixel an s x s square at
 * scale s. */
#ifndef SSD_DATA_DRAW_H
#define SSD_DATA_DRAW_H

#include <stdint.h>

#include "data/image.h"

#define SSD_FONT_W 5         /* glyph columns */
#define SSD_FONT_H 8         /* glyph rows */
#define SSD_FONT_ADVANCE_X 6 /* cell width at scale 1 */
#define SSD_FONT_ADVANCE_Y 9 /* cell height at scale 1 */

/* Number of distinct colours of the class palette (colour k repeats every this many ids). */
#define SSD_CLASS_PALETTE_SIZE 96

/* The 81 labels of the model: 0 "background", then the 80 COCO 2017 category names in ascending
 * category-id order (1 "person", 2 "bicycle", ..., 80 "toothbrush"), i.e. label i names the
 * i-th smallest COCO category id. */
extern const char *const ssd_coco_class_names[81];

/* Outline of (l, t)..(r, b): the pixels of the rectangle within `thickness` pixels of its border
 * (the line grows inward; a thickness of half the size or more fills it). thickness < 1 draws
 * nothing. */
void ssd_draw_rect(ssd_image *im, int l, int t, int r, int b, int thickness, const uint8_t rgb[3]);
/* Every pixel of (l, t)..(r, b). */
void ssd_draw_fill(ssd_image *im, int l, int t, int r, int b, const uint8_t rgb[3]);

/* 1 when font pixel (gx, gy) of character c is set, else 0 (also for gx, gy outside the glyph).
 * Bytes outside 32..126 use the glyph of '?'. */
int ssd_font_pixel(unsigned char c, int gx, int gy);

/* Width and height in pixels of `text` drawn at `scale` (scale < 1 counts as 1):
 * strlen(text) * SSD_FONT_ADVANCE_X * scale and SSD_FONT_ADVANCE_Y * scale (INT_MAX at most). */
int ssd_text_width(const char *text, int scale);
int ssd_text_height(int scale);
/* Draws text with its cell's top-left corner at (x, y): set font pixels in fg, the rest of each
 * character cell in *bg, or left as it was when bg is NULL. Bytes outside 32..126 are drawn as
 * '?'. Returns ssd_text_width(text, scale). */
int ssd_draw_text(ssd_image *im, int x, int y, const char *text, int scale, const uint8_t fg[3],
                  const uint8_t *bg);

/* The colour of a class: entry (class_id mod SSD_CLASS_PALETTE_SIZE) of a fixed palette of
 * saturated colours whose hues step by the golden ratio (neighbouring ids look different). */
void ssd_class_color(int class_id, uint8_t rgb[3]);

/* Where ssd_draw_label_box draws, for an image of img_w x img_h pixels. */
typedef struct ssd_label_layout {
    int l, t, r, b;        /* the box, rounded and clamped to +-2^30 (may lie outside the image) */
    int thickness;         /* max(2, min(img_w, img_h) / 300) */
    int scale;             /* text scale: 1 below 600 pixels of image width, else 2 */
    int ll, lt, lr, lb;    /* the label's filled background; empty (lr < ll) without a label */
    int tx, ty;            /* top-left corner of the text */
    uint8_t color[3];      /* ssd_class_color(class_id): box and label background */
    uint8_t text_color[3]; /* black on light colours, white on dark ones (luminance) */
} ssd_label_layout;

/* The label sits on the box's top edge, outside it (rows t - height .. t - 1), moved inside the
 * box when that would leave the image at the top, and moved left / right / up / down as needed
 * to stay inside the image whenever it fits in the image. Returns 0, or -1 (nothing to draw)
 * when a coordinate is not finite or the image is empty. label may be NULL or "". */
int ssd_label_box_layout(int img_w, int img_h, float l, float t, float r, float b,
                         const char *label, int class_id, ssd_label_layout *out);

/* Draws a detection: the box outline in the class colour and, when label is non-empty, the label
 * (e.g. "dog 0.87") on a filled background of that colour, as ssd_label_box_layout places them.
 * Box coordinates are pixel positions (rounded to the nearest integer). */
void ssd_draw_label_box(ssd_image *im, float l, float t, float r, float b, const char *label,
                        int class_id);

#endif
