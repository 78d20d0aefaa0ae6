/* Batch normalization on plain NCHW float tensors: our own loops, not oneDNN's. (bf16 NHWC
 * tensors go to cpu_nhwc.c, f32 nChw16c ones to cpu_blocked.c, which computes these bits.)
 *
 * Why not oneDNN: on plain NCHW data oneDNN 2.6 runs its `ncsp_bnorm` kernel, which measured
 * 1.2 GB/s in training forward on the 2-core Zen 3 (bench_ops, docs/benchmarks.md): 75 ms for
 * bn1 alone and ~0.8 s of a batch-8 training step for all 36 batch norms. Its fast kernels
 * want the blocked nChw8c layout, which our tensors are not in between layers. These loops are
 * memory-bound streams over each channel's N planes, parallel over channels, vectorised by the
 * compiler (`omp simd`).
 *
 * Numerics, per channel c over its M = N*H*W values:
 * - statistics: the mean, then the biased variance as the mean of (x - mean)^2 (two passes, no
 *   cancellation), summed in float within blocks of 512 values and in double across them; save_mean/save_var get them rounded to float, the running
 *   statistics torch's update with the unbiased variance;
 * - forward: y = (x - mean) * (gamma * invstd) + beta (+ residual) (ReLU) in float, the form
 *   oneDNN used before;
 * - backward: dy = dout masked where out <= 0 when desc->relu (written to dresidual when
 *   given), sums of dy and dy * (x - mean) (float within blocks, double across), then
 *   dx = gamma*invstd * (dy - sum_dy/M - (x - mean) * invstd^2 * sum_dy_xmu / M) in float;
 *   dgamma += float(sum_dy_xmu * invstd), dbeta += float(sum_dy).
 * dout may be dresidual (masked in place) and dinp may be dout: every element is read before
 * it is written, and a masked dy stays masked. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/par.h"

typedef struct bn_geom {
    int64_t N, C, HW;
} bn_geom;

static bn_geom bn_geom_of(const ssd_tensor *x) {
    return (bn_geom){x->shape[0], x->shape[1], x->shape[2] * x->shape[3]};
}

/* Sums run in float inside blocks of BLOCK elements and in double across blocks (gcc does not
 * vectorise a float-to-double reduction). Inside a block, LANES explicit partial sums (element
 * i goes to lane i % LANES, the tail to its own sum), combined in a fixed order: the rounding
 * is defined by the source, not by how a compiler vectorises it, so every build (Release, the
 * sanitizer builds) computes the same bits -- a training run is chaotic enough that a different
 * summation order in one BN changes where it ends (test_train's overfit). */
#define BLOCK CPU_BN_BLOCK
#define LANES CPU_BN_LANES

/* Sum over channel c of (x - shift), or of (x - shift)^2 when sq. Always inlined: sq is a
 * constant at each call, so each copy is one plain loop. */
static inline __attribute__((always_inline)) double channel_sum(const float *x, bn_geom g,
                                                                 int64_t c, float shift, bool sq) {
    double s = 0.0;
    for (int64_t n = 0; n < g.N; n++) {
        const float *p = x + (n * g.C + c) * g.HW;
        for (int64_t i0 = 0; i0 < g.HW; i0 += BLOCK) {
            const int64_t i1 = i0 + BLOCK < g.HW ? i0 + BLOCK : g.HW;
            float acc[LANES] = {0}, tail = 0.0f;
            int64_t i = i0;
            for (; i + LANES <= i1; i += LANES)
                for (int l = 0; l < LANES; l++) {
                    const float d = p[i + l] - shift;
                    acc[l] += sq ? d * d : d;
                }
            for (; i < i1; i++) {
                const float d = p[i] - shift;
                tail += sq ? d * d : d;
            }
            s += (double)cpu_bn_lanes_total(acc, tail);
        }
    }
    return s;
}

/* Mean and biased variance of channel c. The second pass sums (x - mf)^2 around the mean
 * rounded to float, mf, and removes the offset: var = E[(x - mf)^2] - (mean - mf)^2. */
static void channel_stats(const float *x, bn_geom g, int64_t c, double *mean, double *var) {
    const double count = (double)(g.N * g.HW), s = channel_sum(x, g, c, 0.0f, false);
    *var = cpu_bn_var(s, channel_sum(x, g, c, (float)(s / count), true), count, mean);
}

