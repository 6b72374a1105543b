#include "naive_block.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double *naive_to_double(const float *src, size_t n) {
    double *out = malloc((n ? n : 1) * sizeof(double));
    if (!out) return NULL;
    for (size_t i = 0; i < n; i++) out[i] = src[i];
    return out;
}

/* out[d] = x / sqrt(mean(x^2) + eps) * g */
static void naive_rmsnorm(double *out, const double *x, const double *g, int d, double eps) {
    double ss = 0.0;
    for (int j = 0; j < d; j++) ss += x[j] * x[j];
    double const scale = 1.0 / sqrt(ss / d + eps);
    for (int j = 0; j < d; j++) out[j] = x[j] * scale * g[j];
}

/* out[rows] = W[rows][cols] x[cols] */
static void naive_matvec(double *out, const double *w, const double *x, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        double sum = 0.0;
        for (int k = 0; k < cols; k++) sum += w[(size_t)r * cols + k] * x[k];
        out[r] = sum;
    }
}

/* Rotates each head of vec (n_heads heads of hs) for position pos. For every even element
 * index j of a head the frequency is theta^(-j/hs); interleaved style rotates (j, j+1),
 * half style rotates (j/2, j/2 + hs/2). */
static void naive_rope(double *vec, int n_heads, int hs, int pos, double theta, RopeStyle style) {
    for (int h = 0; h < n_heads; h++) {
        double *head = vec + h * hs;
        for (int j = 0; j < hs; j += 2) {
            double const angle = pos * pow(theta, -(double)j / hs);
            int const a = style == ROPE_INTERLEAVED ? j : j / 2;
            int const b = style == ROPE_INTERLEAVED ? j + 1 : j / 2 + hs / 2;
            double const x0 = head[a], x1 = head[b];
            head[a] = x0 * cos(angle) - x1 * sin(angle);
            head[b] = x0 * sin(angle) + x1 * cos(angle);
        }
    }
}

/* Causal attention of one sequence: q [T][d], k, v [T][dkv] -> out [T][d]. score: [T]. */
static void naive_attention(double *out, const double *q, const double *k, const double *v,
                            int T, int H, int Hkv, int hs, double *score) {
    int const d = H * hs, dkv = Hkv * hs;
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < H; h++) {
            int const g = h / (H / Hkv);
            const double *qh = q + (size_t)t * d + h * hs;
            double max = -INFINITY;
            for (int s = 0; s <= t; s++) {
                const double *ks = k + (size_t)s * dkv + g * hs;
                double dot = 0.0;
                for (int i = 0; i < hs; i++) dot += qh[i] * ks[i];
                score[s] = dot / sqrt((double)hs);
                if (score[s] > max) max = score[s];
            }
            double sum = 0.0;
            for (int s = 0; s <= t; s++) {
                score[s] = exp(score[s] - max);
                sum += score[s];
            }
            double *oh = out + (size_t)t * d + h * hs;
            for (int i = 0; i < hs; i++) oh[i] = 0.0;
            for (int s = 0; s <= t; s++) {
                const double *vs = v + (size_t)s * dkv + g * hs;
                for (int i = 0; i < hs; i++) oh[i] += score[s] / sum * vs[i];
            }
        }
    }
}

/* The feed-forward half for one token: y = x1 + W2 (silu(W1 h2) * W3 h2), h2 = norm(x1). */
static void naive_ffn(double *y, const double *x1, const ModelConfig *c,
                      const NaiveBlockWeights *w, double *h2, double *u, double *g,
                      double *tmp) {
    int const d = c->dim, f = c->hidden_dim;
    naive_rmsnorm(h2, x1, w->ffn_norm, d, c->norm_eps);
    naive_matvec(u, w->mat[MAT_W1], h2, f, d);
    naive_matvec(g, w->mat[MAT_W3], h2, f, d);
    for (int i = 0; i < f; i++) u[i] = u[i] / (1.0 + exp(-u[i])) * g[i];
    naive_matvec(tmp, w->mat[MAT_W2], u, d, f);
    for (int j = 0; j < d; j++) y[j] = x1[j] + tmp[j];
}

