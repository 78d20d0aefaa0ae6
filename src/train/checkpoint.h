/* Training checkpoints: everything a run needs to continue bit-exactly, in ONE safetensors file.
 *
 * The reference (spec section 7 "Checkpoint") saves only `{"model": state_dict}` to a .pt file
 * and restarts the epoch loop at 0 on --checkpoint. Here a checkpoint is a full resume point:
 *
 *   - every trainable parameter and every BN buffer under its exact torch state_dict name (spec
 *     1.4 / 2), in state_dict order, including `<bn>.num_batches_tracked` as an i64 0-dim tensor
 *     like torch, so the weights load with `SSD300().load_state_dict(sd, strict=True)` once the
 *     `optimizer.*` entries are dropped (tools/checkpoint_oracle.py checks exactly that);
 *   - the SGD momentum buffer of every parameter as `optimizer.momentum.<name>`, present only
 *     when the model's momentum is valid (after the first SGD step; before it torch has no
 *     buffer and the first step sets buf = g, so a checkpoint taken before any step has none);
 *   - the training state (ssd_train_state) in "__metadata__" as strings.
 *
 * Tensors are stored in the model's dtype (f32 for cpu/cuda, f64 for ref) and loaded without
 * conversion, so a resume sees the same bits. Gradients are not stored: a checkpoint is taken
 * between optimizer steps, when the gradients are zero (the loop zeros them after each step), and
 * load zeros them.
 *
 * Metadata keys (all values are strings):
 *   format "ssd-checkpoint", format_version "1", dtype "f32"|"f64",
 *   epoch, iteration, loader_epoch, loader_iter (decimal int64, >= 0), seed (decimal uint32),
 *   avg_loss (C99 hex float, "%a": exact; e.g. "0x1.8p+1", "inf", "nan"),
 *   momentum_valid ("0" or "1").
 * Other metadata keys are ignored (room for notes); unknown tensors are an error.
 *
 * Saving is atomic (safetensors writer: temp file, fsync, rename, fsync of the directory): PATH
 * is either the previous file or the complete new one, also when the write fails.
 *
 * Loading validates the whole file first -- safetensors structure (truncation, corrupt header),
 * format name and version, every metadata value (parses completely, in range), every expected
 * tensor present with its exact shape and the model's dtype, no unknown tensor, the 29
 * num_batches_tracked equal and >= 0, momentum tensors present iff momentum_valid -- and only then
 * writes the model and the state. On any failure the model and *st are unchanged and the error
 * (SSD_ERR_IO for an unreadable file, SSD_ERR_FORMAT for bad content) names the file and the
 * problem. */
#ifndef SSD_TRAIN_CHECKPOINT_H
#define SSD_TRAIN_CHECKPOINT_H

#include <stdint.h>

#include "core/status.h"
#include "io/safetensors.h"
#include "model/ssd_model.h"

#define SSD_CHECKPOINT_FORMAT "ssd-checkpoint"
#define SSD_CHECKPOINT_VERSION 1
#define SSD_CHECKPOINT_MOMENTUM_PREFIX "optimizer.momentum."

typedef struct ssd_train_state {
    int64_t epoch;        /* the epoch the run continues in (0-based) */
    int64_t iteration;    /* optimizer steps done so far (the schedule's `it` of the next step) */
    int64_t loader_epoch; /* data loader position of the next batch (ssd_loader_position) */
    int64_t loader_iter;
    uint32_t seed;      /* the run's --seed (sampler and augmentation streams derive from it) */
    double avg_loss;    /* running loss average (avg = 0.999 avg + 0.001 loss), stored exactly */
    int momentum_valid; /* load: the file's flag (also set in the model). save: ignored, the
                           model's own m->momentum_valid is written */
    int64_t world_size; /* ranks of the run that wrote it (the loader position is per rank);
                           save: 0 is written as 1; load: 1 when the file does not say */
} ssd_train_state;

/* Writes model M (parameters, BN buffers and counter, momentum if valid) and *ST to PATH,
 * atomically. SSD_ERR_ARG for a negative counter in *st, SSD_ERR_IO when the file cannot be
 * written (PATH then keeps its previous content, if any). */
ssd_status ssd_checkpoint_save(const char *path, const ssd_model *m, const ssd_train_state *st,
                               ssd_error *err);

/* Validates PATH completely against model M (see the file comment), then loads parameters, BN
 * buffers, num_batches_tracked, momentum and momentum_valid into M (gradients zeroed; momentum
 * zeroed when the file has none) and the state into *ST. On failure nothing is changed. */
ssd_status ssd_checkpoint_load(const char *path, ssd_model *m, ssd_train_state *st, ssd_error *err);

/* The same on a file already read with ssd_st_read (path only names it in messages). */
ssd_status ssd_checkpoint_load_file(const ssd_st_file *f, const char *path, ssd_model *m,
                                    ssd_train_state *st, ssd_error *err);

#endif
