/* JPEG decode and encode with libjpeg-turbo's TurboJPEG API (spec/ssd-reference.md 6.1).
 *
 * Decoding gives what Pillow's Image.open(path).convert("RGB") gives with the same libjpeg:
 * accurate integer IDCT (ISLOW), fancy upsampling, no EXIF rotation. Colour spaces:
 *   - YCbCr / RGB: decoded straight to RGB;
 *   - grayscale: L replicated to (L, L, L), as convert("RGB") does;
 *   - CMYK / YCCK: decoded to CMYK; the stored values are inverted first (Pillow 9.4 reads
 *     every 4-channel JPEG in its "CMYK;I" raw mode, Adobe APP14 marker or not), then
 *     converted to RGB with the formula of Pillow >= 8 (R = (255 - C) * (255 - K) / 255,
 *     rounded like Pillow's MULDIV255); see docs/data.md.
 * Any libjpeg error or warning (corrupt data, truncated file: "Premature end of JPEG file")
 * fails the decode: like Pillow without LOAD_TRUNCATED_IMAGES we never return a partially
 * decoded image. Failures are SSD_ERR_FORMAT (or SSD_ERR_IO for a missing/unreadable file)
 * with a message naming the file and libjpeg's reason.
 *
 * A decoder holds one TurboJPEG handle and scratch; use one per thread. */
#ifndef SSD_DATA_JPEG_H
#define SSD_DATA_JPEG_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "data/image.h"

typedef struct ssd_jpeg ssd_jpeg;

ssd_jpeg *ssd_jpeg_create(void); /* aborts on out-of-memory */
void ssd_jpeg_destroy(ssd_jpeg *j); /* NULL is fine */

/* Decodes the JPEG in buf[0..len) into out (RGB). `name` is used only in error messages. */
ssd_status ssd_jpeg_decode(ssd_jpeg *j, const uint8_t *buf, size_t len, const char *name,
                           ssd_image *out, ssd_error *err);
/* Reads path (into the decoder's reusable buffer) and decodes it. */
ssd_status ssd_jpeg_decode_file(ssd_jpeg *j, const char *path, ssd_image *out, ssd_error *err);

/* Reads only the header: width, height and TurboJPEG colour space (TJCS_*). */
ssd_status ssd_jpeg_header(ssd_jpeg *j, const uint8_t *buf, size_t len, const char *name,
                           int *w, int *h, int *colorspace, ssd_error *err);

/* Encodes an RGB image (4:2:0, baseline) or, with gray != 0, its first channel as a grayscale
 * JPEG. *out is malloc'ed (free()). Used by `ssd synth` and the tests. */
ssd_status ssd_jpeg_encode(ssd_jpeg *j, const ssd_image *im, int quality, int gray,
                           uint8_t **out, size_t *len, ssd_error *err);

#endif
