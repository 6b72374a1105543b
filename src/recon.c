#include "recon.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adam.h"
#include "block.h"
#include "clock.h"
#include "parallel.h"
#include "rng.h"
#include "status.h"

/* Latents and Adam moments of one learned quantity (z, a or s) of one matrix. */
typedef struct {
    float *value; /* the parameter */
    float *m, *v; /* Adam moments */
    size_t count;
} Learned;

struct Recon {
    ModelConfig c;
    ReconParams p;
    const Quantizer *quant; /* quantizer_of(p.spec) */
    int block, n_sequences, T;
    QuantShape shape[N_MATS];
    int quantized[N_MATS];

    float *attn_norm, *ffn_norm; /* [d] copies */
    float *fp_weight[N_MATS];    /* [rows][cols] fp32 copy, skipped matrices only */
    float *scale0[N_MATS];       /* [rows][groups] M0 = max |w| of the group */
    float *scale[N_MATS];        /* [rows][groups] M = M0 * s, refreshed each forward */
    float *scale_next[N_MATS];   /* [rows][groups] M after the Adam step (recon_apply) */
    Learned z[N_MATS], a[N_MATS], s[N_MATS];

    int8_t *codes[N_MATS]; /* [rows][cols] current codes */
    float *w_hat[N_MATS];  /* [rows][cols] current quantized weights */
    int w_hat_fresh;       /* 1: codes, w_hat, scale are those of the current z, a, s (set by
                              recon_apply, which quantizes as it updates) */
    int w_hat_stored;      /* 1: w_hat is decode(encode(...)), the values the result stores */
    double *da_rows;       /* [max rows] per-row exponent-gradient sums (threads) */
    float *dw[N_MATS];     /* [rows][cols] dL/dw_hat from block_backward; views into
                              grad_floats for quantized matrices, owned for skipped ones */

    /* Gradients, contiguous so that one MPI_Allreduce sums them: dL/dw_hat of every
     * quantized matrix in grad_floats (the latents' gradient dL/dz = dL/dw_hat * M is
     * formed inside Adam: no buffer of its own); da then ds in grad_doubles. */
    float *grad_floats;
    size_t n_grad_floats;
    double *grad_doubles;
    size_t n_grad_doubles;
    double *da[N_MATS], *ds[N_MATS];

    BlockActs *acts;
    int acts_sequences;
    int abandoned; /* the last recon_accumulate_gradient was abandoned (should_stop) */
    float *y_quant; /* [max_local][T][d] the block's output, then dL/dy in its place */
    int max_local;

    int step;
    BatchSampler sampler; /* per-block stream: every epoch a new shuffle of the N sequences */
    int sampler_drawn;    /* batches drawn from it, so that it follows step after a restore */
    ReconTimings *timings; /* NULL: not timed */
};

void recon_set_timings(Recon *r, ReconTimings *t) {
    r->timings = t;
    if (r->acts) block_acts_set_timings(r->acts, t ? &t->block : NULL);
}

/* Starts the clock of a timed section (0 when not timed). */
static double clock_start(const Recon *r) { return r->timings ? nq_seconds() : 0.0; }

/* Charges the seconds since *since to phase (when timed) and restarts the clock. */
static void lap(const Recon *r, ReconPhase phase, double *since) {
    if (!r->timings) return;
    double const now = nq_seconds();
    r->timings->seconds[phase] += now - *since;
    *since = now;
}

static int learns(const Recon *r) { return r->p.method == RECON_NUPES; }

static size_t mat_size(const Recon *r, int i) {
    return (size_t)r->shape[i].rows * (size_t)r->shape[i].cols;
}

static size_t scale_size(const Recon *r, int i) {
    return (size_t)r->shape[i].rows * (size_t)r->shape[i].groups;
}

static float *copy_floats(const float *src, size_t n, const char *what) {
    float *dst = nq_calloc(n, sizeof *dst, what);
    if (dst) memcpy(dst, src, n * sizeof *dst);
    return dst;
}

static int learned_alloc(Learned *l, size_t count, int with_moments) {
    l->count = count;
    l->value = nq_calloc(count, sizeof(float), "learned parameter");
    if (!l->value) return -1;
    if (!with_moments) return 0;
    l->m = nq_calloc(count, sizeof(float), "Adam first moment");
    l->v = nq_calloc(count, sizeof(float), "Adam second moment");
    return l->m && l->v ? 0 : -1;
}

