/* MLPerf training log lines (see mllog.h and shared/spec/mlperf-logging.md sections 1, 4, 5).
 *
 * A line is built in a local buffer, in the key order of mlcommons' mllog.py (namespace,
 * time_ms, event_type, key, value, metadata{file, lineno, ...}) with json.dumps's default
 * spacing and ASCII-only string escapes, so that our lines read like the Python library's.
 * time_ms is taken under the logger's mutex, so the lines of one file are in time order even when
 * several threads log. Every line is flushed at once: a crash loses no logged event. */
#define _POSIX_C_SOURCE 200809L
#include "train/mllog.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/strbuf.h"

struct ssd_mllog {
    int active; /* rank 0 */
    FILE *f;    /* owned; NULL when no path */
    FILE *also; /* not owned */
    char *path;
    int write_failed; /* a write/flush to f failed (sticky; reported by close) */
    int write_errno;
    pthread_mutex_t mu;
};

static const char *const k_type_names[] = {"POINT_IN_TIME", "INTERVAL_START", "INTERVAL_END"};

ssd_status ssd_mllog_open(const char *path, FILE *also, int rank, ssd_mllog **out, ssd_error *err) {
    *out = NULL;
    ssd_mllog *l = calloc(1, sizeof *l);
    if (!l) return ssd_fail(err, SSD_ERR_NOMEM, "mllog: out of memory");
    pthread_mutex_init(&l->mu, NULL);
    l->active = rank == 0;
    if (l->active) {
        l->also = also;
        if (path) {
            l->f = fopen(path, "w");
            if (!l->f) {
                int e = errno;
                pthread_mutex_destroy(&l->mu);
                free(l);
                return ssd_fail(err, SSD_ERR_IO, "%s: cannot create the MLPerf log: %s", path,
                                strerror(e));
            }
            l->path = strdup(path);
            SSD_ASSERT(l->path, "out of memory");
        }
    }
    *out = l;
    return SSD_OK;
}

ssd_status ssd_mllog_close(ssd_mllog *l, ssd_error *err) {
    if (!l) return SSD_OK;
    ssd_status st = SSD_OK;
    if (l->f) {
        int bad = fclose(l->f) != 0;
        int e = errno;
        if (l->write_failed)
            st = ssd_fail(err, SSD_ERR_IO, "%s: writing the MLPerf log failed: %s", l->path,
                          strerror(l->write_errno));
        else if (bad)
            st = ssd_fail(err, SSD_ERR_IO, "%s: closing the MLPerf log failed: %s", l->path,
                          strerror(e));
    }
    pthread_mutex_destroy(&l->mu);
    free(l->path);
    free(l);
    return st;
}

/* A JSON string as Python's json.dumps(ensure_ascii=True) writes it: \" \\ \n \r \t \b \f,
 * other bytes outside 0x20..0x7e as \uXXXX (UTF-8 sequences decoded, astral code points as
 * surrogate pairs). A byte that does not start a valid UTF-8 sequence is taken as latin-1. */
static void put_ascii_json_str(ssd_strbuf *b, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    ssd_sb_putn(b, "\"", 1);
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            ssd_sb_putn(b, esc, 2);
            p++;
            continue;
        }
        if (c >= 0x20 && c < 0x7f) {
            ssd_sb_putn(b, (const char *)p, 1);
            p++;
            continue;
        }
        const char *named = c == '\n'   ? "\\n"
                            : c == '\r' ? "\\r"
                            : c == '\t' ? "\\t"
                            : c == '\b' ? "\\b"
                            : c == '\f' ? "\\f"
                                        : NULL;
        if (named) {
            ssd_sb_puts(b, named);
            p++;
            continue;
        }
        uint32_t cp = c;
        int n = 1;
        int extra = c >= 0xf0 && c < 0xf5   ? 3
                    : c >= 0xe0 && c < 0xf0 ? 2
                    : c >= 0xc2 && c < 0xe0 ? 1
                                            : 0;
        if (extra) {
            uint32_t v = c & (0x3fu >> extra);
            int ok = 1;
            for (int i = 1; i <= extra; i++) {
                if ((p[i] & 0xc0) != 0x80) {
                    ok = 0;
                    break;
                }
                v = (v << 6) | (p[i] & 0x3f);
            }
            /* reject overlong forms, surrogates and values past U+10FFFF */
            if (ok && ((extra == 2 && (v < 0x800 || (v >= 0xd800 && v < 0xe000))) ||
                       (extra == 3 && (v < 0x10000 || v > 0x10ffff))))
                ok = 0;
            if (ok) cp = v, n = 1 + extra;
        }
        if (cp >= 0x10000) {
            uint32_t u = cp - 0x10000;
            ssd_sb_printf(b, "\\u%04x\\u%04x", 0xd800 + (u >> 10), 0xdc00 + (u & 0x3ff));
        } else {
            ssd_sb_printf(b, "\\u%04x", cp);
        }
        p += n;
    }
    ssd_sb_putn(b, "\"", 1);
}

