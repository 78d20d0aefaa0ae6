/* The synthetic COCO dataset writer (data/synth.h) and `ssd synth`.
 *
 * Oracle: tools/synth_check.py reads the written dataset with Python's json module and Pillow
 * (SSD_PYTHON_TORCH) and checks the format rules and what the trainer relies on (spec 6.1):
 * sizes in the JSON equal the JPEGs' sizes, boxes inside images, COCO's 80 sparse category
 * ids (names and supercategories against the real coco_tiny file when ../shared is there),
 * crowd RLEs consistent with area and bbox, some crowd, some images without annotations,
 * some grayscale JPEGs. Independently of Python, the C side checks that our own decoder reads
 * every image at its JSON size, that the same seed gives byte-identical files and another seed
 * different ones, and the refusals (non-empty directory, unwritable path, bad counts). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/jpeg.h"
#include "data/synth.h"
#include "io/file.h"
#include "testutil.h"

static char g_scratch[512], g_py[1024], g_src[1024], g_cocoref[1400];
static int g_have_py;

static int setup(void **state) {
    (void)state;
    if (tu_source_dir(g_src, sizeof g_src) != 0) return -1;
    tu_scratch_dir("test_synth", g_scratch, sizeof g_scratch);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf \"%s\"/*", g_scratch);
    if (tu_system(cmd) != 0) return -1;
    const char *py = tu_env("SSD_PYTHON_TORCH");
    if (py && access(py, X_OK) == 0) {
        snprintf(cmd, sizeof cmd, "\"%s\" -c \"import PIL.Image, numpy\" >/dev/null 2>&1", py);
        g_have_py = system(cmd) == 0;
        snprintf(g_py, sizeof g_py, "%s", py);
    }
    snprintf(g_cocoref, sizeof g_cocoref,
             "%s/../shared/data/coco_tiny/annotations/instances_val2017.json", g_src);
    if (access(g_cocoref, R_OK) != 0) g_cocoref[0] = 0;
    return 0;
}

static const char *sdir(const char *name) {
    static char buf[4][1200];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_scratch, name);
    return buf[k];
}

static ssd_status synth(const char *dir, int ntrain, int nval, uint32_t seed, bool force,
                        ssd_synth_stats *st, ssd_error *err) {
    ssd_synth_cfg cfg = {.out_dir = dir, .n_train = ntrain, .n_val = nval, .seed = seed,
                         .force = force, .stats = st};
    return ssd_synth_write(&cfg, err);
}

/* Runs the Python checker on DIR; returns its exit status (0 = all checks passed). */
static int run_check(const char *dir, char *out, size_t len) {
    char cmd[4096], log[1300];
    snprintf(cmd, sizeof cmd, "\"%s\" \"%s/tools/synth_check.py\" \"%s\"%s%s%s", g_py, g_src, dir,
             g_cocoref[0] ? " --coco-ref \"" : "", g_cocoref, g_cocoref[0] ? "\"" : "");
    snprintf(log, sizeof log, "%s.check.log", dir);
    return tu_run_capture(cmd, log, out, len);
}

/* Sorted names of the regular files under DIR/sub. */
static int list_files(const char *dir, const char *sub, char names[][64], int max) {
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    DIR *d = opendir(p);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        assert_true(n < max);
        assert_true(strlen(e->d_name) < 64);
        memcpy(names[n++], e->d_name, strlen(e->d_name) + 1);
    }
    closedir(d);
    qsort(names, (size_t)n, 64, (int (*)(const void *, const void *))strcmp);
    return n;
}

/* 0 when every file of a's three subdirectories exists in b with the same bytes; else the
 * number of differing or missing files. */
static int compare_trees(const char *a, const char *b) {
    static char na[512][64], nb[512][64];
    const char *subs[] = {"train2017", "val2017", "annotations"};
    int diff = 0;
    for (int s = 0; s < 3; s++) {
        int ka = list_files(a, subs[s], na, 512), kb = list_files(b, subs[s], nb, 512);
        if (ka != kb) diff += abs(ka - kb);
        for (int i = 0; i < ka && i < kb; i++) {
            char pa[1500], pb[1500];
            snprintf(pa, sizeof pa, "%s/%s/%s", a, subs[s], na[i]);
            snprintf(pb, sizeof pb, "%s/%s/%s", b, subs[s], nb[i]);
            char *ba, *bb;
            size_t la, lb;
            ssd_error err;
            assert_int_equal(ssd_read_file(pa, &ba, &la, &err), SSD_OK);
            assert_int_equal(ssd_read_file(pb, &bb, &lb, &err), SSD_OK);
            diff += strcmp(na[i], nb[i]) != 0 || la != lb || memcmp(ba, bb, la) != 0;
            free(ba);
            free(bb);
        }
    }
    return diff;
}

