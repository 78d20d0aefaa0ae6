/* Whole-file reads and atomic whole-file writes (DESIGN.md section 5).
 *
 * An atomic write goes to PATH.tmp.<pid>; commit flushes, fsyncs, renames it over PATH and fsyncs
 * the directory, so PATH is always either the old file or the complete new one. abort (or a failed
 * commit) removes the temp file. */
#ifndef SSD_IO_FILE_H
#define SSD_IO_FILE_H

#include <stdio.h>

#include "core/status.h"

/* Reads all of PATH (a regular file) into a malloc'd buffer with a NUL byte appended (not
 * counted in *len). On failure *buf is NULL. */
ssd_status ssd_read_file(const char *path, char **buf, size_t *len, ssd_error *err);

/* As ssd_read_file, into a caller-owned buffer that is reused and grown (with some headroom)
 * when too small: *buf / *cap describe it (NULL / 0 at first; free(*buf) at the end). A file
 * larger than max_bytes is refused (SSD_ERR_FORMAT) before reading. On failure the buffer stays
 * valid but its contents are undefined. */
ssd_status ssd_read_file_reuse(const char *path, size_t max_bytes, char **buf, size_t *cap,
                               size_t *len, ssd_error *err);

typedef struct ssd_atomic_file {
    FILE *fp; /* write here between open and commit/abort */
    char *path, *tmp;
} ssd_atomic_file;

ssd_status ssd_atomic_open(ssd_atomic_file *af, const char *path, ssd_error *err);
/* Makes the written bytes PATH. Any earlier write error on fp is reported here. */
ssd_status ssd_atomic_commit(ssd_atomic_file *af, ssd_error *err);
void ssd_atomic_abort(ssd_atomic_file *af); /* safe after a failed open or commit */

/* Convenience: PATH := the n bytes at data, atomically. */
ssd_status ssd_write_file_atomic(const char *path, const void *data, size_t n, ssd_error *err);

/* mkdir -p: creates PATH and its missing parents; fine when it exists as a directory.
 * SSD_ERR_IO naming the directory on failure (or when it exists as another kind of file). */
ssd_status ssd_make_dirs(const char *path, ssd_error *err);

#endif
