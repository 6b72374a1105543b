/* The reconstruction schedule (docs/design.md 3.3 and 4), one mechanism for every mode:
 *   parallel    G groups, blocks dealt round-robin, every block on the fp32 model's inputs;
 *   pipelined   the same groups and deal, but block l switches to the quantized blocks'
 *               output at `switch` of its iterations, waiting for it if it is late;
 *   sequential  one group of every rank, switching at step 0: blocks one after another.
 * When block l finishes (pipelined, sequential), its group hands on the input of block
 * l + 1 through the finished quantized block (io/qlevel_file.h). The result of a block does
 * not depend on which group ran it or when, so 1, 2 or 3 ranks give the same codes. */
#ifndef NUPES_SCHEDULE_H
#define NUPES_SCHEDULE_H

#include "job_context.h"

/* Sequences per block_forward call when handing on (the plan counts its scratch). */
#define HAND_ON_CHUNK 8

/* pending: the blocks without a done file, ascending. Returns NQ_OK, or NQ_STOPPED on every
 * rank after a stop (states saved); other failures abort the job (a group cannot leave
 * the others waiting). Root writes the done file of every block as it arrives. */
nq_status schedule_run(Job *job, const int *pending, int n_pending);

#endif