static void learned_free(Learned *l) {
    free(l->value);
    free(l->m);
    free(l->v);
}

/* Scales, exponent and latents of matrix i from its fp32 weights w. */
static int init_matrix(Recon *r, int i, const float *w) {
    size_t const n = mat_size(r, i), ns = scale_size(r, i);
    QuantShape const sh = r->shape[i];
    r->scale0[i] = nq_calloc(ns, sizeof(float), "scales");
    r->scale[i] = nq_calloc(ns, sizeof(float), "scales");
    r->scale_next[i] = nq_calloc(ns, sizeof(float), "scales");
    r->codes[i] = nq_calloc(n, sizeof(int8_t), "codes");
    r->w_hat[i] = nq_calloc(n, sizeof(float), "quantized weights");
    if (!r->scale0[i] || !r->scale[i] || !r->scale_next[i] || !r->codes[i] || !r->w_hat[i])
        return -1;
    int const moments = learns(r);
    if (learned_alloc(&r->z[i], n, moments) || learned_alloc(&r->a[i], (size_t)sh.n_exponents, moments))
        return -1;
    if (r->p.learn_scale && learned_alloc(&r->s[i], ns, moments)) return -1;

    /* a resume restores z, a and s from the state file: only the start scales here */
    QuantInit const how = r->p.restoring && moments ? QUANT_INIT_SCALES
                          : r->p.method == RECON_RTN || r->p.fixed_start ? QUANT_INIT_FIXED
                                                     : QUANT_INIT_SEARCH;
    QuantLatents start = {r->z[i].value, r->scale0[i], r->a[i].value};
    r->quant->init(r->p.spec, sh, w, how, &start);
    memcpy(r->scale[i], r->scale0[i], ns * sizeof(float));
    if (how == QUANT_INIT_SCALES) return 0;
    for (size_t g = 0; r->s[i].value && g < ns; g++) r->s[i].value[g] = 1.0f;
    return 0;
}

/* Lays the gradient buffers out contiguously and points the per-matrix views into them. */
static int init_gradients(Recon *r) {
    size_t nf = 0, nd = 0;
    for (int i = 0; i < N_MATS; i++) {
        if (!r->quantized[i]) continue;
        nf += mat_size(r, i);
        nd += (size_t)r->shape[i].n_exponents + (r->p.learn_scale ? scale_size(r, i) : 0);
    }
    r->n_grad_floats = nf;
    r->n_grad_doubles = nd;
    r->grad_floats = nq_calloc(nf ? nf : 1, sizeof(float), "weight gradients");
    r->grad_doubles = nq_calloc(nd ? nd : 1, sizeof(double), "exponent and scale gradients");
    int max_rows = 1;
    for (int i = 0; i < N_MATS; i++)
        if (r->shape[i].rows > max_rows) max_rows = r->shape[i].rows;
    r->da_rows = nq_calloc((size_t)max_rows, sizeof(double), "per-row exponent gradients");
    if (!r->grad_floats || !r->grad_doubles || !r->da_rows) return -1;
    float *f = r->grad_floats;
    double *d = r->grad_doubles;
    for (int i = 0; i < N_MATS; i++) {
        if (!r->quantized[i]) continue;
        r->dw[i] = f;
        f += mat_size(r, i);
        r->da[i] = d;
        d += r->shape[i].n_exponents;
        if (r->p.learn_scale) {
            r->ds[i] = d;
            d += scale_size(r, i);
        }
    }
    return 0;
}

