/* `cuda`: the GPU backend (f32, NCHW). Convolutions run on cuDNN with the algorithm chosen once
 * per shape by timing (cudnnFind*), restricted to deterministic algorithms without TF32, so a
 * run is reproducible and f32 means f32. Everything else is our own kernels
 * (cuda_kernels.cu). One stream carries all work; host copies synchronise it.
 *
 * SSD_CUDA_MATH=tf32 (ssd train/bench --tf32) lets the convolutions use TF32 tensor cores
 * (10-bit mantissa products, float32 sums), as PyTorch does by default for cuDNN convolutions;
 * everything else stays f32. SSD_CUDA_MATH=bf16 (ssd train --autocast, ssd bench --dtype
 * bf16) runs each convolution on bf16 tensor cores in NHWC, as PyTorch autocast does for
 * convolutions: input, weight and output gradient are rounded to bf16 and transposed to NHWC
 * by our kernels, cuDNN sums in f32, and the result is widened back to the f32 NCHW tensor
 * (weight gradients are added to the f32 ones: the master weights and everything outside the
 * convolutions stay f32).
 *
 * Device choice: SSD_CUDA_DEVICE if set, else the MPI local rank modulo the GPUs present, else
 * 0. SSD_SYNC_DEBUG=1 synchronises after every op and names the op that failed. */
#include <cuda_runtime_api.h>
#include <cudnn.h>
#ifdef SSD_HAVE_NCCL
#include <nccl.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_info.h"
#include "backend/cuda/cuda_kernels.h"
#include "backend/cuda/cuda_prof.h"
#include "core/log.h"
#include "core/mem.h"

#define CU_CHECK(call)                                                                         \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        SSD_ASSERT(e_ == cudaSuccess, "CUDA: %s: %s", #call, cudaGetErrorString(e_));          \
    } while (0)
#define DNN_CHECK(call)                                                                        \
    do {                                                                                       \
        cudnnStatus_t s_ = (call);                                                             \
        SSD_ASSERT(s_ == CUDNN_STATUS_SUCCESS, "cuDNN: %s: %s", #call, cudnnGetErrorString(s_)); \
    } while (0)

/* One convolution shape: its descriptors and the algorithm of each pass, found on first use.
 * Passes: 0 forward, 1 backward-data, 2 backward-filter. In bf16 mode a pass runs on the NHWC
 * bf16 descriptors (xb, yb, wb, convb) unless cuDNN has no deterministic algorithm for them,
 * then on the f32 ones. cuDNN's Find may time an algorithm under another math type than the
 * descriptor's (e.g. plain FMA bf16 kernels under TENSOR_OP_MATH); the algorithm only runs with
 * that math type set, so each pass keeps it and sets it before the call. */
typedef struct conv_key {
    int n, c, h, w, k, r, s, sh, sw, ph, pw;
} conv_key;

typedef struct conv_entry {
    conv_key key;
    int P, Q;
    cudnnTensorDescriptor_t x, y, bias, xb, yb;
    cudnnFilterDescriptor_t wd, wb;
    cudnnConvolutionDescriptor_t conv, convb;
    bool found[3], bf16[3];
    int algo[3];
    cudnnMathType_t math[3]; /* the math type the algorithm was timed with */
    size_t ws[3];
} conv_entry;

typedef struct cuda_impl {
    int device, sm_count;
    bool sync_debug, tf32, bf16;
    cudaStream_t stream;
    cudnnHandle_t dnn;
    void *ws;
    size_t ws_bytes;
    double *part; /* batch-norm partial sums */
    size_t part_n;
    float *coef; /* batch-norm per-channel coefficients */
    size_t coef_n;
    conv_entry *convs;
    int n_convs, cap_convs;
    void *loss_scratch; /* the device loss's per-anchor scratch */
    size_t loss_scratch_bytes;
    int *bad_label; /* device flag of the loss kernels */
    void *pool_arg; /* max-pool backward: each output's argmax in its window */
    size_t pool_arg_bytes;
    struct shadow *shadows; /* bf16 mode: NHWC bf16 copies of convolution inputs and weights */
    int n_shadows, cap_shadows;
    bool use_shadows;
    void *cvt[3]; /* bf16 mode: NHWC bf16 copies of the input, output and weight */
    size_t cvt_bytes[3];
#ifdef SSD_HAVE_NCCL
    ncclComm_t nccl; /* NULL until coll_init succeeded */
#endif
    cu_prof *prof; /* SSD_CUDA_PROFILE: GPU time per op (NULL: off) */
} cuda_impl;

static cuda_impl *impl(ssd_backend *be) { return be->impl; }

static void shadows_drop_range(cuda_impl *I, const void *p, size_t bytes);
static void shadows_drop_all(cuda_impl *I);

#define F(t) ((float *)(t)->data)
#define CF(t) ((const float *)(t)->data)

/* Checks the launches of one op, and charges its GPU time to `op` when profiling. */
static void after_op(ssd_backend *be, const char *op) {
    cuda_impl *I = impl(be);
    cu_prof_mark(I->prof, "op %s", op);
    cudaError_t e = cudaGetLastError();
    SSD_ASSERT(e == cudaSuccess, "CUDA: launching %s: %s", op, cudaGetErrorString(e));
    if (I->sync_debug) {
        e = cudaStreamSynchronize(I->stream);
        SSD_ASSERT(e == cudaSuccess, "CUDA: %s failed (SSD_SYNC_DEBUG): %s", op,
                   cudaGetErrorString(e));
    }
}

/* ---- memory ---- */

static void *cu_alloc(ssd_backend *be, size_t bytes) {
    (void)be;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    SSD_ASSERT(e == cudaSuccess, "CUDA: cannot allocate %zu bytes on the GPU: %s", bytes,
               cudaGetErrorString(e));
    return p;
}

static void cu_free(ssd_backend *be, void *p) {
    if (!p) return;
    shadows_drop_all(impl(be)); /* the freed block's size is not known here */
    CU_CHECK(cudaFree(p));
}

static void cu_to_host(ssd_backend *be, void *dst, const void *src, size_t bytes) {
    cuda_impl *I = impl(be);
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, I->stream));
    CU_CHECK(cudaStreamSynchronize(I->stream));
    cu_prof_restart(I->prof);
}

