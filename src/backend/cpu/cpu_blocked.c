/* f32 activations in nChw16c (the cpu backend's f32 activation form on AVX-512 CPUs; backend.h):
 * batch norm and max-pool, our own loops. ReLU and the elementwise ops need nothing new: they
 * run over the dense elements in any order, and nChw16c with C a multiple of 16 has no padding.
 *
 * A tensor is N*C/16 blocks of H*W rows of 16 channels; each block (n, cb) is one image's 16
 * channels, contiguous. Every loop here computes, for each channel, exactly the operations of
 * the row-major loops in cpu_bn.c and cpu_pool_eltwise.c in exactly their order: the statistics
 * sum image by image in blocks of BLOCK values with LANES fixed partial sums, in double across
 * blocks; max-pool scans windows in row-major order and adds routed gradients in output order.
 * Only the 16 channels of a block now run side by side (vectorised by the compiler: `omp simd`
 * over them). So the results are the row-major path's, bit for bit (test_blocked_f32 checks
 * it), and the f32 training step computes the same numbers in either form.
 *
 * Compiled with AVX-512 and -ffp-contract=off (CMakeLists.txt): the backend picks this form only
 * on CPUs with avx512f, and no contraction keeps the row-major loops' roundings. Work is split
 * over 16-channel blocks (batch norm: its statistics need all images of a channel) or over
 * (image, block) pairs (max-pool). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/par.h"

#define CW 16    /* channels per block */
#define BLOCK CPU_BN_BLOCK
#define LANES CPU_BN_LANES

typedef struct blk_geom {
    int64_t N, CB, HW; /* images, 16-channel blocks, pixels per plane */
} blk_geom;

static blk_geom blk_geom_of(const ssd_tensor *t) {
    return (blk_geom){t->shape[0], t->shape[1] / CW, t->shape[2] * t->shape[3]};
}

/* first element of block (n, cb) */
static inline int64_t blk_off(blk_geom g, int64_t n, int64_t cb) {
    return (n * g.CB + cb) * g.HW * CW;
}

/* s[j] = the sum over channel cb*16 + j of (x - shift[j]), or of its square when sq, in
 * cpu_bn.c's channel_sum order. */
static inline __attribute__((always_inline)) void blk_sums(const float *x, blk_geom g, int64_t cb,
                                                            const float *shift, bool sq,
                                                            double *s) {
    for (int j = 0; j < CW; j++) s[j] = 0.0;
    for (int64_t n = 0; n < g.N; n++) {
        const float *p = x + blk_off(g, n, cb);
        for (int64_t i0 = 0; i0 < g.HW; i0 += BLOCK) {
            const int64_t i1 = i0 + BLOCK < g.HW ? i0 + BLOCK : g.HW;
            float acc[LANES][CW], tail[CW];
            memset(acc, 0, sizeof acc);
            memset(tail, 0, sizeof tail);
            int64_t i = i0;
            for (; i + LANES <= i1; i += LANES)
                for (int l = 0; l < LANES; l++) {
                    const float *r = p + (i + l) * CW;
#pragma omp simd
                    for (int j = 0; j < CW; j++) {
                        const float d = r[j] - shift[j];
                        acc[l][j] += sq ? d * d : d;
                    }
                }
            for (; i < i1; i++) {
                const float *r = p + i * CW;
#pragma omp simd
                for (int j = 0; j < CW; j++) {
                    const float d = r[j] - shift[j];
                    tail[j] += sq ? d * d : d;
                }
            }
            for (int j = 0; j < CW; j++) {
                float a[LANES];
                for (int l = 0; l < LANES; l++) a[l] = acc[l][j];
                s[j] += (double)cpu_bn_lanes_total(a, tail[j]);
            }
        }
    }
}

/* y = (x - mean) * a + b (+ res) (ReLU) over block cb of every image */
static void blk_apply(float *y, const float *x, const float *res, blk_geom g, int64_t cb,
                      const float *mean, const float *a, const float *b, bool relu) {
    for (int64_t n = 0; n < g.N; n++) {
        const int64_t o0 = blk_off(g, n, cb);
        for (int64_t i = 0; i < g.HW; i++) {
            const int64_t o = o0 + i * CW;
            if (res) {
#pragma omp simd
                for (int j = 0; j < CW; j++) {
                    const float v = (x[o + j] - mean[j]) * a[j] + b[j] + res[o + j];
                    y[o + j] = relu ? (v > 0.0f ? v : 0.0f) : v;
                }
            } else {
#pragma omp simd
                for (int j = 0; j < CW; j++) {
                    const float v = (x[o + j] - mean[j]) * a[j] + b[j];
                    y[o + j] = relu ? (v > 0.0f ? v : 0.0f) : v;
                }
            }
        }
    }
}

