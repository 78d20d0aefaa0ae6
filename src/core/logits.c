#include "core/logits.h"

#include <math.h>
#include <stddef.h>

void ssd_logits_max_sumexp(const float *x, int classes, int n, double *mx, double *sumexp) {
    for (int a = 0; a < n; a++) mx[a] = x[a];
    for (int k = 1; k < classes; k++) {
        const float *row = x + (size_t)k * n;
        for (int a = 0; a < n; a++) mx[a] = row[a] > mx[a] ? row[a] : mx[a];
    }
    for (int a = 0; a < n; a++) sumexp[a] = 0.0;
    for (int k = 0; k < classes; k++) {
        const float *row = x + (size_t)k * n;
        for (int a = 0; a < n; a++) sumexp[a] += exp((double)row[a] - mx[a]);
    }
}
