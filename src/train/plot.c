/* SVG picture of the training curves (plot.h). The text is built in a strbuf and written with one
 * atomic write. Geometry: two panels with the same left/right edges; every data point maps to
 * pixels through one linear map per axis (axis_px), the same map that places the ticks. */
#include "train/plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strbuf.h"
#include "io/file.h"

#define TICK_EPS 1e-9    /* a multiple this fraction of a step outside [lo, hi] still counts */
#define MAX_AXIS_TICKS 8 /* at most this many ticks per axis */
#define VALUE_LIMIT 1e300
#define MAP_TARGET 0.23

static double pow10i(int e) { return pow(10.0, (double)e); }

/* i * m * 10^e, dividing by an exact power of ten for e < 0 so that decimal ticks come out as
 * the nearest doubles (3 * 0.1 -> 0.3). */
static double tick_value(double i, int m, int e) {
    double v = e >= 0 ? i * (m * pow10i(e)) : (i * m) / pow10i(-e);
    return v + 0.0; /* -0 (from ceil of a tiny negative) prints as "-0": make it 0 */
}

/* First and last index of the multiples of m * 10^e within [lo, hi] (TICK_EPS tolerance). */
static void multiple_range(double lo, double hi, int m, int e, double *i0, double *i1) {
    double s = m * pow10i(e);
    *i0 = ceil(lo / s - TICK_EPS);
    *i1 = floor(hi / s + TICK_EPS);
}

/* The step as (m, e); 0 when there is none. */
static int nice_step_me(double lo, double hi, int max_ticks, int *m_out, int *e_out) {
    if (!isfinite(lo) || !isfinite(hi) || max_ticks < 2 || !(hi > lo) || !isfinite(hi - lo))
        return 0;
    static const int ms[3] = {1, 2, 5};
    /* every step up to 10^e0 <= (hi - lo) / (10 max_ticks) has more than max_ticks multiples
     * in range, so scanning upward from there finds the smallest step that fits */
    int e0 = (int)floor(log10((hi - lo) / max_ticks)) - 1;
    if (e0 < -290 || e0 > 290) return 0;
    for (int e = e0; e <= e0 + 4; e++)
        for (int k = 0; k < 3; k++) {
            double i0, i1;
            multiple_range(lo, hi, ms[k], e, &i0, &i1);
            if (i1 - i0 + 1 <= max_ticks) {
                *m_out = ms[k];
                *e_out = e;
                return 1;
            }
        }
    return 0; /* not reached: 10^(e0 + 2) > hi - lo has at most 2 multiples in range */
}

double ssd_nice_step(double lo, double hi, int max_ticks) {
    int m, e;
    return nice_step_me(lo, hi, max_ticks, &m, &e) ? m * pow10i(e) : 0.0;
}

int ssd_nice_ticks(double lo, double hi, int max_ticks, double *out) {
    int m, e;
    if (!nice_step_me(lo, hi, max_ticks, &m, &e)) return 0;
    double i0, i1;
    multiple_range(lo, hi, m, e, &i0, &i1);
    int n = 0;
    for (double i = i0; i <= i1 && n < max_ticks; i++) out[n++] = tick_value(i, m, e);
    return n;
}

/* ---- axes ---- */

typedef struct axis {
    double lo, hi; /* data range shown */
    double p0, p1; /* pixel positions of lo and hi */
    int nt;        /* ticks */
    double t[MAX_AXIS_TICKS];
} axis;

static double axis_px(const axis *a, double v) {
    return a->p0 + (v - a->lo) * (a->p1 - a->p0) / (a->hi - a->lo);
}

static double clamp_value(double v) {
    return v < -VALUE_LIMIT ? -VALUE_LIMIT : v > VALUE_LIMIT ? VALUE_LIMIT : v;
}

static int point_ok(const ssd_curve_point *p) { return isfinite(p->x) && isfinite(p->y); }

/* Grows [*lo, *hi] (empty when *lo > *hi) by the finite x (or y) values of a series. */
static void extend_range(const ssd_curve_point *p, int n, int use_y, double *lo, double *hi) {
    for (int i = 0; i < n; i++) {
        if (!point_ok(&p[i])) continue;
        double v = clamp_value(use_y ? p[i].y : p[i].x);
        if (v < *lo) *lo = v;
        if (v > *hi) *hi = v;
    }
}

/* An automatic axis over [lo, hi] (empty: [0, 1]) that includes 0, widened to the multiples of
 * the smallest nice step that leaves at most MAX_AXIS_TICKS of them in the widened range (so
 * the frame ends on ticks); ticks are the nice ticks of the widened range. */
