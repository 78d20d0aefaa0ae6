/* Backend registry, tensors on a backend, and the validating dispatch layer. */
#include "backend/backend.h"

#include <string.h>

#include "core/log.h"
#include "core/mem.h"

static const char *const k_op_names[SSD_OP_COUNT] = {
    "conv2d_forward",      "conv2d_backward_data", "conv2d_backward_weights",
    "batchnorm_train_fwd", "batchnorm_backward",   "batchnorm_infer_fwd",
    "relu_forward",        "relu_backward",        "maxpool_forward",
    "maxpool_backward",    "add",                  "copy",
    "fill",                "scale",                "sgd_update",
    "copy_rows",           "ssd_loss",
};

const char *ssd_op_name(ssd_op op) {
    return (op >= 0 && op < SSD_OP_COUNT) ? k_op_names[op] : "?";
}

/* The one list of compiled-in backends: X(name, constructor). Both tables below expand it. */
#ifdef SSD_HAVE_CPU
#define SSD_BACKEND_CPU_ENTRY X("cpu", ssd_backend_cpu_create)
#else
#define SSD_BACKEND_CPU_ENTRY
#endif
#ifdef SSD_HAVE_CUDA
#define SSD_BACKEND_CUDA_ENTRY X("cuda", ssd_backend_cuda_create)
#else
#define SSD_BACKEND_CUDA_ENTRY
#endif
#define SSD_BACKEND_LIST                                                                       \
    X("ref", create_ref) SSD_BACKEND_CPU_ENTRY SSD_BACKEND_CUDA_ENTRY

/* ref cannot fail to start; cpu can (a bad SSD_CPU_MATH), cuda too (no GPU, no driver). */
static ssd_backend *create_ref(ssd_error *err) {
    (void)err;
    return ssd_backend_ref_create();
}
#ifdef SSD_HAVE_CPU
#endif

typedef struct {
    const char *name;
    ssd_backend *(*create)(ssd_error *err);
} backend_entry;

#define X(name, create) {name, create},
static const backend_entry k_backends[] = {SSD_BACKEND_LIST};
#undef X

#define N_BACKENDS (sizeof k_backends / sizeof k_backends[0])

const char *const *ssd_backend_names(void) {
#define X(name, create) name,
    static const char *const names[] = {SSD_BACKEND_LIST NULL};
#undef X
    return names;
}

const char *ssd_backend_default_name(void) {
#ifdef SSD_HAVE_CPU
    return "cpu";
#else
    return "ref";
#endif
}

ssd_status ssd_backend_create(const char *name, ssd_backend **out, ssd_error *err) {
    *out = NULL;
    for (size_t i = 0; i < N_BACKENDS; i++)
        if (strcmp(name, k_backends[i].name) == 0) {
            *out = k_backends[i].create(err);
            return *out ? SSD_OK : (err ? err->code : SSD_ERR_UNSUPPORTED);
        }
    char avail[128] = "";
    for (size_t i = 0; i < N_BACKENDS; i++) {
        if (i) strncat(avail, ", ", sizeof avail - strlen(avail) - 1);
        strncat(avail, k_backends[i].name, sizeof avail - strlen(avail) - 1);
    }
    if (strcmp(name, "cpu") == 0 || strcmp(name, "cuda") == 0)
        return ssd_fail(err, SSD_ERR_UNSUPPORTED,
                        "backend '%s' is not built into this binary (available: %s)", name, avail);
    return ssd_fail(err, SSD_ERR_ARG, "unknown backend '%s' (available: %s)", name, avail);
}

void ssd_backend_destroy(ssd_backend *be) {
    if (be) be->ops->destroy(be);
}

ssd_tensor ssd_backend_tensor_alloc(ssd_backend *be, ssd_dtype dt, int ndim, const int64_t *shape,
                                    const char *name) {
    ssd_tensor t = ssd_tensor_view(NULL, dt, ndim, shape, name);
    t.device = be->device;
    t.data = be->ops->alloc(be, ssd_tensor_nbytes(&t));
    t.owns = true;
    return t;
}

void ssd_backend_tensor_free(ssd_backend *be, ssd_tensor *t) {
    if (t->owns) be->ops->free(be, t->data);
    t->data = NULL;
    t->owns = false;
}

