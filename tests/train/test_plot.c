/* The training-curves SVG (train/plot.h).
 *
 * Oracles: the nice-tick rule is checked against a brute force that tries every step m * 10^k
 * (m in 1, 2, 5; k in -40..40) in ascending order and counts the multiples in range one by one.
 * The SVG is read by Python's XML parser (tools/svg_check.py under SSD_PYTHON_TORCH or
 * /usr/bin/python3; skipped, with the reason, without one), which reports the tick labels
 * (pixel position and printed value), polylines and circles. From the ticks alone the test fits
 * each axis' linear map, checks every tick lies on it, and maps its own input data through it:
 * every polyline vertex and mAP point must land within 0.01 px, inside its panel. Also: the mAP
 * axis spans [0, max(0.25, max mAP)] and the dashed target sits at 0.23; non-finite points are
 * skipped and counted in the legend; empty series give axes only; the title is XML-escaped; an
 * unwritable path gives an error naming it and leaves no file. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rng.h"
#include "io/file.h"
#include "testutil.h"
#include "train/plot.h"

static char g_scratch[512], g_src[1024], g_py[1024];
static int g_have_py;

static int setup(void **state) {
    (void)state;
    if (tu_source_dir(g_src, sizeof g_src) != 0) return -1;
    tu_scratch_dir("test_plot", g_scratch, sizeof g_scratch);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf \"%s\"/*", g_scratch);
    if (tu_system(cmd) != 0) return -1;
    const char *py = tu_env("SSD_PYTHON_TORCH");
    if (!py || access(py, X_OK) != 0) py = "/usr/bin/python3";
    if (access(py, X_OK) == 0) {
        snprintf(g_py, sizeof g_py, "%s", py);
        snprintf(cmd, sizeof cmd,
                 "\"%s\" -c \"import xml.etree.ElementTree, json\" >/dev/null 2>&1", py);
        g_have_py = system(cmd) == 0;
    }
    return 0;
}

static const char *spath(const char *name) {
    static char buf[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_scratch, name);
    return buf[k];
}

/* ---- nice ticks ---- */

/* Brute force: the first m * 10^k, ascending, with at most max_ticks multiples in [lo, hi]
 * (a multiple within 1e-9 of a step outside counts, as in plot.h). Fills the multiples. */
static double brute_step(double lo, double hi, int max_ticks, double *ticks, int *n) {
    static const int ms[3] = {1, 2, 5};
    for (int k = -40; k <= 40; k++)
        for (int j = 0; j < 3; j++) {
            double s = ms[j] * pow(10.0, k);
            /* at least (hi - lo) / s - 1 multiples lie in range: too many, skip the count */
            if ((hi - lo) / s > max_ticks + 2) continue;
            double a = floor(lo / s) - 2, b = ceil(hi / s) + 2;
            int cnt = 0;
            for (double i = a; i <= b; i++) {
                double v = i * s;
                if (v >= lo - 1e-9 * s && v <= hi + 1e-9 * s) {
                    if (cnt < 64) ticks[cnt] = v;
                    cnt++;
                }
            }
            if (cnt <= max_ticks) {
                *n = cnt;
                return s;
            }
        }
    *n = 0;
    return 0;
}

static void check_ticks(double lo, double hi, int max_ticks, int k) {
    double got[64], want[64];
    int nwant;
    double s = brute_step(lo, hi, max_ticks, want, &nwant);
    double step = ssd_nice_step(lo, hi, max_ticks);
    int n = ssd_nice_ticks(lo, hi, max_ticks, got);
    if (fabs(step - s) > 1e-12 * s || n != nwant)
        fail_msg("case %d [%.17g, %.17g] max %d: step %.17g n %d, brute force %.17g n %d", k, lo,
                 hi, max_ticks, step, n, s, nwant);
    for (int i = 0; i < n; i++) {
        if (fabs(got[i] - want[i]) > 1e-9 * s)
            fail_msg("case %d tick %d: %.17g, brute force %.17g", k, i, got[i], want[i]);
        assert_true(got[i] >= lo - 1e-9 * s && got[i] <= hi + 1e-9 * s);
        if (i) assert_true(fabs(got[i] - got[i - 1] - s) <= 1e-9 * s);
    }
}

