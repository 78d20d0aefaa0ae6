/* Decode + per-class NMS + merge (rules: postprocess.h; spec/ssd-reference.md section 8). */
#include "eval/postprocess.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "box/box_coder.h"
#include "core/logits.h"
#include "core/log.h"
#include "core/mem.h"
#include "eval/nms.h"

#define A SSD_NUM_ANCHORS
#define NC SSD_NUM_CLASSES

const int ssd_coco_label_to_category[SSD_NUM_CLASSES] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46,
    47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70,
    72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90};

ssd_post_cfg ssd_post_cfg_default(void) {
    ssd_post_cfg c;
    c.score_thresh = 0.05f;
    c.topk_per_class = 200;
    c.iou_thresh = 0.5f;
    c.max_dets = 200;
    c.drop_batch_on_empty = true;
    return c;
}

typedef struct {
    float score;
    int anchor;
} cand_t;

typedef struct {
    ssd_detection d;
    int anchor;
} kept_t;

typedef struct {
    float (*boxes)[4]; /* (A,4) decoded ltrb */
    double *mx;        /* (A) max logit */
    double *sum;       /* (A) sum exp(logit - max) */
    double *lskip;     /* (A) log(thresh * sum) - margin: logit - max below it is no candidate */
    cand_t *cand;      /* (A) one class's candidates */
    int topk_cap;
    int *order;             /* (topk) anchors in priority order */
    unsigned char *removed; /* (topk) */
    int *keep;              /* (topk) */
    int kept_cap;
    kept_t *kept; /* (80*topk) survivors of all classes */
} slot_t;

struct ssd_post_ws {
    int nslots;
    slot_t *slots;
};

ssd_post_ws *ssd_post_ws_create(void) {
    ssd_post_ws *ws = ssd_xcalloc(1, sizeof *ws);
    ws->nslots = omp_get_max_threads();
    if (ws->nslots < 1) ws->nslots = 1;
    ws->slots = ssd_xcalloc((size_t)ws->nslots, sizeof *ws->slots);
    return ws;
}

void ssd_post_ws_destroy(ssd_post_ws *ws) {
    if (!ws) return;
    for (int i = 0; i < ws->nslots; i++) {
        slot_t *s = &ws->slots[i];
        ssd_aligned_free(s->boxes);
        ssd_aligned_free(s->mx);
        ssd_aligned_free(s->sum);
        ssd_aligned_free(s->lskip);
        free(s->cand);
        free(s->order);
        free(s->removed);
        free(s->keep);
        free(s->kept);
    }
    free(ws->slots);
    free(ws);
}

static void slot_reserve(slot_t *s, int topk) {
    if (!s->boxes) {
        s->boxes = ssd_aligned_alloc(sizeof(float[A][4]));
        s->mx = ssd_aligned_alloc(A * sizeof(double));
        s->sum = ssd_aligned_alloc(A * sizeof(double));
        s->lskip = ssd_aligned_alloc(A * sizeof(double));
        s->cand = ssd_xmalloc(A * sizeof(cand_t));
    }
    if (topk > s->topk_cap) {
        s->order = ssd_xrealloc(s->order, (size_t)topk * sizeof(int));
        s->removed = ssd_xrealloc(s->removed, (size_t)topk);
        s->keep = ssd_xrealloc(s->keep, (size_t)topk * sizeof(int));
        s->topk_cap = topk;
    }
    if ((NC - 1) * topk > s->kept_cap) {
        s->kept_cap = (NC - 1) * topk;
        s->kept = ssd_xrealloc(s->kept, (size_t)s->kept_cap * sizeof(kept_t));
    }
}

/* score descending, then anchor ascending */
static int cmp_cand(const void *pa, const void *pb) {
    const cand_t *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->anchor > b->anchor) - (a->anchor < b->anchor);
}

/* score descending, then label ascending, then anchor ascending */
static int cmp_kept(const void *pa, const void *pb) {
    const kept_t *a = pa, *b = pb;
    if (a->d.score != b->d.score) return a->d.score > b->d.score ? -1 : 1;
    if (a->d.label != b->d.label) return a->d.label < b->d.label ? -1 : 1;
    return (a->anchor > b->anchor) - (a->anchor < b->anchor);
}

static void check_cfg(const ssd_post_cfg *cfg) {
    SSD_ASSERT(cfg && cfg->topk_per_class >= 1 && cfg->max_dets >= 1,
               "bad post-processing config (topk %d, max_dets %d)", cfg ? cfg->topk_per_class : 0,
               cfg ? cfg->max_dets : 0);
}

