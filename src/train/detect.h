/* Inference on single pictures: weights from a checkpoint, the validation transform, the
 * network, post-processing (spec 8), and a copy of the picture with the detections drawn (box,
 * class name, score), as `ssd detect` and the demo write them. */
#ifndef SSD_TRAIN_DETECT_H
#define SSD_TRAIN_DETECT_H

#include <stdio.h>

#include "core/status.h"
#include "eval/postprocess.h"
#include "model/ssd_model.h"
#include "train/runner.h"

/* Loads weights for inference from PATH: a training checkpoint of this trainer (train/checkpoint.h)
 * or any safetensors file with the model's tensors under their torch names (optimizer.* and
 * other extra entries are ignored). Errors name the file. */
ssd_status ssd_load_inference_weights(ssd_model *m, const char *path, ssd_error *err);

/* What inference commands need: backend NAME, a model with the weights of PATH
 * (ssd_load_inference_weights) and its runner. On failure *out is NULL and nothing leaks. */
ssd_status ssd_inference_open(const char *backend, const char *path, ssd_runner **out,
                              ssd_error *err);
/* Destroys a runner from ssd_inference_open with its model and backend (NULL is fine). */
void ssd_inference_close(ssd_runner *r);

typedef struct ssd_detect_cfg {
    ssd_post_cfg post;  /* the reference's post-processing */
    float min_score;    /* drawn and listed: detections with score >= this */
    int quality;        /* JPEG quality of the pictures */
} ssd_detect_cfg;

void ssd_detect_cfg_default(ssd_detect_cfg *c); /* reference post, min_score 0.3, quality 90 */

typedef struct ssd_detector ssd_detector;
ssd_detector *ssd_detector_create(ssd_runner *r, const ssd_detect_cfg *cfg);
void ssd_detector_destroy(ssd_detector *d);

/* Detects on the JPEG at in_path, writes the annotated picture to out_path (atomically) and, if
 * `list` is non-NULL, one line per drawn detection ("<file> <class> <score> <x> <y> <w> <h>",
 * pixels of the original picture). *n_drawn gets their number. */
ssd_status ssd_detect_file(ssd_detector *d, const char *in_path, const char *out_path, FILE *list,
                           int *n_drawn, ssd_error *err);

#endif