static void axis_auto(axis *a, double lo, double hi, double p0, double p1) {
    if (lo > hi) lo = 0, hi = 1;
    if (lo > 0) lo = 0;
    if (hi < 0) hi = 0;
    if (hi == lo) hi = lo + 1; /* only possible when both are 0 */
    static const int ms[3] = {1, 2, 5};
    int m, e0;
    if (nice_step_me(lo, hi, MAX_AXIS_TICKS, &m, &e0)) {
        for (int e = e0, done = 0; !done && e <= e0 + 2; e++)
            for (int k = 0; k < 3 && !done; k++) {
                if (e == e0 && ms[k] < m) continue;
                double s = ms[k] * pow10i(e);
                double i0 = floor(lo / s + TICK_EPS), i1 = ceil(hi / s - TICK_EPS);
                if (i1 - i0 + 1 <= MAX_AXIS_TICKS) {
                    lo = tick_value(i0, ms[k], e), hi = tick_value(i1, ms[k], e);
                    done = 1;
                }
            }
    }
    a->lo = lo, a->hi = hi, a->p0 = p0, a->p1 = p1;
    a->nt = ssd_nice_ticks(lo, hi, MAX_AXIS_TICKS, a->t);
}

/* A fixed axis over [lo, hi]. */
static void axis_fixed(axis *a, double lo, double hi, double p0, double p1) {
    a->lo = lo, a->hi = hi, a->p0 = p0, a->p1 = p1;
    a->nt = ssd_nice_ticks(lo, hi, MAX_AXIS_TICKS, a->t);
}

/* ---- SVG text ---- */

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is not one. */
static int utf8_len(const unsigned char *p) {
    int n;
    unsigned cp;
    if (p[0] < 0x80) return 1;
    if ((p[0] & 0xe0) == 0xc0)
        n = 2, cp = p[0] & 0x1f;
    else if ((p[0] & 0xf0) == 0xe0)
        n = 3, cp = p[0] & 0x0f;
    else if ((p[0] & 0xf8) == 0xf0)
        n = 4, cp = p[0] & 0x07;
    else
        return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0; /* also stops at the terminating NUL */
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    if (cp == 0xfffe || cp == 0xffff) return 0; /* not XML characters */
    return n;
}

static void sb_xml_text(ssd_strbuf *b, const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int n = utf8_len(p);
        if (n == 0) {
            ssd_sb_puts(b, "?");
            p++;
            continue;
        }
        switch (*p) {
        case '&':
            ssd_sb_puts(b, "&amp;");
            break;
        case '<':
            ssd_sb_puts(b, "&lt;");
            break;
        case '>':
            ssd_sb_puts(b, "&gt;");
            break;
        case '"':
            ssd_sb_puts(b, "&quot;");
            break;
        case '\'':
            ssd_sb_puts(b, "&apos;");
            break;
        default:
            if (*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r')
                ssd_sb_puts(b, "?");
            else
                ssd_sb_putn(b, (const char *)p, (size_t)n);
        }
        p += n;
    }
}

/* Panel geometry (pixels). */
enum { LEFT = 80, RIGHT = 820, TOP1 = 64, BOT1 = 320, TOP2 = 380, BOT2 = 545 };

static void frame_and_ticks(ssd_strbuf *b, const axis *x, const axis *y, const axis *y2, int top,
                            int bot) {
    ssd_sb_printf(b,
                  "<rect class=\"frame\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                  "fill=\"none\" stroke=\"#444\"/>\n",
                  LEFT, top, RIGHT - LEFT, bot - top);
    for (int i = 0; i < x->nt; i++) {
        double px = axis_px(x, x->t[i]);
        ssd_sb_printf(b,
                      "<line class=\"xgrid\" x1=\"%.3f\" y1=\"%d\" x2=\"%.3f\" y2=\"%d\" "
                      "stroke=\"#e4e4e4\"/>\n",
                      px, top, px, bot);
        ssd_sb_printf(b,
                      "<text class=\"xtick-label\" x=\"%.3f\" y=\"%d\" "
                      "text-anchor=\"middle\">%.10g</text>\n",
                      px, bot + 16, x->t[i]);
    }
    for (int i = 0; i < y->nt; i++) {
        double py = axis_px(y, y->t[i]);
        ssd_sb_printf(b,
                      "<line class=\"ygrid\" x1=\"%d\" y1=\"%.3f\" x2=\"%d\" y2=\"%.3f\" "
                      "stroke=\"#e4e4e4\"/>\n",
                      LEFT, py, RIGHT, py);
        ssd_sb_printf(b,
                      "<text class=\"ytick-label\" x=\"%d\" y=\"%.3f\" text-anchor=\"end\" "
                      "dominant-baseline=\"middle\">%.10g</text>\n",
                      LEFT - 6, py, y->t[i]);
    }
    for (int i = 0; y2 && i < y2->nt; i++) {
        double py = axis_px(y2, y2->t[i]);
        ssd_sb_printf(b,
                      "<line class=\"y2tick\" x1=\"%d\" y1=\"%.3f\" x2=\"%d\" y2=\"%.3f\" "
                      "stroke=\"#444\"/>\n",
                      RIGHT, py, RIGHT + 5, py);
        ssd_sb_printf(b,
                      "<text class=\"y2tick-label\" x=\"%d\" y=\"%.3f\" text-anchor=\"start\" "
                      "dominant-baseline=\"middle\">%.10g</text>\n",
                      RIGHT + 8, py, y2->t[i]);
    }
}

