/* SSD loss forward + backward (rules and layouts: ssd_loss.h; spec/ssd-reference.md section 5). */
#include "loss/ssd_loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "box/box_coder.h"
#include "core/logits.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/par.h"

#define A SSD_NUM_ANCHORS
#define NC SSD_NUM_CLASSES

/* Scratch of one image. */
typedef struct {
    double *lse;   /* (A) logsumexp of the logits */
    double *ce;    /* (A) cross-entropy */
    double *tmp;   /* (A) running sums, then ce_neg permuted by the selection */
    uint8_t *mult; /* (A) pos + neg_mask: 0, 1 or 2 */
} image_ws;

struct ssd_loss_ws {
    int cap;    /* images with a slot */
    int last_n; /* n of the last call */
    image_ws *img;
    ssd_loss_image_stats *stats;
};

ssd_loss_ws *ssd_loss_ws_create(void) {
    ssd_loss_ws *ws = ssd_xcalloc(1, sizeof *ws);
    return ws;
}

void ssd_loss_ws_destroy(ssd_loss_ws *ws) {
    if (!ws) return;
    for (int i = 0; i < ws->cap; i++) {
        ssd_aligned_free(ws->img[i].lse);
        ssd_aligned_free(ws->img[i].ce);
        ssd_aligned_free(ws->img[i].tmp);
        ssd_aligned_free(ws->img[i].mult);
    }
    free(ws->img);
    free(ws->stats);
    free(ws);
}

static void ws_reserve(ssd_loss_ws *ws, int n) {
    if (n <= ws->cap) return;
    ws->img = ssd_xrealloc(ws->img, (size_t)n * sizeof *ws->img);
    ws->stats = ssd_xrealloc(ws->stats, (size_t)n * sizeof *ws->stats);
    for (int i = ws->cap; i < n; i++) {
        ws->img[i].lse = ssd_aligned_alloc(A * sizeof(double));
        ws->img[i].ce = ssd_aligned_alloc(A * sizeof(double));
        ws->img[i].tmp = ssd_aligned_alloc(A * sizeof(double));
        ws->img[i].mult = ssd_aligned_alloc(A);
    }
    ws->cap = n;
}

const ssd_loss_image_stats *ssd_loss_ws_image(const ssd_loss_ws *ws, int i) {
    SSD_ASSERT(ws && i >= 0 && i < ws->last_n, "image %d outside the last batch", i);
    return &ws->stats[i];
}

static void swap_d(double *x, double *y) {
    double t = *x;
    *x = *y;
    *y = t;
}

/* The k-th largest value (1 <= k <= n) of v, which is permuted. Quickselect with a
 * median-of-three pivot and a three-way partition, so runs of equal values (many equal CE
 * values, the zeros of the positives) cost O(n). */
static double kth_largest(double *v, int n, int k) {
    int lo = 0, hi = n; /* the answer's position k-1 lies in [lo, hi) */
    const int target = k - 1;
    for (;;) {
        if (hi - lo == 1) return v[lo];
        double x = v[lo], y = v[lo + (hi - lo) / 2], z = v[hi - 1];
        double p = (x < y) ? ((y < z) ? y : (x < z ? z : x)) : ((x < z) ? x : (y < z ? z : y));
        /* [lo,gt) > p, [gt,i) == p, [lt,hi) < p; anything unordered (NaN) joins "== p" */
        int gt = lo, i = lo, lt = hi;
        while (i < lt) {
            if (v[i] > p) {
                swap_d(&v[i++], &v[gt++]);
            } else if (v[i] < p) {
                swap_d(&v[i], &v[--lt]);
            } else {
                i++;
            }
        }
        if (target < gt) {
            hi = gt;
        } else if (target < lt) {
            return p;
        } else {
            lo = lt;
        }
    }
}

static double smooth_l1(double z) {
    double az = fabs(z);
    return az < 1.0 ? 0.5 * z * z : az - 0.5;
}

static double smooth_l1_grad(double z) {
    if (fabs(z) < 1.0) return z;
    return z > 0 ? 1.0 : (z < 0 ? -1.0 : 0.0); /* +-inf -> +-1 */
}

