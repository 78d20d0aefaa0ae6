/* Finite-difference gradient checks of every `ref` backward, in f64.
 *
 * For an op y = f(inputs) and a fixed random upstream gradient G, the scalar L = sum(G * y)
 * has dL/dinput = the op's backward applied to G. We compare that with central differences
 *     (L(x + h e_i) - L(x - h e_i)) / (2h),  h = 1e-6,
 * at every input element (the shapes are small). Truncation error is O(h^2 * f''') ~ 1e-12
 * and rounding error O(eps_f64 * |L| / h) ~ 1e-10 * |L|, so we require
 *     |numeric - analytic| <= 1e-6 * max(1, |analytic|, max|analytic| over the tensor * 1e-2)
 * -- a wrong index or a missing term errs by O(1). Inputs of ReLU and max-pool stay away from
 * kinks and ties (|x| >= 0.05, distinct values), where the derivative is not defined. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "op_runner.h"

#define FD_H 1e-6
#define FD_TOL 1e-6

typedef struct fd_ctx fd_ctx;
/* Computes L = sum(G * forward(inputs)) with the current host inputs. */
typedef double (*loss_fn)(fd_ctx *c);

struct fd_ctx {
    ssd_backend *be;
    ssd_tensor *in[6]; /* host f64 inputs (perturbed in place) */
    ssd_tensor *G;     /* upstream gradient (host f64) */
    const void *desc;
    int variant;
};

static double dot_host(const ssd_tensor *a, const ssd_tensor *b) {
    double s = 0;
    for (int64_t i = 0; i < ssd_tensor_numel(a); i++) s += ssd_tensor_get(a, i) * ssd_tensor_get(b, i);
    return s;
}

/* Checks analytic gradient `ana` of input slot `slot` against central differences. */
static void check_grad(fd_ctx *c, loss_fn L, int slot, const ssd_tensor *ana, const char *what) {
    ssd_tensor *x = c->in[slot];
    int64_t n = ssd_tensor_numel(x);
    double amax = 0;
    for (int64_t i = 0; i < n; i++) amax = fmax(amax, fabs(ssd_tensor_get(ana, i)));
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = ssd_tensor_get(x, i);
        ssd_tensor_set(x, i, v + FD_H);
        double lp = L(c);
        ssd_tensor_set(x, i, v - FD_H);
        double lm = L(c);
        ssd_tensor_set(x, i, v);
        double num = (lp - lm) / (2 * FD_H), a = ssd_tensor_get(ana, i);
        double scale = fmax(1.0, fmax(fabs(a), 1e-2 * amax));
        double rel = fabs(num - a) / scale;
        if (rel > worst) worst = rel;
        if (rel > FD_TOL)
            fail_msg("%s: element %lld: numeric %.10g vs analytic %.10g", what, (long long)i, num, a);
    }
    printf("gradcheck %-40s n=%-6lld worst scaled error %.2e\n", what, (long long)n, worst);
}

/* ---- conv ---- */
static double conv_loss(fd_ctx *c) {
    ssd_tensor *x = c->in[0], *w = c->in[1], *b = c->variant ? c->in[2] : NULL;
    ssd_tensor y = ssd_tensor_alloc_host(SSD_F64, 4, c->G->shape, "y");
    ssd_conv2d_forward(c->be, &y, x, w, b, c->desc);
    double l = dot_host(&y, c->G);
    ssd_tensor_free(&y);
    return l;
}

static void conv_case(ssd_backend *be, ssd_rng *r, int n, int cin, int k, int h, int ks, int s,
                      int p, bool bias) {
    ssd_conv_desc d = {s, s, p, p};
    int o = (int)ssd_conv_out_size(h, ks, s, p);
    ssd_tensor x = or_rand4(r, n, cin, h, h, -1, 1, "x");
    ssd_tensor w = or_rand4(r, k, cin, ks, ks, -1, 1, "w");
    int64_t ksh[1] = {k};
    ssd_tensor b = or_rand(r, 1, ksh, -1, 1, "b");
    ssd_tensor G = or_rand4(r, n, k, o, o, -1, 1, "G");
    or_outputs an = or_conv(be, SSD_F64, &x, &w, bias ? &b : NULL, &G, &d);
    fd_ctx c = {be, {&x, &w, &b}, &G, &d, bias};
    char what[96];
    snprintf(what, sizeof what, "conv %dx%d/s%d/p%d %d->%d %dx%d dx", ks, ks, s, p, cin, k, h, h);
    check_grad(&c, conv_loss, 0, &an.t[1], what);
    what[strlen(what) - 1] = 'w';
    check_grad(&c, conv_loss, 1, &an.t[2], what);
    if (bias) {
        what[strlen(what) - 1] = 'b';
        check_grad(&c, conv_loss, 2, &an.t[3], what);
    }
    or_free(&an);
    ssd_tensor *all[] = {&x, &w, &b, &G};
    for (int i = 0; i < 4; i++) ssd_tensor_free(all[i]);
}

