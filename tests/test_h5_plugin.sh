#!/bin/bash
# Other tools read our checkpoints through the zstd plugin (docs/design.md 5, 5.3):
#  1. h5dump without the plugin prints no values (empty DATA {}, exit 0): the check
#     below is on values, and this proves the plugin is what makes them appear;
#  2. h5dump with HDF5_PLUGIN_PATH prints the actual code values;
#  3. h5py (Debian's, /usr/bin/python3) reads every dataset and, with numpy and the
#     formula in the `dequant` attribute, gets exactly the weights the C reader gives.
# The checkpoint and the C reader's weights come from test_checkpoint (fixture mode).
set -euo pipefail

: "${NUPES_BUILD_DIR:?set by ctest}"
plugins="$NUPES_BUILD_DIR/plugins"
work=$(mktemp -d "$NUPES_BUILD_DIR/test_h5_plugin.XXXXXX")
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

test -f "$plugins/libH5Zzstd.so" || { echo "FAIL: $plugins/libH5Zzstd.so not built"; exit 1; }
NUPES_WRITE_FIXTURE="$work" "$NUPES_BUILD_DIR/test_checkpoint"
ckpt="$work/plugin.h5"
test -s "$ckpt" && test -s "$work/plugin-expected.f32" && test -s "$work/plugin-codes.i8" || { echo "FAIL: fixture not written"; exit 1; }

# The plugin module needs no libhdf5 symbol (h5py loads libhdf5 with RTLD_LOCAL).
if nm -D --undefined-only "$plugins/libH5Zzstd.so" | grep -q ' H5'; then
    fail "plugin needs libhdf5 symbols: $(nm -D --undefined-only "$plugins/libH5Zzstd.so" | grep ' H5' | tr '\n' ' ')"
else
    pass "plugin needs no libhdf5 symbol"
fi

# In the sanitizer build the plugin links the ASan/UBSan runtimes, which must come first
# in the (uninstrumented) h5dump and python processes that load it.
preload=$(ldd "$plugins/libH5Zzstd.so" | awk '/lib(asan|ubsan)\.so/ {print $3}' | paste -sd: -)
# tool [VAR=value]... command: runs command without the inherited HDF5_PLUGIN_PATH.
tool() { env -u HDF5_PLUGIN_PATH ${preload:+LD_PRELOAD=$preload ASAN_OPTIONS=detect_leaks=0} "$@"; }

# Values of /blocks/0000/wq/codes, as h5dump prints them ("(0,0): 1, -2, ...").
dataset=/blocks/0000/wq/codes
dump_values() { # $1: plugin path ("" = none) -> the numbers of DATA, one per line
    tool ${1:+HDF5_PLUGIN_PATH=$1} h5dump -A 0 -d "$dataset" "$ckpt" 2>/dev/null |
        sed -n '/DATA {/,/}/p' | grep -o '([0-9,]*): .*' | sed 's/^([0-9,]*): //' |
        tr ',' '\n' | tr -d ' ' | grep -v '^$' || true
}

# 1. without the plugin: exit 0 but no values
set +e
tool h5dump -d "$dataset" "$ckpt" >"$work/noplugin.txt" 2>&1
rc=$?
set -e
n_without=$(dump_values "" | wc -l)
if [ "$n_without" -eq 0 ]; then
    pass "h5dump without the plugin prints no values (exit $rc)"
else
    fail "h5dump without the plugin printed $n_without values: the test cannot tell the plugin works"
fi

# 2. with the plugin: the values are the codes C wrote (plugin-codes.i8)
dump_values "$plugins" >"$work/h5dump-codes.txt"
n_with=$(wc -l <"$work/h5dump-codes.txt")
/usr/bin/python3 - "$work/plugin-codes.i8" "$work/h5dump-codes.txt" <<'EOF' && pass "h5dump with the plugin prints the $n_with code values C wrote" || fail "h5dump values"
import sys, numpy as np
codes_path, dumped = sys.argv[1:3]
codes = np.fromfile(codes_path, dtype=np.int8).astype(np.int64)
got = np.loadtxt(dumped, dtype=np.int64).ravel()
assert got.size == codes.size == 16 * 16, (got.size, codes.size)
assert (got == codes).all(), "h5dump values differ from the codes C wrote"
assert np.count_nonzero(got) > 0
EOF

# 3. h5py + numpy: every dataset readable, dequantization by the stored formula = C's
tool HDF5_PLUGIN_PATH="$plugins" /usr/bin/python3 - "$ckpt" "$work/plugin-expected.f32" <<'EOF' && pass "h5py reads every dataset; numpy dequantization matches C" || fail "h5py / numpy dequantization"
import sys, h5py, numpy as np
path, expected_path = sys.argv[1:3]
f = h5py.File(path, "r")
assert f.attrs["format"] == "nupes-mpi" and int(f.attrs["format_version"]) == 3
assert f.attrs["quantizer"] == "power"
assert f.attrs["status"] == "complete"
print("   dequant:", f.attrs["dequant"][:80], "...")
n = 0
def touch(name, obj):
    global n
    if isinstance(obj, h5py.Dataset):
        dcpl = obj.id.get_create_plist()
        assert dcpl.get_nfilters() == 1 and dcpl.get_filter(0)[0] == 32015, name
        data = obj[()]
        assert data.size == np.prod(obj.shape) and np.all(np.isfinite(data)), name
        n += 1
f.visititems(touch)
bits, group_size = int(f.attrs["bits"]), int(f.attrs["group_size"])
m = 2 ** (bits - 1) - 1
mats = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"]
parts = []
for l in range(int(f["model"].attrs["n_layers"])):
    for w in mats:
        g = f["blocks/%04d/%s" % (l, w)]
        if "weight" in g:
            parts.append(g["weight"][()].astype(np.float32).ravel())
            continue
        assert g["scale"].dtype == np.float16 and g["exponent"].dtype == np.float16, w  # IEEE half
        k = g["codes"][()].astype(np.float64)
        M = g["scale"][()].astype(np.float64)
        a = g["exponent"][()].astype(np.float64)
        G = group_size or k.shape[1]  # ragged: the last group of a row is shorter
        assert M.shape[1] == -(-k.shape[1] // G), (w, M.shape, k.shape)
        # the formula of the `dequant` attribute
        wq = np.repeat(M, G, axis=1)[:, :k.shape[1]] * np.sign(k) * (np.abs(k) / m) ** (1 / a.reshape(-1, 1))
        parts.append(wq.astype(np.float32).ravel())
ours = np.concatenate(parts)
theirs = np.fromfile(expected_path, dtype=np.float32)
assert ours.size == theirs.size, (ours.size, theirs.size)
err = np.max(np.abs(ours - theirs) / (1e-6 + np.abs(theirs)))
print("   %d datasets read; %d weights; max relative difference numpy vs C %.2e" % (n, ours.size, err))
assert err < 1e-5, err
assert np.count_nonzero(theirs) > ours.size // 4
EOF

if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all plugin checks passed"
