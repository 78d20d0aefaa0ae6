/* See trainer.h. The procedure follows spec section 7 line by line; what differs from the
 * reference on purpose (resume continues the epoch loop, checkpoints carry the optimizer) is
 * listed in docs/train.md. */
#include "train/trainer.h"
#ifdef SSD_HAVE_CUDA
#include "backend/cuda/cuda_info.h"
#endif

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/strbuf.h"
#include "core/timer.h"
#include "data/coco_json.h"
#include "data/loader.h"
#include "eval/coco.h"
#include "io/file.h"
#include "model/pretrained.h"
#include "model/ssd_model.h"
#include "train/checkpoint.h"
#include "train/curves.h"
#include "train/evaluate.h"
#include "train/mllog.h"
#include "train/runner.h"
#include "train/schedule.h"

#define PATH_LEN 4096

/* Everything one run holds; released by run_free. */
typedef struct run {
    const ssd_train_cfg *c;
    FILE *progress;
    ssd_backend *be;
    ssd_model *m;
    ssd_runner *r;
    ssd_coco_index *train_idx, *val_idx;
    ssd_coco_gt gt;
    bool have_gt;
    ssd_loader *ld;
    ssd_mllog *log;
    ssd_curves *curves;
    ssd_lr_schedule sched;
    ssd_train_state st;
    char train_dir[PATH_LEN], val_dir[PATH_LEN], train_ann[PATH_LEN], val_ann[PATH_LEN];
    int64_t ipe;           /* optimizer steps per epoch */
    int64_t start_iteration; /* the counter at epoch 0, iteration 0 */
    uint32_t seed;           /* --seed, or on a resume without it the checkpoint's */
    ssd_dist *dist;          /* NULL: one process */
    int rank, world;
    float *frag_images, *frag_bboxes; /* one --batch-splits fragment (batch / splits images) */
    int64_t *frag_labels;
    double t_allreduce;      /* seconds in the gradient all-reduce */
    double t_sync_wait;      /* seconds waiting for the other ranks before it */
    size_t allreduce_bytes;  /* per step and rank */
    bool device_coll;        /* collectives on the device (NCCL), not MPI over host copies */
    char coll_why[200];      /* why not, when several ranks run on a device backend */
    /* progress */
    double t_start, t_steps, t_wait;
    int64_t steps_run, images_run;
    int last_line_len;
} run;

static void run_free(run *R) {
    free(R->frag_images);
    free(R->frag_bboxes);
    free(R->frag_labels);
    ssd_loader_destroy(R->ld);
    ssd_runner_destroy(R->r);
    ssd_model_destroy(R->m);
    ssd_backend_destroy(R->be);
    ssd_coco_index_free(R->train_idx);
    ssd_coco_index_free(R->val_idx);
    if (R->have_gt) ssd_coco_gt_free(&R->gt);
    ssd_curves_close(R->curves);
}

static ssd_status load_data(run *R, ssd_error *err) {
    const ssd_train_cfg *c = R->c;
    if (ssd_coco_split_paths(c->data, "train", R->train_ann, PATH_LEN, R->train_dir, PATH_LEN) ||
        ssd_coco_split_paths(c->data, "val", R->val_ann, PATH_LEN, R->val_dir, PATH_LEN))
        return ssd_fail(err, SSD_ERR_ARG, "--data %s: path too long", c->data);
    const char *dirs[2] = {R->train_dir, R->val_dir};
    for (int i = 0; i < 2; i++)
        if (access(dirs[i], R_OK | X_OK) != 0)
            return ssd_fail(err, SSD_ERR_IO,
                            "%s: %s (--data must hold train2017/, val2017/ and annotations/; "
                            "tools/download_coco2017.sh makes that layout)",
                            dirs[i], strerror(errno));
    bool cached;
    if (ssd_coco_index_load(R->train_ann, c->cache_dir, &R->train_idx, &cached, err) != SSD_OK)
        return err->code;
    if (ssd_coco_index_load(R->val_ann, c->cache_dir, &R->val_idx, &cached, err) != SSD_OK)
        return err->code;
    if (R->train_idx->num_samples < 1)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: no image with an annotation", R->train_ann);
    if (R->val_idx->num_samples < 1)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: no image with an annotation", R->val_ann);
    if (ssd_coco_gt_load(R->val_ann, &R->gt, err) != SSD_OK) return err->code;
    R->have_gt = true;
    return SSD_OK;
}

