/* `ssd train`: the MLPerf SSD-ResNet34 training run (spec sections 7-10), with the reference's
 * flags and defaults, the Habana superset, and a built-in demo when no --data is given. One
 * option table gives --help, the validation and the start-up summary. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/demo.h"
#include "cli/options.h"
#include "core/pin.h"
#include "core/log.h"
#include "dist/dist.h"
#include "train/schedule.h"
#include "train/trainer.h"

/* Habana's device-specific flags: accepted, ignored, named in one notice. value: takes a value. */
static const struct {
    const char *name;
    int value;
} habana_flags[] = {
    {"--use-hpu", 0},          {"--dl-worker-type", 1},  {"--disable-distributed-validation", 0},
    {"--hpu-lazy-mode", 0},    {"--use-torch-compile", 0}, {"--no-cuda", 0},
    {"--local_rank", 1},       {"--hpu-channels-last", 0}, {"--lowp", 0},
    {"--BF16", 0},             {"--use-habana-dl", 0},   {"--hmp", 0},
    {"--hmp-bf16", 1},         {"--hmp-fp32", 1},        {"--hmp-opt-level", 1},
    {"--hmp-verbose", 0},
};

/* The reference's short spellings. */
static const char *const aliases[][2] = {
    {"-d", "--data"}, {"-e", "--epochs"}, {"-b", "--batch-size"}, {"-s", "--seed"},
    {"-t", "--threshold"}, {"--det", "--deterministic"},
};

/* Rewrites aliases and removes the Habana flags (and their values) from argv in place;
 * returns the new argc and lists the ignored flags in `ignored`. */
static int filter_args(int argc, char **argv, char *ignored, size_t len) {
    int out = 0;
    ignored[0] = '\0';
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        for (size_t k = 0; k < sizeof aliases / sizeof aliases[0]; k++)
            if (strcmp(a, aliases[k][0]) == 0) a = (char *)aliases[k][1];
        int drop = -1;
        for (size_t k = 0; k < sizeof habana_flags / sizeof habana_flags[0]; k++) {
            size_t n = strlen(habana_flags[k].name);
            if (strncmp(a, habana_flags[k].name, n) == 0 && (a[n] == '\0' || a[n] == '='))
                drop = habana_flags[k].value && a[n] == '\0' ? 1 : 0;
        }
        if (drop < 0) {
            argv[out++] = a;
            continue;
        }
        size_t used = strlen(ignored);
        snprintf(ignored + used, len - used, "%s%s", used ? " " : "", a);
        if (drop && i + 1 < argc) i++; /* its value */
    }
    return out;
}

static bool closed_boundaries(const int *d, int n) {
    if (n != 2 || d[0] < 40 || (d[0] - 40) % 4) return false;
    int k = (d[0] - 40) / 4;
    return d[1] == 50 + 5 * k;
}

static uint32_t random_seed(void) {
    uint32_t s = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &s, sizeof s) != (ssize_t)sizeof s) s = 0;
        close(fd);
    }
    if (!s) s = (uint32_t)getpid() * 2654435761u;
    return s;
}

/* OpenMP threads of one rank when OMP_NUM_THREADS does not say: the CPUs the launcher bound
 * this process to, or, unbound, this machine's CPUs shared among its ranks. */
static int rank_threads(const ssd_dist *d) {
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    int mine = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)online;
    if (mine < online) return mine > 0 ? mine : 1;
    int t = (int)(online / ssd_dist_local_size(d));
    return t > 0 ? t : 1;
}

/* A failure of one rank of several ends the whole job (no rank waits for it). */
static int fail(ssd_dist *d, const char *msg) {
    if (ssd_dist_world(d) > 1) {
        fprintf(stderr, "ssd train: rank %d of %d failed: %s\n", ssd_dist_rank(d),
                ssd_dist_world(d), msg);
        ssd_dist_abort(d, 1);
    }
    fprintf(stderr, "ssd train: %s\n", msg);
    ssd_dist_finalize(d);
    return 1;
}

