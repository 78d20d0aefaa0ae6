/* A short training run on the cuda backend tracks the same run on the CPU (ctest gpu_train,
 * label gpu; without a usable GPU it prints SKIPPED with the reason and exits 77).
 *
 * Both runs start from the same seed (same initial weights, same batches and augmentation):
 * `ssd train` on an `ssd synth` set, 12 steps of batch 4 with the reference schedule's warmup.
 * The oracle is the host run (cpu when built, else ref) on the same binary. Compared per step,
 * from OUTPUT/curves.jsonl:
 * - step 1 (same weights, same batch; only float32 rounding in a different order):
 *   |loss_gpu - loss_cpu| <= STEP1_TOL * loss_cpu. The network parity suite measures forward
 *   errors of ~1e-6 relative; 1e-4 leaves room for cuDNN's other summation orders.
 * - every step: within TRACK_TOL (5%). SSD's hard-negative mining picks the top-k negatives, so
 *   rounding differences change which anchors are picked and the trajectories part slowly;
 *   a wrong kernel (gradient sign, BN statistics, SGD) moves the loss by far more within 12
 *   steps.
 * - both runs learn: the mean loss of the last 3 steps is below the first step's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define STEPS 12
#define STEP1_TOL 1e-4
#define TRACK_TOL 0.05

static char g_ssd[1200], g_dir[1024];
static char g_log[1 << 20];

static int run(const char *args) {
    char cmd[6000];
    snprintf(cmd, sizeof cmd, "\"%s\" %s", g_ssd, args);
    return tu_run_capture(cmd, tu_fmt("%s/cmd.log", g_dir), g_log, sizeof g_log);
}

/* The losses of the step lines of OUTPUT/curves.jsonl, in order; returns how many. */
static int read_losses(const char *out_dir, double *loss, int max) {
    FILE *f = fopen(tu_fmt("%s/curves.jsonl", out_dir), "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        if (!strstr(line, "\"type\": \"step\"") && !strstr(line, "\"type\":\"step\"")) continue;
        const char *p = strstr(line, "\"loss\":");
        assert_non_null(p);
        loss[n++] = strtod(p + 7, NULL);
    }
    fclose(f);
    return n;
}

static void test_gpu_tracks_cpu(void **state) {
    (void)state;
    const char *host = ssd_backend_default_name();
    char data[1400], cpu_out[1400], gpu_out[1400], args[4000];
    snprintf(data, sizeof data, "%s/synth", g_dir);
    snprintf(cpu_out, sizeof cpu_out, "%s/run-%s", g_dir, host);
    snprintf(gpu_out, sizeof gpu_out, "%s/run-cuda", g_dir);
    assert_int_equal(run(tu_fmt("synth --out '%s' --images 16 --val-images 4 --seed 5", data)), 0);
    const char *common = "-b 4 --epochs 10 --end-iteration 12 --val-interval 0 --seed 7 "
                         "--num-workers 1 --warmup 4 --log-interval 1 --no-progress-line "
                         "--no-save --cache-dir ''";
    snprintf(args, sizeof args, "train --backend %s --data '%s' --output '%s' %s", host, data,
             cpu_out, common);
    assert_int_equal(run(args), 0);
    snprintf(args, sizeof args, "train --backend cuda --data '%s' --output '%s' %s", data,
             gpu_out, common);
    if (run(args) != 0) fail_msg("ssd train --backend cuda failed:\n%s", g_log);
    double lc[STEPS + 4], lg[STEPS + 4];
    int nc = read_losses(cpu_out, lc, STEPS + 4), ng = read_losses(gpu_out, lg, STEPS + 4);
    assert_int_equal(nc, STEPS);
    assert_int_equal(ng, STEPS);
    double worst = 0.0;
    for (int i = 0; i < STEPS; i++) {
        double rel = fabs(lg[i] - lc[i]) / fabs(lc[i]);
        printf("step %2d  loss %s %.6f  cuda %.6f  rel diff %.2e\n", i + 1, host, lc[i], lg[i],
               rel);
        if (rel > worst) worst = rel;
        assert_true(isfinite(lg[i]));
        if (i == 0) assert_true(rel <= STEP1_TOL);
        assert_true(rel <= TRACK_TOL);
    }
    double tail_c = (lc[STEPS - 1] + lc[STEPS - 2] + lc[STEPS - 3]) / 3;
    double tail_g = (lg[STEPS - 1] + lg[STEPS - 2] + lg[STEPS - 3]) / 3;
    printf("worst per-step relative difference %.2e; last-3 mean %s %.4f cuda %.4f (step 1: "
           "%.4f)\n",
           worst, host, tail_c, tail_g, lc[0]);
    assert_true(tail_c < lc[0]);
    assert_true(tail_g < lg[0]);
}

int main(void) {
    char why[SSD_ERROR_MSG_LEN];
    if (!tu_backend_starts("cuda", why, sizeof why)) {
        tu_skip("test_gpu_train", why);
        return 77;
    }
    const char *b = tu_env("SSD_BUILD_DIR");
    if (!b) {
        tu_skip("test_gpu_train", "SSD_BUILD_DIR is not set (run through ctest)");
        return 77;
    }
    snprintf(g_ssd, sizeof g_ssd, "%s/ssd", b);
    tu_scratch_dir("test_gpu_train", g_dir, sizeof g_dir);
    if (tu_system(tu_fmt("rm -rf '%s'/* && mkdir -p '%s'", g_dir, g_dir))) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_gpu_tracks_cpu)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