static ssd_status build_model(run *R, ssd_error *err) {
    const ssd_train_cfg *c = R->c;
    if (ssd_backend_create(c->backend, &R->be, err) != SSD_OK) return err->code;
    R->m = ssd_model_create(R->be, SSD_F32, c->seed);
    if (c->pretrained_backbone) {
        ssd_pretrained_report rep;
        if (ssd_model_load_pretrained_backbone(R->m, c->pretrained_backbone, &rep, err) != SSD_OK)
            return err->code;
        fprintf(R->progress, "ssd train: pretrained backbone %s: %d tensors loaded\n",
                c->pretrained_backbone, rep.loaded);
    }
    R->r = ssd_runner_create(R->m);
    if (c->batch_splits > 1) {
        size_t n = (size_t)(c->batch_size / c->batch_splits);
        R->frag_images = ssd_xmalloc(n * 3 * SSD_IMAGE_SIZE * SSD_IMAGE_SIZE * sizeof(float));
        R->frag_bboxes = ssd_xmalloc(n * SSD_NUM_ANCHORS * 4 * sizeof(float));
        R->frag_labels = ssd_xmalloc(n * SSD_NUM_ANCHORS * sizeof(int64_t));
    }
    return SSD_OK;
}

/* A collective over a model tensor works on host memory: the tensor itself on a host backend;
 * on a GPU a host copy (download, collective, upload), since MPI moves host buffers. */
typedef struct host_view {
    ssd_tensor *t;
    ssd_tensor copy; /* data NULL on a host backend */
} host_view;

static void *host_begin(run *R, ssd_tensor *t, host_view *v) {
    v->t = t;
    memset(&v->copy, 0, sizeof v->copy);
    if (t->device.kind == SSD_DEVICE_HOST) return t->data;
    v->copy = ssd_backend_download_as(R->be, t, t->dtype);
    return v->copy.data;
}

static void host_end(run *R, host_view *v) {
    if (!v->copy.data) return;
    ssd_backend_upload(R->be, v->t, &v->copy);
    ssd_tensor_free(&v->copy);
}

/* The backend's device collectives (cuda: NCCL), joined through MPI; every rank calls this. */
static void coll_bcast_cb(void *ctx, void *buf, size_t bytes) {
    run *R = ctx;
    ssd_dist_bcast(R->dist, buf, bytes, 0);
}

static bool coll_agree_cb(void *ctx, bool ok) {
    run *R = ctx;
    int64_t bad = !ok;
    ssd_dist_allreduce_max_i64(R->dist, &bad, 1);
    return bad == 0;
}

static void init_device_coll(run *R) {
    R->device_coll = false;
    if (R->world <= 1 || R->be->device.kind == SSD_DEVICE_HOST) return;
    if (!R->be->ops->coll_init) {
        snprintf(R->coll_why, sizeof R->coll_why, "backend %s has no device collectives",
                 R->be->name);
        return;
    }
    R->device_coll = R->be->ops->coll_init(R->be, R->rank, R->world, coll_bcast_cb,
                                           coll_agree_cb, R, R->coll_why, sizeof R->coll_why);
}

/* t <- its mean over the ranks: NCCL on the device, or MPI over host memory (in buckets);
 * returns the bytes each rank sent. Synchronised, so a caller's timer covers the transfer. */
