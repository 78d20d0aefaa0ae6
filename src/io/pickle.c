/* The pickle subset of PyTorch checkpoints: see pickle.h. */
#include "io/pickle.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

/* ---- dtypes ---- */

static const struct {
    const char *storage; /* torch storage class name */
    const char *tensor;  /* torch tensor class name (tar container) */
    const char *name;
    size_t size;
} k_dtypes[SSD_PTH_NDTYPES] = {
    [SSD_PTH_F32] = {"FloatStorage", "FloatTensor", "f32", 4},
    [SSD_PTH_F64] = {"DoubleStorage", "DoubleTensor", "f64", 8},
    [SSD_PTH_F16] = {"HalfStorage", "HalfTensor", "f16", 2},
    [SSD_PTH_BF16] = {"BFloat16Storage", "BFloat16Tensor", "bf16", 2},
    [SSD_PTH_I64] = {"LongStorage", "LongTensor", "i64", 8},
    [SSD_PTH_I32] = {"IntStorage", "IntTensor", "i32", 4},
    [SSD_PTH_I16] = {"ShortStorage", "ShortTensor", "i16", 2},
    [SSD_PTH_I8] = {"CharStorage", "CharTensor", "i8", 1},
    [SSD_PTH_U8] = {"ByteStorage", "ByteTensor", "u8", 1},
    [SSD_PTH_BOOL] = {"BoolStorage", "BoolTensor", "bool", 1},
    [SSD_PTH_C64] = {"ComplexFloatStorage", "ComplexFloatTensor", "c64", 8},
    [SSD_PTH_C128] = {"ComplexDoubleStorage", "ComplexDoubleTensor", "c128", 16},
};

size_t ssd_pth_dtype_size(ssd_pth_dtype dt) { return dt < SSD_PTH_NDTYPES ? k_dtypes[dt].size : 0; }
const char *ssd_pth_dtype_name(ssd_pth_dtype dt) { return dt < SSD_PTH_NDTYPES ? k_dtypes[dt].name : "?"; }

const char *pk_type_name(pk_type t) {
    static const char *const names[] = {"None",  "bool",   "int",   "float",   "str",   "tuple",
                                        "list",  "dict",   "global", "storage", "tensor"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

int pk_str_is(const pk_value *v, const char *s) {
    return v && v->type == PK_STR && v->len == strlen(s) && memcmp(v->s, s, v->len) == 0;
}

/* ---- heap ---- */

pk_value *pk_new(pk_heap *h, pk_type type) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 256;
        h->all = ssd_xrealloc(h->all, h->cap * sizeof *h->all);
    }
    pk_value *v = ssd_xcalloc(1, sizeof *v);
    v->type = type;
    h->all[h->n++] = v;
    return v;
}

void pk_heap_free(pk_heap *h) {
    for (size_t i = 0; i < h->n; i++) {
        free(h->all[i]->s);
        free(h->all[i]->items);
        free(h->all[i]->t);
        free(h->all[i]);
    }
    free(h->all);
    memset(h, 0, sizeof *h);
}

static void push_item(pk_value *c, pk_value *v) {
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->items = ssd_xrealloc(c->items, c->cap * sizeof *c->items);
    }
    c->items[c->n++] = v;
}

ssd_status pk_fail(ssd_error *err, const pk_where *w, size_t pos, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ssd_fail(err, SSD_ERR_FORMAT, "%s: %s, byte %zu: %s", w->file, w->part, w->base + pos,
                    msg);
}

/* ---- the machine ---- */

typedef struct pk_vm {
    pk_heap *h;
    const uint8_t *buf;
    size_t len, p, op_pos; /* p: next byte; op_pos: the current opcode (for messages) */
    const pk_where *w;
    ssd_error *err;
    pk_value **stack;
    size_t sp, stack_cap;
    size_t marks[PK_MAX_MARKS];
    int nmarks;
    pk_value **memo;
    size_t memo_cap, memo_count, memo_limit;
    pk_persistent_fn persistent;
    void *ctx;
} pk_vm;

#define FAIL(...) pk_fail(vm->err, vm->w, vm->op_pos, __VA_ARGS__)

static ssd_status need(pk_vm *vm, size_t n, const char *what) {
    if (vm->len - vm->p < n)
        return FAIL("truncated: %s needs %zu bytes, %zu left", what, n, vm->len - vm->p);
    return SSD_OK;
}