/* One image: fills *st and, when dloc/dconf are non-NULL, its gradient slices (inv_n = 1/n). */
static void image_loss(const ssd_anchors *an, const float *ploc, const float *pconf,
                       const float *gbox, const int64_t *glabel, float *dloc, float *dconf,
                       double inv_n, image_ws *w, ssd_loss_image_stats *st) {
    memset(st, 0, sizeof *st);
    int P = 0;
    for (int a = 0; a < A; a++) {
        SSD_ASSERT(glabel[a] >= 0 && glabel[a] < NC, "label %lld at anchor %d outside 0..80",
                   (long long)glabel[a], a);
        P += glabel[a] > 0;
    }
    st->num_pos = P;
    if (P == 0) {
        if (dloc) memset(dloc, 0, 4 * (size_t)A * sizeof(float));
        if (dconf) memset(dconf, 0, (size_t)NC * A * sizeof(float));
        return;
    }

    /* rule 3: logsumexp (max-subtracted) and ce */
    double *lse = w->lse, *ce = w->ce, *tmp = w->tmp;
    ssd_logits_max_sumexp(pconf, NC, A, lse, tmp);
    for (int a = 0; a < A; a++) {
        lse[a] += log(tmp[a]);
        ce[a] = lse[a] - (double)pconf[(size_t)glabel[a] * A + a];
    }

    /* rule 4: top K of ce_neg, ties by ascending anchor index */
    int K = SSD_LOSS_NEG_RATIO * P < A ? SSD_LOSS_NEG_RATIO * P : A;
    for (int a = 0; a < A; a++) tmp[a] = glabel[a] > 0 ? 0.0 : ce[a];
    double thr = kth_largest(tmp, A, K);
    int above = 0;
    for (int a = 0; a < A; a++) above += (glabel[a] > 0 ? 0.0 : ce[a]) > thr;
    int at_thr = K - above; /* how many anchors equal to thr still join, lowest index first */
    uint8_t *mult = w->mult;
    int num_double = 0;
    double conf = 0.0;
    for (int a = 0; a < A; a++) {
        int pos = glabel[a] > 0;
        double v = pos ? 0.0 : ce[a];
        int neg = 0;
        if (v > thr) {
            neg = 1;
        } else if (v == thr && at_thr > 0) {
            neg = 1;
            at_thr--;
        }
        mult[a] = (uint8_t)(pos + neg);
        num_double += pos && neg;
        if (mult[a]) conf += ce[a] * mult[a];
    }

    /* rules 1-2: smooth L1 over positives */
    double loc = 0.0;
    for (int a = 0; a < A; a++) {
        if (glabel[a] <= 0) continue;
        float t[4];
        ssd_box_encode(gbox + 4 * (size_t)a, an->xywh[a], t);
        for (int c = 0; c < 4; c++) loc += smooth_l1((double)ploc[(size_t)c * A + a] - (double)t[c]);
    }

    st->loc = loc;
    st->conf = conf;
    st->loss = (loc + conf) / P;
    st->num_neg = K;
    st->num_double = num_double;

    /* gradients of the batch loss */
    const double s = inv_n / P;
    if (dloc) {
        memset(dloc, 0, 4 * (size_t)A * sizeof(float));
        for (int a = 0; a < A; a++) {
            if (glabel[a] <= 0) continue;
            float t[4];
            ssd_box_encode(gbox + 4 * (size_t)a, an->xywh[a], t);
            for (int c = 0; c < 4; c++) {
                size_t i = (size_t)c * A + a;
                dloc[i] = (float)(s * smooth_l1_grad((double)ploc[i] - (double)t[c]));
            }
        }
    }
    if (dconf) {
        for (int k = 0; k < NC; k++) {
            const float *x = pconf + (size_t)k * A;
            float *d = dconf + (size_t)k * A;
            for (int a = 0; a < A; a++) {
                if (!mult[a]) {
                    d[a] = 0.0f;
                    continue;
                }
                double g = exp((double)x[a] - lse[a]) - (glabel[a] == k ? 1.0 : 0.0);
                d[a] = (float)(s * mult[a] * g);
            }
        }
    }
}

float ssd_loss_forward_backward(const ssd_anchors *an, int n, const float *ploc,
                                const float *pconf, const float *gbox, const int64_t *glabel,
                                float *dloc, float *dconf, float *per_image, ssd_loss_ws *ws) {
    SSD_ASSERT(an && n >= 1 && ploc && pconf && gbox && glabel, "bad loss arguments (n = %d)", n);
    ssd_loss_ws *own = NULL;
    if (!ws) ws = own = ssd_loss_ws_create();
    ws_reserve(ws, n);
    ws->last_n = n;
    const double inv_n = 1.0 / n;

#define SSD_LOSS_IMAGE(i)                                                                         \
    image_loss(an, ploc + (size_t)(i) * 4 * A, pconf + (size_t)(i) * NC * A,                      \
               gbox + (size_t)(i) * A * 4, glabel + (size_t)(i) * A,                              \
               dloc ? dloc + (size_t)(i) * 4 * A : NULL,                                          \
               dconf ? dconf + (size_t)(i) * NC * A : NULL, inv_n, &ws->img[i], &ws->stats[i])
    if (ssd_par_worth(n > 1)) { /* core/par.h: no one-thread region (it would allocate) */
#pragma omp parallel for schedule(dynamic, 1)
        for (int i = 0; i < n; i++) SSD_LOSS_IMAGE(i);
    } else {
        for (int i = 0; i < n; i++) SSD_LOSS_IMAGE(i);
    }
#undef SSD_LOSS_IMAGE

    double total = 0.0;
    for (int i = 0; i < n; i++) {
        total += ws->stats[i].loss;
        if (per_image) per_image[i] = (float)ws->stats[i].loss;
    }
    ssd_loss_ws_destroy(own);
    return (float)(total * inv_n);
}
