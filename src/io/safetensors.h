/* The safetensors format (https://github.com/huggingface/safetensors), read and written:
 *
 *   [8 bytes: N, little-endian u64] [N bytes: JSON header] [data section]
 *
 * The header is one JSON object: {"<name>": {"dtype": "F32", "shape": [2,3],
 * "data_offsets": [begin, end]}, ..., "__metadata__": {"<key>": "<string>", ...}}, with offsets
 * relative to the start of the data section. The tensors must cover the data section exactly:
 * no overlap, no hole, no trailing bytes. Dtypes handled here: F32, BF16, F64, I64, F16 (the data is
 * little-endian; so is every host we build for).
 *
 * Reading loads the whole file; the tensors are host views (owns = false) into memory owned by
 * the ssd_st_file, valid until ssd_st_free. Every malformed input gives SSD_ERR_FORMAT (or
 * SSD_ERR_UNSUPPORTED for a valid safetensors dtype we do not handle, SSD_ERR_IO for a file we
 * cannot read) with a message naming the file and the problem; nothing aborts.
 *
 * Writing is atomic (DESIGN.md section 5): PATH.tmp.<pid>, fflush + fsync, rename over PATH,
 * fsync of the directory; the temp file is removed on failure, so PATH is either the old file
 * or the complete new one. The header lists the tensors in the order given (metadata first),
 * is deterministic for a given input, and is padded with spaces to a multiple of 8 bytes. */
#ifndef SSD_IO_SAFETENSORS_H
#define SSD_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"

/* Headers larger than this are rejected as corrupt (the reference implementation's limit). */
#define SSD_ST_MAX_HEADER 100000000ull

typedef struct ssd_st_file ssd_st_file;

/* Loads and validates PATH. On failure *out is NULL and nothing is leaked. */
ssd_status ssd_st_read(const char *path, ssd_st_file **out, ssd_error *err);
void ssd_st_free(ssd_st_file *f); /* NULL is fine */

/* Tensors in header order (the order the writer gave them). */
int ssd_st_count(const ssd_st_file *f);
const ssd_tensor *ssd_st_at(const ssd_st_file *f, int i);
/* The full name of tensor i. ssd_tensor.name holds at most SSD_TENSOR_NAME_LEN-1 bytes; a
 * longer name is truncated there (ssd_st_get still finds the tensor by its full name). */
const char *ssd_st_name(const ssd_st_file *f, int i);
/* The tensor called NAME, or NULL. */
const ssd_tensor *ssd_st_get(const ssd_st_file *f, const char *name);

/* "__metadata__" entries: the value of KEY, or NULL. */
const char *ssd_st_meta(const ssd_st_file *f, const char *key);
int ssd_st_meta_count(const ssd_st_file *f);
const char *ssd_st_meta_key(const ssd_st_file *f, int i);
const char *ssd_st_meta_value(const ssd_st_file *f, int i);

/* Writes n host tensors (names non-empty and distinct, not "__metadata__"), no metadata.
 * Bad arguments give SSD_ERR_ARG, write failures SSD_ERR_IO. */
ssd_status ssd_st_write(const char *path, const ssd_tensor *const *tensors, int n, ssd_error *err);
/* As ssd_st_write, plus n_meta "__metadata__" string pairs meta_keys[i] -> meta_values[i]
 * (keys distinct). n_meta == 0 writes no "__metadata__" entry at all. */
ssd_status ssd_st_write_meta(const char *path, const ssd_tensor *const *tensors, int n,
                             const char *const *meta_keys, const char *const *meta_values,
                             int n_meta, ssd_error *err);

#endif