Recon *recon_create(const ModelConfig *c, const BlockWeights *fp, const ReconParams *p,
                    int block, int n_sequences, int T, int max_local_sequences) {
    Recon *r = nq_calloc(1, sizeof *r, "reconstruction state");
    if (!r) return NULL;
    r->c = *c;
    r->p = *p;
    r->quant = quantizer_of(p->spec);
    if (!r->quant) {
        nq_fail(NQ_ERR_RUNTIME, "quantizer %d, expected 0..%d", p->spec.quantizer, QUANTIZER_COUNT - 1);
        free(r);
        return NULL;
    }
    if (r->p.method != RECON_NUPES) r->p.learn_scale = 0;
    r->block = block;
    r->n_sequences = n_sequences;
    r->T = T;
    r->max_local = max_local_sequences;
    size_t const d = (size_t)c->dim;
    r->attn_norm = copy_floats(fp->attn_norm, d, "attention norm");
    r->ffn_norm = copy_floats(fp->ffn_norm, d, "ffn norm");
    size_t const rows = (size_t)max_local_sequences * (size_t)T * d;
    r->y_quant = nq_calloc(rows, sizeof(float), "quantized block output");
    if (!r->attn_norm || !r->ffn_norm || !r->y_quant) goto fail;
    if (batch_sampler_create(&r->sampler, n_sequences, p->batch, p->seed, (uint64_t)block) != NQ_OK)
        goto fail;
    size_t weights_total = 0, weights_done = 0;
    for (int i = 0; i < N_MATS; i++) /* a skipped matrix is only copied: not counted in the rate */
        if (!(p->skip_mask & (1u << i))) weights_total += (size_t)mat_rows(c, i) * mat_cols(c, i);
    for (int i = 0; i < N_MATS; i++) {
        r->shape[i] = quant_shape(p->spec, mat_rows(c, i), mat_cols(c, i));
        r->quantized[i] = !(p->skip_mask & (1u << i));
        if (!r->quantized[i]) {
            r->fp_weight[i] = copy_floats(fp->mat[i], mat_size(r, i), "fp32 weights");
            r->dw[i] = nq_calloc(mat_size(r, i), sizeof(float), "weight gradient");
            if (!r->fp_weight[i] || !r->dw[i]) goto fail;
        } else if (init_matrix(r, i, fp->mat[i]) != 0) {
            goto fail;
        }
        if (r->quantized[i]) weights_done += mat_size(r, i);
        if (p->setup_progress && p->setup_progress(p->setup_ctx, i, weights_done, weights_total))
            goto fail; /* the caller knows why: its callback said stop */
    }
    if (init_gradients(r) != 0) goto fail;
    return r;
fail:
    recon_free(r);
    return NULL;
}

void recon_free(Recon *r) {
    if (!r) return;
    free(r->attn_norm);
    free(r->ffn_norm);
    for (int i = 0; i < N_MATS; i++) {
        free(r->fp_weight[i]);
        free(r->scale0[i]);
        free(r->scale[i]);
        free(r->scale_next[i]);
        learned_free(&r->z[i]);
        learned_free(&r->a[i]);
        learned_free(&r->s[i]);
        free(r->codes[i]);
        free(r->w_hat[i]);
        if (!r->quantized[i]) free(r->dw[i]); /* else a view into grad_floats */
    }
    free(r->grad_floats);
    free(r->grad_doubles);
    free(r->da_rows);
    block_acts_free(r->acts);
    free(r->y_quant);
    batch_sampler_free(&r->sampler);
    free(r);
}

int recon_step(const Recon *r) { return r->step; }

int recon_finished(const Recon *r) { return !learns(r) || r->step >= r->p.iterations; }

void recon_set_step(Recon *r, int step) {
    r->step = step;
    r->w_hat_fresh = 0; /* the state may have been restored */
    r->w_hat_stored = 0;
}

void recon_batch_indices(Recon *r, int *idx) {
    if (r->sampler_drawn != r->step) batch_sampler_seek(&r->sampler, (uint64_t)r->step);
    batch_sampler_next(&r->sampler, idx);
    r->sampler_drawn = r->step + 1;
}

/* w_hat of every quantized matrix replaced by what the block's result will store: the
 * quantizer's decode of its encode (fp16 scales and exponents; the codes are the same).
 * Done once the block is finished (RTN and PowerQuant: from the start), so that its final
 * probe loss, the hand-on to the next block (computed from the stored result) and every
 * later eval or export all see one model: the one in the file. While learning, w_hat
 * keeps the fp32 values: the rounding would only add noise to the gradients. */
static nq_status use_stored_values(Recon *r) {
    for (int i = 0; i < N_MATS; i++) {
        if (!r->quantized[i]) continue;
        QArrayDesc desc[QM_MAX_ARRAYS];
        void *arrays[QM_MAX_ARRAYS] = {0};
        int const n = r->quant->describe(r->p.spec, r->shape[i], RESULT_FORMAT_VERSION, desc);
        nq_status st = NQ_OK;
        for (int k = 0; k < n && st == NQ_OK; k++) {
            size_t const count = qarray_count(&desc[k]);
            arrays[k] = nq_calloc(count ? count : 1, qarray_type_size(desc[k].type), "stored array");
            if (!arrays[k]) st = NQ_ERR_RUNTIME;
        }
        QuantLatents const l = {r->z[i].value, r->scale[i], r->a[i].value};
        if (st == NQ_OK) st = r->quant->encode(r->p.spec, r->shape[i], &l, r->codes[i], desc, arrays);
        if (st == NQ_OK)
            st = r->quant->decode(r->p.spec, r->shape[i], desc, (const void *const *)arrays, r->w_hat[i]);
        for (int k = 0; k < n; k++) free(arrays[k]);
        if (st != NQ_OK) return st;
    }
    r->w_hat_stored = 1;
    return NQ_OK;
}

