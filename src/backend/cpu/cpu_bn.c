/* Batch normalization on oneDNN (plain NCHW data, 1-d per-channel tensors).
 *
 * Forward (training and inference): batch_normalization with use_scale|use_shift (separate
 * gamma/beta memories), use_global_stats for inference; with desc->relu and no residual the
 * ReLU is fused (fuse_norm_relu; its training workspace goes to a scratch slot, the backward
 * recomputes the mask from `out`). With a residual: BN, then a binary add (in place on `out`)
 * with an eltwise ReLU post-op when desc->relu. oneDNN writes the batch mean and biased
 * variance into save_mean/save_var; the running statistics are updated here with the unbiased
 * variance, as torch does.
 *
 * Backward: if desc->relu, dout is masked where out <= 0 by an eltwise relu backward that
 * uses the forward output (relu_use_dst_for_bwd), written to dresidual when given (else to a
 * scratch); then batch_normalization backward (use_scale|use_shift) gives dinp and the
 * parameter gradients, which are added into dgamma/dbeta. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/mem.h"

enum { BN_RELU = 1, BN_RESIDUAL = 2, BN_DRESIDUAL = 4 };

static void bn_key(cpu_key *k, ssd_op op, const ssd_tensor *x, unsigned flags, double eps) {
    cpu_key_init(k, op, x->dtype);
    for (int i = 0; i < 4; i++) cpu_key_add(k, x->shape[i]);
    cpu_key_add(k, flags);
    cpu_key_add_f64(k, eps);
}

static void bn_mds(const ssd_tensor *x, dnnl_memory_desc_t *data, dnnl_memory_desc_t *stat) {
    cpu_md_plain(data, 4, x->shape, cpu_dnnl_dtype(x->dtype));
    cpu_md_plain(stat, 1, &x->shape[1], dnnl_f32); /* statistics and scale/shift stay f32 */
}

/* The in-place `out += residual` (+ ReLU) primitive. */
static void make_residual_add(cpu_impl *im, cpu_prim *p, const dnnl_memory_desc_t *data,
                              bool relu) {
    dnnl_binary_desc_t bd;
    DNNL_CHECK(dnnl_binary_desc_init(&bd, dnnl_binary_add, data, data, data));
    dnnl_primitive_attr_t attr;
    DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    if (relu) {
        dnnl_post_ops_t po;
        DNNL_CHECK(dnnl_post_ops_create(&po));
        DNNL_CHECK(dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f));
        DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, po));
        DNNL_CHECK(dnnl_post_ops_destroy(po));
    }
    cpu_prim_create(im, p, &bd, attr, NULL);
    DNNL_CHECK(dnnl_primitive_attr_destroy(attr));
}

/* ---- forward (training and inference) ---- */

typedef struct bn_fwd_entry {
    cpu_prim bn;
    cpu_prim resadd; /* when a residual is given */
    cpu_arg src, dst, scale, shift, mean, var, ws, res;
    bool has_res, has_ws;
} bn_fwd_entry;

static void bn_fwd_free(void *p) {
    bn_fwd_entry *e = p;
    cpu_arg_destroy(&e->src);
    cpu_arg_destroy(&e->dst);
    cpu_arg_destroy(&e->scale);
    cpu_arg_destroy(&e->shift);
    cpu_arg_destroy(&e->mean);
    cpu_arg_destroy(&e->var);
    if (e->has_ws) cpu_arg_destroy(&e->ws);
    if (e->has_res) {
        cpu_arg_destroy(&e->res);
        cpu_prim_destroy(&e->resadd);
    }
    cpu_prim_destroy(&e->bn);
    free(e);
}

