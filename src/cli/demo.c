/* See demo.h. */
#include "cli/demo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/timer.h"
#include "data/coco_json.h"
#include "data/synth.h"
#include "io/file.h"

#define DEMO_SET "demo-synth-v1"
#define DEMO_TRAIN 64
#define DEMO_VAL 16
#define DEMO_SEED 2026

void ssd_demo_get_defaults(ssd_demo_defaults *d) {
    d->epochs = 8;
    d->batch_size = 8;
    d->val_interval = 4;
    d->log_interval = 8;
    d->num_workers = 1;
    d->seed = 1;
    d->lr = 0.04; /* per 32 images: 0.01 at batch 8 */
    d->warmup = 1;
    d->decay = "6";
}

static bool is_complete(const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/annotations/instances_val2017.json", dir);
    return access(p, R_OK) == 0;
}

ssd_status ssd_demo_dataset(char *dir, size_t len, FILE *log, ssd_error *err) {
    char *cache = ssd_cache_dir(NULL);
    int n = cache ? snprintf(dir, len, "%s/%s", cache, DEMO_SET)
                  : snprintf(dir, len, "ssd-demo-data/%s", DEMO_SET);
    free(cache);
    if (n < 0 || (size_t)n >= len) return ssd_fail(err, SSD_ERR_ARG, "demo: cache path too long");
    if (is_complete(dir)) {
        fprintf(log, "ssd train: built-in demo on the cached synthetic set %s\n", dir);
        return SSD_OK;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dir, (long)getpid());
    double t0 = ssd_now();
    ssd_synth_cfg sc = {.out_dir = tmp, .n_train = DEMO_TRAIN, .n_val = DEMO_VAL,
                        .seed = DEMO_SEED, .quality = 90, .force = true};
    ssd_status st = ssd_synth_write(&sc, err);
    if (st == SSD_OK && rename(tmp, dir) != 0 && !is_complete(dir))
        st = ssd_fail(err, SSD_ERR_IO, "%s: cannot move the demo set into place: %s", dir,
                      strerror(errno));
    if (st != SSD_OK) return st;
    fprintf(log,
            "ssd train: built-in demo: wrote a synthetic COCO-format set (%d train + %d val "
            "images, ssd synth --seed %d) to %s in %.1f s\n",
            DEMO_TRAIN, DEMO_VAL, DEMO_SEED, dir, ssd_now() - t0);
    return SSD_OK;
}

ssd_status ssd_demo_pictures(const char *checkpoint, const char *data, const char *output,
                             const char *backend, FILE *log, ssd_error *err) {
    (void)checkpoint, (void)data, (void)output, (void)backend, (void)log, (void)err;
    return SSD_OK; /* TEMP until the detect module lands */
}