static void cu_from_host(ssd_backend *be, void *dst, const void *src, size_t bytes) {
    cuda_impl *I = impl(be);
    if (I->n_shadows) shadows_drop_range(I, dst, bytes);
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, I->stream));
    CU_CHECK(cudaStreamSynchronize(I->stream)); /* the caller may free or reuse src at once */
    cu_prof_restart(I->prof);
}

static void *cu_host_alloc(ssd_backend *be, size_t bytes) {
    (void)be;
    void *p = NULL;
    cudaError_t e = cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault);
    SSD_ASSERT(e == cudaSuccess, "CUDA: cannot allocate %zu bytes of pinned host memory: %s",
               bytes, cudaGetErrorString(e));
    return p;
}

static void cu_host_free(ssd_backend *be, void *p) {
    (void)be;
    if (p) CU_CHECK(cudaFreeHost(p));
}

static void cu_sync(ssd_backend *be) {
    CU_CHECK(cudaStreamSynchronize(impl(be)->stream));
    cu_prof_restart(impl(be)->prof);
}

static bool cu_supports(ssd_backend *be, ssd_op op, ssd_dtype dt) {
    (void)be;
    (void)op;
    return dt == SSD_F32;
}

/* Grows a scratch buffer (contents not kept). */
static void *grow(void **buf, size_t *have, size_t need) {
    if (need > *have) {
        if (*buf) CU_CHECK(cudaFree(*buf));
        *buf = NULL;
        CU_CHECK(cudaMalloc(buf, need));
        *have = need;
    }
    return *buf;
}

static void *workspace(ssd_backend *be, size_t bytes) {
    cuda_impl *I = impl(be);
    return bytes ? grow(&I->ws, &I->ws_bytes, bytes) : NULL;
}

static int bn_splits(cuda_impl *I, int N, int C);
static void bn_scratch(ssd_backend *be, int C, int S, double **part, float **coef);

/* ---- bf16 shadows ----
 * In bf16 mode a convolution reads its input x and weight w as NHWC bf16. The conversion of a
 * tensor is kept as its shadow, keyed by the tensor's address and shape, and reused while the
 * tensor is unchanged: the backward-filter pass reads the shadow its forward made of x, a
 * feature map feeding two heads is converted once, and a weight once per update instead of
 * twice. Every op of this backend that writes device memory drops the shadows its outputs
 * overlap (`wrote`), so a shadow is never older than its tensor; freeing memory and the
 * collectives drop them all. SSD_CUDA_SHADOWS=0 turns them off (then every pass converts). */
typedef struct shadow {
    const void *src;
    int64_t shape[4];
    uint16_t *bf16; /* numel bf16 */
    size_t cap;     /* bytes allocated at bf16 */
    bool valid;
} shadow;

static void shadows_drop_range(cuda_impl *I, const void *p, size_t bytes) {
    const char *a = p, *b = a + bytes;
    for (int i = 0; i < I->n_shadows; i++) {
        shadow *h = &I->shadows[i];
        if (!h->valid) continue;
        const char *s0 = h->src;
        int64_t n = h->shape[0] * h->shape[1] * h->shape[2] * h->shape[3];
        const char *s1 = s0 + (size_t)n * sizeof(float);
        if (s0 < b && a < s1) h->valid = false;
    }
}

static void shadows_drop_all(cuda_impl *I) {
    for (int i = 0; i < I->n_shadows; i++) I->shadows[i].valid = false;
}

/* A write to t (NULL: nothing) by the op being run. */
static void wrote(cuda_impl *I, const ssd_tensor *t) {
    if (t && I->n_shadows) shadows_drop_range(I, t->data, ssd_tensor_nbytes(t));
}

static void to_bf16(cuda_impl *I, uint16_t *dst, const ssd_tensor *t);

/* t (4-d f32) as NHWC bf16: its valid shadow, else a fresh conversion into its shadow (or, with
 * shadows off, into the conversion buffer `slot`). */
static uint16_t *bf16_of(cuda_impl *I, const ssd_tensor *t, uint16_t *slot) {
    if (!I->use_shadows) {
        to_bf16(I, slot, t);
        return slot;
    }
    shadow *h = NULL;
    for (int i = 0; i < I->n_shadows && !h; i++)
        if (I->shadows[i].src == t->data && !memcmp(I->shadows[i].shape, t->shape, sizeof h->shape))
            h = &I->shadows[i];
    if (h && h->valid) return h->bf16;
    if (!h) { /* a new tensor, or a known address with another shape: reuse an invalid slot */
        for (int i = 0; i < I->n_shadows && !h; i++)
            if (!I->shadows[i].valid) h = &I->shadows[i];
        if (!h) {
            if (I->n_shadows == I->cap_shadows) {
                I->cap_shadows = I->cap_shadows ? 2 * I->cap_shadows : 128;
                I->shadows = ssd_xrealloc(I->shadows, (size_t)I->cap_shadows * sizeof *I->shadows);
            }
            h = &I->shadows[I->n_shadows++];
            memset(h, 0, sizeof *h);
        }
        h->src = t->data;
        memcpy(h->shape, t->shape, sizeof h->shape);
    }
    size_t need = (size_t)ssd_tensor_numel(t) * sizeof(uint16_t);
    if (need > h->cap) {
        if (h->bf16) CU_CHECK(cudaFree(h->bf16));
        h->bf16 = NULL;
        CU_CHECK(cudaMalloc((void **)&h->bf16, need));
        h->cap = need;
    }
    to_bf16(I, h->bf16, t);
    h->valid = true;
    return h->bf16;
}

/* ---- convolution ---- */

static conv_key make_key(const ssd_tensor *x, const ssd_tensor *w, const ssd_conv_desc *d) {
    conv_key k = {(int)x->shape[0], (int)x->shape[1], (int)x->shape[2], (int)x->shape[3],
                  (int)w->shape[0], (int)w->shape[2], (int)w->shape[3], d->stride_h, d->stride_w,
                  d->pad_h, d->pad_w};
    return k;
}