void cpu_blk_bn_train_forward(ssd_backend *be, ssd_tensor *out, ssd_tensor *save_mean,
                              ssd_tensor *save_var, ssd_tensor *running_mean,
                              ssd_tensor *running_var, const ssd_tensor *inp,
                              const ssd_tensor *gamma, const ssd_tensor *beta,
                              const ssd_tensor *residual, const ssd_bn_desc *d) {
    const blk_geom g = blk_geom_of(inp);
    const float *x = inp->data, *res = residual ? residual->data : NULL;
    const float *gm = gamma->data, *bt = beta->data;
    float *y = out->data, *sm = save_mean->data, *sv = save_var->data,
          *rm = running_mean->data, *rv = running_var->data;
    const double count = (double)(g.N * g.HW);
    SSD_PARALLEL_FOR(cb, g.CB, {
        float zero[CW] = {0}, mf[CW], a[CW], b[CW];
        double s[CW], v[CW];
        blk_sums(x, g, cb, zero, false, s);
        for (int j = 0; j < CW; j++) mf[j] = (float)(s[j] / count);
        blk_sums(x, g, cb, mf, true, v);
        for (int j = 0; j < CW; j++) {
            const int64_t c = cb * CW + j;
            double mean;
            const double var = cpu_bn_var(s[j], v[j], count, &mean);
            a[j] = cpu_bn_store_stats(c, mean, var, count, d, gm, sm, sv, rm, rv);
            b[j] = bt[c];
            mf[j] = (float)mean;
        }
        blk_apply(y, x, res, g, cb, mf, a, b, d->relu);
    });
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:bn_nChw16c");
}

void cpu_blk_bn_infer_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                              const ssd_tensor *gamma, const ssd_tensor *beta,
                              const ssd_tensor *running_mean, const ssd_tensor *running_var,
                              const ssd_tensor *residual, const ssd_bn_desc *d) {
    const blk_geom g = blk_geom_of(inp);
    const float *gm = gamma->data, *bt = beta->data, *rm = running_mean->data,
                *rv = running_var->data;
    SSD_PARALLEL_FOR(cb, g.CB, {
        float mean[CW], a[CW], b[CW];
        for (int j = 0; j < CW; j++) {
            const int64_t c = cb * CW + j;
            mean[j] = rm[c];
            a[j] = (float)((double)gm[c] / sqrt((double)rv[c] + d->eps));
            b[j] = bt[c];
        }
        blk_apply(out->data, inp->data, residual ? residual->data : NULL, g, cb, mean, a, b,
                  d->relu);
    });
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:bn_nChw16c");
}

/* sdy[j], sdyx[j]: the sums of dy and dy * (x - mean) over channel cb*16 + j in cpu_bn.c's
 * plane_sums order, dy = v masked where y <= 0 (y given); the masked dy is also written to wr
 * when wr is not NULL (cpu_bn.c's relu_mask into dresidual: the same values). Always inlined:
 * each call has wr NULL or not, so each copy is one plain loop. */
