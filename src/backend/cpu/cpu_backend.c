/* `cpu`: the oneDNN backend (fp32). Lifecycle, memory (the host functions shared with ref) and
 * the elementwise ops as OpenMP loops computing exactly what ref computes. The oneDNN ops live
 * in cpu_conv.c, cpu_bn.c and cpu_pool_eltwise.c; see cpu_internal.h for the structure. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/host.h"
#include "core/mem.h"
#include "core/par.h"

/* below this many elements a loop runs on one thread */
#define CPU_OMP_MIN 32768

static bool cpu_supports(ssd_backend *be, ssd_op op, ssd_dtype dt) {
    if (dt == SSD_F32) return true; /* bf16 math also rounds f32 tensors (cpu_conv.c) */
    /* bf16 NHWC activations (backend.h, cpu_nhwc.c) with native bf16 math */
    if (dt != SSD_BF16 || !be->act_custom || be->act_dtype != SSD_BF16)
        return false; /* set with native bf16 math */
    switch (op) {
    case SSD_OP_CONV2D_FWD: case SSD_OP_CONV2D_BWD_DATA: case SSD_OP_CONV2D_BWD_WEIGHTS:
    case SSD_OP_BN_TRAIN_FWD: case SSD_OP_BN_BWD: case SSD_OP_BN_INFER_FWD:
    case SSD_OP_RELU_FWD: case SSD_OP_RELU_BWD: case SSD_OP_MAXPOOL_FWD: case SSD_OP_MAXPOOL_BWD:
    case SSD_OP_ADD: case SSD_OP_COPY: case SSD_OP_FILL: case SSD_OP_SCALE:
        return true;
    default:
        return false;
    }
}

void cpu_accumulate_f32(float *dst, const float *src, int64_t n) {
    SSD_PARALLEL_FOR_IF(n > CPU_OMP_MIN, i, n, dst[i] += src[i];);
}

static void cpu_add(ssd_backend *be, ssd_tensor *out, const ssd_tensor *a, const ssd_tensor *b) {
    if (a->dtype == SSD_BF16) {
        cpu_bf16_add(out, a, b);
        return;
    }
    (void)be;
    int64_t n = ssd_tensor_numel(a);
    float *o = out->data;
    const float *x = a->data, *y = b->data;
    SSD_PARALLEL_FOR_IF(n > CPU_OMP_MIN, i, n, o[i] = x[i] + y[i];);
}

static void cpu_copy(ssd_backend *be, ssd_tensor *dst, const ssd_tensor *src) {
    (void)be;
    size_t bytes = ssd_tensor_nbytes(src);
    char *d = dst->data;
    const char *s = src->data;
    if (d == s) return;
    if (d + bytes <= s || s + bytes <= d) {
        /* disjoint: copy in parallel chunks */
        const size_t chunk = (size_t)1 << 20;
        int64_t nchunks = (int64_t)((bytes + chunk - 1) / chunk);
        SSD_PARALLEL_FOR_IF(nchunks > 1, c, nchunks, {
            size_t off = (size_t)c * chunk, len = bytes - off < chunk ? bytes - off : chunk;
            memcpy(d + off, s + off, len);
        });
    } else {
        memmove(d, s, bytes);
    }
}

static void cpu_fill(ssd_backend *be, ssd_tensor *t, double value) {
    if (t->dtype == SSD_BF16) {
        cpu_bf16_fill(t, value);
        return;
    }
    (void)be;
    int64_t n = ssd_tensor_numel(t);
    float *p = t->data, v = (float)value;
    SSD_PARALLEL_FOR_IF(n > CPU_OMP_MIN, i, n, p[i] = v;);
}

static void cpu_scale(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp, double alpha) {
    if (inp->dtype == SSD_BF16) {
        cpu_bf16_scale(out, inp, alpha);
        return;
    }
    (void)be;
    int64_t n = ssd_tensor_numel(inp);
    float *o = out->data;
    const float *x = inp->data;
    SSD_PARALLEL_FOR_IF(n > CPU_OMP_MIN, i, n, o[i] = (float)(alpha * (double)x[i]););
}

/* torch.optim.SGD in f32 arithmetic with torch's (and ref's) fused multiply-adds, in the same
 * order, so the result is bit-identical to ref and to torch 1.13 f32:
 *   d_p = fma(wd, p, grad); buf = first ? d_p : fma(1-dampening, d_p, momentum*buf)
 *   d_p = nesterov ? fma(momentum, buf, d_p) : buf; p = fma(-lr, d_p, p) */
