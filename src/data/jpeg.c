/* JPEG decode/encode through libjpeg-turbo's TurboJPEG API (jpeg.h; spec/ssd-reference.md 6.1).
 *
 * Why it equals Pillow: Debian's Pillow 9.4 links the same system libjpeg-turbo 2.1.5, and both
 * it and TurboJPEG let libjpeg pick the file's colour space from its markers (JFIF, Adobe APP14
 * transform, component ids) and decode with libjpeg's defaults (ISLOW IDCT, fancy upsampling).
 * What differs is only what happens around libjpeg, and we repeat Pillow 9.4 there:
 *   - 1 and 3 component files: Pillow decodes to L or RGB and convert("RGB") replicates L;
 *     TurboJPEG's TJPF_RGB output does exactly that (JCS_EXT_RGB takes the same libjpeg colour
 *     converters as JCS_RGB, and grayscale -> RGB replicates).
 *   - 4 component files (CMYK, or YCCK that libjpeg turns into CMYK): Pillow 9.4's JPEG plugin
 *     always unpacks them as "CMYK;I" (every byte inverted, "assume adobe conventions"),
 *     whether or not the file has an Adobe APP14 marker, so no marker scan is needed. Then
 *     convert("RGB") computes, per channel, with nk = 255 - K:
 *         out = clip8(nk - MULDIV255(C, nk)),  MULDIV255(a, b) = (((a*b + 128) >> 8) + a*b + 128) >> 8
 *     (Pillow >= 8, Convert.c cmyk2rgb). TurboJPEG decodes 4-component files to TJPF_CMYK
 *     (raw stored values); we invert and apply that formula.
 * Strictness: every libjpeg warning (TJFLAG_STOPONWARNING: "Premature end of JPEG file",
 * "Corrupt JPEG data: ...") fails the decode, so a truncated or damaged file is never returned
 * half-decoded. TJFLAG_LIMITSCANS refuses progressive files with absurd scan counts (a known
 * CPU-exhaustion trick), and dimensions are checked against SSD_JPEG_MAX_SIDE and
 * SSD_JPEG_MAX_BYTES before anything is allocated. */
#include "data/jpeg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "core/log.h"
#include "core/mem.h"
#include "io/file.h"

/* No COCO image is near these; they only stop a forged header from allocating gigabytes. */
#define SSD_JPEG_MAX_SIDE 30000
#define SSD_JPEG_MAX_BYTES ((size_t)1 << 30) /* w * h * 3 (and w * h * 4 for CMYK scratch) */

#define DECODE_FLAGS (TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS)

struct ssd_jpeg {
    tjhandle dec;          /* decompressor, made at create */
    tjhandle enc;          /* compressor, made on the first encode */
    char *file;            /* decode_file's read buffer (io/file ssd_read_file_reuse) */
    size_t file_cap;
    uint8_t *scratch;      /* CMYK pixels (decode) or one gray plane (encode) */
    size_t scratch_cap;
};

ssd_jpeg *ssd_jpeg_create(void) {
    ssd_jpeg *j = ssd_xcalloc(1, sizeof *j);
    j->dec = tjInitDecompress();
    SSD_ASSERT(j->dec != NULL, "tjInitDecompress failed (out of memory): %s", tjGetErrorStr2(NULL));
    return j;
}

void ssd_jpeg_destroy(ssd_jpeg *j) {
    if (!j) return;
    if (j->dec) tjDestroy(j->dec);
    if (j->enc) tjDestroy(j->enc);
    free(j->file);
    free(j->scratch);
    free(j);
}

static uint8_t *scratch(ssd_jpeg *j, size_t n) {
    if (n > j->scratch_cap) {
        free(j->scratch);
        j->scratch = ssd_xmalloc(n);
        j->scratch_cap = n;
    }
    return j->scratch;
}

/* A TurboJPEG failure as SSD_ERR_FORMAT naming the file and libjpeg's reason. Then the
 * decompressor is replaced: TurboJPEG 2.1's tjDecompressHeader3 returns from a libjpeg error
 * without aborting the decompression, and the next call on that handle fails with the old
 * message (seen with 2.1.5; tjDecompress2 does clean up, but a fresh handle is cheap and
 * certain). */
static ssd_status tj_fail(ssd_jpeg *j, const char *name, ssd_error *err) {
    const char *why = tjGetErrorStr2(j->dec);
    int warn = tjGetErrorCode(j->dec) == TJERR_WARNING;
    ssd_status st = ssd_fail(err, SSD_ERR_FORMAT, "%s: %s: %s", name,
                             warn ? "corrupt JPEG (libjpeg warning; image refused)"
                                  : "cannot decode JPEG",
                             why && *why ? why : "unknown error");
    tjDestroy(j->dec);
    j->dec = tjInitDecompress();
    SSD_ASSERT(j->dec != NULL, "tjInitDecompress failed (out of memory): %s", tjGetErrorStr2(NULL));
    return st;
}

