/* Rank-aware logging and the tier-1 assertion (DESIGN.md section 5).
 *
 * The only process-wide mutable state in the project lives here: the log configuration
 * (level, this process's rank and world size, and the abort hook a distributed run installs
 * so that a failed assertion on one rank takes the whole job down instead of hanging it). */
#ifndef SSD_CORE_LOG_H
#define SSD_CORE_LOG_H

#include <stdarg.h>

typedef enum ssd_log_level {
    SSD_LOG_ERROR = 0,
    SSD_LOG_WARN = 1,
    SSD_LOG_INFO = 2,
    SSD_LOG_DEBUG = 3
} ssd_log_level;

void ssd_log_set_level(ssd_log_level level);
ssd_log_level ssd_log_get_level(void);
/* Rank and world size of this process; INFO/DEBUG print on rank 0 only unless all_ranks. */
void ssd_log_set_rank(int rank, int world_size);
void ssd_log_set_all_ranks(int all_ranks);
int ssd_log_rank(void);
/* Called by SSD_ASSERT / ssd_die after printing; default is abort(). */
void ssd_log_set_abort_hook(void (*hook)(void));

void ssd_log(ssd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ssd_logv(ssd_log_level level, const char *fmt, va_list ap);

#define SSD_ERR(...) ssd_log(SSD_LOG_ERROR, __VA_ARGS__)
#define SSD_WARN(...) ssd_log(SSD_LOG_WARN, __VA_ARGS__)
#define SSD_INFO(...) ssd_log(SSD_LOG_INFO, __VA_ARGS__)
#define SSD_DEBUG(...) ssd_log(SSD_LOG_DEBUG, __VA_ARGS__)

/* Print "file:line: message" and abort through the hook. Never returns. */
_Noreturn void ssd_die(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Tier 1: a broken invariant is a bug. Kept in release builds. */
#define SSD_ASSERT(cond, ...)                                                                  \
    do {                                                                                       \
        if (!(cond)) ssd_die(__FILE__, __LINE__, "assertion `" #cond "` failed: " __VA_ARGS__); \
    } while (0)

#endif
