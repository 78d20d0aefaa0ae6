/* Convolutions on oneDNN: forward, backward-data, backward-weights.
 *
 * The primitive descriptors are created with format_tag_any for src/weights/dst (oneDNN picks
 * its blocked layout) and algorithm convolution_direct; the plain NCHW/OIHW user tensors are
 * reordered into and out of the chosen layouts (cpu_arg). Backward descriptors take a
 * forward-training descriptor of the same shape as hint. Weight gradients accumulate: the
 * primitive writes a scratch and a reorder with a sum post-op adds it into the user's OIHW
 * dweight; the bias gradient goes to a scratch and is added with a loop.
 *
 * bf16 math (SSD_CPU_MATH=bf16, `ssd train --autocast`): what PyTorch autocast does to a
 * convolution. The operands of each pass (input, weight, bias; output gradient, weight; input,
 * output gradient) are taken in bf16 (nearest even), every product is exact and the sums run in
 * f32; the result is rounded to bf16, and the weight and bias gradients are rounded before they
 * are added to the f32 master gradients. Never Winograd (its transforms would round the
 * products differently). Two implementations:
 * - native (CPUs with avx512_bf16, im->bf16_native): the same primitives as f32 created in bf16
 *   (conv_*_dt with pdt SSD_BF16); the reorders from the f32 user tensors round the operands,
 *   the bf16 results and gradients are widened on the way back.
 * - emulated (elsewhere, or SSD_CPU_MATH=bf16emu): the operands are rounded into f32 copies and
 *   the f32 direct kernels run on them (the products of bf16 values are exact in f32), then the
 *   results are rounded: autocast's numbers at f32 speed.
 * The native path computes the weight gradients as GEMMs on oneDNN's bf16 matmul
 * (cpu_wgrad_gemm.c) unless SSD_CPU_BF16_WGRAD=native: oneDNN 2.6.3's backward-weights kernel
 * (jit:avx512_core_amx_bf16) runs at a fraction of its forward's speed. Same rule, other
 * summation order. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/mem.h"
#include "core/par.h"

typedef cpu_conv_dims conv_dims;

static conv_dims conv_dims_of(const ssd_tensor *inp, const ssd_tensor *w, const ssd_tensor *out,
                              const ssd_conv_desc *d) {
    conv_dims c = {inp->shape[0], inp->shape[1], inp->shape[2], inp->shape[3], w->shape[0],
                   w->shape[2],   w->shape[3],   out->shape[2], out->shape[3], d->stride_h,
                   d->stride_w,   d->pad_h,      d->pad_w,      inp->dtype,    out->dtype,
                   inp->layout,   out->layout};
    return c;
}

static void conv_key(cpu_key *k, ssd_op op, ssd_dtype dt, const conv_dims *c, bool has_bias) {
    cpu_key_init(k, op, dt);
    const int64_t v[] = {c->N,  c->C,  c->H,  c->W,  c->K,     c->R,   c->S,
                         c->sh, c->sw, c->ph, c->pw, has_bias, c->xdt, c->ydt, c->xl, c->yl};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) cpu_key_add(k, v[i]);
}

/* User (plain) or primitive (any) descriptors of src, weights, dst and bias. */
typedef struct conv_mds {
    dnnl_memory_desc_t src, wei, dst, bias;
} conv_mds;

static void conv_make_mds(conv_mds *m, const conv_dims *c, dnnl_data_type_t dt, bool any) {
    const int64_t s[4] = {c->N, c->C, c->H, c->W}, w[4] = {c->K, c->C, c->R, c->S},
                  o[4] = {c->N, c->K, c->P, c->Q};
    void (*mk)(dnnl_memory_desc_t *, int, const int64_t *, dnnl_data_type_t) =
        any ? cpu_md_any : cpu_md_plain;
    mk(&m->src, 4, s, dt);
    mk(&m->wei, 4, w, dt);
    mk(&m->dst, 4, o, dt);
    /* the bias stays plain, in the primitive's type (bf16 in the native bf16 path: autocast
     * casts it too) */
    cpu_md_plain(&m->bias, 1, &c->K, dt);
    /* bf16 NHWC activations are taken as they lie: the primitive is made for that layout, so
     * nothing is converted (oneDNN's bf16 kernels choose it anyway) */
    if (any && c->xdt == SSD_BF16) cpu_md_act(&m->src, s, SSD_BF16, c->xl);
    if (any && c->ydt == SSD_BF16) cpu_md_act(&m->dst, o, SSD_BF16, c->yl);
}