static uint64_t rd_le(const uint8_t *b, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | b[i];
    return v;
}

static void push(pk_vm *vm, pk_value *v) {
    if (vm->sp == vm->stack_cap) {
        vm->stack_cap = vm->stack_cap ? 2 * vm->stack_cap : 64;
        vm->stack = ssd_xrealloc(vm->stack, vm->stack_cap * sizeof *vm->stack);
    }
    vm->stack[vm->sp++] = v;
}

static size_t fence(const pk_vm *vm) { return vm->nmarks ? vm->marks[vm->nmarks - 1] : 0; }

/* Pops one value into *v (above the current mark). */
static ssd_status pop(pk_vm *vm, pk_value **v) {
    if (vm->sp <= fence(vm)) return FAIL("stack underflow");
    *v = vm->stack[--vm->sp];
    return SSD_OK;
}

static ssd_status top(pk_vm *vm, pk_value **v) {
    if (vm->sp <= fence(vm)) return FAIL("stack underflow (empty stack)");
    *v = vm->stack[vm->sp - 1];
    return SSD_OK;
}

/* Pops the innermost mark; the items above it are stack[*k .. sp). */
static ssd_status pop_mark(pk_vm *vm, size_t *k) {
    if (vm->nmarks == 0) return FAIL("no MARK on the stack");
    *k = vm->marks[--vm->nmarks];
    return SSD_OK;
}

static ssd_status memo_set(pk_vm *vm, uint64_t idx) {
    pk_value *v;
    ssd_status st = top(vm, &v);
    if (st) return st;
    if (idx >= vm->memo_limit)
        return FAIL("memo index %llu is too large (limit %zu)", (unsigned long long)idx,
                    vm->memo_limit);
    if (idx >= vm->memo_cap) {
        size_t cap = vm->memo_cap ? vm->memo_cap : 256;
        while (cap <= idx) cap *= 2;
        vm->memo = ssd_xrealloc(vm->memo, cap * sizeof *vm->memo);
        memset(vm->memo + vm->memo_cap, 0, (cap - vm->memo_cap) * sizeof *vm->memo);
        vm->memo_cap = cap;
    }
    if (!vm->memo[idx]) vm->memo_count++;
    vm->memo[idx] = v;
    return SSD_OK;
}

static ssd_status memo_get(pk_vm *vm, uint64_t idx) {
    if (idx >= vm->memo_cap || !vm->memo[idx])
        return FAIL("memo entry %llu is not defined", (unsigned long long)idx);
    push(vm, vm->memo[idx]);
    return SSD_OK;
}

/* A text line (protocol 0 operands) without its '\n': [*s, *s + *n). */
static ssd_status line(pk_vm *vm, const char **s, size_t *n) {
    const uint8_t *b = vm->buf + vm->p;
    const uint8_t *nl = memchr(b, '\n', vm->len - vm->p);
    if (!nl) return FAIL("truncated: text operand without a newline");
    *s = (const char *)b;
    *n = (size_t)(nl - b);
    vm->p += *n + 1;
    return SSD_OK;
}

static ssd_status parse_int_text(pk_vm *vm, const char *s, size_t n, int64_t *out) {
    char tmp[32];
    if (n > 0 && s[n - 1] == 'L') n--; /* LONG's Python-2 suffix */
    if (n == 0 || n >= sizeof tmp) return FAIL("bad integer operand");
    memcpy(tmp, s, n);
    tmp[n] = 0;
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (errno || *end) return FAIL("bad or too large integer operand '%s'", tmp);
    *out = v;
    return SSD_OK;
}

static pk_value *new_str(pk_vm *vm, const void *b, size_t n) {
    pk_value *v = pk_new(vm->h, PK_STR);
    v->s = ssd_xmalloc(n + 1);
    if (n) memcpy(v->s, b, n);
    v->s[n] = 0;
    v->len = n;
    return v;
}

/* A string whose length (`width` bytes, little-endian; BINSTRING's is signed) precedes it. */
static ssd_status push_counted_str(pk_vm *vm, int width, bool is_signed, const char *what) {
    ssd_status st = need(vm, (size_t)width, what);
    if (st) return st;
    uint64_t n = rd_le(vm->buf + vm->p, width);
    if (is_signed && (n & 0x80000000u)) return FAIL("%s with a negative length", what);
    vm->p += (size_t)width;
    if ((st = need(vm, n > SIZE_MAX ? SIZE_MAX : (size_t)n, what))) return st;
    push(vm, new_str(vm, vm->buf + vm->p, (size_t)n));
    vm->p += (size_t)n;
    return SSD_OK;
}

