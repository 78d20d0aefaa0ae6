/* bench_ops: per-op time at the real SSD-ResNet34 layer shapes on one backend.
 *
 * For every conv shape of backend/layer_shapes.h: forward, backward-data, backward-weights
 * (bias grad included where the layer has a bias) -- median ms, GFLOP/s, fraction of this
 * machine's measured fp32 peak (src/core/peak.h), the implementation the backend reports and
 * the reorders per call. Then batch-norm (train fwd / bwd / infer fwd), maxpool, relu, add and
 * the SGD update over the model's 19,972,534 parameters as ms and GB/s, a per-step total of
 * the conv time weighted by each shape's count, and (--torch) PyTorch's time for the heaviest
 * conv in the same run. Run with --help for the flags; docs/benchmarks.md explains the output.
 *
 * A benchmark never decides pass/fail of anything: the exit status only says whether the
 * flags were understood (2 if not) and the run completed (0). */
#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "backend/backend.h"
#include "backend/layer_shapes.h"
#include "core/mem.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/timer.h"
#include "core/peak.h"
#include "sysload.h"
#include "torch_runner.h"

#define DEFAULT_BATCH 8
#define DEFAULT_REPS 5
#define DEFAULT_WARMUP 2
#define SSD_N_PARAMS 19972534L /* the model's parameter count (spec/ssd-reference.md) */
#define PEAK_SECONDS 0.3
#define LOAD_WARN_CPUS 0.15 /* warn when others used more CPU than this on average */

/* ------------------------------------------------------------------------------------------ */
/* options                                                                                     */

typedef struct opts {
    const char *backend;
    int batch, reps, warmup;
    bool json, torch;
    const char *only;  /* substring filter on "<group> <layer name>", NULL = all */
    const char *tools; /* directory of bench_torch_conv.py, NULL = search */
} opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: bench_ops [flags]\n"
            "Per-op time of the SSD-ResNet34 layers at their real shapes on one backend.\n"
            "\n"
            "  --backend NAME   backend to time (default cpu; built here: ");
    for (const char *const *n = ssd_backend_names(); *n; n++)
        fprintf(f, "%s%s", *n, n[1] ? ", " : "");
    fprintf(f,
            ")\n"
            "  --batch N        images per call (default %d)\n"
            "  --reps R         timed calls per op; the median is reported (default %d)\n"
            "  --warmup W       untimed calls per op before timing (default %d)\n"
            "  --only TEXT      only rows whose \"<group> <layer name>\" contains TEXT\n"
            "                   (groups: conv, bn, pool, relu, add, sgd; e.g. --only conf.0,\n"
            "                   --only layer3, --only bn, --only sgd)\n"
            "  --torch          also time the heaviest conv (256->256 3x3 38x38) in PyTorch at\n"
            "                   N=8 and N=32 (tools/bench_torch_conv.py) and print both\n"
            "  --tools DIR      where bench_torch_conv.py is (default: $SSD_SOURCE_DIR/tools,\n"
            "                   else ../tools or ../../tools from the executable, else ./tools);\n"
            "                   python is $SSD_PYTHON_TORCH or /usr/bin/python3\n"
            "  --json           one JSON object on stdout instead of the table\n"
            "  --help           this text\n"
            "Threads: OpenMP's (OMP_NUM_THREADS); PyTorch is given the same count.\n",
            DEFAULT_BATCH, DEFAULT_REPS, DEFAULT_WARMUP);
}

static _Noreturn void bad_flag(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "bench_ops: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, " (see bench_ops --help)\n");
    exit(2);
}

static int parse_int(const char *flag, const char *v, int lo, int hi) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "bench_ops: %s expects an integer in [%d, %d], got '%s' (see --help)\n",
                flag, lo, hi, v);
        exit(2);
    }
    return (int)x;
}

static opts parse_opts(int argc, char **argv) {
    opts o = {"cpu", DEFAULT_BATCH, DEFAULT_REPS, DEFAULT_WARMUP, false, false, NULL, NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--json") == 0) { o.json = true; continue; }
        if (strcmp(a, "--torch") == 0) { o.torch = true; continue; }
        /* flags with a value: "--flag VALUE" or "--flag=VALUE" */
        static const char *const valued[] = {"--backend", "--batch", "--reps", "--warmup",
                                             "--only", "--tools"};
        const char *flag = NULL, *val = NULL;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) {
            size_t n = strlen(valued[k]);
            if (strncmp(a, valued[k], n) == 0 && (a[n] == '\0' || a[n] == '=')) {
                flag = valued[k];
                if (a[n] == '=') val = a + n + 1;
                else if (i + 1 < argc) val = argv[++i];
                else bad_flag("%s needs a value%s", flag, "");
                break;
            }
        }
        if (!flag) bad_flag("unknown flag '%s'%s", a, "");
        if (strcmp(flag, "--backend") == 0) o.backend = val;
        else if (strcmp(flag, "--batch") == 0) o.batch = parse_int(flag, val, 1, 4096);
        else if (strcmp(flag, "--reps") == 0) o.reps = parse_int(flag, val, 1, 1000000);
        else if (strcmp(flag, "--warmup") == 0) o.warmup = parse_int(flag, val, 0, 1000000);
        else if (strcmp(flag, "--only") == 0) o.only = val;
        else o.tools = val;
        if (!*val) bad_flag("%s needs a non-empty value%s", flag, "");
    }
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* tensors and timing                                                                          */

