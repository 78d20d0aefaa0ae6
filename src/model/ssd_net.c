/* The network's forward and backward as explicit sequences of op-table calls (DESIGN.md 3).
 *
 * Rule for this file: parameter gradients ACCUMULATE (the op table's rule); every activation
 * gradient written here is OVERWRITTEN by the call that produces it. Backward runs the
 * forward's calls in reverse; saved state is whatever the forward left in ssd_acts. */
#include <stdlib.h>
#include <string.h>

#include "box/anchors.h"
#include "core/log.h"
#include "core/mem.h"
#include "model/ssd_model.h"

/* ---- activation planning ----
 *
 * Activations and their gradients take the backend's activation form when it has one
 * (be->act_custom: the cpu backend's native bf16 math keeps them bf16 NHWC, its f32 math f32
 * nChw16c on AVX-512 CPUs, so the layers pass them on without conversions); otherwise, and always for the images, the head outputs
 * (gathered into loc/conf by copy_rows), their gradients and the per-channel tensors, the
 * model's dtype, row-major. */

static bool custom_acts(const ssd_model *m) { return m->be->act_custom && m->dtype == SSD_F32; }

static ssd_tensor act4(ssd_model *m, int64_t n, int64_t c, int64_t h, int64_t w,
                       const char *name) {
    int64_t shape[4] = {n, c, h, w};
    /* nChw16c holds only multiples of 16 channels (every activation of this network is one) */
    if (!custom_acts(m) || !ssd_layout_holds(m->be->act_layout, 4, shape))
        return ssd_backend_tensor_alloc(m->be, m->dtype, 4, shape, name);
    ssd_tensor t = ssd_backend_tensor_alloc(m->be, m->be->act_dtype, 4, shape, name);
    t.layout = m->be->act_layout;
    return t;
}

/* a new tensor in the form (dtype, layout) and shape of `like` */
static ssd_tensor act_like(ssd_model *m, const ssd_tensor *like, const char *name) {
    ssd_tensor t = ssd_backend_tensor_alloc(m->be, like->dtype, like->ndim, like->shape, name);
    t.layout = like->layout;
    return t;
}

static ssd_tensor vec(ssd_model *m, int64_t c, const char *name) {
    return ssd_backend_tensor_alloc(m->be, m->dtype, 1, &c, name);
}

/* A view of raw scratch memory in the form and shape of `like` (scratch is sized in the
 * model's dtype, never smaller than the activation form's). */
static ssd_tensor sview(ssd_model *m, void *mem, const ssd_tensor *like, const char *name) {
    ssd_tensor t = ssd_tensor_view(mem, like->dtype, like->ndim, like->shape, name);
    t.device = m->be->device;
    t.layout = like->layout;
    return t;
}

/* Output shape of conv layer l on input x. */
static void conv_out_shape(const ssd_model *m, const ssd_tensor *x, const ssd_conv_layer *l,
                           int64_t shape[4]) {
    const ssd_tensor *w = &m->p[l->w];
    shape[0] = x->shape[0];
    shape[1] = w->shape[0];
    shape[2] = ssd_conv_out_size(x->shape[2], w->shape[2], l->desc.stride_h, l->desc.pad_h);
    shape[3] = ssd_conv_out_size(x->shape[3], w->shape[3], l->desc.stride_w, l->desc.pad_w);
}

static ssd_tensor conv_act(ssd_model *m, const ssd_tensor *x, const ssd_conv_layer *l,
                           const char *name) {
    int64_t s[4];
    conv_out_shape(m, x, l, s);
    return act4(m, s[0], s[1], s[2], s[3], name);
}

/* A head's output: the model's dtype, row-major (copy_rows gathers it into loc/conf). */
static ssd_tensor head_act(ssd_model *m, const ssd_tensor *x, const ssd_conv_layer *l,
                           const char *name) {
    int64_t s[4];
    conv_out_shape(m, x, l, s);
    return ssd_backend_tensor_alloc(m->be, m->dtype, 4, s, name);
}