/* y = (x - mean) * a + b (+ res) (ReLU) over channel c. */
static void channel_apply(float *y, const float *x, const float *res, bn_geom g, int64_t c,
                          float mean, float a, float b, bool relu) {
    for (int64_t n = 0; n < g.N; n++) {
        const int64_t off = (n * g.C + c) * g.HW;
        const float *xp = x + off, *rp = res ? res + off : NULL;
        float *yp = y + off;
        if (rp) {
#pragma omp simd
            for (int64_t i = 0; i < g.HW; i++) {
                float v = (xp[i] - mean) * a + b + rp[i];
                yp[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
            }
        } else {
#pragma omp simd
            for (int64_t i = 0; i < g.HW; i++) {
                float v = (xp[i] - mean) * a + b;
                yp[i] = relu ? (v > 0.0f ? v : 0.0f) : v;
            }
        }
    }
}

void cpu_bn_train_forward(ssd_backend *be, ssd_tensor *out, ssd_tensor *save_mean,
                          ssd_tensor *save_var, ssd_tensor *running_mean,
                          ssd_tensor *running_var, const ssd_tensor *inp, const ssd_tensor *gamma,
                          const ssd_tensor *beta, const ssd_tensor *residual,
                          const ssd_bn_desc *d) {
    if (inp->dtype == SSD_BF16) {
        cpu_nhwc_bn_train_forward(be, out, save_mean, save_var, running_mean, running_var, inp, gamma,
                                  beta, residual, d);
        return;
    }
    if (inp->layout == SSD_LAYOUT_NCHW16C) {
        cpu_blk_bn_train_forward(be, out, save_mean, save_var, running_mean, running_var, inp,
                                 gamma, beta, residual, d);
        return;
    }
    const bn_geom g = bn_geom_of(inp);
    const float *x = inp->data, *gm = gamma->data, *bt = beta->data;
    const float *res = residual ? residual->data : NULL;
    float *y = out->data, *sm = save_mean->data, *sv = save_var->data;
    float *rm = running_mean->data, *rv = running_var->data;
    const double count = (double)(g.N * g.HW);
    SSD_PARALLEL_FOR(c, g.C, {
        double mean, var;
        channel_stats(x, g, c, &mean, &var);
        const float a = cpu_bn_store_stats(c, mean, var, count, d, gm, sm, sv, rm, rv);
        channel_apply(y, x, res, g, c, (float)mean, a, bt[c], d->relu);
    });
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:bn_nchw");
}

void cpu_bn_infer_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                          const ssd_tensor *gamma, const ssd_tensor *beta,
                          const ssd_tensor *running_mean, const ssd_tensor *running_var,
                          const ssd_tensor *residual, const ssd_bn_desc *d) {
    if (inp->dtype == SSD_BF16) {
        cpu_nhwc_bn_infer_forward(be, out, inp, gamma, beta, running_mean, running_var, residual,
                                  d);
        return;
    }
    if (inp->layout == SSD_LAYOUT_NCHW16C) {
        cpu_blk_bn_infer_forward(be, out, inp, gamma, beta, running_mean, running_var, residual,
                                 d);
        return;
    }
    const bn_geom g = bn_geom_of(inp);
    const float *gm = gamma->data, *bt = beta->data, *rm = running_mean->data,
                *rv = running_var->data;
    SSD_PARALLEL_FOR(c, g.C, {
        const double a = (double)gm[c] / sqrt((double)rv[c] + d->eps);
        channel_apply(out->data, inp->data, residual ? residual->data : NULL, g, c, rm[c],
                      (float)a, bt[c], d->relu);
    });
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:bn_nchw");
}

/* sum(dy) and sum(dy * (x - mean)) over one plane: in 8 float lanes within each block, in
 * double across blocks (as above); dy = v, masked where y <= 0 when y is given. */
