/* The distinct layer shapes of SSD300-ResNet34 at 300x300 (spec/ssd-reference.md sections 1-2),
 * for the op tests and the benchmarks: every conv, batch-norm and pool shape the network runs,
 * with how many times it occurs in one forward pass. */
#ifndef SSD_BACKEND_LAYER_SHAPES_H
#define SSD_BACKEND_LAYER_SHAPES_H

#include <stdbool.h>

typedef struct ssd_conv_shape {
    const char *name; /* a representative state_dict name */
    int c, k;         /* input / output channels */
    int h;            /* input height = width */
    int r;            /* kernel height = width */
    int stride, pad;
    bool bias;
    int count;        /* occurrences in the network */
} ssd_conv_shape;

typedef struct ssd_bn_shape {
    const char *name;
    int c, h;
    int count;
} ssd_bn_shape;

extern const ssd_conv_shape ssd_conv_shapes[];
extern const int ssd_n_conv_shapes;
extern const ssd_bn_shape ssd_bn_shapes[];
extern const int ssd_n_bn_shapes;
/* maxpool 3x3/2 pad 1 on 64x150x150 */
extern const ssd_bn_shape ssd_pool_shape;

/* Output height of a conv shape. */
int ssd_conv_shape_out(const ssd_conv_shape *s);
/* Forward multiply-add FLOPs (2*MACs) of one image through one occurrence. */
double ssd_conv_shape_flops(const ssd_conv_shape *s);

#endif
