/* The parameter table: the single source of truth for every trainable tensor and every BN
 * buffer of SSD300-ResNet34 (DESIGN.md section 3, spec/ssd-reference.md sections 1.4 and 2).
 *
 * Each row holds the PyTorch state_dict name, the shape, the init rule and the element offset
 * into the model's flat buffers. Trainable parameters (131 tensors, 19,972,534 values) share
 * one offset space: the model allocates params, grads and momentum as three contiguous
 * buffers with identical offsets. BN running statistics (29 BNs x running_mean, running_var)
 * have their own offset space (the "buffers"). `num_batches_tracked` is one counter for the
 * whole model (all BNs see every training forward), written under each BN's name on export.
 *
 * The table is built by walking the architecture in the reference's module order, so the
 * rows come out in state_dict order and the layer descriptors below hold row indices. */
#ifndef SSD_MODEL_PARAMS_H
#define SSD_MODEL_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"

typedef enum ssd_init_rule {
    SSD_INIT_KAIMING_FAN_OUT, /* N(0, 2/fan_out), fan_out = K*R*S: torchvision ResNet convs */
    SSD_INIT_XAVIER_UNIFORM,  /* U(-b,b), b = sqrt(6/(fan_in+fan_out)): extras and heads */
    SSD_INIT_CONV_BIAS,       /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch Conv2d default */
    SSD_INIT_ONES,            /* BN weight, running_var */
    SSD_INIT_ZEROS            /* BN bias, running_mean */
} ssd_init_rule;

typedef struct ssd_param_info {
    char name[SSD_TENSOR_NAME_LEN]; /* torch state_dict key */
    int ndim;
    int64_t shape[4];
    int64_t numel;
    int64_t offset;  /* elements into the params/grads/momentum (or buffers) space */
    ssd_init_rule init;
    int64_t fan_in;  /* C*R*S of the owning conv (bias rows too) */
    int64_t fan_out; /* K*R*S */
} ssd_param_info;

/* A conv layer: row indices of its weight and bias (-1: no bias) plus geometry. */
typedef struct ssd_conv_layer {
    int w, b;
    ssd_conv_desc desc;
} ssd_conv_layer;

/* A BN layer: rows of gamma/beta (params) and running_mean/running_var (buffers). */
typedef struct ssd_bn_layer {
    int gamma, beta;
    int rmean, rvar;
    char prefix[SSD_TENSOR_NAME_LEN]; /* e.g. "model.layer1.1" */
} ssd_bn_layer;

/* torchvision BasicBlock; `ds` layers are valid only if has_ds. bn* index net.bn[]. */
typedef struct ssd_block_layers {
    ssd_conv_layer conv1, conv2, ds_conv;
    int bn1, bn2, ds_bn;
    bool has_ds;
} ssd_block_layers;

#define SSD_NUM_BLOCKS 13 /* 3 (layer1) + 4 (layer2) + 6 (layer3) */
#define SSD_NUM_BN 29
#define SSD_NUM_EXTRAS 5

typedef struct ssd_net_layers {
    ssd_conv_layer conv1; /* (64,3,7,7) stride 2 pad 3 */
    int bn1;              /* index into bn[] */
    ssd_block_layers blocks[SSD_NUM_BLOCKS];
    ssd_conv_layer extra[SSD_NUM_EXTRAS][2]; /* [i][0]: 1x1, [i][1]: 3x3 (stride 2 pad 1 or 1/0) */
    ssd_conv_layer loc[6], conf[6];          /* 3x3 pad 1, with bias */
    ssd_bn_layer bn[SSD_NUM_BN];             /* every BN, state_dict order */
    int n_bn;
} ssd_net_layers;

typedef struct ssd_param_table {
    ssd_param_info *params; /* trainable, state_dict order */
    int n_params;
    int64_t params_numel;
    ssd_param_info *buffers; /* running_mean / running_var, state_dict order */
    int n_buffers;
    int64_t buffers_numel;
    ssd_net_layers net;
} ssd_param_table;

/* Builds the table for SSD300-ResNet34 (81 classes). Free with ssd_param_table_free. */
void ssd_param_table_build(ssd_param_table *t);
void ssd_param_table_free(ssd_param_table *t);

/* Row index of a parameter / buffer by torch name, or -1. */
int ssd_param_find(const ssd_param_table *t, const char *name);
int ssd_buffer_find(const ssd_param_table *t, const char *name);

/* Fills `params` (params_numel values) and `buffers` (buffers_numel) on the host, in f64, by
 * each row's init rule, from explicit Philox streams: row i draws from
 * ssd_rng_stream(seed, SSD_RNG_DOMAIN_INIT, 0, 0, i), so the values of a row do not depend
 * on the order of initialisation or on the other rows. */
void ssd_param_table_init(const ssd_param_table *t, uint32_t seed, double *params,
                          double *buffers);

#endif