static void plan_block(ssd_model *m, ssd_block_acts *b, const ssd_block_layers *l,
                       const ssd_tensor *x) {
    b->c1 = conv_act(m, x, &l->conv1, "c1");
    b->b1 = act_like(m, &b->c1, "b1");
    b->c2 = conv_act(m, &b->b1, &l->conv2, "c2");
    b->out = act_like(m, &b->c2, "block_out");
    int64_t c = b->c2.shape[1];
    for (int i = 0; i < 3; i++) b->sm[i] = vec(m, c, "save_mean"), b->sv[i] = vec(m, c, "save_var");
    if (l->has_ds) {
        b->dsc = conv_act(m, x, &l->ds_conv, "ds_conv");
        b->dsb = act_like(m, &b->dsc, "ds_bn");
    }
}

static int64_t numel_max(int64_t a, const ssd_tensor *t) {
    int64_t n = ssd_tensor_numel(t);
    return n > a ? n : a;
}

static void *scratch(ssd_model *m, int64_t numel) {
    return m->be->ops->alloc(m->be, (size_t)numel * ssd_dtype_size(m->dtype));
}

ssd_acts *ssd_acts_create(ssd_model *m, int n) {
    SSD_ASSERT(n >= 1, "batch size must be >= 1, got %d", n);
    const ssd_net_layers *net = &m->tab.net;
    ssd_acts *a = ssd_xcalloc(1, sizeof *a);
    a->n = n;
    int64_t img_shape[4] = {n, 3, SSD_IMAGE_SIZE, SSD_IMAGE_SIZE};
    ssd_tensor img = ssd_tensor_view(NULL, m->dtype, 4, img_shape, "images");
    a->conv1 = conv_act(m, &img, &net->conv1, "conv1");
    a->bn1 = act_like(m, &a->conv1, "bn1");
    a->sm1 = vec(m, a->conv1.shape[1], "save_mean");
    a->sv1 = vec(m, a->conv1.shape[1], "save_var");
    a->pool = act4(m, n, a->conv1.shape[1], ssd_conv_out_size(a->conv1.shape[2], 3, 2, 1),
                   ssd_conv_out_size(a->conv1.shape[3], 3, 2, 1), "pool");
    const ssd_tensor *x = &a->pool;
    int64_t block_max = ssd_tensor_numel(x);
    for (int i = 0; i < SSD_NUM_BLOCKS; i++) {
        plan_block(m, &a->blk[i], &net->blocks[i], x);
        x = &a->blk[i].out;
        block_max = numel_max(block_max, x);
        block_max = numel_max(block_max, &a->blk[i].c1);
    }
    int64_t head_max = 0;
    for (int i = 0; i < SSD_NUM_EXTRAS; i++) {
        a->ex_a[i] = conv_act(m, x, &net->extra[i][0], "extra_a");
        a->ex_ar[i] = act_like(m, &a->ex_a[i], "extra_a_relu");
        a->ex_b[i] = conv_act(m, &a->ex_ar[i], &net->extra[i][1], "extra_b");
        a->ex_br[i] = act_like(m, &a->ex_b[i], "extra_b_relu");
        a->dex_a[i] = act_like(m, &a->ex_a[i], "d_extra_a");
        a->dex_ar[i] = act_like(m, &a->ex_a[i], "d_extra_a_relu");
        a->dex_b[i] = act_like(m, &a->ex_b[i], "d_extra_b");
        x = &a->ex_br[i];
    }
    for (int i = 0; i < SSD_NUM_LEVELS; i++) {
        const ssd_tensor *f = i == 0 ? &a->blk[SSD_NUM_BLOCKS - 1].out : &a->ex_br[i - 1];
        SSD_ASSERT(f->shape[1] == ssd_level(i)->channels && f->shape[2] == ssd_level(i)->size,
                   "feature map %d has the wrong shape", i);
        a->head_loc[i] = head_act(m, f, &net->loc[i], "head_loc");
        a->head_conf[i] = head_act(m, f, &net->conf[i], "head_conf");
        head_max = numel_max(head_max, &a->head_conf[i]);
        if (i > 0) a->dfeat[i] = act_like(m, f, "d_feature");
    }
    int64_t loc_shape[3] = {n, 4, SSD_NUM_ANCHORS}, conf_shape[3] = {n, SSD_NUM_CLASSES, SSD_NUM_ANCHORS};
    a->loc = ssd_backend_tensor_alloc(m->be, m->dtype, 3, loc_shape, "loc");
    a->conf = ssd_backend_tensor_alloc(m->be, m->dtype, 3, conf_shape, "conf");
    a->dloc = ssd_backend_tensor_alloc(m->be, m->dtype, 3, loc_shape, "dloc");
    a->dconf = ssd_backend_tensor_alloc(m->be, m->dtype, 3, conf_shape, "dconf");
    for (int i = 0; i < 2; i++) {
        a->sx[i] = scratch(m, block_max);
        a->sbig[i] = scratch(m, ssd_tensor_numel(&a->conv1));
    }
    a->sa = scratch(m, block_max);
    a->sb = scratch(m, block_max);
    a->sc = scratch(m, block_max);
    a->shead = scratch(m, head_max);
    a->dfeat[0] = sview(m, a->sx[0], &a->blk[SSD_NUM_BLOCKS - 1].out, "d_feature0");
    return a;
}

