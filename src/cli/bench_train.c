/* `ssd bench --what train`: one SGD training step of SSD300-ResNet34 (forward, loss, backward,
 * update) on a real batch, ours and -- in the same invocation, on the same weights, batch and
 * thread count -- our PyTorch reference model (tools/bench_torch_step.py under Debian's
 * python3-torch), so the ratio is measured side by side.
 *
 * The batch comes from the training data pipeline (reference augmentation and encoder) over
 * ../shared/data/coco_tiny, or over a synthesized COCO-format set when that is absent; the
 * pipeline's own cost per batch is timed separately ("data": it overlaps the step in training).
 * Both sides run the same batch --repeat times after one warm-up step and report medians.
 * FLOPs are the convolutions' direct-equivalent count: forward + backward-data + backward-
 * weights over every conv shape (conv1's backward-data excluded), against the measured FMA peak.
 * Timing only: nothing here decides a test. */
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp */
#include <ftw.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "backend/backend.h"
#include "backend/layer_shapes.h"
#ifdef SSD_HAVE_CUDA
#include "backend/cuda/cuda_info.h"
#endif
#include "cli/bench.h"
#include "cli/options.h"
#include "core/peak.h"
#include "core/pin.h"
#include "core/mem.h"
#include "core/strbuf.h"
#include "core/timer.h"
#include "data/coco_json.h"
#include "data/loader.h"
#include "data/synth.h"
#include "io/safetensors.h"
#include "model/ssd_model.h"
#include "train/runner.h"

#ifndef SSD_SOURCE_DIR
#define SSD_SOURCE_DIR "."
#endif

#define IMG_FLOATS ((size_t)3 * SSD_IMAGE_SIZE * SSD_IMAGE_SIZE)

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)flag, (void)f;
    return remove(path);
}

/* Direct-equivalent conv FLOPs of one training image: every shape's forward count, three
 * passes (backward-data and backward-weights do as many multiply-adds), conv1's backward-data
 * left out (the image needs no gradient). */
static double train_flops_per_image(void) {
    double f = 0;
    for (int i = 0; i < ssd_n_conv_shapes; i++) {
        const ssd_conv_shape *s = &ssd_conv_shapes[i];
        int passes = s->c == 3 ? 2 : 3;
        f += ssd_conv_shape_flops(s) * s->count * passes;
    }
    return f;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Writes the model's parameters and BN buffers (torch names, f32) to path. */
static ssd_status write_weights(const ssd_model *m, const char *path, ssd_error *err) {
    int np = 0, nb = 0;
    ssd_tensor *p = ssd_model_export(m, 'p', SSD_F32, NULL, &np);
    ssd_tensor *b = ssd_model_export(m, 'b', SSD_F32, NULL, &nb);
    const ssd_tensor **all = ssd_xmalloc((size_t)(np + nb) * sizeof *all);
    for (int i = 0; i < np; i++) all[i] = &p[i];
    for (int i = 0; i < nb; i++) all[np + i] = &b[i];
    ssd_status st = ssd_st_write(path, all, np + nb, err);
    for (int i = 0; i < np; i++) ssd_tensor_free(&p[i]);
    for (int i = 0; i < nb; i++) ssd_tensor_free(&b[i]);
    free(p);
    free(b);
    free(all);
    return st;
}

/* The batch in the form `ssd step --batch` and bench_torch_step.py take. */
static ssd_status write_batch(int n, float *images, float *bboxes, int64_t *labels,
                              const char *path, ssd_error *err) {
    int64_t si[4] = {n, 3, SSD_IMAGE_SIZE, SSD_IMAGE_SIZE};
    int64_t sb[3] = {n, SSD_NUM_ANCHORS, 4}, sl[2] = {n, SSD_NUM_ANCHORS};
    ssd_tensor t[3] = {ssd_tensor_view(images, SSD_F32, 4, si, "images"),
                       ssd_tensor_view(bboxes, SSD_F32, 3, sb, "bboxes"),
                       ssd_tensor_view(labels, SSD_I64, 2, sl, "labels")};
    const ssd_tensor *all[3] = {&t[0], &t[1], &t[2]};
    return ssd_st_write(path, all, 3, err);
}

static double json_num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* One run of tools/bench_torch_step.py on the benchmark's weights and batch (extra: device and
 * precision flags). Returns its images/s, or -1 with *why set; *line and *json (freed by the
 * caller) hold its JSON line. */
