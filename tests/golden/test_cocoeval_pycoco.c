/* COCO evaluation against pycocotools itself, on random cases made at test time
 * (tools/cocoeval_oracle.py: crowd, area field vs box, areas of exactly 32^2 / 96^2, > 100
 * detections per (image, category), tied scores, empty images and categories, foreign
 * categories, degenerate boxes, duplicate annotation ids, annotation id 0, 80-category cases).
 * For each case: the 12 stats and every per-category AP equal pycocotools' bit for bit (the spec
 * asks 1e-9), and our text output equals what summarize() printed. Then the results writer: the
 * detections as we write them, evaluated by pycocotools, give the same numbers again.
 *
 * The oracle is SSD_PYTHON_COCO (tools/install_pydeps.sh: .venv-oracle with pycocotools 2.0.8
 * and numpy 1.23.5). Without pycocotools the test prints SKIPPED with the reason. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/coco.h"
#include "eval/cocoeval.h"
#include "io/file.h"
#include "testutil.h"

#define N_CASES 40
#define SEED0 1000

static char g_py[1024], g_dir[1024], g_tool[1024];

/* Compares our result with one oracle result object; returns the number of differences. */
static int compare(const char *label, const ssd_cocoeval_result *r, const cJSON *e,
                   double *max_diff) {
    int bad = 0;
    const cJSON *stats = cJSON_GetObjectItem(e, "stats");
    for (int s = 0; s < SSD_COCO_NSTATS; s++) {
        double want = cJSON_GetArrayItem(stats, s)->valuedouble;
        double d = fabs(r->stats[s] - want);
        if (d > *max_diff) *max_diff = d;
        if (r->stats[s] != want) {
            printf("%s: stat %d ours %.17g pycocotools %.17g\n", label, s, r->stats[s], want);
            bad++;
        }
    }
    const cJSON *per = cJSON_GetObjectItem(e, "per_category");
    if (cJSON_GetArraySize(per) != r->n_categories) {
        printf("%s: %d categories, pycocotools %d\n", label, r->n_categories,
               cJSON_GetArraySize(per));
        return bad + 1;
    }
    for (int k = 0; k < r->n_categories; k++) {
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)r->category_ids[k]);
        const cJSON *v = cJSON_GetObjectItem(per, key);
        if (!v || v->valuedouble != r->category_ap[k]) {
            printf("%s: category %s ours %.17g pycocotools %.17g\n", label, key, r->category_ap[k],
                   v ? v->valuedouble : NAN);
            bad++;
        }
    }
    return bad;
}

