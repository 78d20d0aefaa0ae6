/* ReLU and max pooling on oneDNN.
 *
 * ReLU: eltwise relu forward; backward is eltwise relu_use_dst_for_bwd on the forward output
 * (dinp = dout where out > 0 else 0), both over the flattened tensor.
 * Maxpool: pooling_max forward (padding never wins, as -inf). The backward needs oneDNN's
 * workspace (the argmax of every window), which the forward of an earlier call does not keep,
 * so it re-runs a forward_training pooling into scratch slots to get the workspace, then runs
 * the pooling backward. oneDNN keeps the FIRST maximum of each window in row-major scan order
 * (it only replaces the running max on a strictly greater value), which is the rule of the
 * reference (PyTorch CPU); the parity test checks this with many ties. */
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/mem.h"

/* ---- relu ---- */

typedef struct relu_entry {
    dnnl_primitive_desc_t hint; /* backward only */
    cpu_prim prim;
    cpu_arg a, b, c;
    bool backward;
} relu_entry;

static void relu_free(void *p) {
    relu_entry *e = p;
    cpu_arg_destroy(&e->a);
    cpu_arg_destroy(&e->b);
    if (e->backward) {
        cpu_arg_destroy(&e->c);
        dnnl_primitive_desc_destroy(e->hint);
    }
    cpu_prim_destroy(&e->prim);
    free(e);
}

static relu_entry *relu_get(ssd_backend *be, ssd_op op, const ssd_tensor *t) {
    cpu_impl *im = cpu_impl_of(be);
    cpu_key k;
    cpu_key_init(&k, op, t->dtype);
    cpu_key_add(&k, ssd_tensor_numel(t));
    relu_entry *e = cpu_cache_find(&im->cache, &k, &be->stats);
    if (e) return e;
    e = ssd_xcalloc(1, sizeof *e);
    dnnl_memory_desc_t md;
    cpu_md_flat(&md, t);
    dnnl_eltwise_desc_t fd, bd;
    if (op == SSD_OP_RELU_FWD) {
        DNNL_CHECK(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_inference, dnnl_eltwise_relu,
                                                  &md, 0.0f, 0.0f));
        cpu_prim_create(im, &e->prim, &fd, NULL, NULL);
    } else {
        e->backward = true;
        DNNL_CHECK(dnnl_eltwise_forward_desc_init(&fd, dnnl_forward_training,
                                                  dnnl_eltwise_relu_use_dst_for_bwd, &md, 0.0f,
                                                  0.0f));
        DNNL_CHECK(dnnl_primitive_desc_create(&e->hint, &fd, NULL, im->engine, NULL));
        DNNL_CHECK(dnnl_eltwise_backward_desc_init(&bd, dnnl_eltwise_relu_use_dst_for_bwd, &md,
                                                   &md, 0.0f, 0.0f));
        cpu_prim_create(im, &e->prim, &bd, NULL, e->hint);
        cpu_arg_init_user(im, &e->c, &md);
    }
    cpu_arg_init_user(im, &e->a, &md);
    cpu_arg_init_user(im, &e->b, &md);
    cpu_cache_insert(&im->cache, &k, e, relu_free, &be->stats);
    return e;
}

void cpu_relu_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp) {
    cpu_impl *im = cpu_impl_of(be);
    relu_entry *e = relu_get(be, SSD_OP_RELU_FWD, inp);
    dnnl_exec_arg_t args[2] = {
        {DNNL_ARG_SRC, cpu_arg_in(be, &e->a, inp->data)},
        {DNNL_ARG_DST, cpu_arg_out(be, &e->b, out->data)},
    };
    cpu_prim_exec(im, &e->prim, 2, args);
    cpu_wait(im);
}

void cpu_relu_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                       const ssd_tensor *out) {
    cpu_impl *im = cpu_impl_of(be);
    relu_entry *e = relu_get(be, SSD_OP_RELU_BWD, out);
    dnnl_exec_arg_t args[3] = {
        {DNNL_ARG_DST, cpu_arg_in(be, &e->a, out->data)},
        {DNNL_ARG_DIFF_DST, cpu_arg_in(be, &e->b, dout->data)},
        {DNNL_ARG_DIFF_SRC, cpu_arg_out(be, &e->c, dinp->data)},
    };
    cpu_prim_exec(im, &e->prim, 3, args);
    cpu_wait(im);
}

/* ---- maxpool ---- */

typedef struct pool_entry {
    cpu_prim fwd;      /* inference forward, or the training forward that makes the workspace */
    cpu_prim bwd;      /* backward only */
    cpu_arg src, dst;  /* forward: user src/dst; backward: user src, scratch dst */
    cpu_arg ws;        /* backward: workspace scratch */
    cpu_arg ddst, dsrc;
    bool backward;
} pool_entry;