/* The members of a metadata object, as ", " + text between its braces (verbatim). */
static void put_meta_members(ssd_strbuf *b, const char *meta) {
    if (!meta) return;
    cJSON *j = cJSON_Parse(meta);
    SSD_ASSERT(j && cJSON_IsObject(j), "mllog: metadata is not a JSON object: %s", meta);
    int empty = j->child == NULL;
    int clash = cJSON_GetObjectItemCaseSensitive(j, "file") ||
                cJSON_GetObjectItemCaseSensitive(j, "lineno");
    cJSON_Delete(j);
    SSD_ASSERT(!clash, "mllog: metadata may not set file or lineno: %s", meta);
    if (empty) return;
    const char *open = strchr(meta, '{');
    const char *close = strrchr(meta, '}');
    SSD_ASSERT(open && close && close > open, "mllog: metadata is not a JSON object: %s", meta);
    open++;
    while (open < close && (*open == ' ' || *open == '\t' || *open == '\n' || *open == '\r'))
        open++;
    while (close > open &&
           (close[-1] == ' ' || close[-1] == '\t' || close[-1] == '\n' || close[-1] == '\r'))
        close--;
    ssd_sb_puts(b, ", ");
    ssd_sb_putn(b, open, (size_t)(close - open));
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_line(ssd_mllog *l, const char *text, size_t n) {
    if (l->also) {
        fwrite(text, 1, n, l->also);
        fflush(l->also);
    }
    if (l->f && !l->write_failed) {
        errno = 0;
        if (fwrite(text, 1, n, l->f) != n || fflush(l->f) != 0) {
            l->write_failed = 1;
            l->write_errno = errno ? errno : EIO;
        }
    }
}

void ssd_mllog_event_json(ssd_mllog *l, ssd_mllog_type type, const char *key,
                          const char *value_json, const char *meta, const char *file, int line) {
    SSD_ASSERT(l && key, "mllog: no logger or key");
    SSD_ASSERT(type >= SSD_MLLOG_POINT_IN_TIME && type <= SSD_MLLOG_INTERVAL_END,
               "mllog: bad event type %d", (int)type);
    if (!l->active) return;
    /* everything after time_ms, built outside the lock */
    ssd_strbuf tail = {0};
    ssd_sb_printf(&tail, ", \"event_type\": \"%s\", \"key\": ", k_type_names[type]);
    put_ascii_json_str(&tail, key);
    ssd_sb_puts(&tail, ", \"value\": ");
    ssd_sb_puts(&tail, value_json ? value_json : "null");
    ssd_sb_puts(&tail, ", \"metadata\": {\"file\": ");
    put_ascii_json_str(&tail, file ? file : "");
    ssd_sb_printf(&tail, ", \"lineno\": %d", line);
    put_meta_members(&tail, meta);
    ssd_sb_puts(&tail, "}}\n");

    pthread_mutex_lock(&l->mu);
    char head[80];
    int hn = snprintf(head, sizeof head, ":::MLLOG {\"namespace\": \"\", \"time_ms\": %" PRId64,
                      now_ms());
    ssd_strbuf all = {0};
    ssd_sb_putn(&all, head, (size_t)hn);
    ssd_sb_putn(&all, tail.s, tail.len);
    write_line(l, all.s, all.len);
    pthread_mutex_unlock(&l->mu);
    ssd_sb_free(&all);
    ssd_sb_free(&tail);
}

void ssd_mllog_event_int(ssd_mllog *l, ssd_mllog_type type, const char *key, int64_t v,
                         const char *meta, const char *file, int line) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    ssd_mllog_event_json(l, type, key, buf, meta, file, line);
}

