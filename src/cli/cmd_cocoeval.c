/* `ssd cocoeval GT.json DT.json`: COCO bbox evaluation of a results file against a ground truth,
 * equal to pycocotools (eval/cocoeval.h). */
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/strbuf.h"
#include "core/timer.h"
#include "eval/cocoeval.h"

static void cocoeval_json(ssd_strbuf *b, const ssd_cocoeval_result *r) {
    ssd_sb_puts(b, "{\"stats\":");
    ssd_sb_json_doubles(b, r->stats, SSD_COCO_NSTATS);
    ssd_sb_puts(b, ",\"per_category\":{");
    for (int k = 0; k < r->n_categories; k++) {
        ssd_sb_printf(b, "%s\"%lld\":", k ? "," : "", (long long)r->category_ids[k]);
        ssd_sb_json_double(b, r->category_ap[k]);
    }
    ssd_sb_printf(b, "},\"num_images\":%d,\"num_categories\":%d}", r->n_images, r->n_categories);
}

int ssd_cmd_cocoeval(int argc, char **argv) {
    const char *gt_path = NULL, *dt_path = NULL;
    bool json = false, numpy2 = false;
    long threads = 0;
    const ssd_opt opts[] = {
        {"GT.json", SSD_OPT_STR, &gt_path, true, 1, 0, NULL,
         "ground truth in COCO format (instances_val2017.json)"},
        {"DT.json", SSD_OPT_STR, &dt_path, true, 1, 0, NULL,
         "detections: [{image_id, category_id, bbox [x,y,w,h], score}, ...]"},
        {"--json", SSD_OPT_FLAG, &json, false, 1, 0, NULL,
         "print one JSON object {\"stats\": [12 numbers], \"per_category\": {id: AP}, ...}"},
        {"--threads", SSD_OPT_INT, &threads, false, 0, 4096, "K", "threads (0: all cores)"},
        {"--numpy2-sum", SSD_OPT_FLAG, &numpy2, false, 1, 0, NULL,
         "average the final means as numpy >= 2 does (one pairwise pass; default: numpy 1.x)"},
    };
    int nopts = (int)(sizeof opts / sizeof opts[0]);
    const char *summary =
        "COCO bbox evaluation (pycocotools COCOeval 'bbox', default parameters): prints the 12\n"
        "standard stats (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl).";
    int early = ssd_opts_cli("cocoeval", summary, opts, nopts, argc, argv);
    if (early >= 0) return early;
    ssd_error err;
    ssd_error_clear(&err);
    ssd_coco_gt gt;
    ssd_coco_dets dt = {0};
    ssd_cocoeval_result res = {0};
    int rc = 1;
    double t0 = ssd_now();
    if (ssd_coco_gt_load(gt_path, &gt, &err) != SSD_OK) goto fail;
    if (ssd_coco_dets_load(dt_path, &gt, &dt, &err) != SSD_OK) goto fail;
    double t1 = ssd_now();
    ssd_cocoeval_opts o = {.threads = (int)threads, .chunk = numpy2 ? -1 : 0};
    if (ssd_cocoeval(&gt, &dt, &o, &res, &err) != SSD_OK) goto fail;
    double t2 = ssd_now();
    if (json) {
        ssd_strbuf b = {0};
        cocoeval_json(&b, &res);
        puts(b.s);
        ssd_sb_free(&b);
    } else {
        ssd_cocoeval_print(stdout, res.stats);
        fprintf(stderr, "ssd cocoeval: %d images, %d categories, %zu GT, %zu detections; load %.2f s, "
                "eval %.2f s\n",
                res.n_images, res.n_categories, gt.n_anns, dt.n, t1 - t0, t2 - t1);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
    goto done;
fail:
    fprintf(stderr, "ssd cocoeval: %s\n", err.msg);
done:
    ssd_cocoeval_result_free(&res);
    ssd_coco_dets_free(&dt);
    ssd_coco_gt_free(&gt);
    return rc;
}