static void set_conv_desc(cudnnConvolutionDescriptor_t c, const conv_key *k,
                          cudnnMathType_t math) {
    DNN_CHECK(cudnnSetConvolution2dDescriptor(c, k->ph, k->pw, k->sh, k->sw, 1, 1,
                                              CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    DNN_CHECK(cudnnSetConvolutionMathType(c, math));
}

static conv_entry *conv_lookup(ssd_backend *be, const ssd_tensor *x, const ssd_tensor *w,
                               const ssd_conv_desc *d) {
    cuda_impl *I = impl(be);
    conv_key k = make_key(x, w, d);
    for (int i = 0; i < I->n_convs; i++)
        if (memcmp(&I->convs[i].key, &k, sizeof k) == 0) return &I->convs[i];
    if (I->n_convs == I->cap_convs) {
        I->cap_convs = I->cap_convs ? 2 * I->cap_convs : 64;
        I->convs = ssd_xrealloc(I->convs, (size_t)I->cap_convs * sizeof *I->convs);
    }
    conv_entry *e = &I->convs[I->n_convs++];
    memset(e, 0, sizeof *e);
    e->key = k;
    e->P = (int)ssd_conv_out_size(k.h, k.r, k.sh, k.ph);
    e->Q = (int)ssd_conv_out_size(k.w, k.s, k.sw, k.pw);
    cudnnTensorDescriptor_t *td[] = {&e->x, &e->y, &e->bias, &e->xb, &e->yb};
    for (int i = 0; i < 5; i++) DNN_CHECK(cudnnCreateTensorDescriptor(td[i]));
    DNN_CHECK(cudnnCreateFilterDescriptor(&e->wd));
    DNN_CHECK(cudnnCreateFilterDescriptor(&e->wb));
    DNN_CHECK(cudnnCreateConvolutionDescriptor(&e->conv));
    DNN_CHECK(cudnnCreateConvolutionDescriptor(&e->convb));
    const cudnnDataType_t F32 = CUDNN_DATA_FLOAT, B16 = CUDNN_DATA_BFLOAT16;
    DNN_CHECK(cudnnSetTensor4dDescriptor(e->x, CUDNN_TENSOR_NCHW, F32, k.n, k.c, k.h, k.w));
    DNN_CHECK(cudnnSetTensor4dDescriptor(e->y, CUDNN_TENSOR_NCHW, F32, k.n, k.k, e->P, e->Q));
    DNN_CHECK(cudnnSetTensor4dDescriptor(e->bias, CUDNN_TENSOR_NCHW, F32, 1, k.k, 1, 1));
    DNN_CHECK(cudnnSetFilter4dDescriptor(e->wd, F32, CUDNN_TENSOR_NCHW, k.k, k.c, k.r, k.s));
    /* f32 means f32 (no TF32 tensor cores) unless tf32 was asked for */
    set_conv_desc(e->conv, &k, I->tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH);
    DNN_CHECK(cudnnSetTensor4dDescriptor(e->xb, CUDNN_TENSOR_NHWC, B16, k.n, k.c, k.h, k.w));
    DNN_CHECK(cudnnSetTensor4dDescriptor(e->yb, CUDNN_TENSOR_NHWC, B16, k.n, k.k, e->P, e->Q));
    DNN_CHECK(cudnnSetFilter4dDescriptor(e->wb, B16, CUDNN_TENSOR_NHWC, k.k, k.c, k.r, k.s));
    set_conv_desc(e->convb, &k, CUDNN_TENSOR_OP_MATH); /* bf16 products, f32 sums */
    be->stats.prims_created++;
    return e;
}

/* Index of the fastest result that succeeded, is deterministic and (f32 mode) used no tensor
 * cores; -1 if none. In f32 mode the pass then runs under CUDNN_FMA_MATH whatever math type
 * the result reports (CUDNN_DEFAULT_MATH would permit TF32 on A100 and later). */
#define PICK_ALGO(perf, n, allow_tensor_ops, out_idx)                                          \
    do {                                                                                       \
        (out_idx) = -1;                                                                        \
        for (int i_ = 0; i_ < (n) && (out_idx) < 0; i_++)                                     \
            if ((perf)[i_].status == CUDNN_STATUS_SUCCESS &&                                   \
                (perf)[i_].determinism == CUDNN_DETERMINISTIC &&                               \
                ((allow_tensor_ops) || ((perf)[i_].mathType != CUDNN_TENSOR_OP_MATH &&         \
                                        (perf)[i_].mathType !=                                 \
                                            CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)))           \
                (out_idx) = i_;                                                                \
    } while (0)

/* Times the algorithms of one pass with one descriptor set; true and e->algo/ws[pass] set when
 * an acceptable one exists. */
static bool find_pass(cuda_impl *I, conv_entry *e, int pass, bool bf16) {
    cudnnTensorDescriptor_t x = bf16 ? e->xb : e->x, y = bf16 ? e->yb : e->y;
    cudnnFilterDescriptor_t w = bf16 ? e->wb : e->wd;
    cudnnConvolutionDescriptor_t c = bf16 ? e->convb : e->conv;
    const bool tensor_ops = bf16 || I->tf32;
    /* the mode's math type (an earlier pass may have left its algorithm's on the descriptor) */
    DNN_CHECK(cudnnSetConvolutionMathType(c, tensor_ops ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH));
    int n = 0, idx = -1;
    cudnnStatus_t st;
    if (pass == 0) {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        st = cudnnFindConvolutionForwardAlgorithm(I->dnn, x, w, c, y,
                                                  CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf);
        if (st == CUDNN_STATUS_SUCCESS) PICK_ALGO(perf, n, tensor_ops, idx);
        if (idx >= 0)
            e->algo[0] = perf[idx].algo, e->ws[0] = perf[idx].memory,
            e->math[0] = tensor_ops ? perf[idx].mathType : CUDNN_FMA_MATH;
    } else if (pass == 1) {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        st = cudnnFindConvolutionBackwardDataAlgorithm(
            I->dnn, w, y, c, x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf);
        if (st == CUDNN_STATUS_SUCCESS) PICK_ALGO(perf, n, tensor_ops, idx);
        if (idx >= 0)
            e->algo[1] = perf[idx].algo, e->ws[1] = perf[idx].memory,
            e->math[1] = tensor_ops ? perf[idx].mathType : CUDNN_FMA_MATH;
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        st = cudnnFindConvolutionBackwardFilterAlgorithm(
            I->dnn, x, y, c, w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf);
        if (st == CUDNN_STATUS_SUCCESS) PICK_ALGO(perf, n, tensor_ops, idx);
        if (idx >= 0)
            e->algo[2] = perf[idx].algo, e->ws[2] = perf[idx].memory,
            e->math[2] = tensor_ops ? perf[idx].mathType : CUDNN_FMA_MATH;
    }
    cudaGetLastError(); /* a refused configuration leaves nothing behind */
    return idx >= 0;
}

static const char *const k_pass_names[3] = {"forward", "backward-data", "backward-filter"};

/* The pass's algorithm: bf16 where asked for and available, else f32. */
static void prepare_pass(ssd_backend *be, conv_entry *e, int pass) {
    cuda_impl *I = impl(be);
    if (e->found[pass]) {
        be->stats.prims_reused++;
        return;
    }
    e->bf16[pass] = I->bf16 && find_pass(I, e, pass, true);
    if (!e->bf16[pass])
        SSD_ASSERT(find_pass(I, e, pass, false),
                   "cuDNN: no deterministic f32 algorithm for the %s pass of conv "
                   "N%d %d->%d %dx%d k%dx%d",
                   k_pass_names[pass], e->key.n, e->key.c, e->key.k, e->key.h, e->key.w,
                   e->key.r, e->key.s);
    e->found[pass] = true;
}

/* bf16 copies (NHWC) in the conversion buffers: slot 0 input, 1 output, 2 weight */
static uint16_t *cvt_buf(cuda_impl *I, int slot, int64_t elems) {
    return grow(&I->cvt[slot], &I->cvt_bytes[slot], (size_t)elems * sizeof(uint16_t));
}

static void to_bf16(cuda_impl *I, uint16_t *dst, const ssd_tensor *t) {
    ck_nchw_f32_to_nhwc_bf16(dst, CF(t), (int)t->shape[0], (int)t->shape[1],
                             t->shape[2] * t->shape[3], I->stream);
}

static void from_bf16(cuda_impl *I, ssd_tensor *t, const uint16_t *src, bool accumulate) {
    ck_nhwc_bf16_to_nchw_f32(F(t), src, (int)t->shape[0], (int)t->shape[1],
                             t->shape[2] * t->shape[3], accumulate, I->stream);
}

/* The descriptor of the pass, with the math type its algorithm was timed with. */
static cudnnConvolutionDescriptor_t pass_desc(const conv_entry *e, int pass) {
    cudnnConvolutionDescriptor_t c = e->bf16[pass] ? e->convb : e->conv;
    DNN_CHECK(cudnnSetConvolutionMathType(c, e->math[pass]));
    return c;
}

static void set_impl(ssd_backend *be, const conv_entry *e, int pass) {
    static const char *const what[3] = {"fwd", "bwd_data", "bwd_filter"};
    cuda_impl *I = impl(be);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "cudnn:%s:algo%d%s", what[pass],
             e->algo[pass], e->bf16[pass] ? ":bf16-nhwc" : (I->tf32 ? ":tf32" : ""));
}

/* The operands one pass hands cuDNN: the f32 NCHW tensors themselves, or (bf16 pass) their
 * NHWC bf16 copies in the conversion buffers, with the matching descriptors. */
typedef struct conv_ops {
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    void *x, *y, *w;
} conv_ops;

/* What every pass starts with: the shape's entry, the pass's algorithm, its workspace and the
 * operands (x, y, w: the user tensors of the pass's input, output-side and weight). */
static conv_entry *conv_begin(ssd_backend *be, const ssd_tensor *x, const ssd_tensor *w,
                              const ssd_tensor *y, const ssd_conv_desc *d, int pass, void **ws,
                              conv_ops *o) {
    cuda_impl *I = impl(be);
    conv_entry *e = conv_lookup(be, x, w, d);
    prepare_pass(be, e, pass);
    *ws = workspace(be, e->ws[pass]);
    if (e->bf16[pass]) {
        *o = (conv_ops){e->xb, e->yb, e->wb, cvt_buf(I, 0, ssd_tensor_numel(x)),
                        cvt_buf(I, 1, ssd_tensor_numel(y)), cvt_buf(I, 2, ssd_tensor_numel(w))};
    } else {
        *o = (conv_ops){e->x, e->y, e->wd, x->data, y->data, w->data};
    }
    return e;
}

/* Profiling: charges the GPU time since the last mark to `what` (e.g. "cudnn fwd") of this
 * shape and pass. */
static void mark_conv(cuda_impl *I, const char *what, const conv_entry *e, int pass) {
    if (!I->prof) return;
    const conv_key *k = &e->key;
    cu_prof_mark(I->prof, "%s %d->%d %dx%d k%d s%d algo%d%s", what, k->c, k->k, k->h, k->w, k->r,
                 k->sh, e->algo[pass], e->bf16[pass] ? " bf16" : "");
}

static void conv_end(ssd_backend *be, const conv_entry *e, int pass, const char *op) {
    set_impl(be, e, pass);
    after_op(be, op);
}

static void conv_fwd(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                     const ssd_tensor *weight, const ssd_tensor *bias, const ssd_conv_desc *d) {
    cuda_impl *I = impl(be);
    void *ws;
    conv_ops o;
    conv_entry *e = conv_begin(be, inp, weight, out, d, 0, &ws, &o);
    const float one = 1.0f, zero = 0.0f;
    wrote(I, out);
    if (e->bf16[0]) {
        o.x = bf16_of(I, inp, o.x);
        o.w = bf16_of(I, weight, o.w);
        cu_prof_mark(I->prof, "cvt fwd-in");
    }
    DNN_CHECK(cudnnConvolutionForward(I->dnn, &one, o.xd, o.x, o.wd, o.w, pass_desc(e, 0),
                                      (cudnnConvolutionFwdAlgo_t)e->algo[0], ws, e->ws[0], &zero,
                                      o.yd, o.y));
    mark_conv(I, "cudnn fwd", e, 0);
    if (e->bf16[0]) {
        from_bf16(I, out, o.y, false);
        cu_prof_mark(I->prof, "cvt fwd-out");
    }
    if (bias) {
        DNN_CHECK(cudnnAddTensor(I->dnn, &one, e->bias, bias->data, &one, e->y, out->data));
        cu_prof_mark(I->prof, "cudnn bias-add");
    }
    conv_end(be, e, 0, "conv2d_forward");
}

/* dy_ready: a bf16 pass finds dout's NHWC bf16 copy already in the conversion buffer (the
 * fused backward made it for the weights pass) */
static void bwd_data(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                     const ssd_tensor *weight, const ssd_conv_desc *d, bool dy_ready) {
    cuda_impl *I = impl(be);
    void *ws;
    conv_ops o;
    conv_entry *e = conv_begin(be, dinp, weight, dout, d, 1, &ws, &o);
    const float one = 1.0f, zero = 0.0f;
    wrote(I, dinp);
    if (e->bf16[1]) {
        if (!dy_ready) to_bf16(I, o.y, dout);
        o.w = bf16_of(I, weight, o.w);
        cu_prof_mark(I->prof, "cvt bwd_data-in");
    }
    DNN_CHECK(cudnnConvolutionBackwardData(I->dnn, &one, o.wd, o.w, o.yd, o.y, pass_desc(e, 1),
                                           (cudnnConvolutionBwdDataAlgo_t)e->algo[1], ws,
                                           e->ws[1], &zero, o.xd, o.x));
    mark_conv(I, "cudnn bwd_data", e, 1);
    if (e->bf16[1]) {
        from_bf16(I, dinp, o.x, false);
        cu_prof_mark(I->prof, "cvt bwd_data-out");
    }
    conv_end(be, e, 1, "conv2d_backward_data");
}

static void conv_bwd_data(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                          const ssd_tensor *weight, const ssd_conv_desc *d) {
    bwd_data(be, dinp, dout, weight, d, false);
}

static void conv_bwd_weights(ssd_backend *be, ssd_tensor *dweight, ssd_tensor *dbias,
                             const ssd_tensor *dout, const ssd_tensor *inp,
                             const ssd_conv_desc *d) {
    cuda_impl *I = impl(be);
    void *ws;
    conv_ops o;
    conv_entry *e = conv_begin(be, inp, dweight, dout, d, 2, &ws, &o);
    const float one = 1.0f, zero = 0.0f;
    const bool b16 = e->bf16[2];
    wrote(I, dweight);
    wrote(I, dbias);
    if (b16) {
        o.x = bf16_of(I, inp, o.x);
        to_bf16(I, o.y, dout);
        cu_prof_mark(I->prof, "cvt bwd_filter-in");
    }
    /* parameter gradients accumulate: beta = 1 into the f32 tensor; a bf16 pass writes its
     * copy (beta = 0) and from_bf16 adds it */
    DNN_CHECK(cudnnConvolutionBackwardFilter(I->dnn, &one, o.xd, o.x, o.yd, o.y, pass_desc(e, 2),
                                             (cudnnConvolutionBwdFilterAlgo_t)e->algo[2], ws,
                                             e->ws[2], b16 ? &zero : &one, o.wd, o.w));
    mark_conv(I, "cudnn bwd_filter", e, 2);
    if (b16) {
        from_bf16(I, dweight, o.w, true);
        cu_prof_mark(I->prof, "cvt bwd_filter-out");
    }
    if (dbias) { /* our reduction: cuDNN's took 2.1 ms per batch-128 step, ours reads dout once */
        int N = (int)dout->shape[0], K = (int)dout->shape[1];
        int S = bn_splits(I, N, K);
        double *part;
        float *coef;
        bn_scratch(be, K, S, &part, &coef);
        ck_bias_grad(F(dbias), part, CF(dout), N, K, dout->shape[2] * dout->shape[3], S,
                     I->stream);
        cu_prof_mark(I->prof, "op bias_grad");
    }
    conv_end(be, e, 2, "conv2d_backward_weights");
}

/* Both passes from one dout: weights, then data (the op table's order). When both run in bf16,
 * dout is converted once: the weights pass leaves its bf16 copy in the conversion buffer and the
 * data pass reads it there (the buffers keep their addresses, as both passes size them alike). */
static void conv_bwd(ssd_backend *be, ssd_tensor *dweight, ssd_tensor *dbias, ssd_tensor *dinp,
                     const ssd_tensor *dout, const ssd_tensor *inp, const ssd_tensor *weight,
                     const ssd_conv_desc *d) {
    conv_entry *e = conv_lookup(be, inp, weight, d);
    prepare_pass(be, e, 1); /* both algorithms first: finding one runs convolutions */
    prepare_pass(be, e, 2);
    const bool share = e->bf16[1] && e->bf16[2];
    conv_bwd_weights(be, dweight, dbias, dout, inp, d);
    bwd_data(be, dinp, dout, weight, d, share);
}

/* ---- batch norm (own kernels) ---- */

/* Splits of the batch per channel so that the reductions fill the GPU. */
static int bn_splits(cuda_impl *I, int N, int C) {
    int want = (4 * I->sm_count + C - 1) / C;
    if (want < 1) want = 1;
    return want < N ? want : N;
}

static void bn_scratch(ssd_backend *be, int C, int S, double **part, float **coef) {
    cuda_impl *I = impl(be);
    *part = grow((void **)&I->part, &I->part_n, (size_t)2 * C * S * sizeof(double));
    *coef = grow((void **)&I->coef, &I->coef_n, (size_t)4 * C * sizeof(float));
}

static void bn_train_fwd(ssd_backend *be, ssd_tensor *out, ssd_tensor *save_mean,
                         ssd_tensor *save_var, ssd_tensor *running_mean, ssd_tensor *running_var,
                         const ssd_tensor *inp, const ssd_tensor *gamma, const ssd_tensor *beta,
                         const ssd_tensor *residual, const ssd_bn_desc *d) {
    wrote(impl(be), out), wrote(impl(be), save_mean), wrote(impl(be), save_var);
    wrote(impl(be), running_mean), wrote(impl(be), running_var);
    cuda_impl *I = impl(be);
    int N = (int)inp->shape[0], C = (int)inp->shape[1];
    int64_t HW = inp->shape[2] * inp->shape[3];
    int S = bn_splits(I, N, C);
    double *part;
    float *coef;
    bn_scratch(be, C, S, &part, &coef);
    ck_bn_stats(part, CF(inp), N, C, HW, S, I->stream);
    ck_bn_fwd_finalize(coef, F(save_mean), F(save_var), F(running_mean), F(running_var),
                       CF(gamma), CF(beta), part, C, S, (double)N * (double)HW, d->eps,
                       d->momentum, I->stream);
    ck_bn_apply(F(out), CF(inp), residual ? CF(residual) : NULL, coef, N, C, HW, d->relu,
                I->stream);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "cuda:bn_train");
    after_op(be, "batchnorm_train_forward");
}