static void test_conv_grads(void **state) {
    ssd_backend *be = ssd_backend_ref_create();
    ssd_rng r = ssd_rng_stream(21, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    conv_case(be, &r, 2, 2, 3, 9, 7, 2, 3, false); /* conv1-like 7x7/2 pad 3 */
    conv_case(be, &r, 2, 3, 2, 6, 3, 1, 1, true);  /* 3x3/1 pad 1 */
    conv_case(be, &r, 1, 2, 3, 7, 3, 2, 1, false); /* 3x3/2 pad 1 */
    conv_case(be, &r, 2, 2, 2, 5, 3, 1, 0, true);  /* 3x3 pad 0 */
    conv_case(be, &r, 2, 3, 4, 5, 1, 1, 0, true);  /* 1x1/1 */
    conv_case(be, &r, 1, 3, 2, 7, 1, 2, 0, false); /* 1x1/2 */
    conv_case(be, &r, 1, 2, 3, 1, 3, 1, 1, true);  /* head on a 1x1 map */
    ssd_backend_destroy(be);
    (void)state;
}

/* ---- batch norm (training), with optional residual and ReLU ---- */
static double bn_loss(fd_ctx *c) {
    const ssd_bn_desc *d = c->desc;
    ssd_tensor *x = c->in[0];
    int64_t C = x->shape[1];
    ssd_tensor y = ssd_tensor_alloc_host(SSD_F64, 4, x->shape, "y");
    ssd_tensor sm = ssd_tensor_alloc_host1(SSD_F64, C, "sm"), sv = ssd_tensor_alloc_host1(SSD_F64, C, "sv");
    ssd_tensor rm = ssd_tensor_alloc_host1(SSD_F64, C, "rm"), rv = ssd_tensor_alloc_host1(SSD_F64, C, "rv");
    ssd_batchnorm_train_forward(c->be, &y, &sm, &sv, &rm, &rv, x, c->in[1], c->in[2],
                                c->variant ? c->in[3] : NULL, d);
    double l = dot_host(&y, c->G);
    ssd_tensor *all[] = {&y, &sm, &sv, &rm, &rv};
    for (int i = 0; i < 5; i++) ssd_tensor_free(all[i]);
    return l;
}

static void bn_case(ssd_backend *be, ssd_rng *r, int n, int C, int h, bool res, bool relu) {
    ssd_bn_desc d = {1e-5, 0.1, relu};
    int64_t cs[1] = {C};
    ssd_tensor x = or_rand4(r, n, C, h, h, -2, 3, "x");
    ssd_tensor g = or_rand(r, 1, cs, 0.5, 1.5, "g"), b = or_rand(r, 1, cs, -0.5, 0.5, "b");
    ssd_tensor rm = or_rand(r, 1, cs, 0, 0, "rm"), rv = or_rand(r, 1, cs, 1, 1, "rv");
    ssd_tensor rs = or_rand4(r, n, C, h, h, -1, 1, "res");
    ssd_tensor G = or_rand4(r, n, C, h, h, -1, 1, "G");
    or_outputs an = or_bn_train(be, SSD_F64, &x, &g, &b, &rm, &rv, res ? &rs : NULL, &G, &d);
    if (relu) { /* keep every pre-activation away from the kink */
        for (int64_t i = 0; i < ssd_tensor_numel(&an.t[0]); i++) {
            double y = ssd_tensor_get(&an.t[0], i);
            if (y > 0 && y < 1e-3) fail_msg("bn gradcheck input too close to the ReLU kink");
        }
    }
    fd_ctx c = {be, {&x, &g, &b, &rs}, &G, &d, res};
    char what[96];
    snprintf(what, sizeof what, "bn N%d C%d %dx%d%s%s", n, C, h, h, res ? " +res" : "",
             relu ? " relu" : "");
    char w2[128];
    snprintf(w2, sizeof w2, "%s dx", what);
    check_grad(&c, bn_loss, 0, &an.t[5], w2);
    snprintf(w2, sizeof w2, "%s dgamma", what);
    check_grad(&c, bn_loss, 1, &an.t[6], w2);
    snprintf(w2, sizeof w2, "%s dbeta", what);
    check_grad(&c, bn_loss, 2, &an.t[7], w2);
    if (res) {
        snprintf(w2, sizeof w2, "%s dres", what);
        check_grad(&c, bn_loss, 3, &an.t[8], w2);
    }
    or_free(&an);
    ssd_tensor *all[] = {&x, &g, &b, &rm, &rv, &rs, &G};
    for (int i = 0; i < 7; i++) ssd_tensor_free(all[i]);
}

static void test_bn_grads(void **state) {
    ssd_backend *be = ssd_backend_ref_create();
    ssd_rng r = ssd_rng_stream(22, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    bn_case(be, &r, 2, 3, 4, false, false);
    bn_case(be, &r, 2, 3, 4, false, true);
    bn_case(be, &r, 3, 2, 3, true, true);
    bn_case(be, &r, 1, 2, 5, true, false);
    ssd_backend_destroy(be);
    (void)state;
}

/* ---- relu ---- */
static double relu_loss(fd_ctx *c) {
    ssd_tensor y = ssd_tensor_alloc_host(SSD_F64, 4, c->in[0]->shape, "y");
    ssd_relu_forward(c->be, &y, c->in[0]);
    double l = dot_host(&y, c->G);
    ssd_tensor_free(&y);
    return l;
}

/* ---- maxpool ---- */
static double pool_loss(fd_ctx *c) {
    ssd_tensor y = ssd_tensor_alloc_host(SSD_F64, 4, c->G->shape, "y");
    ssd_maxpool_forward(c->be, &y, c->in[0], c->desc);
    double l = dot_host(&y, c->G);
    ssd_tensor_free(&y);
    return l;
}

static void test_relu_pool_grads(void **state) {
    ssd_backend *be = ssd_backend_ref_create();
    ssd_rng r = ssd_rng_stream(23, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    /* relu: values in +-[0.05, 1] */
    ssd_tensor x = or_rand4(&r, 2, 3, 4, 5, 0.05, 1, "x");
    for (int64_t i = 0; i < ssd_tensor_numel(&x); i += 2) ssd_tensor_set(&x, i, -ssd_tensor_get(&x, i));
    ssd_tensor G = or_rand4(&r, 2, 3, 4, 5, -1, 1, "G");
    or_outputs an = or_relu(be, SSD_F64, &x, &G);
    fd_ctx c = {be, {&x}, &G, NULL, 0};
    check_grad(&c, relu_loss, 0, &an.t[1], "relu dx");
    or_free(&an);
    ssd_tensor_free(&x);
    ssd_tensor_free(&G);
    /* maxpool 3x3/2 pad 1: a random permutation of distinct values, spaced 0.01 apart */
    ssd_pool_desc d = {3, 2, 1};
    int sizes[][2] = {{7, 7}, {8, 5}, {1, 1}, {2, 3}};
    for (int t = 0; t < 4; t++) {
        int h = sizes[t][0], w = sizes[t][1];
        int p = (int)ssd_conv_out_size(h, 3, 2, 1), q = (int)ssd_conv_out_size(w, 3, 2, 1);
        ssd_tensor px = or_rand4(&r, 1, 2, h, w, 0, 0, "x");
        int64_t n = ssd_tensor_numel(&px);
        for (int64_t i = 0; i < n; i++) ssd_tensor_set(&px, i, 0.01 * (double)i);
        for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates shuffle */
            int64_t j = ssd_rng_below(&r, (uint32_t)(i + 1));
            double a = ssd_tensor_get(&px, i);
            ssd_tensor_set(&px, i, ssd_tensor_get(&px, j));
            ssd_tensor_set(&px, j, a);
        }
        ssd_tensor pG = or_rand4(&r, 1, 2, p, q, -1, 1, "G");
        or_outputs pan = or_maxpool(be, SSD_F64, &px, &pG, &d);
        fd_ctx pc = {be, {&px}, &pG, &d, 0};
        char what[64];
        snprintf(what, sizeof what, "maxpool 3x3/2/p1 %dx%d dx", h, w);
        check_grad(&pc, pool_loss, 0, &pan.t[1], what);
        or_free(&pan);
        ssd_tensor_free(&px);
        ssd_tensor_free(&pG);
    }
    ssd_backend_destroy(be);
    (void)state;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_grads),
        cmocka_unit_test(test_bn_grads),
        cmocka_unit_test(test_relu_pool_grads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