/* The caller's tensors: activations in their forms (c->xdt/xl, c->ydt/yl), parameters f32
 * plain. f32 nChw16c activations are what oneDNN's f32 kernels choose on AVX-512 for all but
 * the first layer's input, so they pass without a reorder (the primitives still choose: a
 * reorder runs, and is counted, where one prefers another layout). */
static void conv_user_mds(conv_mds *m, const conv_dims *c) {
    conv_make_mds(m, c, dnnl_f32, false);
    const int64_t s[4] = {c->N, c->C, c->H, c->W}, o[4] = {c->N, c->K, c->P, c->Q};
    cpu_md_act(&m->src, s, c->xdt, c->xl);
    cpu_md_act(&m->dst, o, c->ydt, c->yl);
}

static void conv_geometry(const conv_dims *c, dnnl_dims_t strides, dnnl_dims_t pad_l,
                          dnnl_dims_t pad_r) {
    strides[0] = c->sh;
    strides[1] = c->sw;
    pad_l[0] = c->ph;
    pad_l[1] = c->pw;
    /* the right padding that yields exactly P x Q outputs (PyTorch floors; oneDNN wants the
     * padding consistent with the output size) */
    pad_r[0] = (c->P - 1) * c->sh + c->R - c->H - c->ph;
    pad_r[1] = (c->Q - 1) * c->sw + c->S - c->W - c->pw;
}

/* Forward-training descriptor with layouts left to oneDNN; used for the forward primitive and
 * as hint for the backward ones. */
static dnnl_primitive_desc_t conv_fwd_pd(cpu_impl *im, const conv_dims *c, dnnl_data_type_t dt,
                                         bool has_bias, dnnl_convolution_desc_t *cd_out) {
    conv_mds a;
    conv_make_mds(&a, c, dt, true);
    dnnl_dims_t st, pl, pr;
    conv_geometry(c, st, pl, pr);
    DNNL_CHECK(dnnl_convolution_forward_desc_init(cd_out, dnnl_forward_training,
                                                  dnnl_convolution_direct, &a.src, &a.wei,
                                                  has_bias ? &a.bias : NULL, &a.dst, st, pl, pr));
    dnnl_primitive_attr_t attr;
    DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    DNNL_CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    dnnl_primitive_desc_t pd;
    DNNL_CHECK(dnnl_primitive_desc_create(&pd, cd_out, attr, im->engine, NULL));
    DNNL_CHECK(dnnl_primitive_attr_destroy(attr));
    return pd;
}

/* ---- forward ---- */

typedef struct conv_fwd_entry {
    cpu_prim conv;
    cpu_arg src, wei, bias, dst;
    bool has_bias;
} conv_fwd_entry;

static void conv_fwd_free(void *p) {
    conv_fwd_entry *e = p;
    cpu_arg_destroy(&e->src);
    cpu_arg_destroy(&e->wei);
    if (e->has_bias) cpu_arg_destroy(&e->bias);
    cpu_arg_destroy(&e->dst);
    cpu_prim_destroy(&e->conv);
    free(e);
}

static conv_fwd_entry *conv_fwd_get(ssd_backend *be, const conv_dims *c, ssd_dtype dt,
                                    bool has_bias) {
    cpu_impl *im = cpu_impl_of(be);
    cpu_key k;
    conv_key(&k, SSD_OP_CONV2D_FWD, dt, c, has_bias);
    conv_fwd_entry *e = cpu_cache_find(&im->cache, &k, &be->stats);
    if (e) return e;
    e = ssd_xcalloc(1, sizeof *e);
    e->has_bias = has_bias;
    dnnl_convolution_desc_t cd;
    cpu_prim_from_pd(im, &e->conv, conv_fwd_pd(im, c, cpu_dnnl_dtype(dt), has_bias, &cd));
    conv_mds u;
    conv_user_mds(&u, c);
    cpu_arg_init_in(im, &e->src, &u.src, cpu_prim_md(&e->conv, dnnl_query_src_md, 0), CPU_SLOT_0);
    cpu_arg_init_in(im, &e->wei, &u.wei, cpu_prim_md(&e->conv, dnnl_query_weights_md, 0),
                    CPU_SLOT_1);
    e->wei.weight = true;
    if (has_bias) {
        cpu_arg_init_in(im, &e->bias, &u.bias, cpu_prim_md(&e->conv, dnnl_query_weights_md, 1),
                        CPU_SLOT_3);
        e->bias.weight = true;
    }
    cpu_arg_init_out(im, &e->dst, &u.dst, cpu_prim_md(&e->conv, dnnl_query_dst_md, 0),
                     CPU_SLOT_2, false);
    cpu_cache_insert(&im->cache, &k, e, conv_fwd_free, &be->stats);
    return e;
}