/* A dataset passes the Python checker, and our decoder reads each image at its JSON size. */
static void test_write_and_check(void **state) {
    (void)state;
    ssd_synth_stats st;
    ssd_error err;
    if (synth(sdir("a"), 24, 8, 7, false, &st, &err) != SSD_OK) fail_msg("%s", err.msg);
    for (int sp = 0; sp < 2; sp++) {
        printf("split %d: %d images, %d gray, %d empty, %d annotations, %d crowd\n", sp,
               st.images[sp], st.gray_images[sp], st.empty_images[sp], st.annotations[sp],
               st.crowd[sp]);
        assert_int_equal(st.images[sp], sp ? 8 : 24);
        assert_true(st.gray_images[sp] > 0 && st.empty_images[sp] > 0 && st.crowd[sp] > 0);
        assert_true(st.annotations[sp] > st.images[sp]);
    }
    /* C side: JSON parses (cJSON), image records match the stats, our decoder agrees on sizes */
    const char *split[2] = {"train2017", "val2017"};
    ssd_jpeg *j = ssd_jpeg_create();
    ssd_image im = {0};
    for (int sp = 0; sp < 2; sp++) {
        char p[1400];
        snprintf(p, sizeof p, "%s/annotations/instances_%s.json", sdir("a"), split[sp]);
        cJSON *d = tu_read_json(p);
        const cJSON *images = cJSON_GetObjectItem(d, "images");
        assert_int_equal(cJSON_GetArraySize(images), st.images[sp]);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "annotations")),
                         st.annotations[sp]);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "categories")), 80);
        const cJSON *img;
        cJSON_ArrayForEach(img, images) {
            char ip[1600];
            snprintf(ip, sizeof ip, "%s/%s/%s", sdir("a"), split[sp],
                     cJSON_GetObjectItem(img, "file_name")->valuestring);
            if (ssd_jpeg_decode_file(j, ip, &im, &err) != SSD_OK) fail_msg("%s", err.msg);
            assert_int_equal(im.w, cJSON_GetObjectItem(img, "width")->valueint);
            assert_int_equal(im.h, cJSON_GetObjectItem(img, "height")->valueint);
        }
        cJSON_Delete(d);
    }
    ssd_image_free(&im);
    ssd_jpeg_destroy(j);
    if (!g_have_py) {
        tu_skip("test_synth/python_check", "no python with Pillow + numpy (SSD_PYTHON_TORCH)");
        return;
    }
    if (!g_cocoref[0])
        printf("note: ../shared/data/coco_tiny absent: category names not compared to real COCO\n");
    static char out[1 << 14];
    assert_int_equal(run_check(sdir("a"), out, sizeof out), 0);
    assert_non_null(strstr(out, "synth_check OK"));
}

/* Same seed -> byte-identical files; another seed -> different files. */
static void test_deterministic(void **state) {
    (void)state;
    ssd_error err;
    struct stat sb;
    if (stat(sdir("a"), &sb) != 0 && synth(sdir("a"), 24, 8, 7, false, NULL, &err) != SSD_OK)
        fail_msg("%s", err.msg);
    if (synth(sdir("b"), 24, 8, 7, false, NULL, &err) != SSD_OK) fail_msg("%s", err.msg);
    if (synth(sdir("c"), 24, 8, 8, false, NULL, &err) != SSD_OK) fail_msg("%s", err.msg);
    assert_int_equal(compare_trees(sdir("a"), sdir("b")), 0);
    int d = compare_trees(sdir("a"), sdir("c"));
    printf("seed 7 vs seed 8: %d files differ or are missing\n", d);
    assert_true(d >= 10);
    /* the checker can fail: a missing image is caught */
    if (g_have_py) {
        static char names[64][64];
        int n = list_files(sdir("c"), "val2017", names, 64);
        assert_true(n > 0);
        char p[1400];
        snprintf(p, sizeof p, "%s/val2017/%s", sdir("c"), names[0]);
        assert_int_equal(unlink(p), 0);
        static char out[1 << 14];
        assert_int_not_equal(run_check(sdir("c"), out, sizeof out), 0);
        assert_non_null(strstr(out, "missing"));
    }
}