/* A tensor on the backend filled with U(lo, hi) (deterministic stream per tensor). */
static ssd_tensor rand_tensor(ssd_backend *be, int ndim, const int64_t *shape, double lo,
                              double hi, uint64_t index) {
    ssd_tensor t = ssd_backend_tensor_alloc(be, SSD_F32, ndim, shape, "bench");
    ssd_tensor h = ssd_tensor_alloc_host(SSD_F32, ndim, shape, "bench_host");
    ssd_rng r = ssd_rng_stream(1234, SSD_RNG_DOMAIN_TEST, 0, 0, index);
    float *p = h.data;
    int64_t n = ssd_tensor_numel(&h);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * ssd_rng_uniform(&r));
    ssd_backend_upload(be, &t, &h);
    ssd_tensor_free(&h);
    return t;
}

static ssd_tensor rand4(ssd_backend *be, int64_t n, int64_t c, int64_t h, int64_t w, double lo,
                        double hi, uint64_t index) {
    int64_t s[4] = {n, c, h, w};
    return rand_tensor(be, 4, s, lo, hi, index);
}

static ssd_tensor rand1(ssd_backend *be, int64_t n, double lo, double hi, uint64_t index) {
    return rand_tensor(be, 1, &n, lo, hi, index);
}

/* A tensor on the backend filled with v (by the backend's own fill). */
static ssd_tensor const4(ssd_backend *be, int64_t n, int64_t c, int64_t h, int64_t w, double v) {
    int64_t s[4] = {n, c, h, w};
    ssd_tensor t = ssd_backend_tensor_alloc(be, SSD_F32, 4, s, "bench");
    ssd_fill(be, &t, v);
    return t;
}

static ssd_tensor const1(ssd_backend *be, int64_t n, double v) {
    ssd_tensor t = ssd_backend_tensor_alloc(be, SSD_F32, 1, &n, "bench");
    ssd_fill(be, &t, v);
    return t;
}

/* Labels --only matches against: "<group> <layer>". */
#define RELU_LAYER "relu"
#define ADD_LAYER "add"
#define SGD_LAYER "sgd update (19972534 params)"

/* What one timed call does. */
typedef enum job_kind {
    J_CONV_FWD, J_CONV_BWD_DATA, J_CONV_BWD_W,
    J_BN_TRAIN_FWD, J_BN_BWD, J_BN_INFER_FWD,
    J_POOL_FWD, J_POOL_BWD,
    J_RELU_FWD, J_RELU_BWD, J_ADD, J_SGD
} job_kind;

typedef struct job {
    job_kind kind;
    ssd_backend *be;
    ssd_tensor *t[12];
    ssd_conv_desc conv;
    ssd_bn_desc bn;
    ssd_pool_desc pool;
    ssd_sgd_desc sgd;
} job;

static void job_run(job *j) {
    ssd_backend *be = j->be;
    ssd_tensor **t = j->t;
    switch (j->kind) {
    case J_CONV_FWD: ssd_conv2d_forward(be, t[0], t[1], t[2], t[3], &j->conv); break;
    case J_CONV_BWD_DATA: ssd_conv2d_backward_data(be, t[0], t[1], t[2], &j->conv); break;
    case J_CONV_BWD_W: ssd_conv2d_backward_weights(be, t[0], t[1], t[2], t[3], &j->conv); break;
    case J_BN_TRAIN_FWD:
        ssd_batchnorm_train_forward(be, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], NULL,
                                    &j->bn);
        break;
    case J_BN_BWD:
        ssd_batchnorm_backward(be, t[0], NULL, t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8],
                               &j->bn);
        break;
    case J_BN_INFER_FWD:
        ssd_batchnorm_infer_forward(be, t[0], t[1], t[2], t[3], t[4], t[5], NULL, &j->bn);
        break;
    case J_POOL_FWD: ssd_maxpool_forward(be, t[0], t[1], &j->pool); break;
    case J_POOL_BWD: ssd_maxpool_backward(be, t[0], t[1], t[2], &j->pool); break;
    case J_RELU_FWD: ssd_relu_forward(be, t[0], t[1]); break;
    case J_RELU_BWD: ssd_relu_backward(be, t[0], t[1], t[2]); break;
    case J_ADD: ssd_add(be, t[0], t[1], t[2]); break;
    case J_SGD: ssd_sgd_update(be, t[0], t[1], t[2], &j->sgd); break;
    }
}

typedef struct result {
    const char *group; /* conv, bn, pool, relu, add, sgd */
    char layer[96];
    char shape[64];
    const char *pass;
    int count;
    double ms, ms_min; /* median and fastest of the timed calls */
    double flops;      /* per call (conv), 0 otherwise */
    double bytes;      /* per call, minimum traffic (non-conv), 0 for convs */
    double reorders;   /* per timed call */
    char impl[160];
} result;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* warmup untimed calls, then reps timed ones (each followed by sync); fills timing, impl and
 * reorders of *r. */
static void measure(job *j, int warmup, int reps, result *r) {
    ssd_backend *be = j->be;
    be->stats.last_impl[0] = '\0';
    for (int i = 0; i < warmup; i++) job_run(j);
    be->ops->sync(be);
    double *ts = ssd_xmalloc((size_t)reps * sizeof *ts);
    uint64_t reorders0 = be->stats.reorders;
    for (int i = 0; i < reps; i++) {
        double t0 = ssd_now();
        job_run(j);
        be->ops->sync(be);
        ts[i] = (ssd_now() - t0) * 1e3;
    }
    r->reorders = (double)(be->stats.reorders - reorders0) / reps;
    qsort(ts, (size_t)reps, sizeof *ts, cmp_double);
    r->ms = reps % 2 ? ts[reps / 2] : 0.5 * (ts[reps / 2 - 1] + ts[reps / 2]);
    r->ms_min = ts[0];
    free(ts);
    snprintf(r->impl, sizeof r->impl, "%s", be->stats.last_impl[0] ? be->stats.last_impl : "-");
}

