/* Model state: flat parameter/gradient/momentum/buffer storage, init, load, export, SGD. */
#include "model/ssd_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"

/* A view of `rows[i]` inside the flat tensor `flat`. */
static ssd_tensor row_view(const ssd_tensor *flat, const ssd_param_info *r, const char *prefix) {
    char name[SSD_TENSOR_NAME_LEN];
    snprintf(name, sizeof name, "%s%s", prefix, r->name);
    ssd_tensor t = ssd_tensor_view((char *)flat->data + r->offset * ssd_dtype_size(flat->dtype),
                                   flat->dtype, r->ndim, r->shape, name);
    t.device = flat->device;
    return t;
}

static ssd_tensor *make_views(const ssd_tensor *flat, const ssd_param_info *rows, int n,
                              const char *prefix) {
    ssd_tensor *v = ssd_xcalloc((size_t)n, sizeof *v);
    for (int i = 0; i < n; i++) v[i] = row_view(flat, &rows[i], prefix);
    return v;
}

ssd_model *ssd_model_create(ssd_backend *be, ssd_dtype dt, uint32_t seed) {
    ssd_model *m = ssd_xcalloc(1, sizeof *m);
    m->be = be;
    m->dtype = dt;
    ssd_param_table_build(&m->tab);
    int64_t np = m->tab.params_numel, nb = m->tab.buffers_numel;
    m->params = ssd_backend_tensor_alloc(be, dt, 1, &np, "params");
    m->grads = ssd_backend_tensor_alloc(be, dt, 1, &np, "grads");
    m->momentum = ssd_backend_tensor_alloc(be, dt, 1, &np, "momentum");
    m->buffers = ssd_backend_tensor_alloc(be, dt, 1, &nb, "bn_buffers");
    m->p = make_views(&m->params, m->tab.params, m->tab.n_params, "");
    m->g = make_views(&m->grads, m->tab.params, m->tab.n_params, "grad.");
    m->mom = make_views(&m->momentum, m->tab.params, m->tab.n_params, "momentum.");
    m->buf = make_views(&m->buffers, m->tab.buffers, m->tab.n_buffers, "");
    ssd_model_init(m, seed);
    return m;
}

void ssd_model_destroy(ssd_model *m) {
    if (!m) return;
    ssd_backend_tensor_free(m->be, &m->params);
    ssd_backend_tensor_free(m->be, &m->grads);
    ssd_backend_tensor_free(m->be, &m->momentum);
    ssd_backend_tensor_free(m->be, &m->buffers);
    free(m->p);
    free(m->g);
    free(m->mom);
    free(m->buf);
    ssd_param_table_free(&m->tab);
    free(m);
}

/* Uploads a host f64 array into the flat backend tensor `dst` (converted to its dtype). */
static void upload_f64(ssd_backend *be, ssd_tensor *dst, const double *src) {
    int64_t n = ssd_tensor_numel(dst);
    ssd_tensor host = ssd_tensor_alloc_host(dst->dtype, 1, &n, "upload");
    for (int64_t i = 0; i < n; i++) ssd_tensor_set(&host, i, src[i]);
    ssd_backend_upload(be, dst, &host);
    ssd_tensor_free(&host);
}

void ssd_model_init(ssd_model *m, uint32_t seed) {
    double *p = ssd_xmalloc((size_t)m->tab.params_numel * sizeof *p);
    double *b = ssd_xmalloc((size_t)m->tab.buffers_numel * sizeof *b);
    ssd_param_table_init(&m->tab, seed, p, b);
    upload_f64(m->be, &m->params, p);
    upload_f64(m->be, &m->buffers, b);
    free(p);
    free(b);
    ssd_fill(m->be, &m->grads, 0.0);
    ssd_fill(m->be, &m->momentum, 0.0);
    m->num_batches_tracked = 0;
    m->momentum_valid = false;
}

/* ---- load ---- */

static bool is_bn_counter(const ssd_model *m, const char *name) {
    const char *suffix = ".num_batches_tracked";
    size_t ln = strlen(name), ls = strlen(suffix);
    if (ln <= ls || strcmp(name + ln - ls, suffix) != 0) return false;
    for (int i = 0; i < m->tab.net.n_bn; i++) {
        const char *pre = m->tab.net.bn[i].prefix;
        if (strlen(pre) == ln - ls && strncmp(pre, name, ln - ls) == 0) return true;
    }
    return false;
}

