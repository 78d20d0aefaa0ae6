/* Thread pinning (ssd train/bench --pin-threads): each rank's OpenMP threads on CPUs of their
 * own, one thread per CPU, so the scheduler never moves a compute thread or puts two on one core.
 *
 * A rank's CPUs: the process's affinity mask when the launcher bound it to fewer CPUs than the
 * machine has online (mpirun --bind-to ...), else contiguous block `local_rank` of `local_size`
 * blocks of the mask (the first ones one CPU larger when it does not divide). OpenMP thread t is
 * pinned to the share's CPU t; threads the loader starts are bound to the whole share. */
#ifndef SSD_CORE_PIN_H
#define SSD_CORE_PIN_H

#include <stddef.h>

#define SSD_CPUS_MAX 1024

typedef struct ssd_cpus {
    int n;
    int cpu[SSD_CPUS_MAX]; /* ascending */
} ssd_cpus;

/* The CPUs the calling thread may run on; -1 when the mask cannot be read. */
int ssd_cpus_allowed(ssd_cpus *out);
/* Block `local_rank` of `local_size` contiguous blocks of `all` (sizes differ by at most one,
 * the larger first); local_size > all->n gives the ranks one CPU each, round robin. */
void ssd_cpus_share(const ssd_cpus *all, int local_rank, int local_size, ssd_cpus *out);
/* The CPUs of this rank (see the file comment), from the current mask and the online count. */
int ssd_cpus_of_rank(int local_rank, int local_size, ssd_cpus *out);
/* Sets OpenMP's thread count to `threads` (<= 0: cpus->n) and pins thread t of the team to
 * cpus->cpu[t % n], the calling (main) thread being thread 0. 0, or -1 with *why. */
int ssd_pin_omp(const ssd_cpus *cpus, int threads, char *why, size_t len);
/* Binds the calling thread to all of `cpus` (loader workers); 0 or -1. */
int ssd_bind_thread(const ssd_cpus *cpus);
/* --pin-threads for a rank: its CPUs (ssd_cpus_of_rank) into *cpus and its OpenMP threads
 * pinned to them (as many threads as CPUs unless OMP_NUM_THREADS says). Returns 0 with *msg
 * saying where they went; 1, nothing done, when OMP_PROC_BIND or OMP_PLACES is set (OpenMP binds
 * then) with *msg saying so; -1 with *msg on failure. */
int ssd_pin_rank(int local_rank, int local_size, ssd_cpus *cpus, char *msg, size_t len);
/* "0-3" / "0,2,4-7" for messages. */
void ssd_cpus_format(const ssd_cpus *c, char *buf, size_t len);

#endif
