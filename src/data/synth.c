/* Synthetic COCO-format dataset writer (synth.h).
 *
 * Every image is drawn from its own Philox stream (seed, SYNTH_DOMAIN, split, 0, index), so an
 * image does not depend on any other; image ids come from a second stream per split. Geometry
 * is kept in hundredths of a pixel (COCO writes two decimals), so a bbox written to JSON is
 * exactly the box used for drawing and always lies inside the image. A pixel belongs to a
 * shape when its centre (x + 0.5, y + 0.5) is inside it; area = the number of such pixels
 * (what COCO's mask areas measure), counted before later shapes cover parts of it. */
#include "data/synth.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/rng.h"
#include "core/strbuf.h"
#include "data/image.h"
#include "data/jpeg.h"
#include "io/file.h"

#define SYNTH_DOMAIN 0x53594e54u /* "SYNT": the Philox domain of this generator */
#define SYNTH_MAX_IMAGES 1000000
#define SYNTH_MAX_OBJECTS 8
#define SYNTH_PI 3.14159265358979323846

/* The 80 COCO 2017 categories: id, name, supercategory, in the file order of
 * instances_*2017.json (ascending id). */
static const struct {
    int id;
    const char *name, *super;
} k_cats[80] = {
    {1, "person", "person"},          {2, "bicycle", "vehicle"},
    {3, "car", "vehicle"},            {4, "motorcycle", "vehicle"},
    {5, "airplane", "vehicle"},       {6, "bus", "vehicle"},
    {7, "train", "vehicle"},          {8, "truck", "vehicle"},
    {9, "boat", "vehicle"},           {10, "traffic light", "outdoor"},
    {11, "fire hydrant", "outdoor"},  {13, "stop sign", "outdoor"},
    {14, "parking meter", "outdoor"}, {15, "bench", "outdoor"},
    {16, "bird", "animal"},           {17, "cat", "animal"},
    {18, "dog", "animal"},            {19, "horse", "animal"},
    {20, "sheep", "animal"},          {21, "cow", "animal"},
    {22, "elephant", "animal"},       {23, "bear", "animal"},
    {24, "zebra", "animal"},          {25, "giraffe", "animal"},
    {27, "backpack", "accessory"},    {28, "umbrella", "accessory"},
    {31, "handbag", "accessory"},     {32, "tie", "accessory"},
    {33, "suitcase", "accessory"},    {34, "frisbee", "sports"},
    {35, "skis", "sports"},           {36, "snowboard", "sports"},
    {37, "sports ball", "sports"},    {38, "kite", "sports"},
    {39, "baseball bat", "sports"},   {40, "baseball glove", "sports"},
    {41, "skateboard", "sports"},     {42, "surfboard", "sports"},
    {43, "tennis racket", "sports"},  {44, "bottle", "kitchen"},
    {46, "wine glass", "kitchen"},    {47, "cup", "kitchen"},
    {48, "fork", "kitchen"},          {49, "knife", "kitchen"},
    {50, "spoon", "kitchen"},         {51, "bowl", "kitchen"},
    {52, "banana", "food"},           {53, "apple", "food"},
    {54, "sandwich", "food"},         {55, "orange", "food"},
    {56, "broccoli", "food"},         {57, "carrot", "food"},
    {58, "hot dog", "food"},          {59, "pizza", "food"},
    {60, "donut", "food"},            {61, "cake", "food"},
    {62, "chair", "furniture"},       {63, "couch", "furniture"},
    {64, "potted plant", "furniture"}, {65, "bed", "furniture"},
    {67, "dining table", "furniture"}, {70, "toilet", "furniture"},
    {72, "tv", "electronic"},         {73, "laptop", "electronic"},
    {74, "mouse", "electronic"},      {75, "remote", "electronic"},
    {76, "keyboard", "electronic"},   {77, "cell phone", "electronic"},
    {78, "microwave", "appliance"},   {79, "oven", "appliance"},
    {80, "toaster", "appliance"},     {81, "sink", "appliance"},
    {82, "refrigerator", "appliance"}, {84, "book", "indoor"},
    {85, "clock", "indoor"},          {86, "vase", "indoor"},
    {87, "scissors", "indoor"},       {88, "teddy bear", "indoor"},
    {89, "hair drier", "indoor"},     {90, "toothbrush", "indoor"},
};

