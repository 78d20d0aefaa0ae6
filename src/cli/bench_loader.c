/* `ssd bench --what loader`: images/s of the full training data pipeline (JPEG decode, SSD crop,
 * flip, resize, colour jitter, normalise, encoder; batches of --batch) with --workers threads,
 * and the same pipeline in torchvision/PIL (tools/bench_torch_loader.py, a DataLoader with the
 * same number of worker processes) in the same run, on the same COCO-format data (default: the
 * real COCO images of ../shared/data/coco_tiny, else 80 synthesized ones). Both sides are timed after one warm-up batch,
 * over at least --images images. Timing only: nothing here decides a test. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/bench.h"
#include "core/strbuf.h"
#include "core/timer.h"
#include "data/coco_json.h"
#include "data/loader.h"
#include "data/synth.h"

#ifndef SSD_SOURCE_DIR
#define SSD_SOURCE_DIR "."
#endif

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)flag, (void)f;
    return remove(path);
}

int ssd_bench_loader(const bench_args *a) {
    ssd_error err;
    ssd_error_clear(&err);
    int rc = 1;
    char data[4096], ann[4200], imgs[4200];
    ssd_coco_index *idx = NULL;
    ssd_loader *l = NULL;
    char *ref = NULL;
    ssd_strbuf out = {0}, args = {0};
    bool made = false;
    if (a->data) {
        snprintf(data, sizeof data, "%s", a->data);
    } else {
        snprintf(data, sizeof data, "%s/../shared/data/coco_tiny", SSD_SOURCE_DIR);
        if (!is_dir(data)) {
            /* No real images at hand: a synthetic set of the same size, removed afterwards. */
            snprintf(data, sizeof data, "%s/ssd-bench-loader-XXXXXX", a->workdir ? a->workdir : "/tmp");
            if (!mkdtemp(data)) {
                fprintf(stderr, "ssd bench: cannot create %s\n", data);
                return 1;
            }
            made = true;
            fprintf(stderr, "ssd bench: ../shared/data/coco_tiny is absent: synthesizing 80 images "
                    "into %s\n", data);
            ssd_synth_cfg sc = {.out_dir = data, .n_train = 80, .n_val = 8, .seed = 1, .force = true};
            if (ssd_synth_write(&sc, &err) != SSD_OK) goto cleanup;
        }
    }
    if (ssd_coco_split_paths(data, "train", ann, sizeof ann, imgs, sizeof imgs) != 0) {
        ssd_fail(&err, SSD_ERR_ARG, "--data: path too long");
        goto cleanup;
    }
    if (ssd_coco_index_load(ann, NULL, &idx, NULL, &err) != SSD_OK) goto cleanup;

    ssd_loader_cfg cfg;
    ssd_loader_cfg_default(&cfg);
    cfg.index = idx;
    cfg.image_dir = imgs;
    cfg.batch_size = (int)a->batch;
    cfg.num_workers = (int)a->workers;
    cfg.seed = (uint32_t)a->seed;
    cfg.aug.crop_iterations = (int)a->crop_iterations;
    if (ssd_loader_create(&cfg, &l, &err) != SSD_OK) goto cleanup;
    fprintf(stderr, "ssd bench: loader over %s (%lld samples), %ld worker(s), batch %ld\n", data,
            (long long)idx->num_samples, a->workers, a->batch);
    if (!ssd_loader_next(l)) goto loader_failed; /* warm-up: threads started, first batch */
    long n = 0;
    double t0 = ssd_now();
    while (n < a->images) {
        const ssd_batch *b = ssd_loader_next(l);
        if (!b) goto loader_failed;
        n += b->n;
    }
    double dt = ssd_now() - t0;
    double ips = n / dt, cores = a->workers > 0 ? (double)a->workers : 1.0;
    fprintf(stderr, "ssd bench: ours: %ld images in %.3f s = %.1f images/s (%.1f per core)\n", n,
            dt, ips, ips / cores);
    int64_t bad = ssd_loader_bad_files(l);
    ssd_loader_destroy(l);
    l = NULL;

    const char *why = "--no-reference";
    if (!a->no_reference) {
        ssd_sb_printf(&args,
                      "\"%s/tools/bench_torch_loader.py\" --data \"%s\" --workers %ld --batch %ld "
                      "--images %ld --crop-iterations %ld --seed %ld",
                      SSD_SOURCE_DIR, data, a->workers, a->batch, a->images, a->crop_iterations,
                      a->seed);
        ref = ssd_bench_run_python(a->torch_python, "torchvision", args.s, &why);
    }
    double ref_ips = 0;
    if (ref) {
        const char *p = strstr(ref, "\"images_per_s\":");
        ref_ips = p ? atof(p + strlen("\"images_per_s\":")) : 0;
        fprintf(stderr, "ssd bench: torchvision/PIL: %.1f images/s (%.1f per core); ours/theirs "
                "= %.2f\n", ref_ips, ref_ips / cores, ref_ips > 0 ? ips / ref_ips : 0);
    } else {
        fprintf(stderr, "ssd bench: reference skipped: %s\n", why);
    }
    ssd_sb_printf(&out,
                  "{\"what\":\"loader\",\"data\":");
    ssd_sb_json_str(&out, data);
    ssd_sb_printf(&out,
                  ",\"samples\":%lld,\"workers\":%ld,\"batch\":%ld,\"crop_iterations\":%ld,"
                  "\"cpus\":%ld,\"images\":%ld,\"seconds\":%.4f,\"images_per_s\":%.2f,"
                  "\"images_per_s_per_core\":%.2f,\"bad_files\":%lld,",
                  (long long)idx->num_samples, a->workers, a->batch, a->crop_iterations,
                  sysconf(_SC_NPROCESSORS_ONLN), n, dt, ips, ips / cores, (long long)bad);
    if (ref) {
        ssd_sb_printf(&out,
                      "\"reference_images_per_s\":%.2f,\"reference_images_per_s_per_core\":%.2f,"
                      "\"ratio\":%.3f,\"reference\":%s}",
                      ref_ips, ref_ips / cores, ref_ips > 0 ? ips / ref_ips : 0, ref);
    } else {
        ssd_sb_puts(&out, "\"reference_images_per_s\":null,\"reference_skipped\":");
        ssd_sb_json_str(&out, why);
        ssd_sb_puts(&out, "}");
    }
    puts(out.s);
    rc = fflush(stdout) == 0 ? 0 : 1;
    goto cleanup;

loader_failed:
    ssd_fail(&err, SSD_ERR_IO, "%s", ssd_loader_error(l) ? ssd_loader_error(l) : "loader stopped");
cleanup:
    if (rc) fprintf(stderr, "ssd bench: %s\n", err.msg[0] ? err.msg : "failed");
    ssd_loader_destroy(l);
    ssd_coco_index_free(idx);
    free(ref);
    ssd_sb_free(&out);
    ssd_sb_free(&args);
    if (made && !a->keep) nftw(data, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
