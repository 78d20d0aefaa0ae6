/* Data parallelism across processes (DESIGN.md sections 1-2): who this process is among the
 * ranks of a run, and the few collectives the trainer needs.
 *
 * - Launched by mpirun (OpenMPI's OMPI_COMM_WORLD_SIZE, or PMI_SIZE / PMIX_RANK of other
 *   launchers, in the environment): MPI is initialised and rank/world come from
 *   MPI_COMM_WORLD. Otherwise, and always in a build without MPI, a single-process group
 *   (rank 0 of 1) whose collectives are no-ops; a build without MPI started by mpirun is an
 *   error rather than N independent runs writing the same files.
 * - Every collective must be called by every rank in the same order (MPI's rule). Buffers are
 *   host memory. MPI failures are fatal (MPI_ERRORS_ARE_FATAL: the library aborts the job).
 * - ssd_dist_abort ends the whole job from any rank (MPI_Abort), so no rank waits forever in a
 *   collective for a rank that failed. ssd_dist_init installs it as the log's abort hook, so a
 *   failed SSD_ASSERT on one rank takes every rank down.
 *
 * The group is process-wide (MPI allows one initialisation per process): create it once in
 * main's command and pass it down. */
#ifndef SSD_DIST_DIST_H
#define SSD_DIST_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

typedef struct ssd_dist ssd_dist;

/* True when this process was started by an MPI launcher (whatever this build supports). */
bool ssd_dist_launched(void);

/* Joins the run's process group (see above); *out is freed by ssd_dist_finalize. */
ssd_status ssd_dist_init(ssd_dist **out, ssd_error *err);
/* Leaves the group (MPI_Finalize after a barrier); NULL is fine. */
void ssd_dist_finalize(ssd_dist *d);

int ssd_dist_rank(const ssd_dist *d);       /* 0 .. world-1; 0 for NULL */
int ssd_dist_world(const ssd_dist *d);      /* >= 1; 1 for NULL */
int ssd_dist_local_rank(const ssd_dist *d); /* rank among the processes of this machine */
int ssd_dist_local_size(const ssd_dist *d); /* processes of the run on this machine */
/* "MPI (Open MPI v4.1.4)" or "single process" (static string). */
const char *ssd_dist_kind(const ssd_dist *d);

/* In-place element-wise sum over all ranks (every rank gets the result). */
void ssd_dist_allreduce_sum_f32(ssd_dist *d, float *buf, size_t n);
void ssd_dist_allreduce_sum_f64(ssd_dist *d, double *buf, size_t n);
/* In-place maximum of int64 values over all ranks. */
void ssd_dist_allreduce_max_i64(ssd_dist *d, int64_t *buf, size_t n);

/* The gradient all-reduce (and the BN running-statistics average): buf (n floats) becomes the
 * MEAN over ranks, the way DDP averages.
 * The buffer is reduced in buckets of at most bucket_bytes, from its end to its start (the
 * parameter table runs from the image to the heads, so that is reverse layer order), all buckets
 * in flight at once (non-blocking) and waited for together. Returns the bytes each rank
 * contributed (n * 4; 0 for a single process). */
size_t ssd_dist_allreduce_mean_f32(ssd_dist *d, float *buf, size_t n, size_t bucket_bytes);

/* Copies `bytes` from root's buf into every other rank's buf (any size). */
void ssd_dist_bcast(ssd_dist *d, void *buf, size_t bytes, int root);

/* Gathers every rank's `bytes` bytes at `root`: there *out becomes a malloc'd concatenation in
 * rank order (*out_bytes its size; the caller frees it); elsewhere *out = NULL, *out_bytes = 0. */
void ssd_dist_gather_bytes(ssd_dist *d, const void *buf, size_t bytes, int root, void **out,
                           size_t *out_bytes);

void ssd_dist_barrier(ssd_dist *d);

/* Ends the whole job with exit code `code` (MPI_Abort when distributed, exit otherwise). */
_Noreturn void ssd_dist_abort(ssd_dist *d, int code);

#endif
