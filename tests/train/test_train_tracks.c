/* Short training runs on the cpu backend track each other (issue: bf16 autocast and a fast CPU
 * step): with bf16 convolutions (`ssd train --autocast`) against f32 ("a short training run
 * whose loss tracks the fp32 run"), and f32 with the default Winograd convolutions against
 * oneDNN's direct kernels (`--no-winograd`; "a short training run showing the loss curve is
 * unaffected").
 *
 * The runs start from the same seed (same initial weights, batches and augmentation): `ssd
 * train` on an `ssd synth` set, 12 steps of batch 4 with the reference schedule's warmup (the
 * learning rate is 0 at step 1), the configuration of test_gpu_train. Compared per step, from
 * OUTPUT/curves.jsonl:
 * - steps 1 and 2 (the same weights; two batches): bf16 rounds every convolution's operands and
 *   results to 8 significant bits (~1e-3 relative per rounding); the loss of the calibrated
 *   parity case moved by 1.3e-3 (test_model_torch), these moved by 1e-4 and 4.2e-4:
 *   |loss_bf16 - loss_f32| <= EARLY_TOL * loss_f32 with EARLY_TOL 5e-3.
 * - the whole run: from random weights the hard-negative mining turns any rounding difference
 *   into one that grows step by step, so the yardstick is the divergence of two f32 runs that
 *   differ only in rounding (with and without Winograd, measured 5.4% at step 12): the bf16
 *   run's largest relative difference must stay within ENVELOPE x that + 1e-3 + EXTRA (bf16's
 *   rounding is ~2^16 x f32's, so its trajectory parts sooner). A wrong kernel (a gradient
 *   sign, a missing rounding of the gradient into the f32 master, BN statistics) moves the loss
 *   by O(1) within a few steps.
 * - Winograd against direct: steps 1-2 differ by f32 rounding alone, WINO_EARLY_TOL 1e-5
 *   (measured 2.3e-7; test_model_torch allows 2e-5 on the forward); the whole run within
 *   WINO_FLAT 0.15, test_gpu_train's flat bound for two f32 runs (measured 3.6e-2 at step 12).
 * - every run learns: the mean loss of the last 3 steps is below the first step's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define STEPS TU_TRACK_STEPS
#define EARLY_TOL 5e-3
#define ENVELOPE 3.0
#define EXTRA 0.05
#define WINO_EARLY_TOL 1e-5
#define WINO_FLAT 0.15

static char g_ssd[1200], g_dir[1024];
static char g_log[1 << 20];

static void test_bf16_tracks_f32(void **state) {
    (void)state;
    const char *names[3] = {"f32", "bf16", "f32-direct"};
    const char *flags[3] = {"", "--autocast", "--no-winograd"};
    double loss[3][STEPS];
    for (int k = 0; k < 3; k++) {
        tu_track_run(g_ssd, g_dir, "cpu", flags[k], names[k], loss[k], g_log, sizeof g_log);
        if (k == 1 && !strstr(g_log, "cpu bf16:")) fail_msg("--autocast did not say it ran bf16");
    }
    for (int i = 0; i < STEPS; i++) {
        printf("step %2d  loss f32 %.6f  bf16 %.6f (rel %.2e)  f32-direct %.6f (rel %.2e)\n",
               i + 1, loss[0][i], loss[1][i], fabs(loss[1][i] - loss[0][i]) / loss[0][i],
               loss[2][i], fabs(loss[2][i] - loss[0][i]) / loss[0][i]);
        assert_true(isfinite(loss[1][i]));
    }
    double early = tu_max_rel(loss[1], loss[0], 2), whole = tu_max_rel(loss[1], loss[0], STEPS);
    double bound = ENVELOPE * tu_max_rel(loss[2], loss[0], STEPS) + 1e-3 + EXTRA;
    printf("bf16 vs f32: steps 1-2 %.2e (tol %.0e); whole run %.3e (bound %.3e = 3 x the f32 "
           "pair + 1e-3 + %.2f)\n", early, EARLY_TOL, whole, bound, EXTRA);
    /* the rounding is there: bf16 and f32 cannot give the same losses */
    assert_true(early > 0);
    assert_true(early <= EARLY_TOL);
    assert_true(whole <= bound);
    double wearly = tu_max_rel(loss[0], loss[2], 2), wwhole = tu_max_rel(loss[0], loss[2], STEPS);
    printf("winograd vs direct: steps 1-2 %.2e (tol %.0e); whole run %.3e (tol %.2f)\n", wearly,
           WINO_EARLY_TOL, wwhole, WINO_FLAT);
    assert_true(wearly <= WINO_EARLY_TOL);
    assert_true(wwhole <= WINO_FLAT);
    for (int k = 0; k < 3; k++) {
        double tail = (loss[k][STEPS - 1] + loss[k][STEPS - 2] + loss[k][STEPS - 3]) / 3;
        printf("%s: step 1 %.4f, mean of the last 3 steps %.4f\n", names[k], loss[k][0], tail);
        assert_true(tail < loss[k][0]);
    }
}

int main(void) {
    if (strcmp(ssd_backend_default_name(), "cpu")) {
        tu_skip("test_train_tracks", "the cpu backend is not built (no oneDNN)");
        return 77;
    }
    const char *b = tu_env("SSD_BUILD_DIR");
    if (!b) {
        tu_skip("test_train_tracks", "SSD_BUILD_DIR is not set (run through ctest)");
        return 77;
    }
    snprintf(g_ssd, sizeof g_ssd, "%s/ssd", b);
    tu_scratch_dir("test_train_tracks", g_dir, sizeof g_dir);
    if (tu_system(tu_fmt("rm -rf '%s'/* && mkdir -p '%s'", g_dir, g_dir))) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_bf16_tracks_f32)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
