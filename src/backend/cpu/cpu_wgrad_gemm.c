/* bf16 weight gradients as GEMMs on oneDNN's bf16 matmul (the native bf16 path's default).
 *
 * Why: oneDNN 2.6.3's bf16 backward-weights convolution (jit:avx512_core_amx_bf16 on AMX) runs
 * at a small fraction of its forward's speed (~30 GFLOP/s on the 256-channel 38x38 layer at 2
 * threads against ~400 for the forward), and the f32 direct kernel on rounded operands is little
 * better (~50-130). The same sums as a matrix product run on the matmul's AMX kernels at
 * 250-500 GFLOP/s (docs/backends.md).
 *
 * What: an f32 NCHW dout (N,K,P,Q) is converted once to bf16 NHWC (a oneDNN reorder into
 * scratch slot 0, the layout and slot where oneDNN's bf16 backward-data wants it, so
 * cpu_conv2d_backward lets that pass use it as it is); a bf16 NHWC dout (the activation form,
 * backend.h) is used as it lies, and a bf16 NHWC input is transposed per image to the NCHW
 * order the im2col reads. Then per image n, with PQ = P*Q output positions and CRS = C*R*S
 * weight entries:
 *   D_n (PQ x K)   = image n of the NHWC dout (row-major as it lies)
 *   B_n (CRS x PQ) = im2col of inp[n] rounded to bf16 (zero where the window leaves the image)
 *   acc (CRS x K) += B_n . D_n   (f32 accumulation of exact bf16 products)
 * then dweight += bf16(acc^T): acc^T is OIHW's K x (C,R,S) order. The bias gradient sums D_n's
 * columns in f32 and is rounded the same way. This is the bf16 rule of cpu_conv.c: operands
 * rounded to bf16, products exact, sums in f32, the gradient rounded to bf16 before it is
 * added; only the summation order differs from the convolution kernels'. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/mem.h"
#include "core/par.h"

typedef struct wgrad_gemm_entry {
    cpu_prim mm;                  /* acc += B . D (sum post-op) */
    dnnl_memory_t b, d, acc;      /* data handles set per call */
    cpu_arg dout;                 /* f32 NCHW -> bf16 NHWC, in CPU_SLOT_0 */
} wgrad_gemm_entry;

static void wgrad_gemm_free(void *p) {
    wgrad_gemm_entry *e = p;
    dnnl_memory_destroy(e->b);
    dnnl_memory_destroy(e->d);
    dnnl_memory_destroy(e->acc);
    cpu_arg_destroy(&e->dout);
    cpu_prim_destroy(&e->mm);
    free(e);
}

/* The matmul (CRS x PQ) . (PQ x K) -> CRS x K f32, adding into its destination, and dout's
 * conversion. */
static wgrad_gemm_entry *wgrad_gemm_get(ssd_backend *be, const cpu_conv_dims *g) {
    cpu_impl *im = cpu_impl_of(be);
    const int64_t K = g->K, PQ = g->P * g->Q, CRS = g->C * g->R * g->S;
    cpu_key k;
    cpu_key_init(&k, SSD_OP_CONV2D_BWD_WEIGHTS, SSD_BF16);
    cpu_key_add(&k, -1); /* not a convolution entry (those have 12 values) */
    const int64_t v[] = {g->N, K, g->P, g->Q, CRS};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) cpu_key_add(&k, v[i]);
    wgrad_gemm_entry *e = cpu_cache_find(&im->cache, &k, &be->stats);
    if (e) return e;
    e = ssd_xcalloc(1, sizeof *e);
    const dnnl_dims_t db = {CRS, PQ}, dd = {PQ, K}, dc = {CRS, K};
    dnnl_memory_desc_t b, d, c;
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&b, 2, db, dnnl_bf16, dnnl_ab));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&d, 2, dd, dnnl_bf16, dnnl_ab));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&c, 2, dc, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t md;
    DNNL_CHECK(dnnl_matmul_desc_init(&md, &b, &d, NULL, &c));
    dnnl_primitive_attr_t attr;
    dnnl_post_ops_t po;
    DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    DNNL_CHECK(dnnl_post_ops_create(&po));
    DNNL_CHECK(dnnl_post_ops_append_sum(po, 1.0f));
    DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, po));
    cpu_prim_create(im, &e->mm, &md, attr, NULL);
    DNNL_CHECK(dnnl_post_ops_destroy(po));
    DNNL_CHECK(dnnl_primitive_attr_destroy(attr));
    DNNL_CHECK(dnnl_memory_create(&e->b, &b, im->engine, DNNL_MEMORY_NONE));
    DNNL_CHECK(dnnl_memory_create(&e->d, &d, im->engine, DNNL_MEMORY_NONE));
    DNNL_CHECK(dnnl_memory_create(&e->acc, &c, im->engine, DNNL_MEMORY_NONE));
    const dnnl_dims_t dy = {g->N, K, g->P, g->Q};
    dnnl_memory_desc_t nchw, nhwc;
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&nchw, 4, dy, dnnl_f32, dnnl_abcd));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&nhwc, 4, dy, dnnl_bf16, dnnl_acdb));
    cpu_arg_init_in(im, &e->dout, &nchw, &nhwc, CPU_SLOT_0);
    cpu_cache_insert(&im->cache, &k, e, wgrad_gemm_free, &be->stats);
    return e;
}

