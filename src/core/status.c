#include "core/status.h"

#include <stdio.h>
#include <string.h>

const char *ssd_status_name(ssd_status s) {
    switch (s) {
    case SSD_OK: return "ok";
    case SSD_ERR_IO: return "io error";
    case SSD_ERR_FORMAT: return "format error";
    case SSD_ERR_ARG: return "invalid argument";
    case SSD_ERR_UNSUPPORTED: return "unsupported";
    case SSD_ERR_NOMEM: return "out of memory";
    case SSD_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

ssd_status ssd_failv(ssd_error *err, ssd_status code, const char *fmt, va_list ap) {
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return code;
}

ssd_status ssd_fail(ssd_error *err, ssd_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    ssd_failv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void ssd_error_clear(ssd_error *err) {
    if (err) {
        err->code = SSD_OK;
        err->msg[0] = '\0';
    }
}
