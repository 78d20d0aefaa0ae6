/* MLPerf log lines (src/train/mllog): the line layout of spec section 1 checked field by field
 * with cJSON (key order, types, file/lineno, time_ms against the wall clock, exact text of each
 * value kind, ASCII escapes), rank != 0 writing nothing, whole lines from concurrent threads,
 * the start-up block's argument checks, and the official MLCommons compliance checker
 * (mlperf-logging from PyPI in .venv-oracle, tools/install_pydeps.sh) run at test time on a
 * complete synthetic run written by our emitter: it must pass --ruleset 1.0.0 (and 0.7.0), and
 * must fail on the same log with run_stop dropped, with a hyperparameter dropped, and with no
 * accuracy reaching 0.23; and every line re-encoded by mlperf_logging's own mllog encoder
 * (tools/mllog_reencode.py) must come back byte for byte. The Python parts are skipped, with the
 * reason, when neither $SSD_PYTHON_COCO nor .venv-oracle has mlperf_logging. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/strbuf.h"
#include "io/file.h"
#include "testutil.h"
#include "train/mllog.h"

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *slurp(const char *path) {
    char *text;
    size_t len;
    ssd_error err;
    if (ssd_read_file(path, &text, &len, &err) != SSD_OK) fail_msg("%s", err.msg);
    return text;
}

/* Splits text into lines (modifies it); returns the count, fills up to cap pointers. Fails the
 * test when the text does not end in a newline (a torn last line). */
static int split_lines(char *text, char **lines, int cap) {
    size_t len = strlen(text);
    if (len) assert_int_equal(text[len - 1], '\n');
    int n = 0;
    for (char *p = text; *p;) {
        char *nl = strchr(p, '\n');
        *nl = 0;
        if (n < cap) lines[n] = p;
        n++;
        p = nl + 1;
    }
    return n;
}

/* One line checked against section 1: prefix, the six keys in order with their types, metadata
 * starting with file and lineno. Returns the parsed object (caller deletes). */
static cJSON *check_line(const char *line) {
    assert_memory_equal(line, ":::MLLOG ", 9);
    cJSON *j = cJSON_Parse(line + 9);
    if (!j) fail_msg("not JSON: %s", line);
    static const char *const keys[] = {"namespace", "time_ms", "event_type",
                                       "key",       "value",   "metadata"};
    const cJSON *c = j->child;
    for (int i = 0; i < 6; i++, c = c->next) {
        if (!c) fail_msg("missing key %s: %s", keys[i], line);
        assert_string_equal(c->string, keys[i]);
    }
    assert_null(c);
    const cJSON *ns = cJSON_GetObjectItem(j, "namespace");
    assert_true(cJSON_IsString(ns));
    assert_string_equal(ns->valuestring, "");
    const cJSON *t = cJSON_GetObjectItem(j, "time_ms");
    assert_true(cJSON_IsNumber(t));
    assert_true(t->valuedouble == (double)(int64_t)t->valuedouble);
    const cJSON *et = cJSON_GetObjectItem(j, "event_type");
    assert_true(cJSON_IsString(et));
    assert_true(strcmp(et->valuestring, "POINT_IN_TIME") == 0 ||
                strcmp(et->valuestring, "INTERVAL_START") == 0 ||
                strcmp(et->valuestring, "INTERVAL_END") == 0);
    assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "key")));
    const cJSON *m = cJSON_GetObjectItem(j, "metadata");
    assert_true(cJSON_IsObject(m));
    assert_non_null(m->child);
    assert_string_equal(m->child->string, "file");
    assert_true(cJSON_IsString(m->child));
    assert_non_null(m->child->next);
    assert_string_equal(m->child->next->string, "lineno");
    assert_true(cJSON_IsNumber(m->child->next));
    return j;
}

/* The text of a line after time_ms (the only part that varies between runs). */
static const char *after_time(const char *line) {
    const char *p = strstr(line, "\"time_ms\": ");
    assert_non_null(p);
    p += strlen("\"time_ms\": ");
    while (*p >= '0' && *p <= '9') p++;
    return p;
}

