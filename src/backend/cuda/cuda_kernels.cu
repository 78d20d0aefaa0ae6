/* The cuda backend's own kernels; see cuda_kernels.h for what each computes. */
#include "cuda_kernels.h"

#include <cuda_bf16.h>
#include <math.h>

namespace {

constexpr int kThreads = 256;

unsigned grid_for(int64_t n) {
    int64_t b = (n + kThreads - 1) / kThreads;
    if (b > 65535 * 8) b = 65535 * 8; /* grid-stride loops take the rest */
    return (unsigned)(b > 0 ? b : 1);
}

__device__ __forceinline__ int64_t gtid() {
    return (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t gstride() { return (int64_t)gridDim.x * blockDim.x; }

__global__ void relu_fwd_k(float *y, const float *x, int64_t n) {
    for (int64_t i = gtid(); i < n; i += gstride()) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

__global__ void relu_bwd_k(float *dx, const float *dy, const float *y, int64_t n) {
    for (int64_t i = gtid(); i < n; i += gstride()) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

__global__ void add_k(float *o, const float *a, const float *b, int64_t n) {
    for (int64_t i = gtid(); i < n; i += gstride()) o[i] = __fadd_rn(a[i], b[i]);
}

__global__ void fill_k(float *p, float v, int64_t n) {
    for (int64_t i = gtid(); i < n; i += gstride()) p[i] = v;
}

__global__ void scale_k(float *o, const float *x, double alpha, int64_t n) {
    for (int64_t i = gtid(); i < n; i += gstride()) o[i] = (float)(alpha * (double)x[i]);
}

/* torch.optim.SGD in ref's order of fused multiply-adds */
__global__ void sgd_k(float *p, float *buf, const float *g, int64_t n, ck_sgd_args a) {
    for (int64_t i = gtid(); i < n; i += gstride()) {
        float dp = g[i];
        if (a.has_wd) dp = __fmaf_rn(a.wd, p[i], dp);
        if (a.has_mom) {
            float b = a.first_step ? dp : __fmaf_rn(a.damp1, dp, __fmul_rn(a.mom, buf[i]));
            buf[i] = b;
            dp = a.nesterov ? __fmaf_rn(a.mom, b, dp) : b;
        }
        p[i] = __fmaf_rn(a.neg_lr, dp, p[i]);
    }
}

/* First maximum of the window of output (p,q) in row-major scan order (a NaN wins at once);
 * -1 if the window is all padding. Same rule as ref's pool_argmax. */
__device__ int pool_argmax(const float *ip, int H, int W, int p, int q, int k, int st, int pad) {
    int best = -1;
    float bv = 0.0f;
    for (int r = 0; r < k; r++) {
        int h = p * st - pad + r;
        if (h < 0 || h >= H) continue;
        for (int s = 0; s < k; s++) {
            int x = q * st - pad + s;
            if (x < 0 || x >= W) continue;
            float v = ip[h * W + x];
            if (best < 0 || v > bv || isnan(v)) {
                best = h * W + x;
                bv = v;
                if (isnan(v)) return best;
            }
        }
    }
    return best;
}

__global__ void maxpool_fwd_k(float *out, const float *in, int64_t NC, int H, int W, int P, int Q,
                              int k, int st, int pad) {
    int64_t total = NC * P * Q;
    for (int64_t i = gtid(); i < total; i += gstride()) {
        int64_t nc = i / ((int64_t)P * Q);
        int pq = (int)(i - nc * P * Q), p = pq / Q, q = pq % Q;
        const float *ip = in + nc * H * W;
        int a = pool_argmax(ip, H, W, p, q, k, st, pad);
        out[i] = a < 0 ? -INFINITY : ip[a];
    }
}

/* Backward in two passes, deterministic and bit-equal to ref's f32 scatter:
 * 1. each output records where in its window its first maximum lies (r*k + s, or -1 when the
 *    window is all padding), one byte per output;
 * 2. each input element sums, in ref's (p, q) order, the gradients of the outputs whose
 *    recorded maximum it is.
 * Pass 1 reads every window once; the earlier one-pass gather re-scanned each window for every
 * input under it (four times at k=3, s=2), and ran 8 ms per step at batch 128. */
__global__ void maxpool_argmax_k(signed char *arg, const float *in, int64_t NC, int H, int W,
                                 int P, int Q, int k, int st, int pad) {
    int64_t total = NC * P * Q;
    for (int64_t i = gtid(); i < total; i += gstride()) {
        int64_t nc = i / ((int64_t)P * Q);
        int pq = (int)(i - nc * P * Q), p = pq / Q, q = pq % Q;
        int a = pool_argmax(in + nc * H * W, H, W, p, q, k, st, pad);
        signed char off = -1;
        if (a >= 0) off = (signed char)((a / W - (p * st - pad)) * k + (a % W - (q * st - pad)));
        arg[i] = off;
    }
}

__global__ void maxpool_bwd_k(float *din, const float *dout, const signed char *arg, int64_t NC,
                              int H, int W, int P, int Q, int k, int st, int pad) {
    int64_t total = NC * H * W;
    for (int64_t i = gtid(); i < total; i += gstride()) {
        int64_t nc = i / ((int64_t)H * W);
        int hw = (int)(i - nc * H * W), h = hw / W, w = hw % W;
        const float *dp = dout + nc * P * Q;
        const signed char *ap = arg + nc * P * Q;
        int p0 = h + pad - k + 1, q0 = w + pad - k + 1;
        p0 = p0 <= 0 ? 0 : (p0 + st - 1) / st;
        q0 = q0 <= 0 ? 0 : (q0 + st - 1) / st;
        int p1 = (h + pad) / st, q1 = (w + pad) / st;
        if (p1 > P - 1) p1 = P - 1;
        if (q1 > Q - 1) q1 = Q - 1;
        float acc = 0.0f;
        for (int p = p0; p <= p1; p++)
            for (int q = q0; q <= q1; q++)
                if (ap[p * Q + q] == (h - (p * st - pad)) * k + (w - (q * st - pad)))
                    acc = __fadd_rn(acc, dp[p * Q + q]);
        din[i] = acc;
    }
}

/* Sum of two doubles over the block; the result is valid in thread 0. */
__device__ void block_sum2(double &a, double &b) {
    __shared__ double sa[32], sb[32];
    for (int o = 16; o > 0; o >>= 1) {
        a += __shfl_down_sync(0xffffffffu, a, o);
        b += __shfl_down_sync(0xffffffffu, b, o);
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    if (lane == 0) {
        sa[warp] = a;
        sb[warp] = b;
    }
    __syncthreads();
    if (warp == 0) {
        a = lane < nw ? sa[lane] : 0.0;
        b = lane < nw ? sb[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) {
            a += __shfl_down_sync(0xffffffffu, a, o);
            b += __shfl_down_sync(0xffffffffu, b, o);
        }
    }
}

__global__ void bn_stats_k(double *part, const float *x, int N, int C, int64_t HW, int S) {
    int c = blockIdx.x, s = blockIdx.y;
    int n0 = (int)((int64_t)s * N / S), n1 = (int)((int64_t)(s + 1) * N / S);
    double sum = 0.0, sq = 0.0;
    for (int n = n0; n < n1; n++) {
        const float *p = x + ((int64_t)n * C + c) * HW;
        for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
            double v = (double)p[i];
            sum += v;
            sq += v * v;
        }
    }
    block_sum2(sum, sq);
    if (threadIdx.x == 0) {
        part[2 * ((int64_t)c * S + s)] = sum;
        part[2 * ((int64_t)c * S + s) + 1] = sq;
    }
}

/* dbias[c] += the sum of the (C, S) partial sums of bn_stats_k (their first halves) */
__global__ void bias_grad_k(float *dbias, const double *part, int C, int S) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double sum = 0.0;
    for (int s = 0; s < S; s++) sum += part[2 * (c * S + s)];
    dbias[c] = (float)((double)dbias[c] + sum);
}

__global__ void bn_fwd_finalize_k(float *coef, float *smean, float *svar, float *rmean,
                                  float *rvar, const float *gamma, const float *beta,
                                  const double *part, int C, int S, double count, double eps,
                                  double momentum) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double sum = 0.0, sq = 0.0;
    for (int s = 0; s < S; s++) {
        sum += part[2 * ((int64_t)c * S + s)];
        sq += part[2 * ((int64_t)c * S + s) + 1];
    }
    double mean = sum / count, var = sq / count - mean * mean;
    if (var < 0.0) var = 0.0;
    smean[c] = (float)mean;
    svar[c] = (float)var;
    rmean[c] = (float)((1.0 - momentum) * (double)rmean[c] + momentum * mean);
    rvar[c] = (float)((1.0 - momentum) * (double)rvar[c] + momentum * var * count / (count - 1.0));
    double invstd = 1.0 / sqrt(var + eps), scale = (double)gamma[c] * invstd;
    coef[c] = (float)scale;
    coef[C + c] = beta[c];
    coef[2 * C + c] = (float)mean;
}

__global__ void bn_infer_coef_k(float *coef, const float *gamma, const float *beta,
                                const float *rmean, const float *rvar, int C, double eps) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double scale = (double)gamma[c] / sqrt((double)rvar[c] + eps);
    coef[c] = (float)scale;
    coef[C + c] = beta[c];
    coef[2 * C + c] = rmean[c];
}

/* one block per (n, c) plane */
__global__ void bn_apply_k(float *y, const float *x, const float *res, const float *coef, int C,
                           int64_t HW, bool relu) {
    int64_t plane = blockIdx.x;
    int c = (int)(plane % C);
    float a = coef[c], b = coef[C + c], m = coef[2 * C + c];
    int64_t off = plane * HW;
    for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
        float v = __fmaf_rn(x[off + i] - m, a, b);
        if (res) v += res[off + i];
        if (relu && !(v > 0.0f)) v = 0.0f;
        y[off + i] = v;
    }
}

__global__ void bn_bwd_reduce_k(double *part, const float *dout, const float *out, const float *x,
                                const float *smean, int N, int C, int64_t HW, int S, bool relu) {
    int c = blockIdx.x, s = blockIdx.y;
    int n0 = (int)((int64_t)s * N / S), n1 = (int)((int64_t)(s + 1) * N / S);
    double mean = (double)smean[c], sdy = 0.0, sdyx = 0.0;
    for (int n = n0; n < n1; n++) {
        int64_t off = ((int64_t)n * C + c) * HW;
        for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
            float dy = dout[off + i];
            if (relu && !(out[off + i] > 0.0f)) dy = 0.0f;
            sdy += (double)dy;
            sdyx += (double)dy * ((double)x[off + i] - mean);
        }
    }
    block_sum2(sdy, sdyx);
    if (threadIdx.x == 0) {
        part[2 * ((int64_t)c * S + s)] = sdy;
        part[2 * ((int64_t)c * S + s) + 1] = sdyx;
    }
}

