/* The validating dispatch layer and the backend registry: a violated precondition aborts with
 * a message naming the op, the argument and the shapes (checked in a forked child), unknown
 * backends give a clear status, and log lines are rank-aware. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "testutil.h"

/* Runs fn in a child with stderr captured; returns the child's stderr and asserts it aborted. */
static char *run_dying(void (*fn)(void)) {
    char path[] = "/tmp/ssd_dispatch_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd, 2);
        fn();
        _exit(0); /* not reached if the dispatch layer does its job */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    static char buf[4096];
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    return buf;
}

/* A conv forward on ref with the given input, weight and output shapes (f32). */
static void conv_with_shapes(const int64_t *xs, const int64_t *ws, const int64_t *ys) {
    ssd_backend *be = ssd_backend_ref_create();
    ssd_tensor x = ssd_backend_tensor_alloc(be, SSD_F32, 4, xs, "x");
    ssd_tensor w = ssd_backend_tensor_alloc(be, SSD_F32, 4, ws, "conv.weight");
    ssd_tensor y = ssd_backend_tensor_alloc(be, SSD_F32, 4, ys, "y");
    ssd_conv_desc d = {1, 1, 1, 1};
    ssd_conv2d_forward(be, &y, &x, &w, NULL, &d);
}

static void bad_conv_output(void) {
    int64_t xs[4] = {1, 3, 8, 8}, ws[4] = {4, 3, 3, 3}, ys[4] = {1, 4, 7, 8};
    conv_with_shapes(xs, ws, ys);
}

static void bad_conv_channels(void) {
    int64_t xs[4] = {1, 3, 8, 8}, ws[4] = {4, 5, 3, 3}, ys[4] = {1, 4, 8, 8};
    conv_with_shapes(xs, ws, ys);
}

static void bad_dtype(void) {
    ssd_backend *be = ssd_backend_ref_create();
    int64_t s[1] = {10};
    ssd_tensor a = ssd_backend_tensor_alloc(be, SSD_F32, 1, s, "a");
    ssd_tensor b = ssd_backend_tensor_alloc(be, SSD_F64, 1, s, "b");
    ssd_add(be, &a, &a, &b);
}

static void bad_bn_param(void) {
    ssd_backend *be = ssd_backend_ref_create();
    int64_t xs[4] = {2, 8, 4, 4}, cs[1] = {7};
    ssd_tensor x = ssd_backend_tensor_alloc(be, SSD_F32, 4, xs, "x");
    ssd_tensor y = ssd_backend_tensor_alloc(be, SSD_F32, 4, xs, "y");
    ssd_tensor c = ssd_backend_tensor_alloc(be, SSD_F32, 1, cs, "bn.weight");
    ssd_bn_desc d = {1e-5, 0.1, true};
    ssd_batchnorm_infer_forward(be, &y, &x, &c, &c, &c, &c, NULL, &d);
}

static void bf16_on_ref(void) {
    ssd_backend *be = ssd_backend_ref_create();
    int64_t s[1] = {4};
    ssd_tensor a = ssd_backend_tensor_alloc(be, SSD_BF16, 1, s, "a");
    ssd_fill(be, &a, 1.0);
}

/* a ReLU on a 4-d f32 tensor `name` of c channels in `layout`, on backend `be` */
static void relu_in_layout(ssd_backend *be, ssd_layout layout, int64_t c, const char *name) {
    int64_t s[4] = {1, c, 2, 2};
    ssd_tensor a = ssd_backend_tensor_alloc(be, SSD_F32, 4, s, name);
    a.layout = layout;
    ssd_relu_forward(be, &a, &a);
}

/* a channels-last or nChw16c tensor on ref, which has no activation form */
static void nhwc_on_ref(void) { relu_in_layout(ssd_backend_ref_create(), SSD_LAYOUT_NHWC, 4, "act"); }
static void blocked_on_ref(void) {
    relu_in_layout(ssd_backend_ref_create(), SSD_LAYOUT_NCHW16C, 16, "act16");
}

#ifdef SSD_HAVE_CPU
static bool cpu_blocked(void) {
    ssd_backend *be = NULL;
    ssd_error err;
    if (ssd_backend_create("cpu", &be, &err) != SSD_OK) return false;
    const bool b = be->act_custom && be->act_layout == SSD_LAYOUT_NCHW16C;
    ssd_backend_destroy(be);
    return b;
}

/* one whose channels do not fill whole blocks on cpu's f32 form */
static void blocked_partial(void) {
    ssd_backend *be = NULL;
    ssd_error err;
    if (ssd_backend_create("cpu", &be, &err) != SSD_OK) return;
    relu_in_layout(be, SSD_LAYOUT_NCHW16C, 24, "act24");
}
#endif