static void check_same(const ssd_tensor *a, const ssd_tensor *b, const char *what) {
    char sa[96], sb[96];
    SSD_ASSERT(ssd_tensor_same_shape(a, b), "%s: shape %s vs %s ('%s', '%s')", what,
               ssd_shape_str(a, sa, sizeof sa), ssd_shape_str(b, sb, sizeof sb), a->name, b->name);
    SSD_ASSERT(a->dtype == b->dtype, "%s: dtype %s vs %s", what, ssd_dtype_name(a->dtype),
               ssd_dtype_name(b->dtype));
    SSD_ASSERT(a->layout == b->layout, "%s: '%s' and '%s' differ in layout", what, a->name,
               b->name);
}

void ssd_backend_upload(ssd_backend *be, ssd_tensor *dst, const ssd_tensor *src_host) {
    check_same(dst, src_host, "upload");
    SSD_ASSERT(src_host->device.kind == SSD_DEVICE_HOST, "upload source not on host");
    be->ops->copy_from_host(be, dst->data, src_host->data, ssd_tensor_nbytes(src_host));
}

void ssd_backend_download(ssd_backend *be, ssd_tensor *dst_host, const ssd_tensor *src) {
    check_same(dst_host, src, "download");
    SSD_ASSERT(dst_host->device.kind == SSD_DEVICE_HOST, "download target not on host");
    be->ops->copy_to_host(be, dst_host->data, src->data, ssd_tensor_nbytes(src));
}

ssd_tensor ssd_backend_download_as(ssd_backend *be, const ssd_tensor *src, ssd_dtype dt) {
    ssd_tensor raw = ssd_tensor_alloc_host(src->dtype, src->ndim, src->shape, src->name);
    raw.layout = src->layout;
    ssd_backend_download(be, &raw, src);
    if (dt == src->dtype && src->layout == SSD_LAYOUT_ROWMAJOR) return raw;
    ssd_tensor out = ssd_tensor_alloc_host(dt, src->ndim, src->shape, src->name);
    int64_t n = ssd_tensor_numel(src);
    if (src->layout != SSD_LAYOUT_ROWMAJOR) { /* element (n,c,h,w) from its place in the layout */
        const int64_t C = src->shape[1], H = src->shape[2], W = src->shape[3];
        for (int64_t i = 0; i < n; i++) {
            const int64_t b = i / (C * H * W), c = i / (H * W) % C, h = i / W % H, w = i % W;
            ssd_tensor_set(&out, i,
                           ssd_tensor_get(&raw, ssd_layout_offset(src->layout, src->shape, b, c, h, w)));
        }
    } else {
        for (int64_t i = 0; i < n; i++) ssd_tensor_set(&out, i, ssd_tensor_get(&raw, i));
    }
    ssd_tensor_free(&raw);
    return out;
}

int64_t ssd_conv_out_size(int64_t in, int64_t kernel, int stride, int pad) {
    return (in + 2 * pad - kernel) / stride + 1;
}

/* ---- validation helpers ---- */

static void check_tensor(ssd_backend *be, const ssd_tensor *t, const char *op, const char *arg) {
    SSD_ASSERT(t != NULL && t->data != NULL, "%s: %s is NULL", op, arg);
    SSD_ASSERT(t->device.kind == be->device.kind && t->device.index == be->device.index,
               "%s: %s ('%s') lives on another device than backend %s", op, arg, t->name,
               be->name);
    /* a layout other than row-major only as the backend's activation form, and a backend's
     * activation dtype (other than f32) only in its activation layout: the cpu backend reads a
     * bf16 tensor as NHWC */
    const bool act_dt = be->act_custom && be->act_dtype != SSD_F32 && t->dtype == be->act_dtype;
    if (t->layout != SSD_LAYOUT_ROWMAJOR || act_dt)
        SSD_ASSERT(be->act_custom && t->dtype == be->act_dtype && t->layout == be->act_layout &&
                       t->ndim == 4,
                   "%s: %s ('%s') is a %d-d %s %s tensor, not backend %s's activation form", op,
                   arg, t->name, t->ndim, ssd_dtype_name(t->dtype), ssd_layout_name(t->layout),
                   be->name);
    const bool whole_blocks = ssd_layout_holds(t->layout, t->ndim, t->shape);
    /* (a tensor not row-major is 4-d by now: only its channel count can fail) */
    SSD_ASSERT(whole_blocks, "%s: %s ('%s') is nChw16c with %lld channels, not a multiple of 16",
                   op, arg, t->name, (long long)t->shape[1]);
}

