/* The network parity suite (issue: "SSD300-ResNet34 and its objective"): our `ssd step` on
 * every built backend against our own PyTorch reference (tools/torchref, written from the
 * spec), given the same weights and batch.
 *
 * The case (tools/torchref/run.py make-case, batch 2, fixed seed) has reference-init weights
 * calibrated so that no ReLU input and no max-pool window of the float64 forward is within
 * rounding distance of a tie (see make-case), float32-exact images and encoder targets for 1-6
 * random boxes per image. The oracle runs in FLOAT64 (run.py step --dtype f64), so the
 * differences below are our float32 rounding alone, not the sum of two float32 errors.
 *
 * Compared, by torch name: loc, conf, the loss and per-image losses, every parameter gradient,
 * every BN running_mean / running_var / num_batches_tracked after the forward, the outputs of
 * an inference-mode forward with the updated statistics (eval.loc / eval.conf), and every
 * parameter after one SGD step (lr 0.01, momentum 0.9, wd 5e-4) together with its update.
 *
 * Metric: normwise relative error ||ours - torch|| / ||torch|| per tensor (a tensor whose
 * torch value is exactly zero must be exactly zero here too). Tolerances, from float32 unit
 * roundoff u = 6e-8 and the measured errors of the calibrated case (cpu / ref, printed by
 * the test; ref accumulates in double, cpu in float32 inside oneDNN):
 *  - forward loc/conf and the inference forward 2e-5 (measured 1.7e-6 / 1.0e-7): 40 convs
 *    with sums of up to 4608 products and 29 batch normalisations, each adding
 *    O(u sqrt(K)) relative error;
 *  - the loss and per-image losses 2e-6 (measured 1.7e-7 / 2.5e-8): a sum of positive
 *    terms inherits the relative error of its inputs;
 *  - parameter gradients 5e-4 (measured worst 4.1e-5 / 2.1e-6, on loc.5.weight): backward
 *    doubles the depth and BN backward subtracts nearly equal per-channel means, which
 *    amplifies relative error; 10x margin. The calibrated case rules out the ReLU and max-pool
 *    mask flips that give O(1e-3..1e-2) errors with uncalibrated weights, so this tolerance
 *    still catches a wrong gradient anywhere (a single wrong term is O(1));
 *  - BN running stats 5e-6 (measured 3.5e-7 / 3.0e-8);
 *  - params after SGD (lr 0.01): ||ours - torch|| <= 4 u ||torch|| + 5e-4 ||torch - p0||,
 *    i.e. float32 storage rounding of the new parameters plus the gradient tolerance applied
 *    to the update itself (a parameter near 0 has an update as inexact as its gradient).
 * Without python3 + torch the test prints SKIPPED with the reason and passes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "io/safetensors.h"
#include "testutil.h"

#define CASE_ARGS "--batch 2 --seed 1"
#define SGD_ARGS "--sgd-lr 0.01 --momentum 0.9 --weight-decay 5e-4"

typedef struct tol_class {
    const char *what;
    double tol;
    double worst;
    char worst_name[160];
    int count;
} tol_class;

enum { C_FWD, C_LOSS, C_GRAD, C_BN, C_SGD, C_EVAL, C_COUNT };
#define GRAD_TOL 5e-4
#define F32_U 5.9604644775390625e-8 /* 2^-24 */

static void classes_init(tol_class *c) {
    tol_class init[C_COUNT] = {
        {"forward loc/conf", 2e-5, 0, "", 0},    {"loss", 2e-6, 0, "", 0},
        {"parameter gradients", 5e-4, 0, "", 0}, {"BN running stats", 5e-6, 0, "", 0},
        {"params after SGD", 1.0, 0, "", 0},     {"inference forward", 2e-5, 0, "", 0},
    };
    memcpy(c, init, sizeof init);
}