/* ------------------------------------------------------------------------------------------ */
/* results table                                                                               */

typedef struct results {
    result *v;
    int n, cap;
} results;

static result *results_add(results *rs) {
    if (rs->n == rs->cap) {
        rs->cap = rs->cap ? 2 * rs->cap : 64;
        rs->v = ssd_xrealloc(rs->v, (size_t)rs->cap * sizeof *rs->v);
    }
    result *r = &rs->v[rs->n++];
    memset(r, 0, sizeof *r);
    return r;
}

static bool selected(const opts *o, const char *group, const char *layer) {
    if (!o->only) return true;
    char label[160];
    snprintf(label, sizeof label, "%s %s", group, layer);
    return strstr(label, o->only) != NULL;
}

static double g_peak_gflops; /* machine peak, 0 if not measured */

static void print_conv_header(void) {
    printf("\n%-46s %-26s %3s %-11s %9s %8s %6s %6s  %s\n", "conv layer", "shape (C->K HxW RxR/s p)",
           "cnt", "pass", "ms", "GFLOP/s", "%peak", "reord", "implementation");
}

static void print_mem_header(const char *title) {
    printf("\n%-46s %-26s %3s %-11s %9s %8s %6s %6s  %s\n", title, "shape", "cnt", "pass", "ms",
           "GB/s", "", "reord", "implementation");
}

static void print_row(const result *r, bool first_of_layer) {
    char layer[47];
    snprintf(layer, sizeof layer, "%.46s", first_of_layer ? r->layer : "");
    char cnt[16] = "";
    if (first_of_layer && r->count > 0) snprintf(cnt, sizeof cnt, "%d", r->count);
    char rate[16], frac[16] = "";
    if (r->flops > 0) {
        double g = r->flops / r->ms * 1e-6;
        snprintf(rate, sizeof rate, "%.1f", g);
        if (g_peak_gflops > 0) snprintf(frac, sizeof frac, "%.0f%%", 100.0 * g / g_peak_gflops);
        else snprintf(frac, sizeof frac, "-");
    } else {
        snprintf(rate, sizeof rate, "%.1f", r->bytes / r->ms * 1e-6);
    }
    printf("%-46s %-26s %3s %-11s %9.3f %8s %6s %6.1f  %s\n", layer,
           first_of_layer ? r->shape : "", cnt, r->pass, r->ms, rate, frac, r->reorders, r->impl);
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------------ */
/* the benchmarks                                                                              */

typedef struct conv_times {
    double ms[3];     /* fwd, bwd_data, bwd_weights: median */
    double ms_min[3]; /* fastest call */
    double flops; /* per call */
    char impl[3][160];
    double reorders[3];
} conv_times;

/* Times the three passes of one conv shape at batch n; rows go to rs when rs != NULL. */
static void bench_conv_shape(ssd_backend *be, const opts *o, const ssd_conv_shape *s, int n,
                             results *rs, conv_times *ct) {
    int p = ssd_conv_shape_out(s);
    uint64_t seed = (uint64_t)(s - ssd_conv_shapes) * 16;
    ssd_tensor inp = rand4(be, n, s->c, s->h, s->h, -1, 1, seed + 0);
    ssd_tensor w = rand4(be, s->k, s->c, s->r, s->r, -0.05, 0.05, seed + 1);
    ssd_tensor dout = rand4(be, n, s->k, p, p, -1, 1, seed + 2);
    ssd_tensor out = const4(be, n, s->k, p, p, 0);
    ssd_tensor dinp = const4(be, n, s->c, s->h, s->h, 0);
    ssd_tensor dw = const4(be, s->k, s->c, s->r, s->r, 0);
    ssd_tensor bias = {0}, db = {0};
    if (s->bias) {
        bias = rand1(be, s->k, -0.1, 0.1, seed + 6);
        db = const1(be, s->k, 0);
    }
    job j = {.be = be, .conv = {s->stride, s->stride, s->pad, s->pad}};
    static const char *const passes[3] = {"fwd", "bwd_data", "bwd_weights"};
    double flops = ssd_conv_shape_flops(s) * n;
    for (int k = 0; k < 3; k++) {
        memset(j.t, 0, sizeof j.t);
        if (k == 0) {
            j.kind = J_CONV_FWD;
            j.t[0] = &out, j.t[1] = &inp, j.t[2] = &w, j.t[3] = s->bias ? &bias : NULL;
        } else if (k == 1) {
            j.kind = J_CONV_BWD_DATA;
            j.t[0] = &dinp, j.t[1] = &dout, j.t[2] = &w;
        } else {
            j.kind = J_CONV_BWD_W;
            j.t[0] = &dw, j.t[1] = s->bias ? &db : NULL, j.t[2] = &dout, j.t[3] = &inp;
        }
        result tmp, *r = rs ? results_add(rs) : &tmp;
        memset(&tmp, 0, sizeof tmp);
        r->group = "conv";
        snprintf(r->layer, sizeof r->layer, "%s", s->name);
        snprintf(r->shape, sizeof r->shape, "%d->%d %dx%d %dx%d/%d p%d%s", s->c, s->k, s->h, s->h,
                 s->r, s->r, s->stride, s->pad, s->bias ? " +b" : "");
        r->pass = passes[k];
        r->count = s->count;
        r->flops = flops;
        measure(&j, o->warmup, o->reps, r);
        if (ct) {
            ct->ms[k] = r->ms;
            ct->ms_min[k] = r->ms_min;
            ct->reorders[k] = r->reorders;
            snprintf(ct->impl[k], sizeof ct->impl[k], "%s", r->impl);
        }
        if (rs && !o->json) print_row(r, k == 0);
    }
    if (ct) ct->flops = flops;
    ssd_tensor *all[] = {&inp, &w, &dout, &out, &dinp, &dw, &bias, &db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]->data) ssd_backend_tensor_free(be, all[i]);
}