static inline __attribute__((always_inline)) void blk_bwd_sums(const float *x, const float *v,
                                                                const float *y, float *wr,
                                                                blk_geom g, int64_t cb,
                                                                const float *mean, double *sdy,
                                                                double *sdyx) {
    for (int j = 0; j < CW; j++) sdy[j] = sdyx[j] = 0.0;
    for (int64_t n = 0; n < g.N; n++) {
        const int64_t o0 = blk_off(g, n, cb);
        for (int64_t i0 = 0; i0 < g.HW; i0 += BLOCK) {
            const int64_t i1 = i0 + BLOCK < g.HW ? i0 + BLOCK : g.HW;
            float a[LANES][CW], b[LANES][CW], ta[CW], tb[CW];
            memset(a, 0, sizeof a);
            memset(b, 0, sizeof b);
            memset(ta, 0, sizeof ta);
            memset(tb, 0, sizeof tb);
            int64_t i = i0;
            for (; i + LANES <= i1; i += LANES)
                for (int l = 0; l < LANES; l++) {
                    const int64_t o = o0 + (i + l) * CW;
#pragma omp simd
                    for (int j = 0; j < CW; j++) {
                        const float vi = v[o + j], gv = !y || y[o + j] > 0.0f ? vi : 0.0f;
                        if (wr) wr[o + j] = gv;
                        a[l][j] += gv;
                        b[l][j] += gv * (x[o + j] - mean[j]);
                    }
                }
            for (; i < i1; i++) {
                const int64_t o = o0 + i * CW;
#pragma omp simd
                for (int j = 0; j < CW; j++) {
                    const float vi = v[o + j], gv = !y || y[o + j] > 0.0f ? vi : 0.0f;
                    if (wr) wr[o + j] = gv;
                    ta[j] += gv;
                    tb[j] += gv * (x[o + j] - mean[j]);
                }
            }
            for (int j = 0; j < CW; j++) {
                float la[LANES], lb[LANES];
                for (int l = 0; l < LANES; l++) {
                    la[l] = a[l][j];
                    lb[l] = b[l][j];
                }
                sdy[j] += (double)cpu_bn_lanes_total(la, ta[j]);
                sdyx[j] += (double)cpu_bn_lanes_total(lb, tb[j]);
            }
        }
    }
}

typedef struct blk_bwd_args {
    blk_geom g;
    const float *x, *dy_in, *y;
    float *dx, *dres;
    const float *gm, *sm, *sv;
    float *dg, *db;
    double eps;
} blk_bwd_args;

static void blk_bwd_block(const blk_bwd_args *A, int64_t cb) {
    const blk_geom g = A->g;
    const double count = (double)(g.N * g.HW);
    float mean[CW];
    for (int j = 0; j < CW; j++) mean[j] = A->sm[cb * CW + j];
    double sdy[CW], sdyx[CW];
    if (A->dres)
        blk_bwd_sums(A->x, A->dy_in, A->y, A->dres, g, cb, mean, sdy, sdyx);
    else
        blk_bwd_sums(A->x, A->dy_in, A->y, NULL, g, cb, mean, sdy, sdyx);
    const float *v = A->dres ? A->dres : A->dy_in, *ym = A->dres ? NULL : A->y, *x = A->x;
    float ka[CW], kb[CW], kk[CW];
    for (int j = 0; j < CW; j++) {
        cpu_bn_bwd_coeffs(cb * CW + j, sdy[j], sdyx[j], count, A->eps, A->gm, A->sv, A->dg, A->db,
                          &ka[j], &kb[j], &kk[j]);
    }
    float *dx = A->dx;
    for (int64_t n = 0; n < g.N; n++) {
        const int64_t o0 = blk_off(g, n, cb);
        for (int64_t i = 0; i < g.HW; i++) {
            const int64_t o = o0 + i * CW;
            if (ym) {
#pragma omp simd
                for (int j = 0; j < CW; j++) {
                    const float vi = v[o + j], gv = ym[o + j] > 0.0f ? vi : 0.0f;
                    dx[o + j] = ka[j] * (gv - kb[j] - (x[o + j] - mean[j]) * kk[j]);
                }
            } else {
#pragma omp simd
                for (int j = 0; j < CW; j++)
                    dx[o + j] = ka[j] * (v[o + j] - kb[j] - (x[o + j] - mean[j]) * kk[j]);
            }
        }
    }
}

void cpu_blk_bn_backward(ssd_backend *be, ssd_tensor *dinp, ssd_tensor *dresidual,
                         ssd_tensor *dgamma, ssd_tensor *dbeta, const ssd_tensor *dout,
                         const ssd_tensor *out, const ssd_tensor *inp, const ssd_tensor *gamma,
                         const ssd_tensor *save_mean, const ssd_tensor *save_var,
                         const ssd_bn_desc *d) {
    const blk_bwd_args A = {blk_geom_of(inp),
                            inp->data,
                            dout->data,
                            d->relu ? out->data : NULL,
                            dinp->data,
                            dresidual ? dresidual->data : NULL,
                            gamma->data,
                            save_mean->data,
                            save_var->data,
                            dgamma->data,
                            dbeta->data,
                            d->eps};
    SSD_PARALLEL_FOR(cb, A.g.CB, blk_bwd_block(&A, cb););
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:bn_nChw16c");
}