/* The f32 tensors' convolution computed by a primitive in type pdt (f32, or bf16 in the native
 * bf16 path: the operands are rounded to bf16 by the reorders into it). */
static void conv_forward_dt(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                            const ssd_tensor *weight, const ssd_tensor *bias,
                            const ssd_conv_desc *d, ssd_dtype pdt) {
    cpu_impl *im = cpu_impl_of(be);
    conv_dims c = conv_dims_of(inp, weight, out, d);
    if (cpu_wino_applicable(im, pdt, c.R, c.S, c.sh, c.sw, c.ph, c.pw, c.H, c.W, c.C, c.K)) {
        cpu_wino_conv3x3(be, out->data, c.yl, inp->data, c.xl, weight->data,
                         bias ? bias->data : NULL, c.N, c.C, c.H, c.W, c.K, false);
        return;
    }
    conv_fwd_entry *e = conv_fwd_get(be, &c, pdt, bias != NULL);
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, cpu_arg_in(be, &e->src, inp->data)},
        {DNNL_ARG_WEIGHTS, cpu_arg_in(be, &e->wei, weight->data)},
        {DNNL_ARG_DST, cpu_arg_out(be, &e->dst, out->data)},
        {DNNL_ARG_BIAS, NULL},
    };
    int nargs = 3;
    if (bias) {
        args[3].memory = cpu_arg_in(be, &e->bias, bias->data);
        nargs = 4;
    }
    cpu_prim_exec(im, &e->conv, nargs, args);
    cpu_arg_out_done(be, &e->dst);
    cpu_wait(im);
    cpu_prim_note_impl(be, &e->conv);
}

/* ---- backward data ---- */

typedef struct conv_bwd_data_entry {
    dnnl_primitive_desc_t hint;
    cpu_prim conv;
    cpu_arg ddst, wei, dsrc;
} conv_bwd_data_entry;

static void conv_bwd_data_free(void *p) {
    conv_bwd_data_entry *e = p;
    cpu_arg_destroy(&e->ddst);
    cpu_arg_destroy(&e->wei);
    cpu_arg_destroy(&e->dsrc);
    cpu_prim_destroy(&e->conv);
    dnnl_primitive_desc_destroy(e->hint);
    free(e);
}

static conv_bwd_data_entry *conv_bwd_data_get(ssd_backend *be, const conv_dims *c, ssd_dtype dt) {
    cpu_impl *im = cpu_impl_of(be);
    cpu_key k;
    conv_key(&k, SSD_OP_CONV2D_BWD_DATA, dt, c, false);
    conv_bwd_data_entry *e = cpu_cache_find(&im->cache, &k, &be->stats);
    if (e) return e;
    e = ssd_xcalloc(1, sizeof *e);
    dnnl_data_type_t ddt = cpu_dnnl_dtype(dt);
    dnnl_convolution_desc_t fd, bd;
    e->hint = conv_fwd_pd(im, c, ddt, false, &fd);
    conv_mds a, u;
    conv_make_mds(&a, c, ddt, true);
    conv_user_mds(&u, c);
    dnnl_dims_t st, pl, pr;
    conv_geometry(c, st, pl, pr);
    DNNL_CHECK(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &a.src,
                                                        &a.wei, &a.dst, st, pl, pr));
    cpu_prim_create(im, &e->conv, &bd, NULL, e->hint);
    cpu_arg_init_in(im, &e->ddst, &u.dst, cpu_prim_md(&e->conv, dnnl_query_diff_dst_md, 0),
                    CPU_SLOT_0);
    cpu_arg_init_in(im, &e->wei, &u.wei, cpu_prim_md(&e->conv, dnnl_query_weights_md, 0),
                    CPU_SLOT_1);
    e->wei.weight = true;
    cpu_arg_init_out(im, &e->dsrc, &u.src, cpu_prim_md(&e->conv, dnnl_query_diff_src_md, 0),
                     CPU_SLOT_2, false);
    cpu_cache_insert(&im->cache, &k, e, conv_bwd_data_free, &be->stats);
    return e;
}

