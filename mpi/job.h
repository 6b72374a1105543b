/* The quantize job (docs/design.md 1 and 4): load, tokenize, capture, reconstruct every block
 * on its group, gather on root, write the checkpoint. Collective over MPI_COMM_WORLD; a
 * single process is the same job with one rank. The stages share mpi/job_context.h. */
#ifndef NUPES_JOB_H
#define NUPES_JOB_H

#include "config.h"
#include "recon.h"
#include "status.h"

typedef struct {
    int restart; /* --restart: start over even if the run dir belongs to another config */
} JobOptions;

/* Returns the exit status every rank agrees on (NQ_OK, NQ_ERR_INPUT, NQ_ERR_RUNTIME,
 * NQ_STOPPED); the error message is recorded on the ranks that saw it. */
nq_status job_run(const NupesConfig *cfg, const JobOptions *opt);

/* The reconstruction settings of cfg, as the job passes them to every block (the plan's
 * iteration probe runs with the same). */
ReconParams job_recon_params(const NupesConfig *cfg);

#endif