/* The finite points of a series as one polyline (nothing when there are none); returns the
 * number of points skipped as non-finite. */
static int polyline(ssd_strbuf *b, const char *id, const char *style, const ssd_curve_point *p,
                    int n, const axis *x, const axis *y) {
    int kept = 0;
    for (int i = 0; i < n; i++) kept += point_ok(&p[i]);
    if (kept > 0) {
        ssd_sb_printf(b, "<polyline id=\"%s\" fill=\"none\" %s points=\"", id, style);
        const char *sep = "";
        for (int i = 0; i < n; i++) {
            if (!point_ok(&p[i])) continue;
            ssd_sb_printf(b, "%s%.3f,%.3f", sep, axis_px(x, clamp_value(p[i].x)),
                          axis_px(y, clamp_value(p[i].y)));
            sep = " ";
        }
        ssd_sb_puts(b, "\"/>\n");
    }
    return n - kept;
}

static void legend_item(ssd_strbuf *b, double *x, const char *label, const char *style,
                        int circle) {
    ssd_sb_printf(b, "<line x1=\"%.1f\" y1=\"44\" x2=\"%.1f\" y2=\"44\" %s/>\n", *x, *x + 24,
                  style);
    if (circle)
        ssd_sb_printf(b, "<circle cx=\"%.1f\" cy=\"44\" r=\"3\" fill=\"#2ca02c\"/>\n", *x + 12);
    ssd_sb_printf(b, "<text x=\"%.1f\" y=\"48\">%s</text>\n", *x + 30, label);
    *x += 30 + 7.0 * (double)strlen(label) + 22;
}

#define STYLE_LOSS "stroke=\"#9ecae1\" stroke-width=\"1\""
#define STYLE_AVG "stroke=\"#08519c\" stroke-width=\"2.5\""
#define STYLE_LR "stroke=\"#e6550d\" stroke-width=\"1.5\""
#define STYLE_MAP "stroke=\"#2ca02c\" stroke-width=\"2\""
#define STYLE_TARGET "stroke=\"#d62728\" stroke-width=\"1.5\" stroke-dasharray=\"6,4\""

