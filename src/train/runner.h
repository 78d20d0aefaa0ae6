/* The model's per-batch work for training and inference, for any batch size: a small pool of
 * activation sets keyed by batch size (the epoch's short last batch and the validation batch get
 * their own), the device copy of the images, host copies of the outputs, and the loss.
 *
 * A runner borrows its model (f32 on any backend); it is not thread-safe. */
#ifndef SSD_TRAIN_RUNNER_H
#define SSD_TRAIN_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "box/anchors.h"
#include "loss/ssd_loss.h"
#include "model/ssd_model.h"

typedef struct ssd_runner ssd_runner;

ssd_runner *ssd_runner_create(ssd_model *m);
void ssd_runner_destroy(ssd_runner *r); /* NULL is fine; the model is not freed */

/* Zeroes the gradients, runs a training-mode forward of n images (n,3,300,300) f32 host, the
 * loss against the encoded targets (bboxes (n,8732,4) f32, labels (n,8732) i64) and the backward,
 * accumulating every parameter gradient. Returns the batch loss (may be +inf: spec quirk 3);
 * per_image (n floats, nullable) gets each image's loss. No optimizer step. */
float ssd_runner_train_step(ssd_runner *r, int n, const float *images, const float *bboxes,
                            const int64_t *labels, float *per_image);

/* The same for one fragment of a batch (gradient accumulation, --batch-splits): the gradient of
 * grad_scale x (the fragment's loss) is ADDED to the parameter gradients, which are zeroed first
 * only when zero_grad. Returns the fragment's unscaled loss. */
float ssd_runner_train_fragment(ssd_runner *r, int n, const float *images, const float *bboxes,
                                const int64_t *labels, float *per_image, float grad_scale,
                                bool zero_grad);

/* Inference-mode forward (running BN statistics) of n images; *loc (n,4,8732) and *conf
 * (n,81,8732) point to host copies that stay valid until the next call. */
void ssd_runner_infer(ssd_runner *r, int n, const float *images, const float **loc,
                      const float **conf);

/* Seconds spent so far in each phase of the training calls (cumulative; ssd bench reads them):
 * forward = image upload + training forward + output download (host loss) or a synchronise
 * (device loss); loss = the host loss forward and backward + gradient scaling + upload, or the
 * target upload + the device loss + the per-image losses' download; backward = the network
 * backward (synchronised). upload = the image upload alone (part of forward). */
typedef struct ssd_runner_times {
    double forward, loss, backward, upload;
} ssd_runner_times;
ssd_runner_times ssd_runner_get_times(const ssd_runner *r);

const ssd_anchors *ssd_runner_anchors(const ssd_runner *r);
ssd_model *ssd_runner_model(const ssd_runner *r);

#endif
