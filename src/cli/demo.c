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
#include "train/detect.h"
#include "train/runner.h"

#define DEMO_SET "demo-synth-v1"
#define DEMO_TRAIN 64
#define DEMO_VAL 16
#define DEMO_SEED 2026
#define DEMO_PICTURES 4
#define DEMO_MIN_SCORE 0.3f

void ssd_demo_get_defaults(ssd_demo_defaults *d) {
    d->epochs = 8;
    d->batch_size = 8;
    d->val_interval = 4;
    d->log_interval = 8;
    d->num_workers = 1;
    d->seed = 1;
    d->lr = 0.02; /* per 32 images: 0.005 at batch 8 */
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
    char dir[4200], in[4300], out[4300];
    snprintf(dir, sizeof dir, "%s/detections", output);
    if (ssd_make_dirs(dir, err) != SSD_OK) return err->code;
    ssd_runner *r = NULL;
    ssd_detector *d = NULL;
    ssd_status st = ssd_inference_open(backend, checkpoint, &r, err);
    if (st == SSD_OK) {
        ssd_detect_cfg dc;
        ssd_detect_cfg_default(&dc);
        dc.min_score = DEMO_MIN_SCORE;
        d = ssd_detector_create(r, &dc);
    }
    char ann[4200], imgs[4200];
    ssd_coco_index *idx = NULL;
    if (st == SSD_OK && ssd_coco_split_paths(data, "val", ann, sizeof ann, imgs, sizeof imgs))
        st = ssd_fail(err, SSD_ERR_ARG, "%s: path too long", data);
    if (st == SSD_OK) st = ssd_coco_index_load(ann, NULL, &idx, NULL, err);
    for (int64_t i = 0; st == SSD_OK && i < DEMO_PICTURES && i < idx->num_samples; i++) {
        const char *name = ssd_coco_file_name(idx, i);
        snprintf(in, sizeof in, "%s/%s", imgs, name);
        snprintf(out, sizeof out, "%s/%s", dir, name);
        int n = 0;
        st = ssd_detect_file(d, in, out, NULL, &n, err);
        if (st == SSD_OK)
            fprintf(log, "ssd train: demo picture %s: %d detections with score >= %.2f\n", out,
                    n, DEMO_MIN_SCORE);
    }
    ssd_coco_index_free(idx);
    ssd_detector_destroy(d);
    ssd_inference_close(r);
    return st;
}