static size_t allreduce_mean(run *R, ssd_tensor *t) {
    if (R->device_coll) {
        R->be->ops->coll_allreduce_mean(R->be, t);
        R->be->ops->sync(R->be);
        return ssd_tensor_nbytes(t);
    }
    host_view v;
    void *p = host_begin(R, t, &v);
    size_t bytes = ssd_dist_allreduce_mean_f32(
        R->dist, p, (size_t)ssd_tensor_numel(t),
        R->c->bucket_bytes ? R->c->bucket_bytes : (16u << 20));
    host_end(R, &v);
    return bytes;
}

/* Every rank takes rank 0's model state: parameters, BN buffers and, after a resume, the
 * momentum and counters (DDP broadcasts the parameters at construction). */
static void sync_model(run *R) {
    if (R->world <= 1) return;
    ssd_model *m = R->m;
    ssd_tensor *state[3] = {&m->params, &m->buffers, &m->momentum};
    for (int i = 0; i < 3; i++) {
        if (R->device_coll) {
            R->be->ops->coll_bcast(R->be, state[i], 0);
            continue;
        }
        host_view v;
        void *p = host_begin(R, state[i], &v);
        ssd_dist_bcast(R->dist, p, ssd_tensor_nbytes(state[i]), 0);
        host_end(R, &v);
    }
    int64_t scalars[2] = {m->num_batches_tracked, m->momentum_valid};
    ssd_dist_bcast(R->dist, scalars, sizeof scalars, 0);
    m->num_batches_tracked = scalars[0];
    m->momentum_valid = scalars[1] != 0;
}

/* The reference's step before every evaluation of a multi-rank run: BN running statistics
 * become their mean over ranks, and stay so (spec 1.2). */
static void average_bn_stats(run *R) {
    if (R->world <= 1) return;
    allreduce_mean(R, &R->m->buffers);
}

/* Checkpoint path for the counter value `it`. */
static void ckpt_path(const run *R, int64_t it, char *out, size_t len) {
    snprintf(out, len, "%s/iter_%06" PRId64 ".safetensors", R->c->output, it);
}

static ssd_status save_checkpoint(run *R, int64_t epoch, int64_t it, double avg,
                                  ssd_train_result *res, ssd_error *err) {
    if (R->c->no_save || R->rank != 0) return SSD_OK; /* every rank holds the same weights */
    ssd_train_state st = {0};
    st.epoch = epoch;
    st.iteration = it;
    ssd_loader_position(R->ld, &st.loader_epoch, &st.loader_iter);
    st.seed = R->seed;
    st.avg_loss = avg;
    st.world_size = R->world;
    char path[PATH_LEN];
    ckpt_path(R, it, path, sizeof path);
    if (ssd_checkpoint_save(path, R->m, &st, err) != SSD_OK) return err->code;
    snprintf(res->last_checkpoint, sizeof res->last_checkpoint, "%s", path);
    fprintf(R->progress, "%sssd train: checkpoint %s\n", R->c->live_progress ? "\n" : "", path);
    return SSD_OK;
}

static void fmt_duration(double s, char *buf, size_t len) {
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, len, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else
        snprintf(buf, len, "%ldm%02lds", t / 60, t % 60);
}

/* The progress line of one optimizer step: on a terminal it overwrites itself every step,
 * otherwise it is printed every --log-interval steps. */
static void progress_line(run *R, int64_t epoch, int64_t i, int64_t it, double loss, double avg,
                          double lr, int64_t steps_left, bool force) {
    const ssd_train_cfg *c = R->c;
    bool show = c->live_progress || force ||
                (c->log_interval > 0 && it % c->log_interval == 0);
    if (!show) return;
    double step_s = R->steps_run ? R->t_steps / R->steps_run : 0;
    double ips = R->t_steps > 0 ? R->images_run / R->t_steps : 0;
    double wait_ms = R->steps_run ? 1e3 * R->t_wait / R->steps_run : 0;
    char eta[32];
    fmt_duration(step_s * steps_left, eta, sizeof eta);
    char line[256];
    int n = snprintf(line, sizeof line,
                     "epoch %" PRId64 "/%" PRId64 " iter %" PRId64 "/%" PRId64 " (step %" PRId64
                     ") loss %.4f avg %.4f lr %.6g | %.2f img/s, data wait %.0f ms | ETA %s",
                     epoch + 1, c->epochs, i + 1, R->ipe, it, loss, avg, lr, ips, wait_ms, eta);
    if (c->live_progress) {
        fprintf(R->progress, "\r%s%*s", line, R->last_line_len > n ? R->last_line_len - n : 0,
                "");
        R->last_line_len = n;
    } else {
        fprintf(R->progress, "%s\n", line);
    }
    fflush(R->progress);
}

