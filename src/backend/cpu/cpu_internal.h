/* Internals of the `cpu` backend (oneDNN 2.6 C API, fp32; DESIGN.md section 4).
 *
 * Structure
 * - cpu_backend.c       create/destroy, supports, memory, elementwise loops (add/copy/fill/
 *                       scale/sgd)
 * - cpu_dnnl.c          helpers: memory descriptors, primitives with a user-mode scratchpad,
 *                       tensor arguments with their layout reorders, shared scratch slots
 * - cpu_cache.c         the primitive cache
 * - cpu_conv.c          conv forward / backward-data / backward-weights
 * - cpu_wgrad_gemm.c    bf16 backward-weights as im2col + oneDNN's bf16 matmul
 * - cpu_bn.c            batch norm train / inference forward and backward
 * - cpu_pool_eltwise.c  relu forward/backward, maxpool forward/backward
 *
 * Tensors given to the ops are plain dense row-major (NCHW, OIHW, 1-d) host memory. Convs run
 * in the layout oneDNN picks (format_tag_any) and reorder in and out of it; every executed
 * reorder is counted in be->stats. Every primitive is created once per cache key. Buffers the
 * primitives need for one call (blocked copies of tensors, scratchpads, workspaces, partial
 * gradients) live in a handful of growable scratch slots shared by all ops, because ops run
 * one at a time and nothing in them outlives the call; the memory objects pointing into them
 * are cached with the primitives and re-pointed per call.
 *
 * Data types: every key carries the ssd_dtype and cpu_dnnl_dtype() maps it, so a bf16 path is
 * new memory descriptors (bf16 compute layouts, f32 user tensors and statistics) plus
 * reorders, not a new structure (SSD_CPU_MATH=bf16: cpu_conv.c). */
#ifndef SSD_BACKEND_CPU_CPU_INTERNAL_H
#define SSD_BACKEND_CPU_CPU_INTERNAL_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_cache.h"
#include "core/log.h"

/* Tier 2 (DESIGN.md section 5): a oneDNN failure prints the call, file:line and oneDNN's
 * status string, then aborts through ssd_die. */
#define DNNL_CHECK(call)                                                                      \
    do {                                                                                      \
        dnnl_status_t dnnl_check_st_ = (call);                                                \
        if (dnnl_check_st_ != dnnl_success)                                                   \
            ssd_die(__FILE__, __LINE__, "oneDNN call `%s` failed: %s", #call,                 \
                    dnnl_status2str(dnnl_check_st_));                                         \
    } while (0)

/* Shared scratch slots. One op call uses each slot for at most one buffer. */
enum {
    CPU_SLOT_SCRATCHPAD = 0, /* primitive scratchpads (user scratchpad mode) */
    CPU_SLOT_0,
    CPU_SLOT_1,
    CPU_SLOT_2,
    CPU_SLOT_3,
    CPU_SLOT_4,
    CPU_SLOT_BF16_0, /* bf16 math: rounded copies of a conv's operands, its partial gradients */
    CPU_SLOT_BF16_1,
    CPU_SLOT_BF16_2,
    CPU_SLOT_BF16_3,
    CPU_NSLOTS
};

typedef struct cpu_impl {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    cpu_cache cache;
    void *slot[CPU_NSLOTS];
    size_t slot_cap[CPU_NSLOTS];
    bool winograd; /* own Winograd F(4x4,3x3) for 3x3/1 pad-1 conv, all three passes: on
                      CPUs with AVX2 + FMA unless SSD_WINOGRAD=0 (cpu_winograd.c) */
    bool bf16;     /* SSD_CPU_MATH=bf16 (ssd train --autocast): convolutions with bf16 operands
                      and results, f32 sums (cpu_conv.c); everything else f32 */
    bool bf16_native; /* bf16 on oneDNN's bf16 kernels (CPUs with avx512_bf16, unless
                         SSD_CPU_MATH=bf16emu); otherwise emulated on the f32 kernels */
    bool bf16_wgrad_native; /* with bf16_native: the weight gradients on oneDNN's bf16
                               backward-weights convolution too (SSD_CPU_BF16_WGRAD=native);
                               by default they run as GEMMs (cpu_wgrad_gemm.c): the same rule,
                               several times faster */
} cpu_impl;

static inline cpu_impl *cpu_impl_of(ssd_backend *be) { return (cpu_impl *)be->impl; }

