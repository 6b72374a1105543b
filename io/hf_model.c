/* Placeholder until the hf backend lands: refuses cleanly. */
#include "model_internal.h"

nq_status hf_model_open(const char *path, Model *m) {
    (void)m;
    return nq_fail(NQ_ERR_INPUT, "%s: hf models are not supported yet", path);
}