/* The dtype of the parameters (weights, BN's per-channel tensors) that go with activations of
 * dtype `act`: bf16 activations keep f32 parameters (the masters, as under autocast). */
static ssd_dtype param_dtype(ssd_dtype act) { return act == SSD_BF16 ? SSD_F32 : act; }

static void check_op(ssd_backend *be, ssd_op op, ssd_dtype dt) {
    SSD_ASSERT(be->ops->supports(be, op, dt), "backend %s does not run %s in %s", be->name,
               ssd_op_name(op), ssd_dtype_name(dt));
}

static void check_dtype(const ssd_tensor *t, ssd_dtype dt, const char *op, const char *arg) {
    SSD_ASSERT(t->dtype == dt, "%s: %s ('%s') is %s, expected %s", op, arg, t->name,
               ssd_dtype_name(t->dtype), ssd_dtype_name(dt));
}

/* dtype and layout both those of `like` */
static void check_form(const ssd_tensor *t, const ssd_tensor *like, const char *op,
                       const char *arg) {
    check_dtype(t, like->dtype, op, arg);
    SSD_ASSERT(t->layout == like->layout, "%s: %s ('%s') is %s, expected %s", op, arg, t->name,
               ssd_layout_name(t->layout), ssd_layout_name(like->layout));
}

static void check_shape(const ssd_tensor *t, int ndim, const int64_t *shape, const char *op,
                        const char *arg) {
    char got[96];
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char want[96];
        ssd_tensor w = ssd_tensor_view(NULL, t->dtype, ndim, shape, NULL);
        ssd_die(__FILE__, __LINE__, "%s: %s ('%s') has shape %s, expected %s", op, arg, t->name,
                ssd_shape_str(t, got, sizeof got), ssd_shape_str(&w, want, sizeof want));
    }
}

/* Checks every conv tensor against (inp, weight, desc); returns nothing, aborts on mismatch. */
static void check_conv(ssd_backend *be, ssd_op op, const ssd_tensor *inp, const ssd_tensor *weight,
                       const ssd_tensor *out, const ssd_tensor *bias, const ssd_conv_desc *d) {
    const char *name = ssd_op_name(op);
    check_tensor(be, inp, name, "input");
    check_tensor(be, weight, name, "weight");
    check_tensor(be, out, name, "output");
    check_op(be, op, inp->dtype);
    check_op(be, op, out->dtype);
    SSD_ASSERT(inp->ndim == 4 && weight->ndim == 4, "%s: input and weight must be 4-d", name);
    SSD_ASSERT(weight->layout == SSD_LAYOUT_ROWMAJOR, "%s: weight '%s' must be row-major", name,
               weight->name);
    SSD_ASSERT(d->stride_h >= 1 && d->stride_w >= 1 && d->pad_h >= 0 && d->pad_w >= 0,
               "%s: bad stride/pad", name);
    SSD_ASSERT(weight->shape[1] == inp->shape[1], "%s: weight '%s' has %lld input channels, input has %lld",
               name, weight->name, (long long)weight->shape[1], (long long)inp->shape[1]);
    int64_t p = ssd_conv_out_size(inp->shape[2], weight->shape[2], d->stride_h, d->pad_h);
    int64_t q = ssd_conv_out_size(inp->shape[3], weight->shape[3], d->stride_w, d->pad_w);
    SSD_ASSERT(p >= 1 && q >= 1, "%s: empty output", name);
    int64_t oshape[4] = {inp->shape[0], weight->shape[0], p, q};
    check_shape(out, 4, oshape, name, "output");
    /* input and output may differ in form (f32 row-major images in, bf16 channels-last out;
     * the heads the other way); parameters are row-major in the parameter dtype */
    SSD_ASSERT(param_dtype(inp->dtype) == param_dtype(out->dtype),
               "%s: input '%s' is %s, output '%s' %s", name, inp->name,
               ssd_dtype_name(inp->dtype), out->name, ssd_dtype_name(out->dtype));
    check_dtype(weight, param_dtype(inp->dtype), name, "weight");
    if (bias) {
        check_tensor(be, bias, name, "bias");
        check_shape(bias, 1, &weight->shape[0], name, "bias");
        check_dtype(bias, param_dtype(inp->dtype), name, "bias");
    }
}

