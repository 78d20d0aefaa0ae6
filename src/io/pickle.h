/* The subset of Python's pickle that PyTorch checkpoints use (spec/torch-checkpoint-format.md
 * section 4), as a bounded stack machine. Internal to src/io/pth*.c.
 *
 * What it understands: protocols 0-5 as far as a state_dict needs them: the binary opcodes
 * torch 1.13 writes (protocol 2, and 4/5 with FRAME, STACK_GLOBAL, MEMOIZE), the string
 * opcodes Python 2 wrote (STRING, BINSTRING, SHORT_BINSTRING, UNICODE, BINUNICODE), the text
 * integer/put/get opcodes of protocol 0, and persistent ids (BINPERSID, PERSID). Objects are
 * not created by calling Python: REDUCE emulates exactly the callables a state_dict pickle
 * names (collections.OrderedDict in both its Python-3 `OrderedDict()` + SETITEMS form and its
 * Python-2 `OrderedDict([[k, v], ...])` form, torch._utils._rebuild_tensor_v2,
 * _rebuild_tensor and _rebuild_parameter); GLOBAL accepts only those plus the torch storage
 * and tensor type names. Anything else (another global, an unknown opcode, a malformed
 * operand, a truncated stream, a stack or memo misuse) is an SSD_ERR_FORMAT error that names
 * the file, the part of it ("member 'archive/data.pkl'") and the byte offset of the opcode.
 *
 * Bounds: the machine never recurses; the stack, the mark stack and the memo grow on demand
 * but are limited (every opcode creates at most one value, so values <= pickle bytes; memo
 * indices must be < max(65536, pickle bytes); marks nest at most PK_MAX_MARKS deep). Values
 * live in a pk_heap that the caller frees once, which makes shared and cyclic references
 * (memo) safe to free. */
#ifndef SSD_IO_PICKLE_H
#define SSD_IO_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "core/tensor.h"
#include "io/pth.h"

#define PK_MAX_MARKS 4096

typedef enum pk_type {
    PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_TUPLE, PK_LIST, PK_DICT, PK_GLOBAL,
    PK_STORAGE, PK_TENSOR
} pk_type;

typedef enum pk_global {
    PKG_ORDERED_DICT,
    PKG_REBUILD_TENSOR_V2,
    PKG_REBUILD_TENSOR,
    PKG_REBUILD_PARAMETER,
    PKG_STORAGE_TYPE, /* torch[.cuda].<X>Storage; dtype in pk_value.dtype */
    PKG_TENSOR_TYPE   /* torch[.cuda].<X>Tensor (tar container's tensor table) */
} pk_global;

/* A strided view of a storage (what _rebuild_tensor_v2 returns). */
typedef struct pk_tensor {
    int storage; /* index into the container's storage table */
    ssd_pth_dtype dtype;
    int ndim;
    int64_t offset;              /* elements */
    int64_t size[SSD_MAX_DIMS];  /* (ndim) */
    int64_t stride[SSD_MAX_DIMS];/* (ndim) elements */
} pk_tensor;

typedef struct pk_value pk_value;
struct pk_value {
    pk_type type;
    int64_t i;      /* INT, BOOL; STORAGE: storage index; GLOBAL: pk_global */
    double f;       /* FLOAT */
    ssd_pth_dtype dtype; /* GLOBAL storage/tensor type, STORAGE */
    char *s;        /* STR: bytes + NUL (UTF-8 for unicode opcodes, raw for Python-2 str) */
    size_t len;
    pk_value **items; /* TUPLE, LIST; DICT: key0, value0, key1, value1, ... */
    size_t n, cap;    /* items used (DICT: 2 x pairs) */
    pk_tensor *t;     /* TENSOR */
};

typedef struct pk_heap {
    pk_value **all;
    size_t n, cap;
} pk_heap;

void pk_heap_free(pk_heap *h);
/* A new value of `type` owned by the heap (zeroed). */
pk_value *pk_new(pk_heap *h, pk_type type);

/* Where a pickle lives, for messages: "<file>: <part>, byte <base + offset>: ...". */
typedef struct pk_where {
    const char *file;
    const char *part;
    size_t base;
} pk_where;

/* The container resolves persistent ids (a tuple ('storage', type, key, location, numel[,
 * view]) or a decimal string) into PK_STORAGE / PK_TENSOR values. Return SSD_OK and *out, or
 * fail with a message (the machine prefixes nothing: use pk_fail with the given position). */
typedef ssd_status (*pk_persistent_fn)(void *ctx, pk_heap *h, const pk_value *pid,
                                       const pk_where *w, size_t pos, pk_value **out,
                                       ssd_error *err);

/* Runs one pickle starting at buf[*pos] (len bytes in buf) up to and including STOP; *pos
 * is advanced past STOP and *out is the result. persistent may be NULL (then persistent ids
 * are an error). */
ssd_status pk_load(pk_heap *h, const uint8_t *buf, size_t len, size_t *pos, const pk_where *w,
                   pk_persistent_fn persistent, void *ctx, pk_value **out, ssd_error *err);

/* SSD_ERR_FORMAT "<file>: <part>, byte <base+pos>: <message>". */
ssd_status pk_fail(ssd_error *err, const pk_where *w, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Helpers for the containers. */
const char *pk_type_name(pk_type t);
int pk_str_is(const pk_value *v, const char *s); /* 1 if v is a STR equal to s */

#endif