/* Whether a bf16 backward-data pass runs as the forward convolution of dout with the rotated,
 * transposed weights: 3x3, stride 1, pad 1 (then dinp = conv3x3 pad 1 of dout with w'[c][k][r][s]
 * = w[k][c][2-r][2-s]), dout in the bf16 NHWC activation form, and 256 channels or more on both
 * sides. There oneDNN 2.6.3's forward (brgconv:avx512_core_amx_bf16) ran at ~770 GFLOP/s against
 * ~500 for its backward-data (jit:avx512_core_amx_bf16) on the 38x38 layers at batch 8; on the
 * 64- and 128-channel layers the backward-data kernel is the faster one (docs/backends.md). */
static bool bwd_data_as_fwd(const cpu_impl *im, ssd_dtype pdt, const conv_dims *c) {
    return im->bf16_native && pdt == SSD_BF16 && c->ydt == SSD_BF16 && c->R == 3 && c->S == 3 &&
           c->sh == 1 && c->sw == 1 && c->ph == 1 && c->pw == 1 && c->C >= 256 && c->K >= 256;
}

/* With ddst_ready the converted dout is already in slot 0 (cpu_conv2d_backward). */
static void conv_backward_data_dt(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                                  const ssd_tensor *weight, const ssd_conv_desc *d, ssd_dtype pdt,
                                  bool ddst_ready) {
    cpu_impl *im = cpu_impl_of(be);
    conv_dims c = conv_dims_of(dinp, weight, dout, d);
    if (cpu_wino_applicable(im, pdt, c.R, c.S, c.sh, c.sw, c.ph, c.pw, c.H, c.W, c.C, c.K)) {
        /* dinp = conv3x3 of dout (K channels) with the rotated, transposed weights */
        cpu_wino_conv3x3(be, dinp->data, c.xl, dout->data, c.yl, weight->data, NULL, c.N, c.K,
                         c.P, c.Q, c.C, true);
        return;
    }
    if (!ddst_ready && bwd_data_as_fwd(im, pdt, &c)) {
        /* w' (C,K,3,3) in f32 (a permutation: the forward's weight reorder rounds it to bf16
         * as backward-data's would) */
        const int64_t C = c.C, K = c.K;
        float *wt = cpu_slot(im, CPU_SLOT_BF16_0, (size_t)(C * K * 9) * sizeof *wt);
        const float *w = weight->data;
        SSD_PARALLEL_FOR_IF(C * K * 9 > 32768, ci, C, {
            for (int64_t k = 0; k < K; k++)
                for (int rs = 0; rs < 9; rs++) wt[(ci * K + k) * 9 + rs] = w[(k * C + ci) * 9 + 8 - rs];
        });
        const int64_t ws[4] = {C, K, 3, 3};
        ssd_tensor tw = ssd_tensor_view(wt, SSD_F32, 4, ws, "rotated weight");
        conv_forward_dt(be, dinp, dout, &tw, NULL, d, pdt);
        cpu_note_suffix(be, ":bwd-as-fwd");
        return;
    }
    conv_bwd_data_entry *e = conv_bwd_data_get(be, &c, pdt);
    dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_DIFF_DST, ddst_ready ? cpu_arg_bind(be, &e->ddst, dout->data)
                                       : cpu_arg_in(be, &e->ddst, dout->data)},
        {DNNL_ARG_WEIGHTS, cpu_arg_in(be, &e->wei, weight->data)},
        {DNNL_ARG_DIFF_SRC, cpu_arg_out(be, &e->dsrc, dinp->data)},
    };
    cpu_prim_exec(im, &e->conv, 3, args);
    cpu_arg_out_done(be, &e->dsrc);
    cpu_wait(im);
    cpu_prim_note_impl(be, &e->conv);
}

/* ---- backward weights ---- */

typedef struct conv_bwd_w_entry {
    dnnl_primitive_desc_t hint;
    cpu_prim conv;
    cpu_arg src, ddst, dwei, dbias;
    bool has_bias;
} conv_bwd_w_entry;