void ssd_conv2d_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                        const ssd_tensor *weight, const ssd_tensor *bias, const ssd_conv_desc *d) {
    check_conv(be, SSD_OP_CONV2D_FWD, inp, weight, out, bias, d);
    be->ops->conv2d_forward(be, out, inp, weight, bias, d);
}

void ssd_conv2d_backward_data(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                              const ssd_tensor *weight, const ssd_conv_desc *d) {
    check_conv(be, SSD_OP_CONV2D_BWD_DATA, dinp, weight, dout, NULL, d);
    be->ops->conv2d_backward_data(be, dinp, dout, weight, d);
}

void ssd_conv2d_backward_weights(ssd_backend *be, ssd_tensor *dweight, ssd_tensor *dbias,
                                 const ssd_tensor *dout, const ssd_tensor *inp,
                                 const ssd_conv_desc *d) {
    check_conv(be, SSD_OP_CONV2D_BWD_WEIGHTS, inp, dweight, dout, dbias, d);
    be->ops->conv2d_backward_weights(be, dweight, dbias, dout, inp, d);
}

void ssd_conv2d_backward(ssd_backend *be, ssd_tensor *dweight, ssd_tensor *dbias,
                         ssd_tensor *dinp, const ssd_tensor *dout, const ssd_tensor *inp,
                         const ssd_tensor *weight, const ssd_conv_desc *d) {
    check_conv(be, SSD_OP_CONV2D_BWD_WEIGHTS, inp, dweight, dout, dbias, d);
    check_conv(be, SSD_OP_CONV2D_BWD_DATA, dinp, weight, dout, NULL, d);
    SSD_ASSERT(dinp->data != dout->data, "conv2d backward: dinp must not alias dout");
    if (be->ops->conv2d_backward) {
        be->ops->conv2d_backward(be, dweight, dbias, dinp, dout, inp, weight, d);
    } else {
        be->ops->conv2d_backward_weights(be, dweight, dbias, dout, inp, d);
        be->ops->conv2d_backward_data(be, dinp, dout, weight, d);
    }
}

static void check_bn(ssd_backend *be, ssd_op op, const ssd_tensor *inp, const ssd_tensor *out,
                     const ssd_tensor *const *per_channel, const char *const *pc_names, int n_pc,
                     const ssd_tensor *residual, const ssd_bn_desc *d) {
    const char *name = ssd_op_name(op);
    check_tensor(be, inp, name, "input");
    check_tensor(be, out, name, "output");
    check_op(be, op, inp->dtype);
    SSD_ASSERT(inp->ndim == 4, "%s: input must be (N,C,H,W)", name);
    check_shape(out, 4, inp->shape, name, "output");
    check_form(out, inp, name, "output");
    SSD_ASSERT(d->eps > 0, "%s: eps must be > 0", name);
    for (int i = 0; i < n_pc; i++) {
        check_tensor(be, per_channel[i], name, pc_names[i]);
        check_shape(per_channel[i], 1, &inp->shape[1], name, pc_names[i]);
        check_dtype(per_channel[i], param_dtype(inp->dtype), name, pc_names[i]);
    }
    if (residual) {
        check_tensor(be, residual, name, "residual");
        check_shape(residual, 4, inp->shape, name, "residual");
        check_form(residual, inp, name, "residual");
    }
}