__global__ void bn_bwd_finalize_k(float *coef, float *dgamma, float *dbeta, const double *part,
                                  const float *gamma, const float *smean, const float *svar,
                                  int C, int S, double count, double eps) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double sdy = 0.0, sdyx = 0.0;
    for (int s = 0; s < S; s++) {
        sdy += part[2 * ((int64_t)c * S + s)];
        sdyx += part[2 * ((int64_t)c * S + s) + 1];
    }
    double invstd = 1.0 / sqrt((double)svar[c] + eps);
    double sdy_xhat = sdyx * invstd, A = (double)gamma[c] * invstd;
    double K = A * invstd * sdy_xhat / count;
    coef[c] = (float)A;
    coef[C + c] = (float)K;
    coef[2 * C + c] = (float)(-A * sdy / count);
    coef[3 * C + c] = smean[c];
    dgamma[c] = (float)((double)dgamma[c] + sdy_xhat);
    dbeta[c] = (float)((double)dbeta[c] + sdy);
}

__global__ void bn_bwd_apply_k(float *dx, float *dres, const float *dout, const float *out,
                               const float *x, const float *coef, int C, int64_t HW, bool relu) {
    int64_t plane = blockIdx.x;
    int c = (int)(plane % C);
    float A = coef[c], K = coef[C + c], B = coef[2 * C + c], m = coef[3 * C + c];
    int64_t off = plane * HW;
    for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
        float dy = dout[off + i];
        if (relu && !(out[off + i] > 0.0f)) dy = 0.0f;
        if (dres) dres[off + i] = dy;
        dx[off + i] = __fmaf_rn(A, dy, __fmaf_rn(-K, x[off + i] - m, B));
    }
}