static void conv_bwd_w_free(void *p) {
    conv_bwd_w_entry *e = p;
    cpu_arg_destroy(&e->src);
    cpu_arg_destroy(&e->ddst);
    cpu_arg_destroy(&e->dwei);
    if (e->has_bias) cpu_arg_destroy(&e->dbias);
    cpu_prim_destroy(&e->conv);
    dnnl_primitive_desc_destroy(e->hint);
    free(e);
}

static conv_bwd_w_entry *conv_bwd_w_get(ssd_backend *be, const conv_dims *c, ssd_dtype dt,
                                        bool has_bias) {
    cpu_impl *im = cpu_impl_of(be);
    cpu_key k;
    conv_key(&k, SSD_OP_CONV2D_BWD_WEIGHTS, dt, c, has_bias);
    conv_bwd_w_entry *e = cpu_cache_find(&im->cache, &k, &be->stats);
    if (e) return e;
    e = ssd_xcalloc(1, sizeof *e);
    e->has_bias = has_bias;
    dnnl_data_type_t ddt = cpu_dnnl_dtype(dt);
    dnnl_convolution_desc_t fd, bd;
    e->hint = conv_fwd_pd(im, c, ddt, has_bias, &fd);
    conv_mds a, u;
    conv_make_mds(&a, c, ddt, true);
    conv_user_mds(&u, c);
    dnnl_dims_t st, pl, pr;
    conv_geometry(c, st, pl, pr);
    DNNL_CHECK(dnnl_convolution_backward_weights_desc_init(
        &bd, dnnl_convolution_direct, &a.src, &a.wei, has_bias ? &a.bias : NULL, &a.dst, st, pl,
        pr));
    cpu_prim_create(im, &e->conv, &bd, NULL, e->hint);
    /* ddst in slot 0, where backward-data keeps its ddst too: cpu_conv2d_backward reuses it */
    cpu_arg_init_in(im, &e->src, &u.src, cpu_prim_md(&e->conv, dnnl_query_src_md, 0),
                    CPU_SLOT_1);
    cpu_arg_init_in(im, &e->ddst, &u.dst, cpu_prim_md(&e->conv, dnnl_query_diff_dst_md, 0),
                    CPU_SLOT_0);
    cpu_arg_init_out(im, &e->dwei, &u.wei, cpu_prim_md(&e->conv, dnnl_query_diff_weights_md, 0),
                     CPU_SLOT_2, true);
    e->dwei.weight = true;
    if (has_bias)
        cpu_arg_init_scratch(im, &e->dbias, cpu_prim_md(&e->conv, dnnl_query_diff_weights_md, 1),
                             CPU_SLOT_3);
    cpu_cache_insert(&im->cache, &k, e, conv_bwd_w_free, &be->stats);
    return e;
}

/* With pdt bf16 the primitive's weight and bias gradients are bf16: the reorder that adds the
 * weight gradient into the f32 dweight widens it, as the loop below does for the bias. */
static void conv_backward_weights_dt(ssd_backend *be, ssd_tensor *dweight, ssd_tensor *dbias,
                                     const ssd_tensor *dout, const ssd_tensor *inp,
                                     const ssd_conv_desc *d, ssd_dtype pdt) {
    cpu_impl *im = cpu_impl_of(be);
    conv_dims c = conv_dims_of(inp, dweight, dout, d);
    if (cpu_wino_applicable(im, pdt, c.R, c.S, c.sh, c.sw, c.ph, c.pw, c.H, c.W, c.C, c.K)) {
        cpu_wino_conv3x3_bwd_weights(be, dweight->data, dbias ? dbias->data : NULL, dout->data,
                                     c.yl, inp->data, c.xl, c.N, c.C, c.H, c.W, c.K);
        return;
    }
    conv_bwd_w_entry *e = conv_bwd_w_get(be, &c, pdt, dbias != NULL);
    dnnl_exec_arg_t args[4] = {
        {DNNL_ARG_SRC, cpu_arg_in(be, &e->src, inp->data)},
        {DNNL_ARG_DIFF_DST, cpu_arg_in(be, &e->ddst, dout->data)},
        {DNNL_ARG_DIFF_WEIGHTS, cpu_arg_out(be, &e->dwei, dweight->data)},
        {DNNL_ARG_DIFF_BIAS, NULL},
    };
    int nargs = 3;
    if (dbias) {
        args[3].memory = cpu_arg_scratch(be, &e->dbias);
        nargs = 4;
    }
    cpu_prim_exec(im, &e->conv, nargs, args);
    cpu_arg_out_done(be, &e->dwei); /* dweight += partial (reorder with sum post-op) */
    cpu_wait(im);
    if (dbias && pdt == SSD_BF16) {
        float *gb = dbias->data;
        const uint16_t *pb = e->dbias.inner_ptr;
        for (int64_t i = 0; i < c.K; i++) gb[i] += ssd_bf16_to_f32(pb[i]);
    } else if (dbias) {
        cpu_accumulate_f32((float *)dbias->data, (const float *)e->dbias.inner_ptr, c.K);
    }
    cpu_prim_note_impl(be, &e->conv);
}