void ssd_batchnorm_train_forward(ssd_backend *be, ssd_tensor *out, ssd_tensor *save_mean,
                                 ssd_tensor *save_var, ssd_tensor *running_mean,
                                 ssd_tensor *running_var, const ssd_tensor *inp,
                                 const ssd_tensor *gamma, const ssd_tensor *beta,
                                 const ssd_tensor *residual, const ssd_bn_desc *d) {
    const ssd_tensor *pc[] = {save_mean, save_var, running_mean, running_var, gamma, beta};
    const char *pcn[] = {"save_mean", "save_var", "running_mean", "running_var", "gamma", "beta"};
    check_bn(be, SSD_OP_BN_TRAIN_FWD, inp, out, pc, pcn, 6, residual, d);
    SSD_ASSERT(d->momentum >= 0 && d->momentum <= 1, "batchnorm momentum %g", d->momentum);
    SSD_ASSERT(inp->shape[0] * inp->shape[2] * inp->shape[3] > 1,
               "batchnorm training needs more than one value per channel ('%s')", inp->name);
    be->ops->batchnorm_train_forward(be, out, save_mean, save_var, running_mean, running_var, inp,
                                     gamma, beta, residual, d);
}

void ssd_batchnorm_backward(ssd_backend *be, ssd_tensor *dinp, ssd_tensor *dresidual,
                            ssd_tensor *dgamma, ssd_tensor *dbeta, const ssd_tensor *dout,
                            const ssd_tensor *out, const ssd_tensor *inp, const ssd_tensor *gamma,
                            const ssd_tensor *save_mean, const ssd_tensor *save_var,
                            const ssd_bn_desc *d) {
    const ssd_tensor *pc[] = {dgamma, dbeta, gamma, save_mean, save_var};
    const char *pcn[] = {"dgamma", "dbeta", "gamma", "save_mean", "save_var"};
    check_bn(be, SSD_OP_BN_BWD, inp, dinp, pc, pcn, 5, dresidual, d);
    check_tensor(be, dout, "batchnorm_backward", "dout");
    check_shape(dout, 4, inp->shape, "batchnorm_backward", "dout");
    check_form(dout, inp, "batchnorm_backward", "dout");
    if (d->relu) {
        SSD_ASSERT(out != NULL, "batchnorm_backward with relu needs the forward output");
        check_tensor(be, out, "batchnorm_backward", "out");
        check_shape(out, 4, inp->shape, "batchnorm_backward", "out");
        check_form(out, inp, "batchnorm_backward", "out");
    }
    be->ops->batchnorm_backward(be, dinp, dresidual, dgamma, dbeta, dout, out, inp, gamma,
                                save_mean, save_var, d);
}

void ssd_batchnorm_infer_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                                 const ssd_tensor *gamma, const ssd_tensor *beta,
                                 const ssd_tensor *running_mean, const ssd_tensor *running_var,
                                 const ssd_tensor *residual, const ssd_bn_desc *d) {
    const ssd_tensor *pc[] = {gamma, beta, running_mean, running_var};
    const char *pcn[] = {"gamma", "beta", "running_mean", "running_var"};
    check_bn(be, SSD_OP_BN_INFER_FWD, inp, out, pc, pcn, 4, residual, d);
    be->ops->batchnorm_infer_forward(be, out, inp, gamma, beta, running_mean, running_var,
                                     residual, d);
}

static void check_unary(ssd_backend *be, ssd_op op, const ssd_tensor *a, const ssd_tensor *b,
                        const char *an, const char *bn) {
    check_tensor(be, a, ssd_op_name(op), an);
    check_tensor(be, b, ssd_op_name(op), bn);
    check_op(be, op, a->dtype);
    check_shape(b, a->ndim, a->shape, ssd_op_name(op), bn);
    check_form(b, a, ssd_op_name(op), bn);
}

void ssd_relu_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp) {
    check_unary(be, SSD_OP_RELU_FWD, inp, out, "input", "output");
    be->ops->relu_forward(be, out, inp);
}

void ssd_relu_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                       const ssd_tensor *out) {
    check_unary(be, SSD_OP_RELU_BWD, out, dout, "out", "dout");
    check_unary(be, SSD_OP_RELU_BWD, out, dinp, "out", "dinp");
    be->ops->relu_backward(be, dinp, dout, out);
}

