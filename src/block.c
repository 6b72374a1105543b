#include "block.h"

#include "attention.h"
#include "clock.h"
#include "ffn.h"
#include "linear.h"
#include "rmsnorm.h"
#include "rope.h"
#include "status.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* The tensors of BlockActs, in carving order. The forward pass fills the first group and
 * the backward pass reads it; the second group is scratch that both passes reuse. The
 * backward consumes U and G: it writes dU and dG over them (each element of the gradients
 * needs only the same element of U, G and dHh), and once the feed-forward's backward is
 * done, dQ, dK and dV take U, G and DU's room. So one forward serves one backward. */
enum {
    /* forward, kept for backward */
    ACT_H1,    /* [N][d]  rmsnorm(X) * g_att */
    ACT_Q,     /* [N][d]  rope(h1 Wq^T) */
    ACT_K,     /* [N][dkv] rope(h1 Wk^T) */
    ACT_V,     /* [N][dkv] h1 Wv^T */
    ACT_O,     /* [N][d]  attention output, before Wo */
    ACT_X1,    /* [N][d]  X + O Wo^T */
    ACT_RSTD2, /* [N]     1/rms of the rows of X1 */
    ACT_H2,    /* [N][d]  rmsnorm(X1) * g_ffn */
    ACT_U,     /* [N][f]  h2 W1^T, then dL/dU (backward) */
    ACT_G,     /* [N][f]  h2 W3^T, then dL/dG (backward) */
    ACT_COS,   /* [T][hs/2] rope tables, filled once at creation */
    ACT_SIN,   /* [T][hs/2] */
    /* scratch */
    ACT_P,     /* [T][T]  probabilities of one (sequence, head), forward and recomputed */
    ACT_DATT,  /* [T][T]  dP then dS of one (sequence, head) */
    ACT_DX1,   /* [N][d]  dL/dX1 */
    ACT_DH,    /* [N][d]  dL/dh2, then dL/dO */
    ACT_DU,    /* [N][f]  silu(U) * G (forward, and again for dW2), then dL/dHh */
    /* views, written once the feed-forward's backward is done with what they overlay */
    ACT_DQ,    /* [N][d]   in U's place (U is sized for it if f < d) */
    ACT_DK,    /* [N][dkv] in G's place */
    ACT_DV,    /* [N][dkv] in DU's place */
    N_ACTS
};
#define ACT_HH ACT_DU /* silu(U) * G lives in DU's place: recomputed for dW2, not kept */

struct BlockActs {
    int B, T;
    int d, f, H, Hkv; /* the shape the tensors were sized for */
    float *memory;    /* the one allocation; t[] points into it */
    float *t[N_ACTS];
    BlockTimings *timings; /* NULL: not timed */
    int (*should_stop)(void *ctx); /* NULL: never abandoned */
    void *stop_ctx;
    int abandoned;
};

void block_acts_set_timings(BlockActs *acts, BlockTimings *t) { acts->timings = t; }

void block_acts_set_stop(BlockActs *acts, int (*should_stop)(void *ctx), void *ctx) {
    acts->should_stop = should_stop;
    acts->stop_ctx = ctx;
}

int block_acts_abandoned(const BlockActs *acts) { return acts->abandoned; }

/* 1 when the pass must stop here (block_acts_set_stop); remembered in acts->abandoned. */
static int stop_(BlockActs *a) {
    if (!a->abandoned && a->should_stop && a->should_stop(a->stop_ctx)) a->abandoned = 1;
    return a->abandoned;
}

/* Charges the time since *since to phase (when timed) and restarts the clock. */
static void lap_(BlockActs *a, BlockPhase phase, double *since) {
    if (!a->timings) return;
    double const now = nq_seconds();
    a->timings->seconds[phase] += now - *since;
    *since = now;
}

static double start_(const BlockActs *a) { return a->timings ? nq_seconds() : 0.0; }

static size_t round16_(size_t n) { return (n + 15) / 16 * 16; }

/* Element counts of every tensor carved, each rounded up to 16 floats (64-byte alignment);
 * the views (DQ, DK, DV) take no room of their own: U, G and DU are sized for them too. */
