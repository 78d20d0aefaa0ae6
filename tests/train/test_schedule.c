/* train/schedule: the reference's LR and evaluation schedule.
 *
 * - The spec's numbers (section 7, quirk 11.2 item 1): 1x32 -> 0.0025, decays x0.1 at 40 and
 *   x0.01 at 50; 8x128 with --warmup 2.619685 over 117266 images -> wb = 299 (not 300), lr 0 at
 *   it 0, cur*(1 - 1/299) = 0.0797324... from it 299 to the end of epoch 39, 0.008 in epoch 40.
 * - Oracle: tools/lr_schedule_oracle.py replays train.py's stateful loop with a real
 *   torch.optim.SGD param group (plain dict without torch) over ~300 random configurations
 *   (warmups that truncate, zero/negative warmups, warmup factors -1..3, decay lists empty /
 *   unsorted / duplicated / negative / inside the warmup, --iteration offsets) and prints the LR
 *   of every optimizer step as float.hex(); every step must be == (bit-identical double): both
 *   sides do the same IEEE operations in the same order, so any difference is a bug.
 * - Without Python: a stateful replay written here in C (the loop of train.py, independent of
 *   the pure ssd_lr_at) over a grid of configurations, also compared with ==.
 * - Evaluation schedule, the list parser and the argument errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../testutil.h"
#include "train/schedule.h"

static ssd_lr_schedule mk(double lr, int gb, double warmup, int wf, int64_t n, int64_t ipe,
                          int64_t it0, const int *dec, int nd) {
    ssd_lr_schedule s;
    ssd_error err = {0};
    ssd_status st = ssd_lr_schedule_init(&s, lr, gb, warmup, wf, n, ipe, it0, dec, nd, &err);
    if (st != SSD_OK)
        fail_msg("init: %s", err.msg);
    return s;
}

/* ------------------------------------------------------------------------------------------ */

static void test_spec_1x32(void **state) {
    (void)state;
    const int dec[] = {40, 50};
    ssd_lr_schedule s = mk(SSD_LR_FLAG_DEFAULT, 32, 0, 0, 117266, 3665, 0, dec, 2);
    assert_int_equal(s.warmup_iters, 0);
    assert_true(s.base_lr == 0.0025);
    assert_true(ssd_lr_at(&s, 0, 0) == 0.0025);
    assert_true(ssd_lr_at(&s, 39, 39 * 3665 + 3664) == 0.0025);
    assert_true(ssd_lr_at(&s, 40, 40 * 3665) == 0.0025 * 0.1);
    assert_true(fabs(ssd_lr_at(&s, 40, 40 * 3665) - 0.00025) < 1e-18);
    assert_true(ssd_lr_at(&s, 49, 49 * 3665 + 7) == 0.0025 * 0.1);
    assert_true(ssd_lr_at(&s, 50, 50 * 3665) == 0.0025 * 0.1 * 0.1);
    assert_true(fabs(ssd_lr_at(&s, 69, 69 * 3665) - 0.000025) < 1e-18);
    /* --warmup not given vs 0 vs negative: all "none" */
    ssd_lr_schedule z = mk(SSD_LR_FLAG_DEFAULT, 32, -1.5, 0, 117266, 3665, 0, dec, 2);
    assert_int_equal(z.warmup_iters, 0);
    assert_true(ssd_lr_at(&z, 0, 0) == 0.0025);
}

