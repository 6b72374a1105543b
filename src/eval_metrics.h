/* Per-position metrics of a language model's logits (docs/design.md 7.1): negative
 * log-likelihood of the next token, KL divergence between two models' predictions, and
 * top-1 agreement, and their statistics (mean with uncertainty, percentiles). Sums are kept
 * in double. */
#ifndef NUPES_EVAL_METRICS_H
#define NUPES_EVAL_METRICS_H

#include <stddef.h>

#include "status.h"

/* logits: [V] -> logp: [V] = logits - logsumexp(logits), computed in double. */
void log_softmax(const float *logits, int V, double *logp);

/* -log p(target) under softmax(logits); target in [0, V). */
double nll_of(const float *logits, int V, int target);

/* KL(p || q) in nats with p = softmax(logits_p), q = softmax(logits_q), both [V].
 * scratch: [2 V] doubles. Exactly 0 for identical rows; never negative. */
double kl_divergence(const float *logits_p, const float *logits_q, int V, double *scratch);

/* Index of the largest logit (the first one on ties). */
int argmax(const float *logits, int V);

/* The per-position values of a run of windows, in window order: every statistic is
 * computed from them at the end, so that it does not depend on how the windows were
 * split over ranks (the arrays are gathered in window order, then summed in one order). */
typedef struct {
    double *nll;      /* [cap_predicted] -log p(next token) under the fp32 model */
    double *nll_q;    /* [cap_predicted] the same under the quantized model; NULL without */
    double *kl;       /* [cap_positions] KL(fp32 || quantized); NULL without */
    unsigned char *agree; /* [cap_positions] 1 when the argmaxes agree; NULL without */
    size_t n_predicted, n_positions;     /* filled so far */
    size_t cap_predicted, cap_positions; /* allocated */
} EvalRecords;

/* Room for `windows` windows of T tokens: (T - 1) predictions and T positions each. */
nq_status eval_records_alloc(EvalRecords *r, size_t windows, int T, int quantized);
void eval_records_free(EvalRecords *r);

/* Appends one window: logits [T][V] of the fp32 model and (may be NULL) of the quantized
 * one, tokens [T]. Position p predicts tokens[p + 1] (p < T - 1); KL and top-1 use all T.
 * scratch: [2 V] doubles. The records must have room (eval_records_alloc). */
void eval_records_add(EvalRecords *r, const float *logits, const float *logits_q, const int *tokens, int T,
                      int V, double *scratch);

/* A mean and its standard error, as llama.cpp's perplexity tool computes them:
 * m = S1 / n, s^2 = S2 / n - m^2, uncertainty = sqrt(s^2 / (n - 1)); the uncertainty is 0
 * for n <= 10 or s^2 <= 0 (llama.cpp's rule: no error bar from so few values). */
typedef struct {
    double value, uncertainty;
} Estimate;

Estimate mean_estimate(const double *x, size_t n);

/* The fraction-quantile of sorted [n] (ascending), linearly interpolated between the
 * values at ranks floor(f (n - 1)) and the next (llama.cpp's percentile); f <= 0 gives the
 * minimum, f >= 1 the maximum. n > 0. */
double percentile_sorted(const double *sorted, size_t n, double fraction);

typedef struct {
    size_t n_predicted, n_positions;
    Estimate ppl;   /* exp(mean NLL) of the fp32 model; uncertainty ppl * se(NLL) */
    Estimate ppl_q; /* the same for the quantized model */
    Estimate kl;    /* mean KL(fp32 || quantized) per position, nats */
    double kl_p90, kl_p99, kl_p999, kl_max; /* percentiles of the per-position KL */
    Estimate top1;  /* fraction of positions whose argmaxes agree; se sqrt(p (1 - p) / (n - 1)) */
} EvalSummary;

/* The statistics of r (ppl_q, kl*, top1 only when r holds quantized values). */
nq_status eval_summarize(const EvalRecords *r, EvalSummary *s);

#endif
