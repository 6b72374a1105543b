/* Activation capture (docs/design.md 4): rank r runs its shard of the calibration sequences
 * through the fp32 model one block at a time, loading only that block's weights, and
 * writes the input of every block (and the last block's output) into the activations
 * file with collective writes. No rank holds more than one block's weights and its own
 * sequences' activations. */
#ifndef NUPES_CAPTURE_H
#define NUPES_CAPTURE_H

#include "activations.h"
#include "model_file.h"
#include "status.h"

/* tokens: [N][T] every calibration sequence (each rank uses its own shard). Collective
 * over MPI_COMM_WORLD. Returns NQ_STOPPED (on every rank) when a stop signal arrived;
 * the file is then left incomplete and the next run captures again. */
nq_status capture_run(Model *m, const int *tokens, int N, int T, Activations *act);

/* Runs block w over x [n][T][d] in place, `chunk` sequences at a time (bounded scratch). */
nq_status block_forward_in_place(const ModelConfig *c, const BlockWeights *w, float *x, int n,
                                 int T, int chunk);

#endif