static void test_spec_8x128_warmup(void **state) {
    (void)state;
    const int dec[] = {40, 50};
    /* DistributedSampler: ceil(117266 / 8) = 14659 per rank, ceil(14659 / 128) = 115 steps. */
    const int64_t ipe = 115;
    ssd_lr_schedule s = mk(SSD_LR_FLAG_DEFAULT, 8 * 128, 2.619685, 0, 117266, ipe, 0, dec, 2);
    assert_true(s.base_lr == 0.08);
    assert_int_equal(s.warmup_iters, 299); /* 299.99998 truncated */
    assert_true(ssd_lr_at(&s, 0, 0) == 0.0);
    assert_true(ssd_lr_at(&s, 0, 1) == 0.08 - 298.0 * (0.08 / 299.0));
    double last = 0.08 - 1.0 * (0.08 / 299.0); /* it = 298, in epoch 2 */
    assert_true(ssd_lr_at(&s, 2, 298) == last);
    assert_true(fabs(last - 0.0797324414715719) < 1e-15);
    assert_true(ssd_lr_at(&s, 2, 299) == last);
    assert_true(ssd_lr_at(&s, 3, 3 * ipe) == last);
    assert_true(ssd_lr_at(&s, 39, 40 * ipe - 1) == last);
    assert_true(ssd_lr_at(&s, 40, 40 * ipe) == 0.08 * 0.1);
    assert_true(fabs(ssd_lr_at(&s, 40, 40 * ipe) - 0.008) < 1e-17);
    assert_true(ssd_lr_at(&s, 55, 55 * ipe + 3) == 0.08 * 0.1 * 0.1);
    /* warmup factor 1: the ramp starts at cur/2 */
    ssd_lr_schedule f = mk(SSD_LR_FLAG_DEFAULT, 1024, 2.619685, 1, 117266, ipe, 0, dec, 2);
    assert_true(ssd_lr_at(&f, 0, 0) == 0.08 - 299.0 * (0.08 / 598.0));
    /* --iteration 400 > wb: warmup never writes, the LR is the base */
    ssd_lr_schedule r = mk(SSD_LR_FLAG_DEFAULT, 1024, 2.619685, 0, 117266, ipe, 400, dec, 2);
    assert_true(ssd_lr_at(&r, 0, 400) == 0.08);
    /* --iteration 250: the ramp resumes at 250 and its last value survives */
    ssd_lr_schedule q = mk(SSD_LR_FLAG_DEFAULT, 1024, 2.619685, 0, 117266, ipe, 250, dec, 2);
    assert_true(ssd_lr_at(&q, 0, 250) == 0.08 - 49.0 * (0.08 / 299.0));
    assert_true(ssd_lr_at(&q, 1, 250 + ipe) == last);
}

/* A decay epoch inside the warmup: the ramp continues from the decayed cur; a decay after the
 * ramp's last step re-sets the LR to cur. */
static void test_decay_inside_warmup(void **state) {
    (void)state;
    const int dec[] = {1, 3};
    /* 10 steps per epoch, wb = 25 (ends in epoch 2) */
    ssd_lr_schedule s = mk(0.032, 32, 25.0, 0, 32, 10, 0, dec, 2);
    assert_int_equal(s.warmup_iters, 25);
    double c0 = 0.032, c1 = 0.032 * 0.1, c2 = 0.032 * 0.1 * 0.1;
    assert_true(ssd_lr_at(&s, 0, 9) == c0 - 16.0 * (c0 / 25.0));
    assert_true(ssd_lr_at(&s, 1, 10) == c1 - 15.0 * (c1 / 25.0));
    assert_true(ssd_lr_at(&s, 2, 24) == c1 - 1.0 * (c1 / 25.0));
    assert_true(ssd_lr_at(&s, 2, 29) == c1 - 1.0 * (c1 / 25.0));
    assert_true(ssd_lr_at(&s, 3, 30) == c2);
    assert_true(ssd_lr_current(&s, 0) == c0 && ssd_lr_current(&s, 2) == c1);
}

/* ------------------------------------------------------------------------------------------ */
/* train.py's loop, written statefully, as a C-only oracle                                    */

typedef struct replay {
    double lr_flag, warmup;
    int gb, wf, ipe, it0, epochs, nd;
    int64_t n;
    int dec[6];
} replay;

static int in_list(int e, const int *l, int n) {
    for (int i = 0; i < n; i++)
        if (l[i] == e)
            return 1;
    return 0;
}