static bn_fwd_entry *bn_fwd_get(ssd_backend *be, ssd_op op, const ssd_tensor *x, bool relu,
                                bool has_res, double eps) {
    cpu_impl *im = cpu_impl_of(be);
    bool training = op == SSD_OP_BN_TRAIN_FWD;
    unsigned flags = (relu ? BN_RELU : 0) | (has_res ? BN_RESIDUAL : 0);
    cpu_key k;
    bn_key(&k, op, x, flags, eps);
    bn_fwd_entry *e = cpu_cache_find(&im->cache, &k, &be->stats);
    if (e) return e;
    e = ssd_xcalloc(1, sizeof *e);
    e->has_res = has_res;
    dnnl_memory_desc_t data, stat;
    bn_mds(x, &data, &stat);
    unsigned bf = dnnl_use_scale | dnnl_use_shift;
    if (!training) bf |= dnnl_use_global_stats;
    if (relu && !has_res) bf |= dnnl_fuse_norm_relu;
    dnnl_batch_normalization_desc_t bd;
    DNNL_CHECK(dnnl_batch_normalization_forward_desc_init(
        &bd, training ? dnnl_forward_training : dnnl_forward_inference, &data, (float)eps, bf));
    cpu_prim_create(im, &e->bn, &bd, NULL, NULL);
    cpu_arg_init_user(im, &e->src, &data);
    cpu_arg_init_user(im, &e->dst, &data);
    cpu_arg_init_user(im, &e->scale, &stat);
    cpu_arg_init_user(im, &e->shift, &stat);
    cpu_arg_init_user(im, &e->mean, &stat);
    cpu_arg_init_user(im, &e->var, &stat);
    const dnnl_memory_desc_t *wmd = cpu_prim_md(&e->bn, dnnl_query_workspace_md, 0);
    if (wmd && dnnl_memory_desc_get_size(wmd) > 0) {
        cpu_arg_init_scratch(im, &e->ws, wmd, CPU_SLOT_0);
        e->has_ws = true;
    }
    if (has_res) {
        cpu_arg_init_user(im, &e->res, &data);
        make_residual_add(im, &e->resadd, &data, relu);
    }
    cpu_cache_insert(&im->cache, &k, e, bn_fwd_free, &be->stats);
    return e;
}

static void bn_fwd_run(ssd_backend *be, bn_fwd_entry *e, ssd_tensor *out, const ssd_tensor *inp,
                       const ssd_tensor *gamma, const ssd_tensor *beta, void *mean, void *var,
                       const ssd_tensor *residual) {
    cpu_impl *im = cpu_impl_of(be);
    dnnl_exec_arg_t args[7] = {
        {DNNL_ARG_SRC, cpu_arg_in(be, &e->src, inp->data)},
        {DNNL_ARG_DST, cpu_arg_out(be, &e->dst, out->data)},
        {DNNL_ARG_SCALE, cpu_arg_in(be, &e->scale, gamma->data)},
        {DNNL_ARG_SHIFT, cpu_arg_in(be, &e->shift, beta->data)},
        {DNNL_ARG_MEAN, cpu_arg_in(be, &e->mean, mean)},
        {DNNL_ARG_VARIANCE, cpu_arg_in(be, &e->var, var)},
        {DNNL_ARG_WORKSPACE, NULL},
    };
    int nargs = 6;
    if (e->has_ws) {
        args[6].memory = cpu_arg_scratch(be, &e->ws);
        nargs = 7;
    }
    cpu_prim_exec(im, &e->bn, nargs, args);
    if (e->has_res) {
        dnnl_exec_arg_t ra[3] = {
            {DNNL_ARG_SRC_0, e->dst.user},
            {DNNL_ARG_SRC_1, cpu_arg_in(be, &e->res, residual->data)},
            {DNNL_ARG_DST, e->dst.user},
        };
        cpu_prim_exec(im, &e->resadd, 3, ra);
    }
    cpu_wait(im);
    cpu_prim_note_impl(be, &e->bn);
}

void cpu_bn_train_forward(ssd_backend *be, ssd_tensor *out, ssd_tensor *save_mean,
                          ssd_tensor *save_var, ssd_tensor *running_mean,
                          ssd_tensor *running_var, const ssd_tensor *inp, const ssd_tensor *gamma,
                          const ssd_tensor *beta, const ssd_tensor *residual,
                          const ssd_bn_desc *d) {
    bn_fwd_entry *e = bn_fwd_get(be, SSD_OP_BN_TRAIN_FWD, inp, d->relu, residual != NULL, d->eps);
    bn_fwd_run(be, e, out, inp, gamma, beta, save_mean->data, save_var->data, residual);
    /* running stats, torch's update: r = (1-m) r + m batch, variance unbiased */
    const float *sm = save_mean->data, *sv = save_var->data;
    float *rm = running_mean->data, *rv = running_var->data;
    double count = (double)(inp->shape[0] * inp->shape[2] * inp->shape[3]), m = d->momentum;
    for (int64_t c = 0; c < inp->shape[1]; c++) {
        rm[c] = (float)((1.0 - m) * (double)rm[c] + m * (double)sm[c]);
        rv[c] = (float)((1.0 - m) * (double)rv[c] + m * (double)sv[c] * count / (count - 1.0));
    }
}

