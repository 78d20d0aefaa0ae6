/* bf16 channels-last activations (native bf16 math; backend.h): batch norm, ReLU, maxpool and
 * the elementwise ops on bf16 NHWC tensors, our own loops.
 *
 * A bf16 NHWC tensor is M = N*H*W rows of C contiguous channels. Work is split into blocks of
 * CB channels (CB bf16 = 64 bytes, one cache line, so two threads never write one line) and,
 * for the row-independent ops, into images. Values are widened to f32, computed in f32 and
 * rounded once to bf16 (ssd_f32_to_bf16, nearest even).
 *
 * Batch norm is the rule of cpu_bn.c (statistics summed in float within blocks of BLOCK values
 * in LANES fixed partial sums, in double across blocks; the same forward and backward
 * formulas), walking each channel's values in row order; only the summation order differs from
 * the NCHW loops. The per-channel outputs (statistics, running statistics, dgamma, dbeta) are
 * f32, as under autocast. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/par.h"

#define CB 32
#define BLOCK CPU_BN_BLOCK
#define LANES CPU_BN_LANES

typedef uint16_t bf16;

static inline float ld(bf16 v) { return ssd_bf16_to_f32(v); }
static inline bf16 st(float v) { return ssd_f32_to_bf16(v); }

/* rows (N*H*W) and channels of an NHWC tensor */
typedef struct nhwc_geom {
    int64_t M, C;
} nhwc_geom;

static nhwc_geom geom_of(const ssd_tensor *t) {
    return (nhwc_geom){t->shape[0] * t->shape[2] * t->shape[3], t->shape[1]};
}

static int64_t nblocks(int64_t C) { return (C + CB - 1) / CB; }

/* For channels c0..c0+cw-1: s[j] = sum over rows of (x - shift[j]), or of its square when sq;
 * row r of a block goes to lane r % LANES (the tail of a block to its own sum). */
static inline __attribute__((always_inline)) void block_sums(const bf16 *x, nhwc_geom g,
                                                              int64_t c0, int cw,
                                                              const float *shift, bool sq,
                                                              double *s) {
    for (int j = 0; j < cw; j++) s[j] = 0.0;
    for (int64_t r0 = 0; r0 < g.M; r0 += BLOCK) {
        const int64_t r1 = r0 + BLOCK < g.M ? r0 + BLOCK : g.M;
        float acc[LANES][CB], tail[CB];
        memset(acc, 0, sizeof acc);
        memset(tail, 0, sizeof tail);
        int64_t r = r0;
        for (; r + LANES <= r1; r += LANES)
            for (int l = 0; l < LANES; l++) {
                const bf16 *p = x + (r + l) * g.C + c0;
#pragma omp simd
                for (int j = 0; j < cw; j++) {
                    const float d = ld(p[j]) - shift[j];
                    acc[l][j] += sq ? d * d : d;
                }
            }
        for (; r < r1; r++) {
            const bf16 *p = x + r * g.C + c0;
#pragma omp simd
            for (int j = 0; j < cw; j++) {
                const float d = ld(p[j]) - shift[j];
                tail[j] += sq ? d * d : d;
            }
        }
        for (int j = 0; j < cw; j++) {
            float a[LANES];
            for (int l = 0; l < LANES; l++) a[l] = acc[l][j];
            s[j] += (double)cpu_bn_lanes_total(a, tail[j]);
        }
    }
}

/* y = bf16((x - mean) * a + b (+ res) (ReLU)) for channels c0..c0+cw-1 of every row */
static void block_apply(bf16 *y, const bf16 *x, const bf16 *res, nhwc_geom g, int64_t c0, int cw,
                        const float *mean, const float *a, const float *b, bool relu) {
    for (int64_t r = 0; r < g.M; r++) {
        const int64_t o = r * g.C + c0;
        if (res) {
#pragma omp simd
            for (int j = 0; j < cw; j++) {
                const float v = (ld(x[o + j]) - mean[j]) * a[j] + b[j] + ld(res[o + j]);
                y[o + j] = st(relu ? (v > 0.0f ? v : 0.0f) : v);
            }
        } else {
#pragma omp simd
            for (int j = 0; j < cw; j++) {
                const float v = (ld(x[o + j]) - mean[j]) * a[j] + b[j];
                y[o + j] = st(relu ? (v > 0.0f ? v : 0.0f) : v);
            }
        }
    }
}

