/* The training loop of `ssd train` (spec section 7): SGD with momentum and weight decay on every
 * parameter, the reference's warmup and decay, evaluation every --val-interval epochs with early
 * stop at --threshold, atomic checkpoints with exact resume, the MLPerf log, progress and curves.
 * The CLI (cli/cmd_train.c) parses and validates the flags into an ssd_train_cfg. */
#ifndef SSD_TRAIN_TRAINER_H
#define SSD_TRAIN_TRAINER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"
#include "dist/dist.h"

#define SSD_TRAIN_MAX_LIST 64

typedef struct ssd_train_cfg {
    const char *data;       /* COCO root: train2017/, val2017/, annotations/ */
    const char *output;     /* run directory (created): mllog.txt, curves, checkpoints */
    const char *backend;    /* "cpu", "ref", ... */
    const char *checkpoint; /* nullable: resume from this training checkpoint */
    const char *pretrained_backbone; /* nullable: torchvision ResNet-34 .pth */
    const char *cache_dir;  /* annotation index cache (NULL: default; "": none) */
    int64_t epochs;
    int batch_size, val_batch_size;
    int batch_splits;       /* gradient-accumulation fragments per batch (>= 1, divides batch) */
    double lr, momentum, weight_decay, warmup;
    int warmup_factor;
    int decay_epochs[SSD_TRAIN_MAX_LIST], n_decay;
    int val_epochs[SSD_TRAIN_MAX_LIST], n_val_epochs;
    uint32_t seed;
    bool seed_given;       /* false: a resume takes the checkpoint's seed */
    double threshold;
    int64_t iteration;     /* --iteration: the counter of the first step */
    int64_t end_iteration; /* > 0: stop (with a checkpoint) once the counter reaches it */
    bool no_save;
    int val_interval, log_interval, num_workers, num_cropping_iterations;
    double nms_valid_thresh;
    bool deterministic;
    bool augment;          /* false: fixed inputs (validation transform), for overfit tests */
    bool live_progress;    /* one self-overwriting progress line (a terminal) */
    const char *division, *org, *platform, *status; /* MLPerf submission keys */
    bool platform_is_default; /* platform was made up by the CLI: a GPU run names the GPU */
    const char *title;     /* for the curves picture (nullable) */
    ssd_dist *dist;        /* nullable: one process. With W ranks (docs/distributed.md) every
                              rank runs ssd_train_run with the same cfg: batch_size is per rank,
                              the global batch W x batch_size sets the LR; rank 0 writes the
                              output directory (log, curves, checkpoints, detections) */
    size_t bucket_bytes;   /* gradient all-reduce bucket (0: 16 MiB) */
    const struct ssd_cpus *loader_cpus; /* nullable: the loaders' workers bound to these CPUs
                                           (--pin-threads) */
} ssd_train_cfg;

typedef struct ssd_train_result {
    bool success;          /* reached --threshold */
    bool evaluated;
    double last_map;       /* AP of the last evaluation (-1: none) */
    double best_map;
    int64_t epochs_done, iterations; /* the counter at the end */
    int64_t steps_run;               /* optimizer steps this invocation ran */
    double first_loss, last_avg_loss;
    double seconds;
    double allreduce_seconds;   /* time in the gradient all-reduce (0 for one process) */
    double sync_wait_seconds;   /* time waiting for the other ranks before each all-reduce */
    size_t allreduce_bytes;     /* bytes each rank all-reduced per step */
    char last_checkpoint[4096]; /* "" when none was written (always "" on ranks > 0) */
} ssd_train_result;

/* Runs the whole procedure; progress goes to `progress` (stderr), the MLLOG lines to `log_out`
 * (stdout) and to output/mllog.txt. */
ssd_status ssd_train_run(const ssd_train_cfg *cfg, FILE *progress, FILE *log_out,
                         ssd_train_result *res, ssd_error *err);

#endif
