/* The op table (DESIGN.md section 4): every numerical operation the network needs, as function
 * pointers a backend fills in. Model code calls the ssd_* dispatch functions at the bottom of
 * this file, which validate shapes, dtypes and devices once, so backends may assume valid input.
 *
 * Conventions for every op
 * - Arguments: outputs first, then inputs, then saved state, then the descriptor.
 * - Tensors are dense, row-major, NCHW for images, on the backend's device.
 * - Activation outputs and activation gradients are OVERWRITTEN.
 * - Parameter gradients (conv dweight/dbias, BN dgamma/dbeta) ACCUMULATE (+=), so a caller
 *   zeroes them once per step and every op adds its share.
 * - All tensors of one call share one dtype and layout. `ref` runs f32 and f64; `cpu` runs f32.
 * - Except for activations in the backend's activation form (be->act_custom): the `cpu`
 *   backend with native bf16 math also runs the activation ops (conv, batch norm, ReLU,
 *   maxpool, add, copy, fill, scale) on bf16 channels-last tensors (SSD_LAYOUT_NHWC; on `cpu`
 *   a bf16 activation is always NHWC). With them the parameters (weights, biases, BN's
 *   per-channel tensors and all their gradients) stay f32 row-major, and a convolution's input
 *   and output may differ in form (f32 row-major images in, bf16 NHWC out; bf16 NHWC features
 *   in, f32 row-major head outputs out). The rounding: each op computes in f32 from the
 *   widened operands and rounds its activation outputs once to bf16 (nearest even); maxpool's
 *   backward adds each routed gradient into the bf16 dinp with a rounding per addition, in
 *   output order (PyTorch's bf16 kernel).
 *
 * Op semantics (PyTorch's, which the reference runs):
 * - conv2d: cross-correlation, groups 1, dilation 1, symmetric zero padding; weight (K,C,R,S),
 *   optional bias (K). out (N,K,P,Q) with P = (H + 2*pad_h - R)/stride_h + 1.
 * - batchnorm_train_forward: y = gamma*(x-mean)/sqrt(var+eps) + beta with the batch mean and
 *   BIASED batch variance over (N,H,W); then `+ residual` if residual != NULL, then ReLU if
 *   desc->relu. save_mean/save_var receive the batch mean and biased variance (C).
 *   Running stats: r <- (1-momentum)*r + momentum*batch, the variance unbiased (x n/(n-1)).
 * - batchnorm_backward: dout is the gradient w.r.t. the forward's final output `out`. If
 *   desc->relu, dout is masked where out <= 0. dresidual (if non-NULL) receives the masked
 *   dout (overwrite). dinp is overwritten, dgamma/dbeta accumulate.
 * - batchnorm_infer_forward: as train forward with the running statistics; nothing updated.
 * - relu_backward: dinp = dout where out > 0 else 0.
 * - maxpool: window kernel x kernel, stride, padding acting as -inf. Backward routes each
 *   output gradient to the FIRST maximum of its window in row-major scan order (PyTorch CPU).
 * - copy_rows: `rows` blocks of `cols` elements, block r read at src + src_off + r*src_ld and
 *   written at dst + dst_off + r*dst_ld (element offsets; the two ranges must not overlap).
 *   This is how the heads' outputs are gathered into (N,4,8732)/(N,81,8732) and scattered back.
 * - sgd_update: torch.optim.SGD on a flat buffer: g = grad + wd*p; buf = first_step ? g :
 *   momentum*buf + (1-dampening)*g; g = nesterov ? g + momentum*buf : buf; p -= lr*g. */
#ifndef SSD_BACKEND_BACKEND_H
#define SSD_BACKEND_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"

typedef enum ssd_op {
    SSD_OP_CONV2D_FWD = 0,
    SSD_OP_CONV2D_BWD_DATA,
    SSD_OP_CONV2D_BWD_WEIGHTS,
    SSD_OP_BN_TRAIN_FWD,
    SSD_OP_BN_BWD,
    SSD_OP_BN_INFER_FWD,
    SSD_OP_RELU_FWD,
    SSD_OP_RELU_BWD,
    SSD_OP_MAXPOOL_FWD,
    SSD_OP_MAXPOOL_BWD,
    SSD_OP_ADD,
    SSD_OP_COPY,
    SSD_OP_FILL,
    SSD_OP_SCALE,
    SSD_OP_SGD,
    SSD_OP_COPY_ROWS,
    SSD_OP_SSD_LOSS, /* optional: backends without it leave the loss to the host */
    SSD_OP_COUNT
} ssd_op;

const char *ssd_op_name(ssd_op op);

