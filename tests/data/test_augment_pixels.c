/* data/augment's pixel operations against Pillow 9.4 / torchvision 0.14 / torch 1.13
 * (tools/pil_augment_oracle.py, run at test time), bit for bit:
 *   - BILINEAR resize for many sizes (up, down, one axis only, 1xN, same size, other output
 *     sizes) on generated images and real photos, through the public call and the workspace's
 *     portable and AVX2 kernels;
 *   - crop, flip, brightness / contrast / saturation / hue (portable and AVX2 paths; l_round 1
 *     against Pillow itself, l_round 0 against a numpy model of Pillow 5.2.0 that the oracle
 *     checks against Pillow 9.4 wherever the two agree; jitter-range and extreme factors),
 *     ToTensor + Normalize (every byte value in every channel), the validation transform.
 * Without python3 + torch + torchvision the tests print SKIPPED with the reason. */
#include "augment_tu.h"

/* ---------------------------------------------------------------------------------------- */
/* resize                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void test_resize_vs_pil(void **state) {
    (void)state;
    if (!g_have_oracle) return;
    decode_photos();
    ssd_rng r = ssd_rng_stream(11, SSD_RNG_DOMAIN_TEST, 0, 0, 1);
    /* (in w, in h, out w, out h); out 0 = 300 */
    static const int fixed[][4] = {
        {1, 1, 0, 0},     {1, 517, 0, 0},   {517, 1, 0, 0},   {300, 300, 0, 0}, {300, 517, 0, 0},
        {517, 300, 0, 0}, {299, 301, 0, 0}, {301, 299, 0, 0}, {600, 600, 0, 0}, {150, 150, 0, 0},
        {640, 480, 0, 0}, {1000, 50, 0, 0}, {37, 1200, 0, 0}, {2, 3, 0, 0},     {900, 900, 0, 0},
        {3000, 7, 0, 0},  {640, 480, 1, 1}, {640, 480, 640, 1}, {5, 5, 1000, 3}, {33, 71, 71, 33},
    };
    enum { NFIX = sizeof fixed / sizeof fixed[0], NRAND = 90 };
    int ncase = NFIX + NRAND + g_nphotos;
    int (*cs)[4] = ssd_xmalloc((size_t)ncase * sizeof *cs);
    cJSON *jobs = cJSON_CreateArray();
    ssd_image im = {0};
    for (int i = 0; i < ncase; i++) {
        int *c = cs[i];
        char in[64], out[64];
        snprintf(in, sizeof in, "rs_in%d.ppm", i);
        snprintf(out, sizeof out, "rs_out%d.ppm", i);
        if (i < NFIX) {
            memcpy(c, fixed[i], sizeof fixed[i]);
        } else if (i < NFIX + NRAND) {
            int k = i - NFIX;
            c[0] = 1 + (int)ssd_rng_below(&r, k % 3 == 0 ? 1300 : 700);
            c[1] = 1 + (int)ssd_rng_below(&r, k % 3 == 1 ? 1300 : 700);
            if (k % 5 == 0) c[0] = 300; /* one axis only */
            if (k % 7 == 0) c[1] = 300;
            c[2] = c[3] = 0;
            if (k % 4 == 3) { /* other output sizes */
                c[2] = 1 + (int)ssd_rng_below(&r, 600);
                c[3] = 1 + (int)ssd_rng_below(&r, 600);
            }
        }
        if (i < NFIX + NRAND) {
            gen_image(&im, c[0], c[1], i, &r);
            write_ppm(P(in), &im);
        } else {
            snprintf(in, sizeof in, "%s", g_photos[i - NFIX - NRAND]);
            read_ppm(P(in), &im);
            c[0] = im.w, c[1] = im.h, c[2] = c[3] = 0;
        }
        if (c[2] == 0) c[2] = c[3] = SSD_AUG_SIZE;
        cJSON *j = job(jobs, "resize", in, out);
        add_num(j, "w", c[2]);
        add_num(j, "h", c[3]);
    }
    write_json(P("resize.json"), jobs);
    cJSON_Delete(jobs);
    cJSON_Delete(oracle("jobs", P("resize.json"), P("resize_out.json")));

    ssd_augment_ws *ws = ssd_augment_ws_create();
    ssd_image want = {0}, got = {0}, tmp = {0};
    int bad = 0, simd = ssd_augment_simd_available();
    for (int i = 0; i < ncase; i++) {
        char in[64], out[64], what[160];
        if (i < NFIX + NRAND) snprintf(in, sizeof in, "rs_in%d.ppm", i);
        else snprintf(in, sizeof in, "%s", g_photos[i - NFIX - NRAND]);
        snprintf(out, sizeof out, "rs_out%d.ppm", i);
        read_ppm(P(in), &im);
        read_ppm(P(out), &want);
        snprintf(what, sizeof what, "resize %dx%d -> %dx%d (public)", im.w, im.h, cs[i][2],
                 cs[i][3]);
        ssd_pil_resize_bilinear(&im, &got, cs[i][2], cs[i][3], &tmp);
        bad += !images_equal(&got, &want, what);
        for (int s = 0; s <= simd; s++) {
            ssd_augment_ws_set_simd(ws, s);
            snprintf(what, sizeof what, "resize %dx%d -> %dx%d (workspace, %s)", im.w, im.h,
                     cs[i][2], cs[i][3], s ? "AVX2" : "portable");
            ssd_pil_resize_bilinear_ws(ws, &im, &got, cs[i][2], cs[i][3]);
            bad += !images_equal(&got, &want, what);
        }
        unlink(P(out)); /* the scratch folder stays small */
        if (i < NFIX + NRAND) unlink(P(in));
    }
    printf("resize: %d cases (%d real photos) x %d paths vs Pillow %s: %d mismatches\n", ncase,
           g_nphotos, 2 + simd, "BILINEAR", bad);
    assert_int_equal(bad, 0);
    ssd_augment_ws_destroy(ws);
    ssd_image_free(&im);
    ssd_image_free(&want);
    ssd_image_free(&got);
    ssd_image_free(&tmp);
    free(cs);
}


