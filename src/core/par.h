/* A parallel loop that runs on the calling thread alone below a size threshold.
 *
 * `#pragma omp parallel for if (cond)` is not that: with cond false it still opens a parallel
 * region of one thread, and libgomp allocates (and frees) a team for every one-thread region,
 * because it keeps only the last team of two or more threads for reuse. The training step must
 * not allocate (tests/train/test_step_alloc.c), so small loops take a plain loop instead, and so
 * does every loop when OpenMP has one thread to give. */
#ifndef SSD_CORE_PAR_H
#define SSD_CORE_PAR_H

#include <omp.h>
#include <stdbool.h>
#include <stdint.h>

/* Whether a loop worth `cond` should open a parallel region at all. */
static inline bool ssd_par_worth(bool cond) { return cond && omp_get_max_threads() > 1; }

/* for (int64_t I = 0; I < N; I++) BODY, statically split across the team when COND holds and
 * there is more than one thread, serially otherwise. */
#define SSD_PARALLEL_FOR_IF(COND, I, N, ...)                                                    \
    do {                                                                                        \
        const int64_t ssd_par_n_ = (N);                                                         \
        if (ssd_par_worth(COND)) {                                                              \
            _Pragma("omp parallel for schedule(static)")                                        \
            for (int64_t I = 0; I < ssd_par_n_; I++) { __VA_ARGS__ }                            \
        } else {                                                                                \
            for (int64_t I = 0; I < ssd_par_n_; I++) { __VA_ARGS__ }                            \
        }                                                                                       \
    } while (0)

/* The same, always worth a team (when there is more than one thread). */
#define SSD_PARALLEL_FOR(I, N, ...) SSD_PARALLEL_FOR_IF(true, I, N, __VA_ARGS__)

#endif
