/* Causal multi-head attention with grouped key/value heads (GQA), through gemm() (gemm.h).
 *
 * Per sequence b and head h (kv group g = h / (H / Hkv)):
 *   S = Q_h K_g^T / sqrt(hs) [T][T], causal mask;  P = softmax(S) by rows;  O_h = P V_g.
 * Q_h is the column block [h*hs, (h+1)*hs) of the rows of sequence b, read in place with a
 * leading dimension (no copies). The full T x T product is computed and its upper triangle
 * discarded by the mask. */
#ifndef NUPES_ATTENTION_H
#define NUPES_ATTENTION_H

/* q, out: [B][T][H*hs]; k, v: [B][T][Hkv*hs]; p: [T][T] scratch. The (sequence, head)
 * pairs run on parallel_threads() threads, each further thread with a [T][T] of its own,
 * allocated for the call (fewer threads if that fails; the results never change). The
 * probabilities are not kept: the backward recomputes them (at T 2048 keeping them would
 * take B x H x 16 MB). */
void attention_forward(float *out, float *p, const float *q, const float *k, const float *v,
                       int B, int T, int H, int Hkv, int hs);

/* dq: [B][T][H*hs], dk, dv: [B][T][Hkv*hs], overwritten with the gradients w.r.t. q, k, v
 * given dout [B][T][H*hs] and the forward's q, k, v. p, datt: [T][T] scratch (the
 * (sequence, kv group) pairs run side by side, as in the forward); p gets each
 * (sequence, head)'s probabilities again, bit-identical to the forward's (the same
 * product and softmax), at 2 T^2 hs more FLOPs per head (12 -> 14 with the forward's 4). */
void attention_backward(float *dq, float *dk, float *dv, float *p, float *datt, const float *dout,
                        const float *q, const float *k, const float *v, int B, int T, int H, int Hkv,
                        int hs);

#endif