static int block_width(nhwc_geom g, int64_t blk) {
    const int64_t c0 = blk * CB;
    return (int)(g.C - c0 < CB ? g.C - c0 : CB);
}

void cpu_nhwc_bn_train_forward(ssd_backend *be, ssd_tensor *out, ssd_tensor *save_mean,
                               ssd_tensor *save_var, ssd_tensor *running_mean,
                               ssd_tensor *running_var, const ssd_tensor *inp,
                               const ssd_tensor *gamma, const ssd_tensor *beta,
                               const ssd_tensor *residual, const ssd_bn_desc *d) {
    const nhwc_geom g = geom_of(inp);
    const bf16 *x = inp->data, *res = residual ? residual->data : NULL;
    const float *gm = gamma->data, *bt = beta->data;
    bf16 *y = out->data;
    float *sm = save_mean->data, *sv = save_var->data, *rm = running_mean->data,
          *rv = running_var->data;
    const double count = (double)g.M;
    SSD_PARALLEL_FOR(blk, nblocks(g.C), {
        const int64_t c0 = blk * CB;
        const int cw = block_width(g, blk);
        float zero[CB] = {0}, mf[CB], a[CB], b[CB];
        double s[CB], v[CB];
        block_sums(x, g, c0, cw, zero, false, s);
        for (int j = 0; j < cw; j++) mf[j] = (float)(s[j] / count);
        block_sums(x, g, c0, cw, mf, true, v);
        for (int j = 0; j < cw; j++) {
            const int64_t c = c0 + j;
            double mean;
            const double var = cpu_bn_var(s[j], v[j], count, &mean);
            a[j] = cpu_bn_store_stats(c, mean, var, count, d, gm, sm, sv, rm, rv);
            b[j] = bt[c];
            mf[j] = (float)mean;
        }
        block_apply(y, x, res, g, c0, cw, mf, a, b, d->relu);
    });
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:bn_nhwc:bf16");
}

void cpu_nhwc_bn_infer_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                               const ssd_tensor *gamma, const ssd_tensor *beta,
                               const ssd_tensor *running_mean, const ssd_tensor *running_var,
                               const ssd_tensor *residual, const ssd_bn_desc *d) {
    const nhwc_geom g = geom_of(inp);
    const float *gm = gamma->data, *bt = beta->data, *rm = running_mean->data,
                *rv = running_var->data;
    SSD_PARALLEL_FOR(blk, nblocks(g.C), {
        const int64_t c0 = blk * CB;
        const int cw = block_width(g, blk);
        float mean[CB], a[CB], b[CB];
        for (int j = 0; j < cw; j++) {
            const int64_t c = c0 + j;
            mean[j] = rm[c];
            a[j] = (float)((double)gm[c] / sqrt((double)rv[c] + d->eps));
            b[j] = bt[c];
        }
        block_apply(out->data, inp->data, residual ? residual->data : NULL, g, c0, cw, mean, a,
                    b, d->relu);
    });
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:bn_nhwc:bf16");
}

/* dy of one element: v, masked where y <= 0 when y is given */
static inline float masked(const bf16 *v, const bf16 *y, int64_t i) {
    const float vi = ld(v[i]);
    return !y || ld(y[i]) > 0.0f ? vi : 0.0f;
}

/* sdy[j], sdyx[j]: the sums of dy and dy * (x - mean) over the rows for channels c0..c0+cw-1,
 * dy = v masked where y <= 0 (y given); also written to wr when wr is not NULL. Always inlined:
 * each call has wr NULL or not, so each copy is one plain loop. */