static double run_reference(const bench_args *a, const char *wpath, const char *bpath, int repeat,
                            int threads, const char *extra, char **line, cJSON **json,
                            const char **why) {
    ssd_strbuf args = {0};
    ssd_sb_printf(&args, "\"%s/tools/bench_torch_step.py\" --weights \"%s\" --batch \"%s\" "
                         "--repeat %d --threads %d --json%s",
                  SSD_SOURCE_DIR, wpath, bpath, repeat, threads, extra);
    *line = ssd_bench_run_python(a->torch_python, "torch", args.s, why);
    ssd_sb_free(&args);
    if (*line && !(*json = cJSON_Parse(*line))) *why = "unreadable output from python";
    return *json ? json_num(*json, "images_per_s") : -1;
}

/* A reference's row of the table: its phases, img/s, GFLOP/s and fraction of the peak. */
static void print_reference_row(const char *label, const cJSON *ref, double gflop, double peak) {
    double step = json_num(ref, "step_ms"), g = gflop / (step / 1e3);
    printf("%-12s %10.1f %10.1f %10.1f %10.1f %10.1f %9.2f %9.1f %6.1f%%\n", label,
           json_num(ref, "forward_ms"), json_num(ref, "loss_ms"), json_num(ref, "backward_ms"),
           json_num(ref, "update_ms"), step, json_num(ref, "images_per_s"), g,
           peak > 0 ? 100 * g / peak : 0);
}

/* One SGD step of ours on the batch, in ms per phase. */
typedef struct step_times {
    double fwd, loss, bwd, upd, up, step;
} step_times;

static step_times timed_step(ssd_runner *r, ssd_model *m, ssd_backend *be, int B,
                             const float *images, const float *bboxes, const int64_t *labels) {
    ssd_runner_times t0 = ssd_runner_get_times(r);
    double s0 = ssd_now();
    ssd_runner_train_step(r, B, images, bboxes, labels, NULL);
    double s1 = ssd_now();
    ssd_model_sgd_step(m, 1e-6, 0.9, 5e-4); /* tiny lr: the same batch stays meaningful */
    be->ops->sync(be);
    double s2 = ssd_now();
    ssd_runner_times t1 = ssd_runner_get_times(r);
    return (step_times){.fwd = 1e3 * (t1.forward - t0.forward),
                        .loss = 1e3 * (t1.loss - t0.loss),
                        .bwd = 1e3 * (t1.backward - t0.backward),
                        .upd = 1e3 * (s2 - s1),
                        .up = 1e3 * (t1.upload - t0.upload),
                        .step = 1e3 * (s2 - s0)};
}

