/* Pillow-exact BILINEAR resize, crop and flip for data/augment (spec/ssd-reference.md 6.4).
 *
 * Resize is Pillow's ImagingResampleInner with the bilinear filter: per axis, weights computed
 * in double exactly as precompute_coeffs does (same operations, same order), rounded to 22-bit
 * fixed point; a horizontal pass first, over only the source rows the vertical pass reads, then
 * a vertical pass, each accumulating in int32 from 2^21 and clamping (acc >> 22) to a byte; a
 * pass is skipped when its axis keeps its size, and an unchanged size is a copy. Pillow 5.2.0
 * and 9.4 agree on all of it, so python3-pil is an exact oracle.
 *
 * The weights of each (in, out) size pair are cached (16 pairs, least recently used out) in the
 * resize state; zero weights at the ends of a tap run are trimmed (they add nothing). The
 * training transform never materialises its crop or flip: it resizes a window of the decoded
 * image in place, and for a flipped sample uses the weights mirrored (start' = in - start - n,
 * the same integers reversed), which is exactly resize(flip(window)); when there is no
 * horizontal pass the mirror is applied to the output, with which it then commutes.
 *
 * AVX2 kernels (run-time dispatch, identical bytes): the horizontal pass takes 4 taps per step
 * with pmaddwd on weights split into 11-bit halves, two rows at a time; the vertical pass takes
 * 32 bytes of a row per step with 32-bit multiplies. Buffers only grow: no allocation in the
 * steady state. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "data/augment_impl.h"
#include "data/augment_internal.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* the weights' double arithmetic must round like Pillow's */
#endif

#define RS_BITS 22                   /* Pillow's PRECISION_BITS for 8-bit images */
#define RS_HALF (1 << (RS_BITS - 1)) /* rounding term of the accumulator */
#define RS_CACHE 16                  /* cached (in, out) weight tables */

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
/* Weight cache and scratch                                                                */
/* ====================================================================================== */

struct ssd_rs_state {
    rs_axis cache[RS_CACHE];
    unsigned tick;
    rs_axis mirror; /* mirrored horizontal weights of the current sample */
    int32_t *acc;   /* vertical pass accumulators (portable path) */
    size_t acc_cap;
    int simd;       /* use the AVX2 kernels (set by ssd_rs_resize) */
};

ssd_rs_state *ssd_rs_state_create(void) { return ssd_xcalloc(1, sizeof(ssd_rs_state)); }

void ssd_rs_state_destroy(ssd_rs_state *st) {
    if (!st) return;
    for (int i = 0; i < RS_CACHE; i++) rs_free(&st->cache[i]);
    rs_free(&st->mirror);
    free(st->acc);
    free(st);
}

int ssd_augment_simd_available(void) {
#ifdef SSD_AUG_AVX2
    /* the CPU model is filled by a libgcc / compiler-rt constructor: a read, thread-safe */
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

static const rs_axis *rs_get(ssd_rs_state *st, int in, int out) {
    unsigned tick = ++st->tick;
    int victim = 0;
    for (int i = 0; i < RS_CACHE; i++) {
        rs_axis *a = &st->cache[i];
        if (a->in == in && a->out == out) {
            a->last_use = tick;
            if (st->simd && !a->has16) rs_build16(a);
            return a;
        }
        if (a->last_use < st->cache[victim].last_use) victim = i;
    }
    rs_axis *a = &st->cache[victim];
    rs_compute(a, in, out);
    if (st->simd) rs_build16(a);
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
/* Sums the 4-tap groups of one output for one row (lo and hi weight halves). */
__attribute__((target("avx2"))) static inline __m128i hsum_row(__m256i lo, __m256i hi) {
    __m256i sum = _mm256_add_epi32(_mm256_slli_epi32(hi, RS_SPLIT), lo);
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    return _mm_srai_epi32(_mm_add_epi32(s, _mm_set1_epi32(RS_HALF)), RS_BITS);
}

/* Horizontal pass, 4 taps per step: one 16-byte load holds taps t..t+3 (12 bytes); a byte
 * shuffle makes (R_t, R_t+1, G_t, G_t+1, B_t, B_t+1, 0, 0) 16-bit words in the low lane and
 * the same for t+2, t+3 in the high lane; two pmaddwd with the split weights (rs_build16)
 * give the exact 32-bit sums. Two rows at a time share the weight loads and the final
 * packing. Loads read up to 15 bytes past the last tap's pixel: `end` (the end of the source
 * buffer) sends the few outputs where that would leave it to the portable code. */
__attribute__((target("avx2"))) static void hpass_avx2(const uint8_t *src, ptrdiff_t stride,
                                                       int rows, const rs_axis *c, uint8_t *dst,
                                                       const uint8_t *end) {
    const __m256i shuf =
        _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1, 6, -1, 9, -1, 7,
                         -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
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
                    _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p0 + 12 * g))),
                    shuf);
                __m256i x1 = _mm256_shuffle_epi8(
                    _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p1 + 12 * g))),
                    shuf);
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

