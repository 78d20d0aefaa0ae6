/* The tensor type: a typed, shaped view of memory on one device. A tensor either owns its
 * memory (allocated by a backend or ssd_tensor_alloc_host) or is a view of someone else's.
 * Layout is dense row-major (NCHW for images) unless `layout` says channels-last; the shape is
 * the logical one, (N,C,H,W), either way. */
#ifndef SSD_CORE_TENSOR_H
#define SSD_CORE_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum ssd_dtype { SSD_F32 = 0, SSD_BF16 = 1, SSD_F64 = 2, SSD_I64 = 3, SSD_F16 = 4 } ssd_dtype;

typedef enum ssd_device_kind { SSD_DEVICE_HOST = 0, SSD_DEVICE_CUDA = 1 } ssd_device_kind;

typedef struct ssd_device {
    ssd_device_kind kind;
    int index; /* GPU ordinal; 0 for host */
} ssd_device;

#define SSD_MAX_DIMS 6
#define SSD_TENSOR_NAME_LEN 96

/* How a tensor's elements lie in memory. ROWMAJOR (0, what every constructor gives): dense
 * row-major in the order of `shape`. The others are 4-d activation layouts a backend may ask
 * for (ssd_backend.act_layout), of logical shape (N,C,H,W):
 * - NHWC (channels-last): element (n,c,h,w) at ((n*H + h)*W + w)*C + c;
 * - NCHW16C (oneDNN's nChw16c, blocks of 16 channels; C a multiple of 16, so no padding):
 *   element (n,c,h,w) at (((n*C/16 + c/16)*H + h)*W + w)*16 + c%16. */
typedef enum ssd_layout {
    SSD_LAYOUT_ROWMAJOR = 0,
    SSD_LAYOUT_NHWC = 1,
    SSD_LAYOUT_NCHW16C = 2
} ssd_layout;

/* "row-major", "channels-last", "nChw16c" */
const char *ssd_layout_name(ssd_layout l);
/* Whether layout l can hold a tensor of this shape: row-major any; NHWC 4-d; NCHW16C 4-d with a
 * multiple of 16 channels. */
bool ssd_layout_holds(ssd_layout l, int ndim, const int64_t *shape);
/* The offset of logical element (n,c,h,w) of a 4-d tensor of shape `shape` in layout l. */
int64_t ssd_layout_offset(ssd_layout l, const int64_t *shape, int64_t n, int64_t c, int64_t h,
                          int64_t w);

typedef struct ssd_tensor {
    void *data;
    ssd_dtype dtype;
    ssd_layout layout;
    ssd_device device;
    int ndim;
    int64_t shape[SSD_MAX_DIMS];
    char name[SSD_TENSOR_NAME_LEN]; /* e.g. "model.layer1.0.weight"; may be empty */
    bool owns;                      /* data freed by ssd_tensor_free (host) / backend */
} ssd_tensor;

size_t ssd_dtype_size(ssd_dtype dt);
const char *ssd_dtype_name(ssd_dtype dt); /* "f32", "bf16", "f64", "i64", "f16" */
/* Parses the names above and safetensors' ("F32", "BF16", "F64", "I64", "F16"); false if
 * unknown. */
bool ssd_dtype_parse(const char *s, ssd_dtype *out);

int64_t ssd_tensor_numel(const ssd_tensor *t);
size_t ssd_tensor_nbytes(const ssd_tensor *t);
bool ssd_tensor_same_shape(const ssd_tensor *a, const ssd_tensor *b);
/* "(8,256,38,38)" into buf; returns buf. */
char *ssd_shape_str(const ssd_tensor *t, char *buf, size_t len);

/* A view (owns = false) of existing host memory. */
ssd_tensor ssd_tensor_view(void *data, ssd_dtype dt, int ndim, const int64_t *shape,
                           const char *name);
/* Host tensor, 64-byte aligned, zero-filled; free with ssd_tensor_free. */
ssd_tensor ssd_tensor_alloc_host(ssd_dtype dt, int ndim, const int64_t *shape, const char *name);
void ssd_tensor_free(ssd_tensor *t);
void ssd_tensor_set_name(ssd_tensor *t, const char *name);

/* Convenience shape builders. */
ssd_tensor ssd_tensor_alloc_host4(ssd_dtype dt, int64_t n, int64_t c, int64_t h, int64_t w,
                                  const char *name);
ssd_tensor ssd_tensor_alloc_host1(ssd_dtype dt, int64_t n, const char *name);

/* bfloat16 <-> float: round to nearest even; NaN stays NaN (quiet, sign kept). Inline and
 * branch-free (a select, not an early return), so elementwise loops over them vectorise (the
 * cpu backend's bf16 math rounds whole tensors with them). */
static inline uint16_t ssd_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint16_t rounded = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16); /* half even */
    const uint16_t quiet = (uint16_t)((u >> 16) | 0x0040u);
    return (u & 0x7fffffffu) > 0x7f800000u ? quiet : rounded; /* NaN: all-ones exponent, m != 0 */
}
static inline float ssd_bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* IEEE half <-> float: round to nearest even, overflow to infinity, subnormals kept; NaN stays
 * NaN. f16 tensors are storage only (checkpoint conversion); no backend computes in f16. */
uint16_t ssd_f32_to_f16(float f);
float ssd_f16_to_f32(uint16_t h);

/* Element access on host tensors of floating types, converting to/from double. */
double ssd_tensor_get(const ssd_tensor *t, int64_t i);
void ssd_tensor_set(ssd_tensor *t, int64_t i, double v);

#endif