static void bn_bwd(ssd_backend *be, ssd_tensor *dinp, ssd_tensor *dresidual, ssd_tensor *dgamma,
                   ssd_tensor *dbeta, const ssd_tensor *dout, const ssd_tensor *out,
                   const ssd_tensor *inp, const ssd_tensor *gamma, const ssd_tensor *save_mean,
                   const ssd_tensor *save_var, const ssd_bn_desc *d) {
    wrote(impl(be), dinp), wrote(impl(be), dresidual);
    wrote(impl(be), dgamma), wrote(impl(be), dbeta);
    cuda_impl *I = impl(be);
    int N = (int)inp->shape[0], C = (int)inp->shape[1];
    int64_t HW = inp->shape[2] * inp->shape[3];
    int S = bn_splits(I, N, C);
    double *part;
    float *coef;
    bn_scratch(be, C, S, &part, &coef);
    ck_bn_bwd_reduce(part, CF(dout), CF(out), CF(inp), CF(save_mean), N, C, HW, S, d->relu,
                     I->stream);
    ck_bn_bwd_finalize(coef, F(dgamma), F(dbeta), part, CF(gamma), CF(save_mean), CF(save_var),
                       C, S, (double)N * (double)HW, d->eps, I->stream);
    ck_bn_bwd_apply(F(dinp), dresidual ? F(dresidual) : NULL, CF(dout), CF(out), CF(inp), coef, N,
                    C, HW, d->relu, I->stream);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "cuda:bn_bwd");
    after_op(be, "batchnorm_backward");
}

