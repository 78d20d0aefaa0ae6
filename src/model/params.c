#include "model/params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "box/anchors.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rng.h"

/* ---- table construction (rows appended in state_dict order) ---- */

/* dst = prefix + suffix (names are short; a too-long one is a bug). */
static void join(char dst[SSD_TENSOR_NAME_LEN], const char *prefix, const char *suffix) {
    size_t a = strlen(prefix), b = strlen(suffix);
    SSD_ASSERT(a + b < SSD_TENSOR_NAME_LEN, "parameter name too long: %s%s", prefix, suffix);
    memcpy(dst, prefix, a);
    memcpy(dst + a, suffix, b + 1);
}

#define MAX_PARAMS 160
#define MAX_BUFFERS 64

static int add_row(ssd_param_info *rows, int *n, int cap, int64_t *numel, const char *name,
                   int ndim, const int64_t *shape, ssd_init_rule init, int64_t fan_in,
                   int64_t fan_out) {
    SSD_ASSERT(*n < cap, "parameter table overflow at %s", name);
    ssd_param_info *r = &rows[*n];
    memset(r, 0, sizeof *r);
    int len = snprintf(r->name, sizeof r->name, "%s", name);
    SSD_ASSERT(len > 0 && (size_t)len < sizeof r->name, "parameter name too long: %s", name);
    r->ndim = ndim;
    r->numel = 1;
    for (int i = 0; i < ndim; i++) r->shape[i] = shape[i], r->numel *= shape[i];
    r->offset = *numel;
    r->init = init;
    r->fan_in = fan_in;
    r->fan_out = fan_out;
    *numel += r->numel;
    return (*n)++;
}

static int add_param(ssd_param_table *t, const char *name, int ndim, const int64_t *shape,
                     ssd_init_rule init, int64_t fan_in, int64_t fan_out) {
    return add_row(t->params, &t->n_params, MAX_PARAMS, &t->params_numel, name, ndim, shape,
                   init, fan_in, fan_out);
}

/* conv "<prefix>.weight" (K,C,R,S) [+ "<prefix>.bias" (K)] */
static ssd_conv_layer add_conv(ssd_param_table *t, const char *prefix, int64_t K, int64_t C,
                               int64_t R, int stride, int pad, bool bias, ssd_init_rule winit) {
    char name[SSD_TENSOR_NAME_LEN];
    int64_t shape[4] = {K, C, R, R};
    int64_t fan_in = C * R * R, fan_out = K * R * R;
    ssd_conv_layer l = {.b = -1, .desc = {stride, stride, pad, pad}};
    join(name, prefix, ".weight");
    l.w = add_param(t, name, 4, shape, winit, fan_in, fan_out);
    if (bias) {
        join(name, prefix, ".bias");
        l.b = add_param(t, name, 1, &K, SSD_INIT_CONV_BIAS, fan_in, fan_out);
    }
    return l;
}

/* BN "<prefix>.{weight,bias}" (params) and "<prefix>.{running_mean,running_var}" (buffers) */
static int add_bn(ssd_param_table *t, const char *prefix, int64_t C) {
    SSD_ASSERT(t->net.n_bn < SSD_NUM_BN, "too many BN layers");
    ssd_bn_layer *b = &t->net.bn[t->net.n_bn];
    char name[SSD_TENSOR_NAME_LEN];
    snprintf(b->prefix, sizeof b->prefix, "%s", prefix);
    join(name, prefix, ".weight");
    b->gamma = add_param(t, name, 1, &C, SSD_INIT_ONES, 0, 0);
    join(name, prefix, ".bias");
    b->beta = add_param(t, name, 1, &C, SSD_INIT_ZEROS, 0, 0);
    join(name, prefix, ".running_mean");
    b->rmean = add_row(t->buffers, &t->n_buffers, MAX_BUFFERS, &t->buffers_numel, name, 1, &C,
                       SSD_INIT_ZEROS, 0, 0);
    join(name, prefix, ".running_var");
    b->rvar = add_row(t->buffers, &t->n_buffers, MAX_BUFFERS, &t->buffers_numel, name, 1, &C,
                      SSD_INIT_ONES, 0, 0);
    return t->net.n_bn++;
}

