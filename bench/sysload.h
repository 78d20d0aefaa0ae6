/* How much CPU other processes took while a benchmark ran: the machine's busy time
 * (/proc/stat) minus this process's and its waited-for children's (getrusage), over the wall
 * time -- the average number of CPUs something else used. Header-only, for bench/ programs.
 * Benchmarks on a shared 2-core box are only meaningful when this is near 0. */
#ifndef SSD_BENCH_SYSLOAD_H
#define SSD_BENCH_SYSLOAD_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/timer.h"


typedef struct load_mark {
    double wall, machine_busy, self; /* seconds */
    bool ok;
} load_mark;

static load_mark load_mark_now(void) {
    load_mark m = {ssd_now(), 0, 0, false};
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        unsigned long long v[10] = {0};
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]) == 8) {
            /* user nice system idle iowait irq softirq steal: busy = all but idle, iowait */
            double hz = (double)sysconf(_SC_CLK_TCK);
            m.machine_busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
            m.ok = true;
        }
        fclose(f);
    }
    /* ours = this process + waited-for children (the python of --torch) */
    static const int who[2] = {RUSAGE_SELF, RUSAGE_CHILDREN};
    for (int i = 0; i < 2; i++) {
        struct rusage ru;
        if (getrusage(who[i], &ru) == 0)
            m.self += (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
                      (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
        else m.ok = false;
    }
    return m;
}

/* Average CPUs used by other processes (and the hypervisor's steal) between a and b; -1 if
 * unknown. */
static double load_other(load_mark a, load_mark b) {
    /* /proc/stat counts in 10 ms ticks: below ~1 s the estimate is too coarse to mean much */
    if (!a.ok || !b.ok || b.wall - a.wall < 1.0) return -1;
    double other = (b.machine_busy - a.machine_busy) - (b.self - a.self);
    if (other < 0) other = 0;
    return other / (b.wall - a.wall);
}

#endif