/* Codes and quantized weights from the current latents; fills w with the weights the
 * forward pass uses (quantized, or fp32 for skipped matrices). A finished block uses the
 * stored values (use_stored_values). NQ_ERR_INPUT when they cannot be stored. */
static nq_status quantize_all(Recon *r, BlockWeights *w) {
    w->attn_norm = r->attn_norm;
    w->ffn_norm = r->ffn_norm;
    for (int i = 0; i < N_MATS; i++) {
        if (!r->quantized[i]) {
            w->mat[i] = r->fp_weight[i];
            continue;
        }
        if (r->w_hat_fresh) { /* recon_apply quantized already */
            w->mat[i] = r->w_hat[i];
            continue;
        }
        size_t const ns = scale_size(r, i);
        for (size_t g = 0; g < ns; g++)
            r->scale[i][g] = r->scale0[i][g] * (r->p.learn_scale ? r->s[i].value[g] : 1.0f);
        QuantLatents const l = {r->z[i].value, r->scale[i], r->a[i].value};
        r->quant->forward(r->p.spec, r->shape[i], &l, r->codes[i], r->w_hat[i]);
        r->w_hat_stored = 0;
        w->mat[i] = r->w_hat[i];
    }
    if (recon_finished(r) && !r->w_hat_stored) return use_stored_values(r);
    return NQ_OK;
}

static int ensure_acts(Recon *r, int b) {
    if (r->acts && r->acts_sequences == b) return 0;
    block_acts_free(r->acts);
    r->acts = block_acts_create(&r->c, b, r->T);
    r->acts_sequences = r->acts ? b : 0;
    if (r->acts && r->timings) block_acts_set_timings(r->acts, &r->timings->block);
    return r->acts ? 0 : -1;
}

/* sum + the squared differences, added in order (a pass in chunks sums as one pass does). */
static double squared_error(double sum, const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double const e = (double)a[i] - (double)b[i];
        sum += e * e;
    }
    return sum;
}

/* One matrix's element-wise pass over a range of rows, for parallel_ranges. */
typedef struct {
    Recon *r;
    int i;
    int t; /* recon_apply: the step */
} MatrixPass;

/* dL/dw_hat -> per-row exponent sums (da_rows) and dL/ds of rows [r0, r1). */
static void quant_backward_range(void *arg, int r0, int r1) {
    MatrixPass const *p = arg;
    Recon *r = p->r;
    int const i = p->i, groups = r->shape[i].groups;
    QuantLatents const l = {r->z[i].value, r->scale[i], r->a[i].value};
    r->quant->backward_rows(r->p.spec, r->shape[i], r0, r1, &l, r->codes[i], r->dw[i], NULL,
                            r->da_rows + r0, r->ds[i]);
    if (!r->p.learn_scale) return;
    /* that gave dL/dM; M = M0 * s, so dL/ds = dL/dM * M0 */
    for (size_t g = (size_t)r0 * groups; g < (size_t)r1 * groups; g++)
        r->ds[i][g] *= r->scale0[i][g];
}

double recon_eval_sse(Recon *r, const float *x, const float *y, int b, int chunk, int (*should_stop)(void *ctx),
                      void *stop_ctx, int *abandoned) {
    BlockWeights w;
    *abandoned = 0;
    if (quantize_all(r, &w) != NQ_OK) return NAN;
    if (b > r->max_local || chunk < 1) return NAN;
    size_t const per_seq = (size_t)r->T * r->c.dim;
    double sse = 0;
    for (int first = 0; first < b; first += chunk) {
        int const n = b - first < chunk ? b - first : chunk;
        if (ensure_acts(r, n) != 0) return NAN;
        block_acts_set_stop(r->acts, should_stop, stop_ctx); /* each pass sets its own (NULL: none) */
        block_forward(&r->c, &w, x + first * per_seq, r->y_quant + first * per_seq, r->acts);
        *abandoned = block_acts_abandoned(r->acts);
        if (*abandoned) return 0.0;
        sse = squared_error(sse, r->y_quant + first * per_seq, y + first * per_seq, (size_t)n * per_seq);
    }
    return sse;
}

