/* `ref`: the oracle backend. Plain C loops in f32 and f64 (kernels in ref_kernels.inc). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/host.h"
#include "core/log.h"
#include "core/mem.h"

#define T float
#define SUF _f32
#define FMA fmaf
#include "backend/ref/ref_kernels.inc"
#undef T
#undef SUF
#undef FMA
#define T double
#define SUF _f64
#define FMA fma
#include "backend/ref/ref_kernels.inc"
#undef T
#undef SUF
#undef FMA

/* Typed data pointers of an optional tensor. */
#define P32(t) ((float *)((t) ? (t)->data : NULL))
#define P64(t) ((double *)((t) ? (t)->data : NULL))

static bool ref_supports(ssd_backend *be, ssd_op op, ssd_dtype dt) {
    (void)be;
    (void)op;
    return dt == SSD_F32 || dt == SSD_F64;
}

/* Conv dims from (input, weight, output). */
#define CONV_DIMS(inp, w, out)                                                               \
    int64_t N = (inp)->shape[0], C = (inp)->shape[1], H = (inp)->shape[2], W = (inp)->shape[3]; \
    int64_t K = (w)->shape[0], R = (w)->shape[2], S = (w)->shape[3];                         \
    int64_t P = (out)->shape[2], Q = (out)->shape[3]

static void ref_conv2d_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                               const ssd_tensor *w, const ssd_tensor *bias,
                               const ssd_conv_desc *d) {
    CONV_DIMS(inp, w, out);
    if (inp->dtype == SSD_F32)
        conv_fwd_f32(P32(out), P32(inp), P32(w), P32(bias), N, C, H, W, K, R, S, P, Q,
                     d->stride_h, d->stride_w, d->pad_h, d->pad_w);
    else
        conv_fwd_f64(P64(out), P64(inp), P64(w), P64(bias), N, C, H, W, K, R, S, P, Q,
                     d->stride_h, d->stride_w, d->pad_h, d->pad_w);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "ref:direct");
}

static void ref_conv2d_backward_data(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                                     const ssd_tensor *w, const ssd_conv_desc *d) {
    CONV_DIMS(dinp, w, dout);
    if (dinp->dtype == SSD_F32)
        conv_bwd_data_f32(P32(dinp), P32(dout), P32(w), N, C, H, W, K, R, S, P, Q, d->stride_h,
                          d->stride_w, d->pad_h, d->pad_w);
    else
        conv_bwd_data_f64(P64(dinp), P64(dout), P64(w), N, C, H, W, K, R, S, P, Q, d->stride_h,
                          d->stride_w, d->pad_h, d->pad_w);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "ref:direct");
}

static void ref_conv2d_backward_weights(ssd_backend *be, ssd_tensor *dw, ssd_tensor *db,
                                        const ssd_tensor *dout, const ssd_tensor *inp,
                                        const ssd_conv_desc *d) {
    CONV_DIMS(inp, dw, dout);
    if (inp->dtype == SSD_F32)
        conv_bwd_weights_f32(P32(dw), P32(db), P32(dout), P32(inp), N, C, H, W, K, R, S, P, Q,
                             d->stride_h, d->stride_w, d->pad_h, d->pad_w);
    else
        conv_bwd_weights_f64(P64(dw), P64(db), P64(dout), P64(inp), N, C, H, W, K, R, S, P, Q,
                             d->stride_h, d->stride_w, d->pad_h, d->pad_w);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "ref:direct");
}

#define BN_DIMS(x) int64_t N = (x)->shape[0], C = (x)->shape[1], HW = (x)->shape[2] * (x)->shape[3]

static void ref_bn_train_fwd(ssd_backend *be, ssd_tensor *out, ssd_tensor *smean,
                             ssd_tensor *svar, ssd_tensor *rmean, ssd_tensor *rvar,
                             const ssd_tensor *inp, const ssd_tensor *gamma,
                             const ssd_tensor *beta, const ssd_tensor *res,
                             const ssd_bn_desc *d) {
    BN_DIMS(inp);
    if (inp->dtype == SSD_F32)
        bn_train_fwd_f32(P32(out), P32(smean), P32(svar), P32(rmean), P32(rvar), P32(inp),
                         P32(gamma), P32(beta), P32(res), N, C, HW, d->eps, d->momentum, d->relu);
    else
        bn_train_fwd_f64(P64(out), P64(smean), P64(svar), P64(rmean), P64(rvar), P64(inp),
                         P64(gamma), P64(beta), P64(res), N, C, HW, d->eps, d->momentum, d->relu);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "ref:bn");
}

static void ref_bn_bwd(ssd_backend *be, ssd_tensor *dinp, ssd_tensor *dres, ssd_tensor *dgamma,
                       ssd_tensor *dbeta, const ssd_tensor *dout, const ssd_tensor *out,
                       const ssd_tensor *inp, const ssd_tensor *gamma, const ssd_tensor *smean,
                       const ssd_tensor *svar, const ssd_bn_desc *d) {
    BN_DIMS(inp);
    if (inp->dtype == SSD_F32)
        bn_bwd_f32(P32(dinp), P32(dres), P32(dgamma), P32(dbeta), P32(dout), P32(out), P32(inp),
                   P32(gamma), P32(smean), P32(svar), N, C, HW, d->eps, d->relu);
    else
        bn_bwd_f64(P64(dinp), P64(dres), P64(dgamma), P64(dbeta), P64(dout), P64(out), P64(inp),
                   P64(gamma), P64(smean), P64(svar), N, C, HW, d->eps, d->relu);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "ref:bn");
}