static void check_pool(ssd_backend *be, ssd_op op, const ssd_tensor *inp, const ssd_tensor *out,
                       const ssd_pool_desc *d) {
    const char *name = ssd_op_name(op);
    check_tensor(be, inp, name, "input");
    check_tensor(be, out, name, "output");
    check_op(be, op, inp->dtype);
    SSD_ASSERT(inp->ndim == 4, "%s: input must be (N,C,H,W)", name);
    SSD_ASSERT(d->kernel >= 1 && d->stride >= 1 && d->pad >= 0 && 2 * d->pad <= d->kernel,
               "%s: bad kernel/stride/pad %d/%d/%d", name, d->kernel, d->stride, d->pad);
    int64_t oshape[4] = {inp->shape[0], inp->shape[1],
                         ssd_conv_out_size(inp->shape[2], d->kernel, d->stride, d->pad),
                         ssd_conv_out_size(inp->shape[3], d->kernel, d->stride, d->pad)};
    check_shape(out, 4, oshape, name, "output");
    check_form(out, inp, name, "output");
}

void ssd_maxpool_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                         const ssd_pool_desc *d) {
    check_pool(be, SSD_OP_MAXPOOL_FWD, inp, out, d);
    be->ops->maxpool_forward(be, out, inp, d);
}

void ssd_maxpool_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                          const ssd_tensor *inp, const ssd_pool_desc *d) {
    check_pool(be, SSD_OP_MAXPOOL_BWD, inp, dout, d);
    check_unary(be, SSD_OP_MAXPOOL_BWD, inp, dinp, "input", "dinp");
    be->ops->maxpool_backward(be, dinp, dout, inp, d);
}

void ssd_add(ssd_backend *be, ssd_tensor *out, const ssd_tensor *a, const ssd_tensor *b) {
    check_unary(be, SSD_OP_ADD, a, b, "a", "b");
    check_unary(be, SSD_OP_ADD, a, out, "a", "out");
    be->ops->add(be, out, a, b);
}

void ssd_copy(ssd_backend *be, ssd_tensor *dst, const ssd_tensor *src) {
    check_unary(be, SSD_OP_COPY, src, dst, "src", "dst");
    be->ops->copy(be, dst, src);
}

void ssd_fill(ssd_backend *be, ssd_tensor *t, double value) {
    check_tensor(be, t, "fill", "tensor");
    check_op(be, SSD_OP_FILL, t->dtype);
    be->ops->fill(be, t, value);
}

void ssd_scale(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp, double alpha) {
    check_unary(be, SSD_OP_SCALE, inp, out, "input", "output");
    be->ops->scale(be, out, inp, alpha);
}

void ssd_sgd_update(ssd_backend *be, ssd_tensor *param, ssd_tensor *momentum_buf,
                    const ssd_tensor *grad, const ssd_sgd_desc *d) {
    check_unary(be, SSD_OP_SGD, param, grad, "param", "grad");
    check_unary(be, SSD_OP_SGD, param, momentum_buf, "param", "momentum_buf");
    SSD_ASSERT(!d->nesterov || (d->momentum > 0 && d->dampening == 0),
               "nesterov needs momentum > 0 and dampening 0 (as torch.optim.SGD)");
    be->ops->sgd_update(be, param, momentum_buf, grad, d);
}