static void test_random_cases_vs_pycocotools(void **state) {
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "\"%s\" \"%s\" cases --seed0 %d --n %d --dir \"%s\"", g_py, g_tool,
             SEED0, N_CASES, g_dir);
    assert_int_equal(tu_system(cmd), 0);

    /* The writer's output for every case, evaluated by pycocotools in one call. */
    size_t off = (size_t)snprintf(cmd, sizeof cmd, "\"%s\" \"%s\" eval", g_py, g_tool);
    static char eval_cmd[1 << 16];
    memcpy(eval_cmd, cmd, off + 1);

    int total_bad = 0, n_gt = 0, n_dt = 0, n_big = 0;
    double max_diff = 0;
    char numpy_ver[32] = "";
    for (int c = 0; c < N_CASES; c++) {
        char gtp[1200], dtp[1200], exp[1200], outp[1200], label[64];
        snprintf(gtp, sizeof gtp, "%s/case%d/gt.json", g_dir, c);
        snprintf(dtp, sizeof dtp, "%s/case%d/dt.json", g_dir, c);
        snprintf(exp, sizeof exp, "%s/case%d/expected.json", g_dir, c);
        snprintf(outp, sizeof outp, "%s/case%d/dt_written_by_ssd.json", g_dir, c);
        snprintf(label, sizeof label, "case%d (seed %d)", c, SEED0 + c);
        cJSON *e = tu_read_json(exp);
        const char *nv = cJSON_GetObjectItem(e, "numpy")->valuestring;
        snprintf(numpy_ver, sizeof numpy_ver, "%s", nv);
        long chunk = atoi(nv) >= 2 ? -1 : 8192; /* numpy's summation rule (cocoeval.h) */

        ssd_coco_gt gt;
        ssd_coco_dets dt;
        ssd_cocoeval_result r;
        ssd_error err;
        if (ssd_coco_gt_load(gtp, &gt, &err) != SSD_OK) fail_msg("%s", err.msg);
        if (ssd_coco_dets_load(dtp, &gt, &dt, &err) != SSD_OK) fail_msg("%s", err.msg);
        ssd_cocoeval_opts o = {.threads = 1 + c % 3, .chunk = chunk};
        if (ssd_cocoeval(&gt, &dt, &o, &r, &err) != SSD_OK) fail_msg("%s", err.msg);
        total_bad += compare(label, &r, e, &max_diff);
        n_gt += (int)gt.n_anns;
        n_dt += (int)dt.n;
        n_big += r.n_categories == 80;

        /* summarize()'s text, character for character. */
        char *text = NULL;
        size_t tlen = 0;
        FILE *mf = open_memstream(&text, &tlen);
        ssd_cocoeval_print(mf, r.stats);
        fclose(mf);
        const char *want = cJSON_GetObjectItem(e, "summary")->valuestring;
        if (strcmp(text, want) != 0) {
            printf("%s: summary text differs\nours:\n%spycocotools:\n%s", label, text, want);
            total_bad++;
        }
        free(text);

        if (ssd_coco_dets_write(outp, &dt, &err) != SSD_OK) fail_msg("%s", err.msg);
        off += (size_t)snprintf(eval_cmd + off, sizeof eval_cmd - off, " \"%s\" \"%s\"", gtp, outp);
        assert_true(off < sizeof eval_cmd - 10);
        ssd_cocoeval_result_free(&r);
        ssd_coco_dets_free(&dt);
        ssd_coco_gt_free(&gt);
        cJSON_Delete(e);
    }
    char resp[1200];
    snprintf(resp, sizeof resp, "%s/written_eval.json", g_dir);
    off += (size_t)snprintf(eval_cmd + off, sizeof eval_cmd - off, " > \"%s\"", resp);
    assert_int_equal(tu_system(eval_cmd), 0);
    cJSON *all = tu_read_json(resp);
    assert_int_equal(cJSON_GetArraySize(all), N_CASES);
    for (int c = 0; c < N_CASES; c++) {
        char exp[1200], label[64];
        snprintf(exp, sizeof exp, "%s/case%d/expected.json", g_dir, c);
        snprintf(label, sizeof label, "case%d as written by ssd", c);
        cJSON *e = tu_read_json(exp);
        /* Same numbers as pycocotools on the original file: compare the two oracle runs. */
        const cJSON *a = cJSON_GetObjectItem(cJSON_GetArrayItem(all, c), "stats");
        const cJSON *b = cJSON_GetObjectItem(e, "stats");
        for (int s = 0; s < SSD_COCO_NSTATS; s++)
            if (cJSON_GetArrayItem(a, s)->valuedouble != cJSON_GetArrayItem(b, s)->valuedouble) {
                printf("%s: stat %d differs after our writer\n", label, s);
                total_bad++;
            }
        cJSON_Delete(e);
    }
    cJSON_Delete(all);
    printf("%d random cases (%d with 80 categories), %d GT, %d detections: %d differences from "
           "pycocotools (numpy %s), max |diff| %.3g; writer round trip through pycocotools equal\n",
           N_CASES, n_big, n_gt, n_dt, total_bad, numpy_ver, max_diff);
    assert_int_equal(total_bad, 0);
    assert_true(n_big >= 2);
}

int main(void) {
    const char *py = tu_env("SSD_PYTHON_COCO");
    const char *src = tu_env("SSD_SOURCE_DIR");
    if (!py || !src) {
        tu_skip("test_cocoeval_pycoco", "SSD_PYTHON_COCO / SSD_SOURCE_DIR not set (run via ctest)");
        return 0;
    }
    snprintf(g_py, sizeof g_py, "%s", py);
    snprintf(g_tool, sizeof g_tool, "%s/tools/cocoeval_oracle.py", src);
    char probe[2200];
    snprintf(probe, sizeof probe, "\"%s\" -c \"import pycocotools.cocoeval\" > /dev/null 2>&1", py);
    if (system(probe) != 0) {
        tu_skip("test_cocoeval_pycoco",
                "no pycocotools for SSD_PYTHON_COCO (run tools/install_pydeps.sh, or make deps)");
        return 0;
    }
    tu_scratch_dir("test_cocoeval_pycoco", g_dir, sizeof g_dir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_cases_vs_pycocotools),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
