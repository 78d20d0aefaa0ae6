/* MLPerf training log lines (":::MLLOG {json}") as the MLCommons compliance checker reads them
 * (spec: shared/spec/mlperf-logging.md; target ruleset training 1.0.0, benchmark `ssd`).
 *
 * Each event is one line: the 9 bytes ":::MLLOG" and a space, then a JSON object with the keys
 * namespace (""), time_ms (integer ms since the Unix epoch, CLOCK_REALTIME, truncated),
 * event_type ("POINT_IN_TIME" / "INTERVAL_START" / "INTERVAL_END"), key, value (any JSON),
 * metadata ({"file": <caller's __FILE__>, "lineno": <caller's __LINE__>, <caller's extra keys>}),
 * in that order, with Python json.dumps's separators (", " and ": ") and ASCII-only strings.
 *
 * A logger writes every line to an optional FILE* (stdout) and an optional file, each flushed
 * after every line; it is thread-safe (one mutex: lines never interleave). Only rank 0 writes;
 * on other ranks every call is a no-op, so callers need no rank tests of their own. */
#ifndef SSD_TRAIN_MLLOG_H
#define SSD_TRAIN_MLLOG_H

#include <stdint.h>
#include <stdio.h>

#include "core/status.h"

typedef struct ssd_mllog ssd_mllog;

typedef enum ssd_mllog_type {
    SSD_MLLOG_POINT_IN_TIME = 0, /* mllog.event() */
    SSD_MLLOG_INTERVAL_START,    /* mllog.start() */
    SSD_MLLOG_INTERVAL_END       /* mllog.end()   */
} ssd_mllog_type;

/* Opens a logger. path: a log file, created or truncated (NULL: none); also: a stream that gets
 * the same lines, e.g. stdout (NULL: none). On rank != 0 nothing is opened and every event is
 * dropped. Fails (SSD_ERR_IO, naming the path) when the file cannot be created. */
ssd_status ssd_mllog_open(const char *path, FILE *also, int rank, ssd_mllog **out, ssd_error *err);
/* Closes the file (not `also`) and frees the logger (NULL is fine). Returns SSD_ERR_IO, naming
 * the path, when any write, flush or the close failed since open; SSD_OK otherwise. */
ssd_status ssd_mllog_close(ssd_mllog *log, ssd_error *err);

/* One event. value_json: the value as JSON text written verbatim (NULL: null). metadata_json:
 * NULL or a JSON object, e.g. "{\"epoch_num\": 5}", whose members are copied verbatim after file
 * and lineno (write it json.dumps-style, ", " and ": ", to read like Python's lines; malformed
 * JSON, a non-object, or a "file"/"lineno" member is a caller bug: asserted). file/line: use the
 * macros below. */
void ssd_mllog_event_json(ssd_mllog *log, ssd_mllog_type type, const char *key,
                          const char *value_json, const char *metadata_json, const char *file,
                          int line);
/* Typed values: an integer, a double (round-trip decimal, ssd_sb_json_double: integral values
 * print as integers; must be finite), a string (ASCII-escaped), null, a boolean, a list of
 * integers. */
void ssd_mllog_event_int(ssd_mllog *log, ssd_mllog_type type, const char *key, int64_t v,
                         const char *metadata_json, const char *file, int line);
void ssd_mllog_event_double(ssd_mllog *log, ssd_mllog_type type, const char *key, double v,
                            const char *metadata_json, const char *file, int line);
void ssd_mllog_event_str(ssd_mllog *log, ssd_mllog_type type, const char *key, const char *v,
                         const char *metadata_json, const char *file, int line);
void ssd_mllog_event_null(ssd_mllog *log, ssd_mllog_type type, const char *key,
                          const char *metadata_json, const char *file, int line);
void ssd_mllog_event_bool(ssd_mllog *log, ssd_mllog_type type, const char *key, int v,
                          const char *metadata_json, const char *file, int line);
void ssd_mllog_event_ints(ssd_mllog *log, ssd_mllog_type type, const char *key, const int64_t *v,
                          int n, const char *metadata_json, const char *file, int line);

