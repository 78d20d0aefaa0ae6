#include "cli/options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SSD_OPTS_MAX 128

static const ssd_opt *find(const ssd_opt *opts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(opts[i].name, name) == 0) return &opts[i];
    return NULL;
}

static bool is_positional(const ssd_opt *o) { return o->name[0] != '-'; }

/* The first positional option not yet given. */
static const ssd_opt *next_positional(const ssd_opt *opts, int n, const bool *seen) {
    for (int i = 0; i < n && i < SSD_OPTS_MAX; i++)
        if (is_positional(&opts[i]) && !seen[i]) return &opts[i];
    return NULL;
}

static ssd_status set_value(const ssd_opt *o, const char *v, ssd_error *err) {
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case SSD_OPT_STR:
        *(const char **)o->dst = v;
        return SSD_OK;
    case SSD_OPT_INT: {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end)
            return ssd_fail(err, SSD_ERR_ARG, "%s: '%s' is not an integer", o->name, v);
        if (o->lo <= o->hi && (x < o->lo || x > o->hi))
            return ssd_fail(err, SSD_ERR_ARG, "%s: %ld is outside [%g, %g]", o->name, x, o->lo,
                            o->hi);
        *(long *)o->dst = x;
        return SSD_OK;
    }
    case SSD_OPT_DOUBLE: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || x != x)
            return ssd_fail(err, SSD_ERR_ARG, "%s: '%s' is not a number", o->name, v);
        if (o->lo <= o->hi && (x < o->lo || x > o->hi))
            return ssd_fail(err, SSD_ERR_ARG, "%s: %g is outside [%g, %g]", o->name, x, o->lo,
                            o->hi);
        *(double *)o->dst = x;
        return SSD_OK;
    }
    case SSD_OPT_FLAG:
        *(bool *)o->dst = true;
        return SSD_OK;
    }
    return ssd_fail(err, SSD_ERR_ARG, "%s: bad option type", o->name);
}

ssd_status ssd_opts_parse(const ssd_opt *opts, int n, int argc, char **argv, bool *help,
                          ssd_error *err) {
    bool seen[SSD_OPTS_MAX] = {false};
    *help = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *help = true;
            return SSD_OK;
        }
        if (arg[0] != '-' || strcmp(arg, "-") == 0) { /* a positional argument */
            const ssd_opt *o = next_positional(opts, n, seen);
            if (!o) return ssd_fail(err, SSD_ERR_ARG, "unexpected argument '%s'", arg);
            ssd_status st = set_value(o, arg, err);
            if (st != SSD_OK) return st;
            seen[o - opts] = true;
            continue;
        }
        const char *eq = strchr(arg, '=');
        char name[128];
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, arg, len);
        name[len] = 0;
        const ssd_opt *o = find(opts, n, name);
        if (!o) return ssd_fail(err, SSD_ERR_ARG, "unknown option '%s'", arg);
        const char *v = eq ? eq + 1 : NULL;
        if (o->type == SSD_OPT_FLAG) {
            if (v) return ssd_fail(err, SSD_ERR_ARG, "%s takes no value", o->name);
        } else if (!v) {
            if (i + 1 >= argc) return ssd_fail(err, SSD_ERR_ARG, "%s needs a value", o->name);
            v = argv[++i];
        }
        ssd_status st = set_value(o, v, err);
        if (st != SSD_OK) return st;
        if (o - opts < SSD_OPTS_MAX) seen[o - opts] = true;
    }
    for (int i = 0; i < n && i < SSD_OPTS_MAX; i++)
        if (opts[i].required && !seen[i])
            return ssd_fail(err, SSD_ERR_ARG, "missing required %s %s",
                            is_positional(&opts[i]) ? "argument" : "option", opts[i].name);
    return SSD_OK;
}