/* A convolution's sizes: input N,C,H,W; weight K,C,R,S; output N,K,P,Q; strides; pads; and the
 * forms of the caller's input- and output-side activations (xdt/xl: inp/dinp, ydt/yl:
 * out/dout): f32 row-major NCHW, f32 nChw16c, or bf16 NHWC (backend.h). */
typedef struct cpu_conv_dims {
    int64_t N, C, H, W, K, R, S, P, Q;
    int64_t sh, sw, ph, pw;
    ssd_dtype xdt, ydt;
    ssd_layout xl, yl;
} cpu_conv_dims;

/* The caller's form of an activation: row-major NCHW (abcd), NHWC (acdb) or nChw16c
 * (aBcd16b), in dtype dt. */
void cpu_md_act(dnnl_memory_desc_t *md, const int64_t *dims, ssd_dtype dt, ssd_layout l);

/* ---- bf16 weight gradients as GEMMs (cpu_wgrad_gemm.c) ---- */

/* dweight (K,C,R,S) += bf16(the weight gradient), dbias (K) += bf16(the bias gradient) when not
 * NULL, from dout (N,K,P,Q) and inp (N,C,H,W) (each f32 NCHW or bf16 NHWC: g->ydt, g->xdt), with
 * bf16 operands and f32 sums on oneDNN's bf16 matmul. An f32 dout is left converted to bf16
 * NHWC in scratch slot 0. */
void cpu_bf16_wgrad_gemm(ssd_backend *be, float *dweight, float *dbias, const void *dout,
                         const void *inp, const cpu_conv_dims *g);
/* The layout (bf16 NHWC) and the scratch slot of the converted dout that cpu_bf16_wgrad_gemm
 * leaves behind for a backward-data pass of the same convolution. */
const dnnl_memory_desc_t *cpu_bf16_wgrad_gemm_dout_md(ssd_backend *be, const cpu_conv_dims *g,
                                                      int *slot);

/* ---- Winograd (cpu_winograd.c) ---- */

/* Whether the Winograd path takes a conv of this geometry: f32, 3x3, stride 1, pad 1, and
 * where it wins on the measured shapes (docs/backends.md): maps of 19x19 and up with at least
 * 64 channels on both sides (layer1-3, conf.0, conf.1). The loc heads (16/24 channels) and the
 * maps of 10x10 and below stay faster with oneDNN's direct kernels. */
static inline bool cpu_wino_applicable(const cpu_impl *im, ssd_dtype dt, int64_t R, int64_t S,
                                       int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t H,
                                       int64_t W, int64_t C, int64_t K) {
    return im->winograd && !im->bf16 && dt == SSD_F32 && R == 3 && S == 3 && sh == 1 && sw == 1 && ph == 1 &&
           pw == 1 && H >= 19 && W >= 19 && C >= 64 && K >= 64;
}
/* out (N,K,H,W) = conv3x3 pad 1 of inp (N,C,H,W) with w (K,C,3,3) (+ bias (K)), or with bwd
 * the backward-data form: w is the forward's (C,K,3,3) weight, used transposed and rotated.
 * inp and out are f32 in layout il / ol (row-major or nChw16c). */
void cpu_wino_conv3x3(ssd_backend *be, float *out, ssd_layout ol, const float *inp, ssd_layout il,
                      const float *w, const float *bias, int64_t N, int64_t C, int64_t H,
                      int64_t W, int64_t K, bool bwd);
/* The backward-weights pass of the same convolution: dw (K,C,3,3) += the weight gradient and,
 * when dbias is not NULL, dbias (K) += the bias gradient, from dout (N,K,H,W) in layout yl and
 * inp (N,C,H,W) in layout xl. */
void cpu_wino_conv3x3_bwd_weights(ssd_backend *be, float *dw, float *dbias, const float *dout,
                                  ssd_layout yl, const float *inp, ssd_layout xl, int64_t N,
                                  int64_t C, int64_t H, int64_t W, int64_t K);

/* ---- helpers (cpu_dnnl.c) ---- */

dnnl_data_type_t cpu_dnnl_dtype(ssd_dtype dt);
/* Buffer of at least `bytes` in scratch slot `slot` (grown, never shrunk; contents are not
 * kept across growth). */
void *cpu_slot(cpu_impl *im, int slot, size_t bytes);

