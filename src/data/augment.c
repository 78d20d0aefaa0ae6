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

/* AVX2 kernels, chosen at run time; -DSSD_AUG_NO_SIMD builds the portable code only. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(SSD_AUG_NO_SIMD)
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
    /* The AVX2 horizontal pass's copy of k (rs_build16): per output, `groups` groups of 4 taps,
     * each as two 16-word vectors, the low 11 and the high bits of the weights, laid out for
     * pmaddwd on (R_t, R_t+1, G_t, G_t+1, B_t, B_t+1, 0, 0) | (same for taps t+2, t+3). */
    int16_t *k16;
    size_t cap_k16;
    int groups, has16;
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
    ssd_aligned_free(a->k16);
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
    a->has16 = 0;
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
    m->has16 = 0;
    for (int o = 0; o < a->out; o++) {
        int n = a->count[o];
        m->start[o] = a->in - a->start[o] - n;
        m->count[o] = n;
        const int32_t *k = a->k + (size_t)o * a->kmax;
        int32_t *mk = m->k + (size_t)o * a->kmax;
        for (int t = 0; t < n; t++) mk[t] = k[n - 1 - t];
    }
}

/* Split every weight as k = hi * 2^11 + lo (0 <= lo < 2^11, hi <= 2^11): both halves fit
 * pmaddwd's int16 and sum(p * k) = 2^11 * sum(p * hi) + sum(p * lo) exactly. */
#define RS_SPLIT 11
static void rs_build16(rs_axis *a) {
    int groups = (a->kmax + 3) / 4;
    size_t need = (size_t)a->out * (size_t)groups * 32;
    if (need > a->cap_k16) {
        ssd_aligned_free(a->k16);
        a->k16 = ssd_aligned_alloc(need * sizeof *a->k16);
        a->cap_k16 = need;
    }
    a->groups = groups;
    for (int o = 0; o < a->out; o++) {
        const int32_t *k = a->k + (size_t)o * a->kmax;
        int n = a->count[o];
        for (int g = 0; g < groups; g++) {
            int16_t *lo = a->k16 + ((size_t)o * groups + g) * 32, *hi = lo + 16;
            for (int lane = 0; lane < 2; lane++) {
                int t0 = 4 * g + 2 * lane, t1 = t0 + 1;
                int32_t k0 = t0 < n ? k[t0] : 0, k1 = t1 < n ? k[t1] : 0;
                for (int c = 0; c < 3; c++) {
                    lo[8 * lane + 2 * c] = (int16_t)(k0 & ((1 << RS_SPLIT) - 1));
                    lo[8 * lane + 2 * c + 1] = (int16_t)(k1 & ((1 << RS_SPLIT) - 1));
                    hi[8 * lane + 2 * c] = (int16_t)(k0 >> RS_SPLIT);
                    hi[8 * lane + 2 * c + 1] = (int16_t)(k1 >> RS_SPLIT);
                }
                lo[8 * lane + 6] = lo[8 * lane + 7] = hi[8 * lane + 6] = hi[8 * lane + 7] = 0;
            }
        }
    }
    a->has16 = 1;
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
            if (ws->simd && !a->has16) rs_build16(a);
            return a;
        }
        if (a->last_use < ws->cache[victim].last_use) victim = i;
    }
    rs_axis *a = &ws->cache[victim];
    rs_compute(a, in, out);
    if (ws->simd) rs_build16(a);
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
/* Horizontal pass, 4 taps per step: one 16-byte load holds taps t..t+3 (12 bytes); a byte
 * shuffle makes (R_t, R_t+1, G_t, G_t+1, B_t, B_t+1, 0, 0) 16-bit words in the low lane and
 * the same for t+2, t+3 in the high lane; two pmaddwd with the split weights (rs_build16)
 * give the exact 32-bit sums. Loads read up to 15 bytes past the last tap's pixel: `end` (the
 * end of the source buffer) sends the few outputs where that would leave it to portable code. */
