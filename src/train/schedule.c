/* The reference's learning-rate and evaluation schedule as pure functions (see schedule.h).
 *
 * Bit-exactness: every LR is computed with the same IEEE double operations, in the same order, as
 * train.py's Python floats: base = lr * (gb / 32); cur = ((base * 0.1) * 0.1)...; warmup
 * step = cur / (wb * 2^wf) and lr = cur - (wb - it) * step. The integers involved stay far below
 * 2^53, so their conversions to double are exact, and wb * 2^wf is formed with ldexp (exact). The
 * project compiles in ISO C mode, where GCC does not contract a*b+c into an FMA, so the product
 * and the subtraction are rounded separately as in Python. */
#include "train/schedule.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

ssd_status ssd_lr_schedule_init(ssd_lr_schedule *s, double lr_flag, int global_batch,
                                double warmup_epochs, int warmup_factor, int64_t train_samples,
                                int64_t iters_per_epoch, int64_t start_iteration,
                                const int *decay_epochs, int n_decay, ssd_error *err) {
    SSD_ASSERT(s != NULL, "null schedule");
    memset(s, 0, sizeof *s);
    if (!isfinite(lr_flag) || lr_flag <= 0)
        return ssd_fail(err, SSD_ERR_ARG, "--lr: must be a positive finite number (got %g)",
                        lr_flag);
    if (global_batch < 1)
        return ssd_fail(err, SSD_ERR_ARG,
                        "global batch (ranks x --batch-size) must be >= 1 (got %d)", global_batch);
    if (isnan(warmup_epochs) || isinf(warmup_epochs))
        return ssd_fail(err, SSD_ERR_ARG, "--warmup: must be a finite number of epochs (got %g)",
                        warmup_epochs);
    if (warmup_factor < -64 || warmup_factor > 64)
        return ssd_fail(err, SSD_ERR_ARG, "--warmup-factor: must be in [-64, 64] (got %d)",
                        warmup_factor);
    if (iters_per_epoch < 1)
        return ssd_fail(err, SSD_ERR_ARG, "iterations per epoch must be >= 1 (got %lld)",
                        (long long)iters_per_epoch);
    if (start_iteration < 0 || start_iteration > ((int64_t)1 << 50))
        return ssd_fail(err, SSD_ERR_ARG, "--iteration: must be in [0, 2^50] (got %lld)",
                        (long long)start_iteration);
    if (n_decay < 0 || (n_decay > 0 && decay_epochs == NULL))
        return ssd_fail(err, SSD_ERR_ARG, "--lr-decay-schedule: bad list (n = %d)", n_decay);

    s->base_lr = lr_flag * ((double)global_batch / 32.0);
    s->warmup_epochs = warmup_epochs;
    s->warmup_factor = warmup_factor;
    s->iters_per_epoch = iters_per_epoch;
    s->start_iteration = start_iteration;
    if (warmup_epochs > 0) {
        if (train_samples < 1 || train_samples > ((int64_t)1 << 50))
            return ssd_fail(err, SSD_ERR_ARG,
                            "--warmup: the training set size must be in [1, 2^50] (got %lld)",
                            (long long)train_samples);
        /* Python: int(args.warmup * nonempty_imgs / (N_gpu * args.batch_size)). */
        double wb = warmup_epochs * (double)train_samples / (double)global_batch;
        if (!(wb < 0x1p50))
            return ssd_fail(err, SSD_ERR_ARG, "--warmup %g: %g warmup iterations is too many",
                            warmup_epochs, wb);
        s->warmup_iters = (int64_t)wb; /* truncation toward zero, like int() */
    }
    /* Distinct non-negative epochs, ascending: `epoch in list` fires once per epoch. */
    for (int i = 0; i < n_decay; i++) {
        int d = decay_epochs[i];
        if (d < 0)
            continue; /* never equals a loop epoch */
        bool dup = false;
        for (int j = 0; j < s->n_decay; j++)
            dup = dup || s->decay_epochs[j] == d;
        if (dup)
            continue;
        if (s->n_decay == SSD_LR_MAX_DECAYS)
            return ssd_fail(err, SSD_ERR_ARG, "--lr-decay-schedule: more than %d distinct epochs",
                            SSD_LR_MAX_DECAYS);
        int k = s->n_decay++;
        while (k > 0 && s->decay_epochs[k - 1] > d) {
            s->decay_epochs[k] = s->decay_epochs[k - 1];
            k--;
        }
        s->decay_epochs[k] = d;
    }
    return SSD_OK;
}