/* torchvision BasicBlock under `prefix`; stride on conv1 and on the 1x1 downsample. */
static ssd_block_layers add_block(ssd_param_table *t, const char *prefix, int64_t cin,
                                  int64_t cout, int stride, bool has_ds) {
    char p[SSD_TENSOR_NAME_LEN];
    ssd_block_layers b = {.has_ds = has_ds};
    join(p, prefix, ".conv1");
    b.conv1 = add_conv(t, p, cout, cin, 3, stride, 1, false, SSD_INIT_KAIMING_FAN_OUT);
    join(p, prefix, ".bn1");
    b.bn1 = add_bn(t, p, cout);
    join(p, prefix, ".conv2");
    b.conv2 = add_conv(t, p, cout, cout, 3, 1, 1, false, SSD_INIT_KAIMING_FAN_OUT);
    join(p, prefix, ".bn2");
    b.bn2 = add_bn(t, p, cout);
    if (has_ds) {
        join(p, prefix, ".downsample.0");
        b.ds_conv = add_conv(t, p, cout, cin, 1, stride, 0, false, SSD_INIT_KAIMING_FAN_OUT);
        join(p, prefix, ".downsample.1");
        b.ds_bn = add_bn(t, p, cout);
    } else {
        b.ds_bn = -1;
    }
    return b;
}

/* Backbone: spec 1.1/1.4. layer3's strides are 1 (the reference's stride modifier). */
static void build_backbone(ssd_param_table *t) {
    ssd_net_layers *net = &t->net;
    net->conv1 = add_conv(t, "model.layer1.0", 64, 3, 7, 2, 3, false, SSD_INIT_KAIMING_FAN_OUT);
    net->bn1 = add_bn(t, "model.layer1.1", 64);
    static const struct {
        const char *prefix;
        int nblocks, cout, stride;
    } stages[3] = {{"model.layer1.4", 3, 64, 1},
                   {"model.layer1.5", 4, 128, 2},
                   {"model.layer2.0", 6, 256, 1}};
    int cin = 64, bi = 0;
    for (int s = 0; s < 3; s++) {
        for (int b = 0; b < stages[s].nblocks; b++, bi++) {
            char p[SSD_TENSOR_NAME_LEN];
            snprintf(p, sizeof p, "%s.%d", stages[s].prefix, b);
            int stride = b == 0 ? stages[s].stride : 1;
            bool ds = b == 0 && cin != stages[s].cout;
            net->blocks[bi] = add_block(t, p, b == 0 ? cin : stages[s].cout, stages[s].cout,
                                        stride, ds);
        }
        cin = stages[s].cout;
    }
}

/* Extras (spec 2.1) and heads (spec 2.2). */
static void build_extras_heads(ssd_param_table *t) {
    ssd_net_layers *net = &t->net;
    static const int mid[SSD_NUM_EXTRAS] = {256, 256, 128, 128, 128};
    static const int stride[SSD_NUM_EXTRAS] = {2, 2, 2, 1, 1};
    static const int pad[SSD_NUM_EXTRAS] = {1, 1, 1, 0, 0};
    for (int i = 0; i < SSD_NUM_EXTRAS; i++) {
        char p[SSD_TENSOR_NAME_LEN];
        int cin = ssd_level(i)->channels, cout = ssd_level(i + 1)->channels;
        snprintf(p, sizeof p, "additional_blocks.%d.0", i);
        net->extra[i][0] = add_conv(t, p, mid[i], cin, 1, 1, 0, true, SSD_INIT_XAVIER_UNIFORM);
        snprintf(p, sizeof p, "additional_blocks.%d.2", i);
        net->extra[i][1] =
            add_conv(t, p, cout, mid[i], 3, stride[i], pad[i], true, SSD_INIT_XAVIER_UNIFORM);
    }
    for (int i = 0; i < SSD_NUM_LEVELS; i++) {
        char p[SSD_TENSOR_NAME_LEN];
        const ssd_level_geom *g = ssd_level(i);
        snprintf(p, sizeof p, "loc.%d", i);
        net->loc[i] = add_conv(t, p, 4 * g->per_loc, g->channels, 3, 1, 1, true,
                               SSD_INIT_XAVIER_UNIFORM);
    }
    for (int i = 0; i < SSD_NUM_LEVELS; i++) {
        char p[SSD_TENSOR_NAME_LEN];
        const ssd_level_geom *g = ssd_level(i);
        snprintf(p, sizeof p, "conf.%d", i);
        net->conf[i] = add_conv(t, p, SSD_NUM_CLASSES * g->per_loc, g->channels, 3, 1, 1, true,
                                SSD_INIT_XAVIER_UNIFORM);
    }
}

