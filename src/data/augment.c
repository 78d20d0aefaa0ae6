/* SSD training and validation transforms (spec/ssd-reference.md 6.2-6.4): the reference's
 * SSDCropping, RandomHorizontalFlip, Resize((300, 300)), ColorJitter, ToTensor and Normalize,
 * reproduced bit for bit (see augment.h for the contract and the draw order).
 *
 * How the pieces are made exact:
 *   - Geometry uses the reference's number types: the crop fractions are doubles (Python
 *     floats); the boxes are float32 tensors, and every tensor-scalar operation of torch
 *     (IoU, the centre test, the clamp, the renormalisation) casts the Python scalar to float32
 *     and computes in float32 (checked against torch 1.13: comparisons, subtraction and true
 *     division by a scalar all round like float32 C arithmetic).
 *   - Pixel operations repeat Pillow's arithmetic with the same C types, operation by
 *     operation: resize weights in double, 22-bit fixed point accumulation; blends in float32
 *     with truncation; HSV in Pillow's float/double mix. Every rounding step is its own
 *     statement so no compiler may fuse a multiply and an add (GCC in ISO C mode does not
 *     contract; clang is told so by the pragma below).
 *
 * Speed (the per-sample hot path of the loader): the crop and the flip are never
 * materialised: the horizontal resize pass reads the crop window of the decoded image in
 * place and, for a flipped sample, uses mirrored weights (same integers, reversed), which is
 * exactly resize(flip(crop)). Only the source rows the vertical pass needs are filtered.
 * Resize weights are cached per (in, out) size in the workspace; the colour operations are
 * 256-entry tables where the output depends on one byte (brightness, contrast, ToTensor +
 * Normalize); on x86-64 with AVX2 (checked at run time) the two resize passes use AVX2 integer
 * kernels that give the same bytes as the portable C ones. The workspace's buffers only grow,
 * so the steady state allocates nothing. */
#include "data/augment.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "data/augment_internal.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SSD_AUG_AVX2 1
#include <immintrin.h>
#endif

#define RS_BITS 22                   /* Pillow's PRECISION_BITS for 8-bit images */
#define RS_HALF (1 << (RS_BITS - 1)) /* rounding term of the accumulator */
#define RS_CACHE 16                  /* cached (in, out) weight tables per workspace */

/* ImageNet normalisation (spec 6.2 step 6), float32 like torchvision's Normalize. */
static const float k_mean[3] = {0.485f, 0.456f, 0.406f};
static const float k_std[3] = {0.229f, 0.224f, 0.225f};

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
/* Resize weights (Pillow Resample.c precompute_coeffs + normalize_coeffs_8bpc, BILINEAR)   */
/* ====================================================================================== */

typedef struct rs_axis {
    int in, out;        /* the sizes this table is for; in == 0: empty cache slot */
    int kmax;           /* stride of k (Pillow's ksize) */
    unsigned last_use;  /* LRU stamp */
    int *start;         /* [out] first source index read */
    int *count;         /* [out] number of taps (zero weights at both ends trimmed) */
    int32_t *k;         /* [out * kmax] weights, 2^22 fixed point */
    size_t cap_out, cap_k;
} rs_axis;

static void rs_reserve(rs_axis *a, int out, int kmax) {
    if ((size_t)out > a->cap_out) {
        a->start = ssd_xrealloc(a->start, (size_t)out * sizeof *a->start);
        a->count = ssd_xrealloc(a->count, (size_t)out * sizeof *a->count);
        a->cap_out = (size_t)out;
    }
    size_t nk = (size_t)out * (size_t)kmax;
    if (nk > a->cap_k) {
        a->k = ssd_xrealloc(a->k, nk * sizeof *a->k);
        a->cap_k = nk;
    }
}

static void rs_free(rs_axis *a) {
    free(a->start);
    free(a->count);
    free(a->k);
    memset(a, 0, sizeof *a);
}

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* The weight of source index x for an output whose centre is `center` (Pillow evaluates
 * filter((x + xmin - center + 0.5) * (1 / filterscale)); same operations, same order). */
