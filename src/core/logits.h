/* Column statistics of class-major logits x (classes, n): for every column a,
 * mx[a] = max_k x[k][a] and sumexp[a] = sum_k exp(x[k][a] - mx[a]), in double, summed in class
 * order. The shared first half of the loss's logsumexp (mx + log(sumexp)) and of the
 * post-processing softmax (exp(x - mx) / sumexp), so both see the same numbers. */
#ifndef SSD_CORE_LOGITS_H
#define SSD_CORE_LOGITS_H

void ssd_logits_max_sumexp(const float *x, int classes, int n, double *mx, double *sumexp);

#endif
