/* Whole-file reads and atomic writes (file.h). */
#include "io/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"

ssd_status ssd_read_file_reuse(const char *path, size_t max_bytes, char **buf, size_t *cap,
                               size_t *len, ssd_error *err) {
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return ssd_fail(err, SSD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    ssd_status st = SSD_OK;
    if (fstat(fileno(fp), &sb) != 0) {
        st = ssd_fail(err, SSD_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        st = ssd_fail(err, SSD_ERR_IO, "%s: not a regular file", path);
    } else if ((uint64_t)sb.st_size > (uint64_t)max_bytes) {
        st = ssd_fail(err, SSD_ERR_FORMAT, "%s: %lld bytes, more than the %zu accepted here", path,
                      (long long)sb.st_size, max_bytes);
    } else {
        size_t n = (size_t)sb.st_size;
        if (n + 1 > *cap) {
            free(*buf);
            *cap = *cap ? n + 1 + n / 4 : n + 1; /* headroom only when reused */
            *buf = ssd_xmalloc(*cap);
        }
        size_t got = n ? fread(*buf, 1, n, fp) : 0;
        if (got != n) {
            st = ssd_fail(err, SSD_ERR_IO, "%s: short read (%zu of %zu bytes)%s%s", path, got, n,
                          ferror(fp) ? ": " : "", ferror(fp) ? strerror(errno) : "");
        } else {
            (*buf)[n] = '\0';
            *len = n;
        }
    }
    fclose(fp);
    return st;
}

ssd_status ssd_read_file(const char *path, char **buf, size_t *len, ssd_error *err) {
    *buf = NULL;
    size_t cap = 0;
    ssd_status st = ssd_read_file_reuse(path, SIZE_MAX - 1, buf, &cap, len, err);
    if (st != SSD_OK) {
        free(*buf);
        *buf = NULL;
    }
    return st;
}

static ssd_status fsync_parent_dir(const char *path, ssd_error *err) {
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) dir = ssd_xstrdup(".");
    else if (slash == path) dir = ssd_xstrdup("/");
    else {
        size_t n = (size_t)(slash - path);
        dir = ssd_xmalloc(n + 1);
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    ssd_status st = SSD_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        st = ssd_fail(err, SSD_ERR_IO, "%s: cannot open directory %s to fsync it: %s", path, dir,
                      strerror(errno));
    } else {
        /* EINVAL: the filesystem does not sync directories; nothing more we can do. */
        if (fsync(fd) != 0 && errno != EINVAL)
            st = ssd_fail(err, SSD_ERR_IO, "%s: fsync of directory %s failed: %s", path, dir,
                          strerror(errno));
        close(fd);
    }
    free(dir);
    return st;
}

ssd_status ssd_atomic_open(ssd_atomic_file *af, const char *path, ssd_error *err) {
    memset(af, 0, sizeof *af);
    size_t tlen = strlen(path) + 32;
    af->tmp = ssd_xmalloc(tlen);
    snprintf(af->tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    af->fp = fopen(af->tmp, "wb");
    if (!af->fp) {
        ssd_status st =
            ssd_fail(err, SSD_ERR_IO, "%s: cannot create %s: %s", path, af->tmp, strerror(errno));
        free(af->tmp);
        af->tmp = NULL;
        return st;
    }
    af->path = ssd_xstrdup(path);
    return SSD_OK;
}

void ssd_atomic_abort(ssd_atomic_file *af) {
    if (af->fp) fclose(af->fp);
    if (af->tmp) remove(af->tmp);
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
}

ssd_status ssd_atomic_commit(ssd_atomic_file *af, ssd_error *err) {
    bool ok = !ferror(af->fp);
    int saved = ok ? 0 : EIO;
    if (ok && fflush(af->fp) != 0) ok = false, saved = errno;
    if (ok && fsync(fileno(af->fp)) != 0) ok = false, saved = errno;
    if (fclose(af->fp) != 0 && ok) ok = false, saved = errno;
    af->fp = NULL;
    ssd_status st = SSD_OK;
    if (!ok) {
        st = ssd_fail(err, SSD_ERR_IO, "%s: writing %s failed: %s", af->path, af->tmp,
                      strerror(saved));
    } else if (rename(af->tmp, af->path) != 0) {
        st = ssd_fail(err, SSD_ERR_IO, "%s: cannot rename %s into place: %s", af->path, af->tmp,
                      strerror(errno));
    } else {
        free(af->tmp);
        af->tmp = NULL; /* renamed: nothing to remove */
        st = fsync_parent_dir(af->path, err);
    }
    ssd_atomic_abort(af);
    return st;
}

ssd_status ssd_write_file_atomic(const char *path, const void *data, size_t n, ssd_error *err) {
    ssd_atomic_file af;
    ssd_status st = ssd_atomic_open(&af, path, err);
    if (st != SSD_OK) return st;
    if (n && fwrite(data, 1, n, af.fp) != n) {
        st = ssd_fail(err, SSD_ERR_IO, "%s: writing %s failed: %s", path, af.tmp, strerror(errno));
        ssd_atomic_abort(&af);
        return st;
    }
    return ssd_atomic_commit(&af, err);
}

static ssd_status make_dir(const char *path, ssd_error *err) {
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) return SSD_OK;
        return ssd_fail(err, SSD_ERR_IO, "%s: exists and is not a directory", path);
    }
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return ssd_fail(err, SSD_ERR_IO, "%s: cannot create directory: %s", path, strerror(errno));
    return SSD_OK;
}

ssd_status ssd_make_dirs(const char *path, ssd_error *err) {
    char *p = ssd_xstrdup(path);
    ssd_status st = SSD_OK;
    for (char *s = p + 1; *s && st == SSD_OK; s++) {
        if (*s != '/') continue;
        *s = '\0';
        st = make_dir(p, err);
        *s = '/';
    }
    if (st == SSD_OK) st = make_dir(p, err);
    free(p);
    return st;
}