static void test_nice_ticks(void **state) {
    (void)state;
    int k = 0;
    for (; k < 20000; k++) {
        ssd_rng r = ssd_rng_stream(5, SSD_RNG_DOMAIN_TEST, 0, 0, (uint64_t)k);
        double mag = pow(10.0, ssd_rng_range(&r, -8, 8));
        double lo = ssd_rng_range(&r, -1, 1) * mag;
        double span = pow(10.0, ssd_rng_range(&r, -4, 2)) * mag;
        if (k % 5 == 0) lo = round(lo), span = ceil(span); /* integer ranges hit tick boundaries */
        if (k % 7 == 0) lo = 0;
        check_ticks(lo, lo + span, 2 + (int)ssd_rng_below(&r, 11), k);
    }
    /* hand-picked ranges: iterations, learning rates, mAP */
    const double cases[][3] = {{0, 1000, 6},       {0, 0.25, 6},  {0, 0.0025, 6},
                               {0, 117266, 6},     {-5, 5, 6},    {0.1, 0.3, 3},
                               {1e-7, 3e-7, 4},    {0, 1, 11},    {1, 2, 2},
                               {99999, 100001, 8}, {-0.25, 0, 6}, {3.7e12, 3.9e12, 5}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++, k++)
        check_ticks(cases[i][0], cases[i][1], (int)cases[i][2], k);
    double t[16];
    assert_int_equal(ssd_nice_ticks(0, 0.25, 6, t), 6);
    assert_true(t[5] == 0.25 && t[1] == 0.05);
    assert_int_equal(ssd_nice_ticks(0, 1, 11, t), 11);
    assert_true(t[3] == 0.3 && t[7] == 0.7); /* decimal ticks are the nearest doubles */
    assert_int_equal(ssd_nice_ticks(0, 117266, 6, t), 6);
    assert_true(t[1] == 20000 && t[5] == 100000);
    /* degenerate input: no ticks */
    assert_int_equal(ssd_nice_ticks(1, 1, 6, t), 0);
    assert_int_equal(ssd_nice_ticks(2, 1, 6, t), 0);
    assert_int_equal(ssd_nice_ticks(NAN, 1, 6, t), 0);
    assert_int_equal(ssd_nice_ticks(0, INFINITY, 6, t), 0);
    assert_int_equal(ssd_nice_ticks(-1e308, 1e308, 6, t), 0);
    assert_int_equal(ssd_nice_ticks(0, 1, 1, t), 0);
    assert_true(ssd_nice_step(0, 1, 1) == 0);
}

/* ---- the SVG through the Python checker ---- */

static int need_python(const char *test) {
    if (g_have_py) return 1;
    tu_skip(test, "no python3 with xml.etree (SSD_PYTHON_TORCH or /usr/bin/python3)");
    return 0;
}

/* Writes the plot to NAME.svg and returns the checker's report (cJSON_Delete it). */
static cJSON *plot_and_check(const char *name, const char *title, const ssd_curve_point *loss,
                             int nl, const ssd_curve_point *avg, int na, const ssd_curve_point *lr,
                             int nr, const ssd_curve_point *map, int nm) {
    char svg[1300], js[1300], log[1300], cmd[5000], out[4096];
    snprintf(svg, sizeof svg, "%s.svg", spath(name));
    snprintf(js, sizeof js, "%s.json", spath(name));
    snprintf(log, sizeof log, "%s.log", spath(name));
    ssd_error err;
    if (ssd_plot_training_svg(svg, title, loss, nl, avg, na, lr, nr, map, nm, &err) != SSD_OK)
        fail_msg("%s", err.msg);
    snprintf(cmd, sizeof cmd, "\"%s\" \"%s/tools/svg_check.py\" \"%s\" \"%s\"", g_py, g_src, svg,
             js);
    assert_int_equal(tu_run_capture(cmd, log, out, sizeof out), 0);
    return tu_read_json(js);
}