/* ---- maxpool ---- */

/* For output (p, q) of one block ([H][W][16]): each channel's first maximum in row-major window
 * order (a later value wins only when strictly greater; a NaN wins at once and stays) as a pixel
 * index h*W + w, -1 where the window is padding only; best[] gets the maxima. Selects, not
 * branches, so the channel loop vectorises. */
static void blk_window_argmax(int64_t *arg, float *best, const float *xb, int64_t H, int64_t W,
                              int64_t p, int64_t q, const ssd_pool_desc *d) {
    const int64_t h0 = p * d->stride - d->pad, w0 = q * d->stride - d->pad;
    const int64_t ha = h0 < 0 ? 0 : h0, hb = h0 + d->kernel < H ? h0 + d->kernel : H;
    const int64_t wa = w0 < 0 ? 0 : w0, wb = w0 + d->kernel < W ? w0 + d->kernel : W;
    if (ha >= hb || wa >= wb) {
        for (int j = 0; j < CW; j++) arg[j] = -1;
        return;
    }
    const int64_t px0 = ha * W + wa;
#pragma omp simd
    for (int j = 0; j < CW; j++) {
        arg[j] = px0;
        best[j] = xb[px0 * CW + j];
    }
    for (int64_t h = ha; h < hb; h++)
        for (int64_t w = h == ha ? wa + 1 : wa; w < wb; w++) {
            const int64_t px = h * W + w;
            const float *r = xb + px * CW;
#pragma omp simd
            for (int j = 0; j < CW; j++) {
                const float v = r[j], b = best[j];
                /* b == b: the best so far is no NaN (a NaN stays); v != v: v is a NaN */
                const bool take = b == b && (v != v || v > b);
                arg[j] = take ? px : arg[j];
                best[j] = take ? v : b;
            }
        }
}

void cpu_blk_maxpool_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                             const ssd_pool_desc *d) {
    const int64_t NB = inp->shape[0] * inp->shape[1] / CW, H = inp->shape[2], W = inp->shape[3];
    const int64_t P = out->shape[2], Q = out->shape[3];
    const float *x = inp->data;
    float *y = out->data;
    SSD_PARALLEL_FOR(nb, NB, {
        const float *xb = x + nb * H * W * CW;
        float *yb = y + nb * P * Q * CW;
        int64_t arg[CW];
        float best[CW];
        for (int64_t p = 0; p < P; p++)
            for (int64_t q = 0; q < Q; q++) {
                blk_window_argmax(arg, best, xb, H, W, p, q, d);
                float *r = yb + (p * Q + q) * CW;
                for (int j = 0; j < CW; j++) r[j] = arg[j] < 0 ? -INFINITY : best[j];
            }
    });
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:maxpool_nChw16c");
}

/* dinp = 0, then each output's gradient is added to its window's argmax, in output order */
void cpu_blk_maxpool_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                              const ssd_tensor *inp, const ssd_pool_desc *d) {
    const int64_t NB = inp->shape[0] * inp->shape[1] / CW, H = inp->shape[2], W = inp->shape[3];
    const int64_t P = dout->shape[2], Q = dout->shape[3];
    const float *x = inp->data, *dy = dout->data;
    float *dx = dinp->data;
    SSD_PARALLEL_FOR(nb, NB, {
        const float *xb = x + nb * H * W * CW, *gb = dy + nb * P * Q * CW;
        float *db = dx + nb * H * W * CW;
        int64_t arg[CW];
        float best[CW];
        memset(db, 0, (size_t)(H * W * CW) * sizeof(float));
        for (int64_t p = 0; p < P; p++)
            for (int64_t q = 0; q < Q; q++) {
                blk_window_argmax(arg, best, xb, H, W, p, q, d);
                const float *r = gb + (p * Q + q) * CW;
                for (int j = 0; j < CW; j++)
                    if (arg[j] >= 0) db[arg[j] * CW + j] += r[j];
            }
    });
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:maxpool_nChw16c");
}