/* Tiled transposes: block (32, 8) moves a 32 x 32 tile of (C, HW) of one image. */
constexpr int kTile = 32;

__global__ void to_nhwc_bf16_k(__nv_bfloat16 *dst, const float *src, int C, int64_t HW) {
    __shared__ float tile[kTile][kTile + 1];
    const int64_t n = blockIdx.z, hw0 = (int64_t)blockIdx.x * kTile;
    const int c0 = blockIdx.y * kTile;
    const float *s = src + n * C * HW;
    for (int r = threadIdx.y; r < kTile; r += blockDim.y) {
        int c = c0 + r;
        int64_t hw = hw0 + threadIdx.x;
        if (c < C && hw < HW) tile[r][threadIdx.x] = s[(int64_t)c * HW + hw];
    }
    __syncthreads();
    __nv_bfloat16 *d = dst + n * C * HW;
    for (int r = threadIdx.y; r < kTile; r += blockDim.y) {
        int64_t hw = hw0 + r;
        int c = c0 + threadIdx.x;
        if (c < C && hw < HW) d[hw * C + c] = __float2bfloat16_rn(tile[threadIdx.x][r]);
    }
}

__global__ void to_nchw_f32_k(float *dst, const __nv_bfloat16 *src, int C, int64_t HW,
                              bool accumulate) {
    __shared__ float tile[kTile][kTile + 1];
    const int64_t n = blockIdx.z, hw0 = (int64_t)blockIdx.x * kTile;
    const int c0 = blockIdx.y * kTile;
    const __nv_bfloat16 *s = src + n * C * HW;
    for (int r = threadIdx.y; r < kTile; r += blockDim.y) {
        int64_t hw = hw0 + r;
        int c = c0 + threadIdx.x;
        if (c < C && hw < HW) tile[r][threadIdx.x] = __bfloat162float(s[hw * C + c]);
    }
    __syncthreads();
    float *d = dst + n * C * HW;
    for (int r = threadIdx.y; r < kTile; r += blockDim.y) {
        int c = c0 + r;
        int64_t hw = hw0 + threadIdx.x;
        if (c < C && hw < HW) {
            float v = tile[threadIdx.x][r];
            int64_t i = (int64_t)c * HW + hw;
            d[i] = accumulate ? d[i] + v : v;
        }
    }
}