/* ---------------------------------------------------------------------------------------- */
/* colour, ToTensor, crop, flip, val                                                         */
/* ---------------------------------------------------------------------------------------- */

enum { OP_BRIGHT, OP_CONTRAST, OP_SAT, OP_HUE, OP_TENSOR, OP_CROP, OP_FLIP, OP_VAL, NOPS };
static const char *op_name[NOPS] = {"brightness", "contrast", "saturation", "hue",
                                    "to_tensor",  "crop",     "flip",       "val"};

typedef struct pcase {
    int op, l_round, img; /* img: index of the input image */
    float f;
    int box[4];
} pcase;

static void test_pixel_ops_vs_pil(void **state) {
    (void)state;
    if (!g_have_oracle) return;
    decode_photos();
    ssd_rng r = ssd_rng_stream(12, SSD_RNG_DOMAIN_TEST, 0, 0, 2);
    /* inputs: random 300x300 images of every kind, odd small sizes, and 300x300 photos */
    enum { NSYN = 12, MAXC = 1000 };
    int nimg = 0;
    char (*names)[64] = ssd_xmalloc((size_t)(NSYN + 1 + MAX_PHOTOS) * sizeof *names);
    ssd_image im = {0}, tmp = {0}, big = {0};
    static const int small[][2] = {{1, 1}, {7, 3}, {64, 33}, {2, 300}};
    for (int i = 0; i < NSYN; i++) {
        int w = SSD_AUG_SIZE, h = SSD_AUG_SIZE;
        if (i >= NSYN - 4) w = small[i - (NSYN - 4)][0], h = small[i - (NSYN - 4)][1];
        gen_image(&im, w, h, i, &r);
        snprintf(names[nimg], 64, "px_in%d.ppm", nimg);
        write_ppm(P(names[nimg++]), &im);
    }
    /* every byte value in every channel (ToTensor + Normalize sees all 768 pairs) */
    ssd_image_reserve(&im, 256, 3);
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 256; x++)
            for (int c = 0; c < 3; c++)
                im.px[(y * 256 + x) * 3 + c] = (uint8_t)((x + 85 * (y + c)) & 255);
    snprintf(names[nimg], 64, "px_in%d.ppm", nimg);
    write_ppm(P(names[nimg++]), &im);
    for (int i = 0; i < g_nphotos && i < 8; i++) { /* 8 photos: the colour ops are per pixel */
        read_ppm(P(g_photos[i]), &big);
        ssd_pil_resize_bilinear(&big, &im, SSD_AUG_SIZE, SSD_AUG_SIZE, &tmp);
        snprintf(names[nimg], 64, "px_in%d.ppm", nimg);
        write_ppm(P(names[nimg++]), &im);
    }
    /* cases: every op on every image with jitter-range factors, plus special factors */
    pcase *cs = ssd_xcalloc(MAXC, sizeof *cs);
    int nc = 0;
    static const float special[][4] = {
        /* brightness, contrast, saturation, hue */
        {0.0f, 0.0f, 0.0f, 0.0f},   {1.0f, 1.0f, 1.0f, -0.001f}, {2.0f, 3.0f, 2.5f, 0.5f},
        {0.5f, 0.25f, 0.3f, -0.5f}, {1.7f, 1.9f, 4.0f, -0.05f},  {0.875f, 1.5f, 0.5f, 0.05f},
        {1.125f, 0.5f, 1.5f, -1.0f / 255}, {0.999f, 1.001f, 1.0001f, 1.0f / 255},
    };
    for (int i = 0; i < nimg; i++) {
        for (int op = 0; op < NOPS; op++) {
            for (int rep = 0; rep < (op <= OP_HUE ? 4 : 1); rep++) {
                pcase *c = &cs[nc++];
                SSD_ASSERT(nc <= MAXC, "too many cases");
                c->op = op, c->img = i, c->l_round = rep & 1;
                int sp = (i + rep) % 8;
                switch (op) {
                case OP_BRIGHT:
                    c->f = rep < 2 ? (float)ssd_rng_range(&r, 0.875, 1.125) : special[sp][0];
                    break;
                case OP_CONTRAST:
                    c->f = rep < 2 ? (float)ssd_rng_range(&r, 0.5, 1.5) : special[sp][1];
                    break;
                case OP_SAT:
                    c->f = rep < 2 ? (float)ssd_rng_range(&r, 0.5, 1.5) : special[sp][2];
                    break;
                case OP_HUE:
                    c->f = rep < 2 ? (float)ssd_rng_range(&r, -0.05, 0.05) : special[sp][3];
                    break;
                case OP_CROP: {
                    read_ppm(P(names[i]), &im);
                    c->box[0] = (int)ssd_rng_below(&r, (uint32_t)im.w);
                    c->box[1] = (int)ssd_rng_below(&r, (uint32_t)im.h);
                    c->box[2] =
                        c->box[0] + 1 + (int)ssd_rng_below(&r, (uint32_t)(im.w - c->box[0]));
                    c->box[3] =
                        c->box[1] + 1 + (int)ssd_rng_below(&r, (uint32_t)(im.h - c->box[1]));
                    break;
                }
                default: break;
                }
            }
        }
    }
    cJSON *jobs = cJSON_CreateArray();
    for (int k = 0; k < nc; k++) {
        pcase *c = &cs[k];
        char out[64];
        snprintf(out, sizeof out, "px_out%d.%s", k,
                 c->op == OP_TENSOR || c->op == OP_VAL ? "f32" : "ppm");
        cJSON *j = job(jobs, c->op == OP_VAL ? "resize" : op_name[c->op], names[c->img], out);
        if (c->op == OP_HUE) add_num(j, "h", (double)c->f);
        else add_num(j, "f", (double)c->f);
        add_num(j, "l_round", c->l_round);
        if (c->op == OP_CROP) cJSON_AddItemToObject(j, "box", cJSON_CreateIntArray(c->box, 4));
        if (c->op == OP_VAL) { /* resize to 300x300, then ToTensor + Normalize */
            char mid[64];
            snprintf(mid, sizeof mid, "px_mid%d.ppm", k);
            cJSON_ReplaceItemInObject(j, "out", cJSON_CreateString(mid));
            add_num(j, "w", SSD_AUG_SIZE);
            add_num(j, "h", SSD_AUG_SIZE);
            job(jobs, "to_tensor", mid, out);
        }
    }
    write_json(P("pixel.json"), jobs);
    cJSON_Delete(jobs);
    cJSON *res = oracle("jobs", P("pixel.json"), P("pixel_out.json"));
    const cJSON *ver = cJSON_GetObjectItem(res, "versions");
    printf("oracle: Pillow %s, torchvision %s, torch %s, numpy %s\n",
           cJSON_GetObjectItem(ver, "pillow")->valuestring,
           cJSON_GetObjectItem(ver, "torchvision")->valuestring,
           cJSON_GetObjectItem(ver, "torch")->valuestring,
           cJSON_GetObjectItem(ver, "numpy")->valuestring);
    cJSON_Delete(res);

    ssd_augment_ws *ws = ssd_augment_ws_create();
    int bad[NOPS] = {0}, count[NOPS] = {0};
    ssd_image want = {0}, got = {0};
    size_t nf = 3 * SSD_AUG_SIZE * SSD_AUG_SIZE;
    float *chw = ssd_xmalloc(nf * sizeof *chw);
    for (int k = 0; k < nc; k++) {
        pcase *c = &cs[k];
        char out[64], what[200];
        snprintf(out, sizeof out, "px_out%d.%s", k,
                 c->op == OP_TENSOR || c->op == OP_VAL ? "f32" : "ppm");
        read_ppm(P(names[c->img]), &im);
        snprintf(what, sizeof what, "%s(%.9g, l_round %d) on %s (%dx%d)", op_name[c->op],
                 (double)c->f, c->l_round, names[c->img], im.w, im.h);
        count[c->op]++;
        if (c->op == OP_TENSOR || c->op == OP_VAL) {
            size_t n = c->op == OP_VAL ? nf : (size_t)im.w * im.h * 3;
            float *w = read_f32(P(out), n);
            float *mine = c->op == OP_VAL ? chw : ssd_xmalloc(n * sizeof *mine);
            if (c->op == OP_VAL) ssd_augment_val(ws, &im, mine);
            else ssd_image_to_chw_normalized(&im, mine);
            bad[c->op] += !floats_equal(mine, w, n, what);
            if (mine != chw) free(mine);
            free(w);
            unlink(P(out));
            if (c->op == OP_VAL) {
                char mid[64];
                snprintf(mid, sizeof mid, "px_mid%d.ppm", k);
                unlink(P(mid));
            }
            continue;
        }
        read_ppm(P(out), &want);
        if (c->op <=
            OP_HUE) { /* the portable kernels too (the public call takes AVX2 if present) */
            ssd_image_copy(&got, &im);
            switch (c->op) {
            case OP_BRIGHT: ssd_pil_brightness_simd(&got, c->f, 0); break;
            case OP_CONTRAST: ssd_pil_contrast_simd(&got, c->f, c->l_round, 0); break;
            case OP_SAT: ssd_pil_saturation_simd(&got, c->f, c->l_round, 0); break;
            default: ssd_pil_hue_simd(&got, c->f, 0); break;
            }
            char w2[240];
            snprintf(w2, sizeof w2, "%s [portable]", what);
            bad[c->op] += !images_equal(&got, &want, w2);
        }
        switch (c->op) {
        case OP_BRIGHT: ssd_pil_brightness(&im, c->f); break;
        case OP_CONTRAST: ssd_pil_contrast(&im, c->f, c->l_round); break;
        case OP_SAT: ssd_pil_saturation(&im, c->f, c->l_round); break;
        case OP_HUE: ssd_pil_hue(&im, c->f); break;
        case OP_FLIP: ssd_pil_flip_lr(&im); break;
        case OP_CROP:
            ssd_pil_crop(&im, c->box[0], c->box[1], c->box[2], c->box[3], &got);
            ssd_image_copy(&im, &got);
            break;
        default: break;
        }
        bad[c->op] += !images_equal(&im, &want, what);
        unlink(P(out));
    }
    for (int i = 0; i < nimg; i++) unlink(P(names[i]));
    int total = 0;
    for (int op = 0; op < NOPS; op++) {
        printf("%-10s %3d cases, %d mismatches\n", op_name[op], count[op], bad[op]);
        total += bad[op];
    }
    assert_int_equal(total, 0);
    free(chw);
    free(cs);
    free(names);
    ssd_augment_ws_destroy(ws);
    ssd_image_free(&im);
    ssd_image_free(&tmp);
    ssd_image_free(&big);
    ssd_image_free(&want);
    ssd_image_free(&got);
}


int main(void) {
    atu_init("test_augment_pixels");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_vs_pil),
        cmocka_unit_test(test_pixel_ops_vs_pil),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
