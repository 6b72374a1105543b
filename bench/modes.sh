#!/usr/bin/env bash
# bench/modes (issue "Pipelined mode"): wall time of the parallel, pipelined and sequential
# reconstruction modes on 1 and 2 ranks, for a synthetic llama2.c model of 4 blocks (d 256,
# f 688, 8 heads with 4 kv heads, vocab 512 for the bundled tok512 tokenizer, seq_len 128;
# calibrated on data/calib-generated.txt) sized so that one block takes a few seconds;
# mpi.data_parallel = 1 (sequential mode always forms one group of every rank),
# OPENBLAS_NUM_THREADS=1. Then the projection for 32 blocks on 32 rank groups:
#   from the measured block time T_b (mean "block N done ... in X s" of the parallel run on
#   1 rank) and the data-parallel speedup S_D of sequential mode: its measured 2-rank
#   block time against T_b gives S_2 and the efficiency e = S_2 / 2; a step splits only
#   the batch's sequences between the ranks (each does ceil(batch / D)), so on 32 ranks
#   S_32 = e * min(32, batch) (= 4 e at batch 4: sequential cannot use 32 ranks):
#   parallel 1 T_b,  pipelined (1 + (L - 1)(1 - f)) T_b,  sequential L T_b / S_32;  and the plan's own estimate (nupes-mpi --dry-run with
#   --nodes 32 --ranks-per-node 1 on a 32-block model of the same shapes, mpi/plan.c), which uses
#   this machine's sgemm and memory speed probes instead of a measured block.
# The synthetic model has random weights: the loss column (sum over blocks of the final
# reconstruction loss, each on the mode's own inputs, so not comparable between modes) only
# shows that 1 and 2 ranks compute the same thing; KL divergence
# per mode is measured on the bundled model (scripts/quality_table.sh).
# On a shared machine wall times are noisy; CPU seconds per rank are shown as well.
#
# Usage: bash bench/modes.sh [build-dir]   (default: build-bench)
# Environment: RANKS="1 2" ITERATIONS=100 SEQUENCES=32 SEQ_LEN=128 SWITCH=0.8 DIM=256 HIDDEN=688
#              BATCH=4
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$src/build-bench}"
ranks_list=${RANKS:-"1 2"}
iterations=${ITERATIONS:-100}
sequences=${SEQUENCES:-32}
seq_len=${SEQ_LEN:-128}
switch=${SWITCH:-0.8}
dim=${DIM:-256}
hidden=${HIDDEN:-688}
batch=${BATCH:-4}
modes="parallel pipelined sequential"

