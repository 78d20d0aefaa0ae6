/* Training checkpoints (see checkpoint.h for the file layout and the guarantees).
 *
 * Save downloads the model's three flat buffers (parameters, BN buffers, momentum) once and
 * hands the safetensors writer one host view per tensor, named and ordered like torch's
 * state_dict (a BN's running_mean, running_var, num_batches_tracked right after its bias), then
 * the momentum views. The writer does the atomic temp-file-and-rename.
 *
 * Load reads the whole file (ssd_st_read checks the safetensors structure), checks the metadata
 * and every tensor against the model's parameter table, and only when all of it is right uploads
 * the tensors row by row into the model's buffers (the file's tensors are already in the model's
 * dtype and shape, so this is a plain copy: bit-exact). */
#include "train/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "io/safetensors.h"

#define NBT_SUFFIX ".num_batches_tracked"

/* ---- metadata values ---- */

/* A non-negative decimal int64 with nothing around it ("0", "17"; not "", "+1", " 1", "1e3"). */
static bool parse_count(const char *s, int64_t *out) {
    if (!s || s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0)
        return false;
    *out = (int64_t)v;
    return true;
}

static bool parse_double(const char *s, double *out) {
    if (!s || !s[0] || s[0] == ' ' || s[0] == '\t' || s[0] == '\n')
        return false;
    char *end = NULL;
    double v = strtod(s, &end); /* ERANGE (subnormal / overflow) still gives the exact value */
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}

/* ---- save ---- */

ssd_status ssd_checkpoint_save(const char *path, const ssd_model *m, const ssd_train_state *st,
                               ssd_error *err) {
    SSD_ASSERT(path && m && st, "ssd_checkpoint_save: NULL argument");
    if (st->epoch < 0 || st->iteration < 0 || st->loader_epoch < 0 || st->loader_iter < 0)
        return ssd_fail(err, SSD_ERR_ARG,
                        "%s: cannot save checkpoint: negative counter (epoch %" PRId64
                        ", iteration %" PRId64 ", loader position %" PRId64 "/%" PRId64 ")",
                        path, st->epoch, st->iteration, st->loader_epoch, st->loader_iter);
    if (m->dtype != SSD_F32 && m->dtype != SSD_F64)
        return ssd_fail(err, SSD_ERR_UNSUPPORTED,
                        "%s: cannot save checkpoint: model dtype %s (only f32 and f64 models)",
                        path, ssd_dtype_name(m->dtype));
    const ssd_param_table *t = &m->tab;
    const int n_bn = t->net.n_bn;
    const size_t es = ssd_dtype_size(m->dtype);

    ssd_tensor hp = ssd_backend_download_as(m->be, &m->params, m->dtype);
    ssd_tensor hb = ssd_backend_download_as(m->be, &m->buffers, m->dtype);
    ssd_tensor hm = {0};
    if (m->momentum_valid)
        hm = ssd_backend_download_as(m->be, &m->momentum, m->dtype);

    int cap = t->n_params + t->n_buffers + n_bn + (m->momentum_valid ? t->n_params : 0);
    ssd_tensor *views = ssd_xcalloc((size_t)cap, sizeof *views);
    const ssd_tensor **list = ssd_xcalloc((size_t)cap, sizeof *list);
    int64_t nbt = m->num_batches_tracked;
    int k = 0;
    for (int i = 0; i < t->n_params; i++) {
        const ssd_param_info *r = &t->params[i];
        views[k++] = ssd_tensor_view((char *)hp.data + (size_t)r->offset * es, m->dtype, r->ndim,
                                     r->shape, r->name);
        for (int b = 0; b < n_bn; b++) {
            const ssd_bn_layer *bn = &t->net.bn[b];
            if (bn->beta != i)
                continue; /* torch: weight, bias, running_mean/var, counter */
            const ssd_param_info *rows[2] = {&t->buffers[bn->rmean], &t->buffers[bn->rvar]};
            for (int j = 0; j < 2; j++)
                views[k++] =
                    ssd_tensor_view((char *)hb.data + (size_t)rows[j]->offset * es, m->dtype,
                                    rows[j]->ndim, rows[j]->shape, rows[j]->name);
            char name[2 * SSD_TENSOR_NAME_LEN];
            snprintf(name, sizeof name, "%s" NBT_SUFFIX, bn->prefix);
            views[k++] = ssd_tensor_view(&nbt, SSD_I64, 0, NULL, name);
        }
    }
    for (int i = 0; m->momentum_valid && i < t->n_params; i++) {
        const ssd_param_info *r = &t->params[i];
        char name[2 * SSD_TENSOR_NAME_LEN];
        snprintf(name, sizeof name, SSD_CHECKPOINT_MOMENTUM_PREFIX "%s", r->name);
        views[k++] = ssd_tensor_view((char *)hm.data + (size_t)r->offset * es, m->dtype, r->ndim,
                                     r->shape, name);
    }
    SSD_ASSERT(k == cap, "checkpoint: wrote %d of %d tensors (BN table inconsistent)", k, cap);
    for (int i = 0; i < k; i++)
        list[i] = &views[i];

    char v_ver[24], v_ep[24], v_it[24], v_lep[24], v_lit[24], v_seed[16], v_loss[64], v_ws[24];
    snprintf(v_ver, sizeof v_ver, "%d", SSD_CHECKPOINT_VERSION);
    snprintf(v_ep, sizeof v_ep, "%" PRId64, st->epoch);
    snprintf(v_it, sizeof v_it, "%" PRId64, st->iteration);
    snprintf(v_lep, sizeof v_lep, "%" PRId64, st->loader_epoch);
    snprintf(v_lit, sizeof v_lit, "%" PRId64, st->loader_iter);
    snprintf(v_seed, sizeof v_seed, "%" PRIu32, st->seed);
    snprintf(v_loss, sizeof v_loss, "%a", st->avg_loss);
    snprintf(v_ws, sizeof v_ws, "%" PRId64, st->world_size > 0 ? st->world_size : 1);
    const char *keys[] = {"format",       "format_version", "dtype",          "epoch",
                          "iteration",    "loader_epoch",   "loader_iter",    "seed",
                          "avg_loss",     "momentum_valid", "world_size"};
    const char *vals[] = {SSD_CHECKPOINT_FORMAT,
                          v_ver,
                          ssd_dtype_name(m->dtype),
                          v_ep,
                          v_it,
                          v_lep,
                          v_lit,
                          v_seed,
                          v_loss,
                          m->momentum_valid ? "1" : "0",
                          v_ws};
    ssd_status s =
        ssd_st_write_meta(path, list, k, keys, vals, (int)(sizeof keys / sizeof *keys), err);
    free(list);
    free(views);
    ssd_tensor_free(&hp);
    ssd_tensor_free(&hb);
    if (m->momentum_valid)
        ssd_tensor_free(&hm);
    return s;
}