static void block_act_sizes_(const ModelConfig *c, int B, int T, size_t sizes[N_ACTS]) {
    size_t const N = (size_t)B * T, d = c->dim, f = c->hidden_dim, H = c->n_heads;
    size_t const hs = d / H, dkv = (size_t)c->n_kv_heads * hs, TT = (size_t)T * T;
    size_t const count[N_ACTS] = {
        [ACT_H1] = N * d,    [ACT_Q] = N * d,       [ACT_K] = N * dkv,  [ACT_V] = N * dkv,
        [ACT_O] = N * d,     [ACT_X1] = N * d,      [ACT_RSTD2] = N,    [ACT_H2] = N * d,
        [ACT_U] = N * (f > d ? f : d), [ACT_G] = N * (f > dkv ? f : dkv),
        [ACT_COS] = T * hs / 2, [ACT_SIN] = T * hs / 2,
        [ACT_P] = TT,        [ACT_DATT] = TT,       [ACT_DX1] = N * d,  [ACT_DH] = N * d,
        [ACT_DU] = N * (f > dkv ? f : dkv),
    };
    for (int i = 0; i < N_ACTS; i++) sizes[i] = round16_(count[i]);
}

size_t block_acts_bytes(const ModelConfig *c, int B, int T) {
    size_t sizes[N_ACTS], total = 0;
    block_act_sizes_(c, B, T, sizes);
    for (int i = 0; i < N_ACTS; i++) total += sizes[i];
    return total * sizeof(float);
}

BlockActs *block_acts_create(const ModelConfig *c, int B, int T) {
    char why[160];
    if (model_config_check(c, why, sizeof why) != 0) {
        nq_fail(NQ_ERR_INPUT, "block activations: model config: %s", why);
        return NULL;
    }
    if (B <= 0 || T <= 0) {
        nq_fail(NQ_ERR_INPUT, "block activations: B = %d, T = %d, expected both > 0", B, T);
        return NULL;
    }
    size_t sizes[N_ACTS], total = 0;
    block_act_sizes_(c, B, T, sizes);
    for (int i = 0; i < N_ACTS; i++) total += sizes[i];
    BlockActs *a = nq_calloc(1, sizeof *a, "block activations");
    if (!a) return NULL;
    a->memory = nq_calloc(total, sizeof(float), "block activations");
    if (!a->memory) {
        free(a);
        return NULL;
    }
    float *p = a->memory;
    for (int i = 0; i < N_ACTS; i++) {
        a->t[i] = p;
        p += sizes[i];
    }
    a->t[ACT_DQ] = a->t[ACT_U];
    a->t[ACT_DK] = a->t[ACT_G];
    a->t[ACT_DV] = a->t[ACT_DU];
    a->B = B;
    a->T = T;
    a->d = c->dim;
    a->f = c->hidden_dim;
    a->H = c->n_heads;
    a->Hkv = c->n_kv_heads;
    rope_tables_init(a->t[ACT_COS], a->t[ACT_SIN], T, c->dim / c->n_heads, c->rope_theta);
    return a;
}

void block_acts_free(BlockActs *acts) {
    if (!acts) return;
    free(acts->memory);
    free(acts);
}

int block_acts_batch(const BlockActs *acts) { return acts->B; }
int block_acts_seq_len(const BlockActs *acts) { return acts->T; }

static void check_shape_(const ModelConfig *c, const BlockActs *a) {
    (void)c;
    (void)a;
    assert(a->d == c->dim && a->f == c->hidden_dim && a->H == c->n_heads &&
           a->Hkv == c->n_kv_heads);
}