typedef struct linmap {
    double a, b; /* pixel = a + b * value */
} linmap;

/* Least-squares line through the (pixel, value) tick pairs of one axis; every tick must lie on it
 * within 0.01 px, there must be at least 2, and their values must be evenly spaced. */
static linmap fit_axis(const cJSON *panel, const char *axis) {
    const cJSON *t = cJSON_GetObjectItem(panel, axis);
    int n = cJSON_GetArraySize(t);
    if (n < 2) fail_msg("axis %s has %d ticks", axis, n);
    double sv = 0, sp = 0, svv = 0, svp = 0, v[64], p[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(t, i);
        p[i] = cJSON_GetArrayItem(e, 0)->valuedouble;
        v[i] = cJSON_GetArrayItem(e, 1)->valuedouble;
        sv += v[i], sp += p[i], svv += v[i] * v[i], svp += v[i] * p[i];
    }
    linmap m;
    m.b = (n * svp - sv * sp) / (n * svv - sv * sv);
    m.a = (sp - m.b * sv) / n;
    double step = v[1] - v[0];
    for (int i = 0; i < n; i++) {
        if (fabs(m.a + m.b * v[i] - p[i]) > 0.01)
            fail_msg("axis %s: tick %g at %.3f px is off the axis line by %.4f px", axis, v[i],
                     p[i], m.a + m.b * v[i] - p[i]);
        if (i) assert_true(fabs(v[i] - v[i - 1] - step) <= 1e-9 * fabs(step));
    }
    /* the step is 1, 2 or 5 x 10^k */
    double mant = step / pow(10.0, floor(log10(step) + 1e-12));
    assert_true(fabs(mant - 1) < 1e-6 || fabs(mant - 2) < 1e-6 || fabs(mant - 5) < 1e-6);
    return m;
}

static const cJSON *panel(const cJSON *rep, const char *id) {
    const cJSON *p = cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "panels"), id);
    if (!p) fail_msg("no panel %s", id);
    return p;
}

static int count_finite(const ssd_curve_point *p, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) k += isfinite(p[i].x) && isfinite(p[i].y);
    return k;
}

/* The vertices (a polyline's or the circles') are the finite input points mapped through the
 * axes, in order, inside the panel's frame. Returns how many were compared. */
static int check_points(const cJSON *verts, const ssd_curve_point *p, int n, linmap mx, linmap my,
                        const cJSON *pan, const char *what) {
    int want = count_finite(p, n);
    if (want == 0) {
        if (verts) fail_msg("%s: drawn without finite points", what);
        return 0;
    }
    if (!verts) fail_msg("%s: missing", what);
    assert_int_equal(cJSON_GetArraySize(verts), want);
    const cJSON *fr = cJSON_GetObjectItem(pan, "frame");
    double fx = cJSON_GetArrayItem(fr, 0)->valuedouble, fy = cJSON_GetArrayItem(fr, 1)->valuedouble;
    double fw = cJSON_GetArrayItem(fr, 2)->valuedouble, fh = cJSON_GetArrayItem(fr, 3)->valuedouble;
    int j = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(p[i].x) || !isfinite(p[i].y)) continue;
        const cJSON *v = cJSON_GetArrayItem(verts, j++);
        double vx = cJSON_GetArrayItem(v, 0)->valuedouble,
               vy = cJSON_GetArrayItem(v, 1)->valuedouble;
        double ex = mx.a + mx.b * p[i].x, ey = my.a + my.b * p[i].y;
        if (fabs(vx - ex) > 0.01 || fabs(vy - ey) > 0.01)
            fail_msg("%s point %d (%g, %g): drawn at (%.3f, %.3f), the axes put it at (%.4f, %.4f)",
                     what, i, p[i].x, p[i].y, vx, vy, ex, ey);
        assert_true(vx >= fx - 0.01 && vx <= fx + fw + 0.01);
        assert_true(vy >= fy - 0.01 && vy <= fy + fh + 0.01);
    }
    return want;
}

