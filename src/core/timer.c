#define _POSIX_C_SOURCE 200809L
#include "core/timer.h"

#include <time.h>

double ssd_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ssd_timer_reset(ssd_timer *t) {
    t->started = -1.0;
    t->total = 0.0;
    t->count = 0;
}

void ssd_timer_start(ssd_timer *t) { t->started = ssd_now(); }

double ssd_timer_stop(ssd_timer *t) {
    if (t->started < 0) return 0.0;
    double dt = ssd_now() - t->started;
    t->total += dt;
    t->count++;
    t->started = -1.0;
    return dt;
}

double ssd_timer_mean(const ssd_timer *t) { return t->count ? t->total / (double)t->count : 0.0; }
