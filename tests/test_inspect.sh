#!/bin/bash
# nupes-mpi inspect on every kind of PATH: a run directory (built by test_run_dir
# --make-fixture with the real state, done-file and checkpoint writers), a checkpoint, a
# state file, a done file, an activations file, a model; and bad paths (exit 2, one line
# naming the path).
set -u
: "${NUPES_BIN:?}" "${NUPES_BUILD_DIR:?}" "${NUPES_DATA:?}"
work=$(mktemp -d "${TMPDIR:-/tmp}/test_inspect.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
failures=0 cases=0

# check NAME EXPECTED_RC PATTERN... -- ARGS: runs inspect ARGS, checks the exit code and
# that every PATTERN (grep -E) appears in stdout+stderr.
check() {
    local name=$1 want_rc=$2; shift 2
    local patterns=()
    while [ "$1" != "--" ]; do patterns+=("$1"); shift; done
    shift
    cases=$((cases + 1))
    local out rc
    out=$("$NUPES_BIN" inspect "$@" 2>&1); rc=$?
    local ok=1
    [ "$rc" -eq "$want_rc" ] || { echo "FAIL $name: exit $rc, expected $want_rc"; ok=0; }
    for p in "${patterns[@]}"; do
        grep -Eq -- "$p" <<<"$out" || { echo "FAIL $name: no line matching '$p'"; ok=0; }
    done
    if [ $ok = 0 ]; then
        failures=$((failures + 1)); echo "--- output of: $NUPES_BIN inspect $*"; echo "$out"
    else
        echo "ok   $name"
    fi
}

run="$work/run" ckpt="$work/ck.h5"
"$NUPES_BUILD_DIR/test_run_dir" --make-fixture "$run" "$NUPES_DATA/stories260K.bin" "$ckpt" \
    || { echo "FAIL: could not build the fixture"; exit 1; }

check help 0 '^usage: nupes-mpi inspect PATH' 'run directory' -- --help
check run-dir 0 "^run directory: $run" 'model: +.*stories260K.bin' 'nupes, 4 bits, group_size 0' \
    'mode: +parallel, 500 iterations' 'fingerprint: +[0-9a-f]{32}$' \
    'activations: +/inputs \[6\]\[3\]\[8\]\[64\].*complete$' \
    'blocks: +1 done, 0 running, 2 in progress, 2 pending \(of 5\)' \
    'block 0000 +done +loss 2.500e-03 -> 7.500e-04 in 4.2 s' \
    'block 0001 +in progress +step 40 / 500' \
    'block 0002 +pending +\(damaged file ignored' 'block 0003 +pending$' \
    'block 0004 +in progress +step 499 / 500.*damaged done file ignored' -- "$run"
check checkpoint 0 "^checkpoint: $ckpt" 'status: +partial' 'nupes, 4 bits, group_size 0, exponent per tensor' \
    'dim 64, hidden_dim 172, n_layers 5, n_heads 8, n_kv_heads 4, vocab_size 512' 'parameters: +260032' \
    'block 0000 +loss 2.500e-03 -> 7.500e-04, code entropy 0.000 bits' \
    'block 0001 +loss .*code entropy 1.000 bits' 'block 0004 +missing' -- "$ckpt"
check state-file 0 '^state file: ' 'block 1: step 40 / 500, loss 2.000e-03 -> 1.000e-03' -- "$run/state/block-0001.h5"
check done-file 0 '^done block file: ' 'block 0: 4 bits, group_size 0, exponent per tensor' -- "$run/done/block-0000.h5"
check activations 0 '^activations file: ' '/inputs \[6\]\[3\]\[8\]\[64\]' 'complete' -- "$run/activations.h5"
check model 0 '^model: ' 'dim 64, hidden_dim 172, n_layers 5' 'parameters: +260032 \(tied' -- "$NUPES_DATA/stories260K.bin"

# incomplete activations are reported as such
/usr/bin/python3 - "$run/activations.h5" <<'PY' || { echo "FAIL: h5py"; failures=$((failures + 1)); }
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs["complete"] = 0
PY
check activations-incomplete 0 'INCOMPLETE' -- "$run/activations.h5"

# bad paths: exit 2 and one message naming the path
check missing 2 "$work/nope: No such file or directory" -- "$work/nope"
check no-args 2 'expected one PATH' --
check two-args 2 'expected one PATH' -- a b
check not-a-model 2 "tok512.bin: not a run directory, checkpoint, state, activations or model file" -- "$NUPES_DATA/tok512.bin"
mkdir "$work/empty"
check plain-dir 2 "$work/empty: not a run directory" -- "$work/empty"
check damaged-state 2 "block-0002.h5: not a run directory" -- "$run/state/block-0002.h5"
head -c 3000 "$run/state/block-0001.h5" >"$work/cut.h5"
check truncated-state 2 "cut.h5: damaged HDF5 file" -- "$work/cut.h5"
/usr/bin/python3 -c "import h5py; h5py.File('$work/other.h5', 'w').attrs['format'] = 'x'"
check foreign-hdf5 2 'an HDF5 file but not one of ours \(format = "x"' -- "$work/other.h5"
echo '[model' >"$run/run.toml"
check damaged-run-toml 2 "run.toml" -- "$run"

echo "$((cases - failures)) of $cases cases passed"
[ "$failures" -eq 0 ]
