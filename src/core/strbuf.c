/* Growable string (strbuf.h). */
#include "core/strbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

static void sb_reserve(ssd_strbuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->s = ssd_xrealloc(b->s, cap);
    b->cap = cap;
}

void ssd_sb_putn(ssd_strbuf *b, const char *s, size_t n) {
    sb_reserve(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void ssd_sb_puts(ssd_strbuf *b, const char *s) { ssd_sb_putn(b, s, strlen(s)); }

void ssd_sb_printf(ssd_strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    SSD_ASSERT(n >= 0, "vsnprintf failed for format \"%s\"", fmt);
    sb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void ssd_sb_json_str(ssd_strbuf *b, const char *s) {
    ssd_sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"') ssd_sb_puts(b, "\\\"");
        else if (*p == '\\') ssd_sb_puts(b, "\\\\");
        else if (*p < 0x20) ssd_sb_printf(b, "\\u%04x", *p);
        else ssd_sb_putn(b, (const char *)p, 1);
    }
    ssd_sb_puts(b, "\"");
}

void ssd_sb_json_double(ssd_strbuf *b, double v) {
    SSD_ASSERT(isfinite(v), "non-finite value %g cannot be written as JSON", v);
    if (v == 0.0) {
        ssd_sb_puts(b, signbit(v) ? "-0.0" : "0");
        return;
    }
    if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
        ssd_sb_printf(b, "%.0f", v);
        return;
    }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    ssd_sb_puts(b, tmp);
}

void ssd_sb_json_doubles(ssd_strbuf *b, const double *v, int n) {
    ssd_sb_puts(b, "[");
    for (int i = 0; i < n; i++) {
        if (i) ssd_sb_puts(b, ",");
        ssd_sb_json_double(b, v[i]);
    }
    ssd_sb_puts(b, "]");
}

void ssd_sb_free(ssd_strbuf *b) {
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}