void ssd_mllog_event_double(ssd_mllog *l, ssd_mllog_type type, const char *key, double v,
                            const char *meta, const char *file, int line) {
    SSD_ASSERT(isfinite(v), "mllog: %s: value %g is not finite", key, v);
    ssd_strbuf b = {0};
    ssd_sb_json_double(&b, v);
    ssd_mllog_event_json(l, type, key, b.s, meta, file, line);
    ssd_sb_free(&b);
}

void ssd_mllog_event_str(ssd_mllog *l, ssd_mllog_type type, const char *key, const char *v,
                         const char *meta, const char *file, int line) {
    SSD_ASSERT(v, "mllog: %s: NULL string (use ssd_mllog_event_null)", key);
    ssd_strbuf b = {0};
    put_ascii_json_str(&b, v);
    ssd_mllog_event_json(l, type, key, b.s, meta, file, line);
    ssd_sb_free(&b);
}

void ssd_mllog_event_null(ssd_mllog *l, ssd_mllog_type type, const char *key, const char *meta,
                          const char *file, int line) {
    ssd_mllog_event_json(l, type, key, NULL, meta, file, line);
}

void ssd_mllog_event_bool(ssd_mllog *l, ssd_mllog_type type, const char *key, int v,
                          const char *meta, const char *file, int line) {
    ssd_mllog_event_json(l, type, key, v ? "true" : "false", meta, file, line);
}

void ssd_mllog_event_ints(ssd_mllog *l, ssd_mllog_type type, const char *key, const int64_t *v,
                          int n, const char *meta, const char *file, int line) {
    SSD_ASSERT(n >= 0 && (n == 0 || v), "mllog: %s: bad list", key);
    ssd_strbuf b = {0};
    ssd_sb_putn(&b, "[", 1);
    for (int i = 0; i < n; i++) ssd_sb_printf(&b, "%s%" PRId64, i ? ", " : "", v[i]);
    ssd_sb_putn(&b, "]", 1);
    ssd_mllog_event_json(l, type, key, b.s, meta, file, line);
    ssd_sb_free(&b);
}

const char *ssd_mllog_epoch_meta(char *buf, size_t len, int epoch_num) {
    snprintf(buf, len, "{\"epoch_num\": %d}", epoch_num);
    return buf;
}

int ssd_mllog_is_eval_epoch(int e) {
    return e == 40 || (e >= 50 && e <= 80 && e % 5 == 0);
}

static int in_list(const char *s, const char *const *list, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, list[i]) == 0) return 1;
    return 0;
}