/* Sums the 4-tap groups of one output for one row (lo and hi weight halves). */
__attribute__((target("avx2"))) static inline __m128i hsum_row(__m256i lo, __m256i hi) {
    __m256i sum = _mm256_add_epi32(_mm256_slli_epi32(hi, RS_SPLIT), lo);
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    return _mm_srai_epi32(_mm_add_epi32(s, _mm_set1_epi32(RS_HALF)), RS_BITS);
}

/* Two rows at a time share the weight loads and the final packing. */
__attribute__((target("avx2"))) static void hpass_avx2(const uint8_t *src, ptrdiff_t stride,
                                                       int rows, const rs_axis *c, uint8_t *dst,
                                                       const uint8_t *end) {
    const __m256i shuf = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,
                                          6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
    ptrdiff_t dstride = (ptrdiff_t)c->out * 3;
    for (int y = 0; y < rows; y += 2) {
        int two = y + 1 < rows;
        const uint8_t *row0 = src + y * stride, *row1 = two ? row0 + stride : row0;
        uint8_t *d0 = dst + y * dstride, *d1 = two ? d0 + dstride : d0;
        for (int o = 0; o < c->out; o++) {
            ptrdiff_t off = 3 * (ptrdiff_t)c->start[o];
            const uint8_t *p0 = row0 + off, *p1 = row1 + off;
            int n = c->count[o], groups = (n + 3) / 4;
            if (groups == 0 || end - p1 < 12 * (ptrdiff_t)(groups - 1) + 16) {
                const int32_t *k = c->k + (size_t)o * c->kmax;
                hpix_c(p0, k, n, d0 + 3 * o);
                if (two) hpix_c(p1, k, n, d1 + 3 * o);
                continue;
            }
            const __m256i *kv = (const __m256i *)(c->k16 + (size_t)o * c->groups * 32);
            __m256i lo0 = _mm256_setzero_si256(), hi0 = lo0, lo1 = lo0, hi1 = lo0;
            for (int g = 0; g < groups; g++) {
                __m256i kl = _mm256_load_si256(kv + 2 * g), kh = _mm256_load_si256(kv + 2 * g + 1);
                __m256i x0 = _mm256_shuffle_epi8(
                    _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p0 + 12 * g))), shuf);
                __m256i x1 = _mm256_shuffle_epi8(
                    _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p1 + 12 * g))), shuf);
                lo0 = _mm256_add_epi32(lo0, _mm256_madd_epi16(x0, kl));
                hi0 = _mm256_add_epi32(hi0, _mm256_madd_epi16(x0, kh));
                lo1 = _mm256_add_epi32(lo1, _mm256_madd_epi16(x1, kl));
                hi1 = _mm256_add_epi32(hi1, _mm256_madd_epi16(x1, kh));
            }
            /* (R0 G0 B0 - R1 G1 B1 -) as bytes; packs/packus clamp to 0..255 like clip8 */
            __m128i w = _mm_packs_epi32(hsum_row(lo0, hi0), hsum_row(lo1, hi1));
            uint64_t v = (uint64_t)_mm_cvtsi128_si64(_mm_packus_epi16(w, w));
            d0[3 * o + 0] = (uint8_t)v;
            d0[3 * o + 1] = (uint8_t)(v >> 8);
            d0[3 * o + 2] = (uint8_t)(v >> 16);
            if (two) {
                d1[3 * o + 0] = (uint8_t)(v >> 32);
                d1[3 * o + 1] = (uint8_t)(v >> 40);
                d1[3 * o + 2] = (uint8_t)(v >> 48);
            }
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
            if (ws->simd) rs_build16(&ws->mirror);
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

static void apply_lut(uint8_t *p, size_t n, const uint8_t lut[256]) {
    for (size_t i = 0; i < n; i++) p[i] = lut[p[i]];
}

