/* Causal multi-head attention with grouped key/value heads (GQA), through gemm() (gemm.h).
 *
 * Per sequence b and head h (kv group g = h / (H / Hkv)):
 *   S = Q_h K_g^T / sqrt(hs) [T][T], causal mask;  P = softmax(S) by rows;  O_h = P V_g.
 * Q_h is the column block [h*hs, (h+1)*hs) of the rows of sequence b, read in place with a
 * leading dimension (no copies). The full T x T product is computed and its upper triangle
 * discarded by the mask. */
#ifndef NUPES_ATTENTION_H
#define NUPES_ATTENTION_H

/* q, out: [B][T][H*hs]; k, v: [B][T][Hkv*hs]; att: [B][H][T][T] softmax probabilities,
 * zero above the diagonal (kept for the backward pass). */
void attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                       int B, int T, int H, int Hkv, int hs);

/* The same output without keeping the probabilities (capture, hand-on: no backward):
 * p [T][T] scratch, reused by every (sequence, head). out is bit-identical to
 * attention_forward's (the same products of the same shapes). */
void attention_forward_only(float *out, float *p, const float *q, const float *k, const float *v,
                            int B, int T, int H, int Hkv, int hs);

/* dq: [B][T][H*hs], dk, dv: [B][T][Hkv*hs], overwritten with the gradients w.r.t. q, k, v
 * given dout [B][T][H*hs] and the forward's att, q, k, v. datt: [T][T] scratch. */
void attention_backward(float *dq, float *dk, float *dv, float *datt, const float *dout,
                        const float *att, const float *q, const float *k, const float *v, int B,
                        int T, int H, int Hkv, int hs);

#endif