static void free_t(ssd_model *m, ssd_tensor *t) {
    if (t->data && t->owns) ssd_backend_tensor_free(m->be, t);
}

void ssd_acts_destroy(ssd_model *m, ssd_acts *a) {
    if (!a) return;
    ssd_tensor *singles[] = {&a->conv1, &a->bn1, &a->pool, &a->sm1, &a->sv1,
                             &a->loc,   &a->conf, &a->dloc, &a->dconf};
    for (size_t i = 0; i < sizeof singles / sizeof singles[0]; i++) free_t(m, singles[i]);
    for (int i = 0; i < SSD_NUM_BLOCKS; i++) {
        ssd_block_acts *b = &a->blk[i];
        ssd_tensor *bt[] = {&b->c1, &b->b1, &b->c2, &b->out, &b->dsc, &b->dsb};
        for (size_t k = 0; k < sizeof bt / sizeof bt[0]; k++) free_t(m, bt[k]);
        for (int k = 0; k < 3; k++) free_t(m, &b->sm[k]), free_t(m, &b->sv[k]);
    }
    for (int i = 0; i < SSD_NUM_EXTRAS; i++) {
        ssd_tensor *et[] = {&a->ex_a[i], &a->ex_ar[i], &a->ex_b[i],
                            &a->ex_br[i], &a->dex_a[i], &a->dex_ar[i], &a->dex_b[i]};
        for (size_t k = 0; k < sizeof et / sizeof et[0]; k++) free_t(m, et[k]);
    }
    for (int i = 0; i < SSD_NUM_LEVELS; i++) {
        free_t(m, &a->head_loc[i]);
        free_t(m, &a->head_conf[i]);
        free_t(m, &a->dfeat[i]); /* level 0 is a view: not freed */
    }
    void *raw[] = {a->sx[0], a->sx[1], a->sa, a->sb, a->sc, a->shead, a->sbig[0], a->sbig[1]};
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) m->be->ops->free(m->be, raw[i]);
    free(a);
}

/* ---- layer helpers ---- */

static void conv_fwd(ssd_model *m, ssd_tensor *out, const ssd_tensor *inp,
                     const ssd_conv_layer *l) {
    ssd_conv2d_forward(m->be, out, inp, &m->p[l->w], l->b >= 0 ? &m->p[l->b] : NULL, &l->desc);
}