/* An abandoned iteration: the gradients are left half-written (never applied). */
static double abandon(Recon *r) {
    r->abandoned = 1;
    return 0.0;
}

int recon_iteration_abandoned(const Recon *r) { return r->abandoned; }

double recon_accumulate_gradient(Recon *r, const float *x, const float *y, int b,
                                 int total_sequences) {
    BlockWeights w;
    double clock = clock_start(r);
    if (quantize_all(r, &w) != NQ_OK) return NAN;
    lap(r, RECON_PHASE_QUANTIZE, &clock);
    r->abandoned = 0;
    if (b > r->max_local || ensure_acts(r, b) != 0) return NAN;
    block_acts_set_stop(r->acts, r->p.should_stop, r->p.stop_ctx); /* each pass sets its own */
    block_forward(&r->c, &w, x, r->y_quant, r->acts); /* timed inside, per phase */
    if (block_acts_abandoned(r->acts)) return abandon(r);
    clock = clock_start(r);

    /* loss = mean over all total_sequences * T * d outputs of (y_q - y)^2; its gradient
     * takes y_q's place (each element read before it is written) */
    size_t const n = (size_t)b * r->T * r->c.dim;
    double const norm = 2.0 / ((double)total_sequences * r->T * r->c.dim);
    double sse = 0;
    for (size_t i = 0; i < n; i++) {
        float const e = r->y_quant[i] - y[i];
        sse += (double)e * e;
        r->y_quant[i] = (float)(norm * e);
    }
    BlockGrads grads;
    for (int i = 0; i < N_MATS; i++) grads.mat[i] = r->dw[i];
    lap(r, RECON_PHASE_LOSS, &clock);
    block_backward(&r->c, &w, r->acts, r->y_quant, &grads);
    if (block_acts_abandoned(r->acts)) return abandon(r);
    clock = clock_start(r);

    int const threads = parallel_threads();
    for (int i = 0; i < N_MATS; i++) {
        if (!r->quantized[i]) continue;
        MatrixPass pass = {r, i, 0};
        parallel_ranges(threads, r->shape[i].rows, quant_backward_range, &pass);
        /* the per-tensor sum in row order: the same whatever the split */
        if (r->p.spec.per_row) {
            memcpy(r->da[i], r->da_rows, (size_t)r->shape[i].rows * sizeof(double));
        } else {
            double sum = 0.0;
            for (int row = 0; row < r->shape[i].rows; row++) sum += r->da_rows[row];
            r->da[i][0] = sum;
        }
    }
    lap(r, RECON_PHASE_QUANT_BACKWARD, &clock);
    return sse;
}

float *recon_grad_floats(Recon *r, size_t *count) {
    *count = r->n_grad_floats;
    return r->grad_floats;
}

double *recon_grad_doubles(Recon *r, size_t *count) {
    *count = r->n_grad_doubles;
    return r->grad_doubles;
}

/* Latents per chunk of rows: Adam (gradient dw_hat * M with the forward's M), then
 * straight away the codes and w_hat of the next forward with the new a and M, while the
 * chunk's z is still in cache (~1 MB of z per chunk). */
static void adam_quantize_range(void *arg, int r0, int r1) {
    MatrixPass const *p = arg;
    Recon *r = p->r;
    int const i = p->i, t = p->t;
    QuantShape const sh = r->shape[i];
    size_t const cols = (size_t)sh.cols, group = (size_t)quant_group_len(r->p.spec, sh, 0);
    int const chunk = (int)((1u << 18) / cols) + 1;
    float const lr = adam_cosine_lr(r->p.lr_weights, t, r->p.iterations);
    Learned *z = &r->z[i];
    for (int c0 = r0; c0 < r1; c0 += chunk) {
        int const rows = r1 - c0 < chunk ? r1 - c0 : chunk;
        size_t const off = (size_t)c0 * cols;
        size_t const goff = (size_t)c0 * sh.groups;
        /* Row by row: a row's last group may be shorter (ragged), so groups do not tile
         * the chunk across row boundaries. */
        for (int rr = 0; rr < rows; rr++) {
            size_t const ro = off + (size_t)rr * cols;
            adam_step_grouped(z->value + ro, r->dw[i] + ro, r->scale[i] + goff + (size_t)rr * sh.groups, group,
                              z->m + ro, z->v + ro, cols, lr, t + 1, -1.0f, 1.0f);
        }
        QuantShape part = sh;
        part.rows = rows;
        part.n_exponents = r->p.spec.per_row ? rows : 1;
        QuantLatents const l = {z->value + off, r->scale_next[i] + goff,
                                r->a[i].value + (r->p.spec.per_row ? c0 : 0)};
        r->quant->forward(r->p.spec, part, &l, r->codes[i] + off, r->w_hat[i] + off);
    }
}