const dnnl_memory_desc_t *cpu_bf16_wgrad_gemm_dout_md(ssd_backend *be, const cpu_conv_dims *g,
                                                      int *slot) {
    wgrad_gemm_entry *e = wgrad_gemm_get(be, g);
    *slot = e->dout.slot;
    const dnnl_memory_desc_t *md = NULL;
    DNNL_CHECK(dnnl_memory_get_memory_desc(e->dout.inner, &md));
    return md;
}

static void round_span(uint16_t *dst, const float *src, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dst[i] = ssd_f32_to_bf16(src[i]);
}

/* sum[k] += row[k] (bf16 widened) for k < K. */
static void add_row(float *sum, const uint16_t *row, int64_t K) {
#pragma omp simd
    for (int64_t k = 0; k < K; k++) sum[k] += ssd_bf16_to_f32(row[k]);
}

/* Row (c, r, s) of the image's im2col from its bf16 channel c (H x W): col[p*Q + q] =
 * xc[p*sh - ph + r][q*sw - pw + s], 0 outside the image. */
static void im2col_row(uint16_t *col, const uint16_t *xc, const cpu_conv_dims *g, int64_t r,
                       int64_t s) {
    /* the q with 0 <= q*sw - pw + s < W: [q0, q1) */
    int64_t q0 = 0, q1 = g->Q;
    while (q0 < g->Q && q0 * g->sw - g->pw + s < 0) q0++;
    while (q1 > q0 && (q1 - 1) * g->sw - g->pw + s >= g->W) q1--;
    for (int64_t p = 0; p < g->P; p++) {
        uint16_t *o = col + p * g->Q;
        const int64_t ih = p * g->sh - g->ph + r;
        if (ih < 0 || ih >= g->H || q0 >= q1) {
            memset(o, 0, (size_t)g->Q * sizeof *o);
            continue;
        }
        const uint16_t *xr = xc + ih * g->W - g->pw + s; /* xr[q*sw] = x[ih][q*sw - pw + s] */
        memset(o, 0, (size_t)q0 * sizeof *o);
        if (g->sw == 1)
            memcpy(o + q0, xr + q0, (size_t)(q1 - q0) * sizeof *o);
        else
            for (int64_t q = q0; q < q1; q++) o[q] = xr[q * g->sw];
        memset(o + q1, 0, (size_t)(g->Q - q1) * sizeof *o);
    }
}

/* xb (C x HW) = the transpose of one bf16 NHWC image x (HW x C), in tiles of TT x TT */
#define TT 32
static void transpose_image(uint16_t *xb, const uint16_t *x, int64_t HW, int64_t C) {
    const int64_t tiles_c = (C + TT - 1) / TT, tiles_hw = (HW + TT - 1) / TT;
    SSD_PARALLEL_FOR_IF(HW * C > 32768, t, tiles_c * tiles_hw, {
        const int64_t c0 = t / tiles_hw * TT, h0 = t % tiles_hw * TT;
        const int64_t c1 = c0 + TT < C ? c0 + TT : C, h1 = h0 + TT < HW ? h0 + TT : HW;
        for (int64_t c = c0; c < c1; c++)
            for (int64_t i = h0; i < h1; i++) xb[c * HW + i] = x[i * C + c];
    });
}