static int64_t replay_check(const replay *c) {
    ssd_lr_schedule s =
        mk(c->lr_flag, c->gb, c->warmup, c->wf, c->n, c->ipe, c->it0, c->dec, c->nd);
    double cur = c->lr_flag * ((double)c->gb / 32.0), group = cur;
    int64_t wb = c->warmup > 0 ? (int64_t)(c->warmup * (double)c->n / (double)c->gb) : 0;
    assert_int_equal(s.warmup_iters, wb);
    int64_t it = c->it0, checked = 0;
    for (int e = 0; e < c->epochs; e++) {
        if (in_list(e, c->dec, c->nd)) {
            cur *= 0.1;
            group = cur;
        }
        for (int b = 0; b < c->ipe; b++, it++) {
            if (it < wb) {
                double step = cur / ((double)wb * pow(2.0, c->wf));
                group = cur - (double)(wb - it) * step;
            }
            double got = ssd_lr_at(&s, e, it);
            if (got != group)
                fail_msg(
                    "lr %a != replay %a at epoch %d it %lld (gb %d warmup %g wf %d ipe %d it0 %d)",
                    got, group, e, (long long)it, c->gb, c->warmup, c->wf, c->ipe, c->it0);
            checked++;
        }
    }
    return checked;
}

static void test_c_replay_grid(void **state) {
    (void)state;
    const int decs[][4] = {{0, 0, 0, 0}, {2, 5, 0, 0}, {0, 3, 3, 0}, {6, 1, -1, 4}, {20, 0, 0, 0}};
    const int nds[] = {0, 2, 3, 4, 1};
    int64_t total = 0;
    for (int d = 0; d < 5; d++)
        for (int wf = -1; wf <= 3; wf++)
            for (int ipe = 1; ipe <= 13; ipe += 4)
                for (int it0 = 0; it0 <= 40; it0 += 13)
                    for (int w = 0; w < 5; w++) {
                        const double warm[] = {0, -2, 0.37, 1.0 / 3.0, 2.619685};
                        replay c = {.lr_flag = 2.5e-3,
                                    .warmup = warm[w],
                                    .gb = 96,
                                    .wf = wf,
                                    .ipe = ipe,
                                    .it0 = it0,
                                    .epochs = 9,
                                    .nd = nds[d],
                                    .n = 4711};
                        memcpy(c.dec, decs[d], sizeof decs[d]);
                        total += replay_check(&c);
                    }
    printf("C replay: %lld steps compared\n", (long long)total);
}

/* ------------------------------------------------------------------------------------------ */

static int python_cmd(char *buf, size_t len) {
    const char *py = tu_env("SSD_PYTHON_TORCH");
    if (py && access(py, X_OK) == 0) {
        snprintf(buf, len, "\"%s\"", py);
        return 0;
    }
    if (system("python3 -c 'import random' >/dev/null 2>&1") == 0) {
        snprintf(buf, len, "python3");
        return 0;
    }
    return -1;
}