static double rs_tap(int x, double center, double ss) {
    double d = (double)x - center;
    d = d + 0.5;
    d = d * ss;
    return bilinear_filter(d);
}

static void rs_compute(rs_axis *a, int in, int out) {
    /* box = (0, 0, in, out) as floats: (double)(in1 - in0) / out with in1 - in0 exact. */
    double scale = (double)(float)in / out;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale; /* the bilinear filter's support is 1 */
    int ksize = (int)ceil(support) * 2 + 1;
    double ss = 1.0 / filterscale;
    rs_reserve(a, out, ksize);
    a->in = in;
    a->out = out;
    a->kmax = ksize;
    for (int o = 0; o < out; o++) {
        double center = (o + 0.5) * scale; /* in0 (0.0f) + ... is exact */
        double lo = center - support;
        lo = lo + 0.5;
        int xmin = (int)lo;
        if (xmin < 0) xmin = 0;
        double hi = center + support;
        hi = hi + 0.5;
        int xmax = (int)hi;
        if (xmax > in) xmax = in;
        int n = xmax - xmin;
        double ww = 0.0;
        for (int x = 0; x < n; x++) ww += rs_tap(x + xmin, center, ss);
        int32_t *k = a->k + (size_t)o * ksize;
        int first = -1, last = -1;
        for (int x = 0; x < n; x++) {
            double w = rs_tap(x + xmin, center, ss);
            if (ww != 0.0) w /= ww;
            double scaled = w * (double)(1 << RS_BITS);
            int32_t q = w < 0 ? (int32_t)(-0.5 + scaled) : (int32_t)(0.5 + scaled);
            k[x] = q;
            if (q != 0) {
                if (first < 0) first = x;
                last = x;
            }
        }
        /* A zero weight adds nothing to the integer sum: trimming it changes no result. */
        if (first < 0) {
            a->start[o] = xmin;
            a->count[o] = 0;
        } else {
            if (first > 0) memmove(k, k + first, (size_t)(last - first + 1) * sizeof *k);
            a->start[o] = xmin + first;
            a->count[o] = last - first + 1;
        }
    }
}

/* The same table for the mirrored source: flip(src)[x] = src[in - 1 - x]. */
static void rs_mirror(const rs_axis *a, rs_axis *m) {
    rs_reserve(m, a->out, a->kmax);
    m->in = a->in;
    m->out = a->out;
    m->kmax = a->kmax;
    for (int o = 0; o < a->out; o++) {
        int n = a->count[o];
        m->start[o] = a->in - a->start[o] - n;
        m->count[o] = n;
        const int32_t *k = a->k + (size_t)o * a->kmax;
        int32_t *mk = m->k + (size_t)o * a->kmax;
        for (int t = 0; t < n; t++) mk[t] = k[n - 1 - t];
    }
}

/* ====================================================================================== */
/* Workspace                                                                               */
/* ====================================================================================== */

struct ssd_augment_ws {
    rs_axis cache[RS_CACHE];
    unsigned tick;
    rs_axis mirror;  /* mirrored horizontal weights of the current sample */
    ssd_image tmp;   /* horizontal pass output */
    ssd_image out;   /* the 300x300 sample before ToTensor */
    int32_t *acc;    /* vertical pass accumulators (portable path) */
    size_t acc_cap;
    int simd;
};