/* ---- bf16 math ---- */

static inline float round_bf16(float x) { return ssd_bf16_to_f32(ssd_f32_to_bf16(x)); }

static void round_into(float *dst, const float *src, int64_t n) {
    SSD_PARALLEL_FOR_IF(n > 32768, i, n, dst[i] = round_bf16(src[i]););
}

/* A view of t's shape over a bf16-rounded copy of its values in scratch slot `slot`. */
static ssd_tensor rounded(cpu_impl *im, int slot, const ssd_tensor *t) {
    ssd_tensor v = *t;
    v.owns = false;
    int64_t n = ssd_tensor_numel(t);
    v.data = cpu_slot(im, slot, (size_t)n * sizeof(float));
    round_into(v.data, t->data, n);
    return v;
}

/* A zeroed view of t's shape in scratch slot `slot` (a partial gradient). */
static ssd_tensor zeroed(cpu_impl *im, int slot, const ssd_tensor *t) {
    ssd_tensor v = *t;
    v.owns = false;
    int64_t n = ssd_tensor_numel(t);
    v.data = cpu_slot(im, slot, (size_t)n * sizeof(float));
    memset(v.data, 0, (size_t)n * sizeof(float));
    return v;
}

/* Whether the convolutions run oneDNN primitives on the user's tensors (f32, or native bf16)
 * rather than the emulation's rounded copies, and in which type those primitives compute. */
static bool on_prims(const cpu_impl *im) { return !im->bf16 || im->bf16_native; }
static ssd_dtype prim_dtype(const cpu_impl *im) { return im->bf16 ? SSD_BF16 : SSD_F32; }
/* the native bf16 path runs the weight gradients as GEMMs by default */
static bool wgrad_gemm(const cpu_impl *im) { return im->bf16_native && !im->bf16_wgrad_native; }

static void note_bf16(ssd_backend *be) { cpu_note_suffix(be, ":bf16"); }

void cpu_conv2d_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                        const ssd_tensor *weight, const ssd_tensor *bias, const ssd_conv_desc *d) {
    cpu_impl *im = cpu_impl_of(be);
    if (on_prims(im)) {
        conv_forward_dt(be, out, inp, weight, bias, d, prim_dtype(im));
        if (im->bf16) note_bf16(be);
        return;
    }
    ssd_tensor x = rounded(im, CPU_SLOT_BF16_0, inp), w = rounded(im, CPU_SLOT_BF16_1, weight);
    ssd_tensor b = bias ? rounded(im, CPU_SLOT_BF16_2, bias) : (ssd_tensor){0};
    conv_forward_dt(be, out, &x, &w, bias ? &b : NULL, d, SSD_F32);
    round_into(out->data, out->data, ssd_tensor_numel(out));
    note_bf16(be);
}

void cpu_conv2d_backward_data(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                              const ssd_tensor *weight, const ssd_conv_desc *d) {
    cpu_impl *im = cpu_impl_of(be);
    if (on_prims(im)) {
        conv_backward_data_dt(be, dinp, dout, weight, d, prim_dtype(im), false);
        if (im->bf16) note_bf16(be);
        return;
    }
    ssd_tensor dy = rounded(im, CPU_SLOT_BF16_0, dout), w = rounded(im, CPU_SLOT_BF16_1, weight);
    conv_backward_data_dt(be, dinp, &dy, &w, d, SSD_F32, false);
    round_into(dinp->data, dinp->data, ssd_tensor_numel(dinp));
    note_bf16(be);
}

