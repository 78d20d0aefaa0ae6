/* `mpirun -n 2 ssd train` against one process, end to end through the binary (DESIGN.md 6,
 * e2e "MPI 2 ranks == 1 rank on the same global batch"):
 *
 * - parity: 2 ranks of batch B against 1 process of batch 2B with --batch-splits 2 (BatchNorm
 *   statistics are per rank in the reference, so the single-process run that sees the same
 *   images with the same BN groups is the one that splits its batch into the ranks' halves;
 *   trainer.c interleaves the fragments so that they are exactly the ranks' shards). After one
 *   step the momentum buffers (= gradient + wd * the common initial weights, torch's first SGD
 *   step) must agree: that is the gradient check. Both runs then resume from that checkpoint
 *   (2 ranks resume from the file rank 0 wrote) for 2 more steps: parameters and momentum after
 *   3 steps must agree. Tolerance: PARITY_TOL relative to the largest |value| of each tensor;
 *   measured difference 0 (the same kernels at the same batch and thread count, a 2-rank sum
 *   and an exact 1/2 scaling), the bound only allows another MPI's reduction order. The oracle
 *   can fail: a plain `-b 2B` run (one BN group of 2B) must differ.
 * - the MLPerf log of a 2-rank run (1 epoch + evaluation) passes MLCommons' checker, logs
 *   global_batch_size 2B, and the sharded evaluation (rank r runs val batches r, r+2, ...,
 *   rank 0 gathers) writes exactly the detections `ssd eval` writes for its checkpoint in one
 *   process;
 * - failure: a rank killed with SIGKILL ends the job non-zero within FAIL_SECONDS; an error on
 *   rank 0 alone (its output directory cannot be made) ends the job non-zero within
 *   FAIL_SECONDS with a message naming the rank and the path.
 *
 * OMP_NUM_THREADS=1 for every process, so both sides run the same kernels with the same
 * reduction order. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


#include <cjson/cJSON.h>

#include "io/file.h"
#include "io/safetensors.h"
#include "testutil.h"

#define PARITY_TOL 1e-6
#define FAIL_SECONDS 60

static char g_ssd[1200], g_src[1024], g_dir[1024], g_mpirun[1024];
static char g_log[1 << 22];


/* Runs `[mpirun -n RANKS] ssd ARGS` (stdout+stderr into g_log); returns the exit status. */
static int run(int ranks, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(int ranks, const char *fmt, ...) {
    char args[6000], cmd[8400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    if (ranks > 1)
        snprintf(cmd, sizeof cmd, "\"%s\" --oversubscribe -n %d \"%s\" %s", g_mpirun, ranks, g_ssd,
                 args);
    else
        snprintf(cmd, sizeof cmd, "\"%s\" %s", g_ssd, args);
    return tu_run_capture(cmd, tu_fmt("%s/cmd.log", g_dir), g_log, sizeof g_log);
}

static int setup(void **state) {
    (void)state;
    if (tu_source_dir(g_src, sizeof g_src)) return -1;
    const char *b = tu_env("SSD_BUILD_DIR");
    if (!b) return -1;
    snprintf(g_ssd, sizeof g_ssd, "%s/ssd", b);
    tu_scratch_dir("test_dist", g_dir, sizeof g_dir);
    /* the same threads everywhere; Open MPI refuses root without these (CI runs as root) */
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    /* under ASan: Open MPI's own allocations held to exit are not our leaks (the file says
     * which libraries). Its libraries have no frame pointers, so the leak stacks need the
     * slow unwinder to reach a frame that names them; components stay loaded for the same
     * reason. */
    setenv("OMPI_MCA_mca_base_component_disable_dlclose", "1", 1);
    setenv("PMIX_MCA_mca_base_component_disable_dlclose", "1", 1);
    if (!getenv("ASAN_OPTIONS")) setenv("ASAN_OPTIONS", "fast_unwind_on_malloc=0", 1);
    if (!getenv("LSAN_OPTIONS"))
        setenv("LSAN_OPTIONS", tu_fmt("suppressions=%s/tests/lsan_mpi.supp", g_src), 1);
    return tu_system(tu_fmt("rm -rf '%s'/* && mkdir -p '%s'", g_dir, g_dir));
}

/* 1 when this build and machine can run MPI jobs; 0 after a SKIPPED line. */
static int have_mpi(const char *test) {
#ifndef SSD_HAVE_MPI
    tu_skip(test, "this build has no MPI (SSD_HAVE_MPI off: install libopenmpi-dev)");
    return 0;
#else
    if (!g_mpirun[0]) {
        FILE *p = popen("command -v mpirun", "r");
        if (p) {
            if (!fgets(g_mpirun, sizeof g_mpirun, p)) g_mpirun[0] = '\0';
            pclose(p);
        }
        g_mpirun[strcspn(g_mpirun, "\n")] = '\0';
    }
    if (!g_mpirun[0]) {
        tu_skip(test, "mpirun not found (apt-get install openmpi-bin)");
        return 0;
    }
    return 1;
#endif
}

/* A small synthetic set (ssd synth), made once: 9 training images of which 8 are annotated
 * (a multiple of the global batch 4, so no rank pads its shard), 8 validation images. */
static const char *synth_set(void) {
    static char root[1400];
    if (!root[0]) {
        snprintf(root, sizeof root, "%s/synth", g_dir);
        assert_int_equal(run(1, "synth --out '%s' --images 9 --val-images 8 --seed 4", root), 0);
    }
    return root;
}

/* Largest |a - b| / max(1, max |b|) over the tensors of `a` whose names start with one of the
 * prefixes (NULL: all parameters and momentum, i.e. everything but BN running statistics and
 * counters); fails if a tensor is missing. *worst_name gets the tensor that gave it. */
static double max_rel_diff(const char *pa, const char *pb, const char *prefix,
                           char *worst_name, size_t len) {
    ssd_st_file *fa = NULL, *fb = NULL;
    ssd_error err;
    if (ssd_st_read(pa, &fa, &err) != SSD_OK) fail_msg("%s", err.msg);
    if (ssd_st_read(pb, &fb, &err) != SSD_OK) fail_msg("%s", err.msg);
    double worst = 0;
    int compared = 0;
    for (int i = 0; i < ssd_st_count(fa); i++) {
        const char *name = ssd_st_name(fa, i);
        if (prefix && strncmp(name, prefix, strlen(prefix)) != 0) continue;
        if (strstr(name, "running_") || strstr(name, "num_batches_tracked")) continue;
        const ssd_tensor *ta = ssd_st_at(fa, i), *tb = ssd_st_get(fb, name);
        if (!tb) fail_msg("%s: no %s", pb, name);
        assert_int_equal(ta->dtype, SSD_F32);
        int64_t n = ssd_tensor_numel(ta);
        assert_int_equal(n, ssd_tensor_numel(tb));
        const float *a = ta->data, *b = tb->data;
        double scale = 1, d = 0;
        for (int64_t k = 0; k < n; k++) scale = fmax(scale, fabs(b[k]));
        for (int64_t k = 0; k < n; k++) d = fmax(d, fabs((double)a[k] - b[k]));
        if (d / scale > worst || !worst_name[0]) {
            worst = fmax(worst, d / scale);
            snprintf(worst_name, len, "%s", name);
        }
        compared++;
    }
    assert_true(compared > 0);
    ssd_st_free(fa);
    ssd_st_free(fb);
    return worst;
}

static void test_two_ranks_match_one_process(void **state) {
    (void)state;
    if (!have_mpi("test_dist/parity")) return;
    const char *data = synth_set();
    /* 8 images: global batch 4 = 2 steps per epoch; 3 steps cross the epoch boundary */
    const char *common = "--epochs 3 --val-interval 0 --seed 31 --num-workers 1 --lr 0.1 "
                         "--warmup 1 --log-interval 1 --no-progress-line --cache-dir ''";
    char a[1400], b[1400], c[1400], worst[256] = "";
    snprintf(a, sizeof a, "%s/ranks2", g_dir);
    snprintf(b, sizeof b, "%s/splits2", g_dir);
    snprintf(c, sizeof c, "%s/batch4", g_dir);
    assert_int_equal(run(2, "train --data '%s' --output '%s' -b 2 %s --end-iteration 1", data, a,
                         common),
                     0);
    assert_non_null(strstr(g_log, "2 ranks (MPI"));
    assert_non_null(strstr(g_log, "global batch 4"));
    assert_non_null(strstr(g_log, "gradient all-reduce 79.9 MB per step and rank"));
    assert_int_equal(run(1, "train --data '%s' --output '%s' -b 4 --batch-splits 2 %s "
                            "--end-iteration 1",
                         data, b, common),
                     0);
    /* the 2-rank checkpoint's data position is per rank: one process refuses it */
    assert_int_equal(run(1, "train --data '%s' --output '%s' -b 4 --batch-splits 2 %s "
                            "--end-iteration 3 --checkpoint '%s/iter_000001.safetensors'",
                         data, b, common, a),
                     1);
    assert_non_null(strstr(g_log, "written by a run of 2 rank(s), this one has 1"));
    /* step 1: momentum = gradient + wd * (the same) initial weights */
    double g = max_rel_diff(tu_fmt("%s/iter_000001.safetensors", a), tu_fmt("%s/iter_000001.safetensors", b),
                            "optimizer.", worst, sizeof worst);
    print_message("step 1 gradients (momentum buffers): max relative difference %.3g (%s)\n", g,
                  worst);
    assert_true(g <= PARITY_TOL);
    /* 2 more steps, resumed from step 1 on both sides */
    assert_int_equal(run(2, "train --data '%s' --output '%s' -b 2 %s --end-iteration 3 "
                            "--checkpoint '%s/iter_000001.safetensors'",
                         data, a, common, a),
                     0);
    assert_non_null(strstr(g_log, "resumed from"));
    assert_int_equal(run(1, "train --data '%s' --output '%s' -b 4 --batch-splits 2 %s "
                            "--end-iteration 3 --checkpoint '%s/iter_000001.safetensors'",
                         data, b, common, b),
                     0);
    worst[0] = '\0';
    double w = max_rel_diff(tu_fmt("%s/iter_000003.safetensors", a), tu_fmt("%s/iter_000003.safetensors", b),
                            NULL, worst, sizeof worst);
    print_message("step 3 parameters and momentum: max relative difference %.3g (%s)\n", w,
                  worst);
    assert_true(w <= PARITY_TOL);
    /* the oracle can fail: one BN group of 4 images gives other gradients */
    assert_int_equal(run(1, "train --data '%s' --output '%s' -b 4 %s --end-iteration 1", data, c,
                         common),
                     0);
    worst[0] = '\0';
    double o = max_rel_diff(tu_fmt("%s/iter_000001.safetensors", a), tu_fmt("%s/iter_000001.safetensors", c),
                            "optimizer.", worst, sizeof worst);
    print_message("against -b 4 without splits: %.3g (%s)\n", o, worst);
    assert_true(o > 100 * PARITY_TOL);
}

/* The value of the first `"key": ` MLLOG event in LOG (a number), or NAN. */
static double mllog_value(const char *log, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"key\": \"%s\", \"value\": ", key);
    const char *p = strstr(log, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static void test_two_rank_log_and_sharded_eval(void **state) {
    (void)state;
    if (!have_mpi("test_dist/log_eval")) return;
    const char *data = synth_set();
    char out[1400], py[1200];
    snprintf(out, sizeof out, "%s/log-run", g_dir);
    /* 1 epoch (2 global steps of 4), then the evaluation: 4 val batches of 2, 2 per rank */
    assert_int_equal(run(2, "train --data '%s' --output '%s' -b 2 --epochs 1 --val-interval 1 "
                            "--val-batch-size 2 --seed 41 --num-workers 1 --log-interval 1 "
                            "--no-progress-line --mlperf-division open --cache-dir ''",
                         data, out),
                     0);
    size_t len = 0;
    char *log = NULL;
    ssd_error err;
    if (ssd_read_file(tu_fmt("%s/mllog.txt", out), &log, &len, &err) != SSD_OK) fail_msg("%s", err.msg);
    assert_true(mllog_value(log, "global_batch_size") == 4);
    assert_true(mllog_value(log, "eval_accuracy") >= 0);
    free(log);
    /* one process on the checkpoint the run wrote before evaluating: the same detections */
    char ckpt[1500], dets[1400];
    snprintf(ckpt, sizeof ckpt, "%s/iter_000002.safetensors", out);
    snprintf(dets, sizeof dets, "%s/single.detections.json", g_dir);
    assert_int_equal(run(1, "eval --checkpoint '%s' --data '%s' --val-batch-size 2 "
                            "--num-workers 1 --out '%s' --cache-dir ''",
                         ckpt, data, dets),
                     0);
    assert_int_equal(tu_system(tu_fmt("cmp '%s' '%s/detections_epoch001.json'", dets, out)), 0);
    if (tu_checker_python("test_dist/log_eval", py, sizeof py)) return;
    static char cout[65536];
    int rc = tu_run_checker(py, "1.0.0", "--werror", tu_fmt("%s/mllog.txt", out), cout, sizeof cout);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(cout, "SUCCESS"));
}

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Starts `sh -c CMD` in its own process group; returns its pid. */
static pid_t start(const char *cmd) {
    fprintf(stderr, "$ %s &\n", cmd);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);
    return pid;
}

/* Waits up to `seconds` for pid; returns its wait status, or -1 after killing its group. */
static int wait_for(pid_t pid, double seconds, double *took) {
    double t0 = now_s();
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            *took = now_s() - t0;
            return status;
        }
        if (now_s() - t0 > seconds) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            *took = now_s() - t0;
            return -1;
        }
        sleep_ms(100);
    }
}