/* The same transposes for an even C, on 64-channel x 32-pixel tiles: a warp moves 64 channels
 * of one pixel as 32 bf16 pairs (128 bytes) on the NHWC side and 32 pixels of one channel (128
 * bytes) on the NCHW side, where the 32x32 tiles above moved 64-byte rows of single bf16s. */
constexpr int kPairTile = 64;
__global__ void to_nhwc_bf16_pairs_k(__nv_bfloat162 *dst, const float *src, int C, int64_t HW) {
    __shared__ float tile[kPairTile][kTile + 1];
    const int64_t n = blockIdx.z, hw0 = (int64_t)blockIdx.x * kTile;
    const int c0 = blockIdx.y * kPairTile;
    const float *s = src + n * C * HW;
    const int64_t hw = hw0 + threadIdx.x;
    for (int r = threadIdx.y; r < kPairTile; r += blockDim.y) {
        int c = c0 + r;
        if (c < C && hw < HW) tile[r][threadIdx.x] = s[(int64_t)c * HW + hw];
    }
    __syncthreads();
    __nv_bfloat162 *d = dst + n * (C / 2) * HW;
    const int c = c0 + 2 * threadIdx.x;
    for (int r = threadIdx.y; r < kTile; r += blockDim.y) {
        int64_t h = hw0 + r;
        if (c < C && h < HW)
            d[(h * C + c) / 2] = __floats2bfloat162_rn(tile[2 * threadIdx.x][r],
                                                       tile[2 * threadIdx.x + 1][r]);
    }
}
__global__ void to_nchw_f32_pairs_k(float *dst, const __nv_bfloat162 *src, int C, int64_t HW,
                                    bool accumulate) {
    __shared__ float tile[kPairTile][kTile + 1];
    const int64_t n = blockIdx.z, hw0 = (int64_t)blockIdx.x * kTile;
    const int c0 = blockIdx.y * kPairTile;
    const __nv_bfloat162 *s = src + n * (C / 2) * HW;
    const int c = c0 + 2 * threadIdx.x;
    for (int r = threadIdx.y; r < kTile; r += blockDim.y) {
        int64_t h = hw0 + r;
        if (c < C && h < HW) {
            float2 v = __bfloat1622float2(s[(h * C + c) / 2]);
            tile[2 * threadIdx.x][r] = v.x;
            tile[2 * threadIdx.x + 1][r] = v.y;
        }
    }
    __syncthreads();
    float *d = dst + n * C * HW;
    const int64_t hw = hw0 + threadIdx.x;
    for (int r = threadIdx.y; r < kPairTile; r += blockDim.y) {
        int cc = c0 + r;
        if (cc < C && hw < HW) {
            float v = tile[r][threadIdx.x];
            int64_t i = (int64_t)cc * HW + hw;
            d[i] = accumulate ? d[i] + v : v;
        }
    }
}