ssd_status ssd_plot_training_svg(const char *path, const char *title, const ssd_curve_point *loss,
                                 int n_loss, const ssd_curve_point *avg_loss, int n_avg,
                                 const ssd_curve_point *lr, int n_lr, const ssd_curve_point *map,
                                 int n_map, ssd_error *err) {
    SSD_ASSERT(path, "no path");
    SSD_ASSERT(n_loss >= 0 && n_avg >= 0 && n_lr >= 0 && n_map >= 0, "negative series length");
    SSD_ASSERT((loss || !n_loss) && (avg_loss || !n_avg) && (lr || !n_lr) && (map || !n_map),
               "series without points");
    /* axes: x shared by both panels, from every series' finite points */
    double xlo = INFINITY, xhi = -INFINITY, llo = INFINITY, lhi = -INFINITY;
    double rlo = INFINITY, rhi = -INFINITY, mlo = INFINITY, mhi = -INFINITY;
    extend_range(loss, n_loss, 0, &xlo, &xhi);
    extend_range(avg_loss, n_avg, 0, &xlo, &xhi);
    extend_range(lr, n_lr, 0, &xlo, &xhi);
    extend_range(map, n_map, 0, &xlo, &xhi);
    extend_range(loss, n_loss, 1, &llo, &lhi);
    extend_range(avg_loss, n_avg, 1, &llo, &lhi);
    extend_range(lr, n_lr, 1, &rlo, &rhi);
    extend_range(map, n_map, 1, &mlo, &mhi);
    axis ax, ay_loss, ay_lr, ay_map;
    axis_auto(&ax, xlo, xhi, LEFT, RIGHT);
    axis_auto(&ay_loss, llo, lhi, BOT1, TOP1);
    axis_auto(&ay_lr, rlo, rhi, BOT1, TOP1);
    axis_fixed(&ay_map, mlo < 0 ? mlo : 0, mhi > 0.25 ? mhi : 0.25, BOT2, TOP2);

    ssd_strbuf b = {0};
    ssd_sb_printf(&b,
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                  "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
                  "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                  "<text class=\"title\" x=\"%d\" y=\"24\" text-anchor=\"middle\" "
                  "font-size=\"17\">",
                  SSD_PLOT_W, SSD_PLOT_H, SSD_PLOT_W, SSD_PLOT_H, SSD_PLOT_W / 2);
    sb_xml_text(&b, title ? title : "");
    ssd_sb_puts(&b, "</text>\n");

    /* top panel: loss, smoothed loss, learning rate */
    int skipped = 0;
    ssd_sb_puts(&b, "<g class=\"panel\" id=\"loss-panel\">\n");
    frame_and_ticks(&b, &ax, &ay_loss, &ay_lr, TOP1, BOT1);
    ssd_sb_printf(&b,
                  "<text class=\"axis-title\" transform=\"translate(24 %d) rotate(-90)\" "
                  "text-anchor=\"middle\">loss</text>\n"
                  "<text class=\"axis-title\" transform=\"translate(%d %d) rotate(90)\" "
                  "text-anchor=\"middle\">learning rate</text>\n",
                  (TOP1 + BOT1) / 2, SSD_PLOT_W - 16, (TOP1 + BOT1) / 2);
    skipped += polyline(&b, "loss", STYLE_LOSS, loss, n_loss, &ax, &ay_loss);
    skipped += polyline(&b, "avg_loss", STYLE_AVG, avg_loss, n_avg, &ax, &ay_loss);
    skipped += polyline(&b, "lr", STYLE_LR, lr, n_lr, &ax, &ay_lr);
    ssd_sb_puts(&b, "</g>\n");

    /* bottom panel: mAP with the target */
    ssd_sb_puts(&b, "<g class=\"panel\" id=\"map-panel\">\n");
    frame_and_ticks(&b, &ax, &ay_map, NULL, TOP2, BOT2);
    ssd_sb_printf(&b,
                  "<text class=\"axis-title\" transform=\"translate(24 %d) rotate(-90)\" "
                  "text-anchor=\"middle\">mAP</text>\n"
                  "<text class=\"axis-title\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">"
                  "iteration</text>\n",
                  (TOP2 + BOT2) / 2, (LEFT + RIGHT) / 2, BOT2 + 34);
    double ty = axis_px(&ay_map, MAP_TARGET);
    ssd_sb_printf(&b,
                  "<line id=\"target\" x1=\"%d\" y1=\"%.3f\" x2=\"%d\" y2=\"%.3f\" " STYLE_TARGET
                  "/>\n<text class=\"target-label\" x=\"%d\" y=\"%.3f\" text-anchor=\"start\" "
                  "fill=\"#d62728\">target %.10g</text>\n",
                  LEFT, ty, RIGHT, ty, LEFT + 6, ty - 5, MAP_TARGET);
    int map_skipped = polyline(&b, "map", STYLE_MAP, map, n_map, &ax, &ay_map);
    skipped += map_skipped;
    for (int i = 0; i < n_map; i++) {
        if (!point_ok(&map[i])) continue;
        ssd_sb_printf(&b,
                      "<circle class=\"map-point\" cx=\"%.3f\" cy=\"%.3f\" r=\"3\" "
                      "fill=\"#2ca02c\"/>\n",
                      axis_px(&ax, clamp_value(map[i].x)), axis_px(&ay_map, clamp_value(map[i].y)));
    }
    ssd_sb_puts(&b, "</g>\n");

    /* legend: one row under the title */
    double lx = LEFT;
    ssd_sb_puts(&b, "<g class=\"legend\">\n");
    legend_item(&b, &lx, "loss", STYLE_LOSS, 0);
    legend_item(&b, &lx, "smoothed loss", STYLE_AVG, 0);
    legend_item(&b, &lx, "learning rate (right axis)", STYLE_LR, 0);
    legend_item(&b, &lx, "mAP", STYLE_MAP, 1);
    legend_item(&b, &lx, "target", STYLE_TARGET, 0);
    if (skipped > 0)
        ssd_sb_printf(&b,
                      "<text class=\"nonfinite\" x=\"%.1f\" y=\"48\" fill=\"#d62728\">%d "
                      "non-finite skipped</text>\n",
                      lx, skipped);
    ssd_sb_puts(&b, "</g>\n</svg>\n");

    ssd_status st = ssd_write_file_atomic(path, b.s, b.len, err);
    ssd_sb_free(&b);
    return st;
}