typedef struct ssd_conv_desc {
    int stride_h, stride_w;
    int pad_h, pad_w;
} ssd_conv_desc;

typedef struct ssd_bn_desc {
    double eps;      /* 1e-5 in the reference */
    double momentum; /* 0.1 in the reference */
    bool relu;       /* apply ReLU after the (optional) residual add */
} ssd_bn_desc;

typedef struct ssd_pool_desc {
    int kernel, stride, pad;
} ssd_pool_desc;

typedef struct ssd_sgd_desc {
    double lr, momentum, weight_decay, dampening;
    bool nesterov;
    bool first_step; /* torch creates the momentum buffer as g on the first step */
} ssd_sgd_desc;

/* Counters a backend keeps so layout conversions and primitive creation stay visible. */
typedef struct ssd_backend_stats {
    uint64_t reorders;       /* layout conversions executed */
    uint64_t weight_reorders; /* of which of weights, biases and their gradients (the rest
                                 convert activations and their gradients) */
    uint64_t reorder_bytes;  /* bytes they moved (source side) */
    uint64_t prims_created;  /* primitives / plans created (cache misses) */
    uint64_t prims_reused;   /* cache hits */
    char last_impl[160];     /* implementation that ran the last conv/bn/pool op */
} ssd_backend_stats;

typedef struct ssd_backend ssd_backend;

typedef struct ssd_backend_ops {
    /* memory: device allocations of `bytes`, 64-byte aligned on host */
    void *(*alloc)(ssd_backend *be, size_t bytes);
    void (*free)(ssd_backend *be, void *p);
    void (*copy_to_host)(ssd_backend *be, void *dst_host, const void *src, size_t bytes);
    void (*copy_from_host)(ssd_backend *be, void *dst, const void *src_host, size_t bytes);
    void (*sync)(ssd_backend *be);
    /* whether `op` runs in dtype `dt` on this backend */
    bool (*supports)(ssd_backend *be, ssd_op op, ssd_dtype dt);

    void (*conv2d_forward)(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                           const ssd_tensor *weight, const ssd_tensor *bias /* nullable */,
                           const ssd_conv_desc *d);
    void (*conv2d_backward_data)(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                                 const ssd_tensor *weight, const ssd_conv_desc *d);
    void (*conv2d_backward_weights)(ssd_backend *be, ssd_tensor *dweight,
                                    ssd_tensor *dbias /* nullable */, const ssd_tensor *dout,
                                    const ssd_tensor *inp, const ssd_conv_desc *d);
    /* Optional: both backward passes of one convolution from the same dout (weights, then
     * data), results identical to the two calls; lets a backend convert dout once. NULL: the
     * dispatcher makes the two calls. */
    void (*conv2d_backward)(ssd_backend *be, ssd_tensor *dweight, ssd_tensor *dbias,
                            ssd_tensor *dinp, const ssd_tensor *dout, const ssd_tensor *inp,
                            const ssd_tensor *weight, const ssd_conv_desc *d);

    void (*batchnorm_train_forward)(ssd_backend *be, ssd_tensor *out, ssd_tensor *save_mean,
                                    ssd_tensor *save_var, ssd_tensor *running_mean,
                                    ssd_tensor *running_var, const ssd_tensor *inp,
                                    const ssd_tensor *gamma, const ssd_tensor *beta,
                                    const ssd_tensor *residual /* nullable */,
                                    const ssd_bn_desc *d);
    void (*batchnorm_backward)(ssd_backend *be, ssd_tensor *dinp,
                               ssd_tensor *dresidual /* nullable */, ssd_tensor *dgamma,
                               ssd_tensor *dbeta, const ssd_tensor *dout, const ssd_tensor *out,
                               const ssd_tensor *inp, const ssd_tensor *gamma,
                               const ssd_tensor *save_mean, const ssd_tensor *save_var,
                               const ssd_bn_desc *d);
    void (*batchnorm_infer_forward)(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                                    const ssd_tensor *gamma, const ssd_tensor *beta,
                                    const ssd_tensor *running_mean,
                                    const ssd_tensor *running_var,
                                    const ssd_tensor *residual /* nullable */,
                                    const ssd_bn_desc *d);

    void (*relu_forward)(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp);
    void (*relu_backward)(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                          const ssd_tensor *out);

    void (*maxpool_forward)(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                            const ssd_pool_desc *d);
    void (*maxpool_backward)(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                             const ssd_tensor *inp, const ssd_pool_desc *d);

    /* out = a + b (out may alias a or b) */
    void (*add)(ssd_backend *be, ssd_tensor *out, const ssd_tensor *a, const ssd_tensor *b);
    void (*copy)(ssd_backend *be, ssd_tensor *dst, const ssd_tensor *src);
    void (*fill)(ssd_backend *be, ssd_tensor *t, double value);
    /* out = alpha * inp (out may alias inp) */
    void (*scale)(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp, double alpha);
    void (*sgd_update)(ssd_backend *be, ssd_tensor *param, ssd_tensor *momentum_buf,
                       const ssd_tensor *grad, const ssd_sgd_desc *d);
    void (*copy_rows)(ssd_backend *be, ssd_tensor *dst, int64_t dst_off, int64_t dst_ld,
                      const ssd_tensor *src, int64_t src_off, int64_t src_ld, int64_t rows,
                      int64_t cols);
    /* Optional (NULL: the runner computes the loss on the host with loss/ssd_loss.h): the SSD
     * loss of loss/ssd_loss.h on the device. per_image (n) f64 receives loss_n; dloc (n,4,A)
     * and dconf (n,81,A) receive the gradient of the batch loss times grad_scale (overwrite).
     * ploc (n,4,A), pconf (n,81,A) and gbox (n,A,4) are f32, glabel (n,A) i64, anchors (A,4) the
     * anchors' f32 xywh. A label outside 0..80 is a bug (abort), as on the host. */
    void (*ssd_loss)(ssd_backend *be, ssd_tensor *per_image, ssd_tensor *dloc, ssd_tensor *dconf,
                     const ssd_tensor *ploc, const ssd_tensor *pconf, const ssd_tensor *gbox,
                     const ssd_tensor *glabel, const ssd_tensor *anchors, float grad_scale);

    /* Optional: collectives on the device between the ranks of a data-parallel job (cuda:
     * NCCL). coll_init joins the job: rank 0 makes the communicator's id and `bcast` (a
     * broadcast from rank 0 through the job's process group, e.g. MPI) hands it out; `agree`
     * returns whether every rank's `ok` is true (all ranks call it), so a rank that fails to
     * join makes all of them fall back together. false with *why filled when unavailable.
     * coll_allreduce_mean: t <- the mean of t over the ranks. coll_bcast: t <- rank root's t. */
    bool (*coll_init)(ssd_backend *be, int rank, int world,
                      void (*bcast)(void *ctx, void *buf, size_t bytes),
                      bool (*agree)(void *ctx, bool ok), void *ctx, char *why, size_t len);
    void (*coll_allreduce_mean)(ssd_backend *be, ssd_tensor *t);
    void (*coll_bcast)(ssd_backend *be, ssd_tensor *t, int root);
    /* Optional: page-locked host memory (uploads from it run at DMA speed). */
    void *(*host_alloc)(ssd_backend *be, size_t bytes);
    void (*host_free)(ssd_backend *be, void *p);

    void (*destroy)(ssd_backend *be);
} ssd_backend_ops;

