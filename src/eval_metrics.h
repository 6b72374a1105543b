/* Per-position metrics of a language model's logits (DESIGN.md section 7): negative
 * log-likelihood of the next token, KL divergence between two models' predictions, and
 * top-1 agreement. Pure numerics over one logits row [V]; sums are kept in double. */
#ifndef NUPES_EVAL_METRICS_H
#define NUPES_EVAL_METRICS_H

#include <stddef.h>

/* logits: [V] -> logp: [V] = logits - logsumexp(logits), computed in double. */
void log_softmax(const float *logits, int V, double *logp);

/* -log p(target) under softmax(logits); target in [0, V). */
double nll_of(const float *logits, int V, int target);

/* KL(p || q) in nats with p = softmax(logits_p), q = softmax(logits_q), both [V].
 * scratch: [2 V] doubles. Exactly 0 for identical rows; never negative. */
double kl_divergence(const float *logits_p, const float *logits_q, int V, double *scratch);

/* Index of the largest logit (the first one on ties). */
int argmax(const float *logits, int V);

/* Running totals over many positions. */
typedef struct {
    double nll_sum;     /* of the fp32 model, over next-token predictions */
    double nll_sum_q;   /* of the quantized model, same positions */
    size_t n_predicted; /* next-token predictions: T - 1 per window */
    double kl_sum;      /* KL(fp32 || quantized), over all positions */
    size_t n_agree;     /* positions whose argmax agrees */
    size_t n_positions; /* all positions: T per window */
} EvalTotals;

/* Adds one window: logits [T][V] of the fp32 model and (may be NULL) of the quantized one,
 * tokens [T]. Position p predicts tokens[p + 1] (p < T - 1); KL and top-1 use all T.
 * scratch: [2 V] doubles. */
void eval_totals_add(EvalTotals *acc, const float *logits, const float *logits_q, const int *tokens,
                     int T, int V, double *scratch);

/* Perplexity exp(mean NLL); mean KL; agreement fraction. */
double eval_perplexity(double nll_sum, size_t n);

#endif