unsigned plane_threads(int64_t HW) {
    int64_t t = (HW + 31) / 32 * 32;
    return (unsigned)(t > kThreads ? kThreads : t);
}

} // namespace

extern "C" {

void ck_relu_fwd(float *y, const float *x, int64_t n, cudaStream_t s) {
    relu_fwd_k<<<grid_for(n), kThreads, 0, s>>>(y, x, n);
}
void ck_relu_bwd(float *dx, const float *dy, const float *y, int64_t n, cudaStream_t s) {
    relu_bwd_k<<<grid_for(n), kThreads, 0, s>>>(dx, dy, y, n);
}
void ck_add(float *o, const float *a, const float *b, int64_t n, cudaStream_t s) {
    add_k<<<grid_for(n), kThreads, 0, s>>>(o, a, b, n);
}
void ck_fill(float *p, float v, int64_t n, cudaStream_t s) {
    fill_k<<<grid_for(n), kThreads, 0, s>>>(p, v, n);
}
void ck_scale(float *o, const float *x, double alpha, int64_t n, cudaStream_t s) {
    scale_k<<<grid_for(n), kThreads, 0, s>>>(o, x, alpha, n);
}
void ck_sgd(float *p, float *buf, const float *g, int64_t n, ck_sgd_args a, cudaStream_t s) {
    sgd_k<<<grid_for(n), kThreads, 0, s>>>(p, buf, g, n, a);
}
void ck_maxpool_fwd(float *out, const float *in, int64_t NC, int H, int W, int P, int Q, int k,
                    int st, int pad, cudaStream_t s) {
    maxpool_fwd_k<<<grid_for(NC * P * Q), kThreads, 0, s>>>(out, in, NC, H, W, P, Q, k, st, pad);
}
void ck_maxpool_bwd(float *din, const float *dout, const float *in, int64_t NC, int H, int W,
                    int P, int Q, int k, int st, int pad, void *scratch, cudaStream_t s) {
    signed char *arg = (signed char *)scratch;
    maxpool_argmax_k<<<grid_for(NC * P * Q), kThreads, 0, s>>>(arg, in, NC, H, W, P, Q, k, st,
                                                                pad);
    maxpool_bwd_k<<<grid_for(NC * H * W), kThreads, 0, s>>>(din, dout, arg, NC, H, W, P, Q, k, st,
                                                             pad);
}
void ck_bn_stats(double *part, const float *x, int N, int C, int64_t HW, int S, cudaStream_t s) {
    bn_stats_k<<<dim3((unsigned)C, (unsigned)S), kThreads, 0, s>>>(part, x, N, C, HW, S);
}
void ck_bias_grad(float *dbias, double *part, const float *dout, int N, int C, int64_t HW, int S,
                  cudaStream_t s) {
    bn_stats_k<<<dim3((unsigned)C, (unsigned)S), kThreads, 0, s>>>(part, dout, N, C, HW, S);
    bias_grad_k<<<(C + 127) / 128, 128, 0, s>>>(dbias, part, C, S);
}
void ck_bn_fwd_finalize(float *coef, float *smean, float *svar, float *rmean, float *rvar,
                        const float *gamma, const float *beta, const double *part, int C, int S,
                        double count, double eps, double momentum, cudaStream_t s) {
    bn_fwd_finalize_k<<<(C + 127) / 128, 128, 0, s>>>(coef, smean, svar, rmean, rvar, gamma, beta,
                                                      part, C, S, count, eps, momentum);
}
void ck_bn_infer_coef(float *coef, const float *gamma, const float *beta, const float *rmean,
                      const float *rvar, int C, double eps, cudaStream_t s) {
    bn_infer_coef_k<<<(C + 127) / 128, 128, 0, s>>>(coef, gamma, beta, rmean, rvar, C, eps);
}
void ck_bn_apply(float *y, const float *x, const float *res, const float *coef, int N, int C,
                 int64_t HW, bool relu, cudaStream_t s) {
    bn_apply_k<<<(unsigned)((int64_t)N * C), plane_threads(HW), 0, s>>>(y, x, res, coef, C, HW,
                                                                        relu);
}
void ck_bn_bwd_reduce(double *part, const float *dout, const float *out, const float *x,
                      const float *smean, int N, int C, int64_t HW, int S, bool relu,
                      cudaStream_t s) {
    bn_bwd_reduce_k<<<dim3((unsigned)C, (unsigned)S), kThreads, 0, s>>>(part, dout, out, x, smean,
                                                                        N, C, HW, S, relu);
}
void ck_bn_bwd_finalize(float *coef, float *dgamma, float *dbeta, const double *part,
                        const float *gamma, const float *smean, const float *svar, int C, int S,
                        double count, double eps, cudaStream_t s) {
    bn_bwd_finalize_k<<<(C + 127) / 128, 128, 0, s>>>(coef, dgamma, dbeta, part, gamma, smean,
                                                      svar, C, S, count, eps);
}
void ck_bn_bwd_apply(float *dx, float *dres, const float *dout, const float *out,
                     const float *x, const float *coef, int N, int C, int64_t HW, bool relu,
                     cudaStream_t s) {
    bn_bwd_apply_k<<<(unsigned)((int64_t)N * C), plane_threads(HW), 0, s>>>(dx, dres, dout, out,
                                                                            x, coef, C, HW, relu);
}

void ck_nchw_f32_to_nhwc_bf16(uint16_t *dst, const float *src, int N, int C, int64_t HW,
                              cudaStream_t s) {
    if (C % 2 == 0) {
        dim3 grid((unsigned)((HW + kTile - 1) / kTile),
                  (unsigned)((C + kPairTile - 1) / kPairTile), (unsigned)N);
        to_nhwc_bf16_pairs_k<<<grid, dim3(kTile, 8), 0, s>>>((__nv_bfloat162 *)dst, src, C, HW);
        return;
    }
    dim3 grid((unsigned)((HW + kTile - 1) / kTile), (unsigned)((C + kTile - 1) / kTile),
              (unsigned)N);
    to_nhwc_bf16_k<<<grid, dim3(kTile, 8), 0, s>>>((__nv_bfloat16 *)dst, src, C, HW);
}
void ck_nhwc_bf16_to_nchw_f32(float *dst, const uint16_t *src, int N, int C, int64_t HW,
                              bool accumulate, cudaStream_t s) {
    if (C % 2 == 0) {
        dim3 grid((unsigned)((HW + kTile - 1) / kTile),
                  (unsigned)((C + kPairTile - 1) / kPairTile), (unsigned)N);
        to_nchw_f32_pairs_k<<<grid, dim3(kTile, 8), 0, s>>>(dst, (const __nv_bfloat162 *)src, C,
                                                             HW, accumulate);
        return;
    }
    dim3 grid((unsigned)((HW + kTile - 1) / kTile), (unsigned)((C + kTile - 1) / kTile),
              (unsigned)N);
    to_nchw_f32_k<<<grid, dim3(kTile, 8), 0, s>>>(dst, (const __nv_bfloat16 *)src, C, HW,
                                                   accumulate);
}

} // extern "C"