static void end_live_line(run *R) {
    if (R->c->live_progress && R->last_line_len) {
        fputc('\n', R->progress);
        R->last_line_len = 0;
    }
}

static ssd_status evaluate(run *R, int64_t epoch, int64_t it, ssd_train_result *res,
                           ssd_error *err) {
    const ssd_train_cfg *c = R->c;
    char meta[64], dets[PATH_LEN];
    int en = (int)(epoch + 1);
    ssd_mllog_epoch_meta(meta, sizeof meta, en);
    SSD_MLLOG_NULL(R->log, SSD_MLLOG_INTERVAL_START, "eval_start", meta);
    snprintf(dets, sizeof dets, "%s/detections_epoch%03d.json", c->output, en);
    ssd_eval_cfg ec = {.index = R->val_idx,
                       .image_dir = R->val_dir,
                       .gt = &R->gt,
                       .batch_size = c->val_batch_size,
                       .num_workers = c->num_workers,
                       .loader_cpus = c->loader_cpus,
                       .post = ssd_post_cfg_default(),
                       .dets_path = dets,
                       .log_interval = c->live_progress ? 0 : c->log_interval,
                       .progress = R->progress,
                       .dist = R->dist};
    ec.post.score_thresh = (float)c->nms_valid_thresh;
    ssd_eval_result er;
    end_live_line(R);
    if (ssd_evaluate(R->r, &ec, &er, err) != SSD_OK) return err->code;
    double ap = er.stats[0];
    SSD_MLLOG_DOUBLE(R->log, SSD_MLLOG_POINT_IN_TIME, "eval_accuracy", ap, meta);
    SSD_MLLOG_NULL(R->log, SSD_MLLOG_INTERVAL_END, "eval_stop", meta);
    fprintf(R->progress,
            "ssd train: eval after epoch %d (step %" PRId64 "): mAP %.4f (AP50 %.4f, AP75 %.4f) "
            "on %" PRId64 " images, %" PRId64 " detections, %d batches dropped, %.1f s; "
            "detections in %s\n",
            en, it, ap, er.stats[1], er.stats[2], er.images, er.detections, er.dropped_batches,
            er.seconds, dets);
    res->evaluated = true;
    res->last_map = ap;
    if (ap > res->best_map) res->best_map = ap;
    if (ssd_curves_eval(R->curves, en, it, er.stats, err) != SSD_OK) return err->code;
    return SSD_OK;
}

/* Logs the MLPerf start-up block (hyperparameters) once the sizes are known. */
static ssd_status log_startup(run *R, ssd_error *err) {
    const ssd_train_cfg *c = R->c;
    const char *platform = c->platform;
#ifdef SSD_HAVE_CUDA
    char gpu_plat[400];
    ssd_cuda_info gi;
    if (c->platform_is_default && ssd_cuda_describe(R->be, &gi)) {
        snprintf(gpu_plat, sizeof gpu_plat, "%d x %s, cuda backend", R->world, gi.name);
        platform = gpu_plat;
    }
#endif
    ssd_mllog_run_info info = {
        .org = c->org,
        .platform = platform,
        .division = c->division,
        .status = c->status,
        .seed = R->seed,
        .global_batch_size = c->batch_size * R->world,
        .gradient_accumulation_steps = c->batch_splits,
        .model_bn_span = c->batch_size / c->batch_splits, /* images per BN group: a fragment of
                                                              one rank's batch */
        .opt_base_learning_rate = R->sched.base_lr,
        .opt_weight_decay = c->weight_decay,
        /* the checker wants >= 1 even without warmup (docs/train.md) */
        .opt_learning_rate_warmup_steps = R->sched.warmup_iters > 0 ? R->sched.warmup_iters : 1,
        .opt_learning_rate_warmup_factor = c->warmup_factor,
        .opt_learning_rate_decay_boundary_epochs = {c->n_decay > 0 ? c->decay_epochs[0] : 0,
                                                    c->n_decay > 1 ? c->decay_epochs[1] : 0},
        .max_samples = c->num_cropping_iterations,
        .train_samples = R->train_idx->num_samples,
        .eval_samples = R->val_idx->num_samples,
    };
    return ssd_mllog_startup(R->log, &info, err);
}