static void pool_free(void *p) {
    pool_entry *e = p;
    cpu_arg_destroy(&e->src);
    cpu_arg_destroy(&e->dst);
    if (e->backward) {
        cpu_arg_destroy(&e->ws);
        cpu_arg_destroy(&e->ddst);
        cpu_arg_destroy(&e->dsrc);
        cpu_prim_destroy(&e->bwd);
    }
    cpu_prim_destroy(&e->fwd);
    free(e);
}

static pool_entry *pool_get(ssd_backend *be, ssd_op op, const ssd_tensor *x, const ssd_tensor *y,
                            const ssd_pool_desc *d) {
    cpu_impl *im = cpu_impl_of(be);
    cpu_key k;
    cpu_key_init(&k, op, x->dtype);
    for (int i = 0; i < 4; i++) cpu_key_add(&k, x->shape[i]);
    cpu_key_add(&k, d->kernel);
    cpu_key_add(&k, d->stride);
    cpu_key_add(&k, d->pad);
    pool_entry *e = cpu_cache_find(&im->cache, &k, &be->stats);
    if (e) return e;
    e = ssd_xcalloc(1, sizeof *e);
    e->backward = op == SSD_OP_MAXPOOL_BWD;
    dnnl_data_type_t dt = cpu_dnnl_dtype(x->dtype);
    dnnl_memory_desc_t smd, dmd;
    cpu_md_plain(&smd, 4, x->shape, dt);
    cpu_md_plain(&dmd, 4, y->shape, dt);
    dnnl_dims_t st = {d->stride, d->stride}, ker = {d->kernel, d->kernel},
                pl = {d->pad, d->pad}, pr;
    /* right padding consistent with the floored output size */
    for (int i = 0; i < 2; i++) {
        int64_t r = (y->shape[2 + i] - 1) * d->stride + d->kernel - x->shape[2 + i] - d->pad;
        pr[i] = r > 0 ? r : 0;
    }
    dnnl_pooling_desc_t fd;
    DNNL_CHECK(dnnl_pooling_forward_desc_init(
        &fd, e->backward ? dnnl_forward_training : dnnl_forward_inference, dnnl_pooling_max,
        &smd, &dmd, st, ker, pl, pr));
    cpu_prim_create(im, &e->fwd, &fd, NULL, NULL);
    cpu_arg_init_user(im, &e->src, &smd);
    if (!e->backward) {
        cpu_arg_init_user(im, &e->dst, &dmd);
    } else {
        cpu_arg_init_scratch(im, &e->dst, &dmd, CPU_SLOT_0);
        cpu_arg_init_scratch(im, &e->ws, cpu_prim_md(&e->fwd, dnnl_query_workspace_md, 0),
                             CPU_SLOT_1);
        dnnl_pooling_desc_t bd;
        DNNL_CHECK(dnnl_pooling_backward_desc_init(&bd, dnnl_pooling_max, &smd, &dmd, st, ker, pl,
                                                   pr));
        cpu_prim_create(im, &e->bwd, &bd, NULL, e->fwd.pd);
        cpu_arg_init_user(im, &e->ddst, &dmd);
        cpu_arg_init_user(im, &e->dsrc, &smd);
    }
    cpu_cache_insert(&im->cache, &k, e, pool_free, &be->stats);
    return e;
}

void cpu_maxpool_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                         const ssd_pool_desc *d) {
    cpu_impl *im = cpu_impl_of(be);
    pool_entry *e = pool_get(be, SSD_OP_MAXPOOL_FWD, inp, out, d);
    dnnl_exec_arg_t args[2] = {
        {DNNL_ARG_SRC, cpu_arg_in(be, &e->src, inp->data)},
        {DNNL_ARG_DST, cpu_arg_out(be, &e->dst, out->data)},
    };
    cpu_prim_exec(im, &e->fwd, 2, args);
    cpu_wait(im);
    cpu_prim_note_impl(be, &e->fwd);
}

void cpu_maxpool_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                          const ssd_tensor *inp, const ssd_pool_desc *d) {
    cpu_impl *im = cpu_impl_of(be);
    pool_entry *e = pool_get(be, SSD_OP_MAXPOOL_BWD, inp, dout, d);
    dnnl_memory_t ws = cpu_arg_scratch(be, &e->ws);
    dnnl_exec_arg_t fa[3] = {
        {DNNL_ARG_SRC, cpu_arg_in(be, &e->src, inp->data)},
        {DNNL_ARG_DST, cpu_arg_scratch(be, &e->dst)},
        {DNNL_ARG_WORKSPACE, ws},
    };
    cpu_prim_exec(im, &e->fwd, 3, fa);
    dnnl_exec_arg_t ba[3] = {
        {DNNL_ARG_DIFF_DST, cpu_arg_in(be, &e->ddst, dout->data)},
        {DNNL_ARG_WORKSPACE, ws},
        {DNNL_ARG_DIFF_SRC, cpu_arg_out(be, &e->dsrc, dinp->data)},
    };
    cpu_prim_exec(im, &e->bwd, 3, ba);
    cpu_wait(im);
    cpu_prim_note_impl(be, &e->bwd);
}
