/* See dist.h. One file, two builds: with SSD_HAVE_MPI the group is MPI_COMM_WORLD when a
 * launcher started us; without it only the single-process group exists. */
#include "dist/dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

#ifdef SSD_HAVE_MPI
#include <mpi.h>
#endif

struct ssd_dist {
    int rank, world, local_rank, local_size;
    bool mpi; /* MPI_Init ran (and MPI_Finalize must) */
    char kind[96];
};

/* Environment variables by which MPI launchers tell a process it is one of several. */
static const char *const launcher_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                            "MPI_LOCALNRANKS"};

static const char *launcher_var(void) {
    for (size_t i = 0; i < sizeof launcher_vars / sizeof launcher_vars[0]; i++)
        if (getenv(launcher_vars[i])) return launcher_vars[i];
    return NULL;
}

bool ssd_dist_launched(void) { return launcher_var() != NULL; }

int ssd_dist_rank(const ssd_dist *d) { return d ? d->rank : 0; }
int ssd_dist_world(const ssd_dist *d) { return d ? d->world : 1; }
int ssd_dist_local_rank(const ssd_dist *d) { return d ? d->local_rank : 0; }
int ssd_dist_local_size(const ssd_dist *d) { return d ? d->local_size : 1; }
const char *ssd_dist_kind(const ssd_dist *d) { return d ? d->kind : "single process"; }

#ifdef SSD_HAVE_MPI
/* The log's abort hook: a fatal error on one rank ends every rank. */
static void abort_job(void) { MPI_Abort(MPI_COMM_WORLD, 134); }

/* MPI counts are ints: large transfers go in pieces of at most this many elements. */
#define MPI_PIECE (1 << 28)
#endif

ssd_status ssd_dist_init(ssd_dist **out, ssd_error *err) {
    *out = NULL;
    ssd_dist *d = ssd_xcalloc(1, sizeof *d);
    d->world = d->local_size = 1;
    snprintf(d->kind, sizeof d->kind, "single process");
    const char *var = launcher_var();
    if (var) {
#ifdef SSD_HAVE_MPI
        int provided = 0;
        /* Only the main thread calls MPI (loader threads never do). */
        MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        d->mpi = true;
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &d->world);
        MPI_Comm local;
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &local);
        MPI_Comm_rank(local, &d->local_rank);
        MPI_Comm_size(local, &d->local_size);
        MPI_Comm_free(&local);
        char ver[MPI_MAX_LIBRARY_VERSION_STRING];
        int len = 0;
        MPI_Get_library_version(ver, &len);
        ver[strcspn(ver, ",\n")] = '\0'; /* "Open MPI v4.1.4" */
        snprintf(d->kind, sizeof d->kind, "MPI (%.80s)", ver);
        ssd_log_set_rank(d->rank, d->world);
        ssd_log_set_abort_hook(abort_job);
#else
        free(d);
        return ssd_fail(err, SSD_ERR_ARG,
                        "started by an MPI launcher (%s is set) but this ssd was built without "
                        "MPI: install libopenmpi-dev and rebuild, or run one process without "
                        "mpirun",
                        var);
#endif
    }
    *out = d;
    return SSD_OK;
}

void ssd_dist_finalize(ssd_dist *d) {
    if (!d) return;
#ifdef SSD_HAVE_MPI
    if (d->mpi) {
        MPI_Barrier(MPI_COMM_WORLD);
        ssd_log_set_abort_hook(NULL);
        MPI_Finalize();
    }
#endif
    free(d);
}

#ifdef SSD_HAVE_MPI
/* In-place MPI_SUM of n elements of `type` (elem bytes each), in pieces MPI's int counts allow. */
static void allreduce_sum(ssd_dist *d, void *buf, size_t n, MPI_Datatype type, size_t elem) {
    if (!d || d->world <= 1) return;
    for (size_t o = 0; o < n; o += MPI_PIECE) {
        int c = (int)(n - o < MPI_PIECE ? n - o : MPI_PIECE);
        MPI_Allreduce(MPI_IN_PLACE, (char *)buf + o * elem, c, type, MPI_SUM, MPI_COMM_WORLD);
    }
}
#endif

void ssd_dist_allreduce_sum_f32(ssd_dist *d, float *buf, size_t n) {
#ifdef SSD_HAVE_MPI
    allreduce_sum(d, buf, n, MPI_FLOAT, sizeof *buf);
#endif
    (void)d, (void)buf, (void)n;
}