static int image_run(const ssd_anchors *an, const float *ploc, const float *pconf,
                     const ssd_post_cfg *cfg, ssd_detection *out, int *num_candidates,
                     slot_t *s) {
    const int topk = cfg->topk_per_class < A ? cfg->topk_per_class : A;
    slot_reserve(s, topk);

    /* 1. decode */
    for (int a = 0; a < A; a++) {
        float p[4] = {ploc[a], ploc[A + a], ploc[2 * A + a], ploc[3 * A + a]};
        ssd_box_decode(p, an->xywh[a], s->boxes[a]);
    }
    /* 2. softmax pieces: max and sum of exp. A logit x of class k gives the score
     * (float)(exp(x - max) / sum). lskip lets us skip the exp for logits that cannot pass the
     * threshold: x - max < log(thresh * sum) - 1e-6 means the double score is below
     * thresh * (1 - 1e-6), which float rounding (relative 6e-8) cannot lift above thresh. */
    double *mx = s->mx, *sum = s->sum, *lskip = s->lskip;
    ssd_logits_max_sumexp(pconf, NC, A, mx, sum);
    const float thr = cfg->score_thresh;
    for (int a = 0; a < A; a++)
        lskip[a] = thr > 0.0f ? log((double)thr * sum[a]) - 1e-6 : -INFINITY;

    /* 3. per class */
    int ncand_all = 0, nkept = 0;
    for (int k = 1; k < NC; k++) {
        const float *x = pconf + (size_t)k * A;
        int m = 0;
        for (int a = 0; a < A; a++) {
            double z = (double)x[a] - mx[a];
            if (z < lskip[a]) continue;
            float sc = (float)(exp(z) / sum[a]);
            if (sc > thr) {
                s->cand[m].score = sc;
                s->cand[m].anchor = a;
                m++;
            }
        }
        ncand_all += m;
        if (m == 0) continue;
        qsort(s->cand, (size_t)m, sizeof(cand_t), cmp_cand);
        int nt = m < topk ? m : topk;
        for (int i = 0; i < nt; i++) s->order[i] = s->cand[i].anchor;
        int nk = ssd_nms_greedy((const float(*)[4])s->boxes, s->order, nt, cfg->iou_thresh,
                                s->removed, s->keep);
        for (int i = 0; i < nk; i++) {
            const cand_t *c = &s->cand[s->keep[i]];
            kept_t *o = &s->kept[nkept++];
            memcpy(o->d.ltrb, s->boxes[c->anchor], sizeof o->d.ltrb);
            o->d.score = c->score;
            o->d.label = k;
            o->anchor = c->anchor;
        }
    }
    if (num_candidates) *num_candidates = ncand_all;

    /* 4. merge */
    qsort(s->kept, (size_t)nkept, sizeof(kept_t), cmp_kept);
    int nout = nkept < cfg->max_dets ? nkept : cfg->max_dets;
    for (int i = 0; i < nout; i++) out[i] = s->kept[i].d;
    return nout;
}

int ssd_postprocess_image(const ssd_anchors *an, const float *ploc, const float *pconf,
                          const ssd_post_cfg *cfg, ssd_detection *out, int *num_candidates,
                          ssd_post_ws *ws) {
    SSD_ASSERT(an && ploc && pconf && out, "bad post-processing arguments");
    check_cfg(cfg);
    ssd_post_ws *own = NULL;
    if (!ws) ws = own = ssd_post_ws_create();
    int n = image_run(an, ploc, pconf, cfg, out, num_candidates, &ws->slots[0]);
    ssd_post_ws_destroy(own);
    return n;
}

int ssd_postprocess_batch(const ssd_anchors *an, int n, const float *ploc, const float *pconf,
                          const ssd_post_cfg *cfg, ssd_detection *out, int *num_dets,
                          ssd_post_ws *ws) {
    SSD_ASSERT(an && n >= 0 && ploc && pconf && out && num_dets, "bad post-processing arguments");
    check_cfg(cfg);
    ssd_post_ws *own = NULL;
    if (!ws) ws = own = ssd_post_ws_create();
    int empty = 0;
#pragma omp parallel for num_threads(ws->nslots) schedule(dynamic, 1) reduction(+ : empty)
    for (int i = 0; i < n; i++) {
        int nc = 0;
        num_dets[i] = image_run(an, ploc + (size_t)i * 4 * A, pconf + (size_t)i * NC * A, cfg,
                                out + (size_t)i * cfg->max_dets, &nc,
                                &ws->slots[omp_get_thread_num()]);
        empty += nc == 0;
    }
    if (empty > 0 && cfg->drop_batch_on_empty)
        for (int i = 0; i < n; i++) num_dets[i] = 0;
    ssd_post_ws_destroy(own);
    return empty;
}

void ssd_detection_to_coco(const ssd_detection *d, int64_t image_id, double width, double height,
                           const int *label_to_category, double out[7]) {
    if (!label_to_category) label_to_category = ssd_coco_label_to_category;
    SSD_ASSERT(d->label >= 1 && d->label < NC, "detection label %d outside 1..80", d->label);
    float w = d->ltrb[2] - d->ltrb[0], h = d->ltrb[3] - d->ltrb[1]; /* float32, as numpy did */
    out[0] = (double)image_id;
    out[1] = (double)d->ltrb[0] * width;
    out[2] = (double)d->ltrb[1] * height;
    out[3] = (double)w * width;
    out[4] = (double)h * height;
    out[5] = (double)d->score;
    out[6] = (double)label_to_category[d->label];
}