/* ---- load ---- */

/* The file's tensor NAME must exist with the model's dtype and row r's shape. */
static ssd_status check_row(const ssd_st_file *f, const char *path, const char *name,
                            const ssd_param_info *r, ssd_dtype dt, const ssd_tensor **out,
                            ssd_error *err) {
    const ssd_tensor *x = ssd_st_get(f, name);
    if (!x)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: checkpoint is missing tensor '%s'", path, name);
    if (x->dtype != dt)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor '%s' is %s, the checkpoint says %s", path,
                        name, ssd_dtype_name(x->dtype), ssd_dtype_name(dt));
    bool ok = x->ndim == r->ndim;
    for (int d = 0; ok && d < r->ndim; d++)
        ok = x->shape[d] == r->shape[d];
    if (!ok) {
        char got[128], want[128];
        ssd_tensor w = ssd_tensor_view(NULL, dt, r->ndim, r->shape, NULL);
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", path,
                        name, ssd_shape_str(x, got, sizeof got),
                        ssd_shape_str(&w, want, sizeof want));
    }
    *out = x;
    return SSD_OK;
}

/* The metadata value of KEY, or an error naming it. */
static ssd_status meta_get(const ssd_st_file *f, const char *path, const char *key,
                           const char **out, ssd_error *err) {
    *out = ssd_st_meta(f, key);
    if (!*out)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: checkpoint metadata has no '%s'", path, key);
    return SSD_OK;
}

static ssd_status meta_count(const ssd_st_file *f, const char *path, const char *key, int64_t *out,
                             ssd_error *err) {
    const char *v;
    ssd_status s = meta_get(f, path, key, &v, err);
    if (s != SSD_OK)
        return s;
    if (!parse_count(v, out))
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: checkpoint metadata '%s' is '%.64s', expected an integer >= 0", path,
                        key, v);
    return SSD_OK;
}

/* Everything checked, nothing written: the parsed state and the file's tensors for each row. */
typedef struct loaded {
    ssd_train_state st;
    int64_t nbt;
    const ssd_tensor **p, **b, **mom; /* per param row / buffer row / param row (or NULL) */
} loaded;