static int legend_has(const cJSON *rep, const char *text) {
    const cJSON *l = cJSON_GetObjectItem(rep, "legend");
    for (int i = 0; i < cJSON_GetArraySize(l); i++)
        if (strcmp(cJSON_GetArrayItem(l, i)->valuestring, text) == 0) return 1;
    return 0;
}

/* Everything the picture shows, checked against the data; returns the vertices compared. */
static int check_report(const cJSON *rep, const ssd_curve_point *loss, int nl,
                        const ssd_curve_point *avg, int na, const ssd_curve_point *lr, int nr,
                        const ssd_curve_point *map, int nm) {
    const cJSON *size = cJSON_GetObjectItem(rep, "size");
    assert_true(cJSON_GetArrayItem(size, 0)->valuedouble == SSD_PLOT_W);
    assert_true(cJSON_GetArrayItem(size, 1)->valuedouble == SSD_PLOT_H);
    const cJSON *lp = panel(rep, "loss-panel"), *mp = panel(rep, "map-panel");
    linmap x1 = fit_axis(lp, "xtick"), yl = fit_axis(lp, "ytick"), yr = fit_axis(lp, "y2tick");
    linmap x2 = fit_axis(mp, "xtick"), ym = fit_axis(mp, "ytick");
    /* both panels share the x axis */
    assert_true(fabs(x1.a - x2.a) < 0.01 && fabs(x1.b - x2.b) < 1e-6 * fabs(x1.b));
    const cJSON *pl = cJSON_GetObjectItem(rep, "polylines");
    int n = 0;
    n += check_points(cJSON_GetObjectItem(pl, "loss"), loss, nl, x1, yl, lp, "loss");
    n += check_points(cJSON_GetObjectItem(pl, "avg_loss"), avg, na, x1, yl, lp, "avg_loss");
    n += check_points(cJSON_GetObjectItem(pl, "lr"), lr, nr, x1, yr, lp, "lr");
    n += check_points(cJSON_GetObjectItem(pl, "map"), map, nm, x2, ym, mp, "map");
    n += check_points(cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "circles"), "map-point"), map,
                      nm, x2, ym, mp, "map points");
    /* the mAP axis: the frame's bottom is 0 and its top max(0.25, max mAP) */
    double mmax = 0.25;
    for (int i = 0; i < nm; i++)
        if (isfinite(map[i].x) && isfinite(map[i].y) && map[i].y > mmax) mmax = map[i].y;
    const cJSON *fr = cJSON_GetObjectItem(mp, "frame");
    double top = cJSON_GetArrayItem(fr, 1)->valuedouble;
    double bot = top + cJSON_GetArrayItem(fr, 3)->valuedouble;
    assert_true(fabs((top - ym.a) / ym.b - mmax) < 1e-4 * mmax);
    assert_true(fabs((bot - ym.a) / ym.b) < 1e-4 * mmax);
    /* the dashed target at 0.23, across the panel, labelled */
    const cJSON *tg = cJSON_GetObjectItem(rep, "target");
    assert_non_null(tg);
    double ty = ym.a + ym.b * 0.23;
    assert_true(fabs(cJSON_GetObjectItem(tg, "y1")->valuedouble - ty) < 0.01);
    assert_true(fabs(cJSON_GetObjectItem(tg, "y2")->valuedouble - ty) < 0.01);
    assert_true(strlen(cJSON_GetObjectItem(tg, "dasharray")->valuestring) > 0);
    assert_non_null(strstr(cJSON_GetObjectItem(rep, "target_label")->valuestring, "0.23"));
    const char *items[] = {"loss", "smoothed loss", "learning rate (right axis)", "mAP", "target"};
    for (int i = 0; i < 5; i++)
        if (!legend_has(rep, items[i])) fail_msg("legend lacks '%s'", items[i]);
    return n;
}

/* A plausible run: loss falling from ~22 with noise, its running mean, warmup-then-step lr,
 * mAP at six evaluations reaching 0.242 (above the 0.23 target). */
