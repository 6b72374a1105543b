#!/usr/bin/env bash
# Activation capture under MPI (docs/design.md 4): each rank runs its shard of the calibration
# sequences through the fp32 model and writes every block's input into activations.h5 with
# collective parallel-HDF5 writes. The file must hold exactly, bit for bit, what a single
# process computes: tests/tools/check_activations tokenizes the text the same way
# (text_windows_load, same T and sequence count), runs embedding_forward and block_forward
# one sequence at a time (so the reference depends on no batching or sharding), reads
# /inputs with plain serial HDF5 and compares level 0..L. (Same BLAS thread count:
# OPENBLAS_NUM_THREADS=1 comes from ctest.)
#   - stories260K on 2 ranks, 16 sequences of 64 tokens (shards of 8 and 8);
#   - a synthetic 3-block model (d 48, 6 heads, 3 kv heads) on 3 ranks, 13 sequences of 48
#     tokens (shards 4, 4, 5). One such sequence is a "tiny" product for OpenBLAS, whose
#     small-matrix kernels round differently from a batch of several sequences: the
#     capture must therefore run one sequence per block_forward call (as the reference
#     does), else the activations depend on how the sequences were sharded.
set -euo pipefail
: "${NUPES_BIN:?}" "${NUPES_SOURCE_DIR:?}" "${NUPES_DATA:?}" "${NUPES_TOOLS_DIR:?}" "${MPIEXEC:?}"
work=$(mktemp -d "${TMPDIR:-/tmp}/nupes-mpi-act.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# Under AddressSanitizer, leaks of Open MPI's dlopen'ed components are not this test's
# subject (as in the other MPI tests); the tools keep leak detection.
job_asan=detect_leaks=0

config=$NUPES_SOURCE_DIR/configs/stories260K.toml
text=$NUPES_DATA/calib-generated.txt
tok=$NUPES_DATA/tok512.bin

# capture_and_check NAME NP MODEL T SEQUENCES
capture_and_check() {
  local name=$1 np=$2 model=$3 T=$4 N=$5
  if ! ASAN_OPTIONS=$job_asan "$MPIEXEC" -np "$np" "$NUPES_BIN" --config "$config" --set model.path="$model" \
       --set run.dir="$work/$name" --set calibration.seq_len="$T" --set calibration.sequences="$N" \
       --set reconstruction.iterations=20 > "$work/$name.log" 2>&1; then
    cat "$work/$name.log" >&2
    fail "$name: the job failed"
  fi
  grep -q "calibration: $N sequences of $T tokens" "$work/$name.log" ||
    fail "$name: the job did not use $N sequences of $T tokens"
  "$NUPES_TOOLS_DIR/check_activations" "$work/$name/activations.h5" "$model" "$tok" "$text" "$T" "$N" 1 ||
    fail "$name: the activations file differs from the single-process forward pass"
}

capture_and_check stories_np2 2 "$NUPES_DATA/stories260K.bin" 64 16
"$NUPES_TOOLS_DIR/make_synthetic_model" "$work/synth3.bin" 48 128 3 6 3 512 64 21 > /dev/null ||
  fail "cannot make the synthetic model"
capture_and_check synth_np3 3 "$work/synth3.bin" 48 13
echo "PASS: captured activations equal the single-process forward pass bit for bit"