void recon_apply(Recon *r) {
    if (!learns(r)) return;
    double clock = clock_start(r);
    int const t = r->step, threads = parallel_threads();
    for (int i = 0; i < N_MATS; i++) {
        if (!r->quantized[i]) continue;
        Learned *a = &r->a[i], *s = &r->s[i];
        /* a and s first: the latents' pass quantizes with their new values */
        adam_step_double_grad(a->value, r->da[i], a->m, a->v, a->count,
                              adam_cosine_lr(r->p.lr_exponent, t, r->p.iterations), t + 1,
                              QUANT_MIN_EXPONENT, QUANT_MAX_EXPONENT);
        if (r->p.learn_scale)
            adam_step_double_grad(s->value, r->ds[i], s->m, s->v, s->count,
                                  adam_cosine_lr(r->p.lr_scale, t, r->p.iterations), t + 1,
                                  1e-3f, 1e3f);
        size_t const ns = scale_size(r, i);
        for (size_t g = 0; g < ns; g++) /* as quantize_all */
            r->scale_next[i][g] = r->scale0[i][g] * (r->p.learn_scale ? s->value[g] : 1.0f);
        MatrixPass pass = {r, i, t};
        parallel_ranges(threads, r->shape[i].rows, adam_quantize_range, &pass);
        float *const used = r->scale[i];
        r->scale[i] = r->scale_next[i];
        r->scale_next[i] = used;
    }
    r->w_hat_fresh = 1;
    r->w_hat_stored = 0;
    r->step++;
    lap(r, RECON_PHASE_ADAM, &clock);
}

nq_status recon_result(Recon *r, BlockResult *out) {
    BlockWeights w;
    nq_status const quantized = quantize_all(r, &w);
    if (quantized != NQ_OK) return quantized;
    for (int i = 0; i < N_MATS; i++) {
        QuantMatrix *q = &out->mat[i];
        if (!r->quantized[i]) {
            memcpy(q->weight, r->fp_weight[i], mat_size(r, i) * sizeof(float));
            continue;
        }
        QuantLatents const l = {r->z[i].value, r->scale[i], r->a[i].value};
        nq_status const st = r->quant->encode(r->p.spec, r->shape[i], &l, r->codes[i], q->desc, q->array);
        if (st != NQ_OK) { /* the block and matrix in front of the quantizer's message */
            char why[256];
            snprintf(why, sizeof why, "%s", nq_last_error());
            nq_clear_error();
            return nq_fail(st, "block %d, %s: %s", r->block, mat_names[i], why);
        }
    }
    return NQ_OK;
}

static int add_learned(ReconArray *arrays, int n, int max, const char *mat, const char *what,
                       const Learned *l) {
    const struct { const char *suffix; float *data; } parts[] = {
        {"", l->value}, {"_m", l->m}, {"_v", l->v}};
    for (int k = 0; k < 3; k++) {
        if (!parts[k].data || n >= max) continue;
        snprintf(arrays[n].name, sizeof arrays[n].name, "%s.%s%s", mat, what, parts[k].suffix);
        arrays[n].data = parts[k].data;
        arrays[n].count = l->count;
        arrays[n].is_double = 0;
        n++;
    }
    return n;
}

int recon_state_arrays(Recon *r, ReconArray *arrays, int max_arrays) {
    int n = 0;
    r->w_hat_fresh = 0; /* the caller may write into the views (a restore) */
    for (int i = 0; i < N_MATS; i++) {
        if (!r->quantized[i]) continue;
        n = add_learned(arrays, n, max_arrays, mat_names[i], "z", &r->z[i]);
        n = add_learned(arrays, n, max_arrays, mat_names[i], "a", &r->a[i]);
        if (r->p.learn_scale) n = add_learned(arrays, n, max_arrays, mat_names[i], "s", &r->s[i]);
    }
    return n;
}
