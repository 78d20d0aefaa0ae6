/* Where the cuda backend's GPU time goes (SSD_CUDA_PROFILE=1): a chain of CUDA events on the
 * backend's one stream. Each mark records an event and charges the GPU time since the previous
 * mark to its label, so consecutive marks split an op into parts (conversions, the cuDNN call).
 * After every synchronisation the chain restarts, so time the GPU spent waiting for the host at
 * a sync is charged to nobody; idle time between launches (the host falling behind) is charged
 * to the next label, which is what a profile of a launch-bound step should show. */
#ifndef SSD_BACKEND_CUDA_PROF_H
#define SSD_BACKEND_CUDA_PROF_H

#include <cuda_runtime_api.h>
#include <stdio.h>

typedef struct cu_prof cu_prof;

/* NULL (every call below then a no-op) unless SSD_CUDA_PROFILE is set and not "0". */
cu_prof *cu_prof_create(cudaStream_t stream);
void cu_prof_destroy(cu_prof *p);
/* Charges the GPU time since the previous mark to the label (printf format). */
void cu_prof_mark(cu_prof *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* After the stream was synchronised: collect and start a new chain. */
void cu_prof_restart(cu_prof *p);
void cu_prof_reset(cu_prof *p);
/* The table per `steps` steps: each label's milliseconds and calls, largest first, and the
 * totals per category (the label's first two words). */
void cu_prof_report(cu_prof *p, FILE *f, int steps);

#endif