void block_forward(const ModelConfig *c, const BlockWeights *w, const float *x, float *y,
                   BlockActs *acts) {
    check_shape_(c, acts);
    float *const *t = acts->t;
    int const B = acts->B, T = acts->T, N = B * T;
    int const d = c->dim, f = c->hidden_dim, H = c->n_heads, Hkv = c->n_kv_heads;
    int const hs = d / H, dkv = Hkv * hs;
    size_t const nd = (size_t)N * d;

    double clock = start_(acts);
    acts->abandoned = 0;

    /* attention */
    rmsnorm_forward(t[ACT_H1], NULL, x, w->attn_norm, N, d, c->norm_eps);
    lap_(acts, BLOCK_PHASE_OTHER, &clock);
    linear_forward(t[ACT_Q], t[ACT_H1], w->mat[MAT_WQ], N, d, d, 0);
    linear_forward(t[ACT_K], t[ACT_H1], w->mat[MAT_WK], N, d, dkv, 0);
    linear_forward(t[ACT_V], t[ACT_H1], w->mat[MAT_WV], N, d, dkv, 0);
    lap_(acts, BLOCK_PHASE_PROJECTIONS, &clock);
    if (stop_(acts)) return;
    rope_forward(t[ACT_Q], t[ACT_COS], t[ACT_SIN], B, T, H, hs, c->rope_style);
    rope_forward(t[ACT_K], t[ACT_COS], t[ACT_SIN], B, T, Hkv, hs, c->rope_style);
    lap_(acts, BLOCK_PHASE_OTHER, &clock);
    attention_forward(t[ACT_O], t[ACT_P], t[ACT_Q], t[ACT_K], t[ACT_V], B, T, H, Hkv, hs);
    lap_(acts, BLOCK_PHASE_ATTENTION, &clock);
    memcpy(t[ACT_X1], x, nd * sizeof(float)); /* residual */
    lap_(acts, BLOCK_PHASE_OTHER, &clock);
    linear_forward(t[ACT_X1], t[ACT_O], w->mat[MAT_WO], N, d, d, 1);
    lap_(acts, BLOCK_PHASE_PROJECTIONS, &clock);
    if (stop_(acts)) return;

    /* feed-forward */
    rmsnorm_forward(t[ACT_H2], t[ACT_RSTD2], t[ACT_X1], w->ffn_norm, N, d, c->norm_eps);
    lap_(acts, BLOCK_PHASE_OTHER, &clock);
    linear_forward(t[ACT_U], t[ACT_H2], w->mat[MAT_W1], N, d, f, 0);
    linear_forward(t[ACT_G], t[ACT_H2], w->mat[MAT_W3], N, d, f, 0);
    lap_(acts, BLOCK_PHASE_PROJECTIONS, &clock);
    if (stop_(acts)) return;
    swiglu_forward(t[ACT_HH], t[ACT_U], t[ACT_G], (size_t)N * f);
    memcpy(y, t[ACT_X1], nd * sizeof(float)); /* residual */
    lap_(acts, BLOCK_PHASE_OTHER, &clock);
    linear_forward(y, t[ACT_HH], w->mat[MAT_W2], N, f, d, 1);
    lap_(acts, BLOCK_PHASE_PROJECTIONS, &clock);
}

/* ------------------------------------------------------------ forward only */

enum { SCR_H, SCR_Q, SCR_K, SCR_V, SCR_P, SCR_U, SCR_G, SCR_COS, SCR_SIN, N_SCR };

struct BlockScratch {
    int B, T;
    int d, f, H, Hkv;
    float *memory; /* the one allocation; t[] points into it */
    float *t[N_SCR];
};

/* Element counts, each rounded up to 16 floats (64-byte alignment). */
static size_t scratch_sizes_(const ModelConfig *c, int B, int T, size_t sizes[N_SCR]) {
    size_t const N = (size_t)B * T, d = c->dim, f = c->hidden_dim;
    size_t const hs = d / c->n_heads, dkv = (size_t)c->n_kv_heads * hs;
    size_t const count[N_SCR] = {
        [SCR_H] = N * d,   [SCR_Q] = N * d, [SCR_K] = N * dkv,       [SCR_V] = N * dkv,
        [SCR_P] = (size_t)T * T, [SCR_U] = N * f, [SCR_G] = N * f,   [SCR_COS] = T * hs / 2,
        [SCR_SIN] = T * hs / 2,
    };
    size_t total = 0;
    for (int i = 0; i < N_SCR; i++) total += sizes[i] = (count[i] + 15) / 16 * 16;
    return total;
}

size_t block_scratch_bytes(const ModelConfig *c, int B, int T) {
    size_t sizes[N_SCR];
    return scratch_sizes_(c, B, T, sizes) * sizeof(float) + sizeof(BlockScratch);
}

