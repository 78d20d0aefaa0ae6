/* See detect.h. */
#include "train/detect.h"

#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/mem.h"
#include "data/augment.h"
#include "data/draw.h"
#include "data/image.h"
#include "data/jpeg.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"

ssd_status ssd_load_inference_weights(ssd_model *m, const char *path, ssd_error *err) {
    ssd_st_file *f = NULL;
    if (ssd_st_read(path, &f, err) != SSD_OK) return err->code;
    const char *fmt = ssd_st_meta(f, "format");
    ssd_train_state ts;
    ssd_status st = fmt && strcmp(fmt, SSD_CHECKPOINT_FORMAT) == 0
                        ? ssd_checkpoint_load_file(f, path, m, &ts, err)
                        : ssd_model_load(m, f, path, false, err);
    ssd_st_free(f);
    return st;
}

ssd_status ssd_inference_open(const char *backend, const char *path, ssd_runner **out,
                              ssd_error *err) {
    *out = NULL;
    ssd_backend *be = NULL;
    if (ssd_backend_create(backend, &be, err) != SSD_OK) return err->code;
    ssd_model *m = ssd_model_create(be, SSD_F32, 1);
    if (ssd_load_inference_weights(m, path, err) != SSD_OK) {
        ssd_model_destroy(m);
        ssd_backend_destroy(be);
        return err->code;
    }
    *out = ssd_runner_create(m);
    return SSD_OK;
}

void ssd_inference_close(ssd_runner *r) {
    if (!r) return;
    ssd_model *m = ssd_runner_model(r);
    ssd_backend *be = m->be;
    ssd_runner_destroy(r);
    ssd_model_destroy(m);
    ssd_backend_destroy(be);
}

void ssd_detect_cfg_default(ssd_detect_cfg *c) {
    c->post = ssd_post_cfg_default();
    c->min_score = 0.3f;
    c->quality = 90;
}

struct ssd_detector {
    ssd_runner *r;
    ssd_detect_cfg cfg;
    ssd_jpeg *jpeg;
    ssd_augment_ws *aws;
    ssd_post_ws *pws;
    ssd_image img;
    float *chw;
    ssd_detection *dets;
};

ssd_detector *ssd_detector_create(ssd_runner *r, const ssd_detect_cfg *cfg) {
    ssd_detector *d = ssd_xcalloc(1, sizeof *d);
    d->r = r;
    d->cfg = *cfg;
    d->jpeg = ssd_jpeg_create();
    d->aws = ssd_augment_ws_create();
    d->pws = ssd_post_ws_create();
    d->chw = ssd_xmalloc(sizeof(float) * 3 * SSD_IMAGE_SIZE * SSD_IMAGE_SIZE);
    d->dets = ssd_xmalloc(sizeof *d->dets * (size_t)cfg->post.max_dets);
    return d;
}

void ssd_detector_destroy(ssd_detector *d) {
    if (!d) return;
    ssd_jpeg_destroy(d->jpeg);
    ssd_augment_ws_destroy(d->aws);
    ssd_post_ws_destroy(d->pws);
    ssd_image_free(&d->img);
    free(d->chw);
    free(d->dets);
    free(d);
}

ssd_status ssd_detect_file(ssd_detector *d, const char *in_path, const char *out_path, FILE *list,
                           int *n_drawn, ssd_error *err) {
    *n_drawn = 0;
    if (ssd_jpeg_decode_file(d->jpeg, in_path, &d->img, err) != SSD_OK) return err->code;
    ssd_augment_val(d->aws, &d->img, d->chw);
    const float *loc, *conf;
    ssd_runner_infer(d->r, 1, d->chw, &loc, &conf);
    int n = ssd_postprocess_image(ssd_runner_anchors(d->r), loc, conf, &d->cfg.post, d->dets, NULL,
                                  d->pws);
    const float W = (float)d->img.w, H = (float)d->img.h;
    /* lowest score first, so the best boxes are drawn on top */
    for (int k = n - 1; k >= 0; k--) {
        const ssd_detection *x = &d->dets[k];
        if (x->score < d->cfg.min_score) continue;
        float l = x->ltrb[0] * W, t = x->ltrb[1] * H, r = x->ltrb[2] * W, b = x->ltrb[3] * H;
        char label[64];
        snprintf(label, sizeof label, "%s %.2f", ssd_coco_class_names[x->label], x->score);
        ssd_draw_label_box(&d->img, l, t, r, b, label, x->label);
        if (list)
            fprintf(list, "%s %s %.4f %.1f %.1f %.1f %.1f\n", in_path,
                    ssd_coco_class_names[x->label], x->score, l, t, r - l, b - t);
        (*n_drawn)++;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ssd_jpeg_encode(d->jpeg, &d->img, d->cfg.quality, 0, &buf, &len, err) != SSD_OK)
        return err->code;
    ssd_status st = ssd_write_file_atomic(out_path, buf, len, err);
    free(buf);
    return st;
}