static void bn_infer_fwd(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                         const ssd_tensor *gamma, const ssd_tensor *beta,
                         const ssd_tensor *running_mean, const ssd_tensor *running_var,
                         const ssd_tensor *residual, const ssd_bn_desc *d) {
    wrote(impl(be), out);
    cuda_impl *I = impl(be);
    int N = (int)inp->shape[0], C = (int)inp->shape[1];
    int64_t HW = inp->shape[2] * inp->shape[3];
    double *part;
    float *coef;
    bn_scratch(be, C, 1, &part, &coef);
    ck_bn_infer_coef(coef, CF(gamma), CF(beta), CF(running_mean), CF(running_var), C, d->eps,
                     I->stream);
    ck_bn_apply(F(out), CF(inp), residual ? CF(residual) : NULL, coef, N, C, HW, d->relu,
                I->stream);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "cuda:bn_infer");
    after_op(be, "batchnorm_infer_forward");
}

/* ---- the rest ---- */

static void relu_fwd(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp) {
    wrote(impl(be), out);
    ck_relu_fwd(F(out), CF(inp), ssd_tensor_numel(inp), impl(be)->stream);
    after_op(be, "relu_forward");
}

static void relu_bwd(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                     const ssd_tensor *out) {
    wrote(impl(be), dinp);
    ck_relu_bwd(F(dinp), CF(dout), CF(out), ssd_tensor_numel(out), impl(be)->stream);
    after_op(be, "relu_backward");
}