static void test_refusals(void **state) {
    (void)state;
    ssd_error err;
    /* a non-empty directory is refused without force, accepted with it */
    if (synth(sdir("d"), 6, 6, 3, false, NULL, &err) != SSD_OK) fail_msg("%s", err.msg);
    assert_int_equal(synth(sdir("d"), 6, 6, 3, false, NULL, &err), SSD_ERR_ARG);
    printf("%s\n", err.msg);
    assert_non_null(strstr(err.msg, sdir("d")));
    assert_non_null(strstr(err.msg, "--force"));
    assert_int_equal(synth(sdir("d"), 6, 6, 3, true, NULL, &err), SSD_OK);
    /* an existing empty directory is fine; a missing parent chain is created */
    assert_int_equal(mkdir(sdir("e"), 0777), 0);
    assert_int_equal(synth(sdir("e"), 2, 2, 3, false, NULL, &err), SSD_OK);
    assert_int_equal(synth(sdir("f/g/h"), 2, 2, 3, false, NULL, &err), SSD_OK);
    /* unwritable: a path below a regular file */
    FILE *f = fopen(sdir("plain_file"), "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(synth(sdir("plain_file/sub"), 2, 2, 3, false, NULL, &err), SSD_ERR_IO);
    printf("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "plain_file"));
    assert_int_equal(synth(sdir("plain_file"), 2, 2, 3, true, NULL, &err), SSD_ERR_IO);
    printf("%s\n", err.msg);
    /* bad counts / quality */
    assert_int_equal(synth(sdir("x"), 0, 2, 3, false, NULL, &err), SSD_ERR_ARG);
    assert_int_equal(synth(sdir("x"), 2, 0, 3, false, NULL, &err), SSD_ERR_ARG);
    ssd_synth_cfg cfg = {.out_dir = sdir("x"), .n_train = 1, .n_val = 1, .quality = 101};
    assert_int_equal(ssd_synth_write(&cfg, &err), SSD_ERR_ARG);
    cfg.quality = 90;
    cfg.out_dir = "";
    assert_int_equal(ssd_synth_write(&cfg, &err), SSD_ERR_ARG);
}

/* `ssd synth` as a user runs it. */
static void test_cli(void **state) {
    (void)state;
    const char *build = tu_env("SSD_BUILD_DIR");
    if (!build) {
        tu_skip("test_synth/cli", "SSD_BUILD_DIR is not set (run through ctest)");
        skip();
    }
    char cmd[2400], log[1300];
    static char out[1 << 14];
    snprintf(log, sizeof log, "%s/cli.log", g_scratch);
    snprintf(cmd, sizeof cmd, "\"%s/ssd\" synth --out \"%s\" --images 8", build, sdir("cli"));
    assert_int_equal(tu_run_capture(cmd, log, out, sizeof out), 0);
    assert_non_null(strstr(out, "train2017: 8 images"));
    assert_non_null(strstr(out, "val2017: 8 images")); /* N/4 = 2, at least 8 */
    static char names[64][64];
    assert_int_equal(list_files(sdir("cli"), "train2017", names, 64), 8);
    assert_int_equal(list_files(sdir("cli"), "val2017", names, 64), 8);
    /* the CLI equals the library with the default seed 1 */
    ssd_error err;
    if (synth(sdir("lib"), 8, 8, 1, false, NULL, &err) != SSD_OK) fail_msg("%s", err.msg);
    assert_int_equal(compare_trees(sdir("cli"), sdir("lib")), 0);
    /* again into the same directory: refused (exit 1), with --force: fine */
    assert_int_equal(tu_run_capture(cmd, log, out, sizeof out), 1);
    assert_non_null(strstr(out, "not empty"));
    snprintf(cmd, sizeof cmd, "\"%s/ssd\" synth --out \"%s\" --images 8 --force --seed 5 "
             "--val-images 3", build, sdir("cli"));
    assert_int_equal(tu_run_capture(cmd, log, out, sizeof out), 0);
    assert_non_null(strstr(out, "val2017: 3 images"));
    /* usage errors exit 2 */
    snprintf(cmd, sizeof cmd, "\"%s/ssd\" synth --out \"%s\" --images 0", build, sdir("cli2"));
    assert_int_equal(tu_run_capture(cmd, log, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "\"%s/ssd\" synth --images 4", build);
    assert_int_equal(tu_run_capture(cmd, log, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "\"%s/ssd\" synth --help", build);
    assert_int_equal(tu_run_capture(cmd, log, out, sizeof out), 0);
    assert_non_null(strstr(out, "--val-images"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_and_check),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