int ssd_augment_simd_available(void) {
#ifdef SSD_AUG_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

ssd_augment_ws *ssd_augment_ws_create(void) {
    ssd_augment_ws *ws = ssd_xcalloc(1, sizeof *ws);
    ws->simd = ssd_augment_simd_available();
    ssd_image_reserve(&ws->out, SSD_AUG_SIZE, SSD_AUG_SIZE);
    return ws;
}

void ssd_augment_ws_destroy(ssd_augment_ws *ws) {
    if (!ws) return;
    for (int i = 0; i < RS_CACHE; i++) rs_free(&ws->cache[i]);
    rs_free(&ws->mirror);
    ssd_image_free(&ws->tmp);
    ssd_image_free(&ws->out);
    free(ws->acc);
    free(ws);
}

int ssd_augment_ws_set_simd(ssd_augment_ws *ws, int on) {
    int prev = ws->simd;
    ws->simd = on && ssd_augment_simd_available();
    return prev;
}

static const rs_axis *rs_get(ssd_augment_ws *ws, int in, int out) {
    unsigned tick = ++ws->tick;
    int victim = 0;
    for (int i = 0; i < RS_CACHE; i++) {
        rs_axis *a = &ws->cache[i];
        if (a->in == in && a->out == out) {
            a->last_use = tick;
            return a;
        }
        if (a->last_use < ws->cache[victim].last_use) victim = i;
    }
    rs_axis *a = &ws->cache[victim];
    rs_compute(a, in, out);
    a->last_use = tick;
    return a;
}

/* ====================================================================================== */
/* Resize passes                                                                           */
/* ====================================================================================== */

static inline uint8_t clip8(int32_t acc) {
    int32_t v = acc >> RS_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* One output pixel of the horizontal pass (3 channels). */
static inline void hpix_c(const uint8_t *p, const int32_t *k, int n, uint8_t *d) {
    int32_t a0 = RS_HALF, a1 = RS_HALF, a2 = RS_HALF;
    for (int t = 0; t < n; t++) {
        a0 += p[3 * t + 0] * k[t];
        a1 += p[3 * t + 1] * k[t];
        a2 += p[3 * t + 2] * k[t];
    }
    d[0] = clip8(a0);
    d[1] = clip8(a1);
    d[2] = clip8(a2);
}

/* rows x src_w RGB (row stride `stride`) -> rows x c->out (packed). */
static void hpass_c(const uint8_t *src, ptrdiff_t stride, int rows, const rs_axis *c,
                    uint8_t *dst) {
    ptrdiff_t dstride = (ptrdiff_t)c->out * 3;
    for (int y = 0; y < rows; y++) {
        const uint8_t *row = src + y * stride;
        uint8_t *d = dst + y * dstride;
        for (int o = 0; o < c->out; o++)
            hpix_c(row + 3 * (ptrdiff_t)c->start[o], c->k + (size_t)o * c->kmax, c->count[o],
                   d + 3 * o);
    }
}

/* rows of `wbytes` bytes (stride `stride`, row 0 = source row `row0`) -> c->out rows. */
static void vpass_c(const uint8_t *src, ptrdiff_t stride, int wbytes, const rs_axis *c, int row0,
                    uint8_t *dst, int32_t *acc) {
    for (int o = 0; o < c->out; o++) {
        const int32_t *k = c->k + (size_t)o * c->kmax;
        const uint8_t *base = src + (ptrdiff_t)(c->start[o] - row0) * stride;
        for (int x = 0; x < wbytes; x++) acc[x] = RS_HALF;
        for (int t = 0; t < c->count[o]; t++) {
            const uint8_t *r = base + t * stride;
            int32_t kt = k[t];
            for (int x = 0; x < wbytes; x++) acc[x] += r[x] * kt;
        }
        uint8_t *d = dst + (ptrdiff_t)o * wbytes;
        for (int x = 0; x < wbytes; x++) d[x] = clip8(acc[x]);
    }
}

#ifdef SSD_AUG_AVX2
/* Horizontal pass, two taps per 256-bit multiply: lanes (R, G, B, -) of tap t and of tap t+1.
 * Loads read up to 2 bytes past the last tap's pixel; `end` (the end of the source buffer)
 * sends the few outputs where that would leave the buffer to the portable code. */
__attribute__((target("avx2"))) static void hpass_avx2(const uint8_t *src, ptrdiff_t stride,
                                                       int rows, const rs_axis *c, uint8_t *dst,
                                                       const uint8_t *end) {
    const __m128i shuf = _mm_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i pairs = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    const __m128i half = _mm_set1_epi32(RS_HALF);
    ptrdiff_t dstride = (ptrdiff_t)c->out * 3;
    for (int y = 0; y < rows; y++) {
        const uint8_t *row = src + y * stride;
        uint8_t *d = dst + y * dstride;
        for (int o = 0; o < c->out; o++) {
            const uint8_t *p = row + 3 * (ptrdiff_t)c->start[o];
            const int32_t *k = c->k + (size_t)o * c->kmax;
            int n = c->count[o];
            if (end - p < 3 * (ptrdiff_t)n + 2) {
                hpix_c(p, k, n, d + 3 * o);
                continue;
            }
            __m256i acc = _mm256_setzero_si256();
            int t = 0;
            for (; t + 1 < n; t += 2) {
                __m128i px = _mm_shuffle_epi8(_mm_loadl_epi64((const __m128i *)(p + 3 * t)), shuf);
                __m256i kk = _mm256_permutevar8x32_epi32(
                    _mm256_castsi128_si256(_mm_loadl_epi64((const __m128i *)(k + t))), pairs);
                acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(px), kk));
            }
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
            if (t < n) {
                int32_t w4;
                memcpy(&w4, p + 3 * t, 4);
                __m128i v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(w4));
                s = _mm_add_epi32(s, _mm_mullo_epi32(v, _mm_set1_epi32(k[t])));
            }
            s = _mm_srai_epi32(_mm_add_epi32(s, half), RS_BITS);
            s = _mm_packus_epi16(_mm_packs_epi32(s, s), s); /* clamps to 0..255 like clip8 */
            uint32_t v = (uint32_t)_mm_cvtsi128_si32(s);
            d[3 * o + 0] = (uint8_t)v;
            d[3 * o + 1] = (uint8_t)(v >> 8);
            d[3 * o + 2] = (uint8_t)(v >> 16);
        }
    }
}

