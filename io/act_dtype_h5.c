#include "act_dtype_h5.h"

#include <stdlib.h>
#include <string.h>

#include "h5util.h"

hid_t act_h5_type(ActDtype t) {
    hid_t const type = H5Tcopy(H5T_IEEE_F32LE);
    if (type < 0 || t == ACT_FP32) return type;
    /* fields: sign bit 15; exponent at bit 10 (fp16, 5 bits) or 7 (bf16, 8 bits); the
     * mantissa below it; precision and size 16 bits; bias 15 or 127 */
    int const fp16 = t == ACT_FP16;
    size_t const epos = fp16 ? 10 : 7, esize = fp16 ? 5 : 8;
    if (H5Tset_fields(type, 15, epos, esize, 0, epos) < 0 || H5Tset_precision(type, 16) < 0 ||
        H5Tset_offset(type, 0) < 0 || H5Tset_size(type, 2) < 0 || H5Tset_ebias(type, fp16 ? 15 : 127) < 0) {
        H5Tclose(type);
        return -1;
    }
    return type;
}

nq_status act_h5_write_dtype(hid_t obj, const char *path, ActDtype t) {
    return h5u_attr_write_string(obj, path, "dtype", act_dtype_name(t));
}

nq_status act_h5_check_dtype(hid_t obj, const char *path, ActDtype want) {
    char *have = NULL;
    if (H5Aexists(obj, "dtype") <= 0) {
        if (want == ACT_FP32) return NQ_OK;
        return nq_fail(NQ_ERR_INPUT,
                       "%s: no attribute dtype (fp32 activations), expected \"%s\" (calibration.activation_dtype)",
                       path, act_dtype_name(want));
    }
    nq_status st = h5u_attr_read_string(obj, path, "/", "dtype", &have);
    if (st == NQ_OK && strcmp(have, act_dtype_name(want)) != 0)
        st = nq_fail(NQ_ERR_INPUT, "%s: attribute dtype = \"%s\", expected \"%s\" (calibration.activation_dtype)",
                     path, have, act_dtype_name(want));
    free(have);
    return st;
}
