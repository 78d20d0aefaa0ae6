/* Memory functions shared by the host backends (ref, cpu): 64-byte aligned malloc, memcpy. */
#ifndef SSD_BACKEND_HOST_H
#define SSD_BACKEND_HOST_H

#include "backend/backend.h"

void *ssd_host_alloc(ssd_backend *be, size_t bytes);
void ssd_host_free(ssd_backend *be, void *p);
void ssd_host_copy(ssd_backend *be, void *dst, const void *src, size_t bytes);
void ssd_host_sync(ssd_backend *be);

#endif
