/* The cuda backend's own kernels (cuda_kernels.cu), as plain C launchers on a stream.
 *
 * Everything here is f32 and NCHW, and computes what `ref` computes in the same order where the
 * order matters for rounding (SGD, maxpool backward, add, scale are bit-equal to ref's f32 path;
 * the batch-norm reductions accumulate in double, as ref does, but in a different order).
 * Each launcher only enqueues work; errors surface through cudaGetLastError at the caller. */
#ifndef SSD_BACKEND_CUDA_KERNELS_H
#define SSD_BACKEND_CUDA_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

void ck_relu_fwd(float *y, const float *x, int64_t n, cudaStream_t s);
void ck_relu_bwd(float *dx, const float *dy, const float *y, int64_t n, cudaStream_t s);
void ck_add(float *o, const float *a, const float *b, int64_t n, cudaStream_t s);
void ck_fill(float *p, float v, int64_t n, cudaStream_t s);
/* o = (float)(alpha * (double)x), as ref */
void ck_scale(float *o, const float *x, double alpha, int64_t n, cudaStream_t s);

typedef struct ck_sgd_args {
    float wd, mom, damp1, neg_lr;
    bool has_wd, has_mom, first_step, nesterov;
} ck_sgd_args;
void ck_sgd(float *p, float *buf, const float *g, int64_t n, ck_sgd_args a, cudaStream_t s);

void ck_maxpool_fwd(float *out, const float *in, int64_t NC, int H, int W, int P, int Q, int k,
                    int st, int pad, cudaStream_t s);
/* scratch: NC*P*Q bytes (each output's argmax within its window); k*k <= 127 */
void ck_maxpool_bwd(float *din, const float *dout, const float *in, int64_t NC, int H, int W,
                    int P, int Q, int k, int st, int pad, void *scratch, cudaStream_t s);

/* Batch norm. The reductions run on a (C, S) grid: block (c, s) takes the images
 * [s*N/S, (s+1)*N/S) of channel c and writes two double partial sums at part[2*(c*S+s)].
 * The finalize kernels turn them into per-channel float coefficients, and the apply kernels
 * run one block per (n, c) plane. `coef` holds 4*C floats. */
/* A convolution's bias gradient: dbias[c] += the sum of dout (N,C,HW) over n and hw, summed in
 * double (bn_stats_k's reduction; part holds 2*C*S doubles). */
void ck_bias_grad(float *dbias, double *part, const float *dout, int N, int C, int64_t HW, int S,
                  cudaStream_t s);
void ck_bn_stats(double *part, const float *x, int N, int C, int64_t HW, int S, cudaStream_t s);
/* coef = (scale, beta, mean): y = (x - mean)*scale + beta; batch mean/var to smean/svar; running stats updated */
void ck_bn_fwd_finalize(float *coef, float *smean, float *svar, float *rmean, float *rvar,
                        const float *gamma, const float *beta, const double *part, int C, int S,
                        double count, double eps, double momentum, cudaStream_t s);
void ck_bn_infer_coef(float *coef, const float *gamma, const float *beta, const float *rmean,
                      const float *rvar, int C, double eps, cudaStream_t s);
/* y = (x - mean)*scale + beta (+ res) (relu) */
void ck_bn_apply(float *y, const float *x, const float *res, const float *coef, int N, int C,
                 int64_t HW, bool relu, cudaStream_t s);
/* partial sums of dy and dy*(x - mean), dy = dout masked by out > 0 when relu */
void ck_bn_bwd_reduce(double *part, const float *dout, const float *out, const float *x,
                      const float *smean, int N, int C, int64_t HW, int S, bool relu,
                      cudaStream_t s);
/* coef = (A, K, B, mean) with dx = A*dy - K*(x - mean) + B; dgamma += sum(dy*xhat), dbeta += sum(dy) */
void ck_bn_bwd_finalize(float *coef, float *dgamma, float *dbeta, const double *part,
                        const float *gamma, const float *smean, const float *svar, int C, int S,
                        double count, double eps, cudaStream_t s);
void ck_bn_bwd_apply(float *dx, float *dres, const float *dout, const float *out,
                     const float *x, const float *coef, int N, int C, int64_t HW, bool relu,
                     cudaStream_t s);

/* Layout and precision changes for the bf16 convolutions: an NCHW f32 tensor (N, C, HW) to
 * NHWC bf16 (round to nearest even), and back, the result added to dst when accumulate.
 * Weights (K, C, R, S) go through the same kernels with N = K and HW = R*S. bf16 values are
 * their 16-bit patterns here (uint16_t). */
void ck_nchw_f32_to_nhwc_bf16(uint16_t *dst, const float *src, int N, int C, int64_t HW,
                              cudaStream_t s);
void ck_nhwc_bf16_to_nchw_f32(float *dst, const uint16_t *src, int N, int C, int64_t HW,
                              bool accumulate, cudaStream_t s);

/* The SSD loss (cuda_loss.cu; rules of loss/ssd_loss.h). per_image (n) gets loss_n; dloc
 * (n,4,A) and dconf (n,81,A), when both non-NULL, the gradient of the batch loss times
 * grad_scale. scratch holds ck_ssd_loss_scratch_bytes(n, A); *bad_flag becomes 1 when a label
 * is outside 0..80 (the caller checks it). */
size_t ck_ssd_loss_scratch_bytes(int n, int A);
void ck_ssd_loss(double *per_image, float *dloc, float *dconf, const float *ploc,
                 const float *pconf, const float *gbox, const int64_t *glabel,
                 const float *anchors, int n, int A, float grad_scale, void *scratch,
                 int *bad_flag, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
