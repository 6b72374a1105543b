/* llama.cpp's IQ4_NL and IQ4_XS grids as learned quantizers (see quant_iq4.h). */
#include "quant_iq4.h"

#include <math.h>
#include <string.h>

#include "float16.h"

/* ggml's kvalues_iq4nl: the values GGUF's IQ4_NL and IQ4_XS blocks index. */
const int8_t iq4_grid[IQ4_LEVELS] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};

int iq4_groups(int cols) { return (cols + IQ4_GROUP - 1) / IQ4_GROUP; }

float iq4_value(int index) { return (float)iq4_grid[index] / 127.0f; }

/* Decision thresholds between neighbours, t_i = (C[i] + C[i+1]) / 2 taken as the smallest
 * float >= the exact midpoint: z >= t_i in float exactly when z is at or past the real
 * midpoint, so every z goes where the exact rule (ties to the larger index) sends it.
 * 31 floats, built on the stack by each call (no state shared between threads). */
typedef struct {
    float threshold[IQ4_LEVELS - 1];
    float value[IQ4_LEVELS]; /* C[i] */
} Tables;

static float float_at_or_above(double x) {
    float f = (float)x;
    if ((double)f < x) f = nextafterf(f, INFINITY);
    return f;
}

static Tables tables_make(void) {
    Tables t;
    for (int i = 0; i < IQ4_LEVELS; i++) t.value[i] = iq4_value(i);
    for (int i = 0; i + 1 < IQ4_LEVELS; i++)
        t.threshold[i] = float_at_or_above(((double)iq4_grid[i] + iq4_grid[i + 1]) / 254.0);
    return t;
}

/* Count of thresholds at or below z: fifteen compares, no branch (signs are random). */
static inline int index_of(const Tables *t, float z) {
    int idx = 0;
    for (int i = 0; i + 1 < IQ4_LEVELS; i++) idx += z >= t->threshold[i];
    return idx;
}

int iq4_index(float z) {
    Tables const t = tables_make();
    return index_of(&t, z);
}

static int group_len(int cols, int g) {
    int const rest = cols - g * IQ4_GROUP;
    return rest < IQ4_GROUP ? rest : IQ4_GROUP;
}

void iq4_init_scales(int rows, int cols, const float *w, float *M) {
    int const groups = iq4_groups(cols);
    for (int r = 0; r < rows; r++) {
        for (int g = 0; g < groups; g++) {
            const float *wg = w + (size_t)r * cols + (size_t)g * IQ4_GROUP;
            float amax = 0.0f, max = 0.0f;
            for (int i = 0; i < group_len(cols, g); i++) {
                if (fabsf(wg[i]) > amax) amax = fabsf(wg[i]), max = wg[i];
            }
            M[(size_t)r * groups + g] = -max; /* the largest |w| maps to C[0] = -1 */
        }
    }
}

void iq4_normalise(int rows, int cols, const float *w, const float *M, float *z) {
    int const groups = iq4_groups(cols);
    for (int r = 0; r < rows; r++) {
        for (int g = 0; g < groups; g++) {
            size_t const off = (size_t)r * cols + (size_t)g * IQ4_GROUP;
            float const Mg = M[(size_t)r * groups + g];
            int const n = group_len(cols, g);
            for (int i = 0; i < n; i++)
                z[off + i] = Mg != 0.0f ? fminf(1.0f, fmaxf(-1.0f, w[off + i] / Mg)) : 0.0f;
        }
    }
}

/* Squared error of the best M for the codes of w / M_try, and that M (least squares:
 * M = sum w C / sum C^2). */
static double refit(const Tables *t, const float *w, int n, float M_try, float *M_out) {
    double wc = 0.0, cc = 0.0, ww = 0.0;
    for (int i = 0; i < n; i++) {
        float const z = fminf(1.0f, fmaxf(-1.0f, w[i] / M_try));
        double const c = t->value[index_of(t, z)];
        wc += (double)w[i] * c;
        cc += c * c;
        ww += (double)w[i] * w[i];
    }
    if (cc == 0.0) {
        *M_out = M_try;
        return ww;
    }
    *M_out = (float)(wc / cc);
    return ww - wc * wc / cc; /* ||w - M C||^2 at the optimum */
}

/* Multipliers of M0 tried: a grid of +-15% around 1, where the best start lies for
 * weights of LLaMA-like statistics (measured in tests/test_quant_iq4.c against a dense
 * scan); ggml searches d over a band of similar width. */
#define FIT_CANDIDATES 21
#define FIT_SPAN 0.15f