/* Vertical pass, 16 bytes of a row at a time (8 int32 lanes per half). */
__attribute__((target("avx2"))) static void vpass_avx2(const uint8_t *src, ptrdiff_t stride,
                                                       int wbytes, const rs_axis *c, int row0,
                                                       uint8_t *dst) {
    const __m256i half = _mm256_set1_epi32(RS_HALF);
    for (int o = 0; o < c->out; o++) {
        const int32_t *k = c->k + (size_t)o * c->kmax;
        int n = c->count[o];
        const uint8_t *base = src + (ptrdiff_t)(c->start[o] - row0) * stride;
        uint8_t *d = dst + (ptrdiff_t)o * wbytes;
        int x = 0;
        for (; x + 32 <= wbytes; x += 32) {
            __m256i a0 = half, a1 = half, a2 = half, a3 = half;
            for (int t = 0; t < n; t++) {
                const uint8_t *r = base + t * stride + x;
                __m256i kt = _mm256_set1_epi32(k[t]);
                __m128i lo = _mm_loadu_si128((const __m128i *)r);
                __m128i hi = _mm_loadu_si128((const __m128i *)(r + 16));
                a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(lo), kt));
                a1 = _mm256_add_epi32(
                    a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)), kt));
                a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(hi), kt));
                a3 = _mm256_add_epi32(
                    a3, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)), kt));
            }
            a0 = _mm256_srai_epi32(a0, RS_BITS);
            a1 = _mm256_srai_epi32(a1, RS_BITS);
            a2 = _mm256_srai_epi32(a2, RS_BITS);
            a3 = _mm256_srai_epi32(a3, RS_BITS);
            /* packs work per 128-bit lane: (a0 a1 | a0' a1') -> restore order with a permute. */
            __m256i w01 = _mm256_permute4x64_epi64(_mm256_packs_epi32(a0, a1), 0xD8);
            __m256i w23 = _mm256_permute4x64_epi64(_mm256_packs_epi32(a2, a3), 0xD8);
            __m256i b = _mm256_permute4x64_epi64(_mm256_packus_epi16(w01, w23), 0xD8);
            _mm256_storeu_si256((__m256i *)(d + x), b);
        }
        for (; x < wbytes; x++) {
            int32_t a = RS_HALF;
            for (int t = 0; t < n; t++) a += base[t * stride + x] * k[t];
            d[x] = clip8(a);
        }
    }
}
#endif

