/* Placeholder until the checkpoint backend lands: refuses cleanly. */
#include "model_internal.h"

nq_status checkpoint_model_open(const char *path, Model *m) {
    (void)m;
    return nq_fail(NQ_ERR_INPUT, "%s: checkpoint models are not supported yet", path);
}