/* Plain dense row-major descriptor (tags a, ab, abc, abcd: x, nc, ncw, nchw / oihw). */
void cpu_md_plain(dnnl_memory_desc_t *md, int ndims, const int64_t *dims, dnnl_data_type_t dt);
/* Descriptor with format_tag_any: the primitive chooses the layout. */
void cpu_md_any(dnnl_memory_desc_t *md, int ndims, const int64_t *dims, dnnl_data_type_t dt);
/* 1-d descriptor over all elements of t (for shape-agnostic elementwise primitives). */
void cpu_md_flat(dnnl_memory_desc_t *md, const ssd_tensor *t);

/* A primitive with its descriptor and a scratchpad provided by us (scratch slot). */
typedef struct cpu_prim {
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t prim;
    dnnl_memory_t scratchpad; /* NULL when the primitive needs none */
    size_t scratchpad_bytes;
} cpu_prim;

/* Creates pd (+ primitive) from an op descriptor. attr may be NULL; its scratchpad mode is set
 * to user here. hint: the forward pd for backward primitives, else NULL. */
void cpu_prim_create(cpu_impl *im, cpu_prim *p, const_dnnl_op_desc_t desc,
                     dnnl_primitive_attr_t attr, const_dnnl_primitive_desc_t hint);
/* Takes ownership of pd and creates the primitive. */
void cpu_prim_from_pd(cpu_impl *im, cpu_prim *p, dnnl_primitive_desc_t pd);
/* Executes with the given arguments plus the scratchpad. */
void cpu_prim_exec(cpu_impl *im, cpu_prim *p, int nargs, const dnnl_exec_arg_t *args);
const dnnl_memory_desc_t *cpu_prim_md(const cpu_prim *p, dnnl_query_t what, int index);
/* Copies the implementation name of p into be->stats.last_impl. */
void cpu_prim_note_impl(ssd_backend *be, const cpu_prim *p);
/* Appends suffix (":bf16", ":matmul") to be->stats.last_impl, truncating to its size. */
void cpu_note_suffix(ssd_backend *be, const char *suffix);
void cpu_prim_destroy(cpu_prim *p);

/* One tensor argument of a primitive. `user` wraps the caller's plain memory (pointer set per
 * call); `inner` is the primitive's layout in a scratch slot, present when the layouts differ
 * (or when an output accumulates); `reorder` converts between them. Scratch arguments have
 * only `inner`. */
typedef struct cpu_arg {
    dnnl_memory_t user;
    dnnl_memory_t inner;
    cpu_prim reorder;
    bool has_reorder;
    bool weight;           /* a weight, bias or weight gradient (counted apart in be->stats) */
    size_t inner_bytes;
    size_t reorder_src_bytes;
    int slot;
    void *inner_ptr; /* slot buffer bound by the last call */
} cpu_arg;

/* Input: reorders user -> inner before the primitive when the layouts differ. */
void cpu_arg_init_in(cpu_impl *im, cpu_arg *a, const dnnl_memory_desc_t *user_md,
                     const dnnl_memory_desc_t *prim_md, int slot);
/* Output: the primitive writes inner, reordered into user afterwards; with `accumulate` the
 * reorder adds into user (sum post-op) and always runs. */
void cpu_arg_init_out(cpu_impl *im, cpu_arg *a, const dnnl_memory_desc_t *user_md,
                      const dnnl_memory_desc_t *prim_md, int slot, bool accumulate);
/* Plain argument used in place (same layout); no slot. */
void cpu_arg_init_user(cpu_impl *im, cpu_arg *a, const dnnl_memory_desc_t *md);
/* Scratch-only argument (workspaces, partial results) in a slot. */
void cpu_arg_init_scratch(cpu_impl *im, cpu_arg *a, const dnnl_memory_desc_t *md, int slot);

/* Binds the user pointer, runs the input reorder if any; returns the memory to pass. */
dnnl_memory_t cpu_arg_in(ssd_backend *be, cpu_arg *a, const void *data);
/* Binds the user pointer and the slot without the input reorder: the slot already holds the
 * converted data (same layout, same slot); returns the memory to pass. */
dnnl_memory_t cpu_arg_bind(ssd_backend *be, cpu_arg *a, const void *data);
/* Binds the user pointer (and the slot); returns the memory the primitive writes. */
dnnl_memory_t cpu_arg_out(ssd_backend *be, cpu_arg *a, void *data);
/* Runs the output reorder if any. */
void cpu_arg_out_done(ssd_backend *be, cpu_arg *a);
/* Binds the slot of a scratch argument; returns its memory (pointer in a->inner_ptr). */
dnnl_memory_t cpu_arg_scratch(ssd_backend *be, cpu_arg *a);
void cpu_arg_destroy(cpu_arg *a);

