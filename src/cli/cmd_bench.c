/* `ssd bench --what eval`: COCO evaluation throughput on a synthetic COCO-sized set (default 5,000
 * images, 80 categories, 100 detections per image), ours at each thread count and pycocotools on
 * the same files in the same run, as one JSON object. Timing only: nothing here decides a test.
 * --what loader is in bench_loader.c, --what train in bench_train.c. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/bench.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "core/mem.h"
#include "core/rng.h"
#include "core/strbuf.h"
#include "core/timer.h"
#include "eval/coco.h"
#include "eval/cocoeval.h"
#include "eval/postprocess.h"

#ifndef SSD_SOURCE_DIR
#define SSD_SOURCE_DIR "."
#endif


/* A box of random size (side log-uniform in [4, 400] px) inside a 640x480 image. */
static void random_box(ssd_rng *r, double bb[4]) {
    double w = 4 * exp(ssd_rng_uniform_f64(r) * log(100.0));
    double h = w * exp((ssd_rng_uniform_f64(r) - 0.5) * 1.2);
    w = fmin(w, 639), h = fmin(h, 479);
    bb[0] = ssd_rng_uniform_f64(r) * (640 - w);
    bb[1] = ssd_rng_uniform_f64(r) * (480 - h);
    bb[2] = w;
    bb[3] = h;
}

/* The synthetic set: per image 1-15 GT boxes (COCO averages 7.3) with segmentation-like areas
 * (60-95% of the box) and 1% crowd; DPI detections: 1-3 jittered copies of each GT (mostly the
 * right category, higher scores) and random boxes for the rest. Every image draws from its own
 * Philox stream, so the set depends only on the seed. */
static void make_set(const bench_args *a, ssd_coco_gt *gt, ssd_coco_dets *dt) {
    memset(gt, 0, sizeof *gt);
    memset(dt, 0, sizeof *dt);
    gt->n_images = (int)a->images;
    gt->images = ssd_xcalloc((size_t)a->images, sizeof *gt->images);
    gt->n_categories = SSD_NUM_CLASSES - 1;
    gt->category_ids = ssd_xcalloc((size_t)gt->n_categories, sizeof(int64_t));
    for (int k = 0; k < gt->n_categories; k++)
        gt->category_ids[k] = ssd_coco_label_to_category[k + 1];
    size_t cap = (size_t)a->images * 15;
    gt->anns = ssd_xcalloc(cap, sizeof *gt->anns);
    for (long i = 0; i < a->images; i++) {
        ssd_rng r = ssd_rng_stream((uint32_t)a->seed, SSD_RNG_DOMAIN_TEST, 0, 0, (uint64_t)i);
        int64_t img = 1000 + 7 * i;
        gt->images[i] = (ssd_coco_image){img, 640, 480};
        int n_gt = 1 + (int)(ssd_rng_uniform_f64(&r) * 15);
        size_t first = gt->n_anns;
        for (int g = 0; g < n_gt && gt->n_anns < cap; g++) {
            ssd_coco_ann *o = &gt->anns[gt->n_anns];
            o->id = (int64_t)gt->n_anns + 1;
            o->image_id = img;
            o->category_id = gt->category_ids[(int)(ssd_rng_uniform_f64(&r) * 80)];
            random_box(&r, o->bbox);
            o->area = o->bbox[2] * o->bbox[3] * (0.6 + 0.35 * ssd_rng_uniform_f64(&r));
            o->iscrowd = ssd_rng_uniform_f64(&r) < 0.01;
            gt->n_anns++;
        }
        long made = 0;
        for (size_t g = first; g < gt->n_anns && made < a->dets; g++) {
            int copies = 1 + (int)(ssd_rng_uniform_f64(&r) * 3);
            for (int c = 0; c < copies && made < a->dets; c++, made++) {
                const double *b = gt->anns[g].bbox;
                double j = 0.25 * ssd_rng_uniform_f64(&r), bb[4];
                bb[0] = b[0] + (ssd_rng_uniform_f64(&r) - 0.5) * j * b[2];
                bb[1] = b[1] + (ssd_rng_uniform_f64(&r) - 0.5) * j * b[3];
                bb[2] = b[2] * (1 + (ssd_rng_uniform_f64(&r) - 0.5) * j);
                bb[3] = b[3] * (1 + (ssd_rng_uniform_f64(&r) - 0.5) * j);
                int64_t cat = ssd_rng_uniform_f64(&r) < 0.9
                                  ? gt->anns[g].category_id
                                  : gt->category_ids[(int)(ssd_rng_uniform_f64(&r) * 80)];
                ssd_coco_dets_push(dt, img, cat, bb, 0.3 + 0.7 * ssd_rng_uniform_f64(&r));
            }
        }
        for (; made < a->dets; made++) {
            double bb[4];
            random_box(&r, bb);
            int64_t cat = gt->category_ids[(int)(ssd_rng_uniform_f64(&r) * 80)];
            ssd_coco_dets_push(dt, img, cat, bb, 0.05 + 0.6 * ssd_rng_uniform_f64(&r));
        }
    }
}

