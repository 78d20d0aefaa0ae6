/* Pillow-exact colour operations and ToTensor + Normalize for data/augment
 * (spec/ssd-reference.md 6.2 steps 4-6 and 6.4).
 *
 * Brightness, contrast and saturation are ImageEnhance's Image.blend(degenerate, image, f):
 * in1 + f * (in2 - in1) in float32, truncated, clipped to 0..255 when f is outside [0, 1]
 * (clipping always gives the same bytes, since inside [0, 1] the value cannot leave the
 * range). The degenerate images are black, the constant int(mean(L) + 0.5), and L itself, with
 * Pillow's L = (19595 R + 38470 G + 7471 B) >> 16 (Pillow 5.2.0) or with + 0x8000 before the
 * shift (Pillow >= 8, l_round = 1). Hue is torchvision's adjust_hue: Pillow's RGB -> HSV, H
 * shifted by np.uint8(h * 255) (truncation toward zero, negatives wrap), HSV -> RGB, every step
 * in Pillow's own float/double mix. ToTensor + Normalize is ((v / 255) - mean) / std in float32.
 *
 * Where the output depends on one byte the work is a 256-entry table (ToTensor + Normalize,
 * the constant blends on the portable path); AVX2 kernels (run-time dispatch, identical bytes)
 * do the constant blends, the contrast mean, saturation and hue 8 pixels at a time. Each
 * rounding step is its own statement: no multiply-add may be fused (GCC in ISO C mode does not
 * contract; clang is told so by the pragma). */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "data/augment_impl.h"
#include "data/augment_internal.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* ImageNet normalisation (spec 6.2 step 6), float32 like torchvision's Normalize. */
static const float k_mean[3] = {0.485f, 0.456f, 0.406f};
static const float k_std[3] = {0.229f, 0.224f, 0.225f};

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
    __m128i r8 = _mm_packus_epi16(
        _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1)),
        _mm_setzero_si128());
    __m128i g8 = _mm_packus_epi16(
        _mm_packus_epi32(_mm256_castsi256_si128(g), _mm256_extracti128_si256(g, 1)),
        _mm_setzero_si128());
    __m128i b8 = _mm_packus_epi16(
        _mm_packus_epi32(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1)),
        _mm_setzero_si128());
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
        __m256 off =
            _mm256_blendv_ps(_mm256_blendv_ps(_mm256_set1_ps(4.0f), _mm256_set1_ps(2.0f), gmax),
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
        __m256i m0 = _mm256_cmpeq_epi32(sec, zero),
                m1 = _mm256_cmpeq_epi32(sec, _mm256_set1_epi32(1));
        __m256i m2 = _mm256_cmpeq_epi32(sec, _mm256_set1_epi32(2)),
                m3 = _mm256_cmpeq_epi32(sec, _mm256_set1_epi32(3));
        __m256i m4 = _mm256_cmpeq_epi32(sec, _mm256_set1_epi32(4)),
                m5 = _mm256_cmpeq_epi32(sec, _mm256_set1_epi32(5));
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

