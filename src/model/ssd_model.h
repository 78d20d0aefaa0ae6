/* SSD300-ResNet34 on a backend: parameters, forward, backward, SGD (DESIGN.md section 3).
 *
 * The network (spec/ssd-reference.md sections 1-2): truncated ResNet-34 (conv1, bn1, ReLU,
 * max-pool, layer1, layer2, stride-1 layer3) -> 256x38x38, five extra blocks (1x1 conv, ReLU,
 * 3x3 conv, ReLU; biases, no BN) -> 512x19x19, 512x10x10, 256x5x5, 256x3x3, 256x1x1, and on
 * each of the six feature maps a 3x3 loc head (4*nd channels) and conf head (81*nd). Head
 * outputs are reinterpreted WITHOUT permutation as (N,4,nd*s*s) / (N,81,nd*s*s) and
 * concatenated over levels: loc (N,4,8732), conf (N,81,8732) (spec 2.3).
 *
 * Rules for this module
 * - The model's parameters, gradients and momentum are three flat buffers on the backend with
 *   the parameter table's offsets; p[i], g[i], mom[i] are views of row i.
 * - ssd_model_backward ACCUMULATES into the gradients (zero them with ssd_model_zero_grad once
 *   per step), like every parameter-gradient op of the op table.
 * - Training-mode forward uses batch statistics and updates the running statistics (momentum
 *   0.1, unbiased variance) and num_batches_tracked; inference mode uses running statistics.
 * - A forward/backward allocates nothing: every activation and scratch buffer lives in the
 *   ssd_acts of the batch size, created once. */
#ifndef SSD_MODEL_SSD_MODEL_H
#define SSD_MODEL_SSD_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/status.h"
#include "io/safetensors.h"
#include "model/params.h"

#define SSD_BN_EPS 1e-5
#define SSD_BN_MOMENTUM 0.1

typedef struct ssd_model {
    ssd_backend *be;
    ssd_dtype dtype;
    ssd_param_table tab;
    ssd_tensor params, grads, momentum; /* (params_numel) each, same offsets */
    ssd_tensor buffers;                 /* (buffers_numel): BN running_mean / running_var */
    ssd_tensor *p, *g, *mom;            /* per-parameter views (tab.n_params) */
    ssd_tensor *buf;                    /* per-buffer views (tab.n_buffers) */
    int64_t num_batches_tracked;        /* training forwards seen (shared by all BNs) */
    bool momentum_valid;                /* false until the first SGD step (torch: buf = g) */
} ssd_model;

/* Allocates a model on `be` in dtype `dt` with the reference init from `seed`. */
ssd_model *ssd_model_create(ssd_backend *be, ssd_dtype dt, uint32_t seed);
void ssd_model_destroy(ssd_model *m);

/* Re-initialises every parameter and buffer by the table's rules (ssd_param_table_init). */
void ssd_model_init(ssd_model *m, uint32_t seed);

/* Loads parameters and BN buffers by torch name from an open safetensors file (f32, f64 or
 * bf16 values, converted to the model's dtype). Every parameter and buffer must be present with
 * its exact shape; `<bn>.num_batches_tracked` (i64 scalar) is optional. With `strict`, a tensor
 * whose name the model does not know is an error too. `path` is only used in messages. */
ssd_status ssd_model_load(ssd_model *m, const ssd_st_file *f, const char *path, bool strict,
                          ssd_error *err);

/* Host copies for export, in f32 or f64 (caller frees each with ssd_tensor_free and the
 * array with free): which = 'p' parameters, 'g' gradients, 'b' BN buffers incl. one i64
 * num_batches_tracked per BN. Each is named `prefix` (NULL: none) + its torch name, e.g.
 * prefix "grad." gives "grad.conf.0.bias". *count receives the number of tensors. */
ssd_tensor *ssd_model_export(const ssd_model *m, char which, ssd_dtype dt, const char *prefix,
                             int *count);

void ssd_model_zero_grad(ssd_model *m);

/* One torch.optim.SGD step over all parameters (momentum, dampening 0, weight decay on
 * everything, no Nesterov: spec section 7). The first call initialises the momentum buffer. */
void ssd_model_sgd_step(ssd_model *m, double lr, double momentum, double weight_decay);

/* ---- activations of one batch size ---- */

typedef struct ssd_block_acts {
    ssd_tensor c1, b1, c2, out; /* conv1, bn1+ReLU, conv2, bn2+shortcut+ReLU */
    ssd_tensor dsc, dsb;        /* downsample conv and BN (has_ds only) */
    ssd_tensor sm[3], sv[3];    /* saved batch mean / biased var: bn1, bn2, ds_bn */
} ssd_block_acts;

typedef struct ssd_acts {
    int n;
    ssd_tensor conv1, bn1, pool; /* (N,64,150,150) x2, (N,64,75,75) */
    ssd_tensor sm1, sv1;         /* (64) */
    ssd_block_acts blk[SSD_NUM_BLOCKS];
    ssd_tensor ex_a[SSD_NUM_EXTRAS], ex_ar[SSD_NUM_EXTRAS]; /* 1x1 conv out, after ReLU */
    ssd_tensor ex_b[SSD_NUM_EXTRAS], ex_br[SSD_NUM_EXTRAS]; /* 3x3 conv out, after ReLU */
    ssd_tensor head_loc[6], head_conf[6];                   /* (N,4nd,s,s), (N,81nd,s,s) */
    ssd_tensor loc, conf;   /* (N,4,8732), (N,81,8732): the network outputs */
    ssd_tensor dloc, dconf; /* gradients w.r.t. loc/conf: the caller fills them for backward */
    /* backward scratch */
    ssd_tensor dfeat[6];                           /* d feature map i (level 0 uses sx[0]) */
    ssd_tensor dex_a[SSD_NUM_EXTRAS], dex_b[SSD_NUM_EXTRAS], dex_ar[SSD_NUM_EXTRAS];
    void *sx[2], *sa, *sb, *sc, *shead, *sbig[2]; /* raw scratch, viewed with shapes */
} ssd_acts;

ssd_acts *ssd_acts_create(ssd_model *m, int n);
void ssd_acts_destroy(ssd_model *m, ssd_acts *a);

/* images (N,3,300,300) on the backend -> a->loc, a->conf. */
void ssd_model_forward(ssd_model *m, ssd_acts *a, const ssd_tensor *images, bool train);
/* From a->dloc / a->dconf back to every parameter gradient (accumulated). Needs the acts of a
 * training-mode forward on the same images. */
void ssd_model_backward(ssd_model *m, ssd_acts *a, const ssd_tensor *images);

#endif