static void pool_fwd(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                     const ssd_pool_desc *d) {
    wrote(impl(be), out);
    ck_maxpool_fwd(F(out), CF(inp), inp->shape[0] * inp->shape[1], (int)inp->shape[2],
                   (int)inp->shape[3], (int)out->shape[2], (int)out->shape[3], d->kernel,
                   d->stride, d->pad, impl(be)->stream);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "cuda:pool");
    after_op(be, "maxpool_forward");
}

static void pool_bwd(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                     const ssd_tensor *inp, const ssd_pool_desc *d) {
    wrote(impl(be), dinp);
    cuda_impl *I = impl(be);
    SSD_ASSERT(d->kernel * d->kernel <= 127, "maxpool_backward: kernel %d too large for cuda",
               d->kernel);
    void *arg = grow(&I->pool_arg, &I->pool_arg_bytes, (size_t)ssd_tensor_numel(dout));
    ck_maxpool_bwd(F(dinp), CF(dout), CF(inp), inp->shape[0] * inp->shape[1], (int)inp->shape[2],
                   (int)inp->shape[3], (int)dout->shape[2], (int)dout->shape[3], d->kernel,
                   d->stride, d->pad, arg, I->stream);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "cuda:pool");
    after_op(be, "maxpool_backward");
}

static void cu_add(ssd_backend *be, ssd_tensor *out, const ssd_tensor *a, const ssd_tensor *b) {
    wrote(impl(be), out);
    ck_add(F(out), CF(a), CF(b), ssd_tensor_numel(a), impl(be)->stream);
    after_op(be, "add");
}

static void cu_copy(ssd_backend *be, ssd_tensor *dst, const ssd_tensor *src) {
    wrote(impl(be), dst);
    if (dst->data == src->data) return;
    CU_CHECK(cudaMemcpyAsync(dst->data, src->data, ssd_tensor_nbytes(src),
                             cudaMemcpyDeviceToDevice, impl(be)->stream));
    after_op(be, "copy");
}

static void cu_fill(ssd_backend *be, ssd_tensor *t, double value) {
    wrote(impl(be), t);
    ck_fill(F(t), (float)value, ssd_tensor_numel(t), impl(be)->stream);
    after_op(be, "fill");
}

static void cu_scale(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp, double alpha) {
    wrote(impl(be), out);
    ck_scale(F(out), CF(inp), alpha, ssd_tensor_numel(inp), impl(be)->stream);
    after_op(be, "scale");
}

static void cu_sgd(ssd_backend *be, ssd_tensor *param, ssd_tensor *buf, const ssd_tensor *grad,
                   const ssd_sgd_desc *d) {
    wrote(impl(be), param), wrote(impl(be), buf);
    ck_sgd_args a = {.wd = (float)d->weight_decay,
                     .mom = (float)d->momentum,
                     .damp1 = (float)(1.0 - d->dampening),
                     .neg_lr = (float)(-d->lr),
                     .has_wd = d->weight_decay != 0,
                     .has_mom = d->momentum != 0,
                     .first_step = d->first_step,
                     .nesterov = d->nesterov};
    ck_sgd(F(param), F(buf), CF(grad), ssd_tensor_numel(param), a, impl(be)->stream);
    after_op(be, "sgd_update");
}

static void cu_copy_rows(ssd_backend *be, ssd_tensor *dst, int64_t dst_off, int64_t dst_ld,
                         const ssd_tensor *src, int64_t src_off, int64_t src_ld, int64_t rows,
                         int64_t cols) {
    wrote(impl(be), dst);
    size_t es = ssd_dtype_size(src->dtype);
    if (rows <= 0 || cols <= 0) return;
    if (rows == 1) {
        CU_CHECK(cudaMemcpyAsync((char *)dst->data + dst_off * es,
                                 (const char *)src->data + src_off * es, (size_t)cols * es,
                                 cudaMemcpyDeviceToDevice, impl(be)->stream));
        after_op(be, "copy_rows");
        return;
    }
    CU_CHECK(cudaMemcpy2DAsync((char *)dst->data + dst_off * es, (size_t)dst_ld * es,
                               (const char *)src->data + src_off * es, (size_t)src_ld * es,
                               (size_t)cols * es, (size_t)rows, cudaMemcpyDeviceToDevice,
                               impl(be)->stream));
    after_op(be, "copy_rows");
}