static void ref_bn_infer_fwd(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                             const ssd_tensor *gamma, const ssd_tensor *beta,
                             const ssd_tensor *rmean, const ssd_tensor *rvar,
                             const ssd_tensor *res, const ssd_bn_desc *d) {
    BN_DIMS(inp);
    if (inp->dtype == SSD_F32)
        bn_infer_fwd_f32(P32(out), P32(inp), P32(gamma), P32(beta), P32(rmean), P32(rvar),
                         P32(res), N, C, HW, d->eps, d->relu);
    else
        bn_infer_fwd_f64(P64(out), P64(inp), P64(gamma), P64(beta), P64(rmean), P64(rvar),
                         P64(res), N, C, HW, d->eps, d->relu);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "ref:bn");
}

static void ref_relu_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp) {
    int64_t n = ssd_tensor_numel(inp);
    if (inp->dtype == SSD_F32) relu_fwd_f32(P32(out), P32(inp), n);
    else relu_fwd_f64(P64(out), P64(inp), n);
}

static void ref_relu_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                              const ssd_tensor *out) {
    int64_t n = ssd_tensor_numel(out);
    if (out->dtype == SSD_F32) relu_bwd_f32(P32(dinp), P32(dout), P32(out), n);
    else relu_bwd_f64(P64(dinp), P64(dout), P64(out), n);
}

static void ref_maxpool_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                                const ssd_pool_desc *d) {
    int64_t NC = inp->shape[0] * inp->shape[1];
    if (inp->dtype == SSD_F32)
        maxpool_fwd_f32(P32(out), P32(inp), NC, inp->shape[2], inp->shape[3], out->shape[2],
                        out->shape[3], d->kernel, d->stride, d->pad);
    else
        maxpool_fwd_f64(P64(out), P64(inp), NC, inp->shape[2], inp->shape[3], out->shape[2],
                        out->shape[3], d->kernel, d->stride, d->pad);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "ref:pool");
}

static void ref_maxpool_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                                 const ssd_tensor *inp, const ssd_pool_desc *d) {
    int64_t NC = inp->shape[0] * inp->shape[1];
    if (inp->dtype == SSD_F32)
        maxpool_bwd_f32(P32(dinp), P32(dout), P32(inp), NC, inp->shape[2], inp->shape[3],
                        dout->shape[2], dout->shape[3], d->kernel, d->stride, d->pad);
    else
        maxpool_bwd_f64(P64(dinp), P64(dout), P64(inp), NC, inp->shape[2], inp->shape[3],
                        dout->shape[2], dout->shape[3], d->kernel, d->stride, d->pad);
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "ref:pool");
}

static void ref_add(ssd_backend *be, ssd_tensor *out, const ssd_tensor *a, const ssd_tensor *b) {
    int64_t n = ssd_tensor_numel(a);
    if (a->dtype == SSD_F32) add_f32(P32(out), P32(a), P32(b), n);
    else add_f64(P64(out), P64(a), P64(b), n);
}

static void ref_copy(ssd_backend *be, ssd_tensor *dst, const ssd_tensor *src) {
    if (dst->data != src->data) memmove(dst->data, src->data, ssd_tensor_nbytes(src));
}

static void ref_fill(ssd_backend *be, ssd_tensor *t, double v) {
    int64_t n = ssd_tensor_numel(t);
    if (t->dtype == SSD_F32) fill_f32(P32(t), v, n);
    else fill_f64(P64(t), v, n);
}

static void ref_scale(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp, double alpha) {
    int64_t n = ssd_tensor_numel(inp);
    if (inp->dtype == SSD_F32) scale_f32(P32(out), P32(inp), alpha, n);
    else scale_f64(P64(out), P64(inp), alpha, n);
}

static void ref_sgd_update(ssd_backend *be, ssd_tensor *param, ssd_tensor *buf,
                           const ssd_tensor *grad, const ssd_sgd_desc *d) {
    int64_t n = ssd_tensor_numel(param);
    if (param->dtype == SSD_F32) sgd_f32(P32(param), P32(buf), P32(grad), n, d);
    else sgd_f64(P64(param), P64(buf), P64(grad), n, d);
}

static void ref_destroy(ssd_backend *be) { free(be); }

static const ssd_backend_ops k_ref_ops = {
    .alloc = ssd_host_alloc,
    .free = ssd_host_free,
    .copy_to_host = ssd_host_copy,
    .copy_from_host = ssd_host_copy,
    .sync = ssd_host_sync,
    .supports = ref_supports,
    .conv2d_forward = ref_conv2d_forward,
    .conv2d_backward_data = ref_conv2d_backward_data,
    .conv2d_backward_weights = ref_conv2d_backward_weights,
    .batchnorm_train_forward = ref_bn_train_fwd,
    .batchnorm_backward = ref_bn_bwd,
    .batchnorm_infer_forward = ref_bn_infer_fwd,
    .relu_forward = ref_relu_forward,
    .relu_backward = ref_relu_backward,
    .maxpool_forward = ref_maxpool_forward,
    .maxpool_backward = ref_maxpool_backward,
    .add = ref_add,
    .copy = ref_copy,
    .fill = ref_fill,
    .scale = ref_scale,
    .sgd_update = ref_sgd_update,
    .copy_rows = ssd_host_copy_rows,
    .destroy = ref_destroy,
};

ssd_backend *ssd_backend_ref_create(void) {
    ssd_backend *be = ssd_xcalloc(1, sizeof *be);
    be->name = "ref";
    be->ops = &k_ref_ops;
    be->device.kind = SSD_DEVICE_HOST;
    be->device.index = 0;
    return be;
}