int ssd_cmd_train(int argc, char **argv) {
    char ignored[512];
    argc = filter_args(argc, argv, ignored, sizeof ignored);
    const char *data = NULL, *output = NULL, *backend = ssd_backend_default_name();
    const char *checkpoint = NULL, *pretrained = NULL, *decay = "40,50", *val_epochs = "";
    const char *evaluation = NULL, *division = "auto", *org = "ssd-c";
    const char *platform = NULL, *status = "research", *augment = "reference";
    const char *cache_dir = NULL;
    long epochs = 800, batch = 32, val_batch = 0, warmup_factor = 0, seed = -1, iteration = 0;
    long end_iteration = 0, val_interval = 5, log_interval = 100, workers = 4, crop_iters = 1;
    long batch_splits = 1;
    double lr = SSD_LR_FLAG_DEFAULT, momentum = 0.9, wd = 5e-4, warmup = 0, threshold = 0.23;
    double nms = 0.05;
    bool no_save = false, autocast = false, deterministic = false, no_progress = false;
    bool winograd = false, no_winograd = false, tf32 = false, pin = false;
    const ssd_opt opts[] = {
        {"--data", SSD_OPT_STR, &data, false, 1, 0, "DIR",
         "COCO root: train2017/, val2017/, annotations/ (-d; none: the built-in demo)"},
        {"--output", SSD_OPT_STR, &output, false, 1, 0, "DIR",
         "run directory: mllog.txt, curves.jsonl/.svg, checkpoints, detections "
         "(default ssd-run, demo ssd-demo)"},
        {"--epochs", SSD_OPT_INT, &epochs, false, 1, 1e6, "N", "maximum epochs (-e)"},
        {"--batch-size", SSD_OPT_INT, &batch, false, 1, 4096, "N", "training batch (-b)"},
        {"--val-batch-size", SSD_OPT_INT, &val_batch, false, 0, 4096, "N",
         "evaluation batch (0: --batch-size)"},
        {"--lr", SSD_OPT_DOUBLE, &lr, false, 1e-12, 100, "LR",
         "learning rate per 32 images (scaled by batch/32)"},
        {"--momentum", SSD_OPT_DOUBLE, &momentum, false, 0, 1, "M", "SGD momentum"},
        {"--weight-decay", SSD_OPT_DOUBLE, &wd, false, 0, 1, "WD",
         "weight decay on every parameter"},
        {"--warmup", SSD_OPT_DOUBLE, &warmup, false, 0, 1e6, "EPOCHS",
         "linear warmup length in epochs (0: none)"},
        {"--warmup-factor", SSD_OPT_INT, &warmup_factor, false, 0, 30, "WF",
         "MLPerf warmup curve parameter"},
        {"--lr-decay-schedule", SSD_OPT_STR, &decay, false, 1, 0, "E1,E2",
         "0-based epochs at which lr *= 0.1 (\"none\": never)"},
        {"--seed", SSD_OPT_INT, &seed, false, -1, 4294967295.0, "S",
         "seed of init, data order and augmentation (-s; -1: random, demo: 1)"},
        {"--threshold", SSD_OPT_DOUBLE, &threshold, false, 0, 1, "MAP",
         "stop at the first evaluation with mAP >= this (-t)"},
        {"--iteration", SSD_OPT_INT, &iteration, false, 0, 1e15, "IT",
         "starting value of the step counter (drives the warmup)"},
        {"--end-iteration", SSD_OPT_INT, &end_iteration, false, 0, 1e15, "IT",
         "stop (with a checkpoint) when the step counter reaches IT (0: never)"},
        {"--checkpoint", SSD_OPT_STR, &checkpoint, false, 1, 0, "C.safetensors",
         "resume from a checkpoint of this trainer (same flags)"},
        {"--no-save", SSD_OPT_FLAG, &no_save, false, 1, 0, NULL, "write no checkpoints"},
        {"--val-interval", SSD_OPT_INT, &val_interval, false, 0, 1e6, "K",
         "evaluate after every K-th epoch (0: only --val-epochs)"},
        {"--val-epochs", SSD_OPT_STR, &val_epochs, false, 1, 0, "E,...",
         "also evaluate after these 1-based epochs"},
        {"--evaluation", SSD_OPT_STR, &evaluation, false, 1, 0, "E,...",
         "MLPerf 0.7 spelling of --val-epochs (replaces it)"},
        {"--log-interval", SSD_OPT_INT, &log_interval, false, 1, 1e9, "N",
         "progress line every N steps when not on a terminal"},
        {"--num-workers", SSD_OPT_INT, &workers, false, 0, 256, "K", "data loader threads"},
        {"--pretrained-backbone", SSD_OPT_STR, &pretrained, false, 1, 0, "R34.pth",
         "torchvision ResNet-34 weights (tools/download_resnet34_backbone.sh); none: random "
         "init"},
        {"--num-cropping-iterations", SSD_OPT_INT, &crop_iters, false, 1, 1000, "N",
         "crop tries per drawn mode (MLPerf: 1 or 50)"},
        {"--nms-valid-thresh", SSD_OPT_DOUBLE, &nms, false, 0, 1, "P",
         "evaluation score threshold"},
        {"--batch-splits", SSD_OPT_INT, &batch_splits, false, 1, 4096, "K",
         "gradient accumulation: K fragments per batch, one optimizer step (divides the batch)"},
        {"--autocast", SSD_OPT_FLAG, &autocast, false, 1, 0, NULL,
         "bf16 as PyTorch autocast runs it (bf16 convolutions; f32 master weights, BN "
         "statistics, loss and update): cuda on tensor cores (NHWC; = SSD_CUDA_MATH=bf16), cpu "
         "on oneDNN's bf16 kernels with bf16 NHWC activations where the CPU has avx512_bf16, "
         "else emulated on the f32 kernels (= SSD_CPU_MATH=bf16)"},
        {"--backend", SSD_OPT_STR, &backend, false, 1, 0, "NAME",
         "compute backend (ssd backends lists them)"},
        {"--tf32", SSD_OPT_FLAG, &tf32, false, 1, 0, NULL,
         "cuda: convolutions on TF32 tensor cores (PyTorch's default) instead of exact f32"},
        {"--winograd", SSD_OPT_FLAG, &winograd, false, 1, 0, NULL,
         "cpu: Winograd F(4x4,3x3) for the large 3x3 stride-1 convs (the default on AVX2+FMA)"},
        {"--no-winograd", SSD_OPT_FLAG, &no_winograd, false, 1, 0, NULL,
         "cpu: oneDNN's direct kernels for every conv (= SSD_WINOGRAD=0)"},
        {"--pin-threads", SSD_OPT_FLAG, &pin, false, 1, 0, NULL,
         "pin each OpenMP thread to a CPU of this rank's share (docs/train.md)"},
        {"--deterministic", SSD_OPT_FLAG, &deterministic, false, 1, 0, NULL,
         "bit-reproducible run and resume (ref, cpu) (--det)"},
        {"--augment", SSD_OPT_STR, &augment, false, 1, 0, "reference|none",
         "training transform; none = validation transform (fixed inputs, for tests)"},
        {"--cache-dir", SSD_OPT_STR, &cache_dir, false, 1, 0, "DIR",
         "annotation index cache (\"\": none; default $SSD_CACHE_DIR or ~/.cache/ssd)"},
        {"--no-progress-line", SSD_OPT_FLAG, &no_progress, false, 1, 0, NULL,
         "log lines every --log-interval even on a terminal"},
        {"--mlperf-division", SSD_OPT_STR, &division, false, 1, 0, "auto|closed|open",
         "submission_division (auto: closed when the decay epochs are closed-legal)"},
        {"--mlperf-org", SSD_OPT_STR, &org, false, 1, 0, "ORG", "submission_org"},
        {"--mlperf-platform", SSD_OPT_STR, &platform, false, 1, 0, "TEXT",
         "submission_platform (default: backend and cores)"},
        {"--mlperf-status", SSD_OPT_STR, &status, false, 1, 0, "S", "submission_status"},
    };
    int nopts = (int)(sizeof opts / sizeof opts[0]);
    const char *summary =
        "Trains SSD300-ResNet34 as the MLPerf reference does (SGD, warmup, decay, evaluation\n"
        "every --val-interval epochs until --threshold mAP). Without --data it runs the\n"
        "built-in demo: a cached synthetic COCO-format set and a short schedule (~10 min on 2\n"
        "cores). Habana's device flags (--use-hpu, --hpu-lazy-mode, --dl-worker-type, ...)\n"
        "are accepted and ignored.";
    int early = ssd_opts_cli("train", summary, opts, nopts, argc, argv);
    if (early >= 0) return early;
    if (winograd) setenv("SSD_WINOGRAD", "1", 1); /* read when the backend is created */
    if (no_winograd) setenv("SSD_WINOGRAD", "0", 1);
    if (tf32) setenv("SSD_CUDA_MATH", "tf32", 1);
    if (ignored[0]) fprintf(stderr, "ssd train: ignoring device-specific flags: %s\n", ignored);

    bool demo = data == NULL;
    char demo_dir[4096];
    if (demo) {
        ssd_demo_defaults d;
        ssd_demo_get_defaults(&d);
        if (!ssd_opts_given(argc, argv, "--epochs")) epochs = d.epochs;
        if (!ssd_opts_given(argc, argv, "--batch-size")) batch = d.batch_size;
        if (!ssd_opts_given(argc, argv, "--lr")) lr = d.lr;
        if (!ssd_opts_given(argc, argv, "--warmup")) warmup = d.warmup;
        if (!ssd_opts_given(argc, argv, "--lr-decay-schedule")) decay = d.decay;
        if (!ssd_opts_given(argc, argv, "--val-interval")) val_interval = d.val_interval;
        if (!ssd_opts_given(argc, argv, "--log-interval")) log_interval = d.log_interval;
        if (!ssd_opts_given(argc, argv, "--num-workers")) workers = d.num_workers;
        if (!ssd_opts_given(argc, argv, "--seed")) seed = d.seed;
        if (!output) output = "ssd-demo";
    }
    if (!output) output = "ssd-run";
    ssd_train_cfg c = {0};
    ssd_error err;
    ssd_error_clear(&err);
    const char *bad = NULL;
    const char *why_bf16 = NULL;
    if (autocast && tf32)
        bad = "--autocast and --tf32 choose two precisions for the convolutions: pick one";
    else if (winograd && no_winograd)
        bad = "--winograd and --no-winograd: pick one";
    else if (autocast && winograd)
        bad = "--autocast and --winograd: bf16 convolutions run the direct kernels; pick one";
    else if (autocast && (why_bf16 = ssd_cli_autocast("ssd train", backend)))
        bad = why_bf16;
    else if (strcmp(augment, "reference") && strcmp(augment, "none"))
        bad = "--augment must be 'reference' or 'none'";
    else if (strcmp(division, "auto") && strcmp(division, "closed") && strcmp(division, "open"))
        bad = "--mlperf-division must be auto, closed or open";
    else if (batch % batch_splits)
        bad = "--batch-size must be divisible by --batch-splits";
    else if (deterministic && strcmp(backend, "ref") && strcmp(backend, "cpu"))
        bad = "--deterministic is available on the ref and cpu backends (cuda chooses its "
              "convolution algorithms by timing them, so two runs may round differently)";
    if (bad) {
        fprintf(stderr, "ssd train: %s\n", bad);
        return 2;
    }
    if (ssd_parse_int_list("--lr-decay-schedule", decay, c.decay_epochs, SSD_TRAIN_MAX_LIST,
                           &c.n_decay, &err) != SSD_OK ||
        ssd_parse_int_list(evaluation ? "--evaluation" : "--val-epochs",
                           evaluation ? evaluation : val_epochs, c.val_epochs, SSD_TRAIN_MAX_LIST,
                           &c.n_val_epochs, &err) != SSD_OK) {
        fprintf(stderr, "ssd train: %s\n", err.msg);
        return 2;
    }
    /* the process group: one process, or the ranks an MPI launcher started */
    ssd_dist *dist = NULL;
    if (ssd_dist_init(&dist, &err) != SSD_OK) {
        fprintf(stderr, "ssd train: %s\n", err.msg);
        return 1;
    }
    const int rank = ssd_dist_rank(dist), world = ssd_dist_world(dist);
    if (world > 1 && !getenv("OMP_NUM_THREADS")) omp_set_num_threads(rank_threads(dist));
    ssd_cpus pin_cpus; /* --pin-threads: this rank's CPUs; the loaders' workers share them */
    char pin_msg[400] = "";
    int pinned = -2;
    if (pin) {
        pinned = ssd_pin_rank(ssd_dist_local_rank(dist), ssd_dist_local_size(dist), &pin_cpus,
                              pin_msg, sizeof pin_msg);
        if (pinned < 0) {
            char m[512];
            snprintf(m, sizeof m, "--pin-threads: %s", pin_msg);
            return fail(dist, m);
        }
    }
    if (seed < 0) seed = random_seed();
    {   /* every rank runs with rank 0's seed (the reference broadcasts it) */
        int64_t s64 = seed;
        ssd_dist_bcast(dist, &s64, sizeof s64, 0);
        seed = (long)s64;
    }
    /* ranks other than 0 print only their errors (prefixed with the rank) */
    FILE *progress = stderr, *devnull = NULL;
    if (rank != 0) {
        devnull = fopen("/dev/null", "w");
        if (!devnull) return fail(dist, "cannot open /dev/null");
        progress = devnull;
    }
    if (strcmp(division, "auto") == 0)
        division = closed_boundaries(c.decay_epochs, c.n_decay) && (crop_iters == 1 || crop_iters == 50)
                       ? "closed"
                       : "open";
    char plat[128];
    if (!platform) {
        snprintf(plat, sizeof plat, "%ld-core CPU, %s backend", sysconf(_SC_NPROCESSORS_ONLN),
                 backend);
        platform = plat;
    }
    ssd_opts_summary(progress, "train", opts, nopts);
    if (pinned >= 0)
        fprintf(stderr, "ssd train: rank %d: %s%s\n", rank,
                pinned ? "--pin-threads does nothing: " : "", pin_msg);
    if (world > 1)
        fprintf(stderr, "ssd train: rank %d of %d (local %d of %d), %d threads, pid %ld\n", rank,
                world, ssd_dist_local_rank(dist), ssd_dist_local_size(dist),
                omp_get_max_threads(), (long)getpid());
    if (demo) {
        /* rank 0 makes (or finds) the cached set first; the others then find it */
        ssd_status ds = SSD_OK;
        if (rank == 0) ds = ssd_demo_dataset(demo_dir, sizeof demo_dir, progress, &err);
        ssd_dist_barrier(dist);
        if (ds == SSD_OK && rank != 0)
            ds = ssd_demo_dataset(demo_dir, sizeof demo_dir, progress, &err);
        if (ds != SSD_OK) return fail(dist, err.msg);
        data = demo_dir;
    }
    c.data = data;
    c.output = output;
    c.backend = backend;
    c.checkpoint = checkpoint;
    c.pretrained_backbone = pretrained;
    c.cache_dir = cache_dir;
    c.epochs = epochs;
    c.batch_size = (int)batch;
    c.val_batch_size = val_batch > 0 ? (int)val_batch : (int)batch;
    c.batch_splits = (int)batch_splits;
    c.lr = lr;
    c.momentum = momentum;
    c.weight_decay = wd;
    c.warmup = warmup;
    c.warmup_factor = (int)warmup_factor;
    c.seed = (uint32_t)seed;
    c.seed_given = ssd_opts_given(argc, argv, "--seed");
    c.threshold = threshold;
    c.iteration = iteration;
    c.end_iteration = end_iteration;
    c.no_save = no_save;
    c.val_interval = (int)val_interval;
    c.log_interval = (int)log_interval;
    c.num_workers = (int)workers;
    c.loader_cpus = pinned == 0 ? &pin_cpus : NULL;
    c.num_cropping_iterations = (int)crop_iters;
    c.nms_valid_thresh = nms;
    c.deterministic = deterministic;
    c.augment = strcmp(augment, "none") != 0;
    c.live_progress = !no_progress && isatty(fileno(stderr));
    c.division = division;
    c.org = org;
    c.platform = platform;
    c.platform_is_default = platform == plat;
    c.status = status;
    c.title = demo ? "ssd train (built-in demo)" : data;
    c.dist = dist;
    ssd_train_result res;
    if (ssd_train_run(&c, progress, stdout, &res, &err) != SSD_OK) return fail(dist, err.msg);
    double steps = res.steps_run > 0 ? (double)res.steps_run : 1;
    if (world > 1 && res.steps_run > 0)
        fprintf(progress,
                "ssd train: gradient all-reduce %.1f MB per step and rank: %.1f ms per step, "
                "after %.1f ms per step waiting for the slowest rank\n",
                res.allreduce_bytes / 1e6, 1e3 * res.allreduce_seconds / steps,
                1e3 * res.sync_wait_seconds / steps);
    fprintf(progress,
            "ssd train: %s after %lld epochs, %lld steps, %.1f s: first loss %.3f, average loss "
            "%.3f, last mAP %.4f%s%s\n",
            res.success ? "reached the target" : "finished", (long long)res.epochs_done,
            (long long)res.iterations, res.seconds, res.first_loss, res.last_avg_loss,
            res.last_map, res.last_checkpoint[0] ? "; last checkpoint " : "",
            res.last_checkpoint);
    if (demo && rank == 0 && res.last_checkpoint[0] &&
        ssd_demo_pictures(res.last_checkpoint, data, output, backend, stderr, &err) != SSD_OK)
        return fail(dist, err.msg);
    if (devnull) fclose(devnull);
    ssd_dist_finalize(dist);
    return 0;
}