ssd_status ssd_jpeg_header(ssd_jpeg *j, const uint8_t *buf, size_t len, const char *name, int *w,
                           int *h, int *colorspace, ssd_error *err) {
    *w = *h = 0;
    *colorspace = -1;
    if (len == 0) return ssd_fail(err, SSD_ERR_FORMAT, "%s: not a JPEG: empty file", name);
    if (len < 2 || buf[0] != 0xFF || buf[1] != 0xD8)
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: not a JPEG: starts with 0x%02x 0x%02x, not the SOI marker 0xff 0xd8",
                        name, buf[0], len > 1 ? buf[1] : 0);
    int ww = 0, hh = 0, subsamp = -1, cs = -1;
    if (tjDecompressHeader3(j->dec, buf, (unsigned long)len, &ww, &hh, &subsamp, &cs) != 0)
        return tj_fail(j, name, err);
    /* Data that ends (libjpeg then fakes an EOI) before any frame header looks like a
     * "tables-only" stream, for which tjDecompressHeader3 returns 0 and sets nothing. */
    if (ww == 0 && hh == 0 && cs == -1)
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: cannot decode JPEG: the data ends before the frame header "
                        "(truncated file?)", name);
    if (ww <= 0 || hh <= 0 || ww > SSD_JPEG_MAX_SIDE || hh > SSD_JPEG_MAX_SIDE ||
        (size_t)ww * (size_t)hh * 4 > SSD_JPEG_MAX_BYTES)
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: JPEG declares %dx%d pixels, over the limit (each side <= %d, "
                        "w*h*4 <= %zu bytes)", name, ww, hh, SSD_JPEG_MAX_SIDE, SSD_JPEG_MAX_BYTES);
    *w = ww;
    *h = hh;
    *colorspace = cs;
    return SSD_OK;
}

/* Pillow 9.4: unpack "CMYK;I" (invert), then convert CMYK -> RGB (Convert.c cmyk2rgb). */
static void cmyk_inverted_to_rgb(uint8_t *rgb, const uint8_t *cmyk, size_t npix) {
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *s = cmyk + 4 * i;
        int nk = s[3]; /* 255 - (255 - stored K) */
        for (int c = 0; c < 3; c++) {
            int v = 255 - s[c]; /* the inverted ("CMYK;I") value Pillow holds */
            int t = v * nk + 128;
            int v2 = nk - (((t >> 8) + t) >> 8);
            rgb[3 * i + c] = (uint8_t)(v2 < 0 ? 0 : v2 > 255 ? 255 : v2);
        }
    }
}

ssd_status ssd_jpeg_decode(ssd_jpeg *j, const uint8_t *buf, size_t len, const char *name,
                           ssd_image *out, ssd_error *err) {
    out->w = out->h = 0;
    int w, h, cs;
    ssd_status st = ssd_jpeg_header(j, buf, len, name, &w, &h, &cs, err);
    if (st != SSD_OK) return st;
    if (cs == TJCS_CMYK || cs == TJCS_YCCK) {
        uint8_t *cmyk = scratch(j, (size_t)w * h * 4);
        if (tjDecompress2(j->dec, buf, (unsigned long)len, cmyk, w, 0, h, TJPF_CMYK,
                          DECODE_FLAGS) != 0)
            return tj_fail(j, name, err);
        ssd_image_reserve(out, w, h);
        cmyk_inverted_to_rgb(out->px, cmyk, (size_t)w * h);
        return SSD_OK;
    }
    ssd_image_reserve(out, w, h);
    if (tjDecompress2(j->dec, buf, (unsigned long)len, out->px, w, 0, h, TJPF_RGB,
                      DECODE_FLAGS) != 0) {
        out->w = out->h = 0; /* never hand out a partly decoded image */
        return tj_fail(j, name, err);
    }
    return SSD_OK;
}

ssd_status ssd_jpeg_decode_file(ssd_jpeg *j, const char *path, ssd_image *out, ssd_error *err) {
    out->w = out->h = 0;
    size_t n;
    ssd_status st = ssd_read_file_reuse(path, SSD_JPEG_MAX_BYTES, &j->file, &j->file_cap, &n, err);
    if (st != SSD_OK) return st;
    return ssd_jpeg_decode(j, (const uint8_t *)j->file, n, path, out, err);
}

ssd_status ssd_jpeg_encode(ssd_jpeg *j, const ssd_image *im, int quality, int gray, uint8_t **out,
                           size_t *len, ssd_error *err) {
    *out = NULL;
    *len = 0;
    if (!im->px || im->w <= 0 || im->h <= 0 || im->w > SSD_JPEG_MAX_SIDE ||
        im->h > SSD_JPEG_MAX_SIDE)
        return ssd_fail(err, SSD_ERR_ARG, "jpeg encode: bad image size %dx%d", im->w, im->h);
    if (quality < 1 || quality > 100)
        return ssd_fail(err, SSD_ERR_ARG, "jpeg encode: quality %d not in 1..100", quality);
    if (!j->enc) {
        j->enc = tjInitCompress();
        SSD_ASSERT(j->enc != NULL, "tjInitCompress failed (out of memory): %s",
                   tjGetErrorStr2(NULL));
    }
    const uint8_t *src = im->px;
    int pf = TJPF_RGB, samp = TJSAMP_420;
    if (gray) {
        size_t npix = (size_t)im->w * im->h;
        uint8_t *g = scratch(j, npix);
        for (size_t i = 0; i < npix; i++) g[i] = im->px[3 * i];
        src = g;
        pf = TJPF_GRAY;
        samp = TJSAMP_GRAY;
    }
    /* tjBufSize is TurboJPEG's worst case, so with NOREALLOC the buffer stays ours (malloc). */
    unsigned long cap = tjBufSize(im->w, im->h, samp);
    SSD_ASSERT(cap != (unsigned long)-1, "tjBufSize(%d, %d): %s", im->w, im->h,
               tjGetErrorStr2(NULL));
    unsigned char *buf = ssd_xmalloc(cap);
    unsigned long n = cap;
    if (tjCompress2(j->enc, src, im->w, 0, im->h, pf, &buf, &n, samp, quality,
                    TJFLAG_NOREALLOC) != 0) {
        ssd_status st = ssd_fail(err, SSD_ERR_INTERNAL, "jpeg encode %dx%d: %s", im->w, im->h,
                                 tjGetErrorStr2(j->enc));
        free(buf);
        return st;
    }
    *out = ssd_xrealloc(buf, n);
    *len = n;
    return SSD_OK;
}