typedef struct rs_view {
    const uint8_t *px;  /* top-left pixel of the window */
    ptrdiff_t stride;   /* bytes per source row */
    int w, h;
    const uint8_t *end; /* end of the source buffer (bound for the SIMD loads) */
} rs_view;

static void hpass(const ssd_augment_ws *ws, const uint8_t *src, ptrdiff_t stride, int rows,
                  const rs_axis *c, uint8_t *dst, const uint8_t *end) {
#ifdef SSD_AUG_AVX2
    if (ws->simd) {
        hpass_avx2(src, stride, rows, c, dst, end);
        return;
    }
#endif
    (void)end;
    hpass_c(src, stride, rows, c, dst);
}

static void vpass(ssd_augment_ws *ws, const uint8_t *src, ptrdiff_t stride, int wbytes,
                  const rs_axis *c, int row0, uint8_t *dst) {
#ifdef SSD_AUG_AVX2
    if (ws->simd) {
        vpass_avx2(src, stride, wbytes, c, row0, dst);
        return;
    }
#endif
    if ((size_t)wbytes > ws->acc_cap) {
        free(ws->acc);
        ws->acc = ssd_xmalloc((size_t)wbytes * sizeof *ws->acc);
        ws->acc_cap = (size_t)wbytes;
    }
    vpass_c(src, stride, wbytes, c, row0, dst, ws->acc);
}

static void flip_rows(uint8_t *px, int w, int h) {
    for (int y = 0; y < h; y++) {
        uint8_t *row = px + (size_t)y * w * 3;
        for (int a = 0, b = w - 1; a < b; a++, b--) {
            uint8_t t0 = row[3 * a], t1 = row[3 * a + 1], t2 = row[3 * a + 2];
            row[3 * a] = row[3 * b];
            row[3 * a + 1] = row[3 * b + 1];
            row[3 * a + 2] = row[3 * b + 2];
            row[3 * b] = t0;
            row[3 * b + 1] = t1;
            row[3 * b + 2] = t2;
        }
    }
}

/* Pillow's ImagingResampleInner on a window of the source, optionally mirrored first:
 * out (ow x oh, packed) = resize(mirror ? flip(window) : window). */
static void resize_view(ssd_augment_ws *ws, rs_view src, int mirror, uint8_t *out, int ow, int oh,
                        ssd_image *tmp) {
    SSD_ASSERT(src.w > 0 && src.h > 0 && ow > 0 && oh > 0, "resize %dx%d -> %dx%d", src.w, src.h,
               ow, oh);
    int need_h = src.w != ow, need_v = src.h != oh;
    ptrdiff_t ostride = (ptrdiff_t)ow * 3;
    if (need_h) {
        const rs_axis *hx = rs_get(ws, src.w, ow);
        if (mirror) {
            rs_mirror(hx, &ws->mirror);
            hx = &ws->mirror;
        }
        if (!need_v) {
            hpass(ws, src.px, src.stride, src.h, hx, out, src.end);
            return;
        }
        const rs_axis *vy = rs_get(ws, src.h, oh);
        /* Only the source rows some output row reads. */
        int y0 = src.h, y1 = 0;
        for (int o = 0; o < oh; o++) {
            if (vy->count[o] == 0) continue;
            if (vy->start[o] < y0) y0 = vy->start[o];
            if (vy->start[o] + vy->count[o] > y1) y1 = vy->start[o] + vy->count[o];
        }
        if (y1 <= y0) y0 = 0, y1 = 1;
        ssd_image_reserve(tmp, ow, y1 - y0);
        hpass(ws, src.px + (ptrdiff_t)y0 * src.stride, src.stride, y1 - y0, hx, tmp->px, src.end);
        vpass(ws, tmp->px, ostride, (int)ostride, vy, y0, out);
        return;
    }
    if (need_v) {
        const rs_axis *vy = rs_get(ws, src.h, oh);
        vpass(ws, src.px, src.stride, (int)ostride, vy, 0, out);
    } else {
        for (int y = 0; y < oh; y++)
            memcpy(out + y * ostride, src.px + y * src.stride, (size_t)ostride);
    }
    /* Without a horizontal pass every column is filtered alike, so mirroring commutes. */
    if (mirror) flip_rows(out, ow, oh);
}

