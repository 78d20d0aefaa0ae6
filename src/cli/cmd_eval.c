/* `ssd eval`: COCO evaluation of a checkpoint on a dataset's validation split (spec 8): the 12
 * COCOeval stats and the detections as a COCO results json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/strbuf.h"
#include "data/coco_json.h"
#include "eval/coco.h"
#include "train/detect.h"
#include "train/evaluate.h"

int ssd_cmd_eval(int argc, char **argv) {
    const char *ckpt = NULL, *data = NULL, *out = NULL, *backend = ssd_backend_default_name();
    const char *cache_dir = NULL;
    long batch = 32, workers = 4;
    double nms = 0.05;
    bool json = false, per_image_fallback = false;
    const ssd_opt opts[] = {
        {"--checkpoint", SSD_OPT_STR, &ckpt, true, 1, 0, "C.safetensors",
         "training checkpoint (or any safetensors with the model's torch names)"},
        {"--data", SSD_OPT_STR, &data, true, 1, 0, "DIR",
         "COCO root; evaluates val2017 against annotations/instances_val2017.json"},
        {"--out", SSD_OPT_STR, &out, false, 1, 0, "DETS.json",
         "detections as COCO results (default: C.safetensors -> C.detections.json)"},
        {"--backend", SSD_OPT_STR, &backend, false, 1, 0, "NAME", "compute backend"},
        {"--val-batch-size", SSD_OPT_INT, &batch, false, 1, 4096, "N", "images per forward"},
        {"--num-workers", SSD_OPT_INT, &workers, false, 0, 256, "K", "data loader threads"},
        {"--nms-valid-thresh", SSD_OPT_DOUBLE, &nms, false, 0, 1, "P", "score threshold"},
        {"--per-image-fallback", SSD_OPT_FLAG, &per_image_fallback, false, 1, 0, NULL,
         "keep the other images of a batch in which one image has no candidate (the reference "
         "drops the whole batch)"},
        {"--cache-dir", SSD_OPT_STR, &cache_dir, false, 1, 0, "DIR", "annotation index cache"},
        {"--json", SSD_OPT_FLAG, &json, false, 1, 0, NULL,
         "print the stats as one JSON object instead of the summary text"},
    };
    int nopts = (int)(sizeof opts / sizeof opts[0]);
    const char *summary = "COCO bbox evaluation of a checkpoint on DIR/val2017, as the training run "
                          "evaluates:\nvalidation transform, running BN statistics, the "
                          "reference's NMS, pycocotools-exact COCOeval.";
    int early = ssd_opts_cli("eval", summary, opts, nopts, argc, argv);
    if (early >= 0) return early;
    ssd_error err;
    ssd_error_clear(&err);
    int rc = 1;
    char ann[4096], dir[4096], dets[4200];
    ssd_runner *r = NULL;
    ssd_coco_index *idx = NULL;
    ssd_coco_gt gt;
    bool have_gt = false;
    if (ssd_coco_split_paths(data, "val", ann, sizeof ann, dir, sizeof dir)) {
        ssd_fail(&err, SSD_ERR_ARG, "--data %s: path too long", data);
        goto done;
    }
    if (!out) {
        size_t n = strlen(ckpt);
        const char *ext = ".safetensors";
        size_t e = strlen(ext);
        int base = n > e && strcmp(ckpt + n - e, ext) == 0 ? (int)(n - e) : (int)n;
        snprintf(dets, sizeof dets, "%.*s.detections.json", base, ckpt);
        out = dets;
    }
    if (ssd_inference_open(backend, ckpt, &r, &err) != SSD_OK) goto done;
    if (ssd_coco_index_load(ann, cache_dir, &idx, NULL, &err) != SSD_OK) goto done;
    if (ssd_coco_gt_load(ann, &gt, &err) != SSD_OK) goto done;
    have_gt = true;
    ssd_eval_cfg ec = {.index = idx, .image_dir = dir, .gt = &gt, .batch_size = (int)batch,
                       .num_workers = (int)workers, .post = ssd_post_cfg_default(),
                       .dets_path = out, .log_interval = 0, .progress = NULL};
    ec.post.score_thresh = (float)nms;
    ec.post.drop_batch_on_empty = !per_image_fallback;
    ssd_eval_result res;
    if (ssd_evaluate(r, &ec, &res, &err) != SSD_OK) goto done;
    if (json) {
        ssd_strbuf b = {0};
        ssd_sb_puts(&b, "{\"stats\":");
        ssd_sb_json_doubles(&b, res.stats, SSD_COCO_NSTATS);
        ssd_sb_printf(&b, ",\"images\":%lld,\"detections\":%lld,\"dropped_batches\":%d,"
                      "\"seconds\":%.3f,\"detections_file\":",
                      (long long)res.images, (long long)res.detections, res.dropped_batches,
                      res.seconds);
        ssd_sb_json_str(&b, out);
        ssd_sb_puts(&b, "}\n");
        fputs(b.s, stdout);
        ssd_sb_free(&b);
    } else {
        ssd_cocoeval_print(stdout, res.stats);
        printf("ssd eval: %lld images, %lld detections (%d batches dropped by the reference's "
               "empty-image rule), %.1f s; detections in %s\n",
               (long long)res.images, (long long)res.detections, res.dropped_batches, res.seconds,
               out);
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "ssd eval: %s\n", err.msg);
    ssd_inference_close(r);
    ssd_coco_index_free(idx);
    if (have_gt) ssd_coco_gt_free(&gt);
    return rc;
}