void ssd_dist_allreduce_sum_f64(ssd_dist *d, double *buf, size_t n) {
#ifdef SSD_HAVE_MPI
    allreduce_sum(d, buf, n, MPI_DOUBLE, sizeof *buf);
#endif
    (void)d, (void)buf, (void)n;
}

void ssd_dist_allreduce_max_i64(ssd_dist *d, int64_t *buf, size_t n) {
#ifdef SSD_HAVE_MPI
    if (d && d->world > 1) {
        SSD_ASSERT(n <= MPI_PIECE, "allreduce_max_i64: %zu values", n);
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    }
#endif
    (void)d, (void)buf, (void)n;
}

size_t ssd_dist_allreduce_mean_f32(ssd_dist *d, float *buf, size_t n, size_t bucket_bytes) {
    if (!d || d->world <= 1) return 0;
#ifdef SSD_HAVE_MPI
    size_t per = bucket_bytes / sizeof(float);
    if (per < 1) per = 1;
    if (per > MPI_PIECE) per = MPI_PIECE;
    size_t nb = (n + per - 1) / per;
    MPI_Request *req = ssd_xmalloc(nb * sizeof *req);
    /* bucket k covers [lo, hi) counted from the end of the buffer */
    for (size_t k = 0; k < nb; k++) {
        size_t hi = n - k * per, lo = hi > per ? hi - per : 0;
        MPI_Iallreduce(MPI_IN_PLACE, buf + lo, (int)(hi - lo), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                       &req[k]);
    }
    MPI_Waitall((int)nb, req, MPI_STATUSES_IGNORE);
    free(req);
    const float inv = 1.0f / (float)d->world;
    /* a power-of-two world scales exactly; otherwise one rounding per element, like DDP */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] *= inv;
    return n * sizeof(float);
#else
    (void)buf, (void)n, (void)bucket_bytes;
    return 0;
#endif
}

void ssd_dist_bcast(ssd_dist *d, void *buf, size_t bytes, int root) {
#ifdef SSD_HAVE_MPI
    if (d && d->world > 1)
        for (size_t o = 0; o < bytes; o += MPI_PIECE) {
            int c = (int)(bytes - o < MPI_PIECE ? bytes - o : MPI_PIECE);
            MPI_Bcast((char *)buf + o, c, MPI_BYTE, root, MPI_COMM_WORLD);
        }
#endif
    (void)d, (void)buf, (void)bytes, (void)root;
}

void ssd_dist_gather_bytes(ssd_dist *d, const void *buf, size_t bytes, int root, void **out,
                           size_t *out_bytes) {
    *out = NULL;
    *out_bytes = 0;
    if (!d || d->world <= 1) {
        *out = ssd_xmalloc(bytes ? bytes : 1);
        if (bytes) memcpy(*out, buf, bytes);
        *out_bytes = bytes;
        return;
    }
#ifdef SSD_HAVE_MPI
    SSD_ASSERT(bytes <= INT_MAX, "gather_bytes: %zu bytes from one rank", bytes);
    int mine = (int)bytes;
    int *counts = NULL, *displs = NULL;
    char *all = NULL;
    if (d->rank == root) {
        counts = ssd_xmalloc((size_t)d->world * sizeof *counts);
        displs = ssd_xmalloc((size_t)d->world * sizeof *displs);
    }
    MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, root, MPI_COMM_WORLD);
    if (d->rank == root) {
        size_t total = 0;
        for (int r = 0; r < d->world; r++) {
            SSD_ASSERT(total + (size_t)counts[r] <= INT_MAX, "gather_bytes: over 2 GiB in all");
            displs[r] = (int)total;
            total += (size_t)counts[r];
        }
        all = ssd_xmalloc(total ? total : 1);
        *out_bytes = total;
    }
    MPI_Gatherv(buf, mine, MPI_BYTE, all, counts, displs, MPI_BYTE, root, MPI_COMM_WORLD);
    *out = all;
    free(counts);
    free(displs);
#endif
}

void ssd_dist_barrier(ssd_dist *d) {
#ifdef SSD_HAVE_MPI
    if (d && d->world > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
    (void)d;
}

_Noreturn void ssd_dist_abort(ssd_dist *d, int code) {
    fflush(stdout);
    fflush(stderr);
#ifdef SSD_HAVE_MPI
    if (d && d->mpi) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)d;
    exit(code);
}
