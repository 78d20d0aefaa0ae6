/* A picture of a training run as one SVG file: what `ssd train` writes at each evaluation.
 *
 * The image is SSD_PLOT_W x SSD_PLOT_H pixels with two panels sharing one x axis (the optimizer
 * step, i.e. the iteration):
 *   top:    the raw loss (thin, light) and the smoothed loss (thick) on the left y axis, the
 *           learning rate on the right y axis (its own scale);
 *   bottom: mAP (line and points) on y in [0, max(0.25, max mAP)] with the 0.23 target as a dashed,
 *           labelled horizontal line.
 * Axes are linear with "nice" ticks (1, 2 or 5 x 10^k), plus a legend and the title.
 *
 * Machine-readable structure (tools/svg_check.py and tests/train/test_plot.c rely on it): each
 * panel is a <g class="panel" id="loss-panel" | "map-panel">; a tick label is a <text> of class
 * xtick-label / ytick-label / y2tick-label whose x (x axis) or y (y axes) attribute is the tick's
 * pixel position and whose text is its value (%.10g); series are <polyline id="loss" | "avg_loss"
 * | "lr" | "map"> (absent when a series has no finite point), mAP points are <circle
 * class="map-point">, the target is <line id="target">. */
#ifndef SSD_TRAIN_PLOT_H
#define SSD_TRAIN_PLOT_H

#include "core/status.h"

#define SSD_PLOT_W 900
#define SSD_PLOT_H 600

typedef struct ssd_curve_point {
    double x, y;
} ssd_curve_point;

/* The smallest step s = m * 10^k (m in {1, 2, 5}, k any integer) such that at most max_ticks
 * integer multiples of s lie in [lo, hi] (a multiple within 1e-9 * s outside still counts).
 * 0 when lo, hi are not finite, hi - lo is not finite or not positive, or max_ticks < 2. */
double ssd_nice_step(double lo, double hi, int max_ticks);

/* The multiples of ssd_nice_step(lo, hi, max_ticks) in [lo, hi], ascending, into out (room for
 * max_ticks values); returns how many (0 in the cases where the step is 0). Each value is
 * computed as i * m * 10^k (or i * m / 10^-k), so 0.1 * 3 comes out as 0.3. */
int ssd_nice_ticks(double lo, double hi, int max_ticks, double *out);

/* Writes the picture to PATH atomically (ssd_write_file_atomic). Any series may be empty
 * (n = 0, pointer may be NULL); points whose x or y is not finite are skipped and counted in the
 * legend ("N non-finite skipped"). Values beyond +-1e300 are clamped to it. title may be NULL; it
 * is XML-escaped (control bytes and invalid UTF-8 become '?'). On failure PATH is left as it was
 * and err names it. */
ssd_status ssd_plot_training_svg(const char *path, const char *title, const ssd_curve_point *loss,
                                 int n_loss, const ssd_curve_point *avg_loss, int n_avg,
                                 const ssd_curve_point *lr, int n_lr, const ssd_curve_point *map,
                                 int n_map, ssd_error *err);

#endif
