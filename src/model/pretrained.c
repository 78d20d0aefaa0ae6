/* Pretrained ResNet-34 backbone from a torchvision state_dict: see pretrained.h. */
#include "model/pretrained.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"

int ssd_backbone_map_name(const char *tv, char *out, size_t len) {
    static const struct { const char *from, *to; } map[] = {
        {"conv1.", "model.layer1.0."}, {"bn1.", "model.layer1.1."},
        {"layer1.", "model.layer1.4."}, {"layer2.", "model.layer1.5."},
        {"layer3.", "model.layer2.0."},
    };
    const char *suffix = ".num_batches_tracked";
    size_t n = strlen(tv), ls = strlen(suffix);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        size_t lf = strlen(map[i].from);
        if (strncmp(tv, map[i].from, lf) != 0) continue;
        if (n > ls && strcmp(tv + n - ls, suffix) == 0) return 0;
        int k = snprintf(out, len, "%s%s", map[i].to, tv + lf);
        return k > 0 && (size_t)k < len ? 1 : -1;
    }
    if (strncmp(tv, "layer4.", 7) == 0 || strncmp(tv, "fc.", 3) == 0) return 0;
    return -1;
}

static bool is_float(ssd_pth_dtype dt) {
    return dt == SSD_PTH_F32 || dt == SSD_PTH_F64 || dt == SSD_PTH_F16 || dt == SSD_PTH_BF16;
}

/* Row `*row` of params ('p') or buffers ('b') called `name`. */
static bool find_row(const ssd_param_table *t, const char *name, char *which, int *row) {
    if ((*row = ssd_param_find(t, name)) >= 0) *which = 'p';
    else if ((*row = ssd_buffer_find(t, name)) >= 0) *which = 'b';
    return *row >= 0;
}

ssd_status ssd_model_load_backbone(ssd_model *m, const ssd_pth_file *f, const char *path,
                                   ssd_pretrained_report *rep, ssd_error *err) {
    const ssd_param_table *tab = &m->tab;
    ssd_pretrained_report r = {.container = ssd_pth_container_name(ssd_pth_kind(f))};
    int n = ssd_pth_count(f);
    /* src[k] = file tensor for param row k (then buffer rows after n_params), or -1 */
    int nrows = tab->n_params + tab->n_buffers;
    int *src = ssd_xmalloc((size_t)nrows * sizeof *src);
    for (int k = 0; k < nrows; k++) src[k] = -1;
    ssd_status st = SSD_OK;
    for (int i = 0; i < n && !st; i++) {
        const ssd_pth_tensor *t = ssd_pth_at(f, i);
        char name[SSD_PTH_MAX_NAME], which;
        int row, kind = ssd_backbone_map_name(t->name, name, sizeof name);
        if (kind == 0) {
            if (strstr(t->name, "num_batches_tracked")) r.skipped_counters++;
            else r.skipped_unused++;
            continue;
        }
        if (kind < 0 || !find_row(tab, name, &which, &row)) {
            st = ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor '%s' is not a key of torchvision's "
                          "ResNet-34 state_dict", path, t->name);
            break;
        }
        const ssd_param_info *info = which == 'p' ? &tab->params[row] : &tab->buffers[row];
        bool ok = t->ndim == info->ndim;
        for (int d = 0; ok && d < info->ndim; d++) ok = t->shape[d] == info->shape[d];
        if (!ok) {
            ssd_tensor got = ssd_tensor_view(NULL, SSD_F32, t->ndim, t->shape, NULL);
            ssd_tensor want = ssd_tensor_view(NULL, SSD_F32, info->ndim, info->shape, NULL);
            char g[96], w[96];
            st = ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor '%s' has shape %s, but the backbone's "
                          "'%s' is %s; nothing was loaded", path, t->name,
                          ssd_shape_str(&got, g, sizeof g), name, ssd_shape_str(&want, w, sizeof w));
        } else if (!is_float(t->dtype)) {
            st = ssd_fail(err, SSD_ERR_FORMAT, "%s: tensor '%s' is %s, expected a float type",
                          path, t->name, ssd_pth_dtype_name(t->dtype));
        } else {
            src[which == 'p' ? row : tab->n_params + row] = i;
        }
    }
    for (int k = 0; k < nrows && !st; k++) {
        const ssd_param_info *info = k < tab->n_params ? &tab->params[k]
                                                       : &tab->buffers[k - tab->n_params];
        if (strncmp(info->name, "model.", 6) != 0) continue; /* not the backbone */
        if (src[k] < 0)
            st = ssd_fail(err, SSD_ERR_FORMAT, "%s: the backbone's '%s' has no tensor in the file "
                          "(torchvision key missing); nothing was loaded", path, info->name);
    }
    if (!st) { /* everything checked: copy through host images of params and buffers */
        ssd_tensor hp = ssd_backend_download_as(m->be, &m->params, m->dtype);
        ssd_tensor hb = ssd_backend_download_as(m->be, &m->buffers, m->dtype);
        for (int k = 0; k < nrows; k++) {
            if (src[k] < 0) continue;
            bool is_p = k < tab->n_params;
            const ssd_param_info *info = is_p ? &tab->params[k] : &tab->buffers[k - tab->n_params];
            ssd_tensor v;
            ssd_pth_as_tensor(ssd_pth_at(f, src[k]), &v, NULL);
            for (int64_t e = 0; e < info->numel; e++)
                ssd_tensor_set(is_p ? &hp : &hb, info->offset + e, ssd_tensor_get(&v, e));
            r.loaded++;
            r.loaded_values += info->numel;
        }
        ssd_backend_upload(m->be, &m->params, &hp);
        ssd_backend_upload(m->be, &m->buffers, &hb);
        ssd_tensor_free(&hp);
        ssd_tensor_free(&hb);
    }
    free(src);
    if (!st && rep) *rep = r;
    return st;
}

ssd_status ssd_model_load_pretrained_backbone(ssd_model *m, const char *path,
                                              ssd_pretrained_report *rep, ssd_error *err) {
    ssd_pth_file *f = NULL;
    ssd_status st = ssd_pth_read(path, &f, err);
    if (!st) st = ssd_model_load_backbone(m, f, path, rep, err);
    ssd_pth_free(f);
    return st;
}