/* Runs `python script args` (after checking that python can import `probe`) and returns the
 * last line it printed (malloc'd; the partner scripts print one JSON object), or NULL with *why. */
char *ssd_bench_run_python(const char *python, const char *probe, const char *script_args,
                           const char **why) {
    ssd_strbuf cmd = {0};
    ssd_sb_printf(&cmd, "\"%s\" -c \"import %s\" > /dev/null 2>&1", python, probe);
    int probe_rc = system(cmd.s);
    cmd.len = 0;
    ssd_sb_printf(&cmd, "\"%s\" %s", python, script_args);
    FILE *p = NULL;
    if (probe_rc != 0) {
        *why = "the partner python cannot import what it needs (see --help)";
    } else {
        fprintf(stderr, "ssd bench: running %s\n", cmd.s);
        p = popen(cmd.s, "r");
        if (!p) *why = "cannot start python";
    }
    ssd_sb_free(&cmd);
    if (!p) return NULL;
    ssd_strbuf b = {0};
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        ssd_sb_putn(&b, buf, n);
    if (pclose(p) != 0 || !b.s) {
        ssd_sb_free(&b);
        *why = "the python run failed (see stderr)";
        return NULL;
    }
    while (b.len && (b.s[b.len - 1] == '\n' || b.s[b.len - 1] == ' '))
        b.s[--b.len] = 0;
    char *last = strrchr(b.s, '\n');
    char *res = ssd_xstrdup(last ? last + 1 : b.s);
    ssd_sb_free(&b);
    return res;
}