static void hpass(const ssd_rs_state *st, const uint8_t *src, ptrdiff_t stride, int rows,
                  const rs_axis *c, uint8_t *dst, const uint8_t *end) {
#ifdef SSD_AUG_AVX2
    if (st->simd) {
        hpass_avx2(src, stride, rows, c, dst, end);
        return;
    }
#endif
    (void)end;
    hpass_c(src, stride, rows, c, dst);
}

static void vpass(ssd_rs_state *st, const uint8_t *src, ptrdiff_t stride, int wbytes,
                  const rs_axis *c, int row0, uint8_t *dst) {
#ifdef SSD_AUG_AVX2
    if (st->simd) {
        vpass_avx2(src, stride, wbytes, c, row0, dst);
        return;
    }
#endif
    if ((size_t)wbytes > st->acc_cap) {
        free(st->acc);
        st->acc = ssd_xmalloc((size_t)wbytes * sizeof *st->acc);
        st->acc_cap = (size_t)wbytes;
    }
    vpass_c(src, stride, wbytes, c, row0, dst, st->acc);
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

/* Pillow's ImagingResampleInner on a window of the source, optionally mirrored first. */
void ssd_rs_resize(ssd_rs_state *st, int simd, ssd_rs_view src, int mirror, uint8_t *out, int ow,
                   int oh, ssd_image *tmp) {
    st->simd = simd && ssd_augment_simd_available();
    SSD_ASSERT(src.w > 0 && src.h > 0 && ow > 0 && oh > 0, "resize %dx%d -> %dx%d", src.w, src.h,
               ow, oh);
    int need_h = src.w != ow, need_v = src.h != oh;
    ptrdiff_t ostride = (ptrdiff_t)ow * 3;
    if (need_h) {
        const rs_axis *hx = rs_get(st, src.w, ow);
        if (mirror) {
            rs_mirror(hx, &st->mirror);
            if (st->simd) rs_build16(&st->mirror);
            hx = &st->mirror;
        }
        if (!need_v) {
            hpass(st, src.px, src.stride, src.h, hx, out, src.end);
            return;
        }
        const rs_axis *vy = rs_get(st, src.h, oh);
        /* Only the source rows some output row reads. */
        int y0 = src.h, y1 = 0;
        for (int o = 0; o < oh; o++) {
            if (vy->count[o] == 0) continue;
            if (vy->start[o] < y0) y0 = vy->start[o];
            if (vy->start[o] + vy->count[o] > y1) y1 = vy->start[o] + vy->count[o];
        }
        if (y1 <= y0) y0 = 0, y1 = 1;
        ssd_image_reserve(tmp, ow, y1 - y0);
        hpass(st, src.px + (ptrdiff_t)y0 * src.stride, src.stride, y1 - y0, hx, tmp->px, src.end);
        vpass(st, tmp->px, ostride, (int)ostride, vy, y0, out);
        return;
    }
    if (need_v) {
        const rs_axis *vy = rs_get(st, src.h, oh);
        vpass(st, src.px, src.stride, (int)ostride, vy, 0, out);
    } else {
        for (int y = 0; y < oh; y++)
            memcpy(out + y * ostride, src.px + y * src.stride, (size_t)ostride);
    }
    /* Without a horizontal pass every column is filtered alike, so mirroring commutes. */
    if (mirror) flip_rows(out, ow, oh);
}

ssd_rs_view ssd_rs_whole(const ssd_image *im) {
    ssd_rs_view v = {im->px, (ptrdiff_t)im->w * 3, im->w, im->h,
                     im->px + (size_t)im->w * (size_t)im->h * 3};
    return v;
}

void ssd_pil_resize_bilinear(const ssd_image *in, ssd_image *out, int ow, int oh,
                             ssd_image *tmp) {
    SSD_ASSERT(in != out && tmp != in && tmp != out, "resize buffers must differ");
    ssd_rs_state *st = ssd_rs_state_create();
    ssd_image_reserve(out, ow, oh);
    ssd_rs_resize(st, 1, ssd_rs_whole(in), 0, out->px, ow, oh, tmp);
    ssd_rs_state_destroy(st);
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