void ssd_opts_usage(FILE *f, const char *cmd, const char *summary, const ssd_opt *opts, int n) {
    fprintf(f, "usage: ssd %s [options]", cmd);
    for (int i = 0; i < n; i++)
        if (is_positional(&opts[i])) fprintf(f, opts[i].required ? " %s" : " [%s]", opts[i].name);
    fprintf(f, "\n\n%s\n\noptions:\n", summary);
    for (int i = 0; i < n; i++) {
        const ssd_opt *o = &opts[i];
        char left[96];
        bool bare = o->type == SSD_OPT_FLAG || is_positional(o);
        snprintf(left, sizeof left, "%s%s%s", o->name, bare ? "" : " ",
                 bare ? "" : (o->metavar ? o->metavar : "V"));
        fprintf(f, "  %-28s %s", left, o->help);
        if (o->required) {
            fprintf(f, " (required)");
        } else if (o->type == SSD_OPT_STR && *(const char **)o->dst) {
            fprintf(f, " (default %s)", *(const char **)o->dst);
        } else if (o->type == SSD_OPT_INT) {
            fprintf(f, " (default %ld)", *(long *)o->dst);
        } else if (o->type == SSD_OPT_DOUBLE) {
            fprintf(f, " (default %g)", *(double *)o->dst);
        }
        fputc('\n', f);
    }
}

int ssd_opts_cli(const char *cmd, const char *summary, const ssd_opt *opts, int n, int argc,
                 char **argv) {
    bool help = false;
    ssd_error err;
    ssd_error_clear(&err);
    if (ssd_opts_parse(opts, n, argc, argv, &help, &err) != SSD_OK) {
        fprintf(stderr, "ssd %s: %s (try 'ssd %s --help')\n", cmd, err.msg, cmd);
        return 2;
    }
    if (help) {
        ssd_opts_usage(stdout, cmd, summary, opts, n);
        return 0;
    }
    return -1;
}

void ssd_opts_summary(FILE *f, const char *cmd, const ssd_opt *opts, int n) {
    fprintf(f, "ssd %s:", cmd);
    for (int i = 0; i < n; i++) {
        const ssd_opt *o = &opts[i];
        switch (o->type) {
        case SSD_OPT_STR:
            if (*(const char **)o->dst) fprintf(f, " %s %s", o->name, *(const char **)o->dst);
            break;
        case SSD_OPT_INT:
            fprintf(f, " %s %ld", o->name, *(long *)o->dst);
            break;
        case SSD_OPT_DOUBLE:
            fprintf(f, " %s %g", o->name, *(double *)o->dst);
            break;
        case SSD_OPT_FLAG:
            if (*(bool *)o->dst) fprintf(f, " %s", o->name);
            break;
        }
    }
    fputc('\n', f);
}

bool ssd_opts_given(int argc, char **argv, const char *name) {
    size_t len = strlen(name);
    for (int i = 0; i < argc; i++)
        if (strncmp(argv[i], name, len) == 0 && (argv[i][len] == '\0' || argv[i][len] == '='))
            return true;
    return false;
}

const char *ssd_cli_autocast(const char *prog, const char *backend) {
    if (!strcmp(backend, "cuda")) {
        setenv("SSD_CUDA_MATH", "bf16", 1);
        return NULL;
    }
    if (strcmp(backend, "cpu"))
        return "bf16 autocast runs on the cpu and cuda backends (ref computes in f32/f64)";
    /* SSD_CPU_MATH=bf16emu (set by the user) keeps the emulation on a CPU that has bf16 */
    const char *m = getenv("SSD_CPU_MATH");
    const bool emu = m && !strcmp(m, "bf16emu");
    if (!emu) setenv("SSD_CPU_MATH", "bf16", 1);
    if (__builtin_cpu_supports("avx512bf16") && !emu) {
        const char *w = getenv("SSD_CPU_BF16_WGRAD"), *a = getenv("SSD_CPU_BF16_ACTS");
        fprintf(stderr,
                "%s: cpu bf16: convolutions on oneDNN's native bf16 kernels (bf16 operands and "
                "results, f32 sums), as autocast runs them; weight gradients %s; activations %s\n",
                prog, w && !strcmp(w, "native") ? "on its backward-weights kernel"
                                                : "as GEMMs on its bf16 matmul",
                a && !strcmp(a, "f32") ? "f32 NCHW between layers (SSD_CPU_BF16_ACTS=f32)"
                                       : "bf16 NHWC end to end (batch norm, ReLU, pooling in bf16)");
        return NULL;
    }
    fprintf(stderr,
            "%s: cpu bf16: emulated: each convolution rounds its operands and result to bf16 and "
            "sums in f32, as autocast does, on the f32 kernels, so it runs at f32 speed (%s)\n",
            prog, emu ? "SSD_CPU_MATH=bf16emu" : "this CPU has no native bf16: no avx512_bf16");
    return NULL;
}