BlockScratch *block_scratch_create(const ModelConfig *c, int B, int T) {
    char why[160];
    if (model_config_check(c, why, sizeof why) != 0) {
        nq_fail(NQ_ERR_INPUT, "block scratch: model config: %s", why);
        return NULL;
    }
    if (B <= 0 || T <= 0) {
        nq_fail(NQ_ERR_INPUT, "block scratch: B = %d, T = %d, expected both > 0", B, T);
        return NULL;
    }
    size_t sizes[N_SCR];
    size_t const total = scratch_sizes_(c, B, T, sizes);
    BlockScratch *s = nq_calloc(1, sizeof *s, "block forward scratch");
    if (!s) return NULL;
    s->memory = nq_calloc(total, sizeof(float), "block forward scratch");
    if (!s->memory) {
        free(s);
        return NULL;
    }
    float *p = s->memory;
    for (int i = 0; i < N_SCR; i++) {
        s->t[i] = p;
        p += sizes[i];
    }
    s->B = B;
    s->T = T;
    s->d = c->dim;
    s->f = c->hidden_dim;
    s->H = c->n_heads;
    s->Hkv = c->n_kv_heads;
    rope_tables_init(s->t[SCR_COS], s->t[SCR_SIN], T, c->dim / c->n_heads, c->rope_theta);
    return s;
}

void block_scratch_free(BlockScratch *s) {
    if (!s) return;
    free(s->memory);
    free(s);
}

int block_scratch_batch(const BlockScratch *s) { return s->B; }

/* block_forward's steps and products in its order, on fewer buffers: X1 is built in y
 * (after its last read of x), h holds h1, O and h2 in turn, U becomes Hh. */
void block_forward_only(const ModelConfig *c, const BlockWeights *w, const float *x, float *y,
                        BlockScratch *s) {
    assert(s->d == c->dim && s->f == c->hidden_dim && s->H == c->n_heads && s->Hkv == c->n_kv_heads);
    float *const *t = s->t;
    int const B = s->B, T = s->T, N = B * T;
    int const d = c->dim, f = c->hidden_dim, H = c->n_heads, Hkv = c->n_kv_heads;
    int const hs = d / H, dkv = Hkv * hs;

    rmsnorm_forward(t[SCR_H], NULL, x, w->attn_norm, N, d, c->norm_eps);
    linear_forward(t[SCR_Q], t[SCR_H], w->mat[MAT_WQ], N, d, d, 0);
    linear_forward(t[SCR_K], t[SCR_H], w->mat[MAT_WK], N, d, dkv, 0);
    linear_forward(t[SCR_V], t[SCR_H], w->mat[MAT_WV], N, d, dkv, 0);
    rope_forward(t[SCR_Q], t[SCR_COS], t[SCR_SIN], B, T, H, hs, c->rope_style);
    rope_forward(t[SCR_K], t[SCR_COS], t[SCR_SIN], B, T, Hkv, hs, c->rope_style);
    attention_forward(t[SCR_H], t[SCR_P], t[SCR_Q], t[SCR_K], t[SCR_V], B, T, H, Hkv, hs);
    if (y != x) memcpy(y, x, (size_t)N * d * sizeof(float)); /* residual: X1 in y */
    linear_forward(y, t[SCR_H], w->mat[MAT_WO], N, d, d, 1);

    rmsnorm_forward(t[SCR_H], NULL, y, w->ffn_norm, N, d, c->norm_eps);
    linear_forward(t[SCR_U], t[SCR_H], w->mat[MAT_W1], N, d, f, 0);
    linear_forward(t[SCR_G], t[SCR_H], w->mat[MAT_W3], N, d, f, 0);
    swiglu_forward(t[SCR_U], t[SCR_U], t[SCR_G], (size_t)N * f);
    linear_forward(y, t[SCR_U], w->mat[MAT_W2], N, f, d, 1);
}