static const char *const k_split[2] = {"train2017", "val2017"};

enum { SHAPE_RECT, SHAPE_ELLIPSE, SHAPE_TRIANGLE };

typedef struct shape {
    int kind, cat, crowd;
    int64_t x0, y0, w, h;     /* bounding box, hundredths of a pixel */
    int64_t vx[3], vy[3];     /* triangle vertices, hundredths */
    uint8_t rgb[3];
} shape;

/* ---- geometry ---- */

static int inside(const shape *s, double px, double py) {
    double x0 = s->x0 / 100.0, y0 = s->y0 / 100.0, w = s->w / 100.0, h = s->h / 100.0;
    switch (s->kind) {
    case SHAPE_RECT:
        return px >= x0 && px < x0 + w && py >= y0 && py < y0 + h;
    case SHAPE_ELLIPSE: {
        double a = w / 2, b = h / 2, dx = (px - x0 - a) / a, dy = (py - y0 - b) / b;
        return dx * dx + dy * dy <= 1.0;
    }
    default: {
        int pos = 0, neg = 0;
        for (int k = 0; k < 3; k++) {
            double ax = s->vx[k] / 100.0, ay = s->vy[k] / 100.0;
            double bx = s->vx[(k + 1) % 3] / 100.0, by = s->vy[(k + 1) % 3] / 100.0;
            double e = (bx - ax) * (py - ay) - (by - ay) * (px - ax);
            pos += e >= 0;
            neg += e <= 0;
        }
        return pos == 3 || neg == 3;
    }
    }
}

/* A shape of random kind, size and place inside a W x H image (hundredths). */
static shape random_shape(ssd_rng *r, int W, int H) {
    shape s = {0};
    s.kind = (int)ssd_rng_below(r, 3);
    s.cat = (int)ssd_rng_below(r, 80);
    /* log-uniform widths from 4% to 70% of the image: small (< 32^2), medium and large
     * objects in COCO's sense all occur */
    double fw = exp(ssd_rng_range(r, log(0.04), log(0.7)));
    double ar = exp(ssd_rng_range(r, log(0.5), log(2.0)));
    double w = fw * W, h = w * ar;
    if (w < 6) w = 6;
    if (h < 6) h = 6;
    if (w > W - 1) w = W - 1;
    if (h > H - 1) h = H - 1;
    if (s.kind == SHAPE_RECT) { /* pixel-aligned */
        s.w = 100 * (int64_t)w;
        s.h = 100 * (int64_t)h;
        s.x0 = 100 * (int64_t)ssd_rng_below(r, (uint32_t)(W - s.w / 100 + 1));
        s.y0 = 100 * (int64_t)ssd_rng_below(r, (uint32_t)(H - s.h / 100 + 1));
    } else {
        s.w = (int64_t)(w * 100);
        s.h = (int64_t)(h * 100);
        /* at least 0.01 px from the right/bottom edge, so x + w <= W holds in floating point too */
        s.x0 = ssd_rng_below(r, (uint32_t)(100 * (int64_t)W - s.w));
        s.y0 = ssd_rng_below(r, (uint32_t)(100 * (int64_t)H - s.h));
    }
    if (s.kind == SHAPE_TRIANGLE) { /* apex on one horizontal edge, base on the other */
        int flip = (int)ssd_rng_below(r, 2);
        int64_t top = flip ? s.y0 + s.h : s.y0, bottom = flip ? s.y0 : s.y0 + s.h;
        s.vx[0] = s.x0 + (int64_t)(ssd_rng_uniform_f64(r) * (double)s.w);
        s.vy[0] = top;
        s.vx[1] = s.x0 + s.w, s.vy[1] = bottom;
        s.vx[2] = s.x0, s.vy[2] = bottom;
    }
    for (int c = 0; c < 3; c++) s.rgb[c] = (uint8_t)ssd_rng_below(r, 256);
    return s;
}