#ifdef SSD_AUG_AVX2
/* blend(in1 constant, p, f) on 32 bytes per step, same float32 operations as blend_px. */
__attribute__((target("avx2"))) static size_t blend_const_avx2(uint8_t *p, size_t n, int in1,
                                                              float f) {
    const __m256i c = _mm256_set1_epi32(in1);
    const __m256 cf = _mm256_set1_ps((float)in1), fv = _mm256_set1_ps(f);
    const __m256 lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(255.0f);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i q[4];
        for (int k = 0; k < 4; k++) {
            __m128i part = k < 2 ? _mm256_castsi256_si128(x) : _mm256_extracti128_si256(x, 1);
            if (k & 1) part = _mm_srli_si128(part, 8);
            __m256 d = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(part), c));
            __m256 t = _mm256_add_ps(cf, _mm256_mul_ps(fv, d));
            q[k] = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(t, lo), hi));
        }
        __m256i w01 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xD8);
        __m256i w23 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[2], q[3]), 0xD8);
        __m256i b = _mm256_permute4x64_epi64(_mm256_packus_epi16(w01, w23), 0xD8);
        _mm256_storeu_si256((__m256i *)(p + i), b);
    }
    return i;
}
#endif

/* Image.blend(constant image in1, im, f) in place. */
static void blend_const(ssd_image *im, int in1, float f, int simd) {
    size_t n = (size_t)im->w * im->h * 3, i = 0;
#ifdef SSD_AUG_AVX2
    if (simd && ssd_augment_simd_available()) i = blend_const_avx2(im->px, n, in1, f);
#endif
    (void)simd;
    uint8_t lut[256];
    for (int v = 0; v < 256; v++) lut[v] = blend_px(in1, v, f);
    apply_lut(im->px + i, n - i, lut);
}

void ssd_pil_brightness_simd(ssd_image *im, float f, int simd) {
    if (f == 1.0f) return; /* Image.blend(black, im, 1.0) is a copy of im */
    blend_const(im, 0, f, simd);
}

void ssd_pil_brightness(ssd_image *im, float f) {
    ssd_pil_brightness_simd(im, f, ssd_augment_simd_available());
}

#ifdef SSD_AUG_AVX2
static size_t gray_sum_avx2(const uint8_t *p, size_t n, int l_round, uint64_t *sum);
#endif

void ssd_pil_contrast_simd(ssd_image *im, float f, int l_round, int simd) {
    if (f == 1.0f) return;
    size_t n = (size_t)im->w * im->h, i = 0;
    uint64_t sum = 0;
#ifdef SSD_AUG_AVX2
    if (simd && ssd_augment_simd_available()) i = gray_sum_avx2(im->px, n, l_round, &sum);
#endif
    (void)simd;
    for (; i < n; i++) sum += (uint64_t)gray_px(im->px + 3 * i, l_round);
    /* ImageStat: the histogram's sum (exact in a double) over the pixel count. */
    double mean = (double)sum / (double)n;
    int m = (int)(mean + 0.5);
    blend_const(im, m, f, simd);
}

void ssd_pil_contrast(ssd_image *im, float f, int l_round) {
    ssd_pil_contrast_simd(im, f, l_round, ssd_augment_simd_available());
}

static void saturation_c(uint8_t *p, size_t n, float f, int l_round) {
    /* alpha * (p - L) for every difference; then L + that, per channel. */
    float prod[511];
    for (int d = -255; d <= 255; d++) prod[d + 255] = f * (float)d;
    for (size_t i = 0; i < n; i++, p += 3) {
        int l = gray_px(p, l_round);
        float lf = (float)l;
        for (int c = 0; c < 3; c++) {
            float t = lf + prod[p[c] - l + 255];
            p[c] = t <= 0.0f ? 0 : t >= 255.0f ? 255 : (uint8_t)t;
        }
    }
}

#ifdef SSD_AUG_AVX2
/* 8 pixels <-> three vectors of 8 int32 (R, G, B). load8 reads 28 bytes (4 past the pixels). */
__attribute__((target("avx2"))) static inline void load8(const uint8_t *p, __m256i *r, __m256i *g,
                                                         __m256i *b) {
    const __m128i planar = _mm_setr_epi8(0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11, -1, -1, -1, -1);
    __m128i a = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)p), planar);
    __m128i c = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 12)), planar);
    __m128i rg = _mm_unpacklo_epi32(a, c); /* R0-3 R4-7 G0-3 G4-7 */
    __m128i bb = _mm_unpackhi_epi32(a, c); /* B0-3 B4-7 */
    *r = _mm256_cvtepu8_epi32(rg);
    *g = _mm256_cvtepu8_epi32(_mm_srli_si128(rg, 8));
    *b = _mm256_cvtepu8_epi32(bb);
}