static int classify(const char *name) {
    if (strncmp(name, "grad.", 5) == 0) return C_GRAD;
    if (strncmp(name, "sgd.", 4) == 0) return C_SGD;
    if (strncmp(name, "eval.", 5) == 0) return C_EVAL;
    if (strcmp(name, "loss") == 0 || strcmp(name, "per_image_loss") == 0) return C_LOSS;
    if (strcmp(name, "loc") == 0 || strcmp(name, "conf") == 0) return C_FWD;
    return C_BN;
}

/* ||a - b|| / ||b||, with a and b equal-size host tensors; 0/0 = 0, x/0 = inf. */
static double rel_err(const ssd_tensor *a, const ssd_tensor *b) {
    double num = 0, den = 0;
    int64_t n = ssd_tensor_numel(b);
    for (int64_t i = 0; i < n; i++) {
        double x = ssd_tensor_get(a, i), y = ssd_tensor_get(b, i);
        num += (x - y) * (x - y), den += y * y;
    }
    if (isnan(num)) return INFINITY;
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num / den);
}

/* SGD: ||ours - torch|| as a fraction of the budget 4u||torch|| + GRAD_TOL ||torch - p0||
 * (<= 1 passes). */
static double sgd_budget(const ssd_tensor *ours, const ssd_tensor *torch, const ssd_tensor *p0) {
    double num = 0, tn = 0, dn = 0;
    int64_t n = ssd_tensor_numel(p0);
    for (int64_t i = 0; i < n; i++) {
        double p = ssd_tensor_get(p0, i), x = ssd_tensor_get(ours, i), y = ssd_tensor_get(torch, i);
        num += (x - y) * (x - y), tn += y * y, dn += (y - p) * (y - p);
    }
    double budget = 4 * F32_U * sqrt(tn) + GRAD_TOL * sqrt(dn);
    return budget > 0 ? sqrt(num) / budget : (num == 0 ? 0 : INFINITY);
}

static void note(tol_class *c, const char *name, double err) {
    c->count++;
    if (err > c->worst || c->worst_name[0] == 0) {
        c->worst = err;
        snprintf(c->worst_name, sizeof c->worst_name, "%s", name);
    }
    if (!(err <= c->tol)) printf("  FAIL %-48s rel err %.3e > %.0e (%s)\n", name, err, c->tol, c->what);
}

/* Compares every tensor of the torch file with ours; returns the number of failures. */
static int compare(const char *be_name, const ssd_st_file *torch, const ssd_st_file *ours,
                   const ssd_st_file *weights) {
    tol_class cls[C_COUNT];
    classes_init(cls);
    int failures = 0;
    for (int i = 0; i < ssd_st_count(torch); i++) {
        const char *name = ssd_st_name(torch, i);
        const ssd_tensor *t = ssd_st_at(torch, i), *o = ssd_st_get(ours, name);
        if (!o) {
            printf("  FAIL %s: missing from our output\n", name);
            failures++;
            continue;
        }
        if (!ssd_tensor_same_shape(o, t)) {
            printf("  FAIL %s: shape differs\n", name);
            failures++;
            continue;
        }
        int k = classify(name);
        if (t->dtype == SSD_I64) { /* num_batches_tracked */
            bool same = *(const int64_t *)t->data == *(const int64_t *)o->data;
            if (!same) printf("  FAIL %s: %lld vs torch %lld\n", name,
                              (long long)*(const int64_t *)o->data, (long long)*(const int64_t *)t->data);
            failures += !same;
            continue;
        }
        double e;
        if (k == C_SGD) {
            const ssd_tensor *p0 = ssd_st_get(weights, name + 4);
            e = p0 && ssd_tensor_same_shape(p0, t) ? sgd_budget(o, t, p0) : INFINITY;
        } else {
            e = rel_err(o, t);
        }
        note(&cls[k], name, e);
        failures += !(e <= cls[k].tol);
    }
    printf("backend %s vs torch float64 (params after SGD: error / budget):\n", be_name);
    for (int k = 0; k < C_COUNT; k++)
        printf("  %-20s %4d tensors  worst rel err %.3e (%s)  tol %.0e\n", cls[k].what,
               cls[k].count, cls[k].worst, cls[k].worst_name, cls[k].tol);
    if (cls[C_GRAD].count != 131 || cls[C_SGD].count != 131 || cls[C_BN].count != 58) {
        printf("  FAIL expected 131 gradients, 131 SGD params and 58 BN stats from the oracle\n");
        failures++;
    }
    return failures;
}