/* ---- JSON pieces ---- */

static void put_centi(ssd_strbuf *b, int64_t v) { ssd_sb_json_double(b, (double)v / 100.0); }

static void put_polygon(ssd_strbuf *b, const shape *s) {
    int64_t px[24], py[24];
    int n = 0;
    if (s->kind == SHAPE_RECT) {
        int64_t xs[4] = {s->x0, s->x0 + s->w, s->x0 + s->w, s->x0};
        int64_t ys[4] = {s->y0, s->y0, s->y0 + s->h, s->y0 + s->h};
        for (n = 0; n < 4; n++) px[n] = xs[n], py[n] = ys[n];
    } else if (s->kind == SHAPE_TRIANGLE) {
        for (n = 0; n < 3; n++) px[n] = s->vx[n], py[n] = s->vy[n];
    } else {
        double cx = s->x0 + s->w / 2.0, cy = s->y0 + s->h / 2.0;
        for (n = 0; n < 24; n++) {
            double t = 2 * SYNTH_PI * n / 24;
            int64_t x = llround(cx + s->w / 2.0 * cos(t)), y = llround(cy + s->h / 2.0 * sin(t));
            px[n] = x < s->x0 ? s->x0 : x > s->x0 + s->w ? s->x0 + s->w : x;
            py[n] = y < s->y0 ? s->y0 : y > s->y0 + s->h ? s->y0 + s->h : y;
        }
    }
    ssd_sb_puts(b, "[[");
    for (int k = 0; k < n; k++) {
        if (k) ssd_sb_puts(b, ",");
        put_centi(b, px[k]);
        ssd_sb_puts(b, ",");
        put_centi(b, py[k]);
    }
    ssd_sb_puts(b, "]]");
}

/* Uncompressed RLE of a W x H mask in column-major order (pycocotools): run lengths of
 * alternating 0s and 1s, starting with 0s. */
static void put_rle(ssd_strbuf *b, const uint8_t *mask, int W, int H) {
    ssd_sb_puts(b, "{\"counts\":[");
    int64_t run = 0;
    uint8_t cur = 0;
    int first = 1;
    for (int x = 0; x < W; x++)
        for (int y = 0; y < H; y++) {
            uint8_t v = mask[(size_t)y * W + x];
            if (v != cur) {
                ssd_sb_printf(b, "%s%lld", first ? "" : ",", (long long)run);
                first = 0;
                run = 0;
                cur = v;
            }
            run++;
        }
    ssd_sb_printf(b, "%s%lld],\"size\":[%d,%d]}", first ? "" : ",", (long long)run, H, W);
}

/* ---- one image ---- */

typedef struct split_out {
    ssd_strbuf images, anns;
    int n_images, n_anns;
} split_out;

