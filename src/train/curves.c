/* See curves.h. */
#include "train/curves.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "core/strbuf.h"
#include "io/file.h"
#include "train/plot.h"

typedef struct series {
    ssd_curve_point *p;
    int n, cap;
} series;

static void push(series *s, double x, double y) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->p = ssd_xrealloc(s->p, (size_t)s->cap * sizeof *s->p);
    }
    s->p[s->n++] = (ssd_curve_point){x, y};
}

#define SMOOTH 20 /* the picture's smoothed loss: mean of the last SMOOTH finite losses */

struct ssd_curves {
    char *jsonl, *svg, *title;
    FILE *fp;
    series loss, avg, lr, map; /* avg: the smoothed loss (the reference's average starts at 0) */
    double ring[SMOOTH];
    int ring_n, ring_pos;
};

/* Records one loss in the picture's series. */
static void push_loss(ssd_curves *c, double step, double loss, double lr) {
    push(&c->loss, step, loss);
    push(&c->lr, step, lr);
    if (isfinite(loss)) {
        c->ring[c->ring_pos] = loss;
        c->ring_pos = (c->ring_pos + 1) % SMOOTH;
        if (c->ring_n < SMOOTH) c->ring_n++;
    }
    double sum = 0;
    for (int i = 0; i < c->ring_n; i++) sum += c->ring[i];
    push(&c->avg, step, c->ring_n ? sum / c->ring_n : NAN);
}

static void json_num_or_null(ssd_strbuf *b, double v) {
    if (isfinite(v))
        ssd_sb_json_double(b, v);
    else
        ssd_sb_puts(b, "null");
}

static double num_or(const cJSON *o, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* Reads back an earlier run's records up to keep_until; returns the text to keep. */
static void reload(ssd_curves *c, int64_t keep_until, ssd_strbuf *keep) {
    char *buf = NULL;
    size_t len = 0;
    ssd_error e;
    if (ssd_read_file(c->jsonl, &buf, &len, &e) != SSD_OK) return; /* none yet */
    for (char *line = buf, *nl; line < buf + len; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl) break; /* a torn last line is dropped */
        *nl = '\0';
        cJSON *o = cJSON_Parse(line);
        const cJSON *type = o ? cJSON_GetObjectItemCaseSensitive(o, "type") : NULL;
        double step = o ? num_or(o, "step", -1) : -1;
        if (cJSON_IsString(type) && step >= 0 && step <= (double)keep_until) {
            if (strcmp(type->valuestring, "step") == 0) {
                push_loss(c, step, num_or(o, "loss", INFINITY), num_or(o, "lr", NAN));
            } else if (strcmp(type->valuestring, "eval") == 0) {
                push(&c->map, step, num_or(o, "map", NAN));
            }
            ssd_sb_puts(keep, line);
            ssd_sb_puts(keep, "\n");
        }
        cJSON_Delete(o);
    }
    free(buf);
}

ssd_status ssd_curves_open(ssd_curves **out, const char *jsonl_path, const char *svg_path,
                           const char *title, int64_t keep_until, ssd_error *err) {
    *out = NULL;
    ssd_curves *c = ssd_xcalloc(1, sizeof *c);
    c->jsonl = ssd_xstrdup(jsonl_path);
    c->svg = ssd_xstrdup(svg_path);
    c->title = ssd_xstrdup(title ? title : "ssd train");
    ssd_strbuf keep = {0};
    reload(c, keep_until, &keep);
    ssd_status st = ssd_write_file_atomic(c->jsonl, keep.s ? keep.s : "", keep.len, err);
    ssd_sb_free(&keep);
    if (st == SSD_OK && !(c->fp = fopen(c->jsonl, "a")))
        st = ssd_fail(err, SSD_ERR_IO, "%s: cannot open for appending: %s", c->jsonl,
                      strerror(errno));
    if (st != SSD_OK) {
        ssd_curves_close(c);
        return st;
    }
    *out = c;
    return SSD_OK;
}

static ssd_status append(ssd_curves *c, ssd_strbuf *b, ssd_error *err) {
    ssd_sb_puts(b, "}\n");
    bool ok = fwrite(b->s, 1, b->len, c->fp) == b->len && fflush(c->fp) == 0;
    ssd_sb_free(b);
    if (!ok) return ssd_fail(err, SSD_ERR_IO, "%s: write failed: %s", c->jsonl, strerror(errno));
    return SSD_OK;
}

ssd_status ssd_curves_step(ssd_curves *c, int64_t epoch, int64_t step, double loss,
                           double avg_loss, double lr, double img_s, ssd_error *err) {
    if (!c) return SSD_OK;
    push_loss(c, (double)step, loss, lr);
    ssd_strbuf b = {0};
    ssd_sb_printf(&b, "{\"type\": \"step\", \"epoch\": %lld, \"step\": %lld, \"loss\": ",
                  (long long)epoch, (long long)step);
    json_num_or_null(&b, loss);
    ssd_sb_puts(&b, ", \"avg_loss\": ");
    json_num_or_null(&b, avg_loss);
    ssd_sb_puts(&b, ", \"lr\": ");
    json_num_or_null(&b, lr);
    ssd_sb_printf(&b, ", \"img_s\": %.3f", isfinite(img_s) ? img_s : 0.0);
    return append(c, &b, err);
}

ssd_status ssd_curves_eval(ssd_curves *c, int64_t epoch, int64_t step, const double stats[12],
                           ssd_error *err) {
    if (!c) return SSD_OK;
    push(&c->map, (double)step, stats[0]);
    ssd_strbuf b = {0};
    ssd_sb_printf(&b, "{\"type\": \"eval\", \"epoch\": %lld, \"step\": %lld, \"map\": ",
                  (long long)epoch, (long long)step);
    json_num_or_null(&b, stats[0]);
    ssd_sb_puts(&b, ", \"stats\": [");
    for (int i = 0; i < 12; i++) {
        if (i) ssd_sb_puts(&b, ", ");
        json_num_or_null(&b, stats[i]);
    }
    ssd_sb_puts(&b, "]");
    ssd_status st = append(c, &b, err);
    return st != SSD_OK ? st : ssd_curves_draw(c, err);
}

ssd_status ssd_curves_draw(ssd_curves *c, ssd_error *err) {
    if (!c) return SSD_OK;
    return ssd_plot_training_svg(c->svg, c->title, c->loss.p, c->loss.n, c->avg.p, c->avg.n,
                                 c->lr.p, c->lr.n, c->map.p, c->map.n, err);
}

void ssd_curves_close(ssd_curves *c) {
    if (!c) return;
    if (c->fp) fclose(c->fp);
    series *s[4] = {&c->loss, &c->avg, &c->lr, &c->map};
    for (int i = 0; i < 4; i++) free(s[i]->p);
    free(c->jsonl);
    free(c->svg);
    free(c->title);
    free(c);
}