/* FNV-1a over the oracle's sources and the case arguments: the cache key. */
static uint64_t oracle_key(const char *src) {
    static const char *files[] = {"model.py", "model_cmds.py", "loss.py", "boxes.py", "st.py",
                                  "calibrate.py", "run.py"};
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/tools/torchref/%s", src, files[i]);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        int c;
        while ((c = fgetc(f)) != EOF) h = (h ^ (uint64_t)c) * 1099511628211ull;
        fclose(f);
    }
    const char *args = CASE_ARGS SGD_ARGS;
    for (const char *p = args; *p; p++) h = (h ^ (uint64_t)(unsigned char)*p) * 1099511628211ull;
    return h;
}

/* Makes (or reuses) the case and the torch outputs in dir; 0 on success. The float64 torch
 * step takes minutes on 2 cores, so its results are kept in $SSD_SOURCE_DIR/.cache keyed by
 * the oracle's sources: the Release and the Asan suites share one oracle run. */
static int prepare_oracle(const char *oracle, const char *dir) {
    char marker[1600], cmd[8000];
    snprintf(marker, sizeof marker, "%s/complete", dir);
    if (access(marker, R_OK) == 0) {
        printf("test_model_torch: reusing the oracle outputs in %s\n", dir);
        return 0;
    }
    snprintf(cmd, sizeof cmd, "mkdir -p \"%s\"", dir);
    if (tu_system(cmd)) return -1;
    snprintf(cmd, sizeof cmd,
             "%s make-case --out-weights \"%s/weights.safetensors\" --out-batch "
             "\"%s/batch.safetensors\" " CASE_ARGS,
             oracle, dir, dir);
    if (tu_system(cmd)) return -1;
    snprintf(cmd, sizeof cmd,
             "%s step --weights \"%s/weights.safetensors\" --batch \"%s/batch.safetensors\" "
             "--out \"%s/torch.safetensors\" --dtype f64 --eval " SGD_ARGS,
             oracle, dir, dir, dir);
    if (tu_system(cmd)) return -1;
    /* the bf16 oracles: our bf16 semantics in float64, and PyTorch's own CPU autocast */
    static const char *const bf16_modes[] = {"bf16emu", "autocast"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd,
                 "%s step --weights \"%s/weights.safetensors\" --batch \"%s/batch.safetensors\" "
                 "--out \"%s/torch_%s.safetensors\" --dtype %s --eval " SGD_ARGS,
                 oracle, dir, dir, dir, bf16_modes[i], bf16_modes[i]);
        if (tu_system(cmd)) return -1;
    }
    snprintf(cmd, sizeof cmd, "touch \"%s\"", marker);
    return tu_system(cmd);
}

