/* See runner.h. */
#include "train/runner.h"

#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/log.h"
#include "core/timer.h"

#define POOL 3 /* batch sizes kept: the training batch, its short tail, the validation batch */

typedef struct runner_slot {
    int n; /* 0: empty */
    uint64_t used;
    ssd_acts *acts;
    ssd_tensor images; /* on the backend */
    ssd_tensor loc, conf, dloc, dconf; /* host f32 (dloc/dconf: host loss only) */
    ssd_tensor gbox, glabel, per_image; /* on the backend (device loss only) */
    double *per_image_host;
} runner_slot;

struct ssd_runner {
    ssd_model *m;
    ssd_anchors anchors;
    ssd_loss_ws *loss_ws;
    runner_slot slot[POOL];
    bool device_loss;   /* the backend computes the loss (ssd_backend_has_loss) */
    ssd_tensor anchors_dev; /* the anchors' xywh on the backend (device loss only) */
    uint64_t clock;
    ssd_runner_times times;
};

ssd_runner *ssd_runner_create(ssd_model *m) {
    SSD_ASSERT(m->dtype == SSD_F32, "runner: the model must be f32");
    ssd_runner *r = ssd_xcalloc(1, sizeof *r);
    r->m = m;
    ssd_anchors_build(&r->anchors);
    r->loss_ws = ssd_loss_ws_create();
    r->device_loss = ssd_backend_has_loss(m->be) && !getenv("SSD_HOST_LOSS");
    if (r->device_loss) {
        int64_t shape[2] = {SSD_NUM_ANCHORS, 4};
        ssd_tensor host = ssd_tensor_view(r->anchors.xywh, SSD_F32, 2, shape, "anchors");
        r->anchors_dev = ssd_backend_tensor_alloc(m->be, SSD_F32, 2, shape, "anchors");
        ssd_backend_upload(m->be, &r->anchors_dev, &host);
    }
    return r;
}

static void slot_free(ssd_model *m, runner_slot *s) {
    if (!s->n) return;
    ssd_acts_destroy(m, s->acts);
    ssd_backend_tensor_free(m->be, &s->images);
    ssd_tensor_free(&s->loc);
    ssd_tensor_free(&s->conf);
    ssd_tensor_free(&s->dloc);
    ssd_tensor_free(&s->dconf);
    ssd_backend_tensor_free(m->be, &s->gbox); /* no-ops where never allocated */
    ssd_backend_tensor_free(m->be, &s->glabel);
    ssd_backend_tensor_free(m->be, &s->per_image);
    free(s->per_image_host);
    memset(s, 0, sizeof *s);
}

void ssd_runner_destroy(ssd_runner *r) {
    if (!r) return;
    for (int i = 0; i < POOL; i++) slot_free(r->m, &r->slot[i]);
    ssd_backend_tensor_free(r->m->be, &r->anchors_dev);
    ssd_loss_ws_destroy(r->loss_ws);
    free(r);
}

/* The slot for batch size n: found, an empty one, or the least recently used one reused. */
static runner_slot *get_slot(ssd_runner *r, int n) {
    runner_slot *pick = NULL;
    for (int i = 0; i < POOL; i++)
        if (r->slot[i].n == n) {
            pick = &r->slot[i];
            break;
        }
    if (!pick) {
        pick = &r->slot[0];
        for (int i = 1; i < POOL; i++)
            if (r->slot[i].used < pick->used) pick = &r->slot[i];
        slot_free(r->m, pick);
        pick->n = n;
        pick->acts = ssd_acts_create(r->m, n);
        int64_t ishape[4] = {n, 3, SSD_IMAGE_SIZE, SSD_IMAGE_SIZE};
        pick->images = ssd_backend_tensor_alloc(r->m->be, SSD_F32, 4, ishape, "images");
        pick->loc = ssd_tensor_alloc_host(SSD_F32, 3, pick->acts->loc.shape, "loc");
        pick->conf = ssd_tensor_alloc_host(SSD_F32, 3, pick->acts->conf.shape, "conf");
        if (r->device_loss) {
            int64_t bshape[3] = {n, SSD_NUM_ANCHORS, 4}, lshape[2] = {n, SSD_NUM_ANCHORS};
            int64_t pshape[1] = {n};
            pick->gbox = ssd_backend_tensor_alloc(r->m->be, SSD_F32, 3, bshape, "gbox");
            pick->glabel = ssd_backend_tensor_alloc(r->m->be, SSD_I64, 2, lshape, "glabel");
            pick->per_image = ssd_backend_tensor_alloc(r->m->be, SSD_F64, 1, pshape, "per_image");
            pick->per_image_host = ssd_xcalloc((size_t)n, sizeof(double));
        } else {
            pick->dloc = ssd_tensor_alloc_host(SSD_F32, 3, pick->acts->loc.shape, "dloc");
            pick->dconf = ssd_tensor_alloc_host(SSD_F32, 3, pick->acts->conf.shape, "dconf");
        }
    }
    pick->used = ++r->clock;
    return pick;
}

