#include "op_runner.h"

#include <stdio.h>

#include <string.h>

#include "core/log.h"

/* Value the runner pre-loads into parameter gradients to prove they accumulate. */
#define ACC0 0.25

void or_free(or_outputs *o) {
    for (int i = 0; i < o->n; i++) ssd_tensor_free(&o->t[i]);
    o->n = 0;
}

static void put(or_outputs *o, ssd_backend *be, const char *name, const ssd_tensor *t,
                double minus) {
    SSD_ASSERT(o->n < OR_MAX_OUT, "too many outputs");
    o->names[o->n] = name;
    o->t[o->n] = tu_to_host(be, t, SSD_F64);
    if (minus != 0) {
        int64_t n = ssd_tensor_numel(&o->t[o->n]);
        for (int64_t i = 0; i < n; i++)
            ssd_tensor_set(&o->t[o->n], i, ssd_tensor_get(&o->t[o->n], i) - minus);
    }
    o->n++;
}

ssd_tensor or_rand(ssd_rng *r, int ndim, const int64_t *shape, double lo, double hi,
                   const char *name) {
    ssd_tensor t = ssd_tensor_alloc_host(SSD_F64, ndim, shape, name);
    int64_t n = ssd_tensor_numel(&t);
    for (int64_t i = 0; i < n; i++) ssd_tensor_set(&t, i, (float)ssd_rng_range(r, lo, hi));
    return t;
}

ssd_tensor or_rand4(ssd_rng *r, int64_t n, int64_t c, int64_t h, int64_t w, double lo, double hi,
                    const char *name) {
    int64_t shape[4] = {n, c, h, w};
    return or_rand(r, 4, shape, lo, hi, name);
}

/* Activations go to the backend in the activation form of dt (bf16: channels-last, the
 * backend's bf16 activations; else row-major), parameters in par(dt) row-major (f32 beside
 * bf16 activations: the masters). */
static ssd_dtype par(ssd_dtype dt) { return dt == SSD_BF16 ? SSD_F32 : dt; }