static ssd_status validate(const ssd_st_file *f, const char *path, const ssd_model *m, loaded *L,
                           ssd_error *err) {
    const ssd_param_table *t = &m->tab;
    const char *v;
    ssd_status s;
    /* format, version, dtype */
    v = ssd_st_meta(f, "format");
    if (!v || strcmp(v, SSD_CHECKPOINT_FORMAT) != 0)
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: not a training checkpoint (metadata 'format' is %s%.64s%s, expected "
                        "'" SSD_CHECKPOINT_FORMAT "'; a weights-only file cannot resume training)",
                        path, v ? "'" : "", v ? v : "missing", v ? "'" : "");
    int64_t ver;
    if ((s = meta_count(f, path, "format_version", &ver, err)) != SSD_OK)
        return s;
    if (ver != SSD_CHECKPOINT_VERSION)
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: checkpoint format_version %" PRId64 " is not supported (this build "
                        "reads version %d)",
                        path, ver, SSD_CHECKPOINT_VERSION);
    if ((s = meta_get(f, path, "dtype", &v, err)) != SSD_OK)
        return s;
    ssd_dtype fdt;
    if (!ssd_dtype_parse(v, &fdt) || (fdt != SSD_F32 && fdt != SSD_F64))
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: checkpoint metadata 'dtype' is '%.64s', "
                        "expected 'f32' or 'f64'",
                        path, v);
    if (fdt != m->dtype)
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: checkpoint holds %s tensors but the model is %s (resume with a "
                        "backend of the same precision)",
                        path, ssd_dtype_name(fdt), ssd_dtype_name(m->dtype));
    /* the state */
    ssd_train_state *st = &L->st;
    if ((s = meta_count(f, path, "epoch", &st->epoch, err)) != SSD_OK)
        return s;
    if ((s = meta_count(f, path, "iteration", &st->iteration, err)) != SSD_OK)
        return s;
    if ((s = meta_count(f, path, "loader_epoch", &st->loader_epoch, err)) != SSD_OK)
        return s;
    if ((s = meta_count(f, path, "loader_iter", &st->loader_iter, err)) != SSD_OK)
        return s;
    int64_t seed;
    if ((s = meta_count(f, path, "seed", &seed, err)) != SSD_OK)
        return s;
    if (seed > (int64_t)UINT32_MAX)
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: checkpoint metadata 'seed' is %" PRId64 ", above 2^32-1", path, seed);
    st->seed = (uint32_t)seed;
    if ((s = meta_get(f, path, "avg_loss", &v, err)) != SSD_OK)
        return s;
    if (!parse_double(v, &st->avg_loss))
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: checkpoint metadata 'avg_loss' is '%.64s', not a number", path, v);
    if ((s = meta_get(f, path, "momentum_valid", &v, err)) != SSD_OK)
        return s;
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
        return ssd_fail(err, SSD_ERR_FORMAT,
                        "%s: checkpoint metadata 'momentum_valid' is '%.64s', expected 0 or 1",
                        path, v);
    st->momentum_valid = v[0] == '1';
    st->world_size = 1; /* optional: files of single-process runs before MPI had none */
    if (ssd_st_meta(f, "world_size") &&
        ((s = meta_count(f, path, "world_size", &st->world_size, err)) != SSD_OK ||
         st->world_size < 1))
        return s != SSD_OK ? s
                           : ssd_fail(err, SSD_ERR_FORMAT,
                                      "%s: checkpoint metadata 'world_size' is 0", path);

    /* the tensors the model needs */
    for (int i = 0; i < t->n_params; i++)
        if ((s = check_row(f, path, t->params[i].name, &t->params[i], fdt, &L->p[i], err)))
            return s;
    for (int i = 0; i < t->n_buffers; i++)
        if ((s = check_row(f, path, t->buffers[i].name, &t->buffers[i], fdt, &L->b[i], err)))
            return s;
    L->nbt = -1;
    for (int i = 0; i < t->net.n_bn; i++) {
        char name[2 * SSD_TENSOR_NAME_LEN];
        snprintf(name, sizeof name, "%s" NBT_SUFFIX, t->net.bn[i].prefix);
        const ssd_tensor *x = ssd_st_get(f, name);
        if (!x)
            return ssd_fail(err, SSD_ERR_FORMAT, "%s: checkpoint is missing tensor '%s'", path,
                            name);
        if (x->dtype != SSD_I64 || x->ndim != 0)
            return ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor '%s' must be an i64 scalar (shape [])",
                            path, name);
        int64_t c;
        memcpy(&c, x->data, sizeof c);
        if (c < 0)
            return ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor '%s' is %" PRId64 " (negative)", path,
                            name, c);
        if (L->nbt >= 0 && c != L->nbt)
            return ssd_fail(err, SSD_ERR_FORMAT,
                            "%s: tensor '%s' is %" PRId64 " but earlier BNs say %" PRId64
                            " (the model keeps one counter for all BNs)",
                            path, name, c, L->nbt);
        L->nbt = c;
    }
    int expected = t->n_params + t->n_buffers + t->net.n_bn;
    if (st->momentum_valid) {
        for (int i = 0; i < t->n_params; i++) {
            char name[2 * SSD_TENSOR_NAME_LEN];
            snprintf(name, sizeof name, SSD_CHECKPOINT_MOMENTUM_PREFIX "%s", t->params[i].name);
            if ((s = check_row(f, path, name, &t->params[i], fdt, &L->mom[i], err)))
                return s;
        }
        expected += t->n_params;
    }
    /* every name found above is distinct, so a count mismatch means an unexpected tensor */
    if (ssd_st_count(f) != expected) {
        for (int i = 0; i < ssd_st_count(f); i++) {
            const char *name = ssd_st_name(f, i);
            size_t lp = strlen(SSD_CHECKPOINT_MOMENTUM_PREFIX);
            bool is_mom = strncmp(name, SSD_CHECKPOINT_MOMENTUM_PREFIX, lp) == 0 &&
                          ssd_param_find(t, name + lp) >= 0;
            if (is_mom && !st->momentum_valid)
                return ssd_fail(err, SSD_ERR_FORMAT,
                                "%s: tensor '%s' is present but metadata momentum_valid is 0", path,
                                name);
            size_t ln = strlen(name), ls = strlen(NBT_SUFFIX);
            bool is_nbt = false;
            for (int b = 0; !is_nbt && b < t->net.n_bn; b++) {
                const char *pre = t->net.bn[b].prefix;
                is_nbt = ln > ls && strcmp(name + ln - ls, NBT_SUFFIX) == 0 &&
                         strlen(pre) == ln - ls && strncmp(name, pre, ln - ls) == 0;
            }
            if (!is_mom && !is_nbt && ssd_param_find(t, name) < 0 && ssd_buffer_find(t, name) < 0)
                return ssd_fail(err, SSD_ERR_FORMAT,
                                "%s: unexpected tensor '%s' (not a parameter, BN buffer or "
                                "momentum of SSD300-ResNet34)",
                                path, name);
        }
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: checkpoint has %d tensors, expected %d", path,
                        ssd_st_count(f), expected);
    }
    return SSD_OK;
}

