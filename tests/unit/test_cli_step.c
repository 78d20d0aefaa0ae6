/* `ssd step` as a user meets it: a real run on a generated batch writes every promised tensor
 * by name; bad flags are usage errors (exit 2); missing, truncated or malformed inputs give an
 * error naming the file and the problem (exit 1) and leave no output file behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "box/anchors.h"
#include "core/mem.h"
#include "io/safetensors.h"
#include "testutil.h"

static char g_dir[1024];
static char g_ssd[1200];

static const char *path_of(const char *name) {
    static char buf[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

/* Runs `ssd step ARGS`, capturing stderr+stdout into `log`; returns the exit status. */
static int run_step(const char *args, char *log, size_t len) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "\"%s\" step %s", g_ssd, args);
    return tu_run_capture(cmd, path_of("log.txt"), log, len);
}

/* A batch of n images: a smooth image, one box per image encoded by hand on anchor 7964
 * (positive) and background elsewhere, label `bad_label` at anchor 0 if >= 0. */
static void write_batch(const char *path, int n, int64_t bad_label) {
    int64_t is[4] = {n, 3, SSD_IMAGE_SIZE, SSD_IMAGE_SIZE}, bs[3] = {n, SSD_NUM_ANCHORS, 4},
            ls[2] = {n, SSD_NUM_ANCHORS};
    ssd_tensor im = ssd_tensor_alloc_host(SSD_F32, 4, is, "images");
    ssd_tensor bb = ssd_tensor_alloc_host(SSD_F32, 3, bs, "bboxes");
    ssd_tensor lb = ssd_tensor_alloc_host(SSD_I64, 2, ls, "labels");
    ssd_anchors *a = ssd_xmalloc(sizeof *a);
    ssd_anchors_build(a);
    float *x = im.data, *b = bb.data;
    int64_t *l = lb.data;
    for (int64_t i = 0; i < ssd_tensor_numel(&im); i++) x[i] = (float)((i % 617) / 617.0 - 0.5);
    for (int k = 0; k < n; k++)
        for (int j = 0; j < SSD_NUM_ANCHORS; j++) {
            memcpy(&b[((size_t)k * SSD_NUM_ANCHORS + j) * 4], a->xywh[j], 4 * sizeof(float));
            l[(size_t)k * SSD_NUM_ANCHORS + j] = 0;
        }
    const float box[4] = {0.25f, 0.30f, 0.30f, 0.40f}; /* spec 4 golden: positive at 7964 */
    for (int k = 0; k < n; k++) {
        memcpy(&b[((size_t)k * SSD_NUM_ANCHORS + 7964) * 4], box, sizeof box);
        l[(size_t)k * SSD_NUM_ANCHORS + 7964] = 7;
    }
    if (bad_label >= 0) l[0] = bad_label;
    const ssd_tensor *list[3] = {&im, &bb, &lb};
    ssd_error err;
    assert_int_equal(ssd_st_write(path, list, 3, &err), SSD_OK);
    free(a);
    ssd_tensor_free(&im);
    ssd_tensor_free(&bb);
    ssd_tensor_free(&lb);
}

static void truncate_copy(const char *src, const char *dst, long keep) {
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "head -c %ld \"%s\" > \"%s\"", keep, src, dst);
    assert_int_equal(system(cmd), 0);
}