static void test_vs_python_oracle(void **state) {
    (void)state;
    char src[1024], py[1100], dir[1200], path[1400], cmd[4200];
    if (tu_source_dir(src, sizeof src) != 0) {
        tu_skip("test_schedule/oracle", "SSD_SOURCE_DIR is not set (run through ctest)");
        return;
    }
    if (python_cmd(py, sizeof py) != 0) {
        tu_skip("test_schedule/oracle",
                "no python3 (neither $SSD_PYTHON_TORCH nor python3 on PATH)");
        return;
    }
    tu_scratch_dir("test_schedule", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/lr_oracle.txt", dir);
    snprintf(cmd, sizeof cmd, "%s \"%s/tools/lr_schedule_oracle.py\" > \"%s\"", py, src, path);
    assert_int_equal(tu_system(cmd), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    ssd_lr_schedule s;
    int have = 0, ncfg = 0;
    int64_t nsteps = 0, wb_seen = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == 'C') {
            char wtxt[64];
            double lr;
            int gb, wf, nd, dec[64];
            long long n, ipe, it0, epochs;
            int pos = 0;
            assert_int_equal(sscanf(line, "C %la %d %63s %d %lld %lld %lld %lld %d%n", &lr, &gb,
                                    wtxt, &wf, &n, &ipe, &it0, &epochs, &nd, &pos),
                             9);
            assert_true(nd >= 0 && nd < 64);
            for (int i = 0; i < nd; i++) {
                int k = 0;
                assert_int_equal(sscanf(line + pos, " %d%n", &dec[i], &k), 1);
                pos += k;
            }
            double warm = strcmp(wtxt, "none") == 0 ? 0.0 : strtod(wtxt, NULL);
            s = mk(lr, gb, warm, wf, n, ipe, it0, dec, nd);
            have = 1;
            ncfg++;
        } else if (line[0] == 'W') {
            long long wb;
            assert_true(have);
            assert_int_equal(sscanf(line, "W %lld", &wb), 1);
            if (s.warmup_iters != wb)
                fail_msg("config %d: wb %lld != oracle %lld", ncfg, (long long)s.warmup_iters, wb);
            wb_seen += wb > 0;
        } else if (line[0] == 'S') {
            long long e, it;
            double want;
            assert_true(have);
            assert_int_equal(sscanf(line, "S %lld %lld %la", &e, &it, &want), 3);
            double got = ssd_lr_at(&s, e, it);
            if (got != want)
                fail_msg("config %d epoch %lld it %lld: lr %a (%.17g) != oracle %a (%.17g)", ncfg,
                         e, it, got, got, want, want);
            nsteps++;
        } else {
            fail_msg("unexpected oracle line: %s", line);
        }
    }
    fclose(f);
    printf("python oracle: %d configurations (%lld with warmup), %lld steps identical\n", ncfg,
           (long long)wb_seen, (long long)nsteps);
    assert_true(ncfg > 250 && nsteps > 100000 && wb_seen > 100);
}

/* ------------------------------------------------------------------------------------------ */

static void test_eval_due(void **state) {
    (void)state;
    /* default: --val-interval 5, no --val-epochs -> after epochs 5, 10, ... (1-based) */
    for (int e = 0; e < 100; e++)
        assert_int_equal(ssd_eval_due(e, 5, NULL, 0), (e + 1) % 5 == 0);
    assert_false(ssd_eval_due(0, 5, NULL, 0));
    assert_true(ssd_eval_due(4, 5, NULL, 0));
    /* interval 0 disables; val epochs are 1-based */
    const int ve[] = {40, 50, 55};
    for (int e = 0; e < 100; e++)
        assert_int_equal(ssd_eval_due(e, 0, ve, 3), e == 39 || e == 49 || e == 54);
    assert_true(ssd_eval_due(39, 0, ve, 3));
    assert_false(ssd_eval_due(40, 0, ve, 3));
    /* union of both */
    assert_true(ssd_eval_due(2, 3, ve, 3) && ssd_eval_due(54, 3, ve, 3) &&
                !ssd_eval_due(3, 3, ve, 3));
    /* interval 1: every epoch; negative interval divides like Python's % == 0 */
    for (int e = 0; e < 10; e++)
        assert_true(ssd_eval_due(e, 1, NULL, 0));
    assert_true(ssd_eval_due(9, -5, NULL, 0) && !ssd_eval_due(8, -5, NULL, 0));
}