static rs_view whole_view(const ssd_image *im) {
    rs_view v = {im->px, (ptrdiff_t)im->w * 3, im->w, im->h,
                 im->px + (size_t)im->w * (size_t)im->h * 3};
    return v;
}

void ssd_pil_resize_bilinear_ws(ssd_augment_ws *ws, const ssd_image *in, ssd_image *out, int ow,
                                int oh) {
    SSD_ASSERT(in != out, "resize in place");
    ssd_image_reserve(out, ow, oh);
    resize_view(ws, whole_view(in), 0, out->px, ow, oh, &ws->tmp);
}

void ssd_pil_resize_bilinear(const ssd_image *in, ssd_image *out, int ow, int oh,
                             ssd_image *tmp) {
    SSD_ASSERT(in != out && tmp != in && tmp != out, "resize buffers must differ");
    ssd_augment_ws *ws = ssd_augment_ws_create();
    ssd_image_reserve(out, ow, oh);
    resize_view(ws, whole_view(in), 0, out->px, ow, oh, tmp);
    ssd_augment_ws_destroy(ws);
}

/* ====================================================================================== */
/* Crop and flip                                                                           */
/* ====================================================================================== */

void ssd_pil_crop(const ssd_image *in, int l, int t, int r, int b, ssd_image *out) {
    SSD_ASSERT(in != out, "crop in place");
    SSD_ASSERT(0 <= l && l < r && r <= in->w && 0 <= t && t < b && b <= in->h,
               "crop box (%d, %d, %d, %d) of a %dx%d image", l, t, r, b, in->w, in->h);
    ssd_image_reserve(out, r - l, b - t);
    size_t row = (size_t)(r - l) * 3;
    for (int y = t; y < b; y++)
        memcpy(out->px + (size_t)(y - t) * row, in->px + ((size_t)y * in->w + l) * 3, row);
}

void ssd_pil_flip_lr(ssd_image *im) { flip_rows(im->px, im->w, im->h); }

/* ====================================================================================== */
/* Colour: ImageEnhance blends, HSV hue shift                                              */
/* ====================================================================================== */

/* ImagingBlend for one byte: in1 + alpha * (in2 - in1) in float32, then clipped to 0..255 and
 * truncated. (Pillow skips the clip when 0 <= alpha <= 1; the value cannot leave 0..255 then,
 * so clipping always gives the same bytes.) */
static inline uint8_t blend_px(int in1, int in2, float alpha) {
    float d = (float)(in2 - in1);
    float prod = alpha * d;
    float t = (float)in1 + prod;
    if (t <= 0.0f) return 0;
    if (t >= 255.0f) return 255;
    return (uint8_t)t;
}

/* Pillow's RGB -> L: (19595 R + 38470 G + 7471 B) >> 16; Pillow >= 8 adds 0x8000 first. */
static inline int gray_px(const uint8_t *p, int l_round) {
    return (int)((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + (l_round ? 0x8000u : 0u)) >> 16);
}

static void apply_lut(ssd_image *im, const uint8_t lut[256]) {
    size_t n = (size_t)im->w * im->h * 3;
    uint8_t *p = im->px;
    for (size_t i = 0; i < n; i++) p[i] = lut[p[i]];
}

void ssd_pil_brightness(ssd_image *im, float f) {
    if (f == 1.0f) return; /* Image.blend(black, im, 1.0) is a copy of im */
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) lut[v] = blend_px(0, v, f);
    apply_lut(im, lut);
}

