#include "core/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/timer.h"

/* The log configuration is the project's single piece of process-wide mutable state
 * (DESIGN.md section 5). It is written once at start-up, before any worker thread exists; the
 * clock origin t0 is set by the first line logged, once (pthread_once: data-loader threads may
 * log their first warnings at the same moment). */
static struct {
    ssd_log_level level;
    int rank, world_size, all_ranks;
    void (*abort_hook)(void);
    double t0;
} g_log = {SSD_LOG_INFO, 0, 1, 0, NULL, -1.0};
static pthread_once_t g_log_t0_once = PTHREAD_ONCE_INIT;

static void set_t0(void) { g_log.t0 = ssd_now(); }

void ssd_log_set_level(ssd_log_level level) { g_log.level = level; }
ssd_log_level ssd_log_get_level(void) { return g_log.level; }
void ssd_log_set_rank(int rank, int world_size) {
    g_log.rank = rank;
    g_log.world_size = world_size;
}
void ssd_log_set_all_ranks(int all_ranks) { g_log.all_ranks = all_ranks; }
int ssd_log_rank(void) { return g_log.rank; }
void ssd_log_set_abort_hook(void (*hook)(void)) { g_log.abort_hook = hook; }

static const char *level_tag(ssd_log_level l) {
    switch (l) {
    case SSD_LOG_ERROR: return "error";
    case SSD_LOG_WARN: return "warning";
    case SSD_LOG_INFO: return "info";
    case SSD_LOG_DEBUG: return "debug";
    }
    return "?";
}

void ssd_logv(ssd_log_level level, const char *fmt, va_list ap) {
    if (level > g_log.level) return;
    /* Errors and warnings come from every rank; chatter only from rank 0. */
    if (level >= SSD_LOG_INFO && g_log.rank != 0 && !g_log.all_ranks) return;
    pthread_once(&g_log_t0_once, set_t0);
    char line[2048];
    int n = 0;
    if (g_log.world_size > 1)
        n = snprintf(line, sizeof line, "[ssd r%d %8.3fs] %s: ", g_log.rank, ssd_now() - g_log.t0,
                     level_tag(level));
    else
        n = snprintf(line, sizeof line, "[ssd %8.3fs] %s: ", ssd_now() - g_log.t0, level_tag(level));
    if (n < 0) n = 0;
    if ((size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    /* One fputs per line keeps lines from different threads whole. */
    fprintf(stderr, "%s\n", line);
}

void ssd_log(ssd_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ssd_logv(level, fmt, ap);
    va_end(ap);
}

_Noreturn void ssd_die(const char *file, int line, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[ssd r%d] fatal: %s:%d: %s\n", g_log.rank, file, line, msg);
    fflush(stderr);
    if (g_log.abort_hook) g_log.abort_hook();
    abort();
}
