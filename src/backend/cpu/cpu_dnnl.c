/* oneDNN helpers of the cpu backend: descriptors, primitives with user scratchpads, tensor
 * arguments with their reorders, and the shared scratch slots (see cpu_internal.h). */
#include <stdio.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "core/mem.h"

dnnl_data_type_t cpu_dnnl_dtype(ssd_dtype dt) {
    switch (dt) {
    case SSD_F32: return dnnl_f32;
    case SSD_BF16: return dnnl_bf16;
    default: ssd_die(__FILE__, __LINE__, "cpu backend: no oneDNN type for %s", ssd_dtype_name(dt));
    }
}

void *cpu_slot(cpu_impl *im, int slot, size_t bytes) {
    SSD_ASSERT(slot >= 0 && slot < CPU_NSLOTS, "bad scratch slot %d", slot);
    if (bytes > im->slot_cap[slot] || !im->slot[slot]) {
        ssd_aligned_free(im->slot[slot]);
        size_t cap = bytes > 64 ? bytes : 64;
        im->slot[slot] = ssd_aligned_alloc(cap);
        im->slot_cap[slot] = cap;
    }
    return im->slot[slot];
}

static dnnl_format_tag_t plain_tag(int ndims) {
    switch (ndims) {
    case 1: return dnnl_a;
    case 2: return dnnl_ab;
    case 3: return dnnl_abc;
    case 4: return dnnl_abcd;
    case 5: return dnnl_abcde;
    default: ssd_die(__FILE__, __LINE__, "cpu backend: no plain layout for %d dims", ndims);
    }
}

void cpu_md_plain(dnnl_memory_desc_t *md, int ndims, const int64_t *dims, dnnl_data_type_t dt) {
    dnnl_dims_t d;
    for (int i = 0; i < ndims; i++) d[i] = dims[i];
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(md, ndims, d, dt, plain_tag(ndims)));
}

void cpu_md_act(dnnl_memory_desc_t *md, const int64_t *dims, ssd_dtype dt, ssd_layout l) {
    const dnnl_format_tag_t tag = l == SSD_LAYOUT_NHWC      ? dnnl_acdb
                                  : l == SSD_LAYOUT_NCHW16C ? dnnl_aBcd16b
                                                            : dnnl_abcd;
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(md, 4, dims, cpu_dnnl_dtype(dt), tag));
}

void cpu_md_any(dnnl_memory_desc_t *md, int ndims, const int64_t *dims, dnnl_data_type_t dt) {
    dnnl_dims_t d;
    for (int i = 0; i < ndims; i++) d[i] = dims[i];
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(md, ndims, d, dt, dnnl_format_tag_any));
}

void cpu_md_flat(dnnl_memory_desc_t *md, const ssd_tensor *t) {
    int64_t n = ssd_tensor_numel(t);
    cpu_md_plain(md, 1, &n, cpu_dnnl_dtype(t->dtype));
}

/* ---- primitives ---- */

void cpu_prim_from_pd(cpu_impl *im, cpu_prim *p, dnnl_primitive_desc_t pd) {
    memset(p, 0, sizeof *p);
    p->pd = pd;
    DNNL_CHECK(dnnl_primitive_create(&p->prim, pd));
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (bytes > 0) {
        DNNL_CHECK(dnnl_memory_create(&p->scratchpad, smd, im->engine, DNNL_MEMORY_NONE));
        p->scratchpad_bytes = bytes;
    }
}

void cpu_prim_create(cpu_impl *im, cpu_prim *p, const_dnnl_op_desc_t desc,
                     dnnl_primitive_attr_t attr, const_dnnl_primitive_desc_t hint) {
    dnnl_primitive_attr_t own = NULL;
    if (!attr) {
        DNNL_CHECK(dnnl_primitive_attr_create(&own));
        attr = own;
    }
    DNNL_CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    dnnl_primitive_desc_t pd;
    DNNL_CHECK(dnnl_primitive_desc_create(&pd, desc, attr, im->engine, hint));
    if (own) DNNL_CHECK(dnnl_primitive_attr_destroy(own));
    cpu_prim_from_pd(im, p, pd);
}