void cpu_bn_infer_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                          const ssd_tensor *gamma, const ssd_tensor *beta,
                          const ssd_tensor *running_mean, const ssd_tensor *running_var,
                          const ssd_tensor *residual, const ssd_bn_desc *d) {
    bn_fwd_entry *e = bn_fwd_get(be, SSD_OP_BN_INFER_FWD, inp, d->relu, residual != NULL, d->eps);
    bn_fwd_run(be, e, out, inp, gamma, beta, running_mean->data, running_var->data, residual);
}

/* ---- backward ---- */

typedef struct bn_bwd_entry {
    dnnl_primitive_desc_t bn_hint, relu_hint;
    cpu_prim bn, relu;
    cpu_arg src, mean, var, scale, shift, dout, out, dsrc, dscale, dshift, masked;
    bool relu_mask, dres;
} bn_bwd_entry;

static void bn_bwd_free(void *p) {
    bn_bwd_entry *e = p;
    cpu_arg_destroy(&e->src);
    cpu_arg_destroy(&e->mean);
    cpu_arg_destroy(&e->var);
    cpu_arg_destroy(&e->scale);
    cpu_arg_destroy(&e->shift);
    cpu_arg_destroy(&e->dout);
    cpu_arg_destroy(&e->dsrc);
    cpu_arg_destroy(&e->dscale);
    cpu_arg_destroy(&e->dshift);
    if (e->relu_mask) {
        cpu_arg_destroy(&e->out);
        cpu_arg_destroy(&e->masked);
        cpu_prim_destroy(&e->relu);
        dnnl_primitive_desc_destroy(e->relu_hint);
    }
    cpu_prim_destroy(&e->bn);
    dnnl_primitive_desc_destroy(e->bn_hint);
    free(e);
}

static bn_bwd_entry *bn_bwd_get(ssd_backend *be, const ssd_tensor *x, bool relu, bool dres,
                                double eps) {
    cpu_impl *im = cpu_impl_of(be);
    cpu_key k;
    bn_key(&k, SSD_OP_BN_BWD, x, (relu ? BN_RELU : 0) | (dres ? BN_DRESIDUAL : 0), eps);
    bn_bwd_entry *e = cpu_cache_find(&im->cache, &k, &be->stats);
    if (e) return e;
    e = ssd_xcalloc(1, sizeof *e);
    e->relu_mask = relu;
    e->dres = dres;
    dnnl_memory_desc_t data, stat;
    bn_mds(x, &data, &stat);
    unsigned bf = dnnl_use_scale | dnnl_use_shift;

    dnnl_batch_normalization_desc_t fd, bd;
    DNNL_CHECK(dnnl_batch_normalization_forward_desc_init(&fd, dnnl_forward_training, &data,
                                                          (float)eps, bf));
    DNNL_CHECK(dnnl_primitive_desc_create(&e->bn_hint, &fd, NULL, im->engine, NULL));
    DNNL_CHECK(dnnl_batch_normalization_backward_desc_init(&bd, dnnl_backward, &data, &data,
                                                           (float)eps, bf));
    cpu_prim_create(im, &e->bn, &bd, NULL, e->bn_hint);

    cpu_arg_init_user(im, &e->src, &data);
    cpu_arg_init_user(im, &e->mean, &stat);
    cpu_arg_init_user(im, &e->var, &stat);
    cpu_arg_init_user(im, &e->scale, &stat);
    cpu_arg_init_user(im, &e->shift, &stat);
    cpu_arg_init_user(im, &e->dout, &data);
    cpu_arg_init_user(im, &e->dsrc, &data);
    cpu_arg_init_scratch(im, &e->dscale, &stat, CPU_SLOT_1);
    cpu_arg_init_scratch(im, &e->dshift, &stat, CPU_SLOT_2);

    if (relu) {
        dnnl_eltwise_desc_t ef, eb;
        DNNL_CHECK(dnnl_eltwise_forward_desc_init(&ef, dnnl_forward_training,
                                                  dnnl_eltwise_relu_use_dst_for_bwd, &data, 0.0f,
                                                  0.0f));
        DNNL_CHECK(dnnl_primitive_desc_create(&e->relu_hint, &ef, NULL, im->engine, NULL));
        DNNL_CHECK(dnnl_eltwise_backward_desc_init(&eb, dnnl_eltwise_relu_use_dst_for_bwd, &data,
                                                   &data, 0.0f, 0.0f));
        cpu_prim_create(im, &e->relu, &eb, NULL, e->relu_hint);
        cpu_arg_init_user(im, &e->out, &data);
        if (dres) cpu_arg_init_user(im, &e->masked, &data);
        else cpu_arg_init_scratch(im, &e->masked, &data, CPU_SLOT_0);
    }
    cpu_cache_insert(&im->cache, &k, e, bn_bwd_free, &be->stats);
    return e;
}

