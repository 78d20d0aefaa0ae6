#include "core/tensor.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

size_t ssd_dtype_size(ssd_dtype dt) {
    switch (dt) {
    case SSD_F32: return 4;
    case SSD_BF16: return 2;
    case SSD_F64: return 8;
    case SSD_I64: return 8;
    case SSD_F16: return 2;
    }
    SSD_ASSERT(0, "bad dtype %d", (int)dt);
}

const char *ssd_dtype_name(ssd_dtype dt) {
    switch (dt) {
    case SSD_F32: return "f32";
    case SSD_BF16: return "bf16";
    case SSD_F64: return "f64";
    case SSD_I64: return "i64";
    case SSD_F16: return "f16";
    }
    return "?";
}

const char *ssd_layout_name(ssd_layout l) {
    switch (l) {
    case SSD_LAYOUT_ROWMAJOR: return "row-major";
    case SSD_LAYOUT_NHWC: return "channels-last";
    case SSD_LAYOUT_NCHW16C: return "nChw16c";
    }
    return "?";
}

bool ssd_layout_holds(ssd_layout l, int ndim, const int64_t *shape) {
    switch (l) {
    case SSD_LAYOUT_NHWC: return ndim == 4;
    case SSD_LAYOUT_NCHW16C: return ndim == 4 && shape[1] % 16 == 0;
    case SSD_LAYOUT_ROWMAJOR: break;
    }
    return true;
}

int64_t ssd_layout_offset(ssd_layout l, const int64_t *shape, int64_t n, int64_t c, int64_t h,
                          int64_t w) {
    const int64_t C = shape[1], H = shape[2], W = shape[3];
    switch (l) {
    case SSD_LAYOUT_NHWC: return ((n * H + h) * W + w) * C + c;
    case SSD_LAYOUT_NCHW16C: return (((n * (C / 16) + c / 16) * H + h) * W + w) * 16 + c % 16;
    case SSD_LAYOUT_ROWMAJOR: break;
    }
    return ((n * C + c) * H + h) * W + w;
}

bool ssd_dtype_parse(const char *s, ssd_dtype *out) {
    static const struct { const char *name; ssd_dtype dt; } names[] = {
        {"f32", SSD_F32}, {"F32", SSD_F32}, {"bf16", SSD_BF16}, {"BF16", SSD_BF16},
        {"f64", SSD_F64}, {"F64", SSD_F64}, {"i64", SSD_I64},   {"I64", SSD_I64},
        {"f16", SSD_F16}, {"F16", SSD_F16},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].dt;
            return true;
        }
    return false;
}

int64_t ssd_tensor_numel(const ssd_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t ssd_tensor_nbytes(const ssd_tensor *t) {
    return (size_t)ssd_tensor_numel(t) * ssd_dtype_size(t->dtype);
}

bool ssd_tensor_same_shape(const ssd_tensor *a, const ssd_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

char *ssd_shape_str(const ssd_tensor *t, char *buf, size_t len) {
    size_t used = 0;
    int n = snprintf(buf, len, "(");
    used = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < t->ndim && used < len; i++) {
        n = snprintf(buf + used, len - used, i ? ",%lld" : "%lld", (long long)t->shape[i]);
        if (n > 0) used += (size_t)n;
    }
    if (used < len) snprintf(buf + used, len - used, ")");
    return buf;
}

void ssd_tensor_set_name(ssd_tensor *t, const char *name) {
    if (!name) name = "";
    snprintf(t->name, sizeof t->name, "%s", name);
}

ssd_tensor ssd_tensor_view(void *data, ssd_dtype dt, int ndim, const int64_t *shape,
                           const char *name) {
    SSD_ASSERT(ndim >= 0 && ndim <= SSD_MAX_DIMS, "tensor rank %d", ndim);
    ssd_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.dtype = dt;
    t.device.kind = SSD_DEVICE_HOST;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        SSD_ASSERT(shape[i] >= 0, "negative dimension %lld", (long long)shape[i]);
        t.shape[i] = shape[i];
    }
    ssd_tensor_set_name(&t, name);
    return t;
}

ssd_tensor ssd_tensor_alloc_host(ssd_dtype dt, int ndim, const int64_t *shape, const char *name) {
    ssd_tensor t = ssd_tensor_view(NULL, dt, ndim, shape, name);
    size_t bytes = ssd_tensor_nbytes(&t);
    t.data = ssd_aligned_alloc(bytes);
    memset(t.data, 0, bytes);
    t.owns = true;
    return t;
}

ssd_tensor ssd_tensor_alloc_host4(ssd_dtype dt, int64_t n, int64_t c, int64_t h, int64_t w,
                                  const char *name) {
    int64_t shape[4] = {n, c, h, w};
    return ssd_tensor_alloc_host(dt, 4, shape, name);
}

ssd_tensor ssd_tensor_alloc_host1(ssd_dtype dt, int64_t n, const char *name) {
    return ssd_tensor_alloc_host(dt, 1, &n, name);
}

void ssd_tensor_free(ssd_tensor *t) {
    if (t->owns) {
        SSD_ASSERT(t->device.kind == SSD_DEVICE_HOST,
                   "ssd_tensor_free on a device tensor '%s': free it through its backend", t->name);
        ssd_aligned_free(t->data);
    }
    t->data = NULL;
    t->owns = false;
}

float ssd_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu, u;
    if (e == 0x1f) {
        u = sign | 0x7f800000u | (m << 13); /* inf / NaN */
    } else if (e) {
        u = sign | ((e + 112) << 23) | (m << 13);
    } else if (!m) {
        u = sign;
    } else { /* subnormal: normalise */
        e = 113;
        while (!(m & 0x400u)) m <<= 1, e--;
        u = sign | (e << 23) | ((m & 0x3ffu) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t ssd_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: inf */
    if (a < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (a < 0x33000000u) return sign; /* < half the smallest subnormal */
        uint32_t e = a >> 23, m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u); /* round to nearest even at bit 13 */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

double ssd_tensor_get(const ssd_tensor *t, int64_t i) {
    switch (t->dtype) {
    case SSD_F32: return ((const float *)t->data)[i];
    case SSD_F64: return ((const double *)t->data)[i];
    case SSD_BF16: return ssd_bf16_to_f32(((const uint16_t *)t->data)[i]);
    case SSD_I64: return (double)((const int64_t *)t->data)[i];
    case SSD_F16: return ssd_f16_to_f32(((const uint16_t *)t->data)[i]);
    }
    SSD_ASSERT(0, "bad dtype");
}

void ssd_tensor_set(ssd_tensor *t, int64_t i, double v) {
    switch (t->dtype) {
    case SSD_F32: ((float *)t->data)[i] = (float)v; return;
    case SSD_F64: ((double *)t->data)[i] = v; return;
    case SSD_BF16: ((uint16_t *)t->data)[i] = ssd_f32_to_bf16((float)v); return;
    case SSD_I64: ((int64_t *)t->data)[i] = (int64_t)v; return;
    case SSD_F16: ((uint16_t *)t->data)[i] = ssd_f32_to_f16((float)v); return;
    }
    SSD_ASSERT(0, "bad dtype");
}