static void make_run(ssd_curve_point *loss, ssd_curve_point *avg, int n, ssd_curve_point *lr,
                     ssd_curve_point *map, int nm) {
    ssd_rng r = ssd_rng_stream(6, SSD_RNG_DOMAIN_TEST, 0, 0, 0);
    double run = 0;
    for (int i = 0; i < n; i++) {
        double it = 1 + 37.0 * i;
        loss[i].x = it;
        loss[i].y = 3 + 19 * exp(-i / 60.0) + ssd_rng_range(&r, -0.8, 0.8);
        run = i ? 0.9 * run + 0.1 * loss[i].y : loss[i].y;
        avg[i].x = it, avg[i].y = run;
        lr[i].x = it;
        lr[i].y = i < 50 ? 0.0025 * (i + 1) / 50.0 : i < 300 ? 0.0025 : 0.00025;
    }
    for (int i = 0; i < nm; i++) {
        map[i].x = (i + 1) * 37.0 * n / nm;
        map[i].y = 0.242 * (1 - exp(-(i + 1) / 1.5));
    }
}

static void test_svg_maps_back(void **state) {
    (void)state;
    if (!need_python("test_plot/svg_maps_back")) skip();
    enum { N = 400, NM = 6 };
    static ssd_curve_point loss[N], avg[N], lr[N], map[NM];
    make_run(loss, avg, N, lr, map, NM);
    cJSON *rep = plot_and_check("run", "SSD-ResNet34, 8 ranks", loss, N, avg, N, lr, N, map, NM);
    int n = check_report(rep, loss, N, avg, N, lr, N, map, NM);
    assert_int_equal(n, 3 * N + 2 * NM);
    assert_string_equal(cJSON_GetObjectItem(rep, "title")->valuestring, "SSD-ResNet34, 8 ranks");
    const cJSON *l = cJSON_GetObjectItem(rep, "legend");
    for (int i = 0; i < cJSON_GetArraySize(l); i++)
        assert_null(strstr(cJSON_GetArrayItem(l, i)->valuestring, "non-finite"));
    cJSON_Delete(rep);
    /* mAP above 0.25 stretches its axis; negative losses and an x range not starting at 0 */
    map[NM - 1].y = 0.317;
    for (int i = 0; i < N; i++) loss[i].y -= 6, loss[i].x += 5000, avg[i].x += 5000;
    rep = plot_and_check("run2", NULL, loss, N, avg, N, lr, N, map, NM);
    check_report(rep, loss, N, avg, N, lr, N, map, NM);
    assert_string_equal(cJSON_GetObjectItem(rep, "title")->valuestring, "");
    cJSON_Delete(rep);
}

static void test_nonfinite_skipped(void **state) {
    (void)state;
    if (!need_python("test_plot/nonfinite_skipped")) skip();
    enum { N = 120, NM = 5 };
    static ssd_curve_point loss[N], avg[N], lr[N], map[NM];
    make_run(loss, avg, N, lr, map, NM);
    loss[0].y = INFINITY; /* a diverged first step must not flatten the curve */
    loss[7].y = NAN;
    loss[8].y = -INFINITY;
    avg[9].x = NAN;
    lr[50].y = INFINITY;
    map[2].y = NAN;
    int skipped = 6;
    cJSON *rep = plot_and_check("nonfinite", "inf loss", loss, N, avg, N, lr, N, map, NM);
    int n = check_report(rep, loss, N, avg, N, lr, N, map, NM);
    assert_int_equal(n, 3 * N - 5 + 2 * (NM - 1));
    char want[64];
    snprintf(want, sizeof want, "%d non-finite skipped", skipped);
    if (!legend_has(rep, want)) fail_msg("legend lacks '%s'", want);
    /* the loss axis is scaled to the finite values: its top tick is below 2 * max finite loss */
    const cJSON *yt = cJSON_GetObjectItem(panel(rep, "loss-panel"), "ytick");
    double top =
        cJSON_GetArrayItem(cJSON_GetArrayItem(yt, cJSON_GetArraySize(yt) - 1), 1)->valuedouble;
    assert_true(top < 50);
    cJSON_Delete(rep);
    /* a series with no finite point is not drawn at all */
    for (int i = 0; i < NM; i++) map[i].y = NAN;
    rep = plot_and_check("nonfinite2", "all mAP NaN", loss, N, avg, N, lr, N, map, NM);
    check_report(rep, loss, N, avg, N, lr, N, map, NM);
    assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(rep, "polylines"), "map"));
    snprintf(want, sizeof want, "%d non-finite skipped", 5 + NM);
    if (!legend_has(rep, want)) fail_msg("legend lacks '%s'", want);
    cJSON_Delete(rep);
}

