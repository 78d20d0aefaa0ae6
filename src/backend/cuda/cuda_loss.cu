/* The SSD loss on the GPU: the rules of loss/ssd_loss.h, in double after the float32 targets,
 * with the same hard-negative selection (top K = min(3P, A) of ce_neg, ties by ascending anchor
 * index). Three kernels:
 *   1. per anchor: logsumexp, cross-entropy, the positive's smooth-L1 term, P (integer atomics);
 *   2. per image (one block): the K-th largest ce_neg by an 8-pass radix select on the double's
 *      bits (ce_neg >= 0, so the bits order like the values), ties taken in index order through
 *      a block scan, then the image's loss (block reductions in a fixed order: deterministic);
 *   3. per anchor: the gradients, scaled by 1/(P n) and by grad_scale.
 * Differences from the host: exp/log are CUDA's (within 2 ulp, not glibc's correctly rounded
 * ones) and the image sums are taken in another order, so losses agree to ~1e-15 relative before
 * their float rounding and the selection differs only where two ce values differ by an ulp. */
#include "cuda_kernels.h"

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

namespace {

constexpr int kClasses = 81;
constexpr int kAnchorThreads = 128;
constexpr int kSelectThreads = 1024;

/* loss/ssd_loss.h rule 1, in the reference's float32 order (no contraction) */
__device__ void encode(const float *g, const float *d, float *t) {
    t[0] = __fdiv_rn(__fmul_rn(10.0f, __fsub_rn(g[0], d[0])), d[2]);
    t[1] = __fdiv_rn(__fmul_rn(10.0f, __fsub_rn(g[1], d[1])), d[3]);
    t[2] = __fmul_rn(5.0f, logf(__fdiv_rn(g[2], d[2])));
    t[3] = __fmul_rn(5.0f, logf(__fdiv_rn(g[3], d[3])));
}

__device__ double smooth_l1(double z) {
    double az = fabs(z);
    return az < 1.0 ? 0.5 * z * z : az - 0.5;
}

__device__ double smooth_l1_grad(double z) {
    if (fabs(z) < 1.0) return z;
    return z > 0 ? 1.0 : (z < 0 ? -1.0 : 0.0);
}

__global__ void anchor_k(double *lse_out, double *ce_out, double *loc_out, int *npos, int *bad,
                         const float *ploc, const float *pconf, const float *gbox,
                         const int64_t *glabel, const float *anchors, int A) {
    int a = blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y;
    if (a >= A) return;
    const float *x = pconf + (int64_t)i * kClasses * A;
    int64_t idx = (int64_t)i * A + a;
    int64_t lab = glabel[idx];
    if (lab < 0 || lab >= kClasses) {
        atomicExch(bad, 1);
        lab = 0;
    }
    float mx = x[a];
    for (int k = 1; k < kClasses; k++) {
        float v = x[(int64_t)k * A + a];
        mx = v > mx ? v : mx;
    }
    double s = 0.0;
    for (int k = 0; k < kClasses; k++) s += exp((double)x[(int64_t)k * A + a] - (double)mx);
    double lse = (double)mx + log(s);
    lse_out[idx] = lse;
    ce_out[idx] = lse - (double)x[lab * A + a];
    double loc = 0.0;
    if (lab > 0) {
        atomicAdd(&npos[i], 1);
        float t[4];
        encode(gbox + idx * 4, anchors + (int64_t)a * 4, t);
        const float *p = ploc + (int64_t)i * 4 * A;
        for (int c = 0; c < 4; c++) loc += smooth_l1((double)p[(int64_t)c * A + a] - (double)t[c]);
    }
    loc_out[idx] = loc;
}

__device__ __forceinline__ unsigned long long neg_key(const double *ce, const int64_t *glabel,
                                                      int64_t idx) {
    double v = glabel[idx] > 0 ? 0.0 : ce[idx];
    return (unsigned long long)__double_as_longlong(v);
}

__global__ void __launch_bounds__(kSelectThreads)
    select_k(unsigned char *mult, double *per_image, const double *ce, const double *loc_term,
             const int64_t *glabel, const int *npos, int A) {
    using Scan = cub::BlockScan<int, kSelectThreads>;
    using Reduce = cub::BlockReduce<double, kSelectThreads>;
    __shared__ union {
        typename Scan::TempStorage scan;
        typename Reduce::TempStorage reduce;
    } tmp;
    __shared__ int hist[256];
    __shared__ int s_digit, s_left;
    const int i = blockIdx.x, t = threadIdx.x;
    const int64_t base = (int64_t)i * A;
    const int P = npos[i];
    const int K = 3 * P < A ? 3 * P : A;
    const int chunk = (A + kSelectThreads - 1) / kSelectThreads;
    const int a0 = t * chunk, a1 = a0 + chunk < A ? a0 + chunk : A;

    /* the K-th largest key: prefix/mask grow a digit per pass; left = rank still to find */
    unsigned long long prefix = 0, mask = 0;
    int left = K;
    if (K > 0) {
        for (int shift = 56; shift >= 0; shift -= 8) {
            for (int d = t; d < 256; d += kSelectThreads) hist[d] = 0;
            __syncthreads();
            for (int a = a0; a < a1; a++) {
                unsigned long long key = neg_key(ce, glabel, base + a);
                if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255], 1);
            }
            __syncthreads();
            if (t == 0) {
                int cum = 0, d = 255;
                for (; d > 0; d--) {
                    if (cum + hist[d] >= left) break;
                    cum += hist[d];
                }
                s_digit = d;
                s_left = left - cum;
            }
            __syncthreads();
            prefix |= (unsigned long long)s_digit << shift;
            mask |= 255ull << shift;
            left = s_left;
            __syncthreads();
        }
    }
    /* K > 0: keys > prefix are in; `left` of the keys == prefix join, lowest index first */
    int eq = 0;
    if (K > 0)
        for (int a = a0; a < a1; a++) eq += neg_key(ce, glabel, base + a) == prefix;
    int before = 0;
    Scan(tmp.scan).ExclusiveSum(eq, before);
    __syncthreads();
    double conf = 0.0, loc = 0.0;
    for (int a = a0; a < a1; a++) {
        int64_t idx = base + a;
        int pos = glabel[idx] > 0, neg = 0;
        if (K > 0) {
            unsigned long long key = neg_key(ce, glabel, idx);
            if (key > prefix) {
                neg = 1;
            } else if (key == prefix) {
                neg = before < left;
                before++;
            }
        }
        int m = pos + neg;
        mult[idx] = (unsigned char)m;
        if (m) conf += ce[idx] * m;
        loc += loc_term[idx];
    }
    double csum = Reduce(tmp.reduce).Sum(conf);
    __syncthreads();
    double lsum = Reduce(tmp.reduce).Sum(loc);
    if (t == 0) per_image[i] = P > 0 ? (lsum + csum) / P : 0.0;
}