ssd_status ssd_mllog_startup(ssd_mllog *l, const ssd_mllog_run_info *in, ssd_error *err) {
    static const char *const divisions[] = {"closed", "open"};
    static const char *const statuses[] = {"cloud", "onprem", "preview", "research"};
    const char *division = in->division ? in->division : "closed";
    const char *status = in->status ? in->status : "research";
    if (!in->org || !*in->org) return ssd_fail(err, SSD_ERR_ARG, "mllog: submission_org is empty");
    if (!in->platform || !*in->platform)
        return ssd_fail(err, SSD_ERR_ARG, "mllog: submission_platform is empty");
    if (!in_list(division, divisions, 2))
        return ssd_fail(err, SSD_ERR_ARG, "mllog: submission_division '%s' is not closed or open",
                        division);
    if (!in_list(status, statuses, 4))
        return ssd_fail(err, SSD_ERR_ARG,
                        "mllog: submission_status '%s' is not cloud, onprem, preview or research",
                        status);
    if (in->gradient_accumulation_steps < 1)
        return ssd_fail(err, SSD_ERR_ARG, "mllog: gradient_accumulation_steps %" PRId64 " < 1",
                        in->gradient_accumulation_steps);
    if (in->model_bn_span < 1)
        return ssd_fail(err, SSD_ERR_ARG, "mllog: model_bn_span %" PRId64 " < 1",
                        in->model_bn_span);
    if (in->opt_learning_rate_warmup_steps < 1)
        return ssd_fail(err, SSD_ERR_ARG, "mllog: opt_learning_rate_warmup_steps %" PRId64 " < 1",
                        in->opt_learning_rate_warmup_steps);
    if (!(in->opt_learning_rate_warmup_factor >= 0) ||
        !isfinite(in->opt_learning_rate_warmup_factor))
        return ssd_fail(err, SSD_ERR_ARG, "mllog: opt_learning_rate_warmup_factor %g is not >= 0",
                        in->opt_learning_rate_warmup_factor);
    if (!isfinite(in->opt_base_learning_rate) || !isfinite(in->opt_weight_decay))
        return ssd_fail(err, SSD_ERR_ARG, "mllog: learning rate or weight decay is not finite");
    if (in->max_samples != 1 && in->max_samples != 50)
        return ssd_fail(err, SSD_ERR_ARG, "mllog: max_samples %" PRId64 " is not 1 or 50",
                        in->max_samples);
    if (in->train_samples < 1 || in->eval_samples < 1 || in->global_batch_size < 1)
        return ssd_fail(err, SSD_ERR_ARG,
                        "mllog: train_samples, eval_samples and global_batch_size must be >= 1");
    const int64_t *bd = in->opt_learning_rate_decay_boundary_epochs;
    if (strcmp(division, "closed") == 0) {
        /* [40, 50] * (1 + k/10): 40 + 4k and 50 + 5k with the same integer k >= 0 */
        if (bd[1] < 50 || (bd[1] - 50) % 5 != 0 || bd[0] != 40 + 4 * ((bd[1] - 50) / 5))
            return ssd_fail(err, SSD_ERR_ARG,
                            "mllog: opt_learning_rate_decay_boundary_epochs [%" PRId64 ", %" PRId64
                            "] is not [40, 50] * (1 + k/10) (closed division)",
                            bd[0], bd[1]);
    }

    const ssd_mllog_type E = SSD_MLLOG_POINT_IN_TIME;
    SSD_MLLOG_STR(l, E, "submission_benchmark", "ssd", NULL);
    SSD_MLLOG_STR(l, E, "submission_org", in->org, NULL);
    SSD_MLLOG_STR(l, E, "submission_division", division, NULL);
    SSD_MLLOG_STR(l, E, "submission_status", status, NULL);
    SSD_MLLOG_STR(l, E, "submission_platform", in->platform, NULL);
    SSD_MLLOG_BOOL(l, E, "cache_clear", 1, NULL);
    SSD_MLLOG_NULL(l, SSD_MLLOG_INTERVAL_START, "init_start", NULL);
    SSD_MLLOG_INT(l, E, "seed", in->seed, NULL);
    SSD_MLLOG_INT(l, E, "global_batch_size", in->global_batch_size, NULL);
    SSD_MLLOG_INT(l, E, "gradient_accumulation_steps", in->gradient_accumulation_steps, NULL);
    SSD_MLLOG_INT(l, E, "model_bn_span", in->model_bn_span, NULL);
    SSD_MLLOG_DOUBLE(l, E, "opt_base_learning_rate", in->opt_base_learning_rate, NULL);
    SSD_MLLOG_DOUBLE(l, E, "opt_weight_decay", in->opt_weight_decay, NULL);
    SSD_MLLOG_INT(l, E, "opt_learning_rate_warmup_steps", in->opt_learning_rate_warmup_steps, NULL);
    SSD_MLLOG_DOUBLE(l, E, "opt_learning_rate_warmup_factor", in->opt_learning_rate_warmup_factor,
                     NULL);
    SSD_MLLOG_INTS(l, E, "opt_learning_rate_decay_boundary_epochs", bd, 2, NULL);
    SSD_MLLOG_INT(l, E, "max_samples", in->max_samples, NULL);
    SSD_MLLOG_INT(l, E, "train_samples", in->train_samples, NULL);
    SSD_MLLOG_INT(l, E, "eval_samples", in->eval_samples, NULL);
    return SSD_OK;
}
