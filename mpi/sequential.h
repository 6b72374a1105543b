/* Sequential mode (DESIGN.md 3.3, 4): blocks in order, every rank data-parallel on each
 * block; block l trains on the output of the already quantized blocks 0..l-1, kept in
 * /qinputs of the activations file so that a resume need not replay them. */
#ifndef NUPES_SEQUENTIAL_H
#define NUPES_SEQUENTIAL_H

#include "job.h"

nq_status run_sequential(Job *job, const int *pending, int n_pending);

/* Every rank: runs its shard of /qinputs level l through the quantized block r and writes
 * level l + 1 (collective). */
nq_status propagate_quantized(Job *job, int l, const BlockResult *r);

#endif