static void test_parse_int_list(void **state) {
    (void)state;
    int v[4], n = -1;
    ssd_error err = {0};
    assert_int_equal(ssd_parse_int_list("--lr-decay-schedule", "40,50", v, 4, &n, &err), SSD_OK);
    assert_int_equal(n, 2);
    assert_int_equal(v[0], 40);
    assert_int_equal(v[1], 50);
    assert_int_equal(ssd_parse_int_list("--x", " 1 , -2,3 ", v, 4, &n, &err), SSD_OK);
    assert_int_equal(n, 3);
    assert_int_equal(v[1], -2);
    assert_int_equal(ssd_parse_int_list("--x", "", v, 4, &n, &err), SSD_OK);
    assert_int_equal(n, 0);
    assert_int_equal(ssd_parse_int_list("--x", "none", v, 4, &n, &err), SSD_OK);
    assert_int_equal(n, 0);
    const char *bad[] = {"40,",   ",40",       "40,,50",      "4x", "a",
                         "40 50", "1,2,3,4,5", "99999999999", "1.5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ssd_error e2 = {0};
        assert_int_equal(ssd_parse_int_list("--val-epochs", bad[i], v, 4, &n, &e2), SSD_ERR_ARG);
        assert_non_null(strstr(e2.msg, "--val-epochs"));
        printf("'%s' -> %s\n", bad[i], e2.msg);
    }
}

static void test_init_errors(void **state) {
    (void)state;
    ssd_lr_schedule s;
    ssd_error err = {0};
    const int many[17] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    assert_int_equal(ssd_lr_schedule_init(&s, 0, 32, 0, 0, 1, 1, 0, NULL, 0, &err), SSD_ERR_ARG);
    assert_non_null(strstr(err.msg, "--lr"));
    assert_int_equal(ssd_lr_schedule_init(&s, NAN, 32, 0, 0, 1, 1, 0, NULL, 0, &err), SSD_ERR_ARG);
    assert_int_equal(ssd_lr_schedule_init(&s, 1e-3, 0, 0, 0, 1, 1, 0, NULL, 0, &err), SSD_ERR_ARG);
    assert_int_equal(ssd_lr_schedule_init(&s, 1e-3, 32, NAN, 0, 1, 1, 0, NULL, 0, &err),
                     SSD_ERR_ARG);
    assert_non_null(strstr(err.msg, "--warmup"));
    assert_int_equal(ssd_lr_schedule_init(&s, 1e-3, 32, 1, 65, 1, 1, 0, NULL, 0, &err),
                     SSD_ERR_ARG);
    assert_non_null(strstr(err.msg, "--warmup-factor"));
    assert_int_equal(ssd_lr_schedule_init(&s, 1e-3, 32, 1, 0, 0, 1, 0, NULL, 0, &err), SSD_ERR_ARG);
    assert_int_equal(ssd_lr_schedule_init(&s, 1e-3, 32, 0, 0, 1, 0, 0, NULL, 0, &err), SSD_ERR_ARG);
    assert_int_equal(ssd_lr_schedule_init(&s, 1e-3, 32, 0, 0, 1, 1, -1, NULL, 0, &err),
                     SSD_ERR_ARG);
    assert_non_null(strstr(err.msg, "--iteration"));
    assert_int_equal(ssd_lr_schedule_init(&s, 1e-3, 32, 0, 0, 1, 1, 0, many, 17, &err),
                     SSD_ERR_ARG);
    assert_non_null(strstr(err.msg, "--lr-decay-schedule"));
    /* duplicates and negatives do not count against the cap; the list is sorted */
    const int d[] = {50, 40, -3, 40, 50};
    assert_int_equal(ssd_lr_schedule_init(&s, 1e-3, 32, 0, 0, 1, 1, 0, d, 5, &err), SSD_OK);
    assert_int_equal(s.n_decay, 2);
    assert_int_equal(s.decay_epochs[0], 40);
    assert_int_equal(s.decay_epochs[1], 50);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_1x32),           cmocka_unit_test(test_spec_8x128_warmup),
        cmocka_unit_test(test_decay_inside_warmup), cmocka_unit_test(test_c_replay_grid),
        cmocka_unit_test(test_vs_python_oracle),    cmocka_unit_test(test_eval_due),
        cmocka_unit_test(test_parse_int_list),      cmocka_unit_test(test_init_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
