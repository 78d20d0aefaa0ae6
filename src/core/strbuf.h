/* A growable, always NUL-terminated byte string for building text (JSON, headers, reports). */
#ifndef SSD_CORE_STRBUF_H
#define SSD_CORE_STRBUF_H

#include <stddef.h>

typedef struct ssd_strbuf {
    char *s; /* NULL until the first append; free() it when done */
    size_t len, cap;
} ssd_strbuf;

void ssd_sb_putn(ssd_strbuf *b, const char *s, size_t n);
void ssd_sb_puts(ssd_strbuf *b, const char *s);
void ssd_sb_printf(ssd_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal: quotes, backslashes and control bytes escaped, other bytes as they are. */
void ssd_sb_json_str(ssd_strbuf *b, const char *s);
/* A finite double as decimal text that reads back (strtod, Python's float()) to the same bits:
 * the first of %.15g, %.16g, %.17g that round-trips; an integral value up to 2^53 prints as an
 * integer ("3"), negative zero as "-0.0". Non-finite values are not JSON: asserted. */
void ssd_sb_json_double(ssd_strbuf *b, double v);
/* A JSON array of n finite doubles, each as ssd_sb_json_double writes it. */
void ssd_sb_json_doubles(ssd_strbuf *b, const double *v, int n);
void ssd_sb_free(ssd_strbuf *b);

#endif
