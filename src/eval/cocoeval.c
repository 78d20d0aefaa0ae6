/* COCO bbox evaluation (cocoeval.h). Section numbers (§) refer to ../shared/spec/coco-eval.md. */
#include "eval/cocoeval.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

enum { T = SSD_COCO_T, R = SSD_COCO_R, A = SSD_COCO_A, M = SSD_COCO_M };
#define MAX_DETS 100 /* maxDets[-1]: detections kept per (image, category) */

/* §0.3: np.linspace(.5, .95, 10), bit for bit. */
static const double k_iou_thr[T] = {0x1p-1,
                                    0x1.199999999999ap-1,
                                    0x1.3333333333333p-1,
                                    0x1.4cccccccccccdp-1,
                                    0x1.6666666666666p-1,
                                    0x1.8p-1,
                                    0x1.999999999999ap-1,
                                    0x1.b333333333333p-1,
                                    0x1.cccccccccccccp-1,
                                    0x1.e666666666666p-1};
/* §3: closed ranges [lo, hi]; 0**2, 32**2, 96**2, 1e5**2. */
static const double k_area[A][2] = {{0, 1e10}, {0, 1024}, {1024, 9216}, {9216, 1e10}};
static const int k_max_dets[M] = {1, 10, 100};

/* §0.4: np.linspace(0, 1, 101). */
static double rec_thr(int r) { return r == R - 1 ? 1.0 : r * 0.01; }

/* ---- numpy's float64 sum (§8.4) ---- */

static double pairwise(const double *a, long n) {
    if (n < 8) {
        double s = 0.0;
        for (long i = 0; i < n; i++)
            s += a[i];
        return s;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; j++)
            r[j] = a[j];
        long i;
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++)
                r[j] += a[i + j];
        double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            s += a[i];
        return s;
    }
    long n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise(a, n2) + pairwise(a + n2, n - n2);
}

double ssd_numpy_sum(const double *a, long n, long chunk) {
    if (chunk <= 0) return 0.0 + pairwise(a, n);
    double s = 0.0;
    for (long i = 0; i < n; i += chunk)
        s += pairwise(a + i, n - i < chunk ? n - i : chunk);
    return s;
}

/* ---- the index: (category, image) buckets of GT and detections (§4.1) ---- */

typedef struct buckets {
    size_t *off; /* (K*I+1): bucket b = k*I + i holds idx[off[b] .. off[b+1]) */
    size_t *idx; /* annotation indices */
} buckets;

typedef struct id_pair {
    int64_t id;
    size_t index;
} id_pair;

static int cmp_id_pair(const void *a, const void *b) {
    const id_pair *x = a, *y = b;
    if (x->id != y->id) return (x->id > y->id) - (x->id < y->id);
    return (x->index > y->index) - (x->index < y->index);
}

/* Groups anns the way COCOeval._prepare does (§4.1, CO getAnnIds/loadAnns): walk the images in
 * sorted id order, each image's annotations in file order, keep those whose category is
 * evaluated, and resolve each annotation id to the LAST annotation with that id (loadAnns reads a
 * dict keyed by id; this only matters for files with duplicate ids). The resolved annotation
 * goes to the bucket of its own (category, image); buckets keep the walk order. */
