/* See pin.h. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_SET, pthread_setaffinity_np */
#include "core/pin.h"

#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ssd_cpus_allowed(ssd_cpus *out) {
    cpu_set_t set;
    out->n = 0;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    for (int c = 0; c < CPU_SETSIZE && out->n < SSD_CPUS_MAX; c++)
        if (CPU_ISSET(c, &set)) out->cpu[out->n++] = c;
    return out->n > 0 ? 0 : -1;
}

void ssd_cpus_share(const ssd_cpus *all, int local_rank, int local_size, ssd_cpus *out) {
    out->n = 0;
    if (all->n <= 0) return;
    if (local_size < 1) local_size = 1;
    if (local_rank < 0) local_rank = 0;
    if (local_size > all->n) { /* more ranks than CPUs: one each, round robin */
        out->cpu[0] = all->cpu[local_rank % all->n];
        out->n = 1;
        return;
    }
    const int base = all->n / local_size, extra = all->n % local_size;
    const int r = local_rank % local_size;
    const int start = r * base + (r < extra ? r : extra);
    out->n = base + (r < extra ? 1 : 0);
    memcpy(out->cpu, all->cpu + start, (size_t)out->n * sizeof out->cpu[0]);
}

int ssd_cpus_of_rank(int local_rank, int local_size, ssd_cpus *out) {
    ssd_cpus all;
    if (ssd_cpus_allowed(&all) != 0) return -1;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (online > 0 && all.n < online) { /* the launcher bound this rank already */
        *out = all;
        return 0;
    }
    ssd_cpus_share(&all, local_rank, local_size, out);
    return out->n > 0 ? 0 : -1;
}

static int bind_one(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int ssd_pin_omp(const ssd_cpus *cpus, int threads, char *why, size_t len) {
    if (cpus->n <= 0) {
        snprintf(why, len, "no CPUs to pin to");
        return -1;
    }
    if (threads <= 0) threads = cpus->n;
    omp_set_num_threads(threads);
    int failed = 0, err = 0;
    /* libgomp keeps the team's threads for the later regions of the same size: each keeps
     * the CPU it is given here */
#pragma omp parallel num_threads(threads) reduction(+ : failed) reduction(max : err)
    {
        int t = omp_get_thread_num();
        int e = bind_one(cpus->cpu[t % cpus->n]);
        if (e) {
            failed++;
            err = e;
        }
    }
    if (failed) {
        snprintf(why, len, "pthread_setaffinity_np failed for %d of %d threads: %s", failed,
                 threads, strerror(err));
        return -1;
    }
    return 0;
}

int ssd_bind_thread(const ssd_cpus *cpus) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < cpus->n; i++) CPU_SET(cpus->cpu[i], &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0 ? 0 : -1;
}

int ssd_pin_rank(int local_rank, int local_size, ssd_cpus *cpus, char *msg, size_t len) {
    if (getenv("OMP_PROC_BIND") || getenv("OMP_PLACES")) {
        snprintf(msg, len, "OMP_PROC_BIND/OMP_PLACES are set: OpenMP binds the threads");
        return 1;
    }
    if (ssd_cpus_of_rank(local_rank, local_size, cpus) != 0) {
        snprintf(msg, len, "cannot read this process's CPU affinity: %s", strerror(errno));
        return -1;
    }
    const char *env = getenv("OMP_NUM_THREADS");
    int threads = env && *env ? omp_get_max_threads() : cpus->n;
    char why[160];
    if (ssd_pin_omp(cpus, threads, why, sizeof why) != 0) {
        snprintf(msg, len, "%s", why);
        return -1;
    }
    char list[256];
    ssd_cpus_format(cpus, list, sizeof list);
    snprintf(msg, len, "%d OpenMP threads pinned one per CPU to CPUs %s (local rank %d of %d)",
             threads, list, local_rank, local_size);
    return 0;
}

void ssd_cpus_format(const ssd_cpus *c, char *buf, size_t len) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < c->n && k < len;) {
        int j = i;
        while (j + 1 < c->n && c->cpu[j + 1] == c->cpu[j] + 1) j++;
        int w = j > i ? snprintf(buf + k, len - k, "%s%d-%d", k ? "," : "", c->cpu[i], c->cpu[j])
                      : snprintf(buf + k, len - k, "%s%d", k ? "," : "", c->cpu[i]);
        if (w < 0) break;
        k += (size_t)w;
        i = j + 1;
    }
}