void cpu_bf16_wgrad_gemm(ssd_backend *be, float *dweight, float *dbias, const void *dout,
                         const void *inp, const cpu_conv_dims *g) {
    cpu_impl *im = cpu_impl_of(be);
    const int64_t K = g->K, PQ = g->P * g->Q, RS = g->R * g->S, CRS = g->C * RS;
    wgrad_gemm_entry *e = wgrad_gemm_get(be, g);
    const uint16_t *d = dout; /* a bf16 NHWC dout is D as it lies */
    if (g->ydt != SSD_BF16) {
        cpu_arg_in(be, &e->dout, dout); /* f32 -> bf16 NHWC in slot 0 (left for bwd-data) */
        d = e->dout.inner_ptr;
    }
    uint16_t *b = cpu_slot(im, CPU_SLOT_BF16_1, (size_t)(CRS * PQ) * sizeof *b);
    const int64_t HW = g->H * g->W;
    uint16_t *xb = cpu_slot(im, CPU_SLOT_4, (size_t)(g->C * HW) * sizeof *xb);
    float *acc = cpu_slot(im, CPU_SLOT_BF16_2, (size_t)(CRS * K) * sizeof *acc);
    float *bacc = cpu_slot(im, CPU_SLOT_BF16_3, (size_t)K * sizeof *bacc);
    memset(acc, 0, (size_t)(CRS * K) * sizeof *acc);
    memset(bacc, 0, (size_t)K * sizeof *bacc);
    DNNL_CHECK(dnnl_memory_set_data_handle(e->b, b));
    DNNL_CHECK(dnnl_memory_set_data_handle(e->acc, acc));
    const dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_SRC, e->b}, {DNNL_ARG_WEIGHTS, e->d}, {DNNL_ARG_DST, e->acc}};
    for (int64_t n = 0; n < g->N; n++) {
        const uint16_t *dn = d + n * PQ * K;
        /* the image in bf16 NCHW once (rounded, or transposed from NHWC), then its im2col by
         * copies */
        if (g->xdt == SSD_BF16) {
            transpose_image(xb, (const uint16_t *)inp + n * g->C * HW, HW, g->C);
        } else {
            const float *x = (const float *)inp + n * g->C * HW;
            SSD_PARALLEL_FOR_IF(g->C * HW > 32768, c, g->C,
                                round_span(xb + c * HW, x + c * HW, HW););
        }
        SSD_PARALLEL_FOR_IF(CRS * PQ > 32768, row, CRS, {
            const int64_t c = row / RS, r = (row % RS) / g->S, s = row % g->S;
            im2col_row(b + row * PQ, xb + c * HW, g, r, s);
        });
        DNNL_CHECK(dnnl_memory_set_data_handle(e->d, (void *)dn));
        cpu_prim_exec(im, &e->mm, 3, args);
        cpu_wait(im);
        if (dbias) /* the bias gradient's f32 sums: row by row, each k in its own lane */
            for (int64_t p = 0; p < PQ; p++) add_row(bacc, dn + p * K, K);
    }
    /* dweight (K x CRS) += bf16(acc^T) */
    SSD_PARALLEL_FOR_IF(K * CRS > 32768, k, K, {
        float *dw = dweight + k * CRS;
        for (int64_t i = 0; i < CRS; i++) dw[i] += ssd_bf16_to_f32(ssd_f32_to_bf16(acc[i * K + k]));
    });
    if (dbias)
        for (int64_t k = 0; k < K; k++) dbias[k] += ssd_bf16_to_f32(ssd_f32_to_bf16(bacc[k]));
    cpu_prim_note_impl(be, &e->mm);
    cpu_note_suffix(be, ":matmul");
}