void cpu_conv2d_backward_weights(ssd_backend *be, ssd_tensor *dweight, ssd_tensor *dbias,
                                 const ssd_tensor *dout, const ssd_tensor *inp,
                                 const ssd_conv_desc *d) {
    cpu_impl *im = cpu_impl_of(be);
    if (wgrad_gemm(im)) {
        conv_dims c = conv_dims_of(inp, dweight, dout, d);
        cpu_bf16_wgrad_gemm(be, dweight->data, dbias ? dbias->data : NULL, dout->data, inp->data,
                            &c);
        note_bf16(be);
        return;
    }
    if (on_prims(im)) {
        conv_backward_weights_dt(be, dweight, dbias, dout, inp, d, prim_dtype(im));
        if (im->bf16) note_bf16(be);
        return;
    }
    ssd_tensor dy = rounded(im, CPU_SLOT_BF16_0, dout), x = rounded(im, CPU_SLOT_BF16_1, inp);
    ssd_tensor dw = zeroed(im, CPU_SLOT_BF16_2, dweight);
    ssd_tensor db = dbias ? zeroed(im, CPU_SLOT_BF16_3, dbias) : (ssd_tensor){0};
    conv_backward_weights_dt(be, &dw, dbias ? &db : NULL, &dy, &x, d, SSD_F32);
    /* the bf16 gradient of the bf16 copy of the weight, widened and added to the f32 one */
    int64_t nw = ssd_tensor_numel(dweight);
    float *gw = dweight->data, *pw = dw.data;
    for (int64_t i = 0; i < nw; i++) gw[i] += round_bf16(pw[i]);
    if (dbias) {
        float *gb = dbias->data, *pb = db.data;
        for (int64_t i = 0; i < dbias->shape[0]; i++) gb[i] += round_bf16(pb[i]);
    }
    note_bf16(be);
}

/* Both backward passes from one dout. Where backward-weights (oneDNN's convolution, or the bf16
 * GEMMs) and oneDNN's backward-data want dout in one layout (not Winograd, not emulated bf16),
 * it is converted once: backward-weights leaves it in slot 0, and backward-data, whose ddst
 * also lives in slot 0 and whose other arguments do not, uses it as it is. The same primitives
 * on the same bits: identical results (test_ops_parity checks bit equality with the two
 * calls). */
void cpu_conv2d_backward(ssd_backend *be, ssd_tensor *dweight, ssd_tensor *dbias, ssd_tensor *dinp,
                         const ssd_tensor *dout, const ssd_tensor *inp, const ssd_tensor *weight,
                         const ssd_conv_desc *d) {
    cpu_impl *im = cpu_impl_of(be);
    conv_dims c = conv_dims_of(inp, weight, dout, d);
    const ssd_dtype pdt = prim_dtype(im);
    /* Backward-data takes the dout that backward-weights converted when both want it in one
     * layout in one slot: the GEMM's bf16 NHWC copy of an f32 dout, or the reorder of oneDNN's
     * backward-weights. Not for Winograd, the emulation, or a dout already in the bf16
     * activation form (nothing to convert). The lookups here are probes, not uses: they are
     * not counted as cache reuses. */
    bool share = false;
    if (on_prims(im) && c.ydt != SSD_BF16 &&
        !cpu_wino_applicable(im, pdt, c.R, c.S, c.sh, c.sw, c.ph, c.pw, c.H, c.W, c.C, c.K)) {
        const uint64_t reused = be->stats.prims_reused;
        const dnnl_memory_desc_t *md;
        int slot;
        bool converted = true; /* the GEMM always converts an f32 dout */
        if (wgrad_gemm(im)) {
            md = cpu_bf16_wgrad_gemm_dout_md(be, &c, &slot);
        } else {
            const conv_bwd_w_entry *ew = conv_bwd_w_get(be, &c, pdt, dbias != NULL);
            md = cpu_prim_md(&ew->conv, dnnl_query_diff_dst_md, 0);
            slot = ew->ddst.slot;
            converted = ew->ddst.has_reorder;
        }
        const conv_bwd_data_entry *ed = conv_bwd_data_get(be, &c, pdt);
        share = converted && ed->ddst.has_reorder && ed->ddst.slot == slot &&
                dnnl_memory_desc_equal(md, cpu_prim_md(&ed->conv, dnnl_query_diff_dst_md, 0));
        be->stats.prims_reused = reused;
    }
    cpu_conv2d_backward_weights(be, dweight, dbias, dout, inp, d);
    if (!share) {
        cpu_conv2d_backward_data(be, dinp, dout, weight, d);
        return;
    }
    conv_backward_data_dt(be, dinp, dout, weight, d, pdt, true);
    if (im->bf16) note_bf16(be);
}