struct ssd_backend {
    const char *name; /* "ref", "cpu", "cuda" */
    const ssd_backend_ops *ops;
    ssd_device device;
    ssd_backend_stats stats;
    /* how the convolutions compute, for reports (NULL: f32): cpu "f32+winograd", "f32",
     * "bf16-native", "bf16-emulated" */
    const char *conv_math;
    /* The form the model keeps activations and their gradients in between layers when
     * act_custom is set (else the model's own dtype, row-major): cpu with native bf16 math
     * sets bf16 NHWC, so nothing is converted between the convolutions and the layers around
     * them. */
    bool act_custom;
    ssd_dtype act_dtype;
    ssd_layout act_layout;
    void *impl; /* backend-private state (caches, engine, scratch) */
};

/* ---- lifecycle ---- */

/* Names of the backends compiled into this build, NULL-terminated. */
const char *const *ssd_backend_names(void);
/* The backend commands use when none is named: "cpu" when built in, else "ref". */
const char *ssd_backend_default_name(void);
/* Creates a backend by name; unknown or not-built names give SSD_ERR_ARG / SSD_ERR_UNSUPPORTED
 * with a message listing what is available. */
ssd_status ssd_backend_create(const char *name, ssd_backend **out, ssd_error *err);
void ssd_backend_destroy(ssd_backend *be);

/* Backend constructors (one per compiled backend). */
ssd_backend *ssd_backend_ref_create(void);
ssd_backend *ssd_backend_cpu_create(ssd_error *err);
/* NULL with *err filled when no GPU can be used (no device, no driver, cuDNN fails to start). */
ssd_backend *ssd_backend_cuda_create(ssd_error *err);

/* ---- tensors on a backend ---- */
ssd_tensor ssd_backend_tensor_alloc(ssd_backend *be, ssd_dtype dt, int ndim, const int64_t *shape,
                                    const char *name);