/* ---- bf16 (ssd step --autocast on cpu) ----
 *
 * One rounding to bf16 moves a value by up to 2^-9 of itself, and a rounding is a step
 * function: a difference of d << one bf16 step in a convolution's sum changes its rounded
 * result by a whole step with probability ~d/step, i.e. an rms change of sqrt(d * step) >> d.
 * Layer after layer, any two bf16 computations that differ at all (f32 against f64 sums, one
 * summation order against another) drift apart until they differ by the full bf16 noise, a
 * few layers in. So at the network's outputs our bf16 step cannot match an oracle better than
 * the oracle's own bf16 noise, however exactly each convolution follows the rule (that is
 * checked op by op in cpu_ops_parity_bf16: equal to the f64 oracle's rounding but for < 0.1%
 * of elements one step apart). Measured on the calibrated case: our bf16 step against
 * bf16emu (the same rule in float64) loc 7.0e-3, loss 1.5e-4, all gradients 7.7e-3; bf16emu
 * against float64 6.1e-3, 1.1e-3, 8.3e-3. The checks, per group of tensors, with
 * noise = ||bf16emu - f64|| / ||f64||:
 *  - ours within BF16_NOISE_K x noise of bf16emu (the bf16 rule, not merely some bf16);
 *  - ours at least BF16_FLOOR_K x noise away from f64 (the rounding happened: an f32 step is
 *    ~1e-6 away);
 *  - ours no further from f64 than AC_K x PyTorch's own CPU autocast step. Where PyTorch's
 *    bf16 convolutions take a generic path (no avx512_bf16: the 2-core Zen 3) it is 10x
 *    further (measured 6.1e-3 vs 0.10 on loc, 5.6e-3 vs 5.6e-2 on the gradients; its CPU
 *    autocast also keeps batch norm, ReLU and the residual sums in bf16, which we keep in f32
 *    as the issue asks). Where both run native bf16 kernels (a Xeon with AMX) the two are two
 *    draws of the same bf16 noise, and a group of a few scalars (the loss group: 3 numbers)
 *    fluctuates by tens of percent between draws: measured ours/PyTorch on AMX loc 6.1e-3 /
 *    7.8e-3, loss 1.24e-3 / 1.20e-3, gradients 5.7e-3 / 6.9e-3. AC_K 1.5 passes that and still
 *    fails a conv whose rounding is biased (truncation instead of nearest even drifts the sums
 *    by half a step per rounding, far beyond the noise of unbiased rounding).
 * The step runs twice: as the CPU computes bf16 by default (oneDNN's native bf16 kernels where
 * the CPU has avx512_bf16, else the emulation) and with SSD_CPU_MATH=bf16emu (the emulation on
 * the f32 kernels, where the CPU has bf16 too). */
#define BF16_NOISE_K 3.0
#define BF16_FLOOR_K 0.2
#define AC_K 1.5

typedef struct bf16_group {
    const char *what, *prefix; /* tensors whose name starts with prefix (exact name if no '.') */
    bool floor;                /* whether the "rounding happened" floor applies */
} bf16_group;

static bool in_group(const bf16_group *g, const char *name) {
    size_t n = strlen(g->prefix);
    if (g->prefix[n - 1] == '.') return strncmp(name, g->prefix, n) == 0;
    if (!strcmp(g->prefix, "running")) return strstr(name, ".running_") != NULL;
    return strcmp(name, g->prefix) == 0;
}

/* ||a - b|| / ||b|| over all tensors of b in group g; -1 if a lacks one */
static double group_rel(const ssd_st_file *a, const ssd_st_file *b, const bf16_group *g) {
    double num = 0, den = 0;
    for (int i = 0; i < ssd_st_count(b); i++) {
        const char *name = ssd_st_name(b, i);
        if (!in_group(g, name)) continue;
        const ssd_tensor *tb = ssd_st_at(b, i), *ta = ssd_st_get(a, name);
        if (!ta || !ssd_tensor_same_shape(ta, tb)) return -1;
        for (int64_t j = 0; j < ssd_tensor_numel(tb); j++) {
            double x = ssd_tensor_get(ta, j), y = ssd_tensor_get(tb, j);
            num += (x - y) * (x - y), den += y * y;
        }
    }
    if (isnan(num) || den == 0) return INFINITY;
    return sqrt(num / den);
}