static void bench_bn_shape(ssd_backend *be, const opts *o, const ssd_bn_shape *s, int n,
                           results *rs) {
    int64_t c = s->c, h = s->h;
    uint64_t seed = 1000 + (uint64_t)(s - ssd_bn_shapes) * 16;
    ssd_tensor x = rand4(be, n, c, h, h, -1, 1, seed + 0);
    ssd_tensor y = const4(be, n, c, h, h, 0);
    ssd_tensor dy = rand4(be, n, c, h, h, -1, 1, seed + 2);
    ssd_tensor dx = const4(be, n, c, h, h, 0);
    ssd_tensor smean = const1(be, c, 0), svar = const1(be, c, 1);
    ssd_tensor rmean = rand1(be, c, -0.1, 0.1, seed + 6), rvar = rand1(be, c, 0.5, 1.5, seed + 7);
    ssd_tensor gamma = rand1(be, c, 0.5, 1.5, seed + 8), beta = rand1(be, c, -0.1, 0.1, seed + 9);
    ssd_tensor dgamma = const1(be, c, 0), dbeta = const1(be, c, 0);
    /* As in the network's blocks: BN followed by ReLU (fused), no residual. */
    job j = {.be = be, .bn = {1e-5, 0.1, true}};
    double act = 4.0 * n * c * h * h; /* bytes of one activation tensor */
    for (int k = 0; k < 3; k++) {
        memset(j.t, 0, sizeof j.t);
        result *r = results_add(rs);
        r->group = "bn";
        snprintf(r->layer, sizeof r->layer, "%s", s->name);
        snprintf(r->shape, sizeof r->shape, "%d %dx%d +relu", s->c, s->h, s->h);
        r->count = s->count;
        if (k == 0) {
            j.kind = J_BN_TRAIN_FWD;
            j.t[0] = &y, j.t[1] = &smean, j.t[2] = &svar, j.t[3] = &rmean, j.t[4] = &rvar;
            j.t[5] = &x, j.t[6] = &gamma, j.t[7] = &beta;
            r->pass = "train_fwd";
            r->bytes = 2 * act; /* read x, write y */
        } else if (k == 1) {
            j.kind = J_BN_BWD;
            j.t[0] = &dx, j.t[1] = &dgamma, j.t[2] = &dbeta, j.t[3] = &dy, j.t[4] = &y;
            j.t[5] = &x, j.t[6] = &gamma, j.t[7] = &smean, j.t[8] = &svar;
            r->pass = "bwd";
            r->bytes = 4 * act; /* read dy, y (relu mask), x; write dx */
        } else {
            j.kind = J_BN_INFER_FWD;
            j.t[0] = &y, j.t[1] = &x, j.t[2] = &gamma, j.t[3] = &beta, j.t[4] = &rmean;
            j.t[5] = &rvar;
            r->pass = "infer_fwd";
            r->bytes = 2 * act; /* read x, write y */
        }
        measure(&j, o->warmup, o->reps, r);
        if (!o->json) print_row(r, k == 0);
    }
    ssd_tensor *all[] = {&x, &y, &dy, &dx, &smean, &svar, &rmean, &rvar, &gamma, &beta,
                         &dgamma, &dbeta};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ssd_backend_tensor_free(be, all[i]);
}

static void bench_pool(ssd_backend *be, const opts *o, int n, results *rs) {
    const ssd_bn_shape *s = &ssd_pool_shape;
    ssd_pool_desc d = {3, 2, 1};
    int64_t oh = ssd_conv_out_size(s->h, d.kernel, d.stride, d.pad);
    ssd_tensor x = rand4(be, n, s->c, s->h, s->h, -1, 1, 2000);
    ssd_tensor y = const4(be, n, s->c, oh, oh, 0);
    ssd_tensor dy = rand4(be, n, s->c, oh, oh, -1, 1, 2002);
    ssd_tensor dx = const4(be, n, s->c, s->h, s->h, 0);
    double in_b = 4.0 * n * s->c * s->h * s->h, out_b = 4.0 * n * s->c * oh * oh;
    job j = {.be = be, .pool = d};
    for (int k = 0; k < 2; k++) {
        memset(j.t, 0, sizeof j.t);
        result *r = results_add(rs);
        r->group = "pool";
        snprintf(r->layer, sizeof r->layer, "%s", s->name);
        snprintf(r->shape, sizeof r->shape, "%d %dx%d -> %lldx%lld", s->c, s->h, s->h,
                 (long long)oh, (long long)oh);
        r->count = s->count;
        if (k == 0) {
            j.kind = J_POOL_FWD, j.t[0] = &y, j.t[1] = &x;
            r->pass = "fwd";
            r->bytes = in_b + out_b; /* read x, write y */
        } else {
            j.kind = J_POOL_BWD, j.t[0] = &dx, j.t[1] = &dy, j.t[2] = &x;
            r->pass = "bwd";
            r->bytes = in_b + out_b + in_b; /* read x, dy; write dx */
        }
        measure(&j, o->warmup, o->reps, r);
        if (!o->json) print_row(r, k == 0);
    }
    ssd_backend_tensor_free(be, &x);
    ssd_backend_tensor_free(be, &y);
    ssd_backend_tensor_free(be, &dy);
    ssd_backend_tensor_free(be, &dx);
}