or_outputs or_conv(ssd_backend *be, ssd_dtype dt, const ssd_tensor *x, const ssd_tensor *w,
                   const ssd_tensor *b, const ssd_tensor *dy, const ssd_conv_desc *d) {
    or_outputs o = {0};
    ssd_tensor bx = tu_to_backend_act(be, x, dt), bw = tu_to_backend(be, w, par(dt));
    ssd_tensor bdy = tu_to_backend_act(be, dy, dt);
    ssd_tensor bb = b ? tu_to_backend(be, b, par(dt)) : (ssd_tensor){0};
    ssd_tensor by = tu_zeros_act(be, dy, dt), bdx = tu_zeros_act(be, x, dt);
    ssd_tensor bdw = tu_zeros_like(be, w, par(dt));
    ssd_tensor bdb = b ? tu_zeros_like(be, b, par(dt)) : (ssd_tensor){0};
    ssd_fill(be, &bdw, ACC0);
    if (b) ssd_fill(be, &bdb, ACC0);
    ssd_conv2d_forward(be, &by, &bx, &bw, b ? &bb : NULL, d);
    snprintf(o.impl[0], sizeof o.impl[0], "%s", be->stats.last_impl);
    ssd_conv2d_backward_data(be, &bdx, &bdy, &bw, d);
    snprintf(o.impl[1], sizeof o.impl[1], "%s", be->stats.last_impl);
    ssd_conv2d_backward_weights(be, &bdw, b ? &bdb : NULL, &bdy, &bx, d);
    snprintf(o.impl[2], sizeof o.impl[2], "%s", be->stats.last_impl);
    put(&o, be, "y", &by, 0);
    put(&o, be, "dx", &bdx, 0);
    put(&o, be, "dw", &bdw, ACC0);
    if (b) put(&o, be, "db", &bdb, ACC0);
    ssd_tensor *all[] = {&bx, &bw, &bdy, &bb, &by, &bdx, &bdw, &bdb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ssd_backend_tensor_free(be, all[i]);
    return o;
}

or_outputs or_bn_train(ssd_backend *be, ssd_dtype dt, const ssd_tensor *x, const ssd_tensor *gamma,
                       const ssd_tensor *beta, const ssd_tensor *rmean, const ssd_tensor *rvar,
                       const ssd_tensor *res, const ssd_tensor *dy, const ssd_bn_desc *d) {
    or_outputs o = {0};
    const ssd_dtype pt = par(dt);
    ssd_tensor bx = tu_to_backend_act(be, x, dt), bg = tu_to_backend(be, gamma, pt);
    ssd_tensor bbeta = tu_to_backend(be, beta, pt), brm = tu_to_backend(be, rmean, pt);
    ssd_tensor brv = tu_to_backend(be, rvar, pt), bdy = tu_to_backend_act(be, dy, dt);
    ssd_tensor bres = res ? tu_to_backend_act(be, res, dt) : (ssd_tensor){0};
    ssd_tensor by = tu_zeros_act(be, x, dt), bdx = tu_zeros_act(be, x, dt);
    ssd_tensor bdres = res ? tu_zeros_act(be, x, dt) : (ssd_tensor){0};
    ssd_tensor bsm = tu_zeros_like(be, gamma, pt), bsv = tu_zeros_like(be, gamma, pt);
    ssd_tensor bdg = tu_zeros_like(be, gamma, pt), bdb = tu_zeros_like(be, gamma, pt);
    ssd_fill(be, &bdg, ACC0);
    ssd_fill(be, &bdb, ACC0);
    ssd_batchnorm_train_forward(be, &by, &bsm, &bsv, &brm, &brv, &bx, &bg, &bbeta,
                                res ? &bres : NULL, d);
    ssd_batchnorm_backward(be, &bdx, res ? &bdres : NULL, &bdg, &bdb, &bdy, &by, &bx, &bg, &bsm,
                           &bsv, d);
    put(&o, be, "y", &by, 0);
    put(&o, be, "save_mean", &bsm, 0);
    put(&o, be, "save_var", &bsv, 0);
    put(&o, be, "running_mean", &brm, 0);
    put(&o, be, "running_var", &brv, 0);
    put(&o, be, "dx", &bdx, 0);
    put(&o, be, "dgamma", &bdg, ACC0);
    put(&o, be, "dbeta", &bdb, ACC0);
    if (res) put(&o, be, "dres", &bdres, 0);
    ssd_tensor *all[] = {&bx, &bg, &bbeta, &brm, &brv, &bdy, &bres, &by,
                         &bdx, &bdres, &bsm, &bsv, &bdg, &bdb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ssd_backend_tensor_free(be, all[i]);
    return o;
}

or_outputs or_bn_infer(ssd_backend *be, ssd_dtype dt, const ssd_tensor *x, const ssd_tensor *gamma,
                       const ssd_tensor *beta, const ssd_tensor *rmean, const ssd_tensor *rvar,
                       const ssd_tensor *res, const ssd_bn_desc *d) {
    or_outputs o = {0};
    const ssd_dtype pt = par(dt);
    ssd_tensor bx = tu_to_backend_act(be, x, dt), bg = tu_to_backend(be, gamma, pt);
    ssd_tensor bbeta = tu_to_backend(be, beta, pt), brm = tu_to_backend(be, rmean, pt);
    ssd_tensor brv = tu_to_backend(be, rvar, pt);
    ssd_tensor bres = res ? tu_to_backend_act(be, res, dt) : (ssd_tensor){0};
    ssd_tensor by = tu_zeros_act(be, x, dt);
    ssd_batchnorm_infer_forward(be, &by, &bx, &bg, &bbeta, &brm, &brv, res ? &bres : NULL, d);
    put(&o, be, "y", &by, 0);
    ssd_tensor *all[] = {&bx, &bg, &bbeta, &brm, &brv, &bres, &by};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ssd_backend_tensor_free(be, all[i]);
    return o;
}

or_outputs or_relu(ssd_backend *be, ssd_dtype dt, const ssd_tensor *x, const ssd_tensor *dy) {
    or_outputs o = {0};
    ssd_tensor bx = tu_to_backend_act(be, x, dt), bdy = tu_to_backend_act(be, dy, dt);
    ssd_tensor by = tu_zeros_act(be, x, dt), bdx = tu_zeros_act(be, x, dt);
    ssd_relu_forward(be, &by, &bx);
    ssd_relu_backward(be, &bdx, &bdy, &by);
    put(&o, be, "y", &by, 0);
    put(&o, be, "dx", &bdx, 0);
    ssd_tensor *all[] = {&bx, &bdy, &by, &bdx};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ssd_backend_tensor_free(be, all[i]);
    return o;
}

or_outputs or_maxpool(ssd_backend *be, ssd_dtype dt, const ssd_tensor *x, const ssd_tensor *dy,
                      const ssd_pool_desc *d) {
    or_outputs o = {0};
    ssd_tensor bx = tu_to_backend_act(be, x, dt), bdy = tu_to_backend_act(be, dy, dt);
    ssd_tensor by = tu_zeros_act(be, dy, dt), bdx = tu_zeros_act(be, x, dt);
    ssd_fill(be, &bdx, 7.0); /* dinp must be overwritten, not accumulated */
    ssd_maxpool_forward(be, &by, &bx, d);
    ssd_maxpool_backward(be, &bdx, &bdy, &bx, d);
    put(&o, be, "y", &by, 0);
    put(&o, be, "dx", &bdx, 0);
    ssd_tensor *all[] = {&bx, &bdy, &by, &bdx};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ssd_backend_tensor_free(be, all[i]);
    return o;
}

or_outputs or_eltwise(ssd_backend *be, ssd_dtype dt, const ssd_tensor *a, const ssd_tensor *b,
                      double value, double alpha) {
    or_outputs o = {0};
    ssd_tensor ba = tu_to_backend_act(be, a, dt), bb = tu_to_backend_act(be, b, dt);
    ssd_tensor t = tu_zeros_act(be, a, dt);
    ssd_add(be, &t, &ba, &bb);
    put(&o, be, "add", &t, 0);
    ssd_copy(be, &t, &ba);
    put(&o, be, "copy", &t, 0);
    ssd_fill(be, &t, value);
    put(&o, be, "fill", &t, 0);
    ssd_scale(be, &t, &ba, alpha);
    put(&o, be, "scale", &t, 0);
    ssd_scale(be, &ba, &ba, alpha); /* in place */
    put(&o, be, "scale_inplace", &ba, 0);
    ssd_tensor *all[] = {&ba, &bb, &t};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ssd_backend_tensor_free(be, all[i]);
    return o;
}

or_outputs or_sgd(ssd_backend *be, ssd_dtype dt, const ssd_tensor *p0, const ssd_tensor *const *grads,
                  int steps, const ssd_sgd_desc *d) {
    or_outputs o = {0};
    ssd_tensor bp = tu_to_backend(be, p0, dt), bm = tu_zeros_like(be, p0, dt);
    for (int s = 0; s < steps; s++) {
        ssd_tensor bg = tu_to_backend(be, grads[s], dt);
        ssd_sgd_desc ds = *d;
        ds.first_step = s == 0;
        ssd_sgd_update(be, &bp, &bm, &bg, &ds);
        ssd_backend_tensor_free(be, &bg);
    }
    put(&o, be, "param", &bp, 0);
    put(&o, be, "momentum_buf", &bm, 0);
    ssd_backend_tensor_free(be, &bp);
    ssd_backend_tensor_free(be, &bm);
    return o;
}

void or_conv_forms(ssd_backend *be, ssd_tensor out[4], ssd_dtype xdt, ssd_layout xl,
                   ssd_dtype ydt, ssd_layout yl, const ssd_tensor *x, const ssd_tensor *w,
                   const ssd_tensor *b, const ssd_tensor *dy, const ssd_conv_desc *d, bool fused) {
    ssd_tensor bx = tu_to_backend_layout(be, x, xdt, xl), bdy = tu_to_backend_layout(be, dy, ydt, yl);
    ssd_tensor bw = tu_to_backend(be, w, SSD_F32), bb = tu_to_backend(be, b, SSD_F32);
    ssd_tensor by = tu_zeros_layout(be, dy, ydt, yl), bdx = tu_zeros_layout(be, x, xdt, xl);
    ssd_tensor bdw = tu_zeros_like(be, w, SSD_F32), bdb = tu_zeros_like(be, b, SSD_F32);
    ssd_conv2d_forward(be, &by, &bx, &bw, &bb, d);
    if (fused) {
        ssd_conv2d_backward(be, &bdw, &bdb, &bdx, &bdy, &bx, &bw, d);
    } else {
        ssd_conv2d_backward_weights(be, &bdw, &bdb, &bdy, &bx, d);
        ssd_conv2d_backward_data(be, &bdx, &bdy, &bw, d);
    }
    out[0] = tu_to_host(be, &by, SSD_F64);
    out[1] = tu_to_host(be, &bdx, SSD_F64);
    out[2] = tu_to_host(be, &bdw, SSD_F64);
    out[3] = tu_to_host(be, &bdb, SSD_F64);
    ssd_tensor *all[] = {&bx, &bdy, &bw, &bb, &by, &bdx, &bdw, &bdb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ssd_backend_tensor_free(be, all[i]);
}

static ssd_tensor rand4_maybe_bf16(ssd_rng *r, const int64_t *s, double lo, double hi, bool bf16,
                                   const char *name) {
    ssd_tensor t = or_rand4(r, s[0], s[1], s[2], s[3], lo, hi, name);
    for (int64_t i = 0; bf16 && i < ssd_tensor_numel(&t); i++)
        ssd_tensor_set(&t, i, ssd_bf16_to_f32(ssd_f32_to_bf16((float)ssd_tensor_get(&t, i))));
    return t;
}

or_bn_inputs or_bn_inputs_rand(ssd_rng *r, const int64_t *s, bool bf16) {
    or_bn_inputs in;
    in.x = rand4_maybe_bf16(r, s, -2, 3, bf16, "x");
    in.dy = rand4_maybe_bf16(r, s, -1, 1, bf16, "dy");
    in.res = rand4_maybe_bf16(r, s, -1, 1, bf16, "res");
    const int64_t cs[1] = {s[1]};
    in.gamma = or_rand(r, 1, cs, 0.5, 1.5, "gamma");
    in.beta = or_rand(r, 1, cs, -.5, .5, "beta");
    in.rmean = or_rand(r, 1, cs, -.1, .1, "rm");
    in.rvar = or_rand(r, 1, cs, .5, 1.5, "rv");
    return in;
}

void or_bn_inputs_free(or_bn_inputs *in) {
    ssd_tensor *all[] = {&in->x, &in->dy, &in->res, &in->gamma, &in->beta, &in->rmean, &in->rvar};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ssd_tensor_free(all[i]);
}