static void cu_ssd_loss(ssd_backend *be, ssd_tensor *per_image, ssd_tensor *dloc,
                        ssd_tensor *dconf, const ssd_tensor *ploc, const ssd_tensor *pconf,
                        const ssd_tensor *gbox, const ssd_tensor *glabel,
                        const ssd_tensor *anchors, float grad_scale) {
    wrote(impl(be), per_image), wrote(impl(be), dloc), wrote(impl(be), dconf);
    cuda_impl *I = impl(be);
    int n = (int)ploc->shape[0], A = (int)ploc->shape[2];
    void *scratch = grow(&I->loss_scratch, &I->loss_scratch_bytes, ck_ssd_loss_scratch_bytes(n, A));
    if (!I->bad_label) {
        CU_CHECK(cudaMalloc((void **)&I->bad_label, sizeof(int)));
        CU_CHECK(cudaMemsetAsync(I->bad_label, 0, sizeof(int), I->stream));
    }
    ck_ssd_loss(per_image->data, F(dloc), F(dconf), CF(ploc), CF(pconf), CF(gbox), glabel->data,
                CF(anchors), n, A, grad_scale, scratch, I->bad_label, I->stream);
    after_op(be, "ssd_loss");
    int bad = 0;
    CU_CHECK(cudaMemcpyAsync(&bad, I->bad_label, sizeof bad, cudaMemcpyDeviceToHost, I->stream));
    CU_CHECK(cudaStreamSynchronize(I->stream));
    SSD_ASSERT(!bad, "ssd_loss: a label outside 0..80 in the batch");
}

/* ---- collectives between ranks (NCCL) ---- */