int ssd_bench_train(const bench_args *a) {
    ssd_error err;
    ssd_error_clear(&err);
    int rc = 1;
    const bool bf16 = !strcmp(a->dtype, "bf16");
    if (!bf16 && strcmp(a->dtype, "f32")) {
        fprintf(stderr, "ssd bench: --dtype '%s': expected f32 or bf16\n", a->dtype);
        return 2;
    }
    const bool gpu = !strcmp(a->backend, "cuda");
    const char *math_env = getenv("SSD_CUDA_MATH");
    const bool tf32 = gpu && math_env && !strcmp(math_env, "tf32");
    const char *gpu_math = bf16 ? "bf16" : tf32 ? "tf32" : "f32";
    if (bf16 && gpu && tf32) {
        fprintf(stderr, "ssd bench: --dtype bf16 and --tf32 choose two precisions for the "
                        "convolutions: pick one\n");
        return 2;
    }
    if (bf16) { /* sets the backend's math (read when it starts); cpu: says native or emulated */
        const char *why_bf16 = ssd_cli_autocast("ssd bench", a->backend);
        if (why_bf16) {
            fprintf(stderr, "ssd bench: --dtype bf16: %s\n", why_bf16);
            return 2;
        }
        if (!gpu)
            fprintf(stderr, "ssd bench: --dtype bf16: the convolutions run oneDNN's direct "
                            "kernels (our Winograd is f32 only)\n");
    }
    char dir[4000], data[4096], ann[4200], imgs[4200], wpath[4200], bpath[4200];
    const char *tmp = a->workdir ? a->workdir : getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/ssd-bench-train-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "ssd bench: cannot create %s\n", dir);
        return 1;
    }
    snprintf(wpath, sizeof wpath, "%s/weights.safetensors", dir);
    snprintf(bpath, sizeof bpath, "%s/batch.safetensors", dir);
    ssd_coco_index *idx = NULL;
    ssd_loader *ld = NULL;
    ssd_backend *be = NULL;
    ssd_model *m = NULL;
    ssd_runner *r = NULL;
    cJSON *ref = NULL, *ref2 = NULL;
    char *ref_line = NULL, *ref2_line = NULL;
    float *images = NULL, *bboxes = NULL;
    int64_t *labels = NULL;
    double *t_fwd = NULL, *t_loss = NULL, *t_bwd = NULL, *t_upd = NULL, *t_step = NULL;
    double *t_up = NULL;
    bool pinned = false; /* images, bboxes, labels: pinned (backend) or malloc */
    if (a->data) {
        snprintf(data, sizeof data, "%s", a->data);
    } else {
        snprintf(data, sizeof data, "%s/../shared/data/coco_tiny", SSD_SOURCE_DIR);
        struct stat st;
        if (stat(data, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(data, sizeof data, "%s/synth", dir);
            int n_synth = a->batch + 16 > 64 ? (int)a->batch + 16 : 64;
            fprintf(stderr, "ssd bench: ../shared/data/coco_tiny is absent: synthesizing %d "
                            "images into %s\n", n_synth, data);
            ssd_synth_cfg sc = {.out_dir = data, .n_train = n_synth, .n_val = 8, .seed = 1};
            if (ssd_synth_write(&sc, &err) != SSD_OK) goto cleanup;
        }
    }
    if (ssd_coco_split_paths(data, "train", ann, sizeof ann, imgs, sizeof imgs) != 0) {
        ssd_fail(&err, SSD_ERR_ARG, "--data: path too long");
        goto cleanup;
    }
    if (ssd_coco_index_load(ann, NULL, &idx, NULL, &err) != SSD_OK) goto cleanup;
    const int B = (int)a->batch, R = (int)a->repeat;
    ssd_cpus pin_cpus; /* --pin-threads: ours pinned; the loader's workers and the reference
                          (a child of the main thread) get all of these CPUs */
    bool pin_done = false;
    if (a->pin_threads) {
        char msg[400];
        int pr = ssd_pin_rank(0, 1, &pin_cpus, msg, sizeof msg);
        pin_done = pr == 0;
        if (pr < 0) {
            ssd_fail(&err, SSD_ERR_ARG, "--pin-threads: %s", msg);
            goto cleanup;
        }
        fprintf(stderr, "ssd bench: %s%s\n", pr ? "--pin-threads does nothing: " : "", msg);
    }
    ssd_loader_cfg lc;
    ssd_loader_cfg_default(&lc);
    lc.worker_cpus = pin_done ? &pin_cpus : NULL;
    lc.index = idx;
    lc.image_dir = imgs;
    lc.batch_size = B;
    lc.num_workers = (int)a->workers;
    lc.seed = (uint32_t)a->seed;
    /* the pipeline's cost: batches per second from a cold start, the first full batch (to
     * train on) and R more; the workers build ahead, so this is its throughput */
    double td = ssd_now();
    if (ssd_loader_create(&lc, &ld, &err) != SSD_OK) goto cleanup;
    const ssd_batch *bt = ssd_loader_next(ld);
    int got = 1;
    while (bt && bt->n < B) {
        bt = ssd_loader_next(ld); /* a full batch to train on */
        got++;
    }
    if (!bt) {
        ssd_fail(&err, SSD_ERR_IO, "%s: no batch of %d images (%s)", data, B,
                 ssd_loader_error(ld) ? ssd_loader_error(ld) : "too few images");
        goto cleanup;
    }
    images = ssd_xmalloc((size_t)B * IMG_FLOATS * sizeof *images);
    bboxes = ssd_xmalloc((size_t)B * SSD_NUM_ANCHORS * 4 * sizeof *bboxes);
    labels = ssd_xmalloc((size_t)B * SSD_NUM_ANCHORS * sizeof *labels);
    memcpy(images, bt->images, (size_t)B * IMG_FLOATS * sizeof *images);
    memcpy(bboxes, bt->bboxes, (size_t)B * SSD_NUM_ANCHORS * 4 * sizeof *bboxes);
    memcpy(labels, bt->labels, (size_t)B * SSD_NUM_ANCHORS * sizeof *labels);
    for (int k = 0; k < R && (bt = ssd_loader_next(ld)) != NULL; k++) got++;
    double data_ms = 1e3 * (ssd_now() - td) / got;
    ssd_loader_destroy(ld);
    ld = NULL;
    if (write_batch(B, images, bboxes, labels, bpath, &err) != SSD_OK) goto cleanup;

    if (ssd_backend_create(a->backend, &be, &err) != SSD_OK) goto cleanup;
    {
        /* the batch in the backend's pinned memory, as the trainer's loader holds it */
        size_t bi = (size_t)B * IMG_FLOATS * sizeof *images;
        size_t bb = (size_t)B * SSD_NUM_ANCHORS * 4 * sizeof *bboxes;
        size_t bl = (size_t)B * SSD_NUM_ANCHORS * sizeof *labels;
        float *pi = ssd_backend_pinned_alloc(be, bi), *pb = ssd_backend_pinned_alloc(be, bb);
        int64_t *pl = ssd_backend_pinned_alloc(be, bl);
        memcpy(pi, images, bi);
        memcpy(pb, bboxes, bb);
        memcpy(pl, labels, bl);
        free(images);
        free(bboxes);
        free(labels);
        images = pi;
        bboxes = pb;
        labels = pl;
        pinned = true;
    }
    m = ssd_model_create(be, SSD_F32, (uint32_t)a->seed);
    r = ssd_runner_create(m);
    if (write_weights(m, wpath, &err) != SSD_OK) goto cleanup;
    const int threads = omp_get_max_threads();
    fprintf(stderr, "ssd bench: train step, backend %s %s, batch %d, %d threads, %d timed steps "
                    "after 1 warm-up, data from %s\n", be->name, gpu_math, B,
            threads, R, data);
    t_fwd = ssd_xcalloc((size_t)R, sizeof *t_fwd);
    t_loss = ssd_xcalloc((size_t)R, sizeof *t_loss);
    t_bwd = ssd_xcalloc((size_t)R, sizeof *t_bwd);
    t_upd = ssd_xcalloc((size_t)R, sizeof *t_upd);
    t_step = ssd_xcalloc((size_t)R, sizeof *t_step);
    t_up = ssd_xcalloc((size_t)R, sizeof *t_up);
    uint64_t reorders0 = 0, wreorders0 = 0, allocs0 = 0;
    for (int k = -1; k < R; k++) {
        if (k == 0) {
            reorders0 = be->stats.reorders;
            wreorders0 = be->stats.weight_reorders;
            allocs0 = be->stats.prims_created;
#ifdef SSD_HAVE_CUDA
            ssd_cuda_profile_reset(be);
#endif
        }
        step_times st = timed_step(r, m, be, B, images, bboxes, labels);
        if (k < 0) continue;
        t_fwd[k] = st.fwd;
        t_loss[k] = st.loss;
        t_bwd[k] = st.bwd;
        t_upd[k] = st.upd;
        t_up[k] = st.up;
        t_step[k] = st.step;
    }
#ifdef SSD_HAVE_CUDA
    ssd_cuda_profile_report(be, stderr, R);
#endif
    double fwd = median(t_fwd, R), lss = median(t_loss, R), bwd = median(t_bwd, R);
    double upd = median(t_upd, R), step = median(t_step, R), up = median(t_up, R);
    double ips = B / (step / 1e3);
    /* layout conversions per timed step, and whether a timed step still created primitives */
    const double reorders_per_step = (double)(be->stats.reorders - reorders0) / R;
    const double wreorders_per_step = (double)(be->stats.weight_reorders - wreorders0) / R;
    const uint64_t prims_in_steps = be->stats.prims_created - allocs0;
    double gflop = train_flops_per_image() * B / 1e9;
    /* the peak of what ran: the CPU's measured FMA peak, or the GPU's peak for the math the
     * convolutions ran in (f32 FMA, TF32 or bf16 tensor cores) */
    char gpu_name[256] = "";
    double gpu_peak = 0;
#ifdef SSD_HAVE_CUDA
    ssd_cuda_info gi;
    if (ssd_cuda_describe(be, &gi)) {
        snprintf(gpu_name, sizeof gpu_name, "%s", gi.name);
        gpu_peak = bf16 ? gi.bf16_peak : tf32 ? gi.tf32_peak : gi.f32_peak;
    }
#endif
    peak_result pk = {0};
    if (gpu) {
        pk.gflops = gpu_peak;
        pk.isa = gpu_name;
    } else {
        pk = peak_measure(0.3);
    }
    double gflops = gflop / (step / 1e3);

    /* the PyTorch reference on the same weights and batch */
    /* on a GPU: PyTorch AMP (bf16 autocast, channels_last), the configuration MLPerf
     * submissions run, and PyTorch in plain f32 (TF32 off), the same arithmetic as ours; on
     * the CPU with --dtype bf16: PyTorch's CPU autocast (bf16), and PyTorch f32 beside it; with
     * --dtype f32: PyTorch f32, and beside it PyTorch's autocast where the CPU runs bf16
     * natively (avx512_bf16), so that our f32 step meets PyTorch's bf16 step in one run */
    const bool ref2_bf16 = !gpu && !bf16 && __builtin_cpu_supports("avx512bf16");
    const bool want_ref2 = gpu || bf16 || ref2_bf16;
    const char *ref2_kind = ref2_bf16 ? "bf16" : "f32";
    double ref_ips = -1, ref2_ips = -1;
    const char *why = NULL, *why2 = NULL;
    if (pin_done) ssd_bind_thread(&pin_cpus); /* the main thread: all of them again */
    if (!a->no_reference) {
        ref_ips = run_reference(a, wpath, bpath, R, threads,
                                gpu ? " --device cuda --autocast --channels-last"
                                    : bf16 ? " --autocast" : "",
                                &ref_line, &ref, &why);
        if (want_ref2)
            ref2_ips = run_reference(a, wpath, bpath, R, threads,
                                     gpu ? " --device cuda --no-tf32" : ref2_bf16 ? " --autocast" : "",
                                     &ref2_line, &ref2, &why2);
    }
    /* ours again after PyTorch: the two bracket the reference in time, so a machine whose
     * speed drifts (a shared VM) shows it, and the bracketed ratio compares PyTorch with the
     * mean of ours before and after it */
    double step_after = -1;
    if (ref) {
        char why_pin[200];
        if (pin_done && ssd_pin_omp(&pin_cpus, threads, why_pin, sizeof why_pin) != 0)
            fprintf(stderr, "ssd bench: --pin-threads: %s\n", why_pin);
        for (int k = 0; k < R; k++)
            t_step[k] = timed_step(r, m, be, B, images, bboxes, labels).step;
        step_after = median(t_step, R);
    }
    const double ips_after = step_after > 0 ? B / (step_after / 1e3) : -1;
    const double ips_bracket = step_after > 0 ? B / ((step + step_after) / 2e3) : -1;
    double peak = pk.gflops;
    if (gpu)
        printf("SSD300-ResNet34 training step, batch %d, %s on %s; %.1f GFLOP per step "
               "(conv, direct-equivalent); %s peak %.1f GFLOP/s\n",
               B, bf16 ? "bf16 convolutions (NHWC), the rest f32"
                       : tf32 ? "f32 with TF32 convolutions" : "f32",
               pk.isa, gflop, bf16 ? "bf16 tensor-core" : tf32 ? "TF32 tensor-core" : "f32 FMA",
               peak);
    else
        printf("SSD300-ResNet34 training step, batch %d, %s, %d threads; %.1f GFLOP per step "
               "(conv, direct-equivalent); f32 FMA peak %.1f GFLOP/s (%s)\n",
               B, !bf16 ? (be->act_custom ? "f32, activations in nChw16c" : "f32, activations NCHW")
                  : be->act_custom
                      ? "bf16 convolutions (oneDNN's bf16 kernels) and bf16 NHWC activations; "
                        "%peak against the f32 peak"
                  : be->conv_math && !strcmp(be->conv_math, "bf16-native")
                      ? "bf16 convolutions (oneDNN's bf16 kernels), the rest f32; %peak against the "
                        "f32 peak"
                      : "bf16 convolutions (rounded operands and results, f32 kernels), the rest f32",
               threads, gflop, peak, pk.isa);
    printf("%-12s %10s %10s %10s %10s %10s %9s %9s %7s\n", "", "forward", "loss", "backward",
           "update", "step", "img/s", "GFLOP/s", "%peak");
    printf("%-12s %10.1f %10.1f %10.1f %10.1f %10.1f %9.2f %9.1f %6.1f%%\n", "ours", fwd, lss,
           bwd, upd, step, ips, gflops, peak > 0 ? 100 * gflops / peak : 0);
    if (ref) {
        print_reference_row(gpu ? "pytorch AMP" : bf16 ? "pytorch bf16" : "pytorch", ref, gflop,
                            peak);
        if (ref2) print_reference_row(ref2_bf16 ? "pytorch bf16" : "pytorch f32", ref2, gflop, peak);
        printf("ours / pytorch%s: %.2fx images/s\n",
               gpu ? " AMP bf16" : bf16 ? " autocast bf16" : "", ips / ref_ips);
        if (ref2)
            printf("ours / pytorch %s: %.2fx images/s\n",
                   ref2_bf16 ? "autocast bf16" : "f32", ips / ref2_ips);
        printf("ours again after pytorch: %.1f ms per step, %.2f img/s (before: %.2f); ours, the "
               "mean of both, / pytorch%s: %.2fx\n", step_after, ips_after, ips,
               gpu ? " AMP bf16" : bf16 ? " autocast bf16" : "", ips_bracket / ref_ips);
    } else if (!a->no_reference) {
        printf("pytorch: skipped (%s)\n", why ? why : "?");
    }
    printf("image upload: %.1f ms per batch (part of forward)\n", up);
    printf("layout reorders: %.0f per step (%.0f of activations and their gradients, %.0f of "
           "weights, biases and weight gradients); primitives created during the timed steps: "
           "%llu\n", reorders_per_step, reorders_per_step - wreorders_per_step,
           wreorders_per_step, (unsigned long long)prims_in_steps);
    printf("data pipeline: %.1f ms per batch of %d with %ld worker(s), from a cold start (runs "
           "beside the step in training)\n", data_ms, B, a->workers);
    if (a->json) {
        ssd_strbuf j = {0};
        ssd_sb_printf(&j,
                      "{\"what\":\"train\",\"backend\":\"%s\",\"dtype\":\"%s\",\"batch\":%d,"
                      "\"threads\":%d,\"repeat\":%d,\"images_per_s\":%.4f,\"step_ms\":%.3f,"
                      "\"forward_ms\":%.3f,\"loss_ms\":%.3f,\"backward_ms\":%.3f,"
                      "\"update_ms\":%.3f,\"upload_ms\":%.3f,\"data_ms\":%.3f,\"gflop_per_step\":%.3f,"
                      "\"gflops\":%.3f,\"peak_gflops\":%.3f,\"fraction_of_peak\":%.4f,"
                      "\"reorders_per_step\":%.1f,\"weight_reorders_per_step\":%.1f,"
                      "\"prims_created_in_steps\":%llu,",
                      be->name, a->dtype, B, threads, R, ips, step, fwd, lss, bwd, upd, up, data_ms, gflop,
                      gflops, peak, peak > 0 ? gflops / peak : 0, reorders_per_step, wreorders_per_step,
                      (unsigned long long)prims_in_steps);
        if (gpu) ssd_sb_printf(&j, "\"gpu\":\"%s\",", gpu_name);
        ssd_sb_printf(&j, "\"conv_math\":\"%s\",",
                      gpu ? gpu_math : be->conv_math ? be->conv_math : "f32");
        if (ref2)
            ssd_sb_printf(&j, "\"reference_%s_images_per_s\":%.4f,\"reference_%s\":%s,",
                          ref2_kind, ref2_ips, ref2_kind, ref2_line);
        else if (want_ref2 && !a->no_reference)
            ssd_sb_printf(&j, "\"reference_%s_skipped\":\"%s\",", ref2_kind, why2 ? why2 : "?");
        if (ref)
            ssd_sb_printf(&j,
                          "\"step_ms_after\":%.3f,\"images_per_s_after\":%.4f,"
                          "\"reference_images_per_s\":%.4f,\"reference\":%s,\"ratio\":%.4f,"
                          "\"ratio_bracketed\":%.4f}",
                          step_after, ips_after, ref_ips, ref_line, ips / ref_ips,
                          ips_bracket / ref_ips);
        else
            ssd_sb_printf(&j, "\"reference_images_per_s\":null,\"reference_skipped\":\"%s\"}",
                          a->no_reference ? "--no-reference" : why ? why : "?");
        printf("%s\n", j.s);
        ssd_sb_free(&j);
    }
    rc = 0;
cleanup:
    if (rc && err.msg[0]) fprintf(stderr, "ssd bench: %s\n", err.msg);
    cJSON_Delete(ref);
    free(ref_line);
    cJSON_Delete(ref2);
    free(ref2_line);
    if (pinned) {
        ssd_backend_pinned_free(be, images);
        ssd_backend_pinned_free(be, bboxes);
        ssd_backend_pinned_free(be, labels);
    } else {
        free(images);
        free(bboxes);
        free(labels);
    }
    free(t_fwd);
    free(t_loss);
    free(t_bwd);
    free(t_upd);
    free(t_step);
    free(t_up);
    ssd_runner_destroy(r);
    ssd_model_destroy(m);
    ssd_backend_destroy(be);
    ssd_loader_destroy(ld);
    ssd_coco_index_free(idx);
    if (!a->keep) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return rc;
}