/* Checks and copies one named tensor of the file into host array `dst` (row r). */
static ssd_status load_row(const ssd_st_file *f, const ssd_param_info *r, const char *path,
                           ssd_tensor *host_flat, ssd_error *err) {
    const ssd_tensor *t = ssd_st_get(f, r->name);
    if (!t) return ssd_fail(err, SSD_ERR_FORMAT, "%s: missing tensor '%s'", path, r->name);
    if (t->dtype != SSD_F32 && t->dtype != SSD_F64 && t->dtype != SSD_BF16)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor '%s' is %s, expected a float type",
                        path, r->name, ssd_dtype_name(t->dtype));
    bool ok = t->ndim == r->ndim;
    for (int d = 0; ok && d < r->ndim; d++) ok = t->shape[d] == r->shape[d];
    if (!ok) {
        char got[96], want[96];
        ssd_tensor w = ssd_tensor_view(NULL, SSD_F32, r->ndim, r->shape, NULL);
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", path,
                        r->name, ssd_shape_str(t, got, sizeof got),
                        ssd_shape_str(&w, want, sizeof want));
    }
    for (int64_t i = 0; i < r->numel; i++)
        ssd_tensor_set(host_flat, r->offset + i, ssd_tensor_get(t, i));
    return SSD_OK;
}

ssd_status ssd_model_load(ssd_model *m, const ssd_st_file *f, const char *path, bool strict,
                          ssd_error *err) {
    ssd_status st = SSD_OK;
    int64_t np = m->tab.params_numel, nb = m->tab.buffers_numel;
    ssd_tensor hp = ssd_tensor_alloc_host(m->dtype, 1, &np, "params");
    ssd_tensor hb = ssd_tensor_alloc_host(m->dtype, 1, &nb, "buffers");
    int64_t counter = -1;
    for (int i = 0; st == SSD_OK && i < m->tab.n_params; i++)
        st = load_row(f, &m->tab.params[i], path, &hp, err);
    for (int i = 0; st == SSD_OK && i < m->tab.n_buffers; i++)
        st = load_row(f, &m->tab.buffers[i], path, &hb, err);
    for (int i = 0; st == SSD_OK && i < ssd_st_count(f); i++) {
        const char *name = ssd_st_name(f, i);
        if (ssd_param_find(&m->tab, name) >= 0 || ssd_buffer_find(&m->tab, name) >= 0) continue;
        if (is_bn_counter(m, name)) {
            const ssd_tensor *t = ssd_st_at(f, i);
            if (t->dtype != SSD_I64 || ssd_tensor_numel(t) != 1) {
                st = ssd_fail(err, SSD_ERR_FORMAT, "%s: '%s' must be one i64 value", path, name);
            } else {
                int64_t v = *(const int64_t *)t->data;
                if (v > counter) counter = v; /* all BNs count the same forwards */
            }
        } else if (strict) {
            st = ssd_fail(err, SSD_ERR_FORMAT,
                          "%s: tensor '%s' is not a parameter or buffer of SSD300-ResNet34", path,
                          name);
        }
    }
    if (st == SSD_OK) {
        ssd_backend_upload(m->be, &m->params, &hp);
        ssd_backend_upload(m->be, &m->buffers, &hb);
        m->num_batches_tracked = counter < 0 ? 0 : counter;
    }
    ssd_tensor_free(&hp);
    ssd_tensor_free(&hb);
    return st;
}

/* ---- export ---- */


ssd_tensor *ssd_model_export(const ssd_model *m, char which, ssd_dtype dt, const char *prefix,
                             int *count) {
    const ssd_param_table *t = &m->tab;
    int n = which == 'b' ? t->n_buffers + t->net.n_bn : t->n_params;
    ssd_tensor *out = ssd_xcalloc((size_t)n, sizeof *out);
    int k = 0;
    if (which == 'b') {
        for (int i = 0; i < t->net.n_bn; i++) {
            const ssd_bn_layer *bn = &t->net.bn[i];
            out[k++] = ssd_backend_download_as(m->be, &m->buf[bn->rmean], dt);
            out[k++] = ssd_backend_download_as(m->be, &m->buf[bn->rvar], dt);
            out[k] = ssd_tensor_alloc_host(SSD_I64, 0, NULL, NULL);
            *(int64_t *)out[k].data = m->num_batches_tracked;
            snprintf(out[k].name, sizeof out[k].name, "%s.num_batches_tracked", bn->prefix);
            k++;
        }
    } else {
        const ssd_tensor *src = which == 'g' ? m->g : m->p;
        for (int i = 0; i < n; i++) out[k++] = ssd_backend_download_as(m->be, &src[i], dt);
    }
    for (int i = 0; i < k; i++) { /* prefix + torch name */
        char name[SSD_TENSOR_NAME_LEN];
        const char *base = which == 'b' ? out[i].name : t->params[i].name;
        snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", base);
        ssd_tensor_set_name(&out[i], name);
    }
    *count = k;
    return out;
}

void ssd_model_zero_grad(ssd_model *m) { ssd_fill(m->be, &m->grads, 0.0); }

void ssd_model_sgd_step(ssd_model *m, double lr, double momentum, double weight_decay) {
    ssd_sgd_desc d = {.lr = lr,
                      .momentum = momentum,
                      .weight_decay = weight_decay,
                      .dampening = 0.0,
                      .nesterov = false,
                      .first_step = !m->momentum_valid};
    ssd_sgd_update(m->be, &m->params, &m->momentum, &m->grads, &d);
    m->momentum_valid = true;
}