void ssd_pil_contrast(ssd_image *im, float f, int l_round) {
    if (f == 1.0f) return;
    size_t n = (size_t)im->w * im->h;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++) sum += (uint64_t)gray_px(im->px + 3 * i, l_round);
    /* ImageStat: the histogram's sum (exact in a double) over the pixel count. */
    double mean = (double)sum / (double)n;
    int m = (int)(mean + 0.5);
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) lut[v] = blend_px(m, v, f);
    apply_lut(im, lut);
}

void ssd_pil_saturation(ssd_image *im, float f, int l_round) {
    if (f == 1.0f) return;
    /* alpha * (p - L) for every difference; then L + that, per channel. */
    float prod[511];
    for (int d = -255; d <= 255; d++) prod[d + 255] = f * (float)d;
    size_t n = (size_t)im->w * im->h;
    uint8_t *p = im->px;
    for (size_t i = 0; i < n; i++, p += 3) {
        int l = gray_px(p, l_round);
        float lf = (float)l;
        for (int c = 0; c < 3; c++) {
            float t = lf + prod[p[c] - l + 255];
            p[c] = t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
        }
    }
}

/* Pillow's hsv2rgb quantities that depend on one byte. */
typedef struct hsv_tabs {
    int sector[256]; /* floor(H * 6 / 255) % 6 */
    float frac[256]; /* H * 6 / 255 - floor(...) */
    float fs[256];   /* S / 255 */
} hsv_tabs;

static void hsv_tabs_init(hsv_tabs *t) {
    for (int h = 0; h < 256; h++) {
        double x = (double)(float)h * 6.0;
        x = x / 255.0;
        int i = (int)floor(x);
        double fr = x - (double)(float)i;
        t->sector[h] = i % 6;
        t->frac[h] = (float)fr;
        t->fs[h] = (float)((double)(float)h / 255.0);
    }
}

/* C round() for x >= 0 (half away from zero): x - trunc(x) is exact for 0 <= x < 2^52. */
static inline int round_pos(double x) {
    int t = (int)x;
    return x - (double)t >= 0.5 ? t + 1 : t;
}

static inline int clip255(int v) { return v < 0 ? 0 : v > 255 ? 255 : v; }

/* One pixel: Pillow rgb2hsv, H += shift (mod 256), Pillow hsv2rgb. */
static inline void hue_px(uint8_t *px, int shift, const hsv_tabs *tb) {
    int r = px[0], g = px[1], b = px[2];
    int mx = r > g ? r : g;
    mx = mx > b ? mx : b;
    int mn = r < g ? r : g;
    mn = mn < b ? mn : b;
    if (mx == mn) return; /* H = S = 0 -> (V, V, V): the pixel itself */
    float cr = (float)(mx - mn);
    float s = cr / (float)mx;
    float h;
    if (r == mx) {
        float bc = (float)(mx - b) / cr;
        float gc = (float)(mx - g) / cr;
        h = bc - gc;
    } else if (g == mx) {
        float rc = (float)(mx - r) / cr;
        float bc = (float)(mx - b) / cr;
        double hd = 2.0 + (double)rc;
        hd = hd - (double)bc;
        h = (float)hd;
    } else {
        float gc = (float)(mx - g) / cr;
        float rc = (float)(mx - r) / cr;
        double hd = 4.0 + (double)gc;
        hd = hd - (double)rc;
        h = (float)hd;
    }
    /* fmod(h / 6 + 1, 1): the argument lies in [5/6, 11/6], where fmod is one exact subtraction. */
    double hh = (double)h / 6.0;
    hh = hh + 1.0;
    if (hh >= 1.0) hh = hh - 1.0;
    h = (float)hh;
    int hb = clip255((int)((double)h * 255.0));
    int sb = clip255((int)((double)s * 255.0));
    hb = (hb + shift) & 255;
    int v = mx;
    if (sb == 0) {
        px[0] = px[1] = px[2] = (uint8_t)v;
        return;
    }
    float f = tb->frac[hb], fs = tb->fs[sb];
    double vd = (double)v;
    double cp = 1.0 - (double)fs;
    float fsf = fs * f;
    double cq = 1.0 - (double)fsf;
    double omf = 1.0 - (double)f;
    double ct = (double)fs * omf;
    ct = 1.0 - ct;
    uint8_t up = (uint8_t)clip255(round_pos(vd * cp));
    uint8_t uq = (uint8_t)clip255(round_pos(vd * cq));
    uint8_t ut = (uint8_t)clip255(round_pos(vd * ct));
    uint8_t uv = (uint8_t)v;
    switch (tb->sector[hb]) {
    case 0: px[0] = uv, px[1] = ut, px[2] = up; break;
    case 1: px[0] = uq, px[1] = uv, px[2] = up; break;
    case 2: px[0] = up, px[1] = uv, px[2] = ut; break;
    case 3: px[0] = up, px[1] = uq, px[2] = uv; break;
    case 4: px[0] = ut, px[1] = up, px[2] = uv; break;
    default: px[0] = uv, px[1] = up, px[2] = uq; break;
    }
}