static ssd_status resume(run *R, ssd_error *err) {
    const ssd_train_cfg *c = R->c;
    if (ssd_checkpoint_load(c->checkpoint, R->m, &R->st, err) != SSD_OK) return err->code;
    if (!c->seed_given)
        R->seed = R->st.seed; /* the run's own seed */
    else if (R->st.seed != c->seed)
        return ssd_fail(err, SSD_ERR_ARG,
                        "%s: written by a run with --seed %u, not %u (resume with the same "
                        "flags; the seed drives the data order and augmentation)",
                        c->checkpoint, R->st.seed, c->seed);
    if (R->st.world_size != R->world)
        return ssd_fail(err, SSD_ERR_ARG,
                        "%s: written by a run of %" PRId64 " rank(s), this one has %d (the data "
                        "position is per rank: resume with the same number of processes)",
                        c->checkpoint, R->st.world_size, R->world);
    if (R->st.loader_epoch != R->st.epoch)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: epoch %" PRId64 " but loader epoch %" PRId64,
                        c->checkpoint, R->st.epoch, R->st.loader_epoch);
    if (R->st.loader_iter >= R->ipe)
        return ssd_fail(err, SSD_ERR_ARG,
                        "%s: loader iteration %" PRId64 " but an epoch has %" PRId64
                        " batches (resume with the same data and --batch-size)",
                        c->checkpoint, R->st.loader_iter, R->ipe);
    int64_t done = R->st.epoch * R->ipe + R->st.loader_iter;
    R->start_iteration = R->st.iteration - done;
    if (R->start_iteration < 0)
        return ssd_fail(err, SSD_ERR_FORMAT, "%s: iteration %" PRId64 " is before its position",
                        c->checkpoint, R->st.iteration);
    fprintf(R->progress,
            "ssd train: resumed from %s: epoch %" PRId64 ", batch %" PRId64 ", step %" PRId64
            ", seed %u\n",
            c->checkpoint, R->st.epoch + 1, R->st.loader_iter, R->st.iteration, R->seed);
    return SSD_OK;
}

/* Creates the training loader at the run's position (epoch st.epoch, batch st.loader_iter). */
static ssd_status make_loader(run *R, ssd_error *err) {
    const ssd_train_cfg *c = R->c;
    ssd_loader_cfg lc;
    ssd_loader_cfg_default(&lc);
    lc.index = R->train_idx;
    lc.image_dir = R->train_dir;
    lc.host_alloc = ssd_backend_pinned_alloc; /* pinned on a GPU: uploads at DMA speed */
    lc.host_free = ssd_backend_pinned_free;
    lc.host_ctx = R->be;
    lc.train = 1;
    lc.batch_size = c->batch_size;
    lc.num_workers = c->num_workers;
    lc.worker_cpus = c->loader_cpus;
    lc.rank = R->rank;
    lc.world = R->world;
    lc.seed = R->seed;
    lc.aug.crop_iterations = c->num_cropping_iterations;
    lc.augment = c->augment;
    lc.start_epoch = R->st.epoch;
    lc.start_iter = R->st.loader_iter;
    lc.epochs = c->epochs - R->st.epoch;
    if (lc.epochs < 1) lc.epochs = 1; /* nothing left to train; created for its sizes */
    return ssd_loader_create(&lc, &R->ld, err);
}

