/* See cuda_prof.h. */
#define _GNU_SOURCE /* qsort_r */
#include "backend/cuda/cuda_prof.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

#define PENDING 4096 /* events in flight before a forced collection */
#define LABELS 1024
#define LABEL_LEN 96

struct cu_prof {
    cudaStream_t stream;
    cudaEvent_t ev[PENDING];
    int lab[PENDING]; /* label of the interval ending at ev[i]; -1: chain start */
    int n;
    char name[LABELS][LABEL_LEN];
    double ms[LABELS];
    long calls[LABELS];
    int n_labels;
};

#define EV_CHECK(call)                                                                         \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        SSD_ASSERT(e_ == cudaSuccess, "CUDA: %s: %s", #call, cudaGetErrorString(e_));          \
    } while (0)

cu_prof *cu_prof_create(cudaStream_t stream) {
    const char *env = getenv("SSD_CUDA_PROFILE");
    if (!env || !*env || !strcmp(env, "0")) return NULL;
    cu_prof *p = ssd_xcalloc(1, sizeof *p);
    p->stream = stream;
    for (int i = 0; i < PENDING; i++) EV_CHECK(cudaEventCreate(&p->ev[i]));
    return p;
}

void cu_prof_destroy(cu_prof *p) {
    if (!p) return;
    for (int i = 0; i < PENDING; i++) cudaEventDestroy(p->ev[i]);
    free(p);
}

/* Adds the finished intervals up and keeps the last event as the chain's start. */
static void collect(cu_prof *p) {
    if (p->n == 0) return;
    EV_CHECK(cudaEventSynchronize(p->ev[p->n - 1]));
    for (int i = 1; i < p->n; i++) {
        if (p->lab[i] < 0) continue;
        float ms = 0;
        EV_CHECK(cudaEventElapsedTime(&ms, p->ev[i - 1], p->ev[i]));
        p->ms[p->lab[i]] += ms;
        p->calls[p->lab[i]]++;
    }
    cudaEvent_t last = p->ev[p->n - 1];
    p->ev[p->n - 1] = p->ev[0];
    p->ev[0] = last;
    p->lab[0] = -1;
    p->n = 1;
}

static int label_index(cu_prof *p, const char *s) {
    for (int i = 0; i < p->n_labels; i++)
        if (!strcmp(p->name[i], s)) return i;
    if (p->n_labels == LABELS) return LABELS - 1; /* the last one collects the overflow */
    snprintf(p->name[p->n_labels], LABEL_LEN, "%s", s);
    return p->n_labels++;
}

void cu_prof_mark(cu_prof *p, const char *fmt, ...) {
    if (!p) return;
    char s[LABEL_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    if (p->n == PENDING) collect(p);
    if (p->n == 0) { /* the very first mark only starts the chain */
        EV_CHECK(cudaEventRecord(p->ev[0], p->stream));
        p->lab[0] = -1;
        p->n = 1;
        return;
    }
    EV_CHECK(cudaEventRecord(p->ev[p->n], p->stream));
    p->lab[p->n++] = label_index(p, s);
}

void cu_prof_restart(cu_prof *p) {
    if (!p) return;
    collect(p);
    EV_CHECK(cudaEventRecord(p->ev[0], p->stream));
    p->lab[0] = -1;
    p->n = 1;
}

void cu_prof_reset(cu_prof *p) {
    if (!p) return;
    cu_prof_restart(p);
    memset(p->ms, 0, sizeof p->ms);
    memset(p->calls, 0, sizeof p->calls);
}

static int by_ms_desc(const void *a, const void *b, void *ctx) {
    const double *ms = ctx;
    double x = ms[*(const int *)a], y = ms[*(const int *)b];
    return (x < y) - (x > y);
}

void cu_prof_report(cu_prof *p, FILE *f, int steps) {
    if (!p) return;
    cu_prof_restart(p);
    if (steps < 1) steps = 1;
    /* categories: the first two words of each label */
    char cat[LABELS][LABEL_LEN];
    double cat_ms[LABELS] = {0};
    long cat_calls[LABELS] = {0};
    int n_cat = 0, order[LABELS];
    double total = 0;
    for (int i = 0; i < p->n_labels; i++) {
        char c[LABEL_LEN];
        snprintf(c, sizeof c, "%s", p->name[i]);
        char *sp = strchr(c, ' ');
        if (sp) sp = strchr(sp + 1, ' ');
        if (sp) *sp = 0;
        int k = 0;
        while (k < n_cat && strcmp(cat[k], c)) k++;
        if (k == n_cat) snprintf(cat[n_cat++], LABEL_LEN, "%s", c);
        cat_ms[k] += p->ms[i];
        cat_calls[k] += p->calls[i];
        total += p->ms[i];
        order[i] = i;
    }
    fprintf(f, "cuda profile (SSD_CUDA_PROFILE): GPU ms per step over %d steps, %.2f ms in all\n",
            steps, total / steps);
    int corder[LABELS];
    for (int k = 0; k < n_cat; k++) corder[k] = k;
    qsort_r(corder, (size_t)n_cat, sizeof *corder, by_ms_desc, cat_ms);
    for (int k = 0; k < n_cat; k++)
        fprintf(f, "  %-28s %9.3f ms %5.1f%% %7.1f calls\n", cat[corder[k]],
                cat_ms[corder[k]] / steps, total > 0 ? 100 * cat_ms[corder[k]] / total : 0,
                (double)cat_calls[corder[k]] / steps);
    qsort_r(order, (size_t)p->n_labels, sizeof *order, by_ms_desc, p->ms);
    fprintf(f, "  the 60 largest labels:\n");
    for (int i = 0; i < p->n_labels && i < 60; i++)
        fprintf(f, "  %-60s %9.3f ms %7.1f calls\n", p->name[order[i]], p->ms[order[i]] / steps,
                (double)p->calls[order[i]] / steps);
}
