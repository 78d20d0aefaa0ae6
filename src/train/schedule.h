/* The reference's learning-rate and evaluation schedule (spec section 7 "Base LR", "Warmup",
 * "Decay", "Evaluation schedule"; quirk 11.2 item 1; flag defaults of 9.1).
 *
 * The reference (train.py) keeps the LR in the optimizer's param group and changes it in place:
 *   - construction:                 lr = cur = --lr * (global_batch / 32)
 *   - start of epoch e, e in --lr-decay-schedule:  cur *= 0.1; lr = cur
 *   - before each optimizer step with counter it < wb:
 *                                   lr = cur - (wb - it) * (cur / (wb * 2^wf))
 *   - it >= wb: lr is not touched (it keeps the last warmup value until the next decay epoch)
 * with wb = int(--warmup * train_samples / global_batch) (float product, truncated) and `it`
 * starting at --iteration and incremented after every step, across epochs (the epoch loop itself
 * always starts at 0).
 *
 * ssd_lr_at() is a pure function of (epoch, it) that returns exactly (bit for bit, same IEEE
 * double operations in the same order) the LR that stateful loop hands to optim.step() at that
 * step, so a trainer can ask for any step without replaying the history (resume, logging). To
 * find which warmup value survives past wb it needs the loop's shape: the number of optimizer
 * steps per epoch (constant in the reference: len(DataLoader)) and the starting --iteration. */
#ifndef SSD_TRAIN_SCHEDULE_H
#define SSD_TRAIN_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"

#define SSD_LR_MAX_DECAYS 16

/* --lr default (_BASE_LR, "LR per 32 images"), the decay factor and default decay epochs. */
#define SSD_LR_FLAG_DEFAULT 2.5e-3
#define SSD_LR_DECAY_FACTOR 0.1

typedef struct ssd_lr_schedule {
    double base_lr;          /* --lr * (global_batch / 32): the LR before any decay */
    double warmup_epochs;    /* --warmup as given (<= 0: none) */
    int warmup_factor;       /* --warmup-factor (wf) */
    int64_t warmup_iters;    /* wb = int(warmup * train_samples / global_batch); 0 = no warmup */
    int64_t iters_per_epoch; /* optimizer steps per epoch (>= 1) */
    int64_t start_iteration; /* --iteration: `it` of the first step of epoch 0 (>= 0) */
    int n_decay; /* distinct decay epochs, ascending (duplicates and negatives dropped) */
    int decay_epochs[SSD_LR_MAX_DECAYS];
} ssd_lr_schedule;

/* Fills *s. lr_flag: --lr (> 0, finite); global_batch: world_size * --batch-size (>= 1);
 * warmup_epochs: --warmup, 0 or negative = no warmup (the reference's `if args.warmup:` treats 0
 * as none and a negative value gives wb <= 0, which never triggers); warmup_factor: --warmup-factor
 * in [-64, 64]; train_samples: len(train dataset) (>= 1, used only with warmup);
 * iters_per_epoch >= 1; start_iteration (--iteration) >= 0; decay_epochs: n_decay (<= 16) epoch
 * numbers (0-based, in any order; an epoch listed twice decays once, as `epoch in list` does).
 * SSD_ERR_ARG naming the flag on a bad value. */
ssd_status ssd_lr_schedule_init(ssd_lr_schedule *s, double lr_flag, int global_batch,
                                double warmup_epochs, int warmup_factor, int64_t train_samples,
                                int64_t iters_per_epoch, int64_t start_iteration,
                                const int *decay_epochs, int n_decay, ssd_error *err);

/* The LR used by the optimizer step with counter `it` in epoch `epoch` (0-based). `it` must be
 * the step's real counter: start_iteration + epoch * iters_per_epoch + batch index (checked). */
double ssd_lr_at(const ssd_lr_schedule *s, int64_t epoch, int64_t it);

/* The value of the running `cur` (the LR a decay sets) during epoch `epoch`. */
double ssd_lr_current(const ssd_lr_schedule *s, int64_t epoch);

/* Whether the reference evaluates after epoch `epoch` (0-based): (epoch+1) in val_epochs
 * (1-based, --val-epochs) or val_interval != 0 and (epoch+1) % val_interval == 0 (--val-interval,
 * default 5; 0 disables). */
bool ssd_eval_due(int64_t epoch, int val_interval, const int *val_epochs, int n_val_epochs);

/* Parses a comma-separated list of integers ("40,50", "" or "none" = empty) into out[0..*n)
 * (at most cap entries). Spaces around the numbers are allowed. SSD_ERR_ARG naming `flag` and the
 * offending text on an empty item, a non-number, a value outside int, or more than cap items. */
ssd_status ssd_parse_int_list(const char *flag, const char *text, int *out, int cap, int *n,
                              ssd_error *err);

#endif