static char *run_pycocotools(const bench_args *a, const char *gtp, const char *dtp,
                             const char **why) {
    ssd_strbuf args = {0};
    ssd_sb_printf(&args, "\"%s/tools/cocoeval_oracle.py\" bench \"%s\" \"%s\"", SSD_SOURCE_DIR,
                  gtp, dtp);
    char *r = ssd_bench_run_python(a->python, "pycocotools.cocoeval", args.s, why);
    ssd_sb_free(&args);
    return r;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static int bench_eval(const bench_args *a) {
    ssd_error err;
    ssd_error_clear(&err);
    char dir[3900], gtp[4096], dtp[4096];
    bool made_dir = false;
    if (a->workdir) {
        snprintf(dir, sizeof dir, "%s", a->workdir);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/ssd-bench-eval-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            fprintf(stderr, "ssd bench: cannot create a directory under %s\n", dir);
            return 1;
        }
        made_dir = true;
    }
    snprintf(gtp, sizeof gtp, "%s/gt.json", dir);
    snprintf(dtp, sizeof dtp, "%s/dt.json", dir);
    int rc = 1;
    ssd_coco_gt gt0, gt = {0};
    ssd_coco_dets dt0, dt = {0};
    ssd_cocoeval_result res = {0};
    char *py = NULL;
    ssd_strbuf out = {0};
    make_set(a, &gt0, &dt0);
    fprintf(stderr, "ssd bench: %d images, %d categories, %zu GT, %zu detections -> %s\n",
            gt0.n_images, gt0.n_categories, gt0.n_anns, dt0.n, dir);
    if (ssd_coco_gt_write(gtp, &gt0, &err) != SSD_OK || ssd_coco_dets_write(dtp, &dt0, &err) != SSD_OK)
        goto cleanup;

    double t0 = ssd_now();
    if (ssd_coco_gt_load(gtp, &gt, &err) != SSD_OK) goto cleanup;
    double t1 = ssd_now();
    if (ssd_coco_dets_load(dtp, &gt, &dt, &err) != SSD_OK) goto cleanup;
    double t2 = ssd_now();
    ssd_sb_printf(&out,
                  "{\"what\":\"eval\",\"images\":%d,\"categories\":%d,\"gt\":%zu,\"detections\":%zu,"
                  "\"cpus\":%ld,\"ours\":{\"load_gt_s\":%.4f,\"load_res_s\":%.4f,\"eval\":[",
                  gt.n_images, gt.n_categories, gt.n_anns, dt.n, sysconf(_SC_NPROCESSORS_ONLN),
                  t1 - t0, t2 - t1);
    /* Each thread count: `repeat` runs, median and best. */
    const char *p = a->threads_list;
    bool first = true;
    while (*p) {
        char *end;
        long th = strtol(p, &end, 10);
        if (end == p || th < 1 || th > 4096) {
            ssd_fail(&err, SSD_ERR_ARG, "--threads-list: bad entry in '%s'", a->threads_list);
            goto cleanup;
        }
        p = *end == ',' ? end + 1 : end;
        double *ts = ssd_xmalloc((size_t)a->repeat * sizeof *ts);
        for (long k = 0; k < a->repeat; k++) {
            ssd_cocoeval_result_free(&res);
            ssd_cocoeval_opts o = {.threads = (int)th};
            double s = ssd_now();
            if (ssd_cocoeval(&gt, &dt, &o, &res, &err) != SSD_OK) {
                free(ts);
                goto cleanup;
            }
            ts[k] = ssd_now() - s;
        }
        qsort(ts, (size_t)a->repeat, sizeof *ts, cmp_double);
        ssd_sb_printf(&out, "%s{\"threads\":%ld,\"eval_s\":%.4f,\"best_s\":%.4f,\"runs\":%ld}",
                      first ? "" : ",", th, ts[a->repeat / 2], ts[0], a->repeat);
        fprintf(stderr, "ssd bench: ours, %ld thread(s): eval %.3f s (median of %ld)\n", th,
                ts[a->repeat / 2], a->repeat);
        free(ts);
        first = false;
    }
    ssd_sb_puts(&out, "],\"stats\":");
    ssd_sb_json_doubles(&out, res.stats, SSD_COCO_NSTATS);
    ssd_sb_puts(&out, "},\"pycocotools\":");
    const char *why = "--no-pycocotools";
    if (!a->no_pycocotools) py = run_pycocotools(a, gtp, dtp, &why);
    if (py) {
        ssd_sb_puts(&out, py);
        /* Same 12 numbers? (A check on the bench itself; the tests are where exactness lives.) */
        cJSON *pj = cJSON_Parse(py);
        const cJSON *ps = pj ? cJSON_GetObjectItem(pj, "stats") : NULL;
        int same = cJSON_GetArraySize(ps) == SSD_COCO_NSTATS;
        for (int s = 0; same && s < SSD_COCO_NSTATS; s++)
            same = cJSON_GetArrayItem(ps, s)->valuedouble == res.stats[s];
        cJSON_Delete(pj);
        ssd_sb_printf(&out, ",\"stats_equal\":%s", same ? "true" : "false");
        fprintf(stderr, "ssd bench: stats %s pycocotools'\n", same ? "equal" : "DIFFER from");
    } else {
        ssd_sb_puts(&out, "null,\"pycocotools_skipped\":");
        ssd_sb_json_str(&out, why);
        fprintf(stderr, "ssd bench: pycocotools skipped: %s\n", why);
    }
    ssd_sb_puts(&out, "}");
    puts(out.s); /* the report is JSON either way; --json is accepted for symmetry */
    rc = fflush(stdout) == 0 ? 0 : 1;

cleanup:
    if (rc) fprintf(stderr, "ssd bench: %s\n", err.msg[0] ? err.msg : "failed");
    if (made_dir && !a->keep) {
        remove(gtp);
        remove(dtp);
        rmdir(dir);
    }
    free(py);
    ssd_sb_free(&out);
    ssd_cocoeval_result_free(&res);
    ssd_coco_dets_free(&dt);
    ssd_coco_gt_free(&gt);
    ssd_coco_dets_free(&dt0);
    ssd_coco_gt_free(&gt0);
    return rc;
}

