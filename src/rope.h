/* Rotary position embedding of the query and key heads.
 *
 * Pair i of a head (0 <= i < hs/2) is rotated by the angle t * theta^(-2i/hs) at position t.
 * ROPE_INTERLEAVED pairs elements (2i, 2i+1) (llama2.c, Meta); ROPE_HALF pairs (i, i+hs/2)
 * (Hugging Face). Both use the same angle for pair i, so they share the tables. */
#ifndef NUPES_ROPE_H
#define NUPES_ROPE_H

#include "model.h"

/* cos_table, sin_table: [T][hs/2], computed in float exactly as llama2.c's run.c does
 * (freq = 1 / powf(theta, 2i / (float)hs), angle = t * freq). */
void rope_tables_init(float *cos_table, float *sin_table, int T, int hs, float theta);

/* x: [B][T][n_heads * hs], rotated in place; position t restarts at 0 in each sequence. */
void rope_forward(float *x, const float *cos_table, const float *sin_table, int B, int T,
                  int n_heads, int hs, RopeStyle style);

/* dx: [B][T][n_heads * hs], in place: the gradient w.r.t. rope's output becomes the
 * gradient w.r.t. its input (the rotation is orthogonal: rotate by -angle). */
void rope_backward(float *dx, const float *cos_table, const float *sin_table, int B, int T,
                   int n_heads, int hs, RopeStyle style);

#endif