static int compare_bf16(const char *label, const ssd_st_file *f64, const ssd_st_file *emu,
                        const ssd_st_file *ac, const ssd_st_file *ours, const ssd_st_file *ours32) {
    static const bf16_group groups[] = {
        {"loc", "loc", true},           {"conf", "conf", true},
        {"loss", "loss", true},         {"parameter gradients", "grad.", true},
        {"inference loc", "eval.loc", true}, {"BN running stats", "running", false},
        {"params after SGD", "sgd.", false},
    };
    int failures = 0;
    printf("backend cpu --autocast (bf16, %s) vs the torch oracles: ||x - y|| / ||y|| per group\n",
           label);
    printf("  %-20s %10s %10s %10s %10s %10s %10s\n", "", "ours-emu", "noise", "ours-f64",
           "torchAC-f64", "ours-ours32", "verdict");
    for (size_t k = 0; k < sizeof groups / sizeof groups[0]; k++) {
        const bf16_group *g = &groups[k];
        double e_emu = group_rel(ours, emu, g), noise = group_rel(emu, f64, g);
        double e_f64 = group_rel(ours, f64, g), e_ac = group_rel(ac, f64, g);
        double e_32 = group_rel(ours, ours32, g);
        bool ok = e_emu >= 0 && e_emu <= BF16_NOISE_K * noise && e_f64 >= 0 &&
                  e_f64 <= AC_K * e_ac &&
                  (!g->floor || e_f64 >= BF16_FLOOR_K * noise);
        printf("  %-20s %10.3e %10.3e %10.3e %10.3e %10.3e %10s\n", g->what, e_emu, noise, e_f64,
               e_ac, e_32, ok ? "ok" : "FAIL");
        failures += !ok;
    }
    printf("  (ok: ours-emu <= %.0f x noise, ours-f64 <= %.1f x torchAC-f64, and ours-f64 >= "
           "%.1f x noise where the rounding must show)\n", BF16_NOISE_K, AC_K, BF16_FLOOR_K);
    return failures;
}

/* `ssd step --backend cpu --autocast` on the case, against the bf16 oracles; ours32 is the
 * f32 cpu step just compared. Returns the number of failures. */
static int run_bf16(const char *build, const char *dir, const char *scratch,
                    const ssd_st_file *f64, const ssd_st_file *ours32, bool emulated) {
    char cmd[8000], path[1600];
    snprintf(cmd, sizeof cmd,
             "%s\"%s/ssd\" step --backend cpu --autocast --weights \"%s/weights.safetensors\" "
             "--batch \"%s/batch.safetensors\" --out \"%s/ours_cpu_bf16.safetensors\" --eval "
             SGD_ARGS, emulated ? "SSD_CPU_MATH=bf16emu " : "", build, dir, dir, scratch);
    if (tu_system(cmd)) return 1;
    const char *names[3] = {"torch_bf16emu", "torch_autocast", NULL};
    ssd_st_file *f[3] = {NULL, NULL, NULL};
    ssd_error err;
    int failures = 0;
    for (int i = 0; i < 3; i++) {
        if (names[i])
            snprintf(path, sizeof path, "%s/%s.safetensors", dir, names[i]);
        else
            snprintf(path, sizeof path, "%s/ours_cpu_bf16.safetensors", scratch);
        if (ssd_st_read(path, &f[i], &err) != SSD_OK) {
            printf("test_model_torch: %s\n", err.msg);
            failures = 1;
        }
    }
    if (!failures)
        failures = compare_bf16(emulated ? "emulated: SSD_CPU_MATH=bf16emu"
                                : __builtin_cpu_supports("avx512bf16") ? "native bf16 kernels"
                                                                       : "emulated: no avx512_bf16",
                                f64, f[0], f[1], f[2], ours32);
    for (int i = 0; i < 3; i++) ssd_st_free(f[i]);
    return failures;
}