double ssd_lr_current(const ssd_lr_schedule *s, int64_t epoch) {
    double cur = s->base_lr;
    for (int i = 0; i < s->n_decay && s->decay_epochs[i] <= epoch; i++)
        cur *= SSD_LR_DECAY_FACTOR;
    return cur;
}

/* lr_warmup() of train.py for it < wb. */
static double warmup_lr(const ssd_lr_schedule *s, double cur, int64_t it) {
    double step = cur / ldexp((double)s->warmup_iters, s->warmup_factor);
    double delta = (double)(s->warmup_iters - it) * step;
    return cur - delta;
}

double ssd_lr_at(const ssd_lr_schedule *s, int64_t epoch, int64_t it) {
    SSD_ASSERT(s != NULL && epoch >= 0, "epoch %lld", (long long)epoch);
    int64_t first = s->start_iteration + epoch * s->iters_per_epoch;
    SSD_ASSERT(it >= first && it < first + s->iters_per_epoch,
               "it %lld is not a step of epoch %lld (first %lld, %lld per epoch)", (long long)it,
               (long long)epoch, (long long)first, (long long)s->iters_per_epoch);
    double cur = ssd_lr_current(s, epoch);
    int64_t wb = s->warmup_iters;
    if (it < wb)
        return warmup_lr(s, cur, it);
    if (wb == 0 || s->start_iteration >= wb)
        return cur; /* warmup never wrote the LR */
    /* The last warmup write was at it = wb - 1, in epoch ew; it survives unless a decay epoch in
     * (ew, epoch] re-set the LR to cur. With no such decay, cur(ew) == cur(epoch). */
    int64_t ew = (wb - 1 - s->start_iteration) / s->iters_per_epoch;
    for (int i = 0; i < s->n_decay; i++)
        if (s->decay_epochs[i] > ew && s->decay_epochs[i] <= epoch)
            return cur;
    return warmup_lr(s, cur, wb - 1);
}

bool ssd_eval_due(int64_t epoch, int val_interval, const int *val_epochs, int n_val_epochs) {
    int64_t e1 = epoch + 1;
    for (int i = 0; i < n_val_epochs; i++)
        if (val_epochs[i] == e1)
            return true;
    return val_interval != 0 && e1 % val_interval == 0;
}

ssd_status ssd_parse_int_list(const char *flag, const char *text, int *out, int cap, int *n,
                              ssd_error *err) {
    SSD_ASSERT(flag != NULL && text != NULL && n != NULL && cap >= 0, "bad arguments");
    *n = 0;
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0' || strcmp(p, "none") == 0)
        return SSD_OK;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        const char *start = p;
        if (*p == ',' || *p == '\0')
            return ssd_fail(err, SSD_ERR_ARG, "%s: empty item in list '%s'", flag, text);
        errno = 0;
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p)
            return ssd_fail(err, SSD_ERR_ARG, "%s: '%s' is not an integer list (bad item at '%s')",
                            flag, text, start);
        if (errno == ERANGE || v < INT_MIN || v > INT_MAX)
            return ssd_fail(err, SSD_ERR_ARG, "%s: value out of range at '%s' in '%s'", flag, start,
                            text);
        p = end;
        while (isspace((unsigned char)*p))
            p++;
        if (*p != ',' && *p != '\0')
            return ssd_fail(err, SSD_ERR_ARG, "%s: '%s' is not an integer list (bad item at '%s')",
                            flag, text, start);
        if (*n == cap)
            return ssd_fail(err, SSD_ERR_ARG, "%s: more than %d items in '%s'", flag, cap, text);
        out[(*n)++] = (int)v;
        if (*p == '\0')
            return SSD_OK;
        p++; /* the comma; a trailing comma is an empty item */
    }
}