/* Parameter gradients of conv l (accumulated); dinp (overwritten) unless NULL. */
static void conv_bwd(ssd_model *m, ssd_tensor *dinp, const ssd_tensor *dout,
                     const ssd_tensor *inp, const ssd_conv_layer *l) {
    ssd_tensor *db = l->b >= 0 ? &m->g[l->b] : NULL;
    if (dinp) /* one call: a backend may convert dout once for both passes */
        ssd_conv2d_backward(m->be, &m->g[l->w], db, dinp, dout, inp, &m->p[l->w], &l->desc);
    else
        ssd_conv2d_backward_weights(m->be, &m->g[l->w], db, dout, inp, &l->desc);
}

static void bn_fwd(ssd_model *m, ssd_tensor *out, ssd_tensor *sm, ssd_tensor *sv,
                   const ssd_tensor *inp, int bn, const ssd_tensor *residual, bool relu,
                   bool train) {
    const ssd_bn_layer *l = &m->tab.net.bn[bn];
    ssd_bn_desc d = {.eps = SSD_BN_EPS, .momentum = SSD_BN_MOMENTUM, .relu = relu};
    if (train)
        ssd_batchnorm_train_forward(m->be, out, sm, sv, &m->buf[l->rmean], &m->buf[l->rvar], inp,
                                    &m->p[l->gamma], &m->p[l->beta], residual, &d);
    else
        ssd_batchnorm_infer_forward(m->be, out, inp, &m->p[l->gamma], &m->p[l->beta],
                                    &m->buf[l->rmean], &m->buf[l->rvar], residual, &d);
}

static void bn_bwd(ssd_model *m, ssd_tensor *dinp, ssd_tensor *dres, const ssd_tensor *dout,
                   const ssd_tensor *out, const ssd_tensor *inp, const ssd_tensor *sm,
                   const ssd_tensor *sv, int bn, bool relu) {
    const ssd_bn_layer *l = &m->tab.net.bn[bn];
    ssd_bn_desc d = {.eps = SSD_BN_EPS, .momentum = SSD_BN_MOMENTUM, .relu = relu};
    ssd_batchnorm_backward(m->be, dinp, dres, &m->g[l->gamma], &m->g[l->beta], dout, out, inp,
                           &m->p[l->gamma], sm, sv, &d);
}

/* ---- backbone ---- */

/* out = ReLU(bn2(conv2(ReLU(bn1(conv1(x))))) + shortcut(x)) */
static void block_forward(ssd_model *m, ssd_block_acts *b, const ssd_block_layers *l,
                          const ssd_tensor *x, bool train) {
    conv_fwd(m, &b->c1, x, &l->conv1);
    bn_fwd(m, &b->b1, &b->sm[0], &b->sv[0], &b->c1, l->bn1, NULL, true, train);
    conv_fwd(m, &b->c2, &b->b1, &l->conv2);
    const ssd_tensor *shortcut = x;
    if (l->has_ds) {
        conv_fwd(m, &b->dsc, x, &l->ds_conv);
        bn_fwd(m, &b->dsb, &b->sm[2], &b->sv[2], &b->dsc, l->ds_bn, NULL, false, train);
        shortcut = &b->dsb;
    }
    bn_fwd(m, &b->out, &b->sm[1], &b->sv[1], &b->c2, l->bn2, shortcut, true, train);
}

/* dx (overwritten) from dy = d(block out). Scratch: sa, sb, sc (block-sized). */
static void block_backward(ssd_model *m, ssd_acts *a, ssd_tensor *dx, const ssd_tensor *dy,
                           ssd_block_acts *b, const ssd_block_layers *l, const ssd_tensor *x) {
    ssd_tensor dc2 = sview(m, a->sa, &b->c2, "d_c2");
    ssd_tensor dshort = sview(m, a->sb, &b->out, "d_shortcut");
    bn_bwd(m, &dc2, &dshort, dy, &b->out, &b->c2, &b->sm[1], &b->sv[1], l->bn2, true);
    ssd_tensor db1 = sview(m, a->sc, &b->b1, "d_b1");
    conv_bwd(m, &db1, &dc2, &b->b1, &l->conv2);
    ssd_tensor dc1 = sview(m, a->sa, &b->c1, "d_c1");
    bn_bwd(m, &dc1, NULL, &db1, &b->b1, &b->c1, &b->sm[0], &b->sv[0], l->bn1, true);
    conv_bwd(m, dx, &dc1, x, &l->conv1);
    if (l->has_ds) {
        ssd_tensor ddsc = sview(m, a->sc, &b->dsc, "d_ds_conv");
        bn_bwd(m, &ddsc, NULL, &dshort, &b->dsb, &b->dsc, &b->sm[2], &b->sv[2], l->ds_bn, false);
        ssd_tensor dxs = sview(m, a->sa, x, "d_x_shortcut");
        conv_bwd(m, &dxs, &ddsc, x, &l->ds_conv);
        ssd_add(m->be, dx, dx, &dxs);
    } else {
        ssd_add(m->be, dx, dx, &dshort);
    }
}