/* One batch as --batch-splits fragments (fragment f = the batch's images f, f + splits, ...:
 * batch_size / splits images, fewer in a short last batch): each fragment's forward and
 * backward in turn, its gradient weighted by its share of the batch, one optimizer step after
 * all. Interleaved so that `-b K*B --batch-splits K` computes what K ranks of batch B do. Returns the share-weighted loss (the
 * reference prints the last fragment's weighted loss instead). BN statistics are those of each
 * fragment, as in the reference. */
static float train_batch_local(run *R, const ssd_batch *b) {
    const int splits = R->c->batch_splits;
    if (splits <= 1) return ssd_runner_train_step(R->r, b->n, b->images, b->bboxes, b->labels, NULL);
    const size_t img = (size_t)3 * SSD_IMAGE_SIZE * SSD_IMAGE_SIZE;
    const size_t box = (size_t)SSD_NUM_ANCHORS * 4, lab = SSD_NUM_ANCHORS;
    double loss = 0;
    bool first = true;
    for (int f = 0; f < splits && f < b->n; f++) {
        int n = 0; /* fragment f: the batch's images f, f + splits, f + 2 splits, ... */
        for (int k = f; k < b->n; k += splits, n++) {
            memcpy(R->frag_images + n * img, b->images + k * img, img * sizeof(float));
            memcpy(R->frag_bboxes + n * box, b->bboxes + k * box, box * sizeof(float));
            memcpy(R->frag_labels + n * lab, b->labels + k * lab, lab * sizeof(int64_t));
        }
        float w = (float)n / (float)b->n;
        float l = ssd_runner_train_fragment(R->r, n, R->frag_images, R->frag_bboxes,
                                            R->frag_labels, NULL, w, first);
        first = false;
        loss += (double)w * l;
    }
    return (float)loss;
}

/* The batch on this rank, then (several ranks) the gradient averaged over ranks as DDP does,
 * and the mean of the ranks' losses, which every rank logs and checks. */
static float train_batch(run *R, const ssd_batch *b) {
    float loss = train_batch_local(R, b);
    if (R->world <= 1) return loss;
    double t0 = ssd_now();
    ssd_dist_barrier(R->dist); /* waiting for the slowest rank, timed apart from the transfer */
    double t1 = ssd_now();
    R->t_sync_wait += t1 - t0;
    R->allreduce_bytes = allreduce_mean(R, &R->m->grads);
    double l = loss; /* inf stays inf, NaN stays NaN */
    ssd_dist_allreduce_sum_f64(R->dist, &l, 1);
    R->t_allreduce += ssd_now() - t1;
    return (float)(l / R->world);
}

