/* The ImageNet-pretrained ResNet-34 backbone (spec/ssd-reference.md sections 1.3-1.4):
 * torchvision's resnet34 state_dict (e.g. resnet34-333f7ec4.pth, any torch container: see
 * io/pth.h) into the SSD backbone, by the spec's key mapping
 *
 *   conv1.weight -> model.layer1.0.weight      bn1.*      -> model.layer1.1.*
 *   layer1.<b>.* -> model.layer1.4.<b>.*       layer2.<b>.* -> model.layer1.5.<b>.*
 *   layer3.<b>.* -> model.layer2.0.<b>.*       layer4.*, fc.* -> skipped (unused by SSD)
 *
 * Conv weights, BN weight/bias and BN running_mean/running_var are copied (converted to the
 * model's dtype); `*.num_batches_tracked` (absent from the 2017 file) is skipped: our model
 * keeps one counter. layer3's first block runs with stride 1 in SSD; that changes no weight.
 * Every backbone tensor (145) must be in the file with its exact shape; a missing tensor, a
 * shape mismatch, a non-float dtype or a name that is not a torchvision ResNet-34 key is an
 * error, and then the model is left untouched (everything is checked before anything is
 * copied). `ssd step --pretrained-backbone` uses this; `ssd train` will too. */
#ifndef SSD_MODEL_PRETRAINED_H
#define SSD_MODEL_PRETRAINED_H

#include "core/status.h"
#include "io/pth.h"
#include "model/ssd_model.h"

typedef struct ssd_pretrained_report {
    const char *container;  /* "zip", "tar" or "legacy" */
    int loaded;             /* tensors copied into the backbone (145) */
    int64_t loaded_values;  /* their elements */
    int skipped_unused;     /* layer4.* and fc.* tensors */
    int skipped_counters;   /* *.num_batches_tracked */
} ssd_pretrained_report;

/* Reads PATH (a .pth file) and loads it with ssd_model_load_backbone. */
ssd_status ssd_model_load_pretrained_backbone(ssd_model *m, const char *path,
                                              ssd_pretrained_report *rep, ssd_error *err);
/* The same from an open file; `path` is only used in messages. */
ssd_status ssd_model_load_backbone(ssd_model *m, const ssd_pth_file *f, const char *path,
                                   ssd_pretrained_report *rep, ssd_error *err);
/* The SSD name of a torchvision ResNet-34 key into out (len bytes): 1 mapped, 0 unused by
 * SSD (layer4, fc, num_batches_tracked), -1 not a key of that form. */
int ssd_backbone_map_name(const char *tv_name, char *out, size_t len);

#endif