/* Writes exactly 24 bytes; r, g, b hold values in 0..255. */
__attribute__((target("avx2"))) static inline void store8(uint8_t *p, __m256i r, __m256i g,
                                                          __m256i b) {
    const __m128i inter = _mm_setr_epi8(0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, -1, -1, -1, -1);
    __m128i r8 = _mm_packus_epi16(_mm_packus_epi32(_mm256_castsi256_si128(r),
                                                   _mm256_extracti128_si256(r, 1)), _mm_setzero_si128());
    __m128i g8 = _mm_packus_epi16(_mm_packus_epi32(_mm256_castsi256_si128(g),
                                                   _mm256_extracti128_si256(g, 1)), _mm_setzero_si128());
    __m128i b8 = _mm_packus_epi16(_mm_packus_epi32(_mm256_castsi256_si128(b),
                                                   _mm256_extracti128_si256(b, 1)), _mm_setzero_si128());
    __m128i t0 = _mm_unpacklo_epi32(r8, g8);                 /* R0-3 G0-3 R4-7 G4-7 */
    __m128i t1 = _mm_unpacklo_epi32(b8, _mm_setzero_si128()); /* B0-3 0 B4-7 0 */
    __m128i lo = _mm_shuffle_epi8(_mm_unpacklo_epi64(t0, t1), inter);
    __m128i hi = _mm_shuffle_epi8(_mm_unpackhi_epi64(t0, t1), inter);
    uint8_t buf[32];
    _mm_storeu_si128((__m128i *)buf, lo);
    _mm_storeu_si128((__m128i *)(buf + 12), hi); /* overwrites lo's 4 padding bytes */
    memcpy(p, buf, 24);
}

/* Pillow's L of 8 pixels (int32 lanes). */
__attribute__((target("avx2"))) static inline __m256i gray8(__m256i r, __m256i g, __m256i b,
                                                            int l_round) {
    __m256i s = _mm256_add_epi32(_mm256_mullo_epi32(r, _mm256_set1_epi32(19595)),
                                 _mm256_mullo_epi32(g, _mm256_set1_epi32(38470)));
    s = _mm256_add_epi32(s, _mm256_mullo_epi32(b, _mm256_set1_epi32(7471)));
    s = _mm256_add_epi32(s, _mm256_set1_epi32(l_round ? 0x8000 : 0));
    return _mm256_srli_epi32(s, 16);
}

/* blend(L, c, f) for 8 lanes: float32 L + f * (c - L), clipped to 0..255, truncated. */
__attribute__((target("avx2"))) static inline __m256i blend8(__m256i l, __m256 lf, __m256i c,
                                                             __m256 f) {
    __m256 d = _mm256_cvtepi32_ps(_mm256_sub_epi32(c, l));
    __m256 t = _mm256_add_ps(lf, _mm256_mul_ps(f, d));
    t = _mm256_min_ps(_mm256_max_ps(t, _mm256_setzero_ps()), _mm256_set1_ps(255.0f));
    return _mm256_cvttps_epi32(t);
}

/* Sum of L over the first pixels (8 at a time); returns how many were summed. */
__attribute__((target("avx2"))) static size_t gray_sum_avx2(const uint8_t *p, size_t n,
                                                            int l_round, uint64_t *sum) {
    size_t i = 0;
    while (i + 10 <= n) {
        /* int32 lanes hold at most 255 * 2^20 here */
        size_t stop = n - 10 - i > ((size_t)1 << 23) ? i + ((size_t)1 << 23) : n - 10;
        __m256i acc = _mm256_setzero_si256();
        for (; i <= stop; i += 8) {
            __m256i r, g, b;
            load8(p + 3 * i, &r, &g, &b);
            acc = _mm256_add_epi32(acc, gray8(r, g, b, l_round));
        }
        uint32_t lanes[8];
        _mm256_storeu_si256((__m256i *)lanes, acc);
        for (int k = 0; k < 8; k++) *sum += lanes[k];
    }
    return i;
}

