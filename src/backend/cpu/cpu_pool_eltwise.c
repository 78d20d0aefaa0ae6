/* ReLU on oneDNN, max pooling our own.
 *
 * ReLU: eltwise relu forward; backward is eltwise relu_use_dst_for_bwd on the forward output
 * (dinp = dout where out > 0 else 0), both over the flattened tensor.
 * Maxpool: plain loops over NCHW planes, parallel over planes. oneDNN 2.6's pooling on plain
 * NCHW (`simple_nchw`) took 154 ms forward and 213 ms backward for the network's one pool at
 * batch 8 on the 2-core Zen 3 -- its backward also needs a workspace that only a training
 * forward makes, so it ran the forward twice. Ours recomputes each window's argmax in the
 * backward instead of keeping one. The rule is the reference's (PyTorch CPU): the FIRST
 * maximum of each window in row-major scan order (a later value wins only when strictly
 * greater), a NaN wins, and padding never does (-inf for a window of padding only); the
 * parity test checks it with many ties. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/par.h"
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
    if (inp->dtype == SSD_BF16) {
        cpu_bf16_relu_forward(out, inp);
        return;
    }
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
    if (out->dtype == SSD_BF16) {
        cpu_bf16_relu_backward(dinp, dout, out);
        return;
    }
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

/* Index (h*W + w) of the first maximum of the window of output (p, q) in row-major scan order
 * (a later value wins only when strictly greater; a NaN wins at once), or -1 when the window
 * holds only padding. */
static inline int64_t window_argmax(const float *ip, int64_t H, int64_t W, int64_t p, int64_t q,
                                    const ssd_pool_desc *d) {
    const int64_t h0 = p * d->stride - d->pad, w0 = q * d->stride - d->pad;
    const int64_t ha = h0 < 0 ? 0 : h0, hb = h0 + d->kernel < H ? h0 + d->kernel : H;
    const int64_t wa = w0 < 0 ? 0 : w0, wb = w0 + d->kernel < W ? w0 + d->kernel : W;
    int64_t best = -1;
    float bv = 0.0f;
    for (int64_t h = ha; h < hb; h++)
        for (int64_t w = wa; w < wb; w++) {
            const float v = ip[h * W + w];
            if (isnan(v)) return h * W + w;
            if (best < 0 || v > bv) {
                best = h * W + w;
                bv = v;
            }
        }
    return best;
}

void cpu_maxpool_forward(ssd_backend *be, ssd_tensor *out, const ssd_tensor *inp,
                         const ssd_pool_desc *d) {
    if (inp->dtype == SSD_BF16) {
        cpu_nhwc_maxpool_forward(be, out, inp, d);
        return;
    }
    if (inp->layout == SSD_LAYOUT_NCHW16C) {
        cpu_blk_maxpool_forward(be, out, inp, d);
        return;
    }
    const int64_t NC = inp->shape[0] * inp->shape[1], H = inp->shape[2], W = inp->shape[3];
    const int64_t P = out->shape[2], Q = out->shape[3];
    const float *x = inp->data;
    float *y = out->data;
    SSD_PARALLEL_FOR(nc, NC, {
        const float *ip = x + nc * H * W;
        float *op = y + nc * P * Q;
        for (int64_t p = 0; p < P; p++)
            for (int64_t q = 0; q < Q; q++) {
                const int64_t a = window_argmax(ip, H, W, p, q, d);
                op[p * Q + q] = a < 0 ? -INFINITY : ip[a];
            }
    });
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:maxpool_nchw");
}

/* dinp = 0, then each output's gradient is added to its window's argmax, in output order. */
void cpu_maxpool_backward(ssd_backend *be, ssd_tensor *dinp, const ssd_tensor *dout,
                          const ssd_tensor *inp, const ssd_pool_desc *d) {
    if (inp->dtype == SSD_BF16) {
        cpu_nhwc_maxpool_backward(be, dinp, dout, inp, d);
        return;
    }
    if (inp->layout == SSD_LAYOUT_NCHW16C) {
        cpu_blk_maxpool_backward(be, dinp, dout, inp, d);
        return;
    }
    const int64_t NC = inp->shape[0] * inp->shape[1], H = inp->shape[2], W = inp->shape[3];
    const int64_t P = dout->shape[2], Q = dout->shape[3];
    const float *x = inp->data, *dy = dout->data;
    float *dx = dinp->data;
    SSD_PARALLEL_FOR(nc, NC, {
        const float *ip = x + nc * H * W, *gp = dy + nc * P * Q;
        float *dp = dx + nc * H * W;
        memset(dp, 0, (size_t)(H * W) * sizeof(float));
        for (int64_t p = 0; p < P; p++)
            for (int64_t q = 0; q < Q; q++) {
                const int64_t a = window_argmax(ip, H, W, p, q, d);
                if (a >= 0) dp[a] += gp[p * Q + q];
            }
    });
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "own:maxpool_nchw");
}
