#include "eval_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

nq_status eval_records_alloc(EvalRecords *r, size_t windows, int T, int quantized) {
    memset(r, 0, sizeof *r);
    r->cap_predicted = nq_mul_size(windows, (size_t)(T - 1));
    r->cap_positions = nq_mul_size(windows, (size_t)T);
    /* calloc of 0 elements may return NULL: keep one so that NULL means "failed". */
    size_t const np = r->cap_predicted ? r->cap_predicted : 1, nq = r->cap_positions ? r->cap_positions : 1;
    r->nll = nq_calloc(np, sizeof(double), "per-token NLL");
    if (quantized) {
        r->nll_q = nq_calloc(np, sizeof(double), "per-token NLL (quantized)");
        r->kl = nq_calloc(nq, sizeof(double), "per-position KL");
        r->agree = nq_calloc(nq, 1, "per-position top-1 agreement");
    }
    if (!r->nll || (quantized && (!r->nll_q || !r->kl || !r->agree))) {
        eval_records_free(r);
        return NQ_ERR_RUNTIME;
    }
    return NQ_OK;
}

void eval_records_free(EvalRecords *r) {
    free(r->nll);
    free(r->nll_q);
    free(r->kl);
    free(r->agree);
    memset(r, 0, sizeof *r);
}

void eval_records_add(EvalRecords *r, const float *logits, const float *logits_q, const int *tokens, int T,
                      int V, double *scratch) {
    double *logp = scratch, *logq = scratch + V; /* each row's log-softmax, computed once */
    for (int p = 0; p < T; p++) {
        const float *row = logits + (size_t)p * V;
        const float *row_q = logits_q ? logits_q + (size_t)p * V : NULL;
        log_softmax(row, V, logp);
        if (row_q) log_softmax(row_q, V, logq);
        if (p + 1 < T) {
            r->nll[r->n_predicted] = -logp[tokens[p + 1]];
            if (row_q) r->nll_q[r->n_predicted] = -logq[tokens[p + 1]];
            r->n_predicted++;
        }
        if (row_q) {
            r->kl[r->n_positions] = kl_from_log(logp, logq, V);
            r->agree[r->n_positions] = argmax(row, V) == argmax(row_q, V);
        }
        r->n_positions++;
    }
}

Estimate mean_estimate(const double *x, size_t n) {
    if (n == 0) return (Estimate){NAN, NAN};
    double s1 = 0.0, s2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        s1 += x[i];
        s2 += x[i] * x[i];
    }
    double const mean = s1 / (double)n, var = s2 / (double)n - mean * mean;
    return (Estimate){mean, var > 0.0 && n > 10 ? sqrt(var / (double)(n - 1)) : 0.0};
}

double percentile_sorted(const double *sorted, size_t n, double fraction) {
    if (fraction <= 0.0) return sorted[0];
    if (fraction >= 1.0) return sorted[n - 1];
    double const rank = fraction * (double)(n - 1);
    size_t const lo = (size_t)rank;
    size_t const hi = lo + 1 < n ? lo + 1 : n - 1;
    double const frac = rank - (double)lo;
    return (1.0 - frac) * sorted[lo] + frac * sorted[hi];
}

static int compare_double(const void *a, const void *b) {
    double const x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* exp of a mean NLL; d exp(m) = exp(m) dm carries the uncertainty over. */
static Estimate perplexity_of(const double *nll, size_t n) {
    Estimate const m = mean_estimate(nll, n);
    double const ppl = exp(m.value);
    return (Estimate){ppl, ppl * m.uncertainty};
}

nq_status eval_summarize(const EvalRecords *r, EvalSummary *s) {
    *s = (EvalSummary){.n_predicted = r->n_predicted, .n_positions = r->n_positions};
    s->ppl = perplexity_of(r->nll, r->n_predicted);
    s->ppl_q = s->kl = s->top1 = (Estimate){NAN, NAN};
    s->kl_p90 = s->kl_p99 = s->kl_p999 = s->kl_max = NAN;
    if (!r->kl || r->n_positions == 0) return NQ_OK;
    size_t const n = r->n_positions;
    s->ppl_q = perplexity_of(r->nll_q, r->n_predicted);
    s->kl = mean_estimate(r->kl, n);
    double *sorted = nq_calloc(n, sizeof *sorted, "sorted KL values");
    if (!sorted) return NQ_ERR_RUNTIME;
    memcpy(sorted, r->kl, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, compare_double);
    s->kl_p90 = percentile_sorted(sorted, n, 0.90);
    s->kl_p99 = percentile_sorted(sorted, n, 0.99);
    s->kl_p999 = percentile_sorted(sorted, n, 0.999);
    s->kl_max = sorted[n - 1];
    free(sorted);
    size_t agree = 0;
    for (size_t i = 0; i < n; i++) agree += r->agree[i];
    double const p = (double)agree / (double)n;
    s->top1 = (Estimate){p, n > 1 ? sqrt(p * (1.0 - p) / (double)(n - 1)) : 0.0};
    return NQ_OK;
}