void ssd_backend_tensor_free(ssd_backend *be, ssd_tensor *t);
/* Host <-> backend copies of whole tensors of equal shape and dtype. */
void ssd_backend_upload(ssd_backend *be, ssd_tensor *dst, const ssd_tensor *src_host);
void ssd_backend_download(ssd_backend *be, ssd_tensor *dst_host, const ssd_tensor *src);
/* A new row-major host tensor (same shape and name) holding src converted to dtype dt. */
ssd_tensor ssd_backend_download_as(ssd_backend *be, const ssd_tensor *src, ssd_dtype dt);

/* ---- shape helpers ---- */
int64_t ssd_conv_out_size(int64_t in, int64_t kernel, int stride, int pad);

/* ---- validated dispatch (abort with a clear message on a violated precondition) ---- */
void ssd_conv2d_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                        const ssd_tensor *weight, const ssd_tensor *bias, const ssd_conv_desc *d);
void ssd_conv2d_backward_data(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                              const ssd_tensor *weight, const ssd_conv_desc *d);
void ssd_conv2d_backward_weights(ssd_backend *be, ssd_tensor *dweight, ssd_tensor *dbias,
                                 const ssd_tensor *dout, const ssd_tensor *inp,
                                 const ssd_conv_desc *d);
/* ssd_conv2d_backward_weights then ssd_conv2d_backward_data (dinp overwritten) from one dout,
 * bit-identical to the two calls; dbias nullable. */
void ssd_conv2d_backward(ssd_backend *be, ssd_tensor *dweight, ssd_tensor *dbias,
                         ssd_tensor *dinp, const ssd_tensor *dout, const ssd_tensor *inp,
                         const ssd_tensor *weight, const ssd_conv_desc *d);
void ssd_batchnorm_train_forward(ssd_backend *be, ssd_tensor *out, ssd_tensor *save_mean,
                                 ssd_tensor *save_var, ssd_tensor *running_mean,
                                 ssd_tensor *running_var, const ssd_tensor *inp,
                                 const ssd_tensor *gamma, const ssd_tensor *beta,
                                 const ssd_tensor *residual, const ssd_bn_desc *d);
void ssd_batchnorm_backward(ssd_backend *be, ssd_tensor *dinp, ssd_tensor *dresidual,
                            ssd_tensor *dgamma, ssd_tensor *dbeta, const ssd_tensor *dout,
                            const ssd_tensor *out, const ssd_tensor *inp, const ssd_tensor *gamma,
                            const ssd_tensor *save_mean, const ssd_tensor *save_var,
                            const ssd_bn_desc *d);
void ssd_batchnorm_infer_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                                 const ssd_tensor *gamma, const ssd_tensor *beta,
                                 const ssd_tensor *running_mean, const ssd_tensor *running_var,
                                 const ssd_tensor *residual, const ssd_bn_desc *d);
void ssd_relu_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp);
void ssd_relu_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                       const ssd_tensor *out);
void ssd_maxpool_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                         const ssd_pool_desc *d);
void ssd_maxpool_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                          const ssd_tensor *inp, const ssd_pool_desc *d);
void ssd_add(ssd_backend *be, ssd_tensor *out, const ssd_tensor *a, const ssd_tensor *b);
void ssd_copy(ssd_backend *be, ssd_tensor *dst, const ssd_tensor *src);
void ssd_fill(ssd_backend *be, ssd_tensor *t, double value);
void ssd_scale(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp, double alpha);
void ssd_sgd_update(ssd_backend *be, ssd_tensor *param, ssd_tensor *momentum_buf,
                    const ssd_tensor *grad, const ssd_sgd_desc *d);
void ssd_copy_rows(ssd_backend *be, ssd_tensor *dst, int64_t dst_off, int64_t dst_ld,
                   const ssd_tensor *src, int64_t src_off, int64_t src_ld, int64_t rows,
                   int64_t cols);
/* Host memory for data the backend uploads often: the backend's pinned memory where it has
 * some (cuda), else 64-byte aligned memory. ctx is the ssd_backend (the loader's hook form). */
void *ssd_backend_pinned_alloc(void *ctx, size_t bytes);
void ssd_backend_pinned_free(void *ctx, void *p);
/* Whether the backend computes the SSD loss itself (ops->ssd_loss). */
bool ssd_backend_has_loss(const ssd_backend *be);
void ssd_loss_on_backend(ssd_backend *be, ssd_tensor *per_image, ssd_tensor *dloc,
                         ssd_tensor *dconf, const ssd_tensor *ploc, const ssd_tensor *pconf,
                         const ssd_tensor *gbox, const ssd_tensor *glabel,
                         const ssd_tensor *anchors, float grad_scale);

#endif