static void build_buckets(const ssd_coco_ann *anns, size_t n, bool resolve_ids,
                          const int64_t *img_ids, int I, const int64_t *cat_ids, int K,
                          buckets *out) {
    int *img_of = ssd_xmalloc((n + 1) * sizeof *img_of);
    int *cat_of = ssd_xmalloc((n + 1) * sizeof *cat_of);
    size_t *resolved = ssd_xmalloc((n + 1) * sizeof *resolved);
    for (size_t j = 0; j < n; j++) {
        img_of[j] = ssd_coco_find_id(img_ids, I, anns[j].image_id);
        cat_of[j] = ssd_coco_find_id(cat_ids, K, anns[j].category_id);
        resolved[j] = j;
    }
    if (resolve_ids && n > 0) {
        id_pair *p = ssd_xmalloc(n * sizeof *p);
        for (size_t j = 0; j < n; j++)
            p[j] = (id_pair){anns[j].id, j};
        qsort(p, n, sizeof *p, cmp_id_pair);
        for (size_t s = 0, e; s < n; s = e) {
            for (e = s + 1; e < n && p[e].id == p[s].id; e++)
                ;
            for (size_t q = s; q < e; q++)
                resolved[p[q].index] = p[e - 1].index;
        }
        free(p);
    }
    /* The walk: a stable counting sort of annotation indices by image index. */
    size_t *by_img_off = ssd_xcalloc((size_t)I + 2, sizeof(size_t));
    for (size_t j = 0; j < n; j++)
        if (img_of[j] >= 0) by_img_off[img_of[j] + 2]++;
    for (int i = 0; i < I; i++)
        by_img_off[i + 2] += by_img_off[i + 1];
    size_t *walk = ssd_xmalloc((by_img_off[I + 1] + 1) * sizeof *walk);
    for (size_t j = 0; j < n; j++)
        if (img_of[j] >= 0) walk[by_img_off[img_of[j] + 1]++] = j;
    size_t nwalk = by_img_off[I];
    /* Keep, resolve, and bucket (stable counting sort by bucket, in walk order). */
    size_t nb = (size_t)K * (size_t)I;
    out->off = ssd_xcalloc(nb + 2, sizeof(size_t));
    long *bucket_of = ssd_xmalloc((nwalk + 1) * sizeof *bucket_of);
    for (size_t w = 0; w < nwalk; w++) {
        size_t j = walk[w], r = resolved[j];
        bucket_of[w] = -1;
        if (cat_of[j] < 0 || img_of[r] < 0 || cat_of[r] < 0) continue;
        bucket_of[w] = (long)cat_of[r] * I + img_of[r];
        out->off[bucket_of[w] + 2]++;
    }
    for (size_t b = 0; b < nb; b++)
        out->off[b + 2] += out->off[b + 1];
    out->idx = ssd_xmalloc((out->off[nb + 1] + 1) * sizeof(size_t));
    for (size_t w = 0; w < nwalk; w++)
        if (bucket_of[w] >= 0) out->idx[out->off[bucket_of[w] + 1]++] = resolved[walk[w]];
    free(bucket_of);
    free(walk);
    free(by_img_off);
    free(resolved);
    free(cat_of);
    free(img_of);
}

/* ---- evaluateImg (§5, §6) ---- */

/* Per detection and (area, threshold): */
#define F_MATCHED 1 /* dtm != 0 */
#define F_IGNORE 2  /* dtIg */

typedef struct score_pos {
    double score;
    size_t pos;
} score_pos;