void ssd_param_table_build(ssd_param_table *t) {
    memset(t, 0, sizeof *t);
    t->params = ssd_xcalloc(MAX_PARAMS, sizeof *t->params);
    t->buffers = ssd_xcalloc(MAX_BUFFERS, sizeof *t->buffers);
    build_backbone(t);
    build_extras_heads(t);
    SSD_ASSERT(t->net.n_bn == SSD_NUM_BN, "expected %d BN layers, built %d", SSD_NUM_BN,
               t->net.n_bn);
}

void ssd_param_table_free(ssd_param_table *t) {
    free(t->params);
    free(t->buffers);
    memset(t, 0, sizeof *t);
}

static int find_row(const ssd_param_info *rows, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(rows[i].name, name) == 0) return i;
    return -1;
}

int ssd_param_find(const ssd_param_table *t, const char *name) {
    return find_row(t->params, t->n_params, name);
}

int ssd_buffer_find(const ssd_param_table *t, const char *name) {
    return find_row(t->buffers, t->n_buffers, name);
}

/* ---- initialisation ---- */

static void init_row(const ssd_param_info *r, ssd_rng *rng, double *dst) {
    switch (r->init) {
    case SSD_INIT_KAIMING_FAN_OUT: {
        double sd = sqrt(2.0 / (double)r->fan_out);
        for (int64_t i = 0; i < r->numel; i++) dst[i] = sd * ssd_rng_normal(rng);
        break;
    }
    case SSD_INIT_XAVIER_UNIFORM: {
        double b = sqrt(6.0 / (double)(r->fan_in + r->fan_out));
        for (int64_t i = 0; i < r->numel; i++) dst[i] = ssd_rng_range(rng, -b, b);
        break;
    }
    case SSD_INIT_CONV_BIAS: {
        double b = 1.0 / sqrt((double)r->fan_in);
        for (int64_t i = 0; i < r->numel; i++) dst[i] = ssd_rng_range(rng, -b, b);
        break;
    }
    case SSD_INIT_ONES:
        for (int64_t i = 0; i < r->numel; i++) dst[i] = 1.0;
        break;
    case SSD_INIT_ZEROS:
        for (int64_t i = 0; i < r->numel; i++) dst[i] = 0.0;
        break;
    }
}

void ssd_param_table_init(const ssd_param_table *t, uint32_t seed, double *params,
                          double *buffers) {
    for (int i = 0; i < t->n_params; i++) {
        ssd_rng rng = ssd_rng_stream(seed, SSD_RNG_DOMAIN_INIT, 0, 0, (uint64_t)i);
        init_row(&t->params[i], &rng, params + t->params[i].offset);
    }
    for (int i = 0; i < t->n_buffers; i++) {
        ssd_rng rng = ssd_rng_stream(seed, SSD_RNG_DOMAIN_INIT, 0, 0, (uint64_t)(1000 + i));
        init_row(&t->buffers[i], &rng, buffers + t->buffers[i].offset);
    }
}