int naive_block_forward(const ModelConfig *c, const NaiveBlockWeights *w, int B, int T,
                        const double *x, double *y) {
    int const d = c->dim, f = c->hidden_dim, H = c->n_heads, Hkv = c->n_kv_heads;
    int const hs = d / H, dkv = Hkv * hs;
    /* per sequence: q, att [T][d]; k, v [T][dkv]; per token: h [d], x1 [d], u, g [f], score [T] */
    size_t const need = (size_t)T * (2 * d + 2 * dkv) + 3 * (size_t)d + 2 * (size_t)f + T;
    double *mem = malloc(need * sizeof(double));
    if (!mem) return -1;
    double *q = mem, *att = q + (size_t)T * d, *k = att + (size_t)T * d, *v = k + (size_t)T * dkv;
    double *h = v + (size_t)T * dkv, *x1 = h + d, *tmp = x1 + d, *u = tmp + d, *g = u + f;
    double *score = g + f;
    for (int b = 0; b < B; b++) {
        const double *xb = x + (size_t)b * T * d;
        for (int t = 0; t < T; t++) {
            naive_rmsnorm(h, xb + (size_t)t * d, w->attn_norm, d, c->norm_eps);
            naive_matvec(q + (size_t)t * d, w->mat[MAT_WQ], h, d, d);
            naive_matvec(k + (size_t)t * dkv, w->mat[MAT_WK], h, dkv, d);
            naive_matvec(v + (size_t)t * dkv, w->mat[MAT_WV], h, dkv, d);
            naive_rope(q + (size_t)t * d, H, hs, t, c->rope_theta, c->rope_style);
            naive_rope(k + (size_t)t * dkv, Hkv, hs, t, c->rope_theta, c->rope_style);
        }
        naive_attention(att, q, k, v, T, H, Hkv, hs, score);
        for (int t = 0; t < T; t++) {
            naive_matvec(tmp, w->mat[MAT_WO], att + (size_t)t * d, d, d);
            for (int j = 0; j < d; j++) x1[j] = xb[(size_t)t * d + j] + tmp[j];
            naive_ffn(y + ((size_t)b * T + t) * d, x1, c, w, h, u, g, tmp);
        }
    }
    free(mem);
    return 0;
}

/* Double copies of one block's float weights; frees them all on failure. */
static int naive_block_weights_copy(const ModelConfig *c, const BlockWeights *src,
                                    NaiveBlockWeights *dst, double **owned) {
    memset(owned, 0, (N_MATS + 2) * sizeof *owned);
    owned[0] = naive_to_double(src->attn_norm, c->dim);
    owned[1] = naive_to_double(src->ffn_norm, c->dim);
    for (int m = 0; m < N_MATS; m++)
        owned[2 + m] =
            naive_to_double(src->mat[m], (size_t)mat_rows(c, m) * mat_cols(c, m));
    for (int i = 0; i < N_MATS + 2; i++) {
        if (!owned[i]) {
            for (int j = 0; j < N_MATS + 2; j++) free(owned[j]);
            return -1;
        }
    }
    dst->attn_norm = owned[0];
    dst->ffn_norm = owned[1];
    for (int m = 0; m < N_MATS; m++) dst->mat[m] = owned[2 + m];
    return 0;
}

int naive_model_forward(const ModelConfig *c, const HeadWeights *head,
                        const BlockWeights *blocks, const int *tokens, int B, int T,
                        double *logits) {
    int const d = c->dim, V = c->vocab_size;
    size_t const nd = (size_t)B * T * d;
    double *x = malloc((2 * nd + d) * sizeof(double));
    if (!x) return -1;
    double *y = x + nd, *hn = y + nd;
    for (size_t n = 0; n < (size_t)B * T; n++)
        for (int j = 0; j < d; j++)
            x[n * d + j] = head->tok_embeddings[(size_t)tokens[n] * d + j];
    int status = 0;
    for (int l = 0; l < c->n_layers && status == 0; l++) {
        double *owned[N_MATS + 2];
        NaiveBlockWeights w;
        if (naive_block_weights_copy(c, &blocks[l], &w, owned) != 0) {
            status = -1;
            break;
        }
        status = naive_block_forward(c, &w, B, T, x, y);
        for (int i = 0; i < N_MATS + 2; i++) free(owned[i]);
        memcpy(x, y, nd * sizeof(double));
    }
    for (size_t n = 0; status == 0 && n < (size_t)B * T; n++) {
        double ss = 0.0;
        for (int j = 0; j < d; j++) ss += x[n * d + j] * x[n * d + j];
        double const scale = 1.0 / sqrt(ss / d + c->norm_eps);
        for (int j = 0; j < d; j++) hn[j] = x[n * d + j] * scale * head->norm_final[j];
        for (int v = 0; v < V; v++) {
            double sum = 0.0;
            for (int j = 0; j < d; j++) sum += hn[j] * head->classifier[(size_t)v * d + j];
            logits[n * V + v] = sum;
        }
    }
    free(x);
    return status;
}