static void test_empty_series(void **state) {
    (void)state;
    if (!need_python("test_plot/empty_series")) skip();
    cJSON *rep = plot_and_check("empty", "nothing yet", NULL, 0, NULL, 0, NULL, 0, NULL, 0);
    assert_int_equal(check_report(rep, NULL, 0, NULL, 0, NULL, 0, NULL, 0), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(rep, "polylines")), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(rep, "circles")), 0);
    cJSON_Delete(rep);
    /* only the loss so far (before the first evaluation), a single point */
    ssd_curve_point one = {1, 21.5};
    rep = plot_and_check("one", "first step", &one, 1, NULL, 0, NULL, 0, NULL, 0);
    assert_int_equal(check_report(rep, &one, 1, NULL, 0, NULL, 0, NULL, 0), 1);
    cJSON_Delete(rep);
}

static void test_title_escaped(void **state) {
    (void)state;
    if (!need_python("test_plot/title_escaped")) skip();
    const char *title =
        "a<b & c>\"d\" 'e' ]]> \x01\x1f tab\there \xff\xc3 caf\xc3\xa9 \xe2\x82\xac";
    const char *want = "a<b & c>\"d\" 'e' ]]> ?? tab\there ?? caf\xc3\xa9 \xe2\x82\xac";
    cJSON *rep = plot_and_check("title", title, NULL, 0, NULL, 0, NULL, 0, NULL, 0);
    assert_string_equal(cJSON_GetObjectItem(rep, "title")->valuestring, want);
    cJSON_Delete(rep);
}

/* ---- failures ---- */

static int count_leftovers(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strstr(e->d_name, ".tmp") != NULL;
    closedir(d);
    return n;
}

static void test_unwritable(void **state) {
    (void)state;
    ssd_curve_point p[2] = {{0, 1}, {10, 2}};
    ssd_error err;
    /* a directory that does not exist */
    const char *missing = spath("no/such/dir/plot.svg");
    assert_int_equal(ssd_plot_training_svg(missing, "t", p, 2, p, 2, p, 2, p, 2, &err), SSD_ERR_IO);
    printf("error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, missing));
    assert_int_equal(access(missing, F_OK), -1);
    /* the path is a directory: the rename fails, the temp file is removed, the directory stays */
    const char *dirpath = spath("plot_is_a_dir");
    assert_int_equal(mkdir(dirpath, 0755), 0);
    assert_int_equal(ssd_plot_training_svg(dirpath, "t", p, 2, p, 2, p, 2, p, 2, &err), SSD_ERR_IO);
    printf("error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, dirpath));
    struct stat st;
    assert_int_equal(stat(dirpath, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(count_leftovers(g_scratch, "plot_is_a_dir"), 0);
    /* a good write replaces an old file completely */
    const char *good = spath("replace.svg");
    assert_int_equal(ssd_write_file_atomic(good, "old", 3, &err), SSD_OK);
    assert_int_equal(ssd_plot_training_svg(good, "t", p, 2, NULL, 0, NULL, 0, NULL, 0, &err),
                     SSD_OK);
    char *text;
    size_t len;
    assert_int_equal(ssd_read_file(good, &text, &len, &err), SSD_OK);
    assert_memory_equal(text, "<?xml", 5);
    assert_non_null(strstr(text, "</svg>\n"));
    assert_int_equal(strlen(text), len);
    free(text);
    assert_int_equal(count_leftovers(g_scratch, "replace.svg"), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nice_ticks),        cmocka_unit_test(test_svg_maps_back),
        cmocka_unit_test(test_nonfinite_skipped), cmocka_unit_test(test_empty_series),
        cmocka_unit_test(test_title_escaped),     cmocka_unit_test(test_unwritable),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