static void plane_sums(const float *v, const float *y, const float *x, float mean, int64_t len,
                       double *sdy, double *sdyx) {
    for (int64_t i0 = 0; i0 < len; i0 += BLOCK) {
        const int64_t i1 = i0 + BLOCK < len ? i0 + BLOCK : len;
        float a[LANES] = {0}, b[LANES] = {0}, ta = 0.0f, tb = 0.0f;
        int64_t i = i0;
        for (; i + LANES <= i1; i += LANES)
            for (int l = 0; l < LANES; l++) {
                const float vi = v[i + l], g = !y || y[i + l] > 0.0f ? vi : 0.0f;
                a[l] += g;
                b[l] += g * (x[i + l] - mean);
            }
        for (; i < i1; i++) {
            const float vi = v[i], g = !y || y[i] > 0.0f ? vi : 0.0f;
            ta += g;
            tb += g * (x[i] - mean);
        }
        *sdy += (double)cpu_bn_lanes_total(a, ta);
        *sdyx += (double)cpu_bn_lanes_total(b, tb);
    }
}

/* dx = a * (dy - b - (x - mean) * k) over one plane; dy = v, masked where y <= 0 when y is
 * given. */
static void plane_dx(float *dx, const float *v, const float *y, const float *x, float mean,
                     float a, float b, float k, int64_t len) {
    if (y) {
#pragma omp simd
        for (int64_t i = 0; i < len; i++) {
            const float vi = v[i], g = y[i] > 0.0f ? vi : 0.0f;
            dx[i] = a * (g - b - (x[i] - mean) * k);
        }
    } else {
#pragma omp simd
        for (int64_t i = 0; i < len; i++) dx[i] = a * (v[i] - b - (x[i] - mean) * k);
    }
}

/* r = y > 0 ? v : 0 (the ReLU's gradient; r may be v) */
static void relu_mask(float *r, const float *v, const float *y, int64_t len) {
#pragma omp simd
    for (int64_t i = 0; i < len; i++) {
        const float vi = v[i];
        r[i] = y[i] > 0.0f ? vi : 0.0f;
    }
}

void cpu_bn_backward(ssd_backend *be, ssd_tensor *dinp, ssd_tensor *dresidual, ssd_tensor *dgamma,
                     ssd_tensor *dbeta, const ssd_tensor *dout, const ssd_tensor *out,
                     const ssd_tensor *inp, const ssd_tensor *gamma, const ssd_tensor *save_mean,
                     const ssd_tensor *save_var, const ssd_bn_desc *d) {
    if (inp->dtype == SSD_BF16) {
        cpu_nhwc_bn_backward(be, dinp, dresidual, dgamma, dbeta, dout, out, inp, gamma, save_mean,
                             save_var, d);
        return;
    }
    if (inp->layout == SSD_LAYOUT_NCHW16C) {
        cpu_blk_bn_backward(be, dinp, dresidual, dgamma, dbeta, dout, out, inp, gamma, save_mean,
                            save_var, d);
        return;
    }
    const bn_geom g = bn_geom_of(inp);
    const float *x = inp->data, *dy_in = dout->data, *y = out->data, *gm = gamma->data;
    const float *sm = save_mean->data, *sv = save_var->data;
    float *dx = dinp->data, *dres = dresidual ? dresidual->data : NULL;
    float *dg = dgamma->data, *db = dbeta->data;
    const bool relu = d->relu;
    const double count = (double)(g.N * g.HW);
    SSD_PARALLEL_FOR(c, g.C, {
        const float mean = sm[c];
        double sdy = 0.0, sdyx = 0.0;
        for (int64_t n = 0; n < g.N; n++) {
            const int64_t off = (n * g.C + c) * g.HW;
            const float *dp = dy_in + off, *yp = relu ? y + off : NULL;
            if (dres) { /* the masked gradient is an output: write it, then read it back */
                float *rp = dres + off;
                if (yp) {
                    relu_mask(rp, dp, yp, g.HW);
                } else if (rp != dp) {
                    memcpy(rp, dp, (size_t)g.HW * sizeof(float));
                }
                dp = rp;
                yp = NULL;
            }
            plane_sums(dp, yp, x + off, mean, g.HW, &sdy, &sdyx);
        }
        float a, b, k;
        cpu_bn_bwd_coeffs(c, sdy, sdyx, count, d->eps, gm, sv, dg, db, &a, &b, &k);
        for (int64_t n = 0; n < g.N; n++) {
            const int64_t off = (n * g.C + c) * g.HW;
            const float *dp = dres ? dres + off : dy_in + off;
            const float *yp = relu && !dres ? y + off : NULL;
            plane_dx(dx + off, dp, yp, x + off, mean, a, b, k, g.HW);
        }
    });
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:bn_nchw");
}