/* Waits for the stream (end of every op). */
void cpu_wait(cpu_impl *im);

/* ---- ops ---- */

void cpu_conv2d_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                        const ssd_tensor *weight, const ssd_tensor *bias, const ssd_conv_desc *d);
void cpu_conv2d_backward_data(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                              const ssd_tensor *weight, const ssd_conv_desc *d);
void cpu_conv2d_backward_weights(ssd_backend *be, ssd_tensor *dweight, ssd_tensor *dbias,
                                 const ssd_tensor *dout, const ssd_tensor *inp,
                                 const ssd_conv_desc *d);
void cpu_conv2d_backward(ssd_backend *be, ssd_tensor *dweight, ssd_tensor *dbias, ssd_tensor *dinp,
                         const ssd_tensor *dout, const ssd_tensor *inp, const ssd_tensor *weight,
                         const ssd_conv_desc *d);

void cpu_bn_train_forward(ssd_backend *be, ssd_tensor *out, ssd_tensor *save_mean,
                          ssd_tensor *save_var, ssd_tensor *running_mean,
                          ssd_tensor *running_var, const ssd_tensor *inp, const ssd_tensor *gamma,
                          const ssd_tensor *beta, const ssd_tensor *residual,
                          const ssd_bn_desc *d);
void cpu_bn_backward(ssd_backend *be, ssd_tensor *dinp, ssd_tensor *dresidual, ssd_tensor *dgamma,
                     ssd_tensor *dbeta, const ssd_tensor *dout, const ssd_tensor *out,
                     const ssd_tensor *inp, const ssd_tensor *gamma, const ssd_tensor *save_mean,
                     const ssd_tensor *save_var, const ssd_bn_desc *d);
void cpu_bn_infer_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                          const ssd_tensor *gamma, const ssd_tensor *beta,
                          const ssd_tensor *running_mean, const ssd_tensor *running_var,
                          const ssd_tensor *residual, const ssd_bn_desc *d);

void cpu_relu_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp);
void cpu_relu_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                       const ssd_tensor *out);
void cpu_maxpool_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                         const ssd_pool_desc *d);
void cpu_maxpool_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                          const ssd_tensor *inp, const ssd_pool_desc *d);

/* ---- batch norm's per-channel rule (cpu_bn.c), shared by its three layouts' loops (cpu_bn.c,
 * cpu_nhwc.c, cpu_blocked.c), which differ only in how they walk a channel's values ----
 * Sums run in float inside blocks of CPU_BN_BLOCK values with CPU_BN_LANES fixed partial sums
 * (combined by cpu_bn_lanes_total) and in double across blocks. */
#define CPU_BN_BLOCK 512
#define CPU_BN_LANES 8

static inline float cpu_bn_lanes_total(const float *acc, float tail) {
    return (((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))) +
           tail;
}

/* The biased variance of a channel of `count` values from the sum s of the values and the sum
 * v of their squared distances to mf = (float)(s / count): E[(x - mf)^2] - (mean - mf)^2;
 * *mean gets s / count. */
static inline double cpu_bn_var(double s, double v, double count, double *mean) {
    const double m = s / count, off = m - (double)(float)m;
    *mean = m;
    return v / count - off * off;
}

/* Channel c's batch statistics into save_mean/save_var and torch's running update (r = (1-m) r
 * + m batch, the variance unbiased); returns gamma * invstd, the forward's scale. */
static inline float cpu_bn_store_stats(int64_t c, double mean, double var, double count,
                                       const ssd_bn_desc *d, const float *gm, float *sm,
                                       float *sv, float *rm, float *rv) {
    const double mom = d->momentum;
    sm[c] = (float)mean;
    sv[c] = (float)var;
    rm[c] = (float)((1.0 - mom) * (double)rm[c] + mom * mean);
    rv[c] = (float)((1.0 - mom) * (double)rv[c] + mom * var * count / (count - 1.0));
    return (float)((double)gm[c] / sqrt(var + d->eps));
}