/* The file's text (up to len-1 bytes; "" if absent). */
static void read_text(const char *path, char *out, size_t len) {
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(out, 1, len - 1, f);
    out[n] = '\0';
    fclose(f);
}

static void test_failing_rank_ends_the_job(void **state) {
    (void)state;
    if (!have_mpi("test_dist/failure")) return;
    const char *data = synth_set();
    char logp[1400], cmd[8192];
    double took;
    /* 1: rank 1 killed in the middle of training */
    snprintf(logp, sizeof logp, "%s/kill.log", g_dir);
    snprintf(cmd, sizeof cmd,
             "exec \"%s\" --oversubscribe -n 2 \"%s\" train --data '%s' --output '%s/kill-run' "
             "-b 2 --epochs 1000 --val-interval 0 --seed 5 --num-workers 1 --log-interval 1 "
             "--no-progress-line --no-save --cache-dir '' > '%s' 2>&1",
             g_mpirun, g_ssd, data, g_dir, logp);
    pid_t job = start(cmd);
    long victim = 0;
    double t0 = now_s();
    while (now_s() - t0 < 300) { /* rank 1 announces its pid; wait for a finished step */
        read_text(logp, g_log, sizeof g_log);
        const char *r1 = strstr(g_log, "rank 1 of 2 (local");
        const char *pid = r1 ? strstr(r1, "pid ") : NULL;
        if (pid) victim = strtol(pid + 4, NULL, 10);
        if (victim > 0 && strstr(g_log, "iter 1/")) break;
        int status;
        if (waitpid(job, &status, WNOHANG) == job) fail_msg("the job ended early:\n%s", g_log);
        sleep_ms(200);
    }
    if (!(victim > 0 && strstr(g_log, "iter 1/"))) {
        kill(-job, SIGKILL);
        waitpid(job, NULL, 0);
        fail_msg("no training step within 300 s:\n%s", g_log);
    }
    assert_int_equal(kill((pid_t)victim, SIGKILL), 0);
    int status = wait_for(job, FAIL_SECONDS, &took);
    read_text(logp, g_log, sizeof g_log);
    print_message("rank 1 (pid %ld) killed: the job ended after %.1f s, status %d\n%s\n", victim,
                  took, status, g_log);
    assert_true(status != -1); /* it ended by itself in time */
    assert_true(!WIFEXITED(status) || WEXITSTATUS(status) != 0);

    /* 2: rank 0 alone fails (its output directory cannot be made under a regular file) */
    const char *blocker = tu_fmt("%s/not-a-dir", g_dir);
    assert_int_equal(tu_system(tu_fmt("echo x > '%s'", blocker)), 0);
    snprintf(logp, sizeof logp, "%s/rank0.log", g_dir);
    snprintf(cmd, sizeof cmd,
             "exec \"%s\" --oversubscribe -n 2 \"%s\" train --data '%s' --output '%s/run' -b 2 "
             "--epochs 1 --seed 5 --num-workers 1 --cache-dir '' > '%s' 2>&1",
             g_mpirun, g_ssd, data, blocker, logp);
    job = start(cmd);
    status = wait_for(job, FAIL_SECONDS, &took);
    read_text(logp, g_log, sizeof g_log);
    print_message("rank 0 error: the job ended after %.1f s, status %d\n%s\n", took, status, g_log);
    assert_true(status != -1);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    assert_non_null(strstr(g_log, "ssd train: rank 0 of 2 failed: "));
    assert_non_null(strstr(g_log, "not-a-dir"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failing_rank_ends_the_job),
        cmocka_unit_test(test_two_ranks_match_one_process),
        cmocka_unit_test(test_two_rank_log_and_sharded_eval),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
