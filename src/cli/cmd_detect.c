/* `ssd detect`: runs a checkpoint on pictures and writes copies with the detections drawn
 * (box, class name, score), plus one text line per detection on stdout. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/mem.h"
#include "io/file.h"
#include "train/detect.h"

/* Splits argv into options (with their values) and the picture paths. */
static int split_args(const ssd_opt *opts, int nopts, int argc, char **argv, char **optv,
                      char **images, int *nimages) {
    int no = 0;
    *nimages = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || strcmp(a, "-") == 0) {
            images[(*nimages)++] = argv[i];
            continue;
        }
        optv[no++] = argv[i];
        if (strchr(a, '=')) continue;
        for (int k = 0; k < nopts; k++)
            if (strcmp(opts[k].name, a) == 0 && opts[k].type != SSD_OPT_FLAG && i + 1 < argc)
                optv[no++] = argv[++i];
    }
    return no;
}

int ssd_cmd_detect(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *backend = ssd_backend_default_name();
    double min_score = 0.3, nms = 0.05;
    long quality = 90;
    const ssd_opt opts[] = {
        {"--checkpoint", SSD_OPT_STR, &ckpt, true, 1, 0, "C.safetensors",
         "training checkpoint (or any safetensors with the model's torch names)"},
        {"--out", SSD_OPT_STR, &out, true, 1, 0, "DIR",
         "where the pictures go (created), as <name>.jpg"},
        {"--min-score", SSD_OPT_DOUBLE, &min_score, false, 0, 1, "P",
         "draw detections with at least this score"},
        {"--nms-valid-thresh", SSD_OPT_DOUBLE, &nms, false, 0, 1, "P",
         "candidate score threshold of the post-processing"},
        {"--quality", SSD_OPT_INT, &quality, false, 1, 100, "Q", "JPEG quality"},
        {"--backend", SSD_OPT_STR, &backend, false, 1, 0, "NAME", "compute backend"},
    };
    int nopts = (int)(sizeof opts / sizeof opts[0]);
    const char *summary = "Detects objects in JPEG pictures (usage: ssd detect --checkpoint C --out "
                          "DIR PICTURE.jpg...);\nwrites DIR/<name>.jpg with the boxes, class names "
                          "and scores drawn, and prints\n\"<file> <class> <score> <x> <y> <w> <h>\" "
                          "per detection (pixels).";
    char **optv = ssd_xcalloc((size_t)argc + 1, sizeof *optv);
    char **images = ssd_xcalloc((size_t)argc + 1, sizeof *images);
    int nimages = 0, no = split_args(opts, nopts, argc, argv, optv, images, &nimages);
    int rc = ssd_opts_cli("detect", summary, opts, nopts, no, optv);
    if (rc < 0 && nimages == 0) {
        fprintf(stderr, "ssd detect: no pictures given (try 'ssd detect --help')\n");
        rc = 2;
    }
    if (rc >= 0) {
        free(optv);
        free(images);
        return rc;
    }
    ssd_error err;
    ssd_error_clear(&err);
    rc = 1;
    ssd_runner *r = NULL;
    ssd_detector *d = NULL;
    int failed = 0;
    if (ssd_make_dirs(out, &err) != SSD_OK) goto done;
    if (ssd_inference_open(backend, ckpt, &r, &err) != SSD_OK) goto done;
    ssd_detect_cfg dc;
    ssd_detect_cfg_default(&dc);
    dc.min_score = (float)min_score;
    dc.post.score_thresh = (float)nms;
    dc.quality = (int)quality;
    d = ssd_detector_create(r, &dc);
    for (int i = 0; i < nimages; i++) {
        char *copy = ssd_xstrdup(images[i]);
        char *base = basename(copy), path[4200];
        char *dot = strrchr(base, '.');
        if (dot && dot != base) *dot = '\0';
        snprintf(path, sizeof path, "%s/%s.jpg", out, base);
        free(copy);
        int n = 0;
        ssd_error e;
        if (ssd_detect_file(d, images[i], path, stdout, &n, &e) != SSD_OK) {
            fprintf(stderr, "ssd detect: %s\n", e.msg); /* go on with the others */
            failed++;
            continue;
        }
        fprintf(stderr, "ssd detect: %s: %d detections drawn -> %s\n", images[i], n, path);
    }
    if (failed) {
        ssd_fail(&err, SSD_ERR_IO, "%d of %d pictures failed", failed, nimages);
        goto done;
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "ssd detect: %s\n", err.msg);
    ssd_detector_destroy(d);
    ssd_inference_close(r);
    free(optv);
    free(images);
    return rc;
}