static ssd_status train_loop(run *R, ssd_train_result *res, ssd_error *err) {
    const ssd_train_cfg *c = R->c;
    int64_t it = R->st.iteration, saved_it = -1;
    double avg = R->st.avg_loss;
    bool stop = false;
    res->first_loss = NAN;
    R->t_start = ssd_now();
    int64_t total_steps = c->epochs * R->ipe + R->start_iteration;
    if (c->end_iteration > 0 && c->end_iteration < total_steps) total_steps = c->end_iteration;
    for (int64_t e = R->st.epoch; e < c->epochs && !stop; e++) {
        char meta[64];
        ssd_mllog_epoch_meta(meta, sizeof meta, (int)(e + 1));
        SSD_MLLOG_NULL(R->log, SSD_MLLOG_INTERVAL_START, "epoch_start", meta);
        int64_t i = e == R->st.epoch ? R->st.loader_iter : 0;
        for (; i < R->ipe && !stop; i++) {
            double tw = ssd_now();
            const ssd_batch *b = ssd_loader_next(R->ld);
            double tw1 = ssd_now();
            if (!b) {
                end_live_line(R);
                return ssd_fail(err, SSD_ERR_IO, "training data: %s",
                                ssd_loader_error(R->ld) ? ssd_loader_error(R->ld)
                                                        : "the loader ended early");
            }
            SSD_ASSERT(b->epoch == e && b->iter == i, "loader out of step");
            float loss = train_batch(R, b);
            double lr = ssd_lr_at(&R->sched, e, it);
            ssd_model_sgd_step(R->m, lr, c->momentum, c->weight_decay);
            it++;
            if (isnan(loss)) {
                end_live_line(R);
                return ssd_fail(err, SSD_ERR_ARG,
                                "the loss became NaN at step %" PRId64 " (epoch %" PRId64
                                "): the learning rate %.6g is too high for this setup",
                                it, e + 1, lr);
            }
            if (!isinf(loss)) avg = 0.999 * avg + 0.001 * loss;
            if (isnan(res->first_loss)) res->first_loss = loss;
            double t1 = ssd_now();
            R->t_wait += tw1 - tw;
            R->t_steps += t1 - tw;
            R->steps_run++;
            R->images_run += (int64_t)b->n * R->world;
            if (ssd_curves_step(R->curves, e + 1, it, loss, avg, lr,
                                (double)b->n * R->world / (t1 - tw), err) !=
                SSD_OK)
                return err->code;
            stop = c->end_iteration > 0 && it >= c->end_iteration;
            progress_line(R, e, i, it, loss, avg, lr, total_steps - it, stop);
        }
        if (i < R->ipe) break; /* stopped inside the epoch: no epoch_stop */
        SSD_MLLOG_NULL(R->log, SSD_MLLOG_INTERVAL_END, "epoch_stop", meta);
        res->epochs_done = e + 1;
        if (ssd_eval_due(e, c->val_interval, c->val_epochs, c->n_val_epochs)) {
            end_live_line(R);
            average_bn_stats(R); /* before the checkpoint, as the reference */
            if (save_checkpoint(R, e + 1, it, avg, res, err) != SSD_OK) return err->code;
            saved_it = it;
            if (evaluate(R, e, it, res, err) != SSD_OK) return err->code;
            if (res->last_map >= c->threshold) {
                res->success = true;
                stop = true;
            }
        }
    }
    end_live_line(R);
    if (c->end_iteration > 0 && it >= c->end_iteration)
        fprintf(R->progress, "ssd train: stopped at step %" PRId64 " (--end-iteration)\n", it);
    if (saved_it != it && R->steps_run > 0) {
        int64_t ne, ni;
        ssd_loader_position(R->ld, &ne, &ni);
        if (save_checkpoint(R, ne, it, avg, res, err) != SSD_OK) return err->code;
    }
    res->iterations = it;
    res->last_avg_loss = avg;
    return ssd_curves_draw(R->curves, err);
}