void ssd_copy_rows(ssd_backend *be, ssd_tensor *dst, int64_t dst_off, int64_t dst_ld,
                   const ssd_tensor *src, int64_t src_off, int64_t src_ld, int64_t rows,
                   int64_t cols) {
    const char *name = ssd_op_name(SSD_OP_COPY_ROWS);
    check_tensor(be, dst, name, "dst");
    check_tensor(be, src, name, "src");
    check_op(be, SSD_OP_COPY_ROWS, src->dtype);
    check_dtype(dst, src->dtype, name, "dst");
    SSD_ASSERT(src->layout == SSD_LAYOUT_ROWMAJOR && dst->layout == SSD_LAYOUT_ROWMAJOR,
               "%s: offsets address row-major tensors only ('%s', '%s')", name, src->name,
               dst->name);
    SSD_ASSERT(rows >= 0 && cols >= 0 && dst_off >= 0 && src_off >= 0, "%s: negative extent",
               name);
    if (rows == 0 || cols == 0) return;
    SSD_ASSERT(dst_ld >= cols && src_ld >= cols, "%s: leading dimension below cols", name);
    int64_t dst_end = dst_off + (rows - 1) * dst_ld + cols;
    int64_t src_end = src_off + (rows - 1) * src_ld + cols;
    SSD_ASSERT(dst_end <= ssd_tensor_numel(dst), "%s: writes past dst ('%s', %lld elements)",
               name, dst->name, (long long)ssd_tensor_numel(dst));
    SSD_ASSERT(src_end <= ssd_tensor_numel(src), "%s: reads past src ('%s', %lld elements)",
               name, src->name, (long long)ssd_tensor_numel(src));
    size_t es = ssd_dtype_size(src->dtype);
    const char *d0 = (const char *)dst->data + dst_off * es, *d1 = (const char *)dst->data + dst_end * es;
    const char *s0 = (const char *)src->data + src_off * es, *s1 = (const char *)src->data + src_end * es;
    SSD_ASSERT(d1 <= s0 || s1 <= d0, "%s: src and dst ranges overlap", name);
    be->ops->copy_rows(be, dst, dst_off, dst_ld, src, src_off, src_ld, rows, cols);
}

void *ssd_backend_pinned_alloc(void *ctx, size_t bytes) {
    ssd_backend *be = ctx;
    return be->ops->host_alloc ? be->ops->host_alloc(be, bytes) : ssd_aligned_alloc(bytes);
}

void ssd_backend_pinned_free(void *ctx, void *p) {
    ssd_backend *be = ctx;
    if (!p) return;
    if (be->ops->host_free) be->ops->host_free(be, p);
    else ssd_aligned_free(p);
}

bool ssd_backend_has_loss(const ssd_backend *be) { return be->ops->ssd_loss != NULL; }

void ssd_loss_on_backend(ssd_backend *be, ssd_tensor *per_image, ssd_tensor *dloc,
                         ssd_tensor *dconf, const ssd_tensor *ploc, const ssd_tensor *pconf,
                         const ssd_tensor *gbox, const ssd_tensor *glabel,
                         const ssd_tensor *anchors, float grad_scale) {
    const char *name = ssd_op_name(SSD_OP_SSD_LOSS);
    SSD_ASSERT(be->ops->ssd_loss, "backend %s has no %s op", be->name, name);
    check_tensor(be, per_image, name, "per_image");
    check_tensor(be, dloc, name, "dloc");
    check_tensor(be, dconf, name, "dconf");
    check_tensor(be, ploc, name, "ploc");
    check_tensor(be, pconf, name, "pconf");
    check_tensor(be, gbox, name, "gbox");
    check_tensor(be, glabel, name, "glabel");
    check_tensor(be, anchors, name, "anchors");
    int64_t n = ploc->shape[0], A = ploc->ndim == 3 ? ploc->shape[2] : -1;
    int64_t s_loc[3] = {n, 4, A}, s_conf[3] = {n, 81, A}, s_box[3] = {n, A, 4}, s_lab[2] = {n, A},
            s_anc[2] = {A, 4}, s_pi[1] = {n};
    check_shape(ploc, 3, s_loc, name, "ploc");
    check_shape(dloc, 3, s_loc, name, "dloc");
    check_shape(pconf, 3, s_conf, name, "pconf");
    check_shape(dconf, 3, s_conf, name, "dconf");
    check_shape(gbox, 3, s_box, name, "gbox");
    check_shape(glabel, 2, s_lab, name, "glabel");
    check_shape(anchors, 2, s_anc, name, "anchors");
    check_shape(per_image, 1, s_pi, name, "per_image");
    const ssd_tensor *f32s[] = {ploc, pconf, gbox, anchors, dloc, dconf};
    for (int i = 0; i < 6; i++) check_dtype(f32s[i], SSD_F32, name, f32s[i]->name);
    check_dtype(glabel, SSD_I64, name, "glabel");
    check_dtype(per_image, SSD_F64, name, "per_image");
    be->ops->ssd_loss(be, per_image, dloc, dconf, ploc, pconf, gbox, glabel, anchors, grad_scale);
}