static inline __attribute__((always_inline)) void bwd_sums(const bf16 *x, const bf16 *v,
                                                            const bf16 *y, bf16 *wr,
                                                            nhwc_geom g, int64_t c0, int cw,
                                                            const float *mean, double *sdy,
                                                            double *sdyx) {
    for (int j = 0; j < cw; j++) sdy[j] = sdyx[j] = 0.0;
    for (int64_t r0 = 0; r0 < g.M; r0 += BLOCK) {
        const int64_t r1 = r0 + BLOCK < g.M ? r0 + BLOCK : g.M;
        float a[LANES][CB], b[LANES][CB], ta[CB], tb[CB];
        memset(a, 0, sizeof a);
        memset(b, 0, sizeof b);
        memset(ta, 0, sizeof ta);
        memset(tb, 0, sizeof tb);
        int64_t r = r0;
        for (; r + LANES <= r1; r += LANES)
            for (int l = 0; l < LANES; l++) {
                const int64_t o = (r + l) * g.C + c0;
#pragma omp simd
                for (int j = 0; j < cw; j++) {
                    const float gv = masked(v, y, o + j);
                    if (wr) wr[o + j] = st(gv);
                    a[l][j] += gv;
                    b[l][j] += gv * (ld(x[o + j]) - mean[j]);
                }
            }
        for (; r < r1; r++) {
            const int64_t o = r * g.C + c0;
#pragma omp simd
            for (int j = 0; j < cw; j++) {
                const float gv = masked(v, y, o + j);
                if (wr) wr[o + j] = st(gv);
                ta[j] += gv;
                tb[j] += gv * (ld(x[o + j]) - mean[j]);
            }
        }
        for (int j = 0; j < cw; j++) {
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

/* batch norm backward over channels c0..c0+cw-1 (cpu_nhwc_bn_backward) */
typedef struct bn_bwd_args {
    nhwc_geom g;
    const bf16 *x, *dy_in, *y;
    bf16 *dx, *dres;
    const float *gm, *sm, *sv;
    float *dg, *db;
    double eps;
} bn_bwd_args;

static void bn_bwd_block(const bn_bwd_args *A, int64_t blk) {
    const nhwc_geom g = A->g;
    const bf16 *x = A->x, *dy_in = A->dy_in, *y = A->y;
    bf16 *dx = A->dx, *dres = A->dres;
    const float *gm = A->gm, *sm = A->sm, *sv = A->sv;
    float *dg = A->dg, *db = A->db;
    const double count = (double)g.M;
    const int64_t c0 = blk * CB;
    const int cw = block_width(g, blk);
    float mean[CB];
    for (int j = 0; j < cw; j++) mean[j] = sm[c0 + j];
    /* the masked gradient is an output when dresidual is given: written by the sums' pass
     * (exact: a bf16 value or zero), then read back as dy */
    double sdy[CB], sdyx[CB];
    if (dres)
        bwd_sums(x, dy_in, y, dres, g, c0, cw, mean, sdy, sdyx);
    else
        bwd_sums(x, dy_in, y, NULL, g, c0, cw, mean, sdy, sdyx);
    const bf16 *v = dres ? dres : dy_in, *ym = dres ? NULL : y;
    float ka[CB], kb[CB], kk[CB];
    for (int j = 0; j < cw; j++) {
        cpu_bn_bwd_coeffs(c0 + j, sdy[j], sdyx[j], count, A->eps, gm, sv, dg, db, &ka[j], &kb[j],
                          &kk[j]);
    }
    for (int64_t r = 0; r < g.M; r++) {
        const int64_t o = r * g.C + c0;
#pragma omp simd
        for (int j = 0; j < cw; j++) {
            const float gv = masked(v, ym, o + j);
            dx[o + j] = st(ka[j] * (gv - kb[j] - (ld(x[o + j]) - mean[j]) * kk[j]));
        }
    }
}

void cpu_nhwc_bn_backward(ssd_backend *be, ssd_tensor *dinp, ssd_tensor *dresidual,
                          ssd_tensor *dgamma, ssd_tensor *dbeta, const ssd_tensor *dout,
                          const ssd_tensor *out, const ssd_tensor *inp, const ssd_tensor *gamma,
                          const ssd_tensor *save_mean, const ssd_tensor *save_var,
                          const ssd_bn_desc *d) {
    const bn_bwd_args A = {geom_of(inp),  inp->data,     dout->data,
                           d->relu ? out->data : NULL, dinp->data,
                           dresidual ? dresidual->data : NULL, gamma->data, save_mean->data,
                           save_var->data, dgamma->data, dbeta->data, d->eps};
    SSD_PARALLEL_FOR(blk, nblocks(A.g.C), bn_bwd_block(&A, blk););
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:bn_nhwc:bf16");
}

/* ---- elementwise (layout-free: the same loop serves any order of the elements) ---- */

#define NHWC_OMP_MIN 32768

void cpu_bf16_relu_forward(ssd_tensor *out, const ssd_tensor *inp) {
    const int64_t n = ssd_tensor_numel(inp);
    const bf16 *x = inp->data;
    bf16 *y = out->data;
    /* the ReLU of a bf16 value is a bf16 value: no rounding; a NaN stays NaN (torch.relu) */
    SSD_PARALLEL_FOR_IF(n > NHWC_OMP_MIN, i, n, y[i] = ld(x[i]) <= 0.0f ? 0 : x[i];);
}

void cpu_bf16_relu_backward(ssd_tensor *dinp, const ssd_tensor *dout, const ssd_tensor *out) {
    const int64_t n = ssd_tensor_numel(out);
    const bf16 *dy = dout->data, *y = out->data;
    bf16 *dx = dinp->data;
    SSD_PARALLEL_FOR_IF(n > NHWC_OMP_MIN, i, n, dx[i] = ld(y[i]) > 0.0f ? dy[i] : 0;);
}

void cpu_bf16_add(ssd_tensor *out, const ssd_tensor *a, const ssd_tensor *b) {
    const int64_t n = ssd_tensor_numel(a);
    const bf16 *x = a->data, *y = b->data;
    bf16 *o = out->data;
    SSD_PARALLEL_FOR_IF(n > NHWC_OMP_MIN, i, n, o[i] = st(ld(x[i]) + ld(y[i])););
}

void cpu_bf16_fill(ssd_tensor *t, double value) {
    const int64_t n = ssd_tensor_numel(t);
    const bf16 v = st((float)value);
    bf16 *p = t->data;
    SSD_PARALLEL_FOR_IF(n > NHWC_OMP_MIN, i, n, p[i] = v;);
}

void cpu_bf16_scale(ssd_tensor *out, const ssd_tensor *inp, double alpha) {
    const int64_t n = ssd_tensor_numel(inp);
    const float al = (float)alpha;
    const bf16 *x = inp->data;
    bf16 *o = out->data;
    SSD_PARALLEL_FOR_IF(n > NHWC_OMP_MIN, i, n, o[i] = st(al * ld(x[i])););
}

/* ---- maxpool ---- */

/* For output row (n, p, q), channels c0..c0+cw-1: the input row of each channel's first
 * maximum in row-major window order (a later value wins only when strictly greater, a NaN wins
 * at once and stays), -1 where the window is padding only; best[] gets the maxima. Selects, not
 * branches, so the channel loop vectorises. */
static void window_argmax_rows(int64_t *arg, float *best, const bf16 *x, int64_t n, int64_t H,
                               int64_t W, int64_t C, int64_t c0, int cw, int64_t p, int64_t q,
                               const ssd_pool_desc *d) {
    const int64_t h0 = p * d->stride - d->pad, w0 = q * d->stride - d->pad;
    const int64_t ha = h0 < 0 ? 0 : h0, hb = h0 + d->kernel < H ? h0 + d->kernel : H;
    const int64_t wa = w0 < 0 ? 0 : w0, wb = w0 + d->kernel < W ? w0 + d->kernel : W;
    if (ha >= hb || wa >= wb) {
        for (int j = 0; j < cw; j++) arg[j] = -1;
        return;
    }
    const int64_t row0 = (n * H + ha) * W + wa;
    const bf16 *p0 = x + row0 * C + c0;
#pragma omp simd
    for (int j = 0; j < cw; j++) {
        arg[j] = row0;
        best[j] = ld(p0[j]);
    }
    for (int64_t h = ha; h < hb; h++)
        for (int64_t w = h == ha ? wa + 1 : wa; w < wb; w++) {
            const int64_t row = (n * H + h) * W + w;
            const bf16 *px = x + row * C + c0;
#pragma omp simd
            for (int j = 0; j < cw; j++) {
                const float v = ld(px[j]), b = best[j];
                /* b == b: the best so far is no NaN (a NaN stays); v != v: v is a NaN */
                const bool take = b == b && (v != v || v > b);
                arg[j] = take ? row : arg[j];
                best[j] = take ? v : b;
            }
        }
}

void cpu_nhwc_maxpool_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                              const ssd_pool_desc *d) {
    const int64_t N = inp->shape[0], C = inp->shape[1], H = inp->shape[2], W = inp->shape[3];
    const int64_t P = out->shape[2], Q = out->shape[3], NB = nblocks(C);
    const nhwc_geom g = geom_of(inp);
    const bf16 *x = inp->data;
    bf16 *y = out->data;
    const bf16 ninf = 0xff80; /* -inf */
    SSD_PARALLEL_FOR(t, N * NB, {
        const int64_t n = t / NB, c0 = t % NB * CB;
        const int cw = block_width(g, t % NB);
        int64_t arg[CB];
        float best[CB];
        for (int64_t p = 0; p < P; p++)
            for (int64_t q = 0; q < Q; q++) {
                window_argmax_rows(arg, best, x, n, H, W, C, c0, cw, p, q, d);
                bf16 *py = y + ((n * P + p) * Q + q) * C + c0;
                for (int j = 0; j < cw; j++) py[j] = arg[j] < 0 ? ninf : x[arg[j] * C + c0 + j];
            }
    });
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:maxpool_nhwc:bf16");
}

/* dinp = 0, then each output's gradient is added to its window's argmax in output order, the
 * sum rounded to bf16 at each addition (PyTorch's bf16 maxpool backward adds into its bf16
 * grad_input). */
void cpu_nhwc_maxpool_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                               const ssd_tensor *inp, const ssd_pool_desc *d) {
    const int64_t N = inp->shape[0], C = inp->shape[1], H = inp->shape[2], W = inp->shape[3];
    const int64_t P = dout->shape[2], Q = dout->shape[3], NB = nblocks(C);
    const nhwc_geom g = geom_of(inp);
    const bf16 *x = inp->data, *dy = dout->data;
    bf16 *dx = dinp->data;
    SSD_PARALLEL_FOR(t, N * NB, {
        const int64_t n = t / NB, c0 = t % NB * CB;
        const int cw = block_width(g, t % NB);
        int64_t arg[CB];
        float best[CB];
        for (int64_t r = n * H * W; r < (n + 1) * H * W; r++)
            memset(dx + r * C + c0, 0, (size_t)cw * sizeof(bf16));
        for (int64_t p = 0; p < P; p++)
            for (int64_t q = 0; q < Q; q++) {
                window_argmax_rows(arg, best, x, n, H, W, C, c0, cw, p, q, d);
                const bf16 *pg = dy + ((n * P + p) * Q + q) * C + c0;
                for (int j = 0; j < cw; j++)
                    if (arg[j] >= 0) {
                        bf16 *t2 = dx + arg[j] * C + c0 + j;
                        *t2 = st(ld(*t2) + ld(pg[j]));
                    }
            }
    });
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:maxpool_nhwc:bf16");
}