ssd_status ssd_train_run(const ssd_train_cfg *c, FILE *progress, FILE *log_out,
                         ssd_train_result *res, ssd_error *err) {
    memset(res, 0, sizeof *res);
    res->last_map = res->best_map = -1;
    run R = {0};
    R.c = c;
    R.seed = c->seed; /* before the first loader; a resume may replace it */
    R.progress = progress;
    R.dist = c->dist;
    R.rank = ssd_dist_rank(c->dist);
    R.world = ssd_dist_world(c->dist);
    double t0 = ssd_now();
    ssd_status st;
    char path[PATH_LEN];
    /* rank 0 owns the output directory */
    if (R.rank == 0 && (st = ssd_make_dirs(c->output, err)) != SSD_OK) return st;
    snprintf(path, sizeof path, "%s/mllog.txt", c->output);
    if ((st = ssd_mllog_open(path, log_out, R.rank, &R.log, err)) != SSD_OK) return st;
    if ((st = load_data(&R, err)) != SSD_OK) goto done;
    if ((st = build_model(&R, err)) != SSD_OK) goto done;
    /* the loader's epoch length first (a resume needs it); recreated at the resume point */
    if ((st = make_loader(&R, err)) != SSD_OK) goto done;
    R.ipe = ssd_loader_iters_per_epoch(R.ld);
    R.start_iteration = c->iteration;
    R.st.iteration = c->iteration;
    R.st.seed = c->seed;
    if (c->checkpoint) {
        /* rank 0 reads the file (it need not exist on other machines) and sends the state */
        if (R.rank == 0 && (st = resume(&R, err)) != SSD_OK) goto done;
        struct {
            ssd_train_state st;
            uint32_t seed;
            int64_t start_iteration;
        } pos = {R.st, R.seed, R.start_iteration};
        ssd_dist_bcast(R.dist, &pos, sizeof pos, 0);
        R.st = pos.st;
        R.seed = pos.seed;
        R.start_iteration = pos.start_iteration;
        ssd_loader_destroy(R.ld);
        R.ld = NULL;
        if ((st = make_loader(&R, err)) != SSD_OK) goto done;
    }
    init_device_coll(&R);
    sync_model(&R);
    if ((st = ssd_lr_schedule_init(&R.sched, c->lr, c->batch_size * R.world, c->warmup,
                                   c->warmup_factor,
                                   R.train_idx->num_samples, R.ipe, R.start_iteration,
                                   c->decay_epochs, c->n_decay, err)) != SSD_OK)
        goto done;
    snprintf(path, sizeof path, "%s/curves.jsonl", c->output);
    char svg[PATH_LEN];
    snprintf(svg, sizeof svg, "%s/curves.svg", c->output);
    if (R.rank == 0 &&
        (st = ssd_curves_open(&R.curves, path, svg, c->title, R.st.iteration, err)) != SSD_OK)
        goto done;
    if ((st = log_startup(&R, err)) != SSD_OK) goto done;
    SSD_MLLOG_NULL(R.log, SSD_MLLOG_INTERVAL_END, "init_stop", NULL);
    SSD_MLLOG_NULL(R.log, SSD_MLLOG_INTERVAL_START, "run_start", NULL);
    if (R.world > 1)
        fprintf(progress,
                "ssd train: %d ranks (%s), batch %d per rank = global batch %d; rank 0 writes "
                "%s\n",
                R.world, ssd_dist_kind(R.dist), c->batch_size, c->batch_size * R.world,
                c->output);
    if (R.world > 1 && R.be->device.kind != SSD_DEVICE_HOST)
        fprintf(progress, "ssd train: gradients averaged by %s%s%s\n",
                R.device_coll ? "NCCL on the GPUs" : "MPI over host copies",
                R.device_coll ? "" : ": ", R.device_coll ? "" : R.coll_why);
    fprintf(progress,
            "ssd train: %" PRId64 " training images (%" PRId64 " batches of %d per epoch%s), %" PRId64
            " validation images; backend %s; base lr %.6g, warmup %" PRId64 " steps\n",
            R.train_idx->num_samples, R.ipe, c->batch_size, R.world > 1 ? " per rank" : "",
            R.val_idx->num_samples, R.be->name, R.sched.base_lr, R.sched.warmup_iters);
    st = train_loop(&R, res, err);
    res->allreduce_seconds = R.t_allreduce;
    res->sync_wait_seconds = R.t_sync_wait;
    res->steps_run = R.steps_run;
    res->allreduce_bytes = R.allreduce_bytes;
    SSD_MLLOG_NULL(R.log, SSD_MLLOG_INTERVAL_END, "run_stop",
                   res->success ? "{\"status\": \"success\"}" : "{\"status\": \"aborted\"}");
done:
    res->seconds = ssd_now() - t0;
    run_free(&R);
    ssd_error lerr;
    if (ssd_mllog_close(R.log, &lerr) != SSD_OK && st == SSD_OK) {
        *err = lerr;
        st = lerr.code;
    }
    return st;
}