static void test_run_and_outputs(void **state) {
    (void)state;
    char log[8192], args[3000];
    write_batch(path_of("b1.safetensors"), 1, -1);
    unlink(path_of("o1.safetensors"));
    snprintf(args, sizeof args, "--batch \"%s\" --out \"%s\" --eval --sgd-lr 0.01",
             path_of("b1.safetensors"), path_of("o1.safetensors"));
    assert_int_equal(run_step(args, log, sizeof log), 0);
    assert_non_null(strstr(log, "ssd step: backend"));
    ssd_st_file *f = NULL;
    ssd_error err;
    assert_int_equal(ssd_st_read(path_of("o1.safetensors"), &f, &err), SSD_OK);
    /* 4 outputs + 131 gradients + 29*3 BN buffers + 131 sgd params + 2 eval outputs */
    assert_int_equal(ssd_st_count(f), 4 + 131 + 87 + 131 + 2);
    const char *must[] = {"loc", "conf", "loss", "per_image_loss", "grad.conf.5.bias",
                          "grad.model.layer1.0.weight", "model.layer2.0.5.bn2.running_var",
                          "model.layer1.1.num_batches_tracked", "sgd.loc.0.weight", "eval.conf"};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++) {
        if (!ssd_st_get(f, must[i])) fail_msg("output lacks %s", must[i]);
    }
    const ssd_tensor *loss = ssd_st_get(f, "loss");
    assert_true(ssd_tensor_get(loss, 0) > 0);
    assert_int_equal(*(const int64_t *)ssd_st_get(f, "model.layer1.1.num_batches_tracked")->data, 1);
    ssd_st_free(f);
}

static void test_usage_errors(void **state) {
    (void)state;
    char log[8192], args[3000];
    assert_int_equal(run_step("--frobnicate 3", log, sizeof log), 2);
    assert_non_null(strstr(log, "unknown option '--frobnicate'"));
    assert_int_equal(run_step("--batch b.safetensors", log, sizeof log), 2);
    assert_non_null(strstr(log, "missing required option --out"));
    snprintf(args, sizeof args, "--batch x --out y --sgd-lr fast");
    assert_int_equal(run_step(args, log, sizeof log), 2);
    assert_non_null(strstr(log, "--sgd-lr: 'fast' is not a number"));
    assert_int_equal(run_step("--help", log, sizeof log), 0);
    assert_non_null(strstr(log, "usage: ssd step"));
}

static void expect_input_error(const char *batch, const char *weights, const char *backend,
                               const char *needle) {
    char log[8192], args[3000], out[1200];
    snprintf(out, sizeof out, "%s", path_of("never.safetensors"));
    unlink(out);
    snprintf(args, sizeof args, "--batch \"%s\" --out \"%s\"%s%s%s%s", batch, out,
             weights ? " --weights " : "", weights ? weights : "", backend ? " --backend " : "",
             backend ? backend : "");
    assert_int_equal(run_step(args, log, sizeof log), 1);
    if (!strstr(log, needle)) fail_msg("expected '%s' in the message", needle);
    assert_int_not_equal(access(out, F_OK), 0); /* nothing written */
}

static void test_input_errors(void **state) {
    (void)state;
    char good[1200];
    snprintf(good, sizeof good, "%s", path_of("b1.safetensors"));
    write_batch(good, 1, -1);
    expect_input_error(path_of("does_not_exist.safetensors"), NULL, NULL, "does_not_exist.safetensors");
    truncate_copy(good, path_of("trunc.safetensors"), 5000);
    expect_input_error(path_of("trunc.safetensors"), NULL, NULL, "trunc.safetensors");
    write_batch(path_of("badlabel.safetensors"), 1, 81);
    expect_input_error(path_of("badlabel.safetensors"), NULL, NULL, "labels[0][0] = 81 is outside 0..80");
    /* weights file that is a batch file: the first missing parameter is named */
    expect_input_error(good, good, NULL, "missing tensor 'model.layer1.0.weight'");
    expect_input_error(good, NULL, "tpu", "tpu");
}

int main(void) {
    const char *build = tu_env("SSD_BUILD_DIR");
    if (!build) {
        tu_skip("test_cli_step", "SSD_BUILD_DIR is not set (run through ctest)");
        return 0;
    }
    snprintf(g_ssd, sizeof g_ssd, "%s/ssd", build);
    tu_scratch_dir("test_cli_step", g_dir, sizeof g_dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_input_errors),
        cmocka_unit_test(test_run_and_outputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