__attribute__((target("avx2"))) static void saturation_avx2(uint8_t *p, size_t n, float f,
                                                            int l_round) {
    __m256 fv = _mm256_set1_ps(f);
    size_t i = 0;
    for (; i + 10 <= n; i += 8, p += 24) { /* i + 10: load8's 4 extra bytes stay inside */
        __m256i r, g, b;
        load8(p, &r, &g, &b);
        __m256i l = gray8(r, g, b, l_round);
        __m256 lf = _mm256_cvtepi32_ps(l);
        store8(p, blend8(l, lf, r, fv), blend8(l, lf, g, fv), blend8(l, lf, b, fv));
    }
    saturation_c(p, n - i, f, l_round);
}
#endif

void ssd_pil_saturation_simd(ssd_image *im, float f, int l_round, int simd) {
    if (f == 1.0f) return; /* Image.blend(gray, im, 1.0) is a copy of im */
    size_t n = (size_t)im->w * im->h;
#ifdef SSD_AUG_AVX2
    if (simd && ssd_augment_simd_available()) {
        saturation_avx2(im->px, n, f, l_round);
        return;
    }
#endif
    (void)simd;
    saturation_c(im->px, n, f, l_round);
}

void ssd_pil_saturation(ssd_image *im, float f, int l_round) {
    ssd_pil_saturation_simd(im, f, l_round, ssd_augment_simd_available());
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

#ifdef SSD_AUG_AVX2
/* round() of 4 doubles >= 0, to int32: trunc(x) + (x - trunc(x) >= 0.5), exact. */
__attribute__((target("avx2"))) static inline __m128i round_pos4(__m256d x) {
    __m256d t = _mm256_round_pd(x, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256d up = _mm256_cmp_pd(_mm256_sub_pd(x, t), _mm256_set1_pd(0.5), _CMP_GE_OQ);
    return _mm256_cvttpd_epi32(_mm256_add_pd(t, _mm256_and_pd(up, _mm256_set1_pd(1.0))));
}

__attribute__((target("avx2"))) static inline __m256d lo4_pd(__m256 v) {
    return _mm256_cvtps_pd(_mm256_castps256_ps128(v));
}
__attribute__((target("avx2"))) static inline __m256d hi4_pd(__m256 v) {
    return _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
}

/* Pillow's hue byte of 4 pixels from h = (off + first) - second (double, stored to a float):
 * h = fmod(h / 6 + 1, 1) (stored to a float), then (int)(h * 255). */
__attribute__((target("avx2"))) static inline __m128i hue_byte4(__m256d off, __m256d first,
                                                                __m256d second) {
    const __m256d one = _mm256_set1_pd(1.0);
    __m256d hd = _mm256_sub_pd(_mm256_add_pd(off, first), second);
    __m256d h = _mm256_cvtps_pd(_mm256_cvtpd_ps(hd));
    __m256d hh = _mm256_add_pd(_mm256_div_pd(h, _mm256_set1_pd(6.0)), one);
    hh = _mm256_sub_pd(hh, _mm256_and_pd(_mm256_cmp_pd(hh, one, _CMP_GE_OQ), one));
    __m256d h2 = _mm256_cvtps_pd(_mm256_cvtpd_ps(hh));
    return _mm256_cvttpd_epi32(_mm256_mul_pd(h2, _mm256_set1_pd(255.0)));
}

/* hue_px for 8 pixels at once, branch-free; same operations in the same precisions. The
 * r/g/b-is-max cases are one formula, h = (off + first) - second in double with off 0, 2, 4:
 * for off 0 the double difference of the two floats is exact, so rounding it to float equals
 * the float subtraction Pillow does in that case. */
__attribute__((target("avx2"))) static void hue_avx2(uint8_t *p, size_t n, int shift,
                                                     const hsv_tabs *tb) {
    const __m256 one_f = _mm256_set1_ps(1.0f);
    const __m256d one = _mm256_set1_pd(1.0), c255 = _mm256_set1_pd(255.0);
    const __m256i zero = _mm256_setzero_si256(), max8 = _mm256_set1_epi32(255);
    const __m256i sh = _mm256_set1_epi32(shift);
    size_t i = 0;
    for (; i + 10 <= n; i += 8, p += 24) {
        __m256i r, g, b;
        load8(p, &r, &g, &b);
        __m256i mx = _mm256_max_epi32(r, _mm256_max_epi32(g, b));
        __m256i mn = _mm256_min_epi32(r, _mm256_min_epi32(g, b));
        __m256i gray = _mm256_cmpeq_epi32(mx, mn);
        if (_mm256_movemask_epi8(gray) == -1) continue; /* all gray: unchanged */
        __m256 grayf = _mm256_castsi256_ps(gray);
        /* gray lanes get cr = mx = 1 (finite, ignored at the end) */
        __m256 cr = _mm256_blendv_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(mx, mn)), one_f, grayf);
        __m256 mxf = _mm256_blendv_ps(_mm256_cvtepi32_ps(mx), one_f, grayf);
        __m256 s = _mm256_div_ps(cr, mxf);
        __m256 rc = _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(mx, r)), cr);
        __m256 gc = _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(mx, g)), cr);
        __m256 bc = _mm256_div_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(mx, b)), cr);
        __m256 rmax = _mm256_castsi256_ps(_mm256_cmpeq_epi32(r, mx));
        __m256 gmax = _mm256_andnot_ps(rmax, _mm256_castsi256_ps(_mm256_cmpeq_epi32(g, mx)));
        __m256 first = _mm256_blendv_ps(_mm256_blendv_ps(gc, rc, gmax), bc, rmax);
        __m256 second = _mm256_blendv_ps(_mm256_blendv_ps(rc, bc, gmax), gc, rmax);
        __m256 off = _mm256_blendv_ps(_mm256_blendv_ps(_mm256_set1_ps(4.0f), _mm256_set1_ps(2.0f), gmax),
                                      _mm256_setzero_ps(), rmax);
        __m128i h_lo = hue_byte4(lo4_pd(off), lo4_pd(first), lo4_pd(second));
        __m128i h_hi = hue_byte4(hi4_pd(off), hi4_pd(first), hi4_pd(second));
        __m128i s_lo = _mm256_cvttpd_epi32(_mm256_mul_pd(lo4_pd(s), c255));
        __m128i s_hi = _mm256_cvttpd_epi32(_mm256_mul_pd(hi4_pd(s), c255));
        __m256i H = _mm256_min_epi32(_mm256_max_epi32(_mm256_set_m128i(h_hi, h_lo), zero), max8);
        __m256i S = _mm256_min_epi32(_mm256_max_epi32(_mm256_set_m128i(s_hi, s_lo), zero), max8);
        H = _mm256_and_si256(_mm256_add_epi32(H, sh), max8);
        __m256 f = _mm256_i32gather_ps(tb->frac, H, 4);
        __m256i sec = _mm256_i32gather_epi32(tb->sector, H, 4);
        __m256 fs = _mm256_i32gather_ps(tb->fs, S, 4);
        __m256 fsf = _mm256_mul_ps(fs, f);
        /* p = round(v (1 - fs)), q = round(v (1 - fs f)) with fs f a float product,
         * t = round(v (1 - fs (1 - f))) in double */
        __m256d v_lo = _mm256_cvtepi32_pd(_mm256_castsi256_si128(mx));
        __m256d v_hi = _mm256_cvtepi32_pd(_mm256_extracti128_si256(mx, 1));
        __m256d fs_lo = lo4_pd(fs), fs_hi = hi4_pd(fs), f_lo = lo4_pd(f), f_hi = hi4_pd(f);
        __m256i P8 = _mm256_set_m128i(round_pos4(_mm256_mul_pd(v_hi, _mm256_sub_pd(one, fs_hi))),
                                      round_pos4(_mm256_mul_pd(v_lo, _mm256_sub_pd(one, fs_lo))));
        __m256i Q8 = _mm256_set_m128i(
            round_pos4(_mm256_mul_pd(v_hi, _mm256_sub_pd(one, hi4_pd(fsf)))),
            round_pos4(_mm256_mul_pd(v_lo, _mm256_sub_pd(one, lo4_pd(fsf)))));
        __m256d ct_lo = _mm256_sub_pd(one, _mm256_mul_pd(fs_lo, _mm256_sub_pd(one, f_lo)));
        __m256d ct_hi = _mm256_sub_pd(one, _mm256_mul_pd(fs_hi, _mm256_sub_pd(one, f_hi)));
        __m256i T8 = _mm256_set_m128i(round_pos4(_mm256_mul_pd(v_hi, ct_hi)),
                                      round_pos4(_mm256_mul_pd(v_lo, ct_lo)));
        __m256i m0 = _mm256_cmpeq_epi32(sec, zero), m1 = _mm256_cmpeq_epi32(sec, _mm256_set1_epi32(1));
        __m256i m2 = _mm256_cmpeq_epi32(sec, _mm256_set1_epi32(2)), m3 = _mm256_cmpeq_epi32(sec, _mm256_set1_epi32(3));
        __m256i m4 = _mm256_cmpeq_epi32(sec, _mm256_set1_epi32(4)), m5 = _mm256_cmpeq_epi32(sec, _mm256_set1_epi32(5));
        /* sector -> (R, G, B): 0 (v,t,p) 1 (q,v,p) 2 (p,v,t) 3 (p,q,v) 4 (t,p,v) 5 (v,p,q) */
        __m256i R = T8;
        R = _mm256_blendv_epi8(R, P8, _mm256_or_si256(m2, m3));
        R = _mm256_blendv_epi8(R, Q8, m1);
        R = _mm256_blendv_epi8(R, mx, _mm256_or_si256(m0, m5));
        __m256i G = P8;
        G = _mm256_blendv_epi8(G, Q8, m3);
        G = _mm256_blendv_epi8(G, mx, _mm256_or_si256(m1, m2));
        G = _mm256_blendv_epi8(G, T8, m0);
        __m256i B = Q8;
        B = _mm256_blendv_epi8(B, mx, _mm256_or_si256(m3, m4));
        B = _mm256_blendv_epi8(B, T8, m2);
        B = _mm256_blendv_epi8(B, P8, _mm256_or_si256(m0, m1));
        /* S == 0 -> (V, V, V); gray pixels keep their value (which is (V, V, V)) */
        __m256i vvv = _mm256_or_si256(gray, _mm256_cmpeq_epi32(S, zero));
        R = _mm256_min_epi32(_mm256_max_epi32(_mm256_blendv_epi8(R, mx, vvv), zero), max8);
        G = _mm256_min_epi32(_mm256_max_epi32(_mm256_blendv_epi8(G, mx, vvv), zero), max8);
        B = _mm256_min_epi32(_mm256_max_epi32(_mm256_blendv_epi8(B, mx, vvv), zero), max8);
        store8(p, R, G, B);
    }
    for (; i < n; i++, p += 3) hue_px(p, shift, tb);
}
#endif

void ssd_pil_hue_simd(ssd_image *im, float h, int simd) {
    SSD_ASSERT(h >= -0.5f && h <= 0.5f, "hue factor %g outside [-0.5, 0.5]", (double)h);
    /* np.uint8(h * 255): truncation toward zero, negatives wrap modulo 256 (x86 numpy). */
    int shift = (int)((double)h * 255.0) & 255;
    hsv_tabs tb;
    hsv_tabs_init(&tb);
    size_t n = (size_t)im->w * im->h;
    uint8_t *p = im->px;
#ifdef SSD_AUG_AVX2
    if (simd && ssd_augment_simd_available()) {
        hue_avx2(p, n, shift, &tb);
        return;
    }
#endif
    (void)simd;
    for (size_t i = 0; i < n; i++, p += 3) hue_px(p, shift, &tb);
}

void ssd_pil_hue(ssd_image *im, float h) { ssd_pil_hue_simd(im, h, ssd_augment_simd_available()); }

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
    resize_view(ws, whole_view(decoded), 0, im->px, SSD_AUG_SIZE, SSD_AUG_SIZE, &ws->tmp);
    ssd_image_to_chw_normalized(im, out_chw);
}
