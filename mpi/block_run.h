/* One block's reconstruction on its group (block_run.c). */
#ifndef NUPES_BLOCK_RUN_H
#define NUPES_BLOCK_RUN_H

#include "job_context.h"
#include "result.h"

/* Sequences whose loss is reported before and after reconstruction (the same ones every
 * run, so the numbers compare); the plan times these two probe passes. */
#define PROBE_SEQUENCES 8

/* The sequences the probe passes run over, of a job's N: the first min(N, 8). */
static inline int probe_sequences(int N) { return N < PROBE_SEQUENCES ? N : PROBE_SEQUENCES; }

/* Reconstructs block l on this rank's group. x is the fp32 model's block input until
 * job->switch_step, then the quantized blocks' output (waiting for it to be handed on);
 * the target is the fp32 block output. Resumes from the block's state file when there is
 * a valid one, saves it every checkpoint_interval seconds and on a stop (NQ_STOPPED). On
 * NQ_OK, out (allocated here) holds the result on every rank of the group. */
nq_status block_run(Job *job, int l, BlockResult *out);

#endif