void cpu_prim_exec(cpu_impl *im, cpu_prim *p, int nargs, const dnnl_exec_arg_t *args) {
    dnnl_exec_arg_t a[24];
    SSD_ASSERT(nargs >= 0 && nargs < 24, "too many primitive arguments (%d)", nargs);
    memcpy(a, args, (size_t)nargs * sizeof *a);
    if (p->scratchpad) {
        DNNL_CHECK(dnnl_memory_set_data_handle(
            p->scratchpad, cpu_slot(im, CPU_SLOT_SCRATCHPAD, p->scratchpad_bytes)));
        a[nargs].arg = DNNL_ARG_SCRATCHPAD;
        a[nargs].memory = p->scratchpad;
        nargs++;
    }
    DNNL_CHECK(dnnl_primitive_execute(p->prim, im->stream, nargs, a));
}

const dnnl_memory_desc_t *cpu_prim_md(const cpu_prim *p, dnnl_query_t what, int index) {
    return dnnl_primitive_desc_query_md(p->pd, what, index);
}

void cpu_prim_note_impl(ssd_backend *be, const cpu_prim *p) {
    const char *s = NULL;
    if (dnnl_primitive_desc_query(p->pd, dnnl_query_impl_info_str, 0, &s) != dnnl_success || !s)
        s = "?";
    snprintf(be->stats.last_impl, sizeof be->stats.last_impl, "onednn:%s", s);
}

void cpu_note_suffix(ssd_backend *be, const char *suffix) {
    const size_t l = strlen(be->stats.last_impl);
    snprintf(be->stats.last_impl + l, sizeof be->stats.last_impl - l, "%s", suffix);
}

void cpu_prim_destroy(cpu_prim *p) {
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->pd) dnnl_primitive_desc_destroy(p->pd);
    if (p->scratchpad) dnnl_memory_destroy(p->scratchpad);
    memset(p, 0, sizeof *p);
}

/* ---- tensor arguments ---- */

static void make_reorder(cpu_impl *im, cpu_prim *p, const dnnl_memory_desc_t *src,
                         const dnnl_memory_desc_t *dst, bool accumulate) {
    dnnl_primitive_attr_t attr;
    DNNL_CHECK(dnnl_primitive_attr_create(&attr));
    DNNL_CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    if (accumulate) {
        dnnl_post_ops_t po;
        DNNL_CHECK(dnnl_post_ops_create(&po));
        DNNL_CHECK(dnnl_post_ops_append_sum(po, 1.0f));
        DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, po));
        DNNL_CHECK(dnnl_post_ops_destroy(po));
    }
    dnnl_primitive_desc_t pd;
    DNNL_CHECK(dnnl_reorder_primitive_desc_create(&pd, src, im->engine, dst, im->engine, attr));
    DNNL_CHECK(dnnl_primitive_attr_destroy(attr));
    cpu_prim_from_pd(im, p, pd);
}

void cpu_arg_init_in(cpu_impl *im, cpu_arg *a, const dnnl_memory_desc_t *user_md,
                     const dnnl_memory_desc_t *prim_md, int slot) {
    memset(a, 0, sizeof *a);
    a->slot = slot;
    DNNL_CHECK(dnnl_memory_create(&a->user, user_md, im->engine, DNNL_MEMORY_NONE));
    if (!dnnl_memory_desc_equal(user_md, prim_md)) {
        DNNL_CHECK(dnnl_memory_create(&a->inner, prim_md, im->engine, DNNL_MEMORY_NONE));
        a->inner_bytes = dnnl_memory_desc_get_size(prim_md);
        a->reorder_src_bytes = dnnl_memory_desc_get_size(user_md);
        make_reorder(im, &a->reorder, user_md, prim_md, false);
        a->has_reorder = true;
    }
}