typedef struct sgd_args {
    float *p, *buf;
    const float *g;
    int64_t n;
    float wd, mom, damp1, neg_lr;
    bool use_wd, use_mom, first, nesterov;
} sgd_args;

/* The loop, written once and expanded in the two variants below. */
#define CPU_SGD_LOOP(a)                                                                       \
    do {                                                                                      \
        float *p = (a)->p, *buf = (a)->buf;                                                   \
        const float *g = (a)->g;                                                              \
        const float wd = (a)->wd, mom = (a)->mom, damp1 = (a)->damp1, neg_lr = (a)->neg_lr;   \
        const bool use_wd = (a)->use_wd, use_mom = (a)->use_mom, first = (a)->first,          \
                   nesterov = (a)->nesterov;                                                  \
        const int64_t n = (a)->n;                                                             \
        SSD_PARALLEL_FOR_IF(n > CPU_OMP_MIN, i, n, {                                         \
            float dp = g[i];                                                                  \
            if (use_wd) dp = fmaf(wd, p[i], dp);                                              \
            if (use_mom) {                                                                    \
                float b = first ? dp : fmaf(damp1, dp, mom * buf[i]);                         \
                buf[i] = b;                                                                   \
                dp = nesterov ? fmaf(mom, b, dp) : b;                                         \
            }                                                                                 \
            p[i] = fmaf(neg_lr, dp, p[i]);                                                    \
        });                                                                                   \
    } while (0)

/* fmaf is exact either way; with the FMA instruction set it compiles to a vfmadd instruction
 * instead of a libm call per element. */
#if defined(__x86_64__) && defined(__GNUC__)
#define CPU_SGD_FMA_CLONE 1
__attribute__((target("avx2,fma"))) static void sgd_fma(const sgd_args *a) { CPU_SGD_LOOP(a); }
#endif
static void sgd_generic(const sgd_args *a) { CPU_SGD_LOOP(a); }

static void cpu_sgd_update(ssd_backend *be, ssd_tensor *param, ssd_tensor *momentum_buf,
                           const ssd_tensor *grad, const ssd_sgd_desc *d) {
    (void)be;
    sgd_args a = {
        .p = param->data,
        .buf = momentum_buf->data,
        .g = grad->data,
        .n = ssd_tensor_numel(param),
        .wd = (float)d->weight_decay,
        .mom = (float)d->momentum,
        .damp1 = (float)(1.0 - d->dampening),
        .neg_lr = (float)(-d->lr),
        .use_wd = d->weight_decay != 0,
        .use_mom = d->momentum != 0,
        .first = d->first_step,
        .nesterov = d->nesterov,
    };
#ifdef CPU_SGD_FMA_CLONE
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        sgd_fma(&a);
        return;
    }
#endif
    sgd_generic(&a);
}

static void cpu_sync(ssd_backend *be) { cpu_wait(cpu_impl_of(be)); }

static void cpu_destroy(ssd_backend *be) {
    cpu_impl *im = cpu_impl_of(be);
    if (im) {
        cpu_cache_destroy(&im->cache);
        for (int i = 0; i < CPU_NSLOTS; i++) ssd_aligned_free(im->slot[i]);
        if (im->stream) dnnl_stream_destroy(im->stream);
        if (im->engine) dnnl_engine_destroy(im->engine);
        free(im);
    }
    free(be);
}

static const ssd_backend_ops k_cpu_ops = {
    .alloc = ssd_host_alloc,
    .free = ssd_host_free,
    .copy_to_host = ssd_host_copy,
    .copy_from_host = ssd_host_copy,
    .sync = cpu_sync,
    .supports = cpu_supports,
    .conv2d_forward = cpu_conv2d_forward,
    .conv2d_backward_data = cpu_conv2d_backward_data,
    .conv2d_backward_weights = cpu_conv2d_backward_weights,
    .conv2d_backward = cpu_conv2d_backward,
    .batchnorm_train_forward = cpu_bn_train_forward,
    .batchnorm_backward = cpu_bn_backward,
    .batchnorm_infer_forward = cpu_bn_infer_forward,
    .relu_forward = cpu_relu_forward,
    .relu_backward = cpu_relu_backward,
    .maxpool_forward = cpu_maxpool_forward,
    .maxpool_backward = cpu_maxpool_backward,
    .add = cpu_add,
    .copy = cpu_copy,
    .fill = cpu_fill,
    .scale = cpu_scale,
    .sgd_update = cpu_sgd_update,
    .copy_rows = ssd_host_copy_rows,
    .destroy = cpu_destroy,
};