/* dY -> dW2, dHh -> dU, dG (over U, G) -> dW1, dW3; dh2 -> dX1 (plus the residual dY). */
static void ffn_backward_(const ModelConfig *c, const BlockWeights *w, BlockActs *acts,
                          const float *dy, BlockGrads *grads) {
    float *const *t = acts->t;
    int const N = acts->B * acts->T, d = c->dim, f = c->hidden_dim;
    double clock = start_(acts);
    swiglu_forward(t[ACT_HH], t[ACT_U], t[ACT_G], (size_t)N * f); /* the forward's, again */
    lap_(acts, BLOCK_PHASE_OTHER, &clock);
    linear_backward_weight(grads->mat[MAT_W2], dy, t[ACT_HH], N, f, d);
    linear_backward_input(t[ACT_DU], dy, w->mat[MAT_W2], N, f, d, 0); /* dHh, over Hh */
    lap_(acts, BLOCK_PHASE_PROJECTIONS, &clock);
    if (stop_(acts)) return;
    swiglu_backward(t[ACT_U], t[ACT_G], t[ACT_DU], t[ACT_U], t[ACT_G], (size_t)N * f); /* in place */
    lap_(acts, BLOCK_PHASE_OTHER, &clock);
    linear_backward_weight(grads->mat[MAT_W1], t[ACT_U], t[ACT_H2], N, d, f);
    linear_backward_weight(grads->mat[MAT_W3], t[ACT_G], t[ACT_H2], N, d, f);
    if (stop_(acts)) return;
    linear_backward_input(t[ACT_DH], t[ACT_U], w->mat[MAT_W1], N, d, f, 0);
    linear_backward_input(t[ACT_DH], t[ACT_G], w->mat[MAT_W3], N, d, f, 1); /* dh2 */
    lap_(acts, BLOCK_PHASE_PROJECTIONS, &clock);
    memcpy(t[ACT_DX1], dy, (size_t)N * d * sizeof(float));                  /* residual */
    rmsnorm_backward(t[ACT_DX1], t[ACT_DH], t[ACT_X1], w->ffn_norm, t[ACT_RSTD2], N, d);
    lap_(acts, BLOCK_PHASE_OTHER, &clock);
}

/* dX1 -> dWo, dO -> dQ, dK, dV (through rope) -> dWq, dWk, dWv. dX is never needed. */
static void attention_block_backward_(const ModelConfig *c, const BlockWeights *w,
                                      BlockActs *acts, BlockGrads *grads) {
    float *const *t = acts->t;
    int const B = acts->B, T = acts->T, N = B * T;
    int const d = c->dim, H = c->n_heads, Hkv = c->n_kv_heads, hs = d / H, dkv = Hkv * hs;
    double clock = start_(acts);
    linear_backward_weight(grads->mat[MAT_WO], t[ACT_DX1], t[ACT_O], N, d, d);
    linear_backward_input(t[ACT_DH], t[ACT_DX1], w->mat[MAT_WO], N, d, d, 0); /* dO */
    lap_(acts, BLOCK_PHASE_PROJECTIONS, &clock);
    if (stop_(acts)) return;
    attention_backward(t[ACT_DQ], t[ACT_DK], t[ACT_DV], t[ACT_P], t[ACT_DATT], t[ACT_DH], t[ACT_Q],
                       t[ACT_K], t[ACT_V], B, T, H, Hkv, hs);
    lap_(acts, BLOCK_PHASE_ATTENTION, &clock);
    rope_backward(t[ACT_DQ], t[ACT_COS], t[ACT_SIN], B, T, H, hs, c->rope_style);
    rope_backward(t[ACT_DK], t[ACT_COS], t[ACT_SIN], B, T, Hkv, hs, c->rope_style);
    lap_(acts, BLOCK_PHASE_OTHER, &clock);
    linear_backward_weight(grads->mat[MAT_WQ], t[ACT_DQ], t[ACT_H1], N, d, d);
    linear_backward_weight(grads->mat[MAT_WK], t[ACT_DK], t[ACT_H1], N, d, dkv);
    linear_backward_weight(grads->mat[MAT_WV], t[ACT_DV], t[ACT_H1], N, d, dkv);
    lap_(acts, BLOCK_PHASE_PROJECTIONS, &clock);
}

void block_backward(const ModelConfig *c, const BlockWeights *w, BlockActs *acts,
                    const float *dy, BlockGrads *grads) {
    check_shape_(c, acts);
    if (stop_(acts)) return;
    ffn_backward_(c, w, acts, dy, grads);
    if (stop_(acts)) return;
    attention_block_backward_(c, w, acts, grads);
}