static void backbone_forward(ssd_model *m, ssd_acts *a, const ssd_tensor *images, bool train) {
    const ssd_net_layers *net = &m->tab.net;
    conv_fwd(m, &a->conv1, images, &net->conv1);
    bn_fwd(m, &a->bn1, &a->sm1, &a->sv1, &a->conv1, net->bn1, NULL, true, train);
    ssd_pool_desc pd = {.kernel = 3, .stride = 2, .pad = 1};
    ssd_maxpool_forward(m->be, &a->pool, &a->bn1, &pd);
    const ssd_tensor *x = &a->pool;
    for (int i = 0; i < SSD_NUM_BLOCKS; i++) {
        block_forward(m, &a->blk[i], &net->blocks[i], x, train);
        x = &a->blk[i].out;
    }
}

/* From a->dfeat[0] (= scratch sx[0]) down to conv1's weight gradient. */
static void backbone_backward(ssd_model *m, ssd_acts *a, const ssd_tensor *images) {
    const ssd_net_layers *net = &m->tab.net;
    int cur = 0; /* dy lives in sx[cur] */
    for (int i = SSD_NUM_BLOCKS - 1; i >= 0; i--) {
        const ssd_tensor *x = i > 0 ? &a->blk[i - 1].out : &a->pool;
        ssd_tensor dy = sview(m, a->sx[cur], &a->blk[i].out, "d_block_out");
        ssd_tensor dx = sview(m, a->sx[1 - cur], x, "d_block_in");
        block_backward(m, a, &dx, &dy, &a->blk[i], &net->blocks[i], x);
        cur = 1 - cur;
    }
    ssd_tensor dpool = sview(m, a->sx[cur], &a->pool, "d_pool");
    ssd_tensor dbn1 = sview(m, a->sbig[0], &a->bn1, "d_bn1");
    ssd_pool_desc pd = {.kernel = 3, .stride = 2, .pad = 1};
    ssd_maxpool_backward(m->be, &dbn1, &dpool, &a->bn1, &pd);
    ssd_tensor dconv1 = sview(m, a->sbig[1], &a->conv1, "d_conv1");
    bn_bwd(m, &dconv1, NULL, &dbn1, &a->bn1, &a->conv1, &a->sm1, &a->sv1, net->bn1, true);
    conv_bwd(m, NULL, &dconv1, images, &net->conv1);
}

/* ---- extras and heads ---- */

static const ssd_tensor *feature(ssd_acts *a, int level) {
    return level == 0 ? &a->blk[SSD_NUM_BLOCKS - 1].out : &a->ex_br[level - 1];
}

/* Head output (N, C*nd, s, s) <-> its columns of (N, C, 8732): N*C rows of nd*s*s values. */
static void gather_head(ssd_model *m, ssd_tensor *all, const ssd_tensor *head, int level,
                        bool to_all) {
    const ssd_level_geom *g = ssd_level(level);
    int64_t rows = all->shape[0] * all->shape[1];
    if (to_all)
        ssd_copy_rows(m->be, all, g->offset, SSD_NUM_ANCHORS, head, 0, g->count, rows, g->count);
    else
        ssd_copy_rows(m->be, (ssd_tensor *)head, 0, g->count, all, g->offset, SSD_NUM_ANCHORS,
                      rows, g->count);
}

