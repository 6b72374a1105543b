#include "eval_metrics.h"

#include <math.h>

void log_softmax(const float *logits, int V, double *logp) {
    double max = logits[0];
    for (int i = 1; i < V; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)logits[i] - max);
    double const log_z = max + log(sum);
    for (int i = 0; i < V; i++) logp[i] = (double)logits[i] - log_z;
}

double nll_of(const float *logits, int V, int target) {
    double max = logits[0];
    for (int i = 1; i < V; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (int i = 0; i < V; i++) sum += exp((double)logits[i] - max);
    return max + log(sum) - (double)logits[target];
}

/* KL(p || q) from log-probabilities [V]. */
static double kl_from_log(const double *logp, const double *logq, int V) {
    double kl = 0.0;
    for (int i = 0; i < V; i++) kl += exp(logp[i]) * (logp[i] - logq[i]);
    return kl > 0.0 ? kl : 0.0; /* rounding can leave -1e-17 for identical rows */
}

double kl_divergence(const float *logits_p, const float *logits_q, int V, double *scratch) {
    double *logp = scratch, *logq = scratch + V;
    log_softmax(logits_p, V, logp);
    log_softmax(logits_q, V, logq);
    return kl_from_log(logp, logq, V);
}

int argmax(const float *logits, int V) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

void eval_totals_add(EvalTotals *acc, const float *logits, const float *logits_q, const int *tokens,
                     int T, int V, double *scratch) {
    double *logp = scratch, *logq = scratch + V; /* each row's log-softmax, computed once */
    for (int p = 0; p < T; p++) {
        const float *row = logits + (size_t)p * V;
        const float *row_q = logits_q ? logits_q + (size_t)p * V : NULL;
        log_softmax(row, V, logp);
        if (row_q) log_softmax(row_q, V, logq);
        if (p + 1 < T) {
            acc->nll_sum -= logp[tokens[p + 1]];
            if (row_q) acc->nll_sum_q -= logq[tokens[p + 1]];
            acc->n_predicted++;
        }
        if (row_q) {
            acc->kl_sum += kl_from_log(logp, logq, V);
            acc->n_agree += argmax(row, V) == argmax(row_q, V);
        }
        acc->n_positions++;
    }
}

double eval_perplexity(double nll_sum, size_t n) { return n ? exp(nll_sum / (double)n) : NAN; }
