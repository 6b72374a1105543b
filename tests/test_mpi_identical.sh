#!/usr/bin/env bash
# MPI determinism (docs/design.md 4, 8): the same job in parallel mode with mpi.data_parallel = 1
# gives bit-identical codes, scales and exponents on 1 process without mpirun, and under
# mpirun with 1, 2 and 3 ranks (3 ranks: 3 groups over 5 blocks, uneven shares, and
# capture shards of 6/5/5 sequences). Datasets are compared, not file bytes.
set -euo pipefail
: "${NUPES_BIN:?}" "${NUPES_SOURCE_DIR:?}" "${NUPES_TOOLS_DIR:?}" "${MPIEXEC:?}" "${HDF5_PLUGIN_PATH:?}"
work=$(mktemp -d "${TMPDIR:-/tmp}/nupes-mpi-identical.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# Under AddressSanitizer, leaks of Open MPI's dlopen'ed components are not this test's
# subject (as in the other MPI tests); the tools keep leak detection.
job_asan=detect_leaks=0

# In the sanitizer build the plugin links the ASan/UBSan runtimes, which must come first in
# the (uninstrumented) h5dump that loads it.
preload=$(ldd "$HDF5_PLUGIN_PATH/libH5Zzstd.so" | awk '/lib(asan|ubsan)\.so/ { print $3 }' | paste -sd: -)
h5dump_p() { env ${preload:+LD_PRELOAD=$preload ASAN_OPTIONS=detect_leaks=0} h5dump "$@"; }

config=$NUPES_SOURCE_DIR/configs/stories260K.toml
fast=(--set reconstruction.iterations=30 --set calibration.sequences=16 --set calibration.seq_len=64
      --set mpi.data_parallel=1)

# run_job NAME NP: NP = 0 runs the binary without mpirun. Output goes to NAME.log.
run_job() {
  local name=$1 np=$2 dir=$work/$1
  local launch=()
  [ "$np" -gt 0 ] && launch=("$MPIEXEC" -np "$np")
  if ! ASAN_OPTIONS=$job_asan "${launch[@]}" "$NUPES_BIN" --config "$config" --set run.dir="$dir" "${fast[@]}" \
       > "$work/$name.log" 2>&1; then
    cat "$work/$name.log" >&2
    fail "$name: the job failed"
  fi
  [ -f "$dir/checkpoint.h5" ] || fail "$name: no checkpoint written"
  echo "$name: done ($( (grep -o ' done (' "$work/$name.log" || true) | wc -l) blocks reported)"
}

run_job plain 0
run_job np1 1
run_job np2 2
run_job np3 3
grep -q "3 ranks, 3 groups of 1" "$work/np3.log" || fail "np3: expected 3 groups of 1 rank"

"$NUPES_TOOLS_DIR/checkpoint_losses" "$work/plain/checkpoint.h5" || fail "plain: a block's loss did not drop"
for name in np1 np2 np3; do
  if ! "$NUPES_TOOLS_DIR/compare_checkpoints" "$work/plain/checkpoint.h5" "$work/$name/checkpoint.h5" \
       > "$work/compare-$name.txt"; then
    cat "$work/compare-$name.txt" >&2
    fail "$name differs from the single process"
  fi
  echo "$name vs plain: $(tail -1 "$work/compare-$name.txt")"
done
# The done files are what the checkpoint was assembled from; they must agree too (read with
# h5dump through the plugin: a nonempty list of codes, the same in both runs).
codes() { h5dump_p -d /wq/codes "$1" 2> /dev/null | sed -n 's/^ *([0-9,]*): //p'; }
for f in "$work"/plain/done/block-*.h5; do
  codes "$f" > "$work/a.txt"
  codes "$work/np3/done/$(basename "$f")" > "$work/b.txt"
  [ -s "$work/a.txt" ] || fail "h5dump printed no codes for done file $(basename "$f")"
  cmp -s "$work/a.txt" "$work/b.txt" || fail "done file $(basename "$f"): wq codes differ between plain and np3"
done
echo "PASS: 1 process and 1, 2, 3 ranks give bit-identical checkpoints"