static void heads_forward(ssd_model *m, ssd_acts *a) {
    const ssd_net_layers *net = &m->tab.net;
    for (int i = 0; i < SSD_NUM_EXTRAS; i++) {
        conv_fwd(m, &a->ex_a[i], feature(a, i), &net->extra[i][0]);
        ssd_relu_forward(m->be, &a->ex_ar[i], &a->ex_a[i]);
        conv_fwd(m, &a->ex_b[i], &a->ex_ar[i], &net->extra[i][1]);
        ssd_relu_forward(m->be, &a->ex_br[i], &a->ex_b[i]);
    }
    for (int i = 0; i < SSD_NUM_LEVELS; i++) {
        conv_fwd(m, &a->head_loc[i], feature(a, i), &net->loc[i]);
        conv_fwd(m, &a->head_conf[i], feature(a, i), &net->conf[i]);
        gather_head(m, &a->loc, &a->head_loc[i], i, true);
        gather_head(m, &a->conf, &a->head_conf[i], i, true);
    }
}

/* dfeat[level] (overwritten) = sum of the loc head's, conf head's and (if any) the next
 * extra block's input gradients. dfeat[level+1] must be complete. */
static void level_backward(ssd_model *m, ssd_acts *a, int level) {
    const ssd_net_layers *net = &m->tab.net;
    const ssd_tensor *f = feature(a, level);
    ssd_tensor *df = &a->dfeat[level];
    ssd_tensor tmp = sview(m, a->sa, f, "d_feature_part");
    ssd_tensor dh = sview(m, a->shead, &a->head_loc[level], "d_head_loc");
    gather_head(m, &a->dloc, &dh, level, false);
    conv_bwd(m, df, &dh, f, &net->loc[level]);
    dh = sview(m, a->shead, &a->head_conf[level], "d_head_conf");
    gather_head(m, &a->dconf, &dh, level, false);
    conv_bwd(m, &tmp, &dh, f, &net->conf[level]);
    ssd_add(m->be, df, df, &tmp);
    if (level < SSD_NUM_EXTRAS) {
        int e = level; /* extra block e maps feature e to feature e+1 */
        ssd_relu_backward(m->be, &a->dex_b[e], &a->dfeat[e + 1], &a->ex_br[e]);
        conv_bwd(m, &a->dex_ar[e], &a->dex_b[e], &a->ex_ar[e], &net->extra[e][1]);
        ssd_relu_backward(m->be, &a->dex_a[e], &a->dex_ar[e], &a->ex_ar[e]);
        conv_bwd(m, &tmp, &a->dex_a[e], f, &net->extra[e][0]);
        ssd_add(m->be, df, df, &tmp);
    }
}

/* ---- whole network ---- */

static void check_images(const ssd_model *m, const ssd_acts *a, const ssd_tensor *images) {
    SSD_ASSERT(images->ndim == 4 && images->shape[0] == a->n && images->shape[1] == 3 &&
                   images->shape[2] == SSD_IMAGE_SIZE && images->shape[3] == SSD_IMAGE_SIZE,
               "model: images must be (%d,3,300,300)", a->n);
    SSD_ASSERT(images->dtype == m->dtype, "model: images are %s, the model runs %s",
               ssd_dtype_name(images->dtype), ssd_dtype_name(m->dtype));
}

void ssd_model_forward(ssd_model *m, ssd_acts *a, const ssd_tensor *images, bool train) {
    check_images(m, a, images);
    backbone_forward(m, a, images, train);
    heads_forward(m, a);
    if (train) m->num_batches_tracked++;
}

void ssd_model_backward(ssd_model *m, ssd_acts *a, const ssd_tensor *images) {
    check_images(m, a, images);
    for (int level = SSD_NUM_LEVELS - 1; level >= 0; level--) level_backward(m, a, level);
    backbone_backward(m, a, images);
}
