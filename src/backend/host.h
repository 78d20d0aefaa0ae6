/* Memory functions shared by the host backends (ref, cpu): 64-byte aligned malloc, memcpy. */
#ifndef SSD_BACKEND_HOST_H
#define SSD_BACKEND_HOST_H

#include "backend/backend.h"

void *ssd_host_alloc(ssd_backend *be, size_t bytes);
void ssd_host_free(ssd_backend *be, void *p);
void ssd_host_copy(ssd_backend *be, void *dst, const void *src, size_t bytes);
void ssd_host_sync(ssd_backend *be);
/* copy_rows for host memory (memcpy per row, rows in parallel when large). */
void ssd_host_copy_rows(ssd_backend *be, ssd_tensor *dst, int64_t dst_off, int64_t dst_ld,
                        const ssd_tensor *src, int64_t src_off, int64_t src_ld, int64_t rows,
                        int64_t cols);

#endif
