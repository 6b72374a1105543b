/* The SwiGLU gate of the feed-forward network: hh = silu(u) * g, silu(u) = u / (1 + exp(-u))
 * (llama2.c's run.c order). The three linear layers around it are in linear.h. */
#ifndef NUPES_FFN_H
#define NUPES_FFN_H

#include <stddef.h>

/* u, g, hh: [n] (n = N * f). */
void swiglu_forward(float *hh, const float *u, const float *g, size_t n);

/* du, dg: [n] gradients w.r.t. u and g given dhh [n]; du may alias dhh or u, dg may
 * alias g (the backward of a block writes them in place). */
void swiglu_backward(float *du, float *dg, const float *dhh, const float *u, const float *g,
                     size_t n);

#endif
