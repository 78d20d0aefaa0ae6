/* The built-in default of `ssd train` (no --data): a synthetic COCO-format set made once with
 * `ssd synth` and cached, a short schedule that finishes in about 10 minutes on 2 cores, and
 * detection pictures at the end (docs/train.md, "The built-in demo"). */
#ifndef SSD_CLI_DEMO_H
#define SSD_CLI_DEMO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

typedef struct ssd_demo_defaults {
    long epochs, batch_size, val_interval, log_interval, num_workers, seed;
    double lr, warmup;
    const char *decay;
} ssd_demo_defaults;

void ssd_demo_get_defaults(ssd_demo_defaults *d);

/* The demo set's directory (made on first use, atomically: a crash never leaves a half set). */
ssd_status ssd_demo_dataset(char *dir, size_t len, FILE *log, ssd_error *err);

/* Detection pictures of the first validation images into OUTPUT/detections/. */
ssd_status ssd_demo_pictures(const char *checkpoint, const char *data, const char *output,
                             const char *backend, FILE *log, ssd_error *err);

#endif