void cpu_bn_backward(ssd_backend *be, ssd_tensor *dinp, ssd_tensor *dresidual, ssd_tensor *dgamma,
                     ssd_tensor *dbeta, const ssd_tensor *dout, const ssd_tensor *out,
                     const ssd_tensor *inp, const ssd_tensor *gamma, const ssd_tensor *save_mean,
                     const ssd_tensor *save_var, const ssd_bn_desc *d) {
    cpu_impl *im = cpu_impl_of(be);
    bn_bwd_entry *e = bn_bwd_get(be, inp, d->relu, dresidual != NULL, d->eps);
    dnnl_memory_t dy = cpu_arg_in(be, &e->dout, dout->data);
    if (e->relu_mask) {
        /* dy = dout where out > 0 else 0, into dresidual or a scratch */
        dnnl_memory_t masked = e->dres ? cpu_arg_out(be, &e->masked, dresidual->data)
                                       : cpu_arg_scratch(be, &e->masked);
        dnnl_exec_arg_t ra[3] = {
            {DNNL_ARG_DST, cpu_arg_in(be, &e->out, out->data)},
            {DNNL_ARG_DIFF_DST, dy},
            {DNNL_ARG_DIFF_SRC, masked},
        };
        cpu_prim_exec(im, &e->relu, 3, ra);
        dy = masked;
    } else if (dresidual && dresidual->data != dout->data) {
        memcpy(dresidual->data, dout->data, ssd_tensor_nbytes(dout));
    }
    /* oneDNN 2.6's backward with use_shift counts SHIFT among its inputs although the
     * gradients do not depend on beta (which this op does not receive): gamma stands in. */
    dnnl_exec_arg_t args[9] = {
        {DNNL_ARG_SRC, cpu_arg_in(be, &e->src, inp->data)},
        {DNNL_ARG_MEAN, cpu_arg_in(be, &e->mean, save_mean->data)},
        {DNNL_ARG_VARIANCE, cpu_arg_in(be, &e->var, save_var->data)},
        {DNNL_ARG_DIFF_DST, dy},
        {DNNL_ARG_SCALE, cpu_arg_in(be, &e->scale, gamma->data)},
        {DNNL_ARG_SHIFT, cpu_arg_in(be, &e->shift, gamma->data)},
        {DNNL_ARG_DIFF_SRC, cpu_arg_out(be, &e->dsrc, dinp->data)},
        {DNNL_ARG_DIFF_SCALE, cpu_arg_scratch(be, &e->dscale)},
        {DNNL_ARG_DIFF_SHIFT, cpu_arg_scratch(be, &e->dshift)},
    };
    cpu_prim_exec(im, &e->bn, 9, args);
    cpu_wait(im);
    int64_t C = inp->shape[1];
    cpu_accumulate_f32(dgamma->data, e->dscale.inner_ptr, C);
    cpu_accumulate_f32(dbeta->data, e->dshift.inner_ptr, C);
    cpu_prim_note_impl(be, &e->bn);
}