/* relu fwd/bwd and add at the most common activation (N,256,38,38). */
static void bench_eltwise(ssd_backend *be, const opts *o, int n, results *rs) {
    const int64_t c = 256, h = 38;
    char shape[64];
    snprintf(shape, sizeof shape, "(%d,%lld,%lld,%lld)", n, (long long)c, (long long)h,
             (long long)h);
    bool do_relu = selected(o, "relu", RELU_LAYER), do_add = selected(o, "add", ADD_LAYER);
    if (!do_relu && !do_add) return;
    ssd_tensor a = rand4(be, n, c, h, h, -1, 1, 3000);
    ssd_tensor b = rand4(be, n, c, h, h, -1, 1, 3001);
    ssd_tensor y = const4(be, n, c, h, h, 0);
    double bytes = 4.0 * n * c * h * h;
    job j = {.be = be};
    for (int k = 0; k < 3; k++) {
        if (k < 2 && !do_relu) continue;
        if (k == 2 && !do_add) continue;
        memset(j.t, 0, sizeof j.t);
        result *r = results_add(rs);
        snprintf(r->layer, sizeof r->layer, "%s", k < 2 ? RELU_LAYER : ADD_LAYER);
        snprintf(r->shape, sizeof r->shape, "%s", shape);
        r->count = 0;
        if (k == 0) {
            r->group = "relu", r->pass = "fwd";
            j.kind = J_RELU_FWD, j.t[0] = &y, j.t[1] = &a;
            r->bytes = 2 * bytes;
        } else if (k == 1) {
            r->group = "relu", r->pass = "bwd";
            j.kind = J_RELU_BWD, j.t[0] = &y, j.t[1] = &a, j.t[2] = &b;
            r->bytes = 3 * bytes; /* read dout, out; write dinp */
        } else {
            r->group = "add", r->pass = "fwd";
            j.kind = J_ADD, j.t[0] = &y, j.t[1] = &a, j.t[2] = &b;
            r->bytes = 3 * bytes;
        }
        measure(&j, o->warmup, o->reps, r);
        if (!o->json) print_row(r, true);
    }
    ssd_backend_tensor_free(be, &a);
    ssd_backend_tensor_free(be, &b);
    ssd_backend_tensor_free(be, &y);
}

static void bench_sgd(ssd_backend *be, const opts *o, results *rs) {
    const char *layer = SGD_LAYER;
    if (!selected(o, "sgd", layer)) return;
    int64_t n = SSD_N_PARAMS;
    ssd_tensor p = rand1(be, n, -0.1, 0.1, 4000);
    ssd_tensor m = rand1(be, n, -0.01, 0.01, 4001);
    ssd_tensor g = rand1(be, n, -0.01, 0.01, 4002);
    /* the reference's optimiser, steady state (momentum buffer exists) */
    job j = {.be = be, .kind = J_SGD, .sgd = {2.5e-3, 0.9, 5e-4, 0.0, false, false}};
    j.t[0] = &p, j.t[1] = &m, j.t[2] = &g;
    result *r = results_add(rs);
    r->group = "sgd";
    snprintf(r->layer, sizeof r->layer, "%s", layer);
    snprintf(r->shape, sizeof r->shape, "(%lld) f32", (long long)n);
    r->pass = "update";
    r->count = 1;
    r->bytes = 5.0 * 4.0 * (double)n; /* read p, g, buf; write p, buf */
    measure(&j, o->warmup, o->reps, r);
    if (!o->json) print_row(r, true);
    ssd_backend_tensor_free(be, &p);
    ssd_backend_tensor_free(be, &m);
    ssd_backend_tensor_free(be, &g);
}

static void print_load(const char *what, double cpus) {
    if (cpus < 0) return;
    printf("  [other load during %s: %.2f CPUs on average%s]\n", what, cpus,
           cpus > LOAD_WARN_CPUS ? " -- NOT IDLE, timings pessimistic" : "");
}

static const ssd_conv_shape *heaviest_conv(void) {
    for (int i = 0; i < ssd_n_conv_shapes; i++) {
        const ssd_conv_shape *s = &ssd_conv_shapes[i];
        if (s->c == 256 && s->k == 256 && s->h == 38 && s->r == 3 && s->stride == 1)
            return s;
    }
    const ssd_conv_shape *best = &ssd_conv_shapes[0]; /* fallback: most FLOPs x count */
    for (int i = 1; i < ssd_n_conv_shapes; i++)
        if (ssd_conv_shape_flops(&ssd_conv_shapes[i]) * ssd_conv_shapes[i].count >
            ssd_conv_shape_flops(best) * best->count)
            best = &ssd_conv_shapes[i];
    return best;
}

/* ------------------------------------------------------------------------------------------ */
/* output helpers                                                                              */