int ssd_cmd_bench(int argc, char **argv) {
    const char *env_py = getenv("SSD_PYTHON_COCO");
    static char venv_py[4096];
    snprintf(venv_py, sizeof venv_py, "%s/.venv-oracle/bin/python", SSD_SOURCE_DIR);
    bench_args a = {.what = "eval",
                    .python = env_py && *env_py ? env_py
                              : access(venv_py, X_OK) == 0 ? venv_py
                                                            : "python3",
                    .threads_list = "1,2",
                    .images = 5000,
                    .dets = 100,
                    .seed = 1,
                    .repeat = 3,
                    .workers = 1,
                    .batch = 32,
                    .crop_iterations = 1,
                    .dtype = "f32",
                    .backend = "cpu"};
    const char *env_torch = getenv("SSD_PYTHON_TORCH");
    a.torch_python = env_torch && *env_torch ? env_torch : "/usr/bin/python3";
    bool images_given = false, batch_given = false, workers_given = false, winograd = false;
    bool no_winograd = false;
    bool tf32 = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--images") || !strncmp(argv[i], "--images=", 9)) images_given = true;
        if (!strcmp(argv[i], "--batch") || !strncmp(argv[i], "--batch=", 8)) batch_given = true;
        if (!strcmp(argv[i], "--workers") || !strncmp(argv[i], "--workers=", 10))
            workers_given = true;
    }
    const ssd_opt opts[] = {
        {"--what", SSD_OPT_STR, &a.what, false, 1, 0, "WHAT",
         "what to time: eval, loader or train"},
        {"--json", SSD_OPT_FLAG, &a.json, false, 1, 0, NULL, "print the report as one JSON object"},
        {"--images", SSD_OPT_INT, &a.images, false, 1, 1000000, "N",
         "eval: synthetic images (5000); loader: images to time (320)"},
        {"--dets-per-image", SSD_OPT_INT, &a.dets, false, 0, 10000, "D", "detections per image"},
        {"--seed", SSD_OPT_INT, &a.seed, false, 0, 4294967295.0, "S", "synthetic set seed"},
        {"--threads-list", SSD_OPT_STR, &a.threads_list, false, 1, 0, "T1,T2", "thread counts to time"},
        {"--repeat", SSD_OPT_INT, &a.repeat, false, 1, 1000, "R",
         "eval: runs per thread count; train: timed steps (median)"},
        {"--python", SSD_OPT_STR, &a.python, false, 1, 0, "PY",
         "python with pycocotools for the side-by-side run (env SSD_PYTHON_COCO, .venv-oracle)"},
        {"--no-pycocotools", SSD_OPT_FLAG, &a.no_pycocotools, false, 1, 0, NULL,
         "time ours only"},
        {"--workdir", SSD_OPT_STR, &a.workdir, false, 1, 0, "DIR",
         "where gt.json / dt.json go (default: a temporary directory, removed)"},
        {"--keep", SSD_OPT_FLAG, &a.keep, false, 1, 0, NULL, "keep the temporary directory"},
        {"--data", SSD_OPT_STR, &a.data, false, 1, 0, "DIR",
         "loader: COCO-format root (annotations/, train2017/); default ../shared/data/coco_tiny"},
        {"--workers", SSD_OPT_INT, &a.workers, false, 0, 256, "K",
         "loader: worker threads (and the reference's worker processes)"},
        {"--batch", SSD_OPT_INT, &a.batch, false, 1, 4096, "B",
         "loader: batch size (32); train: images per step (8)"},
        {"--dtype", SSD_OPT_STR, &a.dtype, false, 1, 0, "f32|bf16", "train: precision"},
        {"--backend", SSD_OPT_STR, &a.backend, false, 1, 0, "NAME", "train: compute backend"},
        {"--tf32", SSD_OPT_FLAG, &tf32, false, 1, 0, NULL,
         "cuda: convolutions on TF32 tensor cores (PyTorch's default) instead of exact f32"},
        {"--winograd", SSD_OPT_FLAG, &winograd, false, 1, 0, NULL,
         "train, cpu: Winograd for the large 3x3 stride-1 convs (the default on AVX2+FMA)"},
        {"--no-winograd", SSD_OPT_FLAG, &no_winograd, false, 1, 0, NULL,
         "train, cpu: oneDNN's direct kernels for every conv (= SSD_WINOGRAD=0)"},
        {"--num-cropping-iterations", SSD_OPT_INT, &a.crop_iterations, false, 1, 1000, "T",
         "loader: crop tries per drawn mode (reference: 1)"},
        {"--torch-python", SSD_OPT_STR, &a.torch_python, false, 1, 0, "PY",
         "loader, train: python with torch (+ torchvision, PIL) (env SSD_PYTHON_TORCH, "
         "/usr/bin/python3)"},
        {"--no-reference", SSD_OPT_FLAG, &a.no_reference, false, 1, 0, NULL,
         "loader, train: time ours only"},
        {"--pin-threads", SSD_OPT_FLAG, &a.pin_threads, false, 1, 0, NULL,
         "train: our OpenMP threads pinned one per CPU (ssd train --pin-threads)"},
    };
    int nopts = (int)(sizeof opts / sizeof opts[0]);
    const char *summary =
        "Benchmarks (timing only; never a test). --what eval: COCO bbox evaluation of a synthetic\n"
        "set (default 5,000 images x 80 categories, 100 detections per image), ours at each\n"
        "thread count and pycocotools on the same files. --what loader: images/s of the whole\n"
        "training data pipeline with --workers threads, and the torchvision/PIL pipeline with\n"
        "as many DataLoader workers, in the same run. --what train: one SGD step (forward,\n"
        "loss, backward, update) on a real batch, ms per phase, GFLOP/s and fraction of the\n"
        "measured peak, and the same step in our PyTorch reference model in the same run. With\n"
        "--json the last line of stdout is one JSON object.";
    int early = ssd_opts_cli("bench", summary, opts, nopts, argc, argv);
    if (early >= 0) return early;
    if (!strcmp(a.what, "loader")) {
        if (!images_given) a.images = 320;
        return ssd_bench_loader(&a);
    }
    if (winograd && no_winograd) {
        fprintf(stderr, "ssd bench: --winograd and --no-winograd: pick one\n");
        return 2;
    }
    if (winograd) setenv("SSD_WINOGRAD", "1", 1); /* read when the backend is created */
    if (no_winograd) setenv("SSD_WINOGRAD", "0", 1);
    if (tf32) setenv("SSD_CUDA_MATH", "tf32", 1);
    if (!strcmp(a.what, "train")) {
        if (!batch_given) a.batch = 8;
        if (!workers_given) a.workers = 2;
        return ssd_bench_train(&a);
    }
    if (strcmp(a.what, "eval") != 0) {
        fprintf(stderr, "ssd bench: --what '%s': expected eval, loader or train (try 'ssd bench "
                "--help')\n", a.what);
        return 2;
    }
    return bench_eval(&a);
}