void cpu_arg_init_out(cpu_impl *im, cpu_arg *a, const dnnl_memory_desc_t *user_md,
                      const dnnl_memory_desc_t *prim_md, int slot, bool accumulate) {
    memset(a, 0, sizeof *a);
    a->slot = slot;
    DNNL_CHECK(dnnl_memory_create(&a->user, user_md, im->engine, DNNL_MEMORY_NONE));
    if (accumulate || !dnnl_memory_desc_equal(user_md, prim_md)) {
        DNNL_CHECK(dnnl_memory_create(&a->inner, prim_md, im->engine, DNNL_MEMORY_NONE));
        a->inner_bytes = dnnl_memory_desc_get_size(prim_md);
        a->reorder_src_bytes = a->inner_bytes;
        make_reorder(im, &a->reorder, prim_md, user_md, accumulate);
        a->has_reorder = true;
    }
}

void cpu_arg_init_user(cpu_impl *im, cpu_arg *a, const dnnl_memory_desc_t *md) {
    memset(a, 0, sizeof *a);
    a->slot = -1;
    DNNL_CHECK(dnnl_memory_create(&a->user, md, im->engine, DNNL_MEMORY_NONE));
}

void cpu_arg_init_scratch(cpu_impl *im, cpu_arg *a, const dnnl_memory_desc_t *md, int slot) {
    memset(a, 0, sizeof *a);
    a->slot = slot;
    DNNL_CHECK(dnnl_memory_create(&a->inner, md, im->engine, DNNL_MEMORY_NONE));
    a->inner_bytes = dnnl_memory_desc_get_size(md);
}

static void bind_inner(cpu_impl *im, cpu_arg *a) {
    a->inner_ptr = cpu_slot(im, a->slot, a->inner_bytes);
    DNNL_CHECK(dnnl_memory_set_data_handle(a->inner, a->inner_ptr));
}

static void run_reorder(ssd_backend *be, cpu_arg *a, dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    cpu_prim_exec(cpu_impl_of(be), &a->reorder, 2, args);
    be->stats.reorders++;
    be->stats.weight_reorders += a->weight;
    be->stats.reorder_bytes += a->reorder_src_bytes;
}

dnnl_memory_t cpu_arg_in(ssd_backend *be, cpu_arg *a, const void *data) {
    DNNL_CHECK(dnnl_memory_set_data_handle(a->user, (void *)data));
    if (!a->has_reorder) return a->user;
    bind_inner(cpu_impl_of(be), a);
    run_reorder(be, a, a->user, a->inner);
    return a->inner;
}

dnnl_memory_t cpu_arg_bind(ssd_backend *be, cpu_arg *a, const void *data) {
    DNNL_CHECK(dnnl_memory_set_data_handle(a->user, (void *)data));
    if (!a->has_reorder) return a->user;
    bind_inner(cpu_impl_of(be), a);
    return a->inner;
}

dnnl_memory_t cpu_arg_out(ssd_backend *be, cpu_arg *a, void *data) {
    DNNL_CHECK(dnnl_memory_set_data_handle(a->user, data));
    if (!a->has_reorder) return a->user;
    bind_inner(cpu_impl_of(be), a);
    return a->inner;
}

void cpu_arg_out_done(ssd_backend *be, cpu_arg *a) {
    if (a->has_reorder) run_reorder(be, a, a->inner, a->user);
}

dnnl_memory_t cpu_arg_scratch(ssd_backend *be, cpu_arg *a) {
    bind_inner(cpu_impl_of(be), a);
    return a->inner;
}

void cpu_arg_destroy(cpu_arg *a) {
    if (a->user) dnnl_memory_destroy(a->user);
    if (a->inner) dnnl_memory_destroy(a->inner);
    if (a->has_reorder) cpu_prim_destroy(&a->reorder);
    memset(a, 0, sizeof *a);
}

void cpu_wait(cpu_impl *im) { DNNL_CHECK(dnnl_stream_wait(im->stream)); }