static bool ssd_cpu_bf16_native(void) { return __builtin_cpu_supports("avx512bf16"); }

ssd_backend *ssd_backend_cpu_create(ssd_error *err) {
    const char *math = getenv("SSD_CPU_MATH"), *wino = getenv("SSD_WINOGRAD"),
               *wgrad = getenv("SSD_CPU_BF16_WGRAD"), *acts = getenv("SSD_CPU_BF16_ACTS"),
               *f32acts = getenv("SSD_CPU_F32_ACTS");
    if (math && *math && strcmp(math, "f32") && strcmp(math, "bf16") && strcmp(math, "bf16emu")) {
        ssd_fail(err, SSD_ERR_ARG, "SSD_CPU_MATH='%s': expected f32, bf16 or bf16emu", math);
        return NULL;
    }
    if (wino && *wino && strcmp(wino, "0") && strcmp(wino, "1")) {
        ssd_fail(err, SSD_ERR_ARG, "SSD_WINOGRAD='%s': expected 1 (the default) or 0", wino);
        return NULL;
    }
    if (acts && *acts && strcmp(acts, "bf16") && strcmp(acts, "f32")) {
        ssd_fail(err, SSD_ERR_ARG, "SSD_CPU_BF16_ACTS='%s': expected bf16 (the default) or f32",
                 acts);
        return NULL;
    }
    if (f32acts && *f32acts && strcmp(f32acts, "blocked") && strcmp(f32acts, "nchw")) {
        ssd_fail(err, SSD_ERR_ARG, "SSD_CPU_F32_ACTS='%s': expected blocked (the default) or nchw",
                 f32acts);
        return NULL;
    }
    if (wgrad && *wgrad && strcmp(wgrad, "gemm") && strcmp(wgrad, "native")) {
        ssd_fail(err, SSD_ERR_ARG, "SSD_CPU_BF16_WGRAD='%s': expected gemm (the default) or native",
                 wgrad);
        return NULL;
    }
    ssd_backend *be = ssd_xcalloc(1, sizeof *be);
    cpu_impl *im = ssd_xcalloc(1, sizeof *im);
    im->bf16 = math && (!strcmp(math, "bf16") || !strcmp(math, "bf16emu"));
    im->bf16_native = im->bf16 && !strcmp(math, "bf16") && ssd_cpu_bf16_native();
    im->bf16_wgrad_native = im->bf16_native && wgrad && !strcmp(wgrad, "native");
    /* the model's activations in bf16 NHWC between layers (backend.h; SSD_CPU_BF16_ACTS=f32
     * keeps them f32 NCHW, converted around each convolution: the path before) */
    be->act_custom = im->bf16_native && !(acts && !strcmp(acts, "f32"));
    be->act_dtype = SSD_BF16;
    be->act_layout = SSD_LAYOUT_NHWC;
    /* f32 math: the activations in nChw16c, the layout oneDNN's f32 kernels use on AVX-512
     * CPUs; our batch norm, max-pool and Winograd read and write it too (cpu_blocked.c,
     * cpu_winograd.c), with the row-major loops' bits. SSD_CPU_F32_ACTS=nchw keeps them
     * row-major, reordered around each oneDNN convolution (the path before). */
    if (!im->bf16 && __builtin_cpu_supports("avx512f") && !(f32acts && !strcmp(f32acts, "nchw"))) {
        be->act_custom = true;
        be->act_dtype = SSD_F32;
        be->act_layout = SSD_LAYOUT_NCHW16C;
    }
    be->name = "cpu";
    be->ops = &k_cpu_ops;
    be->device.kind = SSD_DEVICE_HOST;
    be->device.index = 0;
    be->impl = im;
    DNNL_CHECK(dnnl_engine_create(&im->engine, dnnl_cpu, 0));
    DNNL_CHECK(dnnl_stream_create(&im->stream, im->engine, dnnl_stream_default_flags));
    cpu_cache_init(&im->cache);
    /* Winograd by default where the CPU has AVX2 + FMA; SSD_WINOGRAD=0 turns it off */
    im->winograd = !(wino && !strcmp(wino, "0")) && __builtin_cpu_supports("avx2") &&
                   __builtin_cpu_supports("fma");
    be->conv_math = im->bf16_native ? "bf16-native"
                    : im->bf16      ? "bf16-emulated"
                    : im->winograd  ? "f32+winograd"
                                    : "f32";
    return be;
}
