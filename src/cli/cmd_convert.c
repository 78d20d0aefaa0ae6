/* `ssd convert IN.pth OUT.safetensors`: every tensor of a PyTorch checkpoint's state_dict
 * (any of the three torch containers, docs/pth.md) under its torch name, in its own dtype,
 * to safetensors: the C equivalent of the reference's pth_to_pickle.py, in a format any
 * language reads. The output is written atomically (no half-written file on failure). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "core/mem.h"
#include "io/pth.h"
#include "io/safetensors.h"

int ssd_cmd_convert(int argc, char **argv) {
    const char *pos[2] = {NULL, NULL};
    const ssd_opt opts[] = {
        {"IN.pth", SSD_OPT_STR, &pos[0], true, 1, 0, NULL,
         "PyTorch state_dict: zip, magic-number legacy or 2017 tar container (by content)"},
        {"OUT.safetensors", SSD_OPT_STR, &pos[1], true, 1, 0, NULL, "written atomically"},
    };
    int nopts = (int)(sizeof opts / sizeof opts[0]);
    const char *summary =
        "Writes every tensor of a PyTorch state_dict to OUT.safetensors under its torch name,\n"
        "in its own dtype (f32, f64, f16, bf16, i64), contiguous. Nested dicts are flattened\n"
        "with '.'; non-tensor values are skipped. Metadata: format=pt,\n"
        "container=<zip|tar|legacy>, source=<IN's file name>.";
    int early = ssd_opts_cli("convert", summary, opts, nopts, argc, argv);
    if (early >= 0) return early;
    ssd_error err;
    ssd_error_clear(&err);
    ssd_pth_file *f = NULL;
    ssd_tensor *views = NULL;
    const ssd_tensor **list = NULL;
    int rc = 1;
    if (ssd_pth_read(pos[0], &f, &err) != SSD_OK) goto cleanup;
    int n = ssd_pth_count(f);
    views = ssd_xcalloc((size_t)n + 1, sizeof *views);
    list = ssd_xcalloc((size_t)n + 1, sizeof *list);
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        if (ssd_pth_as_tensor(ssd_pth_at(f, i), &views[i], &err) != SSD_OK) {
            char msg[SSD_ERROR_MSG_LEN];
            snprintf(msg, sizeof msg, "%.200s: %.800s", pos[0], err.msg);
            ssd_fail(&err, err.code, "%s", msg);
            goto cleanup;
        }
        list[i] = &views[i];
        bytes += ssd_pth_at(f, i)->nbytes;
    }
    const char *base = strrchr(pos[0], '/');
    base = base ? base + 1 : pos[0];
    const char *keys[] = {"format", "container", "source"};
    const char *vals[] = {"pt", ssd_pth_container_name(ssd_pth_kind(f)), base};
    if (ssd_st_write_meta(pos[1], list, n, keys, vals, 3, &err) != SSD_OK) goto cleanup;
    printf("ssd convert: %s (%s container): %d tensors, %zu bytes", pos[0],
           ssd_pth_container_name(ssd_pth_kind(f)), n, bytes);
    if (ssd_pth_skipped(f)) printf(", %d non-tensor values skipped", ssd_pth_skipped(f));
    printf(" -> %s\n", pos[1]);
    rc = 0;
cleanup:
    if (rc) fprintf(stderr, "ssd convert: %s\n", err.msg);
    free(views);
    free(list);
    ssd_pth_free(f);
    return rc;
}