cmake -S "$src" -B "$build" > /dev/null
cmake --build "$build" -j2 --target nupes-mpi make_synthetic_model H5Zzstd > /dev/null
export HDF5_PLUGIN_PATH="$build/plugins" OPENBLAS_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIEXEC_BIN=${MPIEXEC:-mpiexec}
command -v /usr/bin/time > /dev/null || { echo "modes: /usr/bin/time missing (apt-get install time)" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/nupes-bench-modes.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$build/tools/make_synthetic_model" "$work/model.bin" "$dim" "$hidden" 4 8 4 512 "$seq_len" 1 > /dev/null
job=(--config "$src/configs/stories260K.toml" --set model.path="$work/model.bin"
     --set calibration.seq_len="$seq_len" --set calibration.sequences="$sequences"
     --set reconstruction.iterations="$iterations" --set reconstruction.switch="$switch"
     --set reconstruction.batch="$batch")

# run_job MODE RANKS: wall seconds on stdout; log in $work/MODE-npRANKS.log, CPU in .rss.
run_job() {
  local mode=$1 np=$2 name="$1-np$2" t0 t1
  t0=$(date +%s.%N)
  "$MPIEXEC_BIN" -np "$np" /usr/bin/time -f "rss_kb %M cpu_s %U %S" -a -o "$work/$name.rss" \
    "$build/nupes-mpi" "${job[@]}" --set run.dir="$work/$name" --set reconstruction.mode="$mode" \
    --set mpi.data_parallel=1 > "$work/$name.log" 2>&1 ||
    { cat "$work/$name.log" >&2; echo "modes: $mode on $np ranks failed" >&2; exit 3; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

# block_seconds LOG: mean of the "block N done (...) ... in X s" times.
block_seconds() {
  (grep -o 'done ([^)]*): loss [^ ]* -> [^ ]* (x[0-9.]*) in [0-9.]* s' "$1" || true) |
    awk '{ s += $(NF - 1); n++ } END { if (n) printf "%.2f", s / n; else print "-" }'
}
final_loss() {
  (grep -o 'done ([^)]*): loss [^ ]* -> [^ ]*' "$1" || true) | awk '{ s += $NF } END { printf "%.4e", s }'
}

echo "model: d $dim, f $hidden, 4 blocks, 8 heads (4 kv), vocab 512; calibration $sequences x $seq_len tokens;" \
     "$iterations iterations per block, batch $batch, switch $switch; OPENBLAS_NUM_THREADS=1;" \
     "load average $(cut -d' ' -f1-3 /proc/loadavg) (shared machine: wall times are noisy)"
echo
echo "| mode | ranks | wall s | block s (mean) | CPU s per rank | sum of final block losses |"
echo "|---|---|---|---|---|---|"
declare -A block=()
for np in $ranks_list; do
  for mode in $modes; do
    wall=$(run_job "$mode" "$np")
    block[$mode-$np]=$(block_seconds "$work/$mode-np$np.log")
    cpu=$(awk '/rss_kb/ { printf "%s%.1f", sep, $4 + $5; sep = " " }' "$work/$mode-np$np.rss")
    printf "| %s | %s | %.1f | %s | %s | %s |\n" "$mode" "$np" "$wall" "${block[$mode-$np]}" "$cpu" \
           "$(final_loss "$work/$mode-np$np.log")"
  done
done

# Projection for L = 32 blocks on 32 rank groups.
L=32
tb=${block[parallel-1]:-}
ts=${block[sequential-2]:-}
echo
if [ -n "$tb" ] && [ "$tb" != - ] && [ -n "$ts" ] && [ "$ts" != - ]; then
  awk -v tb="$tb" -v ts="$ts" -v L="$L" -v f="$switch" -v batch="$batch" 'BEGIN {
    s2 = tb / ts; e = s2 / 2; s32 = e * (batch < 32 ? batch : 32)
    printf "projection, %d blocks on 32 rank groups, from T_b = %.2f s (parallel, 1 rank) and the\n", L, tb
    printf "sequential 2-rank data-parallel speedup S_2 = %.2f (efficiency %.2f; S_32 = %.2f x min(32, batch %d) = %.2f):\n\n", s2, e, e, batch, s32
    printf "| mode | formula | projected wall s |\n|---|---|---|\n"
    printf "| parallel | 1 T_b | %.1f |\n", tb
    printf "| pipelined | (1 + (L-1)(1-f)) T_b = %.2f T_b | %.1f |\n", 1 + (L - 1) * (1 - f), (1 + (L - 1) * (1 - f)) * tb
    printf "| sequential | L T_b / S_32 | %.1f |\n", L * tb / s32 }'
fi
"$build/tools/make_synthetic_model" "$work/model32.bin" "$dim" "$hidden" "$L" 8 4 512 "$seq_len" 1 > /dev/null
echo
echo "plan (nupes-mpi --dry-run --nodes 32 --ranks-per-node 1, $L blocks of the same shapes):"
"$build/nupes-mpi" "${job[@]}" --set model.path="$work/model32.bin" \
  --set run.dir="$work/dry" --dry-run --nodes 32 --ranks-per-node 1 | grep -E '^  (parallel|sequential|pipelined) '
