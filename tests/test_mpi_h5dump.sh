#!/usr/bin/env bash
# The checkpoint gathered on root from a 2-rank job is readable by h5dump (the serial HDF5
# tool) through the project's zstd plugin (HDF5_PLUGIN_PATH, filter 32015): the values
# h5dump prints for /blocks/0000/wq/codes, /blocks/0003/w2/scale and
# /blocks/0001/wk/exponent equal, element for element, what the project's reader returns
# (tests/tools/dump_tensor); done files -> checkpoint -> llama2c export agree (format 3,
# fp16 scales and exponents). Without the plugin, h5dump prints no values for the same
# dataset (so the plugin is what decodes them). Codes are integers in [-7, 7] (4 bits).
set -euo pipefail
: "${NUPES_BIN:?}" "${NUPES_SOURCE_DIR:?}" "${NUPES_TOOLS_DIR:?}" "${MPIEXEC:?}" "${HDF5_PLUGIN_PATH:?}"
work=$(mktemp -d "${TMPDIR:-/tmp}/nupes-mpi-h5dump.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# Under AddressSanitizer, leaks of Open MPI's dlopen'ed components are not this test's
# subject (as in the other MPI tests); the tools keep leak detection.
job_asan=detect_leaks=0
command -v h5dump > /dev/null || fail "h5dump not found (apt-get install hdf5-tools)"
# In the sanitizer build the plugin links the ASan/UBSan runtimes, which must come first in
# the (uninstrumented) h5dump that loads it.
preload=$(ldd "$HDF5_PLUGIN_PATH/libH5Zzstd.so" | awk '/lib(asan|ubsan)\.so/ { print $3 }' | paste -sd: -)
h5dump_p() { env ${preload:+LD_PRELOAD=$preload ASAN_OPTIONS=detect_leaks=0} h5dump "$@"; }

config=$NUPES_SOURCE_DIR/configs/stories260K.toml
ASAN_OPTIONS=$job_asan "$MPIEXEC" -np 2 "$NUPES_BIN" --config "$config" --set run.dir="$work/run" \
  --set reconstruction.iterations=20 --set calibration.sequences=16 --set calibration.seq_len=64 \
  > "$work/job.log" 2>&1 || { cat "$work/job.log" >&2; fail "the 2-rank job failed"; }
ckpt=$work/run/checkpoint.h5
[ -f "$ckpt" ] || fail "no checkpoint"

# h5dump_values DATASET: the numbers h5dump prints for a dataset, one per line.
h5dump_values() {
  h5dump_p -A 0 -d "$1" "$ckpt" 2> /dev/null | sed -n '/DATA {/,/^ *}/p' | sed -n 's/^ *([0-9,]*): //p' |
    tr ',' ' ' | tr -s ' ' '\n' | grep -v '^$' || true
}

# check DATASET_PATH BLOCK MATRIX FIELD EXPECTED_COUNT
check() {
  local path=$1 block=$2 mat=$3 field=$4 count=$5
  h5dump_values "$path" > "$work/h5dump.txt"
  "$NUPES_TOOLS_DIR/dump_tensor" "$ckpt" "$block" "$mat" "$field" > "$work/reader.txt" ||
    fail "dump_tensor $block $mat $field failed"
  local n
  n=$(wc -l < "$work/h5dump.txt")
  [ "$n" = "$count" ] || fail "$path: h5dump printed $n values, expected $count"
  if [ "$field" = codes ]; then
    cmp -s "$work/h5dump.txt" "$work/reader.txt" || fail "$path: h5dump's codes differ from the reader's"
    awk '$1 !~ /^-?[0-9]+$/ || $1 < -7 || $1 > 7 { bad = 1 } $1 != 0 { nz++ }
         END { exit bad || nz < NR / 4 }' "$work/h5dump.txt" ||
      fail "$path: codes are not integers in [-7, 7], or mostly zero"
  else # h5dump prints floats with fewer digits: compare to 1e-5 relative
    paste "$work/h5dump.txt" "$work/reader.txt" |
      awk '{ d = $1 - $2; if (d < 0) d = -d; m = $2 < 0 ? -$2 : $2; if (d > 1e-5 * m || $2 <= 0) bad = 1 }
           END { exit bad }' || fail "$path: h5dump's values differ from the reader's"
  fi
  echo "$path: $n values, equal to the reader's (first: $(head -3 "$work/h5dump.txt" | tr '\n' ' '))"
}

check /blocks/0000/wq/codes 0 wq codes $((64 * 64))
check /blocks/0003/w2/scale 3 w2 scale 64
check /blocks/0001/wk/exponent 1 wk exponent 1

# Format version 3 through the whole path: the done files root wrote from what rank 1 sent
# (gather), the checkpoint built from them, and a llama2c export of it. Every stored array
# of the done files is in the checkpoint bit for bit; scales and exponents are fp16; the
# export's wq and wk are the numpy dequantization of those fp16 values (float64, the
# `dequant` attribute's formula; measured max relative difference ~1e-7, bound 1e-6).
"$NUPES_BIN" export --checkpoint "$ckpt" --format llama2c --out "$work/q.bin" > "$work/export.log" 2>&1 ||
  { cat "$work/export.log" >&2; fail "export of the gathered checkpoint failed"; }
env ${preload:+LD_PRELOAD=$preload ASAN_OPTIONS=detect_leaks=0} /usr/bin/python3 - "$ckpt" "$work/run/done" "$work/q.bin" <<'EOF_PY' || fail "format version 3 round trip (done files -> checkpoint -> export)"
import glob, struct, sys
import h5py, numpy as np
ckpt, done_dir, exported = sys.argv[1:4]
f = h5py.File(ckpt, "r")
assert int(f.attrs["format_version"]) == 3 and f.attrs["quantizer"] == "power"
bits, G = int(f.attrs["bits"]), int(f.attrs["group_size"])
m = 2 ** (bits - 1) - 1
done = sorted(glob.glob(done_dir + "/block-*.h5"))
assert len(done) == int(f["model"].attrs["n_layers"]), done
for path in done:
    d = h5py.File(path, "r")
    assert int(d.attrs["format_version"]) == 3 and d.attrs["quantizer"] == "power", path
    b = "blocks/%04d" % int(d.attrs["block"])
    for w in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
        for name in ("codes", "scale", "exponent"):
            x, y = d[w][name], f[b][w][name]
            assert x.dtype == y.dtype == (np.int8 if name == "codes" else np.float16), (path, w, name, x.dtype)
            assert x[()].tobytes() == y[()].tobytes(), (path, w, name)
raw = open(exported, "rb").read()
dim, hidden, L, H, KV, V, S = struct.unpack("<7i", raw[:28])
kv = dim * KV // H
at = 28 + (V * dim + L * dim) * 4
worst = 0.0
for w, rows in (("wq", dim), ("wk", kv)):
    for l in range(L):
        g = f["blocks/%04d/%s" % (l, w)]
        k = g["codes"][()].astype(np.float64)
        M = g["scale"][()].astype(np.float64)
        a = g["exponent"][()].astype(np.float64)
        want = np.repeat(M, G or dim, axis=1)[:, :dim] * np.sign(k) * (np.abs(k) / m) ** (1 / a.reshape(-1, 1))
        got = np.frombuffer(raw, dtype="<f4", count=rows * dim, offset=at + l * rows * dim * 4).reshape(rows, dim)
        worst = max(worst, float(np.max(np.abs(got - want) / (1e-30 + np.abs(want)))))
    at += L * rows * dim * 4
print("format 3: %d done files = checkpoint arrays (fp16 scales, exponents); export vs numpy max rel diff %.2e" % (len(done), worst))
assert worst < 1e-6, worst
EOF_PY

# Without the plugin the same dataset gives no values (h5dump may still exit 0).
n=$(HDF5_PLUGIN_PATH=/nonexistent h5dump_values /blocks/0000/wq/codes 2> /dev/null | wc -l)
[ "$n" = 0 ] || fail "h5dump without the plugin printed $n values: is the dataset really compressed?"
echo "PASS: h5dump reads the gathered checkpoint's values through the plugin"