/* Draws image `index` of split `sp`, writes its JPEG and appends its JSON records. */
static ssd_status make_image(const ssd_synth_cfg *cfg, int quality, int sp, int index,
                             int64_t image_id, int64_t *ann_id, ssd_jpeg *jpeg, ssd_image *im,
                             uint8_t **mask, size_t *mask_cap, split_out *out,
                             ssd_synth_stats *st, ssd_error *err) {
    ssd_rng r = ssd_rng_stream(cfg->seed, SYNTH_DOMAIN, (uint32_t)sp, 0, (uint64_t)index);
    /* size: long side 640 (as most COCO images) or 240..640; short side 0.5..1 of it */
    int lng = ssd_rng_below(&r, 2) ? 640 : 240 + (int)ssd_rng_below(&r, 401);
    int sht = (int)lround(lng * ssd_rng_range(&r, 0.5, 1.0));
    if (sht < 160) sht = 160;
    int landscape = ssd_rng_uniform_f64(&r) < 0.7;
    int W = landscape ? lng : sht, H = landscape ? sht : lng;
    /* fixed indices guarantee each feature in every split of 6+ images; the rest is random */
    int gray = index == 3 || ssd_rng_uniform_f64(&r) < 0.06;
    int empty = index == 5 || ssd_rng_uniform_f64(&r) < 0.05;
    int nobj = empty ? 0 : 1 + (int)ssd_rng_below(&r, SYNTH_MAX_OBJECTS);

    /* background: a gradient between two colours along a random direction */
    ssd_image_reserve(im, W, H);
    uint8_t c0[3], c1[3];
    for (int c = 0; c < 3; c++) c0[c] = (uint8_t)ssd_rng_below(&r, 256), c1[c] = (uint8_t)ssd_rng_below(&r, 256);
    double ang = ssd_rng_range(&r, 0, 2 * SYNTH_PI), dx = cos(ang), dy = sin(ang);
    double span = fabs(dx) * W + fabs(dy) * H, off = (dx < 0 ? -dx * W : 0) + (dy < 0 ? -dy * H : 0);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double t = (dx * x + dy * y + off) / span;
            uint8_t *p = im->px + 3 * ((size_t)y * W + x);
            for (int c = 0; c < 3; c++) p[c] = (uint8_t)lround(c0[c] + t * (c1[c] - c0[c]));
        }

    /* shapes, drawn in order (later ones may cover earlier ones) */
    for (int k = 0; k < nobj; k++) {
        shape s = random_shape(&r, W, H);
        s.crowd = (index == 1 && k == 0) || ssd_rng_uniform_f64(&r) < 0.04;
        size_t npx = (size_t)W * H;
        if (s.crowd) {
            if (npx > *mask_cap) {
                free(*mask);
                *mask = ssd_xmalloc(npx);
                *mask_cap = npx;
            }
            memset(*mask, 0, npx);
        }
        int xa = (int)(s.x0 / 100), xb = (int)((s.x0 + s.w + 99) / 100);
        int ya = (int)(s.y0 / 100), yb = (int)((s.y0 + s.h + 99) / 100);
        int64_t area = 0;
        int mx0 = W, my0 = H, mx1 = -1, my1 = -1;
        for (int y = ya; y < yb && y < H; y++)
            for (int x = xa; x < xb && x < W; x++) {
                if (!inside(&s, x + 0.5, y + 0.5)) continue;
                memcpy(im->px + 3 * ((size_t)y * W + x), s.rgb, 3);
                area++;
                if (s.crowd) {
                    (*mask)[(size_t)y * W + x] = 1;
                    if (x < mx0) mx0 = x;
                    if (x > mx1) mx1 = x;
                    if (y < my0) my0 = y;
                    if (y > my1) my1 = y;
                }
            }
        if (area == 0) continue; /* a sliver with no pixel centre inside: not an object */
        ssd_strbuf *b = &out->anns;
        ssd_sb_printf(b, "%s{\"segmentation\":", out->n_anns ? ",\n" : "\n");
        if (s.crowd) put_rle(b, *mask, W, H);
        else put_polygon(b, &s);
        ssd_sb_printf(b, ",\"area\":%lld,\"iscrowd\":%d,\"image_id\":%lld,\"bbox\":[", (long long)area,
                      s.crowd, (long long)image_id);
        if (s.crowd) { /* the box of the mask's pixels */
            ssd_sb_printf(b, "%d,%d,%d,%d", mx0, my0, mx1 - mx0 + 1, my1 - my0 + 1);
        } else {
            put_centi(b, s.x0);
            ssd_sb_puts(b, ",");
            put_centi(b, s.y0);
            ssd_sb_puts(b, ",");
            put_centi(b, s.w);
            ssd_sb_puts(b, ",");
            put_centi(b, s.h);
        }
        ssd_sb_printf(b, "],\"category_id\":%d,\"id\":%lld}", k_cats[s.cat].id, (long long)++*ann_id);
        out->n_anns++;
        st->annotations[sp]++;
        st->crowd[sp] += s.crowd;
    }

    /* sensor-like noise over everything, then optional grayscale (luma in every channel) */
    int amp = 3 + (int)ssd_rng_below(&r, 14);
    for (size_t i = 0; i < (size_t)W * H; i++) {
        uint32_t u = ssd_rng_u32(&r);
        uint8_t *p = im->px + 3 * i;
        for (int c = 0; c < 3; c++) {
            int v = p[c] + (int)((u >> (8 * c)) & 0xff) % (2 * amp + 1) - amp;
            p[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        if (gray) {
            int l = (299 * p[0] + 587 * p[1] + 114 * p[2] + 500) / 1000;
            p[0] = p[1] = p[2] = (uint8_t)l;
        }
    }

    char path[4096];
    snprintf(path, sizeof path, "%s/%s/%012lld.jpg", cfg->out_dir, k_split[sp], (long long)image_id);
    uint8_t *jpg = NULL;
    size_t len = 0;
    ssd_status status = ssd_jpeg_encode(jpeg, im, quality, gray, &jpg, &len, err);
    if (status == SSD_OK) status = ssd_write_file_atomic(path, jpg, len, err);
    free(jpg);
    if (status != SSD_OK) return status;

    ssd_sb_printf(&out->images,
                  "%s{\"license\":1,\"file_name\":\"%012lld.jpg\",\"coco_url\":\"\",\"height\":%d,"
                  "\"width\":%d,\"date_captured\":\"2017-01-01 00:00:00\",\"flickr_url\":\"\","
                  "\"id\":%lld}",
                  out->n_images ? ",\n" : "\n", (long long)image_id, H, W, (long long)image_id);
    out->n_images++;
    st->images[sp]++;
    st->gray_images[sp] += gray;
    return SSD_OK;
}

/* ---- directories ---- */

static int dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 1;
    int empty = 1;
    for (struct dirent *e; empty && (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) empty = 0;
    closedir(d);
    return empty;
}

/* ---- the dataset ---- */

static ssd_status write_json(const ssd_synth_cfg *cfg, int sp, const split_out *o, ssd_error *err) {
    ssd_strbuf b = {0};
    ssd_sb_printf(&b,
                  "{\"info\":{\"description\":\"ssd synth: synthetic COCO-format detection data "
                  "(%s, seed %u)\",\"url\":\"\",\"version\":\"1.0\",\"year\":2017,"
                  "\"contributor\":\"ssd synth\",\"date_created\":\"2017/09/01\"},\n"
                  "\"licenses\":[{\"url\":\"https://creativecommons.org/publicdomain/zero/1.0/\","
                  "\"id\":1,\"name\":\"CC0 1.0 (synthetic images drawn by ssd synth)\"}],\n"
                  "\"images\":[",
                  k_split[sp], cfg->seed);
    ssd_sb_putn(&b, o->images.s ? o->images.s : "", o->images.len);
    ssd_sb_puts(&b, "],\n\"annotations\":[");
    ssd_sb_putn(&b, o->anns.s ? o->anns.s : "", o->anns.len);
    ssd_sb_puts(&b, "],\n\"categories\":[");
    for (int c = 0; c < 80; c++) {
        ssd_sb_printf(&b, "%s{\"supercategory\":", c ? ",\n" : "\n");
        ssd_sb_json_str(&b, k_cats[c].super);
        ssd_sb_printf(&b, ",\"id\":%d,\"name\":", k_cats[c].id);
        ssd_sb_json_str(&b, k_cats[c].name);
        ssd_sb_puts(&b, "}");
    }
    ssd_sb_puts(&b, "]}\n");
    char path[4096];
    snprintf(path, sizeof path, "%s/annotations/instances_%s.json", cfg->out_dir, k_split[sp]);
    ssd_status st = ssd_write_file_atomic(path, b.s, b.len, err);
    ssd_sb_free(&b);
    return st;
}

ssd_status ssd_synth_write(const ssd_synth_cfg *cfg, ssd_error *err) {
    if (!cfg->out_dir || !*cfg->out_dir)
        return ssd_fail(err, SSD_ERR_ARG, "synth: no output directory given");
    if (cfg->n_train < 1 || cfg->n_train > SYNTH_MAX_IMAGES || cfg->n_val < 1 ||
        cfg->n_val > SYNTH_MAX_IMAGES)
        return ssd_fail(err, SSD_ERR_ARG, "synth: image counts %d (train) and %d (val) must be in "
                        "1..%d", cfg->n_train, cfg->n_val, SYNTH_MAX_IMAGES);
    int quality = cfg->quality ? cfg->quality : 90;
    if (quality < 1 || quality > 100)
        return ssd_fail(err, SSD_ERR_ARG, "synth: JPEG quality %d not in 1..100", quality);
    if (strlen(cfg->out_dir) > 3000)
        return ssd_fail(err, SSD_ERR_ARG, "synth: output directory name too long");
    struct stat sb;
    if (stat(cfg->out_dir, &sb) == 0 && S_ISDIR(sb.st_mode) && !cfg->force &&
        !dir_is_empty(cfg->out_dir))
        return ssd_fail(err, SSD_ERR_ARG, "%s: directory exists and is not empty (use --force to "
                        "write into it)", cfg->out_dir);
    ssd_status st = ssd_make_dirs(cfg->out_dir, err);
    char sub[4096];
    const char *subs[3] = {"train2017", "val2017", "annotations"};
    for (int i = 0; i < 3 && st == SSD_OK; i++) {
        snprintf(sub, sizeof sub, "%s/%s", cfg->out_dir, subs[i]);
        st = ssd_make_dirs(sub, err);
    }
    if (st != SSD_OK) return st;

    /* image ids: increasing with random gaps, train first, val above all train ids */
    int n[2] = {cfg->n_train, cfg->n_val};
    int64_t *ids[2];
    int64_t next = 0;
    for (int sp = 0; sp < 2; sp++) {
        ssd_rng r = ssd_rng_stream(cfg->seed, SYNTH_DOMAIN, (uint32_t)sp, 1, 0);
        ids[sp] = ssd_xmalloc(sizeof(int64_t) * (size_t)n[sp]);
        next += sp ? 1000 : 0;
        for (int i = 0; i < n[sp]; i++) ids[sp][i] = next += 1 + ssd_rng_below(&r, 9);
    }

    ssd_synth_stats stats;
    split_out out[2];
    memset(&stats, 0, sizeof stats);
    memset(out, 0, sizeof out);
    ssd_jpeg *jpeg = ssd_jpeg_create();
    ssd_image im = {0};
    uint8_t *mask = NULL;
    size_t mask_cap = 0;
    int64_t ann_id = 0;
    for (int sp = 0; sp < 2 && st == SSD_OK; sp++)
        for (int i = 0; i < n[sp] && st == SSD_OK; i++) {
            int before = stats.annotations[sp];
            st = make_image(cfg, quality, sp, i, ids[sp][i], &ann_id, jpeg, &im, &mask, &mask_cap,
                            &out[sp], &stats, err);
            if (st == SSD_OK && stats.annotations[sp] == before) stats.empty_images[sp]++;
        }
    for (int sp = 0; sp < 2 && st == SSD_OK; sp++) st = write_json(cfg, sp, &out[sp], err);
    if (st == SSD_OK && cfg->stats) *cfg->stats = stats;
    for (int sp = 0; sp < 2; sp++) {
        ssd_sb_free(&out[sp].images);
        ssd_sb_free(&out[sp].anns);
        free(ids[sp]);
    }
    free(mask);
    ssd_image_free(&im);
    ssd_jpeg_destroy(jpeg);
    return st;
}