/* Channel c's backward from its sums sdy and sdyx (of dy and dy * (x - mean)):
 * dx = ka * (dy - kb - (x - mean) * kk); dgamma += float(sdyx * invstd), dbeta += float(sdy)
 * (this call's gradient rounded to float, then added: accumulating fragments (batch splits)
 * gives what an all-reduce of per-rank float gradients gives, test_dist). */
static inline void cpu_bn_bwd_coeffs(int64_t c, double sdy, double sdyx, double count, double eps,
                                     const float *gm, const float *sv, float *dg, float *db,
                                     float *ka, float *kb, float *kk) {
    const double invstd = 1.0 / sqrt((double)sv[c] + eps);
    *ka = (float)((double)gm[c] * invstd);
    *kb = (float)(sdy / count);
    *kk = (float)(invstd * invstd * sdyx / count);
    dg[c] += (float)(sdyx * invstd);
    db[c] += (float)sdy;
}

/* ---- bf16 NHWC activations (cpu_nhwc.c; native bf16 math, backend.h) ---- */

void cpu_nhwc_bn_train_forward(ssd_backend *be, ssd_tensor *out, ssd_tensor *save_mean,
                               ssd_tensor *save_var, ssd_tensor *running_mean,
                               ssd_tensor *running_var, const ssd_tensor *inp,
                               const ssd_tensor *gamma, const ssd_tensor *beta,
                               const ssd_tensor *residual, const ssd_bn_desc *d);
void cpu_nhwc_bn_infer_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                               const ssd_tensor *gamma, const ssd_tensor *beta,
                               const ssd_tensor *running_mean, const ssd_tensor *running_var,
                               const ssd_tensor *residual, const ssd_bn_desc *d);
void cpu_nhwc_bn_backward(ssd_backend *be, ssd_tensor *dinp, ssd_tensor *dresidual,
                          ssd_tensor *dgamma, ssd_tensor *dbeta, const ssd_tensor *dout,
                          const ssd_tensor *out, const ssd_tensor *inp, const ssd_tensor *gamma,
                          const ssd_tensor *save_mean, const ssd_tensor *save_var,
                          const ssd_bn_desc *d);
void cpu_nhwc_maxpool_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                              const ssd_pool_desc *d);
void cpu_nhwc_maxpool_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                               const ssd_tensor *inp, const ssd_pool_desc *d);
/* ---- f32 nChw16c activations (cpu_blocked.c; backend.h) ----
 * The same results, bit for bit, as the row-major f32 loops (cpu_bn.c, cpu_pool_eltwise.c). */

void cpu_blk_bn_train_forward(ssd_backend *be, ssd_tensor *out, ssd_tensor *save_mean,
                              ssd_tensor *save_var, ssd_tensor *running_mean,
                              ssd_tensor *running_var, const ssd_tensor *inp,
                              const ssd_tensor *gamma, const ssd_tensor *beta,
                              const ssd_tensor *residual, const ssd_bn_desc *d);
void cpu_blk_bn_infer_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                              const ssd_tensor *gamma, const ssd_tensor *beta,
                              const ssd_tensor *running_mean, const ssd_tensor *running_var,
                              const ssd_tensor *residual, const ssd_bn_desc *d);
void cpu_blk_bn_backward(ssd_backend *be, ssd_tensor *dinp, ssd_tensor *dresidual,
                         ssd_tensor *dgamma, ssd_tensor *dbeta, const ssd_tensor *dout,
                         const ssd_tensor *out, const ssd_tensor *inp, const ssd_tensor *gamma,
                         const ssd_tensor *save_mean, const ssd_tensor *save_var,
                         const ssd_bn_desc *d);
void cpu_blk_maxpool_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                             const ssd_pool_desc *d);
void cpu_blk_maxpool_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                              const ssd_tensor *inp, const ssd_pool_desc *d);

/* elementwise on bf16 tensors of any layout */
void cpu_bf16_relu_forward(ssd_tensor *out, const ssd_tensor *inp);
void cpu_bf16_relu_backward(ssd_tensor *dinp, const ssd_tensor *dout, const ssd_tensor *out);
void cpu_bf16_add(ssd_tensor *out, const ssd_tensor *a, const ssd_tensor *b);
void cpu_bf16_fill(ssd_tensor *t, double value);
void cpu_bf16_scale(ssd_tensor *out, const ssd_tensor *inp, double alpha);

/* dst[i] += src[i] (f32, OpenMP); used for parameter-gradient accumulation. */
void cpu_accumulate_f32(float *dst, const float *src, int64_t n);

#endif
