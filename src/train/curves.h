/* The training curves of a run: one JSON line per optimizer step and per evaluation in
 * OUTPUT/curves.jsonl, and a picture of them (OUTPUT/curves.svg, train/plot.h) redrawn at every
 * evaluation and at close.
 *
 *   {"type": "step", "epoch": 1, "step": 12, "loss": 8.41, "avg_loss": 0.11, "lr": 0.0025, "img_s": 1.9}
 *   {"type": "eval", "epoch": 5, "step": 60, "map": 0.012, "stats": [12 COCO stats]}
 *
 * `epoch` is 1-based; `step` is the optimizer-step counter after the step. An infinite loss
 * (spec quirk 3) is written as null. A resumed run keeps the records up to its checkpoint's
 * step and appends after them. */
#ifndef SSD_TRAIN_CURVES_H
#define SSD_TRAIN_CURVES_H

#include <stdint.h>

#include "core/status.h"

typedef struct ssd_curves ssd_curves;

/* keep_until: records with step <= keep_until already in jsonl_path are kept (a resume), later
 * ones dropped; a fresh run passes its first counter value. */
ssd_status ssd_curves_open(ssd_curves **out, const char *jsonl_path, const char *svg_path,
                           const char *title, int64_t keep_until, ssd_error *err);
ssd_status ssd_curves_step(ssd_curves *c, int64_t epoch, int64_t step, double loss,
                           double avg_loss, double lr, double img_s, ssd_error *err);
ssd_status ssd_curves_eval(ssd_curves *c, int64_t epoch, int64_t step, const double stats[12],
                           ssd_error *err);
/* step, eval and draw do nothing on a NULL handle (ranks other than 0 keep none). */
/* Redraws the picture (also done by ssd_curves_eval). */
ssd_status ssd_curves_draw(ssd_curves *c, ssd_error *err);
void ssd_curves_close(ssd_curves *c); /* NULL is fine */

#endif