/* Descending score, ties by position: numpy's stable argsort(-score, kind='mergesort'). */
static int cmp_score_desc(const void *a, const void *b) {
    const score_pos *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Sorts each detection bucket by score (stable, descending) and keeps the first MAX_DETS:
 * kept->off/idx become the per-bucket top lists. */
static void top_dets(const ssd_coco_ann *d, const buckets *all, size_t nb, int threads,
                     buckets *kept) {
    kept->off = ssd_xmalloc((nb + 1) * sizeof(size_t));
    kept->off[0] = 0;
    for (size_t b = 0; b < nb; b++) {
        size_t c = all->off[b + 1] - all->off[b];
        kept->off[b + 1] = kept->off[b] + (c < MAX_DETS ? c : MAX_DETS);
    }
    kept->idx = ssd_xmalloc((kept->off[nb] + 1) * sizeof(size_t));
#pragma omp parallel num_threads(threads)
    {
        size_t cap = 0;
        score_pos *sp = NULL;
#pragma omp for schedule(dynamic, 256)
        for (size_t b = 0; b < nb; b++) {
            size_t c = all->off[b + 1] - all->off[b];
            if (!c) continue;
            if (c > cap) sp = ssd_xrealloc(sp, (cap = c) * sizeof *sp);
            for (size_t j = 0; j < c; j++) {
                size_t ix = all->idx[all->off[b] + j];
                sp[j] = (score_pos){d[ix].score, ix};
            }
            /* pos = the annotation index: increasing in bucket order, so ties keep that order. */
            qsort(sp, c, sizeof *sp, cmp_score_desc);
            for (size_t j = 0; j < kept->off[b + 1] - kept->off[b]; j++)
                kept->idx[kept->off[b] + j] = sp[j].pos;
        }
        free(sp);
    }
}

/* maskApi bbIou (§5.3): row d, column g. */
static double bbox_iou(const double *D, const double *G, bool crowd) {
    double da = D[2] * D[3], ga = G[2] * G[3];
    double w = fmin(D[2] + D[0], G[2] + G[0]) - fmax(D[0], G[0]);
    if (w <= 0) return 0.0;
    double h = fmin(D[3] + D[1], G[3] + G[1]) - fmax(D[1], G[1]);
    if (h <= 0) return 0.0;
    double i = w * h, u = crowd ? da : da + ga - i;
    return i / u;
}

typedef struct img_scratch {
    size_t cap_g;
    double *iou; /* (MAX_DETS, cap_g), columns in bucket order */
    int *order;  /* (cap_g) reordered GT -> bucket position */
    bool *ig, *crowd, *gtm;
    int64_t *gt_id;
} img_scratch;

static void scratch_fit(img_scratch *s, size_t G) {
    if (G <= s->cap_g) return;
    s->cap_g = G;
    s->iou = ssd_xrealloc(s->iou, (size_t)MAX_DETS * G * sizeof(double));
    s->order = ssd_xrealloc(s->order, G * sizeof(int));
    s->ig = ssd_xrealloc(s->ig, G * sizeof(bool));
    s->crowd = ssd_xrealloc(s->crowd, G * sizeof(bool));
    s->gtm = ssd_xrealloc(s->gtm, (size_t)T * G * sizeof(bool));
    s->gt_id = ssd_xrealloc(s->gt_id, G * sizeof(int64_t));
}

static void scratch_free(img_scratch *s) {
    free(s->iou);
    free(s->order);
    free(s->ig);
    free(s->crowd);
    free(s->gtm);
    free(s->gt_id);
}

/* One (image, category) for every area range: writes flags[d][a][t] for the kept detections and
 * npig[a] = the number of GT not ignored in area a. */
static void evaluate_img(const ssd_coco_ann *gts, const size_t *gi, size_t G,
                         const ssd_coco_ann *dts, const size_t *di, size_t D, img_scratch *s,
                         unsigned char *flags, int *npig) {
    scratch_fit(s, G ? G : 1);
    /* §5: IoU[d][g], detections in score order, GT in bucket order. */
    for (size_t d = 0; d < D; d++)
        for (size_t g = 0; g < G; g++)
            s->iou[d * G + g] = bbox_iou(dts[di[d]].bbox, gts[gi[g]].bbox, gts[gi[g]].iscrowd);
    for (int a = 0; a < A; a++) {
        double lo = k_area[a][0], hi = k_area[a][1];
        /* §6.2-6.3: _ignore, then the stable partition (not ignored first). */
        size_t ng = 0;
        for (int pass = 0; pass < 2; pass++) {
            for (size_t g = 0; g < G; g++) {
                const ssd_coco_ann *o = &gts[gi[g]];
                bool ig = o->iscrowd || o->area < lo || o->area > hi;
                if (ig != (pass == 1)) continue;
                s->order[ng] = (int)g;
                s->ig[ng] = ig;
                s->crowd[ng] = o->iscrowd != 0;
                s->gt_id[ng] = o->id;
                ng++;
            }
            if (pass == 0) npig[a] = (int)ng; /* the GT not ignored in this range */
        }
        memset(s->gtm, 0, (size_t)T * G * sizeof(bool));
        for (size_t d = 0; d < D; d++)
            for (int t = 0; t < T; t++)
                flags[(d * A + a) * T + t] = 0;
        /* §6.4: greedy matching per threshold (only when both sides are non-empty). */
        if (G > 0 && D > 0)
            for (int t = 0; t < T; t++) {
                bool *gtm = s->gtm + (size_t)t * G;
                for (size_t d = 0; d < D; d++) {
                    double best = k_iou_thr[t] < 1 - 1e-10 ? k_iou_thr[t] : 1 - 1e-10;
                    long m = -1;
                    const double *row = s->iou + d * G;
                    for (size_t g = 0; g < G; g++) {
                        if (gtm[g] && !s->crowd[g]) continue;
                        if (m > -1 && !s->ig[m] && s->ig[g]) break;
                        double iou = row[s->order[g]]; /* the reordered column g */
                        if (iou < best) continue;
                        best = iou;
                        m = (long)g;
                    }
                    if (m == -1) continue;
                    unsigned char f = 0;
                    if (s->ig[m]) f |= F_IGNORE;
                    if (s->gt_id[m] != 0) f |= F_MATCHED; /* dtm = the GT's id */
                    flags[(d * A + a) * T + t] = f;
                    gtm[m] = true; /* = the detection's id, always > 0 */
                }
            }
        /* §6.5: unmatched detections outside the range are ignored. */
        for (size_t d = 0; d < D; d++) {
            double ar = dts[di[d]].area;
            if (!(ar < lo || ar > hi)) continue;
            for (int t = 0; t < T; t++) {
                unsigned char *f = &flags[(d * A + a) * T + t];
                if (!(*f & F_MATCHED)) *f |= F_IGNORE;
            }
        }
    }
}

/* ---- accumulate (§7) ---- */

static size_t prec_at(int t, int r, int k, int K, int a, int m) {
    return ((((size_t)t * R + r) * K + k) * A + a) * M + m;
}
static size_t rec_at(int t, int k, int K, int a, int m) {
    return (((size_t)t * K + k) * A + a) * M + m;
}

typedef struct eval_index {
    int I, K;
    const ssd_coco_ann *gts, *dts;
    buckets gt, dt;              /* dt: the kept (top MAX_DETS, score-sorted) detections */
    const unsigned char *flags;  /* (kept detections, A, T) in dt bucket order */
    const int *npig;             /* (K*I, A) */
} eval_index;

/* One category k: precision[:, :, k, :, :] and recall[:, k, :, :]. The score order does not
 * depend on the area range, and the order of a maxDets subset is the full order filtered (the
 * sort is a total order: score, then concatenation position), so each category sorts once. */
static void accumulate_cat(const eval_index *x, int k, double *precision, double *recall) {
    const int I = x->I, K = x->K;
    size_t n = 0;
    long npig[A] = {0};
    bool any = false;
    for (int i = 0; i < I; i++) {
        size_t b = (size_t)k * I + i;
        size_t G = x->gt.off[b + 1] - x->gt.off[b], D = x->dt.off[b + 1] - x->dt.off[b];
        if (G == 0 && D == 0) continue; /* evaluateImg returned None */
        any = true;
        n += D;
        for (int a = 0; a < A; a++)
            npig[a] += x->npig[b * A + a];
    }
    if (!any) return; /* stays -1 */
    score_pos *sp = ssd_xmalloc((n + 1) * sizeof *sp);
    const unsigned char **fl = ssd_xmalloc((n + 1) * sizeof *fl);
    int *rank = ssd_xmalloc((n + 1) * sizeof *rank);
    size_t p = 0;
    for (int i = 0; i < I; i++) {
        size_t b = (size_t)k * I + i, D = x->dt.off[b + 1] - x->dt.off[b];
        for (size_t d = 0; d < D; d++, p++) {
            size_t j = x->dt.off[b] + d;
            sp[p] = (score_pos){x->dts[x->dt.idx[j]].score, p};
            fl[p] = x->flags + j * A * T;
            rank[p] = (int)d;
        }
    }
    qsort(sp, n, sizeof *sp, cmp_score_desc);
    size_t *sel = ssd_xmalloc((n + 1) * sizeof *sel);
    double *rc = ssd_xmalloc((n + 1) * sizeof *rc), *pr = ssd_xmalloc((n + 1) * sizeof *pr);
    for (int m = 0; m < M; m++) {
        /* §7.2-7.3: each image's first maxDet, in the stable score order. */
        size_t nd = 0;
        for (size_t q = 0; q < n; q++)
            if (rank[sp[q].pos] < k_max_dets[m]) sel[nd++] = sp[q].pos;
        for (int a = 0; a < A; a++) {
            if (npig[a] == 0) continue; /* §7.4: stays -1 */
            for (int t = 0; t < T; t++) {
                long tp = 0, fp = 0;
                for (size_t i = 0; i < nd; i++) {
                    unsigned char f = fl[sel[i]][a * T + t];
                    if (!(f & F_IGNORE)) {
                        if (f & F_MATCHED) tp++;
                        else fp++;
                    }
                    rc[i] = (double)tp / (double)npig[a];
                    pr[i] = (double)tp / (((double)fp + (double)tp) + DBL_EPSILON);
                }
                recall[rec_at(t, k, K, a, m)] = nd ? rc[nd - 1] : 0.0;
                for (size_t i = nd; i-- > 1;)
                    if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
                size_t idx = 0;
                for (int r = 0; r < R; r++) {
                    double thr = rec_thr(r);
                    while (idx < nd && rc[idx] < thr) /* searchsorted(rc, thr, side='left') */
                        idx++;
                    precision[prec_at(t, r, k, K, a, m)] = idx < nd ? pr[idx] : 0.0;
                }
            }
        }
    }
    free(rc);
    free(pr);
    free(sel);
    free(rank);
    free(fl);
    free(sp);
}

/* ---- summarize (§8) ---- */

/* Mean of the values > -1 of a strided selection, as np.mean(s[s > -1]); -1 if there are none. */
static double mean_present(const double *vals, size_t n, long chunk) {
    double *keep = ssd_xmalloc((n + 1) * sizeof *keep);
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (vals[i] > -1) keep[c++] = vals[i];
    double r = c ? ssd_numpy_sum(keep, (long)c, chunk) / (double)c : -1.0;
    free(keep);
    return r;
}

typedef struct stat_def {
    bool ap;
    int t;    /* -1: all thresholds; else the index of 0.5 or 0.75 */
    int a, m;
} stat_def;

static const stat_def k_stats[SSD_COCO_NSTATS] = {
    {true, -1, 0, 2}, {true, 0, 0, 2},   {true, 5, 0, 2},   {true, -1, 1, 2},
    {true, -1, 2, 2}, {true, -1, 3, 2},  {false, -1, 0, 0}, {false, -1, 0, 1},
    {false, -1, 0, 2}, {false, -1, 1, 2}, {false, -1, 2, 2}, {false, -1, 3, 2}};

static void summarize(ssd_cocoeval_result *res, long chunk) {
    const int K = res->n_categories;
    double *sel = ssd_xmalloc(((size_t)T * R * K + 1) * sizeof *sel);
    for (int s = 0; s < SSD_COCO_NSTATS; s++) {
        const stat_def *d = &k_stats[s];
        int t0 = d->t < 0 ? 0 : d->t, t1 = d->t < 0 ? T : d->t + 1;
        size_t n = 0;
        for (int t = t0; t < t1; t++) {
            if (d->ap) {
                for (int r = 0; r < R; r++)
                    for (int k = 0; k < K; k++)
                        sel[n++] = res->precision[prec_at(t, r, k, K, d->a, d->m)];
            } else {
                for (int k = 0; k < K; k++)
                    sel[n++] = res->recall[rec_at(t, k, K, d->a, d->m)];
            }
        }
        res->stats[s] = mean_present(sel, n, chunk);
    }
    for (int k = 0; k < K; k++) {
        size_t n = 0;
        for (int t = 0; t < T; t++)
            for (int r = 0; r < R; r++)
                sel[n++] = res->precision[prec_at(t, r, k, K, 0, M - 1)];
        res->category_ap[k] = mean_present(sel, n, chunk);
    }
    free(sel);
}

/* ---- the whole evaluation ---- */

ssd_status ssd_cocoeval(const ssd_coco_gt *gt, const ssd_coco_dets *dt, const ssd_cocoeval_opts *o,
                        ssd_cocoeval_result *res, ssd_error *err) {
    memset(res, 0, sizeof *res);
    int threads = o && o->threads > 0 ? o->threads : omp_get_max_threads();
    long chunk = o && o->chunk ? o->chunk : 8192;

    int I, K;
    int64_t *img_ids = ssd_coco_image_ids(gt, &I);
    int64_t *cat_ids = ssd_coco_sorted_unique(gt->category_ids, (size_t)gt->n_categories, &K);
    for (size_t j = 0; j < dt->n; j++)
        if (ssd_coco_find_id(img_ids, I, dt->d[j].image_id) < 0) {
            free(img_ids);
            free(cat_ids);
            return ssd_fail(err, SSD_ERR_ARG,
                            "detection %zu: image_id %lld is not an image of the ground truth", j,
                            (long long)dt->d[j].image_id);
        }

    eval_index x = {.I = I, .K = K, .gts = gt->anns, .dts = dt->d};
    size_t nb = (size_t)K * I;
    buckets dt_all;
    build_buckets(gt->anns, gt->n_anns, true, img_ids, I, cat_ids, K, &x.gt);
    build_buckets(dt->d, dt->n, false, img_ids, I, cat_ids, K, &dt_all);
    top_dets(dt->d, &dt_all, nb, threads, &x.dt);
    free(dt_all.off);
    free(dt_all.idx);

    unsigned char *flags = ssd_xmalloc((x.dt.off[nb] * A * T + 1));
    int *npig = ssd_xcalloc(nb * A + 1, sizeof *npig);
#pragma omp parallel num_threads(threads)
    {
        img_scratch s = {0};
#pragma omp for schedule(dynamic, 64)
        for (size_t b = 0; b < nb; b++) {
            size_t G = x.gt.off[b + 1] - x.gt.off[b], D = x.dt.off[b + 1] - x.dt.off[b];
            if (G == 0 && D == 0) continue;
            evaluate_img(gt->anns, x.gt.idx + x.gt.off[b], G, dt->d, x.dt.idx + x.dt.off[b], D,
                         &s, flags + x.dt.off[b] * A * T, npig + b * A);
        }
        scratch_free(&s);
    }
    x.flags = flags;
    x.npig = npig;

    res->n_images = I;
    res->n_categories = K;
    res->category_ids = cat_ids;
    res->category_ap = ssd_xmalloc(((size_t)K + 1) * sizeof(double));
    size_t np = (size_t)T * R * K * A * M, nr = (size_t)T * K * A * M;
    res->precision = ssd_xmalloc((np + 1) * sizeof(double));
    res->recall = ssd_xmalloc((nr + 1) * sizeof(double));
    for (size_t i = 0; i < np; i++)
        res->precision[i] = -1.0;
    for (size_t i = 0; i < nr; i++)
        res->recall[i] = -1.0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
    for (int k = 0; k < K; k++)
        accumulate_cat(&x, k, res->precision, res->recall);

    summarize(res, chunk);
    free(flags);
    free(npig);
    free(x.gt.off);
    free(x.gt.idx);
    free(x.dt.off);
    free(x.dt.idx);
    free(img_ids);
    return SSD_OK;
}

void ssd_cocoeval_result_free(ssd_cocoeval_result *res) {
    free(res->category_ids);
    free(res->category_ap);
    free(res->precision);
    free(res->recall);
    memset(res, 0, sizeof *res);
}

void ssd_cocoeval_print(FILE *f, const double stats[SSD_COCO_NSTATS]) {
    static const char *const area_lbl[A] = {"all", "small", "medium", "large"};
    for (int s = 0; s < SSD_COCO_NSTATS; s++) {
        const stat_def *d = &k_stats[s];
        const char *iou = d->t < 0 ? "0.50:0.95" : d->t == 0 ? "0.50" : "0.75";
        fprintf(f, " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n",
                d->ap ? "Average Precision" : "Average Recall", d->ap ? "(AP)" : "(AR)", iou,
                area_lbl[d->a], k_max_dets[d->m], stats[s]);
    }
}