/* copy_rows whose last row would end past dst / whose ranges overlap. */
static void copy_rows_past_end(void) {
    ssd_backend *be = ssd_backend_ref_create();
    int64_t s[1] = {100};
    ssd_tensor a = ssd_backend_tensor_alloc(be, SSD_F32, 1, s, "heads");
    ssd_tensor b = ssd_backend_tensor_alloc(be, SSD_F32, 1, s, "loc");
    ssd_copy_rows(be, &b, 10, 30, &a, 0, 10, 4, 10); /* ends at 10 + 3*30 + 10 = 110 */
}

static void copy_rows_overlap(void) {
    ssd_backend *be = ssd_backend_ref_create();
    int64_t s[1] = {100};
    ssd_tensor a = ssd_backend_tensor_alloc(be, SSD_F32, 1, s, "buf");
    ssd_copy_rows(be, &a, 5, 10, &a, 0, 10, 3, 10);
}

static void test_dispatch_aborts(void **state) {
    (void)state;
    char *m = run_dying(bad_conv_output);
    assert_non_null(strstr(m, "conv2d_forward: output ('y') has shape (1,4,7,8), expected (1,4,8,8)"));
    m = run_dying(bad_conv_channels);
    assert_non_null(strstr(m, "weight 'conv.weight' has 5 input channels, input has 3"));
    m = run_dying(bad_dtype);
    assert_non_null(strstr(m, "add"));
    assert_non_null(strstr(m, "f64"));
    m = run_dying(bad_bn_param);
    assert_non_null(strstr(m, "gamma ('bn.weight') has shape (7), expected (8)"));
    m = run_dying(bf16_on_ref);
    assert_non_null(strstr(m, "backend ref does not run fill in bf16"));
    m = run_dying(nhwc_on_ref);
    assert_non_null(strstr(m, "input ('act') is a 4-d f32 channels-last tensor, not backend ref's activation form"));
    m = run_dying(blocked_on_ref);
    assert_non_null(strstr(m, "input ('act16') is a 4-d f32 nChw16c tensor, not backend ref's activation form"));
#ifdef SSD_HAVE_CPU
    if (cpu_blocked()) {
        m = run_dying(blocked_partial);
        assert_non_null(strstr(m, "input ('act24') is nChw16c with 24 channels, not a multiple of 16"));
    }
#endif
    m = run_dying(copy_rows_past_end);
    assert_non_null(strstr(m, "copy_rows: writes past dst ('loc', 100 elements)"));
    m = run_dying(copy_rows_overlap);
    assert_non_null(strstr(m, "copy_rows: src and dst ranges overlap"));
}

static void test_registry(void **state) {
    (void)state;
    ssd_backend *be = NULL;
    ssd_error err;
    assert_int_equal(ssd_backend_create("ref", &be, &err), SSD_OK);
    assert_string_equal(be->name, "ref");
    ssd_backend_destroy(be);
    assert_int_equal(ssd_backend_create("tpu", &be, &err), SSD_ERR_ARG);
    assert_null(be);
    assert_non_null(strstr(err.msg, "unknown backend 'tpu' (available: ref"));
#ifdef SSD_HAVE_CUDA
    /* built: it starts where a GPU is, and says why not elsewhere */
    if (ssd_backend_create("cuda", &be, &err) == SSD_OK) {
        assert_string_equal(be->name, "cuda");
        ssd_backend_destroy(be);
    } else {
        assert_int_equal(err.code, SSD_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, "backend 'cuda'"));
        assert_null(be);
    }
#else
    /* not built: it is reported as not built, not as unknown */
    assert_int_equal(ssd_backend_create("cuda", &be, &err), SSD_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "not built into this binary"));
#endif
    const char *const *names = ssd_backend_names();
    assert_string_equal(names[0], "ref");
#ifdef SSD_HAVE_CPU
    assert_string_equal(names[1], "cpu");
#endif
}

static void log_child(void) {
    ssd_log_set_rank(1, 4);
    SSD_INFO("info from rank one");
    SSD_WARN("warning from rank %d", 1);
    ssd_log_set_all_ranks(1);
    SSD_INFO("now every rank talks");
    ssd_log_set_level(SSD_LOG_WARN);
    SSD_INFO("filtered out");
    SSD_ASSERT(1 + 1 == 3, "arithmetic is %s", "broken");
}

static void test_log_ranks(void **state) {
    (void)state;
    char *m = run_dying(log_child);
    assert_null(strstr(m, "info from rank one")); /* INFO is rank 0 only by default */
    assert_non_null(strstr(m, "[ssd r1 "));
    assert_non_null(strstr(m, "warning: warning from rank 1"));
    assert_non_null(strstr(m, "info: now every rank talks"));
    assert_null(strstr(m, "filtered out"));
    assert_non_null(strstr(m, "test_dispatch.c"));
    assert_non_null(strstr(m, "assertion `1 + 1 == 3` failed: arithmetic is broken"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch_aborts),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_log_ranks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