static void utf8_put(char *o, size_t *k, uint32_t c) {
    if (c < 0x80) {
        o[(*k)++] = (char)c;
    } else if (c < 0x800) {
        o[(*k)++] = (char)(0xC0 | (c >> 6));
        o[(*k)++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        o[(*k)++] = (char)(0xE0 | (c >> 12));
        o[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (c & 0x3F));
    } else {
        o[(*k)++] = (char)(0xF0 | (c >> 18));
        o[(*k)++] = (char)(0x80 | ((c >> 12) & 0x3F));
        o[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (c & 0x3F));
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool hex_n(const char *s, int n, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
        int h = hexval(s[i]);
        if (h < 0) return false;
        v = v * 16 + (uint32_t)h;
    }
    *out = v;
    return true;
}

/* Pushes the decoded text o[0..k) as a string and frees o. */
static ssd_status push_decoded(pk_vm *vm, char *o, size_t k) {
    push(vm, new_str(vm, o, k));
    free(o);
    return SSD_OK;
}

/* STRING: a Python repr, 'abc' or "abc", with backslash escapes. */
static ssd_status op_string(pk_vm *vm) {
    const char *s;
    size_t n;
    ssd_status st = line(vm, &s, &n);
    if (st) return st;
    if (n < 2 || (s[0] != '\'' && s[0] != '"') || s[n - 1] != s[0])
        return FAIL("STRING operand is not a quoted string");
    char *o = ssd_xmalloc(n);
    size_t k = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        if (s[i] != '\\') {
            o[k++] = s[i];
            continue;
        }
        if (i + 2 >= n) {
            free(o);
            return FAIL("STRING ends in a backslash");
        }
        char c = s[++i];
        uint32_t x;
        switch (c) {
        case '\\': case '\'': case '"': o[k++] = c; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'x':
            if (i + 3 >= n || !hex_n(s + i + 1, 2, &x)) {
                free(o);
                return FAIL("STRING has a bad \\x escape");
            }
            o[k++] = (char)x;
            i += 2;
            break;
        default: free(o); return FAIL("STRING has an unsupported escape '\\%c'", c);
        }
    }
    return push_decoded(vm, o, k);
}

/* UNICODE: raw-unicode-escape (\uXXXX, \UXXXXXXXX; other bytes are Latin-1) -> UTF-8. */
static ssd_status op_unicode(pk_vm *vm) {
    const char *s;
    size_t n;
    ssd_status st = line(vm, &s, &n);
    if (st) return st;
    char *o = ssd_xmalloc(4 * n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = (uint8_t)s[i];
        int w = 0;
        if (c == '\\' && i + 1 < n && (s[i + 1] == 'u' || s[i + 1] == 'U'))
            w = s[i + 1] == 'u' ? 4 : 8;
        if (w) {
            if (i + 2 + (size_t)w > n || !hex_n(s + i + 2, w, &c) || c > 0x10FFFF) {
                free(o);
                return FAIL("UNICODE has a bad \\u escape");
            }
            i += 1 + (size_t)w;
        }
        utf8_put(o, &k, c);
    }
    return push_decoded(vm, o, k);
}

/* LONG1 / LONG4: n bytes of two's complement little-endian; must fit int64. */
static ssd_status op_long(pk_vm *vm, int width) {
    ssd_status st = need(vm, (size_t)width, "LONG length");
    if (st) return st;
    uint64_t n = rd_le(vm->buf + vm->p, width);
    vm->p += (size_t)width;
    if (width == 4 && (n & 0x80000000u)) return FAIL("LONG4 with a negative length");
    if ((st = need(vm, n, "LONG value"))) return st;
    if (n > 8) return FAIL("integer of %llu bytes does not fit 64 bits", (unsigned long long)n);
    uint64_t u = rd_le(vm->buf + vm->p, (int)n);
    if (n > 0 && n < 8 && (vm->buf[vm->p + n - 1] & 0x80)) u |= ~0ull << (8 * n); /* sign */
    vm->p += (size_t)n;
    pk_value *v = pk_new(vm->h, PK_INT);
    v->i = (int64_t)u;
    push(vm, v);
    return SSD_OK;
}

/* GLOBAL / STACK_GLOBAL: only the names a state_dict pickle uses. */
static ssd_status push_global(pk_vm *vm, const char *mod, size_t ml, const char *name, size_t nl) {
    char m[64], nm[64];
    if (ml >= sizeof m || nl >= sizeof nm) return FAIL("global name is too long");
    memcpy(m, mod, ml);
    m[ml] = 0;
    memcpy(nm, name, nl);
    nm[nl] = 0;
    pk_value *v = pk_new(vm->h, PK_GLOBAL);
    if (strcmp(m, "collections") == 0 && strcmp(nm, "OrderedDict") == 0) {
        v->i = PKG_ORDERED_DICT;
    } else if (strcmp(m, "torch._utils") == 0 && strcmp(nm, "_rebuild_tensor_v2") == 0) {
        v->i = PKG_REBUILD_TENSOR_V2;
    } else if (strcmp(m, "torch._utils") == 0 && strcmp(nm, "_rebuild_tensor") == 0) {
        v->i = PKG_REBUILD_TENSOR;
    } else if (strcmp(m, "torch._utils") == 0 && strcmp(nm, "_rebuild_parameter") == 0) {
        v->i = PKG_REBUILD_PARAMETER;
    } else {
        bool found = false;
        if (strcmp(m, "torch") == 0 || strcmp(m, "torch.cuda") == 0)
            for (int d = 0; d < SSD_PTH_NDTYPES && !found; d++) {
                if (strcmp(nm, k_dtypes[d].storage) == 0) v->i = PKG_STORAGE_TYPE, found = true;
                else if (strcmp(nm, k_dtypes[d].tensor) == 0) v->i = PKG_TENSOR_TYPE, found = true;
                if (found) v->dtype = (ssd_pth_dtype)d;
            }
        if (!found)
            return FAIL("unknown global '%s.%s' (a state_dict pickle names only "
                        "collections.OrderedDict, torch._utils._rebuild_* and torch storage "
                        "types)",
                        m, nm);
    }
    push(vm, v);
    return SSD_OK;
}

static ssd_status int_tuple(pk_vm *vm, const pk_value *t, const char *what, int64_t *out,
                            int *n) {
    if (t->type != PK_TUPLE && t->type != PK_LIST) return FAIL("%s is not a tuple", what);
    if (t->n > SSD_MAX_DIMS) return FAIL("%s has %zu dims (at most %d supported)", what, t->n,
                                         SSD_MAX_DIMS);
    for (size_t i = 0; i < t->n; i++) {
        if (t->items[i]->type != PK_INT || t->items[i]->i < 0)
            return FAIL("%s[%zu] is not a non-negative int", what, i);
        out[i] = t->items[i]->i;
    }
    *n = (int)t->n;
    return SSD_OK;
}

/* _rebuild_tensor(storage, offset, size, stride[, requires_grad, hooks[, metadata]]). */
static ssd_status rebuild_tensor(pk_vm *vm, const pk_value *args, pk_value **out) {
    if (args->n < 4 || args->n > 7) return FAIL("_rebuild_tensor with %zu arguments", args->n);
    const pk_value *s = args->items[0], *off = args->items[1];
    if (s->type != PK_STORAGE) return FAIL("_rebuild_tensor of a %s, not a storage",
                                           pk_type_name(s->type));
    if (off->type != PK_INT || off->i < 0) return FAIL("_rebuild_tensor: bad storage offset");
    pk_tensor t = {.storage = (int)s->i, .dtype = s->dtype, .offset = off->i};
    int ns = 0, nst = 0;
    ssd_status st = int_tuple(vm, args->items[2], "tensor size", t.size, &ns);
    if (!st) st = int_tuple(vm, args->items[3], "tensor stride", t.stride, &nst);
    if (st) return st;
    if (ns != nst) return FAIL("tensor size has %d dims but stride has %d", ns, nst);
    t.ndim = ns;
    pk_value *v = pk_new(vm->h, PK_TENSOR);
    v->t = ssd_xmalloc(sizeof t);
    *v->t = t;
    *out = v;
    return SSD_OK;
}

/* OrderedDict() or OrderedDict([[k, v], ...]) (Python 2). */
static ssd_status ordered_dict(pk_vm *vm, const pk_value *args, pk_value **out) {
    pk_value *d = pk_new(vm->h, PK_DICT);
    if (args->n == 0) {
        *out = d;
        return SSD_OK;
    }
    const pk_value *l = args->items[0];
    if (args->n != 1 || (l->type != PK_LIST && l->type != PK_TUPLE))
        return FAIL("OrderedDict called with unsupported arguments");
    for (size_t i = 0; i < l->n; i++) {
        const pk_value *kv = l->items[i];
        if ((kv->type != PK_LIST && kv->type != PK_TUPLE) || kv->n != 2)
            return FAIL("OrderedDict item %zu is not a (key, value) pair", i);
        push_item(d, kv->items[0]);
        push_item(d, kv->items[1]);
    }
    *out = d;
    return SSD_OK;
}

static ssd_status op_reduce(pk_vm *vm) {
    pk_value *args = NULL, *fn = NULL, *r = NULL;
    ssd_status st = pop(vm, &args);
    if (!st) st = pop(vm, &fn);
    if (st) return st;
    if (args->type != PK_TUPLE) return FAIL("REDUCE arguments are a %s, not a tuple",
                                            pk_type_name(args->type));
    if (fn->type != PK_GLOBAL) return FAIL("REDUCE of a %s", pk_type_name(fn->type));
    switch ((pk_global)fn->i) {
    case PKG_ORDERED_DICT: st = ordered_dict(vm, args, &r); break;
    case PKG_REBUILD_TENSOR:
    case PKG_REBUILD_TENSOR_V2: st = rebuild_tensor(vm, args, &r); break;
    case PKG_REBUILD_PARAMETER:
        if (args->n < 1 || args->items[0]->type != PK_TENSOR)
            return FAIL("_rebuild_parameter without a tensor");
        r = args->items[0];
        break;
    default: return FAIL("REDUCE of a storage or tensor type is not supported");
    }
    if (st) return st;
    push(vm, r);
    return SSD_OK;
}

/* Items stack[k..sp) into container c (list: all; dict: pairs), then drop them. */
static ssd_status fill_from(pk_vm *vm, pk_value *c, size_t k) {
    size_t cnt = vm->sp - k;
    if (c->type == PK_DICT && cnt % 2) return FAIL("odd number of items for a dict");
    for (size_t i = k; i < vm->sp; i++) push_item(c, vm->stack[i]);
    vm->sp = k;
    return SSD_OK;
}

static ssd_status op_collection(pk_vm *vm, pk_type type) {
    size_t k = 0;
    ssd_status st = pop_mark(vm, &k);
    if (st) return st;
    pk_value *c = pk_new(vm->h, type);
    if ((st = fill_from(vm, c, k))) return st;
    push(vm, c);
    return SSD_OK;
}

static ssd_status op_tuple_n(pk_vm *vm, size_t n) {
    if (vm->sp - fence(vm) < n) return FAIL("stack underflow");
    pk_value *c = pk_new(vm->h, PK_TUPLE);
    if (n) fill_from(vm, c, vm->sp - n);
    push(vm, c);
    return SSD_OK;
}

/* APPENDS / SETITEMS: items since the mark into the list/dict below the mark. */
static ssd_status op_add_items(pk_vm *vm, pk_type want) {
    size_t k = 0;
    ssd_status st = pop_mark(vm, &k);
    if (st) return st;
    if (k <= fence(vm)) return FAIL("no %s below the MARK", pk_type_name(want));
    pk_value *c = vm->stack[k - 1];
    if (c->type != want) return FAIL("cannot add items to a %s", pk_type_name(c->type));
    return fill_from(vm, c, k);
}

/* APPEND (n = 1) / SETITEM (n = 2). */
static ssd_status op_add_one(pk_vm *vm, pk_type want, size_t n) {
    if (vm->sp - fence(vm) < n + 1) return FAIL("stack underflow");
    pk_value *c = vm->stack[vm->sp - n - 1];
    if (c->type != want) return FAIL("cannot add items to a %s", pk_type_name(c->type));
    return fill_from(vm, c, vm->sp - n);
}

static ssd_status op_persid(pk_vm *vm, pk_value *pid) {
    if (!vm->persistent) return FAIL("persistent id where none is expected");
    pk_value *r = NULL;
    ssd_status st = vm->persistent(vm->ctx, vm->h, pid, vm->w, vm->op_pos, &r, vm->err);
    if (st) return st;
    push(vm, r);
    return SSD_OK;
}

static ssd_status step(pk_vm *vm, uint8_t op, bool *stop) {
    ssd_status st = SSD_OK;
    pk_value *a, *b;
    const char *s;
    size_t n, k = 0;
    int64_t iv;
    const uint8_t *q = vm->buf + vm->p;
    switch (op) {
    case 0x80: /* PROTO */
        if ((st = need(vm, 1, "PROTO"))) return st;
        if (q[0] > 5) return FAIL("pickle protocol %d is not supported", q[0]);
        vm->p += 1;
        return SSD_OK;
    case 0x95: /* FRAME: a length hint */
        if ((st = need(vm, 8, "FRAME"))) return st;
        vm->p += 8;
        return SSD_OK;
    case '.': *stop = true; return SSD_OK;
    case '(':
        if (vm->nmarks == PK_MAX_MARKS) return FAIL("MARKs nested deeper than %d", PK_MAX_MARKS);
        vm->marks[vm->nmarks++] = vm->sp;
        return SSD_OK;
    case '0': return pop(vm, &a);
    case '1': /* POP_MARK */
        if ((st = pop_mark(vm, &k))) return st;
        vm->sp = k;
        return SSD_OK;
    case '2': /* DUP */
        if ((st = top(vm, &a))) return st;
        push(vm, a);
        return SSD_OK;
    case ')': push(vm, pk_new(vm->h, PK_TUPLE)); return SSD_OK;
    case ']': push(vm, pk_new(vm->h, PK_LIST)); return SSD_OK;
    case '}': push(vm, pk_new(vm->h, PK_DICT)); return SSD_OK;
    case 't': return op_collection(vm, PK_TUPLE);
    case 'l': return op_collection(vm, PK_LIST);
    case 'd': return op_collection(vm, PK_DICT);
    case 0x85: return op_tuple_n(vm, 1);
    case 0x86: return op_tuple_n(vm, 2);
    case 0x87: return op_tuple_n(vm, 3);
    case 'a': return op_add_one(vm, PK_LIST, 1);
    case 's': return op_add_one(vm, PK_DICT, 2);
    case 'e': return op_add_items(vm, PK_LIST);
    case 'u': return op_add_items(vm, PK_DICT);
    case 'N': push(vm, pk_new(vm->h, PK_NONE)); return SSD_OK;
    case 0x88:
    case 0x89:
        a = pk_new(vm->h, PK_BOOL);
        a->i = op == 0x88;
        push(vm, a);
        return SSD_OK;
    case 'K': case 'M': case 'J': { /* BININT1 / BININT2 / BININT (signed) */
        int w = op == 'K' ? 1 : op == 'M' ? 2 : 4;
        if ((st = need(vm, (size_t)w, "BININT"))) return st;
        a = pk_new(vm->h, PK_INT);
        a->i = w == 4 ? (int64_t)(int32_t)(uint32_t)rd_le(q, 4) : (int64_t)rd_le(q, w);
        vm->p += (size_t)w;
        push(vm, a);
        return SSD_OK;
    }
    case 0x8A: return op_long(vm, 1);
    case 0x8B: return op_long(vm, 4);
    case 'I': case 'L': /* INT / LONG (text); INT "01"/"00" are True/False */
        if ((st = line(vm, &s, &n))) return st;
        if (op == 'I' && n == 2 && s[0] == '0' && (s[1] == '0' || s[1] == '1')) {
            a = pk_new(vm->h, PK_BOOL);
            a->i = s[1] == '1';
        } else {
            if ((st = parse_int_text(vm, s, n, &iv))) return st;
            a = pk_new(vm->h, PK_INT);
            a->i = iv;
        }
        push(vm, a);
        return SSD_OK;
    case 'G': { /* BINFLOAT: big-endian double */
        if ((st = need(vm, 8, "BINFLOAT"))) return st;
        uint64_t u = 0;
        for (int i = 0; i < 8; i++) u = (u << 8) | q[i];
        a = pk_new(vm->h, PK_FLOAT);
        memcpy(&a->f, &u, 8);
        vm->p += 8;
        push(vm, a);
        return SSD_OK;
    }
    case 'F': {
        char tmp[64];
        if ((st = line(vm, &s, &n))) return st;
        if (n == 0 || n >= sizeof tmp) return FAIL("bad FLOAT operand");
        memcpy(tmp, s, n);
        tmp[n] = 0;
        char *end;
        a = pk_new(vm->h, PK_FLOAT);
        a->f = strtod(tmp, &end);
        if (*end) return FAIL("bad FLOAT operand '%s'", tmp);
        push(vm, a);
        return SSD_OK;
    }
    case 'X': return push_counted_str(vm, 4, false, "BINUNICODE");
    case 0x8C: return push_counted_str(vm, 1, false, "SHORT_BINUNICODE");
    case 0x8D: return push_counted_str(vm, 8, false, "BINUNICODE8");
    case 'U': return push_counted_str(vm, 1, false, "SHORT_BINSTRING");
    case 'T': return push_counted_str(vm, 4, true, "BINSTRING");
    case 'C': return push_counted_str(vm, 1, false, "SHORT_BINBYTES");
    case 'B': return push_counted_str(vm, 4, false, "BINBYTES");
    case 0x8E: return push_counted_str(vm, 8, false, "BINBYTES8");
    case 'S': return op_string(vm);
    case 'V': return op_unicode(vm);
    case 'c': { /* GLOBAL "module\nname\n" */
        const char *m;
        size_t ml;
        if ((st = line(vm, &m, &ml)) || (st = line(vm, &s, &n))) return st;
        return push_global(vm, m, ml, s, n);
    }
    case 0x93: /* STACK_GLOBAL */
        if ((st = pop(vm, &b)) || (st = pop(vm, &a))) return st;
        if (a->type != PK_STR || b->type != PK_STR) return FAIL("STACK_GLOBAL of non-strings");
        return push_global(vm, a->s, a->len, b->s, b->len);
    case 'q': case 'r': case 'h': case 'j': { /* BINPUT / LONG_BINPUT / BINGET / LONG_BINGET */
        int w = (op == 'q' || op == 'h') ? 1 : 4;
        if ((st = need(vm, (size_t)w, "memo index"))) return st;
        uint64_t idx = rd_le(q, w);
        vm->p += (size_t)w;
        return (op == 'q' || op == 'r') ? memo_set(vm, idx) : memo_get(vm, idx);
    }
    case 'p': case 'g': /* PUT / GET (text) */
        if ((st = line(vm, &s, &n)) || (st = parse_int_text(vm, s, n, &iv))) return st;
        if (iv < 0) return FAIL("negative memo index");
        return op == 'p' ? memo_set(vm, (uint64_t)iv) : memo_get(vm, (uint64_t)iv);
    case 0x94: return memo_set(vm, vm->memo_count); /* MEMOIZE */
    case 'R': return op_reduce(vm);
    case 'b': /* BUILD: state on a dict (OrderedDict _metadata) or tensor is dropped */
        if ((st = pop(vm, &b)) || (st = top(vm, &a))) return st;
        if (a->type != PK_DICT && a->type != PK_TENSOR)
            return FAIL("BUILD on a %s is not supported", pk_type_name(a->type));
        return SSD_OK;
    case 'Q': /* BINPERSID */
        if ((st = pop(vm, &a))) return st;
        return op_persid(vm, a);
    case 'P': /* PERSID: text id */
        if ((st = line(vm, &s, &n))) return st;
        return op_persid(vm, new_str(vm, s, n));
    default: return FAIL("unsupported pickle opcode 0x%02x", op);
    }
}

ssd_status pk_load(pk_heap *h, const uint8_t *buf, size_t len, size_t *pos, const pk_where *w,
                   pk_persistent_fn persistent, void *ctx, pk_value **out, ssd_error *err) {
    pk_vm vm = {.h = h, .buf = buf, .len = len, .p = *pos, .w = w, .err = err,
                .persistent = persistent, .ctx = ctx};
    vm.memo_limit = len > 65536 ? len : 65536;
    ssd_status st = SSD_OK;
    bool stop = false;
    *out = NULL;
    while (!stop && st == SSD_OK) {
        vm.op_pos = vm.p;
        if (vm.p >= len) {
            st = pk_fail(err, w, vm.p, "truncated: the pickle ends without STOP");
            break;
        }
        uint8_t op = buf[vm.p++];
        st = step(&vm, op, &stop);
    }
    if (st == SSD_OK) {
        if (vm.sp != 1 || vm.nmarks)
            st = pk_fail(err, w, vm.op_pos, "STOP with %zu values and %d marks on the stack "
                         "(expected one value)", vm.sp, vm.nmarks);
        else
            *out = vm.stack[0], *pos = vm.p;
    }
    free(vm.stack);
    free(vm.memo);
    return st;
}