static void cpu_model(char *buf, size_t len) {
    snprintf(buf, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ' || *c == '\t') c++;
                c[strcspn(c, "\n")] = '\0';
                snprintf(buf, len, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

static cJSON *result_json(const result *r) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "group", r->group);
    cJSON_AddStringToObject(o, "layer", r->layer);
    cJSON_AddStringToObject(o, "shape", r->shape);
    cJSON_AddStringToObject(o, "pass", r->pass);
    cJSON_AddNumberToObject(o, "count", r->count);
    cJSON_AddNumberToObject(o, "ms", r->ms);
    cJSON_AddNumberToObject(o, "ms_min", r->ms_min);
    if (r->flops > 0) {
        double g = r->flops / r->ms * 1e-6;
        cJSON_AddNumberToObject(o, "gflop", r->flops * 1e-9);
        cJSON_AddNumberToObject(o, "gflops", g);
        if (g_peak_gflops > 0) cJSON_AddNumberToObject(o, "frac_peak", g / g_peak_gflops);
    } else {
        cJSON_AddNumberToObject(o, "bytes", r->bytes);
        cJSON_AddNumberToObject(o, "gbps", r->bytes / r->ms * 1e-6);
    }
    cJSON_AddNumberToObject(o, "reorders_per_call", r->reorders);
    cJSON_AddStringToObject(o, "impl", r->impl);
    return o;
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    opts o = parse_opts(argc, argv);

    ssd_backend *be = NULL;
    ssd_error err;
    ssd_error_clear(&err);
    if (ssd_backend_create(o.backend, &be, &err) != SSD_OK) {
        fprintf(stderr, "bench_ops: --backend %s: %s\n", o.backend, err.msg);
        return 2;
    }
    if (!be->ops->supports(be, SSD_OP_CONV2D_FWD, SSD_F32)) {
        fprintf(stderr, "bench_ops: backend %s does not run f32 convolutions\n", be->name);
        ssd_backend_destroy(be);
        return 2;
    }
    /* --only must match something */
    if (o.only) {
        bool any = selected(&o, "sgd", SGD_LAYER) || selected(&o, "relu", RELU_LAYER) ||
                   selected(&o, "add", ADD_LAYER) || selected(&o, "pool", ssd_pool_shape.name);
        for (int i = 0; !any && i < ssd_n_conv_shapes; i++)
            any = selected(&o, "conv", ssd_conv_shapes[i].name);
        for (int i = 0; !any && i < ssd_n_bn_shapes; i++)
            any = selected(&o, "bn", ssd_bn_shapes[i].name);
        if (!any && !o.torch) {
            fprintf(stderr, "bench_ops: --only '%s' matches no layer (see --help)\n", o.only);
            ssd_backend_destroy(be);
            return 2;
        }
    }

    int threads = omp_get_max_threads();
    char model[256], date[64];
    cpu_model(model, sizeof model);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));

    load_mark lm0 = load_mark_now();
    peak_result pk = peak_measure(PEAK_SECONDS);
    g_peak_gflops = pk.gflops;

    if (!o.json) {
        printf("bench_ops: backend %s, batch %d, fp32 NCHW, %d OpenMP threads, median of %d "
               "reps after %d warmup\n", be->name, o.batch, threads, o.reps, o.warmup);
        printf("machine: %s, %s\n", model, date);
        printf("peak: %.1f GFLOP/s fp32 (%.1f per core) -- %s\n", pk.gflops, pk.gflops_per_core,
               pk.how);
        fflush(stdout);
    }

    double t_start = ssd_now();
    results rs = {0};

    /* ---- convolutions ---- */
    double pass_ms[3] = {0, 0, 0}, step_flops = 0;
    int n_conv = 0;
    bool header = false;
    for (int i = 0; i < ssd_n_conv_shapes; i++) {
        const ssd_conv_shape *s = &ssd_conv_shapes[i];
        if (!selected(&o, "conv", s->name)) continue;
        if (!o.json && !header) print_conv_header(), header = true;
        conv_times ct;
        bench_conv_shape(be, &o, s, o.batch, &rs, &ct);
        n_conv++;
        for (int k = 0; k < 3; k++) {
            /* the image needs no gradient: a training step never runs conv1's backward-data */
            if (k == 1 && s->c == 3) continue;
            pass_ms[k] += s->count * ct.ms[k];
            step_flops += s->count * ct.flops;
        }
    }
    load_mark lm_conv = load_mark_now();
    double load_conv = load_other(lm0, lm_conv); /* peak + convs */
    double step_ms = pass_ms[0] + pass_ms[1] + pass_ms[2];
    bool all_convs = n_conv == ssd_n_conv_shapes;
    if (!o.json && n_conv) {
        printf("\ntotal conv time per training step (batch %d; each shape x count; fwd + bwd_data "
               "+ bwd_weights; conv1 bwd_data excluded: the image needs no gradient)%s:\n",
               o.batch, all_convs ? "" : " [ONLY THE SELECTED SHAPES]");
        printf("  %.1f ms = fwd %.1f + bwd_data %.1f + bwd_weights %.1f ms; %.4g GFLOP at %.1f "
               "GFLOP/s (%.0f%% of peak)\n",
               step_ms, pass_ms[0], pass_ms[1], pass_ms[2], step_flops * 1e-9,
               step_flops / step_ms * 1e-6,
               pk.gflops > 0 ? 100.0 * step_flops / step_ms * 1e-6 / pk.gflops : 0.0);
        printf("  => at most %.2f images/s from the convolutions alone\n",
               o.batch / (step_ms * 1e-3));
        print_load("peak + convs", load_conv);
        fflush(stdout);
    }

    /* ---- batch norm ---- */
    header = false;
    for (int i = 0; i < ssd_n_bn_shapes; i++) {
        if (!selected(&o, "bn", ssd_bn_shapes[i].name)) continue;
        if (!o.json && !header) print_mem_header("batch norm (+fused relu)"), header = true;
        bench_bn_shape(be, &o, &ssd_bn_shapes[i], o.batch, &rs);
    }
    /* ---- pool, eltwise, sgd ---- */
    bool want_pool = selected(&o, "pool", ssd_pool_shape.name);
    if (!o.json && (want_pool || selected(&o, "relu", RELU_LAYER) ||
                    selected(&o, "add", ADD_LAYER) || selected(&o, "sgd", SGD_LAYER)))
        print_mem_header("pool / eltwise / optimiser");
    if (want_pool) bench_pool(be, &o, o.batch, &rs);
    bench_eltwise(be, &o, o.batch, &rs);
    bench_sgd(be, &o, &rs);
    double bench_s = ssd_now() - t_start;
    load_mark lm_mem = load_mark_now();
    double load_mem = load_other(lm_conv, lm_mem);
    if (!o.json && rs.n > 3 * n_conv) print_load("bn / pool / eltwise / sgd", load_mem);

    /* ---- PyTorch comparison on the heaviest conv ---- */
    cJSON *torch_json = NULL;
    char torch_why[1400] = "";
    const ssd_conv_shape *hv = heaviest_conv();
    enum { NB = 2 };
    const int cmp_batches[NB] = {8, 32};
    conv_times ours[NB];
    if (o.torch) {
        if (!o.json)
            printf("\nPyTorch comparison: %s, %d->%d %dx%d %dx%d/%d p%d, N = 8 and 32 (timing "
                   "ours, then torch)...\n", hv->name, hv->c, hv->k, hv->h, hv->h, hv->r, hv->r,
                   hv->stride, hv->pad);
        fflush(stdout);
        char script[PATH_MAX];
        const char *py = NULL;
        bool have = torch_locate(o.tools, argv[0], script, sizeof script, &py, torch_why,
                                 sizeof torch_why);
        if (!have && !o.json) printf("PyTorch side skipped: %s\n", torch_why), fflush(stdout);
        for (int b = 0; b < NB; b++) bench_conv_shape(be, &o, hv, cmp_batches[b], NULL, &ours[b]);
        if (have) {
            torch_json = run_torch(o.warmup, o.reps, script, py, hv, cmp_batches, NB, threads, torch_why,
                                   sizeof torch_why);
            if (!torch_json && !o.json)
                printf("PyTorch comparison skipped: %s\n", torch_why);
        }
    }
    load_mark lm1 = load_mark_now();
    double other_cpus = load_other(lm0, lm1); /* over peak, ops and the torch comparison */
    double load_torch = o.torch ? load_other(lm_mem, lm1) : -1;
    cJSON *cmp_rows = cJSON_CreateArray();
    if (o.torch) {
        cJSON *tres = torch_json ? cJSON_GetObjectItemCaseSensitive(torch_json, "results") : NULL;
        if (!o.json) {
            if (torch_json) {
                cJSON *tv = cJSON_GetObjectItemCaseSensitive(torch_json, "torch_version");
                cJSON *tt = cJSON_GetObjectItemCaseSensitive(torch_json, "threads");
                printf("torch %s, %d threads; bwd passes via aten.convolution_backward with one "
                       "output selected\n",
                       cJSON_IsString(tv) ? tv->valuestring : "?",
                       cJSON_IsNumber(tt) ? tt->valueint : -1);
            }
            printf("%4s %-11s %9s %9s %9s %9s %8s %8s  %-32s %s\n", "N", "pass", "ours ms",
                   "GFLOP/s", "torch ms", "GFLOP/s", "ours/pt", "(min)", "our impl (reorders/call)",
                   "torch impl (oneDNN primitives per call)");
        }
        static const char *const passes[3] = {"fwd", "bwd_data", "bwd_weights"};
        for (int b = 0; b < NB; b++) {
            cJSON *trow = NULL, *it;
            cJSON_ArrayForEach(it, tres) {
                cJSON *bn = cJSON_GetObjectItemCaseSensitive(it, "batch");
                if (cJSON_IsNumber(bn) && bn->valueint == cmp_batches[b]) trow = it;
            }
            for (int k = 0; k < 3; k++) {
                double og = ours[b].flops / ours[b].ms[k] * 1e-6;
                double tms = 0, tg = 0, tmin = 0;
                const char *timpl = "-";
                cJSON *tp = trow ? cJSON_GetObjectItemCaseSensitive(trow, passes[k]) : NULL;
                if (tp) {
                    cJSON *m = cJSON_GetObjectItemCaseSensitive(tp, "ms");
                    cJSON *mn = cJSON_GetObjectItemCaseSensitive(tp, "ms_min");
                    cJSON *im = cJSON_GetObjectItemCaseSensitive(tp, "impl");
                    if (cJSON_IsNumber(m)) tms = m->valuedouble, tg = ours[b].flops / tms * 1e-6;
                    if (cJSON_IsNumber(mn)) tmin = mn->valuedouble;
                    if (cJSON_IsString(im)) timpl = im->valuestring;
                }
                /* ratio of the fastest calls: less sensitive to noise from outside */
                double ratio_min = tmin > 0 && ours[b].ms_min[k] > 0 ? tmin / ours[b].ms_min[k] : 0;
                cJSON *row = cJSON_CreateObject();
                cJSON_AddNumberToObject(row, "batch", cmp_batches[b]);
                cJSON_AddStringToObject(row, "pass", passes[k]);
                cJSON_AddNumberToObject(row, "gflop", ours[b].flops * 1e-9);
                cJSON_AddNumberToObject(row, "ours_ms", ours[b].ms[k]);
                cJSON_AddNumberToObject(row, "ours_ms_min", ours[b].ms_min[k]);
                cJSON_AddNumberToObject(row, "ours_gflops", og);
                cJSON_AddStringToObject(row, "ours_impl", ours[b].impl[k]);
                cJSON_AddNumberToObject(row, "ours_reorders_per_call", ours[b].reorders[k]);
                if (tms > 0) {
                    cJSON_AddNumberToObject(row, "torch_ms", tms);
                    cJSON_AddNumberToObject(row, "torch_gflops", tg);
                    cJSON_AddNumberToObject(row, "torch_ms_min", tmin);
                    cJSON_AddNumberToObject(row, "ratio_ours_over_torch", og / tg);
                    cJSON_AddNumberToObject(row, "ratio_ours_over_torch_min", ratio_min);
                    cJSON_AddStringToObject(row, "torch_impl", timpl);
                }
                cJSON_AddItemToArray(cmp_rows, row);
                if (!o.json) {
                    char impl[48];
                    snprintf(impl, sizeof impl, "%.26s (%.1f)", ours[b].impl[k],
                             ours[b].reorders[k]);
                    if (tms > 0)
                        printf("%4d %-11s %9.2f %9.1f %9.2f %9.1f %7.2fx %7.2fx  %-32s %s\n",
                               cmp_batches[b], passes[k], ours[b].ms[k], og, tms, tg, og / tg,
                               ratio_min, impl, timpl);
                    else
                        printf("%4d %-11s %9.2f %9.1f %9s %9s %8s %8s  %-32s\n", cmp_batches[b],
                               passes[k], ours[b].ms[k], og, "-", "-", "-", "-", impl);
                }
            }
        }
    }

    if (o.json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "bench", "bench_ops");
        cJSON_AddStringToObject(root, "date", date);
        cJSON_AddStringToObject(root, "cpu_model", model);
        cJSON_AddStringToObject(root, "backend", be->name);
        cJSON_AddStringToObject(root, "dtype", "f32");
        cJSON_AddNumberToObject(root, "batch", o.batch);
        cJSON_AddNumberToObject(root, "threads", threads);
        cJSON_AddNumberToObject(root, "reps", o.reps);
        cJSON_AddNumberToObject(root, "warmup", o.warmup);
        if (o.only) cJSON_AddStringToObject(root, "only", o.only);
        cJSON *pj = cJSON_AddObjectToObject(root, "peak");
        cJSON_AddNumberToObject(pj, "gflops", pk.gflops);
        cJSON_AddNumberToObject(pj, "gflops_per_core", pk.gflops_per_core);
        cJSON_AddNumberToObject(pj, "threads", pk.threads);
        cJSON_AddStringToObject(pj, "isa", pk.isa);
        cJSON_AddStringToObject(pj, "how", pk.how);
        cJSON *arr = cJSON_AddArrayToObject(root, "results");
        for (int i = 0; i < rs.n; i++) cJSON_AddItemToArray(arr, result_json(&rs.v[i]));
        if (n_conv) {
            cJSON *t = cJSON_AddObjectToObject(root, "conv_step_total");
            cJSON_AddBoolToObject(t, "all_shapes", all_convs);
            cJSON_AddStringToObject(t, "note", "sum over shapes of count x (fwd + bwd_data + "
                                               "bwd_weights) ms; conv1 bwd_data excluded");
            cJSON_AddNumberToObject(t, "ms", step_ms);
            cJSON_AddNumberToObject(t, "fwd_ms", pass_ms[0]);
            cJSON_AddNumberToObject(t, "bwd_data_ms", pass_ms[1]);
            cJSON_AddNumberToObject(t, "bwd_weights_ms", pass_ms[2]);
            cJSON_AddNumberToObject(t, "gflop", step_flops * 1e-9);
            cJSON_AddNumberToObject(t, "gflops", step_flops / step_ms * 1e-6);
            if (pk.gflops > 0)
                cJSON_AddNumberToObject(t, "frac_peak", step_flops / step_ms * 1e-6 / pk.gflops);
            cJSON_AddNumberToObject(t, "images_per_s_upper_bound", o.batch / (step_ms * 1e-3));
        }
        if (o.torch) {
            cJSON *tc = cJSON_AddObjectToObject(root, "torch_compare");
            cJSON_AddStringToObject(tc, "layer", hv->name);
            cJSON_AddItemToObject(tc, "rows", cmp_rows);
            cmp_rows = NULL;
            if (torch_json) {
                cJSON_AddItemToObject(tc, "torch", torch_json);
                torch_json = NULL;
            } else {
                cJSON_AddStringToObject(tc, "skipped", torch_why);
            }
        }
        cJSON_AddNumberToObject(root, "bench_seconds", bench_s);
        cJSON *lj = cJSON_AddObjectToObject(root, "other_load_cpus");
        cJSON_AddStringToObject(lj, "note", "average CPUs used by other processes (+ steal) "
                                            "while each part ran; -1 = unknown / not run");
        cJSON_AddNumberToObject(lj, "peak_and_convs", load_conv);
        cJSON_AddNumberToObject(lj, "bn_pool_eltwise_sgd", load_mem);
        cJSON_AddNumberToObject(lj, "torch_compare", load_torch);
        cJSON_AddNumberToObject(lj, "whole_run", other_cpus);
        char *s = cJSON_Print(root);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(root);
    } else {
        printf("\n(%.1f s of op benchmarks; see docs/benchmarks.md for what the columns mean)\n",
               bench_s);
        if (o.torch) print_load("torch comparison (ours N=8,32 + torch)", load_torch);
        print_load("whole run", other_cpus);
    }
    fflush(stdout);
    double worst = load_conv > load_mem ? load_conv : load_mem;
    if (load_torch > worst) worst = load_torch;
    if (worst > LOAD_WARN_CPUS) {
        fprintf(stderr, "bench_ops: WARNING: other processes used up to %.2f of %d CPUs on "
                "average while parts of this ran (", worst, omp_get_num_procs());
        const char *names[3] = {"peak+convs", "bn/pool/eltwise/sgd", "torch comparison"};
        double vals[3] = {load_conv, load_mem, load_torch};
        for (int i = 0, first = 1; i < 3; i++)
            if (vals[i] >= 0) fprintf(stderr, "%s%s %.2f", first ? "" : ", ", names[i], vals[i]),
                              first = 0;
        fprintf(stderr, "); those timings are pessimistic -- rerun on an idle machine\n");
    }
    cJSON_Delete(cmp_rows);
    cJSON_Delete(torch_json);
    free(rs.v);
    ssd_backend_destroy(be);
    return 0;
}
