/* Runs each op of the op table on any backend/dtype from host f64 inputs, returning host f64
 * outputs, so tests can compare backends and dtypes on identical inputs. Inputs are rounded to
 * f32 first by the callers that compare against f32 backends, so every backend sees the same
 * values. All functions allocate their outputs; free with tu_free_all. */
#ifndef SSD_TESTS_OP_RUNNER_H
#define SSD_TESTS_OP_RUNNER_H

#include "testutil.h"

#define OR_MAX_OUT 10

typedef struct or_outputs {
    int n;
    const char *names[OR_MAX_OUT];
    ssd_tensor t[OR_MAX_OUT]; /* host, f64 */
    char impl[3][160];        /* or_conv: be->stats.last_impl after fwd, bwd_data, bwd_weights */
} or_outputs;

void or_free(or_outputs *o);

/* dt SSD_BF16 runs the backend's bf16 activations (backend.h): activations bf16 channels-last,
 * parameters and their gradients f32. */

/* conv: x (N,C,H,W), w (K,C,R,S), b (K) or NULL, dy (N,K,P,Q).
 * outputs: y, dx, dw, db (db only when b != NULL). dw/db are checked to ACCUMULATE: the runner
 * pre-fills them with `acc0` and subtracts it again. */
or_outputs or_conv(ssd_backend *be, ssd_dtype dt, const ssd_tensor *x, const ssd_tensor *w,
                   const ssd_tensor *b, const ssd_tensor *dy, const ssd_conv_desc *d);

/* One convolution with its input side (x, dx) in form (xdt, xl) and its output side (y, dy) in
 * (ydt, yl), parameters f32: out[] = y, dx, dw, db (host f64; free each). fused: both backward
 * passes through ssd_conv2d_backward, else backward-weights then backward-data. */
void or_conv_forms(ssd_backend *be, ssd_tensor out[4], ssd_dtype xdt, ssd_layout xl,
                   ssd_dtype ydt, ssd_layout yl, const ssd_tensor *x, const ssd_tensor *w,
                   const ssd_tensor *b, const ssd_tensor *dy, const ssd_conv_desc *d, bool fused);

/* batch norm training fwd + bwd: x, gamma, beta, running mean/var (start values), residual or
 * NULL, dy (w.r.t. the final output). dgamma/dbeta are checked to accumulate like conv's.
 * outputs: y, save_mean, save_var, running_mean, running_var, dx, dgamma, dbeta, and dres
 * when a residual is given. */
or_outputs or_bn_train(ssd_backend *be, ssd_dtype dt, const ssd_tensor *x, const ssd_tensor *gamma,
                       const ssd_tensor *beta, const ssd_tensor *rmean, const ssd_tensor *rvar,
                       const ssd_tensor *res, const ssd_tensor *dy, const ssd_bn_desc *d);
/* Random batch-norm inputs of shape s (N,C,H,W): x U(-2,3), dy and res U(-1,1), gamma
 * U(0.5,1.5), beta U(-.5,.5), running mean U(-.1,.1), running var U(.5,1.5), drawn in that
 * order; with bf16, x, dy and res rounded to bf16 values. Free with or_bn_inputs_free. */
typedef struct or_bn_inputs {
    ssd_tensor x, dy, res, gamma, beta, rmean, rvar;
} or_bn_inputs;
or_bn_inputs or_bn_inputs_rand(ssd_rng *r, const int64_t *s, bool bf16);
void or_bn_inputs_free(or_bn_inputs *in);

/* outputs: y */
or_outputs or_bn_infer(ssd_backend *be, ssd_dtype dt, const ssd_tensor *x, const ssd_tensor *gamma,
                       const ssd_tensor *beta, const ssd_tensor *rmean, const ssd_tensor *rvar,
                       const ssd_tensor *res, const ssd_bn_desc *d);
/* outputs: y, dx */
or_outputs or_relu(ssd_backend *be, ssd_dtype dt, const ssd_tensor *x, const ssd_tensor *dy);
/* outputs: y, dx */
or_outputs or_maxpool(ssd_backend *be, ssd_dtype dt, const ssd_tensor *x, const ssd_tensor *dy,
                      const ssd_pool_desc *d);
/* outputs: a+b, copy(a), fill(value), scale(a, alpha) */
or_outputs or_eltwise(ssd_backend *be, ssd_dtype dt, const ssd_tensor *a, const ssd_tensor *b,
                      double value, double alpha);
/* `steps` SGD steps with grads[i] at step i: outputs param, momentum_buf after the last step. */
or_outputs or_sgd(ssd_backend *be, ssd_dtype dt, const ssd_tensor *p0, const ssd_tensor *const *grads,
                  int steps, const ssd_sgd_desc *d);

/* Host f64 tensor of a shape, U(lo,hi), values rounded to f32 so every dtype sees the same. */
ssd_tensor or_rand(ssd_rng *r, int ndim, const int64_t *shape, double lo, double hi,
                   const char *name);
ssd_tensor or_rand4(ssd_rng *r, int64_t n, int64_t c, int64_t h, int64_t w, double lo, double hi,
                    const char *name);

#endif