int main(void) {
    char oracle[2600];
    int prep = tu_torch_oracle("test_model_torch", oracle, sizeof oracle);
    if (prep > 0) return 0;
    if (prep < 0) return 1;
    const char *src = tu_env("SSD_SOURCE_DIR"), *build = tu_env("SSD_BUILD_DIR");
    if (!build) {
        tu_skip("test_model_torch", "SSD_BUILD_DIR is not set (run through ctest)");
        return 0;
    }
    char dir[1400], scratch[1200], cmd[8000];
    snprintf(dir, sizeof dir, "%s/.cache/torchref-%016llx", src, (unsigned long long)oracle_key(src));
    if (prepare_oracle(oracle, dir)) {
        printf("test_model_torch: FAILED to build the oracle outputs with python+torch present\n");
        return 1;
    }
    tu_scratch_dir("test_model_torch", scratch, sizeof scratch);
    ssd_error err;
    ssd_st_file *torch = NULL, *weights = NULL;
    char path[1600];
    snprintf(path, sizeof path, "%s/torch.safetensors", dir);
    if (ssd_st_read(path, &torch, &err) != SSD_OK) {
        printf("test_model_torch: %s\n", err.msg);
        return 1;
    }
    snprintf(path, sizeof path, "%s/weights.safetensors", dir);
    if (ssd_st_read(path, &weights, &err) != SSD_OK) {
        printf("test_model_torch: %s\n", err.msg);
        return 1;
    }
    int failures = 0, ran = 0, gpu_skipped = 0;
    const char *only = tu_env("SSD_PARITY_BACKENDS");
    /* every backend, and the cpu backend once more with its Winograd path off (SSD_WINOGRAD=0:
     * oneDNN's direct kernels), so both conv implementations meet the same budgets */
    const char *runs[16][2];
    int nruns = 0;
    for (const char *const *be = ssd_backend_names(); *be && nruns < 14; be++) {
        runs[nruns][0] = *be;
        runs[nruns++][1] = "";
        if (!strcmp(*be, "cpu")) {
            runs[nruns][0] = *be;
            runs[nruns++][1] = "SSD_WINOGRAD=0 ";
        }
    }
    for (int i = 0; i < nruns; i++) {
        const char *be = runs[i][0], *env = runs[i][1];
        if (only && !strstr(only, be)) {
            printf("test_model_torch: backend %s not run in this build (SSD_PARITY_BACKENDS=%s)\n",
                   be, only);
            continue;
        }
        if (!strcmp(be, "cuda")) {
            char why[SSD_ERROR_MSG_LEN];
            if (!only) {
                printf("test_model_torch: cuda runs in gpu_model_torch (ctest label gpu)\n");
                continue;
            }
            if (!tu_backend_starts(be, why, sizeof why)) {
                tu_skip("test_model_torch (cuda)", why);
                gpu_skipped++;
                continue;
            }
        }
        ran++;
        char label[64];
        snprintf(label, sizeof label, "%s%s", be, env[0] ? " (direct)" : "");
        snprintf(cmd, sizeof cmd,
                 "%s\"%s/ssd\" step --backend %s --weights \"%s/weights.safetensors\" --batch "
                 "\"%s/batch.safetensors\" --out \"%s/ours_%s%d.safetensors\" --eval " SGD_ARGS,
                 env, build, be, dir, dir, scratch, be, i);
        if (tu_system(cmd)) {
            failures++;
            continue;
        }
        ssd_st_file *ours = NULL;
        snprintf(path, sizeof path, "%s/ours_%s%d.safetensors", scratch, be, i);
        if (ssd_st_read(path, &ours, &err) != SSD_OK) {
            printf("test_model_torch: %s\n", err.msg);
            failures++;
            continue;
        }
        failures += compare(label, torch, ours, weights);
        if (!strcmp(be, "cpu") && !env[0]) {
            failures += run_bf16(build, dir, scratch, torch, ours, false);
            if (__builtin_cpu_supports("avx512bf16")) /* else the run above was the emulation */
                failures += run_bf16(build, dir, scratch, torch, ours, true);
        }
        ssd_st_free(ours);
    }
    ssd_st_free(torch);
    ssd_st_free(weights);
    printf("test_model_torch: %s (%d failures)\n", failures ? "FAILED" : "passed", failures);
    if (!failures && !ran && gpu_skipped) return 77; /* only a GPU run was asked for: skipped */
    return failures ? 1 : 0;
}