__global__ void grad_k(float *dloc, float *dconf, const float *ploc, const float *pconf,
                       const float *gbox, const int64_t *glabel, const float *anchors,
                       const double *lse, const unsigned char *mult, const int *npos, int A,
                       double inv_n, float grad_scale) {
    int a = blockIdx.x * blockDim.x + threadIdx.x, i = blockIdx.y;
    if (a >= A) return;
    int64_t idx = (int64_t)i * A + a;
    float *dl = dloc + (int64_t)i * 4 * A, *dc = dconf + (int64_t)i * kClasses * A;
    const int P = npos[i];
    const int m = P > 0 ? mult[idx] : 0;
    const int64_t lab = glabel[idx];
    const double s = P > 0 ? inv_n / P : 0.0;
    if (P > 0 && lab > 0) {
        float t[4];
        encode(gbox + idx * 4, anchors + (int64_t)a * 4, t);
        const float *p = ploc + (int64_t)i * 4 * A;
        for (int c = 0; c < 4; c++) {
            float g = (float)(s * smooth_l1_grad((double)p[(int64_t)c * A + a] - (double)t[c]));
            dl[(int64_t)c * A + a] = g * grad_scale;
        }
    } else {
        for (int c = 0; c < 4; c++) dl[(int64_t)c * A + a] = 0.0f;
    }
    const float *x = pconf + (int64_t)i * kClasses * A;
    const double l = lse[idx], sm = s * m;
    for (int k = 0; k < kClasses; k++) {
        float g = 0.0f;
        if (m) g = (float)(sm * (exp((double)x[(int64_t)k * A + a] - l) - (lab == k ? 1.0 : 0.0)));
        dc[(int64_t)k * A + a] = g * grad_scale;
    }
}

} // namespace

extern "C" size_t ck_ssd_loss_scratch_bytes(int n, int A) {
    /* lse, ce, loc (double) + mult (byte) per anchor, P and the bad-label flag per batch */
    return (size_t)n * A * (3 * sizeof(double) + 1) + (size_t)(n + 1) * sizeof(int) + 64;
}

extern "C" void ck_ssd_loss(double *per_image, float *dloc, float *dconf, const float *ploc,
                            const float *pconf, const float *gbox, const int64_t *glabel,
                            const float *anchors, int n, int A, float grad_scale, void *scratch,
                            int *bad_flag, cudaStream_t s) {
    char *p = (char *)scratch;
    double *lse = (double *)p;
    double *ce = lse + (size_t)n * A;
    double *loc = ce + (size_t)n * A;
    int *npos = (int *)(loc + (size_t)n * A);
    unsigned char *mult = (unsigned char *)(npos + n + 1);
    cudaMemsetAsync(npos, 0, (size_t)n * sizeof(int), s);
    dim3 grid((unsigned)((A + kAnchorThreads - 1) / kAnchorThreads), (unsigned)n);
    anchor_k<<<grid, kAnchorThreads, 0, s>>>(lse, ce, loc, npos, bad_flag, ploc, pconf, gbox,
                                              glabel, anchors, A);
    select_k<<<n, kSelectThreads, 0, s>>>(mult, per_image, ce, loc, glabel, npos, A);
    if (dloc && dconf)
        grad_k<<<grid, kAnchorThreads, 0, s>>>(dloc, dconf, ploc, pconf, gbox, glabel, anchors,
                                                lse, mult, npos, A, 1.0 / n, grad_scale);
}