ssd_status ssd_checkpoint_load(const char *path, ssd_model *m, ssd_train_state *st,
                               ssd_error *err) {
    SSD_ASSERT(path && m && st, "ssd_checkpoint_load: NULL argument");
    ssd_st_file *f = NULL;
    ssd_status s = ssd_st_read(path, &f, err);
    if (s != SSD_OK)
        return s;
    s = ssd_checkpoint_load_file(f, path, m, st, err);
    ssd_st_free(f);
    return s;
}

ssd_status ssd_checkpoint_load_file(const ssd_st_file *f, const char *path, ssd_model *m,
                                    ssd_train_state *st, ssd_error *err) {
    ssd_status s;
    const ssd_param_table *t = &m->tab;
    loaded L;
    memset(&L, 0, sizeof L);
    L.p = ssd_xcalloc((size_t)t->n_params, sizeof *L.p);
    L.mom = ssd_xcalloc((size_t)t->n_params, sizeof *L.mom);
    L.b = ssd_xcalloc((size_t)t->n_buffers, sizeof *L.b);
    s = validate(f, path, m, &L, err);
    if (s == SSD_OK) { /* commit: nothing below can fail */
        for (int i = 0; i < t->n_params; i++)
            ssd_backend_upload(m->be, &m->p[i], L.p[i]);
        for (int i = 0; i < t->n_buffers; i++)
            ssd_backend_upload(m->be, &m->buf[i], L.b[i]);
        if (L.st.momentum_valid)
            for (int i = 0; i < t->n_params; i++)
                ssd_backend_upload(m->be, &m->mom[i], L.mom[i]);
        else
            ssd_fill(m->be, &m->momentum, 0.0);
        ssd_model_zero_grad(m);
        m->momentum_valid = L.st.momentum_valid != 0;
        m->num_batches_tracked = L.nbt;
        *st = L.st;
    }
    free(L.p);
    free(L.mom);
    free(L.b);
    return s;
}