static void upload_images(ssd_runner *r, runner_slot *s, const float *images) {
    int64_t shape[4] = {s->n, 3, SSD_IMAGE_SIZE, SSD_IMAGE_SIZE};
    ssd_tensor host = ssd_tensor_view((void *)images, SSD_F32, 4, shape, "images");
    double t0 = ssd_now();
    ssd_backend_upload(r->m->be, &s->images, &host);
    r->times.upload += ssd_now() - t0;
}

/* The loss on the backend: targets up, the loss kernels, the per-image losses down; the batch
 * loss is their mean taken here in image order, in double, as loss/ssd_loss.c does. */
static float device_loss(ssd_runner *r, runner_slot *s, const float *bboxes,
                         const int64_t *labels, float *per_image, float grad_scale, double t0) {
    ssd_model *m = r->m;
    int n = s->n;
    m->be->ops->sync(m->be);
    double t1 = ssd_now();
    r->times.forward += t1 - t0;
    ssd_tensor hb = ssd_tensor_view((void *)bboxes, SSD_F32, 3, s->gbox.shape, "gbox");
    ssd_tensor hl = ssd_tensor_view((void *)labels, SSD_I64, 2, s->glabel.shape, "glabel");
    ssd_backend_upload(m->be, &s->gbox, &hb);
    ssd_backend_upload(m->be, &s->glabel, &hl);
    ssd_loss_on_backend(m->be, &s->per_image, &s->acts->dloc, &s->acts->dconf, &s->acts->loc,
                        &s->acts->conf, &s->gbox, &s->glabel, &r->anchors_dev, grad_scale);
    m->be->ops->copy_to_host(m->be, s->per_image_host, s->per_image.data,
                             (size_t)n * sizeof(double));
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        total += s->per_image_host[i];
        if (per_image) per_image[i] = (float)s->per_image_host[i];
    }
    r->times.loss += ssd_now() - t1;
    return (float)(total * (1.0 / n));
}

float ssd_runner_train_step(ssd_runner *r, int n, const float *images, const float *bboxes,
                            const int64_t *labels, float *per_image) {
    return ssd_runner_train_fragment(r, n, images, bboxes, labels, per_image, 1.0f, true);
}

float ssd_runner_train_fragment(ssd_runner *r, int n, const float *images, const float *bboxes,
                                const int64_t *labels, float *per_image, float grad_scale,
                                bool zero_grad) {
    ssd_model *m = r->m;
    runner_slot *s = get_slot(r, n);
    if (zero_grad) ssd_model_zero_grad(m);
    double t0 = ssd_now();
    upload_images(r, s, images);
    ssd_model_forward(m, s->acts, &s->images, true);
    if (r->device_loss) {
        float loss = device_loss(r, s, bboxes, labels, per_image, grad_scale, t0);
        double t2 = ssd_now();
        ssd_model_backward(m, s->acts, &s->images);
        m->be->ops->sync(m->be);
        r->times.backward += ssd_now() - t2;
        return loss;
    }
    ssd_backend_download(m->be, &s->loc, &s->acts->loc);
    ssd_backend_download(m->be, &s->conf, &s->acts->conf);
    double t1 = ssd_now();
    float loss = ssd_loss_forward_backward(&r->anchors, n, s->loc.data, s->conf.data, bboxes,
                                           labels, s->dloc.data, s->dconf.data, per_image,
                                           r->loss_ws);
    if (grad_scale != 1.0f) {
        float *dl = s->dloc.data, *dc = s->dconf.data;
        int64_t nl = ssd_tensor_numel(&s->dloc), nc = ssd_tensor_numel(&s->dconf);
        for (int64_t i = 0; i < nl; i++) dl[i] *= grad_scale;
        for (int64_t i = 0; i < nc; i++) dc[i] *= grad_scale;
    }
    ssd_backend_upload(m->be, &s->acts->dloc, &s->dloc);
    ssd_backend_upload(m->be, &s->acts->dconf, &s->dconf);
    double t2 = ssd_now();
    ssd_model_backward(m, s->acts, &s->images);
    m->be->ops->sync(m->be);
    r->times.forward += t1 - t0;
    r->times.loss += t2 - t1;
    r->times.backward += ssd_now() - t2;
    return loss;
}

ssd_runner_times ssd_runner_get_times(const ssd_runner *r) { return r->times; }

void ssd_runner_infer(ssd_runner *r, int n, const float *images, const float **loc,
                      const float **conf) {
    ssd_model *m = r->m;
    runner_slot *s = get_slot(r, n);
    upload_images(r, s, images);
    ssd_model_forward(m, s->acts, &s->images, false);
    ssd_backend_download(m->be, &s->loc, &s->acts->loc);
    ssd_backend_download(m->be, &s->conf, &s->acts->conf);
    m->be->ops->sync(m->be);
    *loc = s->loc.data;
    *conf = s->conf.data;
}

const ssd_anchors *ssd_runner_anchors(const ssd_runner *r) { return &r->anchors; }
ssd_model *ssd_runner_model(const ssd_runner *r) { return r->m; }