#define SSD_MLLOG_INT(log, type, key, v, meta)                                                     \
    ssd_mllog_event_int((log), (type), (key), (v), (meta), __FILE__, __LINE__)
#define SSD_MLLOG_DOUBLE(log, type, key, v, meta)                                                  \
    ssd_mllog_event_double((log), (type), (key), (v), (meta), __FILE__, __LINE__)
#define SSD_MLLOG_STR(log, type, key, v, meta)                                                     \
    ssd_mllog_event_str((log), (type), (key), (v), (meta), __FILE__, __LINE__)
#define SSD_MLLOG_NULL(log, type, key, meta)                                                       \
    ssd_mllog_event_null((log), (type), (key), (meta), __FILE__, __LINE__)
#define SSD_MLLOG_BOOL(log, type, key, v, meta)                                                    \
    ssd_mllog_event_bool((log), (type), (key), (v), (meta), __FILE__, __LINE__)
#define SSD_MLLOG_INTS(log, type, key, v, n, meta)                                                 \
    ssd_mllog_event_ints((log), (type), (key), (v), (n), (meta), __FILE__, __LINE__)
#define SSD_MLLOG_JSON(log, type, key, value_json, meta)                                           \
    ssd_mllog_event_json((log), (type), (key), (value_json), (meta), __FILE__, __LINE__)

/* Writes {"epoch_num": n} into buf (>= 32 bytes) and returns buf: the metadata of epoch_* and
 * eval_* events. */
const char *ssd_mllog_epoch_meta(char *buf, size_t len, int epoch_num);

/* What the start-up block logs (spec section 5, items 1-19). */
typedef struct ssd_mllog_run_info {
    const char *org;      /* submission_org, non-empty */
    const char *platform; /* submission_platform, non-empty */
    const char *division; /* "closed" or "open" (NULL: "closed") */
    const char *status;   /* "research", "onprem", "cloud" or "preview" (NULL: "research") */
    int64_t seed;
    int64_t global_batch_size;
    int64_t gradient_accumulation_steps; /* >= 1 */
    int64_t model_bn_span;               /* >= 1: images per batch-norm group */
    double opt_base_learning_rate;
    double opt_weight_decay;
    int64_t opt_learning_rate_warmup_steps; /* >= 1 (logged even without warmup) */
    double opt_learning_rate_warmup_factor; /* >= 0 */
    int64_t opt_learning_rate_decay_boundary_epochs[2];
    int64_t max_samples; /* 1 or 50 */
    int64_t train_samples;
    int64_t eval_samples;
} ssd_mllog_run_info;

/* Emits, in this order: submission_benchmark "ssd", submission_org, submission_division,
 * submission_status, submission_platform, cache_clear true, init_start (INTERVAL_START), seed,
 * global_batch_size, gradient_accumulation_steps, model_bn_span, opt_base_learning_rate,
 * opt_weight_decay, opt_learning_rate_warmup_steps, opt_learning_rate_warmup_factor,
 * opt_learning_rate_decay_boundary_epochs, max_samples, train_samples, eval_samples. The caller
 * then does its initialisation and logs init_stop (INTERVAL_END) and run_start (INTERVAL_START),
 * per epoch epoch_start/epoch_stop with ssd_mllog_epoch_meta, at ssd_mllog_is_eval_epoch epochs
 * eval_start/eval_accuracy/eval_stop, and run_stop with metadata {"status": "success"} or
 * {"status": "aborted"}.
 * Before writing anything it checks the values the 1.0.0 checker checks (non-empty org and
 * platform, division and status in their lists, accumulation steps, bn span and warmup steps
 * >= 1, warmup factor >= 0, max_samples 1 or 50, positive sample counts) and, for the closed
 * division, the policy's decay boundaries [40, 50] * (1 + k/10) for one integer k >= 0; on a
 * violation it returns SSD_ERR_ARG naming the key and logs nothing. */
ssd_status ssd_mllog_startup(ssd_mllog *log, const ssd_mllog_run_info *info, ssd_error *err);

/* 1 for the closed division's evaluation epochs 40, 50, 55, 60, 65, 70, 75, 80 (1-based epoch
 * numbers, training rules), else 0. */
int ssd_mllog_is_eval_epoch(int epoch_num);

#endif
