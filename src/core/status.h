/* Status codes and error messages for input-dependent failures (DESIGN.md section 5, tier 3).
 *
 * A function that can fail because of its input returns an ssd_status and, when it fails,
 * fills a caller-provided ssd_error with a message naming the file/flag and the problem.
 * Bugs use SSD_ASSERT (log.h); library failures use the backend's *_CHECK macros. */
#ifndef SSD_CORE_STATUS_H
#define SSD_CORE_STATUS_H

#include <stdarg.h>

typedef enum ssd_status {
    SSD_OK = 0,
    SSD_ERR_IO,          /* missing file, short read, write failure */
    SSD_ERR_FORMAT,      /* malformed / truncated / corrupt content */
    SSD_ERR_ARG,         /* bad flag, bad shape, bad value from the user */
    SSD_ERR_UNSUPPORTED, /* valid request this build or backend cannot do */
    SSD_ERR_NOMEM,       /* allocation failed where we chose not to abort */
    SSD_ERR_INTERNAL     /* library failure reported as a status (rare) */
} ssd_status;

#define SSD_ERROR_MSG_LEN 1024

typedef struct ssd_error {
    ssd_status code;
    char msg[SSD_ERROR_MSG_LEN];
} ssd_error;

/* Short fixed name of a status code ("ok", "io error", ...). */
const char *ssd_status_name(ssd_status s);

/* Fill *err (if non-NULL) with code and a printf-style message; returns code so callers can
 * write `return ssd_fail(err, SSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));` */
ssd_status ssd_fail(ssd_error *err, ssd_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
ssd_status ssd_failv(ssd_error *err, ssd_status code, const char *fmt, va_list ap);

/* Reset *err to SSD_OK with an empty message. */
void ssd_error_clear(ssd_error *err);

#endif