void ssd_pil_hue(ssd_image *im, float h) {
    SSD_ASSERT(h >= -0.5f && h <= 0.5f, "hue factor %g outside [-0.5, 0.5]", (double)h);
    /* np.uint8(h * 255): truncation toward zero, negatives wrap modulo 256 (x86 numpy). */
    int shift = (int)((double)h * 255.0) & 255;
    hsv_tabs tb;
    hsv_tabs_init(&tb);
    size_t n = (size_t)im->w * im->h;
    uint8_t *p = im->px;
    for (size_t i = 0; i < n; i++, p += 3) hue_px(p, shift, &tb);
}

/* ====================================================================================== */
/* ToTensor + Normalize                                                                    */
/* ====================================================================================== */

void ssd_image_to_chw_normalized(const ssd_image *im, float *chw) {
    /* The output depends on (channel, byte) only: (v / 255 - mean) / std, each step float32
     * as torch computes img.float().div(255).sub_(mean).div_(std). */
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x = (float)v / 255.0f;
            x = x - k_mean[c];
            lut[c][v] = x / k_std[c];
        }
    size_t n = (size_t)im->w * im->h;
    float *r = chw, *g = chw + n, *b = chw + 2 * n;
    const uint8_t *p = im->px;
    for (size_t i = 0; i < n; i++, p += 3) {
        r[i] = lut[0][p[0]];
        g[i] = lut[1][p[1]];
        b[i] = lut[2][p[2]];
    }
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
            int L = (int)(left * W), T = (int)(top * H), R = (int)(right * W), B = (int)(bottom * H);
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
    rs_view v = {decoded->px + ((size_t)px[1] * W + (size_t)px[0]) * 3, (ptrdiff_t)W * 3,
                 px[2] - px[0], px[3] - px[1], decoded->px + (size_t)W * H * 3};
    ssd_image *im = &ws->out;
    ssd_image_reserve(im, SSD_AUG_SIZE, SSD_AUG_SIZE);
    resize_view(ws, v, rec->flipped, im->px, SSD_AUG_SIZE, SSD_AUG_SIZE, &ws->tmp);

    for (int k = 0; k < 4; k++) {
        switch (rec->order[k]) {
        case 0: ssd_pil_brightness(im, rec->factors[0]); break;
        case 1: ssd_pil_contrast(im, rec->factors[1], cfg->l_round); break;
        case 2: ssd_pil_saturation(im, rec->factors[2], cfg->l_round); break;
        default:
            /* ColorJitter(hue=0) has no hue operation (a hue of 0 would still round-trip HSV) */
            if (cfg->hue != 0.0f) ssd_pil_hue(im, rec->factors[3]);
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
    resize_view(ws, whole_view(decoded), 0, im->px, SSD_AUG_SIZE, SSD_AUG_SIZE, &ws->tmp);
    ssd_image_to_chw_normalized(im, out_chw);
}