#ifdef SSD_HAVE_NCCL
#define NCCL_CHECK(call)                                                                       \
    do {                                                                                       \
        ncclResult_t r_ = (call);                                                              \
        SSD_ASSERT(r_ == ncclSuccess, "NCCL: %s: %s", #call, ncclGetErrorString(r_));          \
    } while (0)
#endif

static bool cu_coll_init(ssd_backend *be, int rank, int world,
                         void (*bcast)(void *ctx, void *buf, size_t bytes),
                         bool (*agree)(void *ctx, bool ok), void *ctx, char *why, size_t len) {
#ifdef SSD_HAVE_NCCL
    cuda_impl *I = impl(be);
    const char *env = getenv("SSD_NCCL");
    bool wanted = !(env && !strcmp(env, "0"));
    /* every rank makes the same calls whatever fails, so none is left waiting */
    struct {
        int ok;
        ncclUniqueId id;
    } msg;
    memset(&msg, 0, sizeof msg);
    if (rank == 0) msg.ok = wanted && ncclGetUniqueId(&msg.id) == ncclSuccess;
    bcast(ctx, &msg, sizeof msg);
    ncclResult_t r = ncclInvalidUsage;
    if (msg.ok) r = ncclCommInitRank(&I->nccl, world, msg.id, rank);
    bool ok = msg.ok && r == ncclSuccess;
    if (!agree(ctx, ok)) {
        if (r == ncclSuccess && I->nccl) ncclCommDestroy(I->nccl);
        I->nccl = NULL;
        snprintf(why, len, "%s", !wanted ? "SSD_NCCL=0"
                                 : !msg.ok ? "ncclGetUniqueId failed on rank 0"
                                 : r != ncclSuccess ? ncclGetErrorString(r)
                                                    : "another rank could not join NCCL");
        return false;
    }
    return true;
#else
    (void)be, (void)rank, (void)world, (void)bcast, (void)ctx;
    agree(ctx, false);
    snprintf(why, len, "this build has no NCCL");
    return false;
#endif
}

static void cu_coll_allreduce_mean(ssd_backend *be, ssd_tensor *t) {
    shadows_drop_all(impl(be));
#ifdef SSD_HAVE_NCCL
    cuda_impl *I = impl(be);
    SSD_ASSERT(I->nccl, "coll_allreduce_mean before a successful coll_init");
    NCCL_CHECK(ncclAllReduce(t->data, t->data, (size_t)ssd_tensor_numel(t), ncclFloat, ncclAvg,
                             I->nccl, I->stream));
    after_op(be, "coll_allreduce_mean");
#else
    (void)t;
    SSD_ASSERT(false, "backend %s: no NCCL in this build", be->name);
#endif
}

static void cu_coll_bcast(ssd_backend *be, ssd_tensor *t, int root) {
    shadows_drop_all(impl(be));
#ifdef SSD_HAVE_NCCL
    cuda_impl *I = impl(be);
    SSD_ASSERT(I->nccl, "coll_bcast before a successful coll_init");
    NCCL_CHECK(ncclBroadcast(t->data, t->data, ssd_tensor_nbytes(t), ncclChar, root, I->nccl,
                             I->stream));
    after_op(be, "coll_bcast");
#else
    (void)t, (void)root;
    SSD_ASSERT(false, "backend %s: no NCCL in this build", be->name);
#endif
}

static void cu_destroy(ssd_backend *be) {
    cuda_impl *I = impl(be);
    if (I) {
        cudaStreamSynchronize(I->stream);
#ifdef SSD_HAVE_NCCL
        if (I->nccl) ncclCommDestroy(I->nccl);
#endif
        for (int i = 0; i < I->n_convs; i++) {
            conv_entry *e = &I->convs[i];
            cudnnTensorDescriptor_t td[] = {e->x, e->y, e->bias, e->xb, e->yb};
            for (int k = 0; k < 5; k++) cudnnDestroyTensorDescriptor(td[k]);
            cudnnDestroyFilterDescriptor(e->wd);
            cudnnDestroyFilterDescriptor(e->wb);
            cudnnDestroyConvolutionDescriptor(e->conv);
            cudnnDestroyConvolutionDescriptor(e->convb);
        }
        free(I->convs);
        cudaFree(I->ws);
        cudaFree(I->part);
        cudaFree(I->coef);
        cudaFree(I->loss_scratch);
        cudaFree(I->pool_arg);
        for (int k = 0; k < 3; k++) cudaFree(I->cvt[k]);
        for (int k = 0; k < I->n_shadows; k++) cudaFree(I->shadows[k].bf16);
        free(I->shadows);
        cudaFree(I->bad_label);
        cu_prof_destroy(I->prof);
        cudnnDestroy(I->dnn);
        cudaStreamDestroy(I->stream);
        free(I);
    }
    free(be);
}

static const ssd_backend_ops k_cuda_ops = {
    .alloc = cu_alloc,
    .free = cu_free,
    .copy_to_host = cu_to_host,
    .copy_from_host = cu_from_host,
    .sync = cu_sync,
    .supports = cu_supports,
    .conv2d_forward = conv_fwd,
    .conv2d_backward_data = conv_bwd_data,
    .conv2d_backward_weights = conv_bwd_weights,
    .conv2d_backward = conv_bwd,
    .batchnorm_train_forward = bn_train_fwd,
    .batchnorm_backward = bn_bwd,
    .batchnorm_infer_forward = bn_infer_fwd,
    .relu_forward = relu_fwd,
    .relu_backward = relu_bwd,
    .maxpool_forward = pool_fwd,
    .maxpool_backward = pool_bwd,
    .add = cu_add,
    .copy = cu_copy,
    .fill = cu_fill,
    .scale = cu_scale,
    .sgd_update = cu_sgd,
    .copy_rows = cu_copy_rows,
    .ssd_loss = cu_ssd_loss,
    .coll_init = cu_coll_init,
    .coll_allreduce_mean = cu_coll_allreduce_mean,
    .coll_bcast = cu_coll_bcast,
    .host_alloc = cu_host_alloc,
    .host_free = cu_host_free,
    .destroy = cu_destroy,
};

/* The GPU this process uses (see the file comment). */
static int pick_device(int count) {
    const char *env = getenv("SSD_CUDA_DEVICE");
    if (env && *env) return atoi(env);
    const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (!lr) lr = getenv("MPI_LOCALRANKID");
    if (!lr) lr = getenv("SLURM_LOCALID");
    return lr ? atoi(lr) % count : 0;
}

ssd_backend *ssd_backend_cuda_create(ssd_error *err) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count <= 0) {
        ssd_fail(err, SSD_ERR_UNSUPPORTED, "backend 'cuda': no usable NVIDIA GPU (%s)",
                 e != cudaSuccess ? cudaGetErrorString(e) : "no devices");
        cudaGetLastError(); /* clear the sticky-free error for later probes */
        return NULL;
    }
    int dev = pick_device(count);
    if (dev < 0 || dev >= count) {
        ssd_fail(err, SSD_ERR_ARG, "backend 'cuda': device %d requested, %d present", dev, count);
        return NULL;
    }
    e = cudaSetDevice(dev);
    if (e != cudaSuccess) {
        ssd_fail(err, SSD_ERR_UNSUPPORTED, "backend 'cuda': cannot use GPU %d: %s", dev,
                 cudaGetErrorString(e));
        return NULL;
    }
    cuda_impl *I = ssd_xcalloc(1, sizeof *I);
    I->device = dev;
    CU_CHECK(cudaDeviceGetAttribute(&I->sm_count, cudaDevAttrMultiProcessorCount, dev));
    const char *sd = getenv("SSD_SYNC_DEBUG");
    I->sync_debug = sd && *sd && strcmp(sd, "0") != 0;
    const char *math = getenv("SSD_CUDA_MATH");
    if (math && *math && strcmp(math, "tf32") && strcmp(math, "f32") && strcmp(math, "bf16")) {
        ssd_fail(err, SSD_ERR_ARG, "SSD_CUDA_MATH='%s': expected f32, tf32 or bf16", math);
        free(I);
        return NULL;
    }
    I->tf32 = math && !strcmp(math, "tf32");
    I->bf16 = math && !strcmp(math, "bf16");
    const char *shd = getenv("SSD_CUDA_SHADOWS");
    I->use_shadows = I->bf16 && !(shd && !strcmp(shd, "0"));
    CU_CHECK(cudaStreamCreateWithFlags(&I->stream, cudaStreamNonBlocking));
    cudnnStatus_t ds = cudnnCreate(&I->dnn);
    if (ds != CUDNN_STATUS_SUCCESS) {
        ssd_fail(err, SSD_ERR_UNSUPPORTED, "backend 'cuda': cuDNN does not start: %s",
                 cudnnGetErrorString(ds));
        cudaStreamDestroy(I->stream);
        free(I);
        return NULL;
    }
    DNN_CHECK(cudnnSetStream(I->dnn, I->stream));
    I->prof = cu_prof_create(I->stream);
    ssd_backend *be = ssd_xcalloc(1, sizeof *be);
    be->name = "cuda";
    be->ops = &k_cuda_ops;
    be->device.kind = SSD_DEVICE_CUDA;
    be->device.index = dev;
    be->impl = I;
    return be;
}

bool ssd_cuda_describe(ssd_backend *be, ssd_cuda_info *info) {
    memset(info, 0, sizeof *info);
    if (!be || strcmp(be->name, "cuda") != 0) return false;
    cuda_impl *I = impl(be);
    struct cudaDeviceProp p;
    CU_CHECK(cudaGetDeviceProperties(&p, I->device));
    int khz = 0;
    CU_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, I->device));
    snprintf(info->name, sizeof info->name, "%.200s (sm_%d%d, %d SMs)", p.name, p.major, p.minor,
             I->sm_count);
    const double sm_ghz = (double)I->sm_count * khz / 1e6; /* SMs x GHz */
    int lanes = (p.major == 8 && p.minor == 0) ? 64 : (p.major >= 8 ? 128 : 0);
    info->f32_peak = sm_ghz * lanes * 2.0;
    int tc = p.major == 9 ? 2048 : (p.major == 8 && p.minor == 0) ? 1024 : 0;
    info->tf32_peak = sm_ghz * tc;
    info->bf16_peak = sm_ghz * tc * 2.0;
    return true;
}

void ssd_cuda_profile_reset(ssd_backend *be) {
    if (be && !strcmp(be->name, "cuda")) cu_prof_reset(impl(be)->prof);
}

void ssd_cuda_profile_report(ssd_backend *be, FILE *f, int steps) {
    if (be && !strcmp(be->name, "cuda")) cu_prof_report(impl(be)->prof, f, steps);
}
