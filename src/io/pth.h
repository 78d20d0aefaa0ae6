/* PyTorch checkpoints (`.pth`) holding a state_dict, read without Python
 * (spec/torch-checkpoint-format.md; docs/pth.md).
 *
 * The container is detected by content, never by name (spec section 0):
 * - zip (torch >= 1.6): "PK\3\4" at byte 0; members `<top>/data.pkl`, `<top>/data/<key>`,
 *   `<top>/byteorder` (any top folder name);
 * - tar (PyTorch <= 0.1.10, e.g. torchvision's resnet34-333f7ec4.pth): "ustar" at byte 257;
 *   members sys_info, pickle, tensors, storages;
 * - magic-number legacy (0.1.11 .. 1.5, or `_use_new_zipfile_serialization=False`): the
 *   pickled magic 0x1950a86a20f9469cfc6c, then the protocol version, sys_info, the object,
 *   the storage keys and the raw storages.
 * zip and tar are unpacked with libarchive; the pickle subset is ours (io/pickle.h).
 *
 * The object may be a dict or OrderedDict of tensors (a state_dict); nested dicts are
 * flattened with '.' ({"model": {"w": t}} gives "model.w"); values that are not tensors or
 * dicts (ints, strings, lists) are skipped and counted. Every tensor is copied out contiguous
 * (row-major), little-endian, whatever its storage offset, strides or storage sharing.
 *
 * Errors: every problem with the input (unknown opcode or global, truncated file, wrong byte
 * count, a view outside its storage, a duplicate name) is SSD_ERR_FORMAT with a message that
 * names the file, the part of it (container member or pickle) and the byte offset; a missing
 * or unreadable file is SSD_ERR_IO. Nothing aborts on bad input. Limits: at most
 * SSD_MAX_DIMS dims per tensor, names below SSD_PTH_MAX_NAME bytes, and the tensors together
 * at most 8 x the input size + 64 MiB (stride-0 expansions beyond that are refused). */
#ifndef SSD_IO_PTH_H
#define SSD_IO_PTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"

#define SSD_PTH_MAX_NAME 256

/* Element types of torch storages (spec section 5.2). */
typedef enum ssd_pth_dtype {
    SSD_PTH_F32, SSD_PTH_F64, SSD_PTH_F16, SSD_PTH_BF16, SSD_PTH_I64, SSD_PTH_I32, SSD_PTH_I16,
    SSD_PTH_I8, SSD_PTH_U8, SSD_PTH_BOOL, SSD_PTH_C64, SSD_PTH_C128, SSD_PTH_NDTYPES
} ssd_pth_dtype;
size_t ssd_pth_dtype_size(ssd_pth_dtype dt);
const char *ssd_pth_dtype_name(ssd_pth_dtype dt); /* "f32", "i64", ... */

typedef enum ssd_pth_container { SSD_PTH_ZIP, SSD_PTH_TAR, SSD_PTH_LEGACY } ssd_pth_container;
const char *ssd_pth_container_name(ssd_pth_container c); /* "zip", "tar", "legacy" */

typedef struct ssd_pth_tensor {
    char *name;           /* state_dict key */
    ssd_pth_dtype dtype;
    int ndim;
    int64_t shape[SSD_MAX_DIMS];
    int64_t numel;
    void *data;           /* numel elements, contiguous, little-endian, 64-byte aligned */
    size_t nbytes;
} ssd_pth_tensor;

typedef struct ssd_pth_file ssd_pth_file;

/* Reads PATH. On failure *out is NULL and nothing is leaked. */
ssd_status ssd_pth_read(const char *path, ssd_pth_file **out, ssd_error *err);
/* The same from memory; `name` stands for the file in messages. buf is not kept. */
ssd_status ssd_pth_read_mem(const void *buf, size_t len, const char *name, ssd_pth_file **out,
                            ssd_error *err);
void ssd_pth_free(ssd_pth_file *f); /* NULL is fine */

ssd_pth_container ssd_pth_kind(const ssd_pth_file *f);
int ssd_pth_count(const ssd_pth_file *f); /* tensors, in the state_dict's order */
const ssd_pth_tensor *ssd_pth_at(const ssd_pth_file *f, int i);
const ssd_pth_tensor *ssd_pth_get(const ssd_pth_file *f, const char *name); /* or NULL */
int ssd_pth_skipped(const ssd_pth_file *f); /* non-tensor values left out */

/* A host view (owns = false) of t as an ssd_tensor, for the dtypes the core has (f32, f64,
 * f16, bf16, i64); SSD_ERR_UNSUPPORTED naming the tensor otherwise, or when the name does not
 * fit ssd_tensor.name. */
ssd_status ssd_pth_as_tensor(const ssd_pth_tensor *t, ssd_tensor *view, ssd_error *err);

#endif
