#include "backend/layer_shapes.h"

/* name, C, K, H, R, stride, pad, bias, count */
const ssd_conv_shape ssd_conv_shapes[] = {
    {"model.layer1.0 (conv1 7x7/2)", 3, 64, 300, 7, 2, 3, false, 1},
    {"model.layer1.4.*.conv* (layer1 3x3)", 64, 64, 75, 3, 1, 1, false, 6},
    {"model.layer1.5.0.conv1 (layer2 3x3/2)", 64, 128, 75, 3, 2, 1, false, 1},
    {"model.layer1.5.0.downsample.0 (1x1/2)", 64, 128, 75, 1, 2, 0, false, 1},
    {"model.layer1.5.*.conv* (layer2 3x3)", 128, 128, 38, 3, 1, 1, false, 7},
    {"model.layer2.0.0.conv1 (layer3 3x3 128->256)", 128, 256, 38, 3, 1, 1, false, 1},
    {"model.layer2.0.0.downsample.0 (1x1 128->256)", 128, 256, 38, 1, 1, 0, false, 1},
    {"model.layer2.0.*.conv* (layer3 3x3 256->256)", 256, 256, 38, 3, 1, 1, false, 11},
    {"additional_blocks.0.0 (1x1)", 256, 256, 38, 1, 1, 0, true, 1},
    {"additional_blocks.0.2 (3x3/2)", 256, 512, 38, 3, 2, 1, true, 1},
    {"additional_blocks.1.0 (1x1)", 512, 256, 19, 1, 1, 0, true, 1},
    {"additional_blocks.1.2 (3x3/2)", 256, 512, 19, 3, 2, 1, true, 1},
    {"additional_blocks.2.0 (1x1)", 512, 128, 10, 1, 1, 0, true, 1},
    {"additional_blocks.2.2 (3x3/2)", 128, 256, 10, 3, 2, 1, true, 1},
    {"additional_blocks.3.0 (1x1)", 256, 128, 5, 1, 1, 0, true, 1},
    {"additional_blocks.3.2 (3x3 pad 0)", 128, 256, 5, 3, 1, 0, true, 1},
    {"additional_blocks.4.0 (1x1)", 256, 128, 3, 1, 1, 0, true, 1},
    {"additional_blocks.4.2 (3x3 pad 0)", 128, 256, 3, 3, 1, 0, true, 1},
    {"loc.0", 256, 16, 38, 3, 1, 1, true, 1},
    {"conf.0", 256, 324, 38, 3, 1, 1, true, 1},
    {"loc.1", 512, 24, 19, 3, 1, 1, true, 1},
    {"conf.1", 512, 486, 19, 3, 1, 1, true, 1},
    {"loc.2", 512, 24, 10, 3, 1, 1, true, 1},
    {"conf.2", 512, 486, 10, 3, 1, 1, true, 1},
    {"loc.3", 256, 24, 5, 3, 1, 1, true, 1},
    {"conf.3", 256, 486, 5, 3, 1, 1, true, 1},
    {"loc.4", 256, 16, 3, 3, 1, 1, true, 1},
    {"conf.4", 256, 324, 3, 3, 1, 1, true, 1},
    {"loc.5", 256, 16, 1, 3, 1, 1, true, 1},
    {"conf.5", 256, 324, 1, 3, 1, 1, true, 1},
};
const int ssd_n_conv_shapes = (int)(sizeof ssd_conv_shapes / sizeof ssd_conv_shapes[0]);

/* name, C, H, count */
const ssd_bn_shape ssd_bn_shapes[] = {
    {"model.layer1.1 (bn1)", 64, 150, 1},
    {"layer1 bn", 64, 75, 6},
    {"layer2 bn", 128, 38, 9},
    {"layer3 bn", 256, 38, 13},
};
const int ssd_n_bn_shapes = (int)(sizeof ssd_bn_shapes / sizeof ssd_bn_shapes[0]);

const ssd_bn_shape ssd_pool_shape = {"model.layer1.3 (maxpool 3x3/2)", 64, 150, 1};

int ssd_conv_shape_out(const ssd_conv_shape *s) { return (s->h + 2 * s->pad - s->r) / s->stride + 1; }

double ssd_conv_shape_flops(const ssd_conv_shape *s) {
    double p = ssd_conv_shape_out(s);
    return 2.0 * s->c * s->k * s->r * s->r * p * p;
}