static void test_line_layout(void **state) {
    (void)state;
    char dir[1024], path[1200];
    tu_scratch_dir("test_mllog", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/layout.txt", dir);
    ssd_mllog *l;
    ssd_error err;
    if (ssd_mllog_open(path, NULL, 0, &l, &err) != SSD_OK) fail_msg("%s", err.msg);
    int64_t t0 = wall_ms();
    const int64_t list[2] = {44, 55};
    char meta[64];
    int l1 = __LINE__ + 1;
    SSD_MLLOG_STR(l, SSD_MLLOG_POINT_IN_TIME, "submission_benchmark", "ssd", NULL);
    int l2 = __LINE__ + 1;
    SSD_MLLOG_NULL(l, SSD_MLLOG_INTERVAL_START, "eval_start",
                   ssd_mllog_epoch_meta(meta, sizeof meta, 50));
    int l3 = __LINE__ + 1;
    SSD_MLLOG_DOUBLE(l, SSD_MLLOG_POINT_IN_TIME, "eval_accuracy", 0.2318808888079498,
                     "{\"epoch_num\": 50}");
    int l4 = __LINE__ + 1;
    SSD_MLLOG_NULL(l, SSD_MLLOG_INTERVAL_END, "run_stop",
                   " { \"status\": \"success\", \"x\": [1, 2]}  ");
    SSD_MLLOG_INT(l, SSD_MLLOG_POINT_IN_TIME, "big", INT64_C(-9007199254740993), "{}");
    SSD_MLLOG_BOOL(l, SSD_MLLOG_POINT_IN_TIME, "cache_clear", 1, NULL);
    SSD_MLLOG_BOOL(l, SSD_MLLOG_POINT_IN_TIME, "f", 0, NULL);
    SSD_MLLOG_INTS(l, SSD_MLLOG_POINT_IN_TIME, "opt_learning_rate_decay_boundary_epochs", list, 2,
                   NULL);
    SSD_MLLOG_INTS(l, SSD_MLLOG_POINT_IN_TIME, "empty", list, 0, NULL);
    SSD_MLLOG_DOUBLE(l, SSD_MLLOG_POINT_IN_TIME, "lr", 1.3e-05, NULL);
    SSD_MLLOG_DOUBLE(l, SSD_MLLOG_POINT_IN_TIME, "third", 1.0 / 3.0, NULL);
    SSD_MLLOG_DOUBLE(l, SSD_MLLOG_POINT_IN_TIME, "two", 2.0, NULL);
    /* UTF-8 e-acute, newline, quote, backslash, 0x01, DEL, U+1F600, a stray 0xff byte */
    SSD_MLLOG_STR(l, SSD_MLLOG_POINT_IN_TIME, "k\xc3\xa9y",
                  "\xc3\xa9\n\"\\\x01\x7f\xf0\x9f\x98\x80\xff", NULL);
    SSD_MLLOG_JSON(l, SSD_MLLOG_POINT_IN_TIME, "raw", "{\"a\": 1}", NULL);
    int64_t t1 = wall_ms();
    if (ssd_mllog_close(l, &err) != SSD_OK) fail_msg("%s", err.msg);

    char *text = slurp(path);
    char *lines[32];
    int n = split_lines(text, lines, 32);
    assert_int_equal(n, 14);
    for (int i = 0; i < n; i++) {
        cJSON *j = check_line(lines[i]);
        double t = cJSON_GetObjectItem(j, "time_ms")->valuedouble;
        assert_true(t >= (double)t0 && t <= (double)t1);
        const cJSON *m = cJSON_GetObjectItem(j, "metadata");
        assert_string_equal(cJSON_GetObjectItem(m, "file")->valuestring, __FILE__);
        int lineno = cJSON_GetObjectItem(m, "lineno")->valueint;
        const int want_line[4] = {l1, l2, l3, l4};
        if (i < 4) assert_int_equal(lineno, want_line[i]);
        if (i == 2) /* the double reads back to the same bits */
            assert_true(cJSON_GetObjectItem(j, "value")->valuedouble == 0.2318808888079498);
        cJSON_Delete(j);
    }
    /* the exact text after time_ms, as Python's json.dumps writes the same event */
    char want[1024];
#define WANT(i, et, key, value, extra)                                                             \
    do {                                                                                           \
        snprintf(want, sizeof want,                                                                \
                 ", \"event_type\": \"" et "\", \"key\": " key ", \"value\": " value               \
                 ", \"metadata\": {\"file\": \"%s\", \"lineno\": %d" extra "}}",                   \
                 __FILE__,                                                                         \
                 (int)cJSON_GetNumberValue(                                                        \
                     cJSON_GetObjectItem(cJSON_GetObjectItem(jj[i], "metadata"), "lineno")));      \
        assert_string_equal(after_time(lines[i]), want);                                           \
    } while (0)
    cJSON *jj[14];
    for (int i = 0; i < 14; i++) jj[i] = cJSON_Parse(lines[i] + 9);
    WANT(0, "POINT_IN_TIME", "\"submission_benchmark\"", "\"ssd\"", "");
    WANT(1, "INTERVAL_START", "\"eval_start\"", "null", ", \"epoch_num\": 50");
    WANT(2, "POINT_IN_TIME", "\"eval_accuracy\"", "0.2318808888079498", ", \"epoch_num\": 50");
    WANT(3, "INTERVAL_END", "\"run_stop\"", "null", ", \"status\": \"success\", \"x\": [1, 2]");
    WANT(4, "POINT_IN_TIME", "\"big\"", "-9007199254740993", "");
    WANT(5, "POINT_IN_TIME", "\"cache_clear\"", "true", "");
    WANT(6, "POINT_IN_TIME", "\"f\"", "false", "");
    WANT(7, "POINT_IN_TIME", "\"opt_learning_rate_decay_boundary_epochs\"", "[44, 55]", "");
    WANT(8, "POINT_IN_TIME", "\"empty\"", "[]", "");
    WANT(9, "POINT_IN_TIME", "\"lr\"", "1.3e-05", "");
    WANT(10, "POINT_IN_TIME", "\"third\"", "0.3333333333333333", "");
    WANT(11, "POINT_IN_TIME", "\"two\"", "2", "");
    WANT(12, "POINT_IN_TIME", "\"k\\u00e9y\"",
         "\"\\u00e9\\n\\\"\\\\\\u0001\\u007f\\ud83d\\ude00\\u00ff\"", "");
    WANT(13, "POINT_IN_TIME", "\"raw\"", "{\"a\": 1}", "");
#undef WANT
    for (int i = 0; i < 14; i++) cJSON_Delete(jj[i]);
    /* the whole head, with the time */
    static const char head[] = ":::MLLOG {\"namespace\": \"\", \"time_ms\": 1";
    assert_memory_equal(lines[0], head, sizeof head - 1);
    free(text);
}

/* The same lines go to `also` (a stream) and the file; rank 1 writes nothing and creates no
 * file; an uncreatable path is an I/O error naming it. */
static void test_streams_ranks_errors(void **state) {
    (void)state;
    char dir[1024], path[1200], path2[1200];
    tu_scratch_dir("test_mllog", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/both.txt", dir);
    snprintf(path2, sizeof path2, "%s/rank1.txt", dir);
    FILE *also = tmpfile();
    assert_non_null(also);
    ssd_mllog *l;
    ssd_error err;
    if (ssd_mllog_open(path, also, 0, &l, &err) != SSD_OK) fail_msg("%s", err.msg);
    SSD_MLLOG_INT(l, SSD_MLLOG_POINT_IN_TIME, "seed", 7, NULL);
    SSD_MLLOG_NULL(l, SSD_MLLOG_INTERVAL_START, "run_start", NULL);
    assert_int_equal(ssd_mllog_close(l, &err), SSD_OK);
    char *text = slurp(path);
    rewind(also);
    char buf[4096];
    size_t got = fread(buf, 1, sizeof buf - 1, also);
    buf[got] = 0;
    fclose(also);
    assert_string_equal(buf, text);
    free(text);

    remove(path2);
    FILE *also1 = tmpfile();
    if (ssd_mllog_open(path2, also1, 1, &l, &err) != SSD_OK) fail_msg("%s", err.msg);
    SSD_MLLOG_INT(l, SSD_MLLOG_POINT_IN_TIME, "seed", 7, NULL);
    assert_int_equal(ssd_mllog_close(l, &err), SSD_OK);
    assert_int_equal(ftell(also1), 0);
    fclose(also1);
    assert_int_equal(access(path2, F_OK), -1);

    assert_int_equal(ssd_mllog_open("/nonexistent-dir/x/mllog.txt", NULL, 0, &l, &err), SSD_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x/mllog.txt"));
    assert_null(l);
    assert_int_equal(ssd_mllog_close(NULL, &err), SSD_OK);
}

#define NTHREADS 8
#define NPER 400
typedef struct {
    ssd_mllog *l;
    int id;
} thr_arg;

static void *thr_main(void *p) {
    thr_arg *a = p;
    char meta[160], val[128];
    for (int i = 0; i < NPER; i++) {
        /* long values make torn writes likely if the lock were missing */
        snprintf(meta, sizeof meta, "{\"thread\": %d, \"seq\": %d, \"pad\": \"%0100d\"}", a->id, i,
                 i);
        snprintf(val, sizeof val, "thread %d line %d", a->id, i);
        SSD_MLLOG_STR(a->l, i % 3, "concurrent", val, meta);
    }
    return NULL;
}

/* Several threads log at once: every line whole and valid, each thread's lines all present in
 * its order, time_ms never decreasing down the file. */
static void test_threads(void **state) {
    (void)state;
    char dir[1024], path[1200];
    tu_scratch_dir("test_mllog", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/threads.txt", dir);
    FILE *also = tmpfile();
    ssd_mllog *l;
    ssd_error err;
    if (ssd_mllog_open(path, also, 0, &l, &err) != SSD_OK) fail_msg("%s", err.msg);
    pthread_t th[NTHREADS];
    thr_arg args[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        args[t] = (thr_arg){l, t};
        assert_int_equal(pthread_create(&th[t], NULL, thr_main, &args[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
    assert_int_equal(ssd_mllog_close(l, &err), SSD_OK);
    assert_int_equal(ftell(also), (long)ftell(also)); /* stream still usable */
    fclose(also);

    char *text = slurp(path);
    char **lines = malloc(sizeof(char *) * NTHREADS * NPER);
    int n = split_lines(text, lines, NTHREADS * NPER);
    assert_int_equal(n, NTHREADS * NPER);
    int next[NTHREADS] = {0};
    double last_t = 0;
    for (int i = 0; i < n; i++) {
        cJSON *j = check_line(lines[i]);
        const cJSON *m = cJSON_GetObjectItem(j, "metadata");
        int id = cJSON_GetObjectItem(m, "thread")->valueint;
        int seq = cJSON_GetObjectItem(m, "seq")->valueint;
        assert_in_range(id, 0, NTHREADS - 1);
        assert_int_equal(seq, next[id]);
        next[id]++;
        char want[128];
        snprintf(want, sizeof want, "thread %d line %d", id, seq);
        assert_string_equal(cJSON_GetObjectItem(j, "value")->valuestring, want);
        double t = cJSON_GetObjectItem(j, "time_ms")->valuedouble;
        assert_true(t >= last_t);
        last_t = t;
        cJSON_Delete(j);
    }
    for (int t = 0; t < NTHREADS; t++) assert_int_equal(next[t], NPER);
    free(lines);
    free(text);
}

static ssd_mllog_run_info good_info(void) {
    return (ssd_mllog_run_info){
        .org = "ssd-c",
        .platform = "1xCPU",
        .division = "closed",
        .status = "research",
        .seed = 12345,
        .global_batch_size = 32,
        .gradient_accumulation_steps = 1,
        .model_bn_span = 32,
        .opt_base_learning_rate = 0.0025,
        .opt_weight_decay = 0.0005,
        .opt_learning_rate_warmup_steps = 300,
        .opt_learning_rate_warmup_factor = 0,
        .opt_learning_rate_decay_boundary_epochs = {40, 50},
        .max_samples = 50,
        .train_samples = 117266,
        .eval_samples = 5000,
    };
}

/* ssd_mllog_startup refuses values the 1.0.0 checker or the closed-division policy rejects, and
 * then writes nothing; good values give the 19 lines of spec section 5 in order. */
static void test_startup_checks(void **state) {
    (void)state;
    char dir[1024], path[1200];
    tu_scratch_dir("test_mllog", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/startup.txt", dir);
    ssd_mllog *l;
    ssd_error err;
    if (ssd_mllog_open(path, NULL, 0, &l, &err) != SSD_OK) fail_msg("%s", err.msg);
    ssd_mllog_run_info i;
    const char *words[9] = {"max_samples",
                            "opt_learning_rate_decay_boundary_epochs",
                            "opt_learning_rate_decay_boundary_epochs",
                            "gradient_accumulation_steps",
                            "opt_learning_rate_warmup_steps",
                            "submission_division",
                            "submission_org",
                            "model_bn_span",
                            "opt_learning_rate_warmup_factor"};
    for (int k = 0; k < 9; k++) {
        i = good_info();
        switch (k) {
        case 0:
            i.max_samples = 7;
            break;
        case 1:
            i.opt_learning_rate_decay_boundary_epochs[1] = 51;
            break;
        case 2:
            i.opt_learning_rate_decay_boundary_epochs[0] = 41;
            break;
        case 3:
            i.gradient_accumulation_steps = 0;
            break;
        case 4:
            i.opt_learning_rate_warmup_steps = 0;
            break;
        case 5:
            i.division = "closd";
            break;
        case 6:
            i.org = "";
            break;
        case 7:
            i.model_bn_span = 0;
            break;
        case 8:
            i.opt_learning_rate_warmup_factor = -1;
            break;
        }
        assert_int_equal(ssd_mllog_startup(l, &i, &err), SSD_ERR_ARG);
        if (!strstr(err.msg, words[k])) fail_msg("case %d: %s", k, err.msg);
    }
    i = good_info();
    i.opt_learning_rate_decay_boundary_epochs[0] = 44;
    i.opt_learning_rate_decay_boundary_epochs[1] = 55;
    assert_int_equal(ssd_mllog_startup(l, &i, &err), SSD_OK);
    assert_int_equal(ssd_mllog_close(l, &err), SSD_OK);
    char *text = slurp(path);
    char *lines[32];
    assert_int_equal(split_lines(text, lines, 32), 19);
    static const char *const keys[19] = {"submission_benchmark",
                                         "submission_org",
                                         "submission_division",
                                         "submission_status",
                                         "submission_platform",
                                         "cache_clear",
                                         "init_start",
                                         "seed",
                                         "global_batch_size",
                                         "gradient_accumulation_steps",
                                         "model_bn_span",
                                         "opt_base_learning_rate",
                                         "opt_weight_decay",
                                         "opt_learning_rate_warmup_steps",
                                         "opt_learning_rate_warmup_factor",
                                         "opt_learning_rate_decay_boundary_epochs",
                                         "max_samples",
                                         "train_samples",
                                         "eval_samples"};
    for (int k = 0; k < 19; k++) {
        cJSON *j = check_line(lines[k]);
        assert_string_equal(cJSON_GetObjectItem(j, "key")->valuestring, keys[k]);
        assert_string_equal(cJSON_GetObjectItem(j, "event_type")->valuestring,
                            k == 6 ? "INTERVAL_START" : "POINT_IN_TIME");
        cJSON_Delete(j);
    }
    assert_non_null(strstr(lines[15], "\"value\": [44, 55]"));
    assert_non_null(strstr(lines[11], "\"value\": 0.0025"));
    free(text);
    for (int e = 1; e <= 90; e++)
        assert_int_equal(ssd_mllog_is_eval_epoch(e), e == 40 || e == 50 || e == 55 || e == 60 ||
                                                         e == 65 || e == 70 || e == 75 || e == 80);
}

/* ---- the official checker ---- */

/* A whole synthetic run as the trainer would log it: start-up block, init_stop, run_start, epochs
 * 1..last with epoch_start/epoch_stop, evaluation at the closed-division epochs with the given
 * accuracies (acc40 at 40, acc50 at 50), run_stop with the status. */
static void write_run(const char *path, double acc40, double acc50, const char *status) {
    ssd_mllog *l;
    ssd_error err;
    if (ssd_mllog_open(path, NULL, 0, &l, &err) != SSD_OK) fail_msg("%s", err.msg);
    ssd_mllog_run_info info = good_info();
    if (ssd_mllog_startup(l, &info, &err) != SSD_OK) fail_msg("%s", err.msg);
    SSD_MLLOG_NULL(l, SSD_MLLOG_INTERVAL_END, "init_stop", NULL);
    SSD_MLLOG_NULL(l, SSD_MLLOG_INTERVAL_START, "run_start", NULL);
    char meta[64];
    for (int e = 1; e <= 50; e++) {
        ssd_mllog_epoch_meta(meta, sizeof meta, e);
        SSD_MLLOG_NULL(l, SSD_MLLOG_INTERVAL_START, "epoch_start", meta);
        SSD_MLLOG_NULL(l, SSD_MLLOG_INTERVAL_END, "epoch_stop", meta);
        if (ssd_mllog_is_eval_epoch(e)) {
            SSD_MLLOG_NULL(l, SSD_MLLOG_INTERVAL_START, "eval_start", meta);
            SSD_MLLOG_DOUBLE(l, SSD_MLLOG_POINT_IN_TIME, "eval_accuracy", e == 40 ? acc40 : acc50,
                             meta);
            SSD_MLLOG_NULL(l, SSD_MLLOG_INTERVAL_END, "eval_stop", meta);
        }
    }
    char sm[64];
    snprintf(sm, sizeof sm, "{\"status\": \"%s\"}", status);
    SSD_MLLOG_NULL(l, SSD_MLLOG_INTERVAL_END, "run_stop", sm);
    if (ssd_mllog_close(l, &err) != SSD_OK) fail_msg("%s", err.msg);
}

/* Copies src to dst without the lines whose key is `key`. */
static void drop_key(const char *src, const char *dst, const char *key) {
    char *text = slurp(src);
    char pat[128];
    snprintf(pat, sizeof pat, "\"key\": \"%s\",", key);
    ssd_strbuf b = {0};
    int dropped = 0;
    for (char *p = text; *p;) {
        char *nl = strchr(p, '\n');
        size_t n = (size_t)(nl - p) + 1;
        *nl = 0;
        if (strstr(p, pat))
            dropped++;
        else {
            ssd_sb_putn(&b, p, n - 1);
            ssd_sb_puts(&b, "\n");
        }
        p = nl + 1;
    }
    assert_true(dropped > 0);
    ssd_error err;
    if (ssd_write_file_atomic(dst, b.s, b.len, &err) != SSD_OK) fail_msg("%s", err.msg);
    ssd_sb_free(&b);
    free(text);
}

static void test_checker_accepts(void **state) {
    (void)state;
    char py[1200];
    if (tu_checker_python("test_mllog/checker_accepts", py, sizeof py)) return;
    char dir[1024], path[1200];
    tu_scratch_dir("test_mllog", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/run_ok.txt", dir);
    write_run(path, 0.2011, 0.2318808888079498, "success");
    static char out[65536];
    assert_int_equal(tu_run_checker(py, "1.0.0", "--werror", path, out, sizeof out), 0);
    assert_non_null(strstr(out, "SUCCESS"));
    assert_null(strstr(out, "FAILED"));
    /* the same log also passes 0.7.0 (init well under 20 min; extra keys ignored) */
    assert_int_equal(tu_run_checker(py, "0.7.0", "--werror", path, out, sizeof out), 0);
    assert_non_null(strstr(out, "SUCCESS"));
    /* an aborted run is still a compliant log */
    snprintf(path, sizeof path, "%s/run_aborted.txt", dir);
    write_run(path, 0.2011, 0.2318808888079498, "aborted");
    assert_int_equal(tu_run_checker(py, "1.0.0", "", path, out, sizeof out), 0);
}

/* The checker rejects the log without run_stop, without opt_weight_decay, without
 * gradient_accumulation_steps, and when no accuracy reaches 0.23: the accepting test can fail. */
static void test_checker_rejects(void **state) {
    (void)state;
    char py[1200];
    if (tu_checker_python("test_mllog/checker_rejects", py, sizeof py)) return;
    char dir[1024], ok[1200], bad[1200];
    tu_scratch_dir("test_mllog", dir, sizeof dir);
    snprintf(ok, sizeof ok, "%s/run_ok2.txt", dir);
    write_run(ok, 0.2011, 0.2318808888079498, "success");
    static char out[65536];
    static const char *const drops[] = {"run_stop", "opt_weight_decay",
                                        "gradient_accumulation_steps"};
    for (int k = 0; k < 3; k++) {
        snprintf(bad, sizeof bad, "%s/run_no_%s.txt", dir, drops[k]);
        drop_key(ok, bad, drops[k]);
        assert_int_equal(tu_run_checker(py, "1.0.0", "", bad, out, sizeof out), 1);
        assert_non_null(strstr(out, "FAILED"));
        if (!strstr(out, drops[k])) fail_msg("the checker's output does not name %s", drops[k]);
    }
    snprintf(bad, sizeof bad, "%s/run_low_map.txt", dir);
    write_run(bad, 0.2011, 0.2299, "aborted");
    assert_int_equal(tu_run_checker(py, "1.0.0", "", bad, out, sizeof out), 1);
    assert_non_null(strstr(out, "FAILED"));
}

/* Byte-for-byte agreement with MLCommons' Python encoder (tools/mllog_reencode.py decodes every
 * line and encodes it again with mlperf_logging.mllog): a whole run, plus strings needing
 * escapes and doubles; a line with compact separators is reported, so the check can fail. */
static void test_python_encoder(void **state) {
    (void)state;
    char py[1200], src[1024];
    if (tu_checker_python("test_mllog/python_encoder", py, sizeof py)) return;
    if (tu_source_dir(src, sizeof src)) return;
    char dir[1024], path[1200], cmd[4096], cap[1300];
    static char out[65536];
    tu_scratch_dir("test_mllog", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/reencode.txt", dir);
    write_run(path, 0.2011, 0.2318808888079498, "success");
    ssd_mllog *l;
    ssd_error err;
    /* append a few harder values to the same file (a second logger would truncate: use also) */
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    if (ssd_mllog_open(NULL, f, 0, &l, &err) != SSD_OK) fail_msg("%s", err.msg);
    SSD_MLLOG_STR(l, SSD_MLLOG_POINT_IN_TIME, "k\xc3\xa9y",
                  "\xc3\xa9\n\"\\\x01\x7f\xf0\x9f\x98\x80\t", "{\"s\": \"\\u00e9\"}");
    SSD_MLLOG_DOUBLE(l, SSD_MLLOG_POINT_IN_TIME, "lr", 1.3e-05, NULL);
    SSD_MLLOG_DOUBLE(l, SSD_MLLOG_POINT_IN_TIME, "third", 1.0 / 3.0, NULL);
    /* (not subnormals: ssd_sb_json_double writes 5e-324 as 4.94065645841247e-324, which reads
     * back to the same bits but is not Python's shortest repr; the checker only parses it) */
    SSD_MLLOG_DOUBLE(l, SSD_MLLOG_POINT_IN_TIME, "small", 2.2250738585072014e-308, NULL);
    SSD_MLLOG_DOUBLE(l, SSD_MLLOG_POINT_IN_TIME, "big", 1.7976931348623157e308, NULL);
    SSD_MLLOG_INT(l, SSD_MLLOG_POINT_IN_TIME, "neg", INT64_MIN, NULL);
    SSD_MLLOG_BOOL(l, SSD_MLLOG_POINT_IN_TIME, "no", 0,
                   "{\"epoch_num\": 3, \"nested\": {\"a\": [1, null]}}");
    assert_int_equal(ssd_mllog_close(l, &err), SSD_OK);
    fclose(f);
    snprintf(cmd, sizeof cmd, "\"%s\" \"%s/tools/mllog_reencode.py\" \"%s\"", py, src, path);
    snprintf(cap, sizeof cap, "%s.reencode.out", path);
    assert_int_equal(tu_run_capture(cmd, cap, out, sizeof out), 0);
    assert_non_null(strstr(out, "135 lines, 0 differ"));

    snprintf(path, sizeof path, "%s/compact.txt", dir);
    static const char compact[] =
        ":::MLLOG {\"namespace\":\"\",\"time_ms\":1,\"event_type\":\"POINT_IN_TIME\","
        "\"key\":\"a\",\"value\":null,\"metadata\":{\"file\":\"x.c\",\"lineno\":1}}\n";
    if (ssd_write_file_atomic(path, compact, sizeof compact - 1, &err) != SSD_OK)
        fail_msg("%s", err.msg);
    snprintf(cmd, sizeof cmd, "\"%s\" \"%s/tools/mllog_reencode.py\" \"%s\"", py, src, path);
    snprintf(cap, sizeof cap, "%s.reencode.out", path);
    assert_int_equal(tu_run_capture(cmd, cap, out, sizeof out), 1);
    assert_non_null(strstr(out, "1 lines, 1 differ"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_layout),     cmocka_unit_test(test_streams_ranks_errors),
        cmocka_unit_test(test_threads),         cmocka_unit_test(test_startup_checks),
        cmocka_unit_test(test_checker_accepts), cmocka_unit_test(test_checker_rejects),
        cmocka_unit_test(test_python_encoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