void iq4_fit_scales(int rows, int cols, const float *w, const float *M0, float *s) {
    Tables const t = tables_make();
    int const groups = iq4_groups(cols);
    for (int r = 0; r < rows; r++) {
        for (int g = 0; g < groups; g++) {
            const float *wg = w + (size_t)r * cols + (size_t)g * IQ4_GROUP;
            int const n = group_len(cols, g);
            float const m0 = M0[(size_t)r * groups + g];
            float best_s = 1.0f;
            if (m0 != 0.0f) {
                double best = INFINITY;
                for (int c = 0; c < FIT_CANDIDATES; c++) {
                    float const mult = 1.0f - FIT_SPAN + 2.0f * FIT_SPAN * (float)c / (FIT_CANDIDATES - 1);
                    float M;
                    double const err = refit(&t, wg, n, m0 * mult, &M);
                    /* a refit of the other sign means degenerate codes: not a start */
                    if (err < best && M / m0 > 0.0f) best = err, best_s = M / m0;
                }
                best_s = fminf(1e3f, fmaxf(1e-3f, best_s)); /* the learned range of s */
            }
            s[(size_t)r * groups + g] = best_s;
        }
    }
}

void iq4nl_block_scales(int rows, int cols, const float *M, float *d) {
    size_t const n = (size_t)rows * iq4_groups(cols);
    for (size_t g = 0; g < n; g++) d[g] = M[g] / 127.0f;
}

void iq4xs_block_scales(int rows, int cols, const float *M, float *d_hat, float *D, int8_t *l) {
    int const groups = iq4_groups(cols), per = IQ4XS_SUPER / IQ4_GROUP;
    int const supers = cols / IQ4XS_SUPER;
    for (int r = 0; r < rows; r++) {
        for (int sb = 0; sb < supers; sb++) {
            size_t const g0 = (size_t)r * groups + (size_t)sb * per;
            float dmax = 0.0f;
            for (int b = 0; b < per; b++) {
                float const d = M[g0 + b] / 127.0f;
                if (fabsf(d) > fabsf(dmax)) dmax = d;
            }
            float const Dsb = half_to_float(float_to_half(-dmax / 32.0f));
            for (int b = 0; b < per; b++) {
                int li = 0;
                if (Dsb != 0.0f) {
                    float const q = rintf(M[g0 + b] / 127.0f / Dsb); /* nearest, ties even */
                    li = q < -32.0f ? -32 : q > 31.0f ? 31 : (int)q;
                }
                d_hat[g0 + b] = Dsb * (float)li;
                if (l) l[g0 + b] = (int8_t)li;
            }
            D[(size_t)r * supers + sb] = Dsb;
        }
    }
}

void iq4_forward(int rows, int cols, const float *z, const float *d, int8_t *codes,
                 float *w_hat) {
    Tables const t = tables_make();
    int const groups = iq4_groups(cols);
    for (int r = 0; r < rows; r++) {
        for (int g = 0; g < groups; g++) {
            size_t const off = (size_t)r * cols + (size_t)g * IQ4_GROUP;
            float const dg = d[(size_t)r * groups + g];
            int const n = group_len(cols, g);
            for (int i = 0; i < n; i++) {
                int const k = index_of(&t, z[off + i]);
                codes[off + i] = (int8_t)k;
                if (w_hat) w_hat[off + i] = dg * (float)iq4_grid[k];
            }
        }
    }
}

void iq4_backward_rows(int cols, int r0, int r1, const float *d, const int8_t *codes,
                       const float *dw_hat, float *dz, double *dM) {
    int const groups = iq4_groups(cols);
    for (int r = r0; r < r1; r++) {
        for (int g = 0; g < groups; g++) {
            size_t const off = (size_t)r * cols + (size_t)g * IQ4_GROUP;
            float const dg = d[(size_t)r * groups + g], M = 127.0f * dg;
            int const n = group_len(cols, g);
            double sum = 0.0;
            for (int i = 0; i < n; i++) {
                if (dz) dz[off + i] = dw_hat[off + i] * M;
                sum += (double)dw_hat[off + i] * iq4_grid[codes[off + i]];
            }
            if (dM) dM[(size_t)r * groups + g] = sum / 127.0;
        }
    }
}

void iq4_dequantize(int rows, int cols, const int8_t *codes, const float *d, float *w) {
    int const groups = iq4_groups(cols);
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            size_t const i = (size_t)r * cols + c;
            w[i] = d[(size_t)r * groups + c / IQ4_GROUP] * (float)iq4_grid[codes[i]];
        }
    }
}
