#!/usr/bin/env bash
# bench/scaling (docs/design.md 9): wall time of the same quantization job on 1 and 2 ranks,
# parallel mode, mpi.data_parallel = 1, OPENBLAS_NUM_THREADS=1, on a synthetic llama2.c
# model with 4 blocks sized so that one block takes several seconds (d 256, f 688, 8 heads
# with 4 kv heads, vocab 512 for the bundled tok512 tokenizer, seq_len 128), calibrated on
# data/calib-generated.txt. Prints a table: ranks, wall seconds, speedup over 1 rank,
# capture tokens/s, mean block seconds, where the wall time went (from progress.log, 1 s
# resolution: start to capture done, to the last block done, to the checkpoint written;
# "before" is what precedes the log's first line: MPI start, model and tokenizer loading),
# the CPU seconds (user + sys) and peak RSS of each rank (GNU time). On a loaded machine the
# wall-time speedup says little; "cpu speedup" = CPU seconds of the 1-rank run / the
# largest CPU seconds of one rank is what the split of work allows when every rank has a
# core of its own.
#
# Usage: bash bench/scaling.sh [build-dir]   (default: build-bench)
# Environment: RANKS="1 2" ITERATIONS=300 SEQUENCES=32 SEQ_LEN=128 to change the job.
# Ideal speedup on 2 ranks is 2 (4 blocks over 2 groups, capture split in half); the
# serial parts are model loading, tokenizing, and root assembling the checkpoint.
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$src/build-bench}"
ranks_list=${RANKS:-"1 2"}
iterations=${ITERATIONS:-300}
sequences=${SEQUENCES:-32}
seq_len=${SEQ_LEN:-128}

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" -j2 --target nupes-mpi make_synthetic_model H5Zzstd > /dev/null
export HDF5_PLUGIN_PATH="$build/plugins" OPENBLAS_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none

work=$(mktemp -d "${TMPDIR:-/tmp}/nupes-bench-scaling.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$build/tools/make_synthetic_model" "$work/model.bin" 256 688 4 8 4 512 "$seq_len" 1 > /dev/null

now() { date +%s.%N; }

# run_job RANKS: wall seconds on stdout; log in $work/np$RANKS.log, RSS in .rss.
run_job() {
  local np=$1 t0 t1
  t0=$(now)
  "$MPIEXEC_BIN" -np "$np" /usr/bin/time -f "rss_kb %M cpu_s %U %S" -a -o "$work/np$np.rss" \
    "$build/nupes-mpi" --config "$src/configs/stories260K.toml" --set model.path="$work/model.bin" \
    --set run.dir="$work/np$np" --set calibration.seq_len="$seq_len" \
    --set calibration.sequences="$sequences" --set reconstruction.iterations="$iterations" \
    --set mpi.data_parallel=1 > "$work/np$np.log" 2>&1 ||
    { cat "$work/np$np.log" >&2; echo "scaling: the job on $np ranks failed" >&2; exit 3; }
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}

# phases PROGRESS_LOG WALL: "before/capture/blocks/checkpoint" seconds from the log's stamps.
phases() {
  local t=() line
  while read -r line; do t+=("$(date -d "${line%% *}" +%s)"); done < <(
    grep -m1 ' start:' "$1"; grep -m1 ' capture done' "$1"; grep ' block [0-9]* done' "$1" | tail -1
    grep -m1 ' checkpoint .* written' "$1")
  [ "${#t[@]}" = 4 ] || { echo "-"; return; }
  local total=$(( t[3] - t[0] ))
  printf "%.0f/%d/%d/%d" "$(echo "$2 - $total" | bc -l)" $(( t[1] - t[0] )) $(( t[2] - t[1] )) $(( t[3] - t[2] ))
}

MPIEXEC_BIN=${MPIEXEC:-mpiexec}
command -v /usr/bin/time > /dev/null || { echo "scaling: /usr/bin/time missing (apt-get install time)" >&2; exit 2; }
echo "model: d 256, f 688, 4 blocks, 8 heads (4 kv), vocab 512; calibration $sequences x $seq_len tokens;" \
     "$iterations iterations per block, batch 4; OPENBLAS_NUM_THREADS=1; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-6s %8s %8s %8s %14s %13s %-27s %-18s %s\n" ranks "wall s" speedup "cpu spd" "capture tok/s" \
       "block s mean" "before/capture/blocks/ckpt" "CPU s per rank" "peak RSS per rank (MB)"
base=""
cpu_base=""
for np in $ranks_list; do
  wall=$(run_job "$np")
  [ -n "$base" ] || base=$wall
  capture=$( (grep -o 'written, [0-9]* tokens/s' "$work/np$np.log" || true) | tail -1 | tr -cd '0-9')
  blocks=$( (grep -o 'done ([^)]*): loss [^ ]* -> [^ ]* (x[0-9.]*) in [0-9.]* s' "$work/np$np.log" || true) |
           awk '{ s += $(NF - 1); n++ } END { if (n) printf "%.2f", s / n; else print "-" }')
  split=$(phases "$work/np$np/progress.log" "$wall")
  rss=$(awk '/rss_kb/ { printf "%s%.0f", sep, $2 / 1024; sep = " " }' "$work/np$np.rss")
  cpu=$(awk '/rss_kb/ { printf "%s%.1f", sep, $4 + $5; sep = " " }' "$work/np$np.rss")
  cpu_max=$(awk '/rss_kb/ { c = $4 + $5; if (c > m) m = c } END { print m }' "$work/np$np.rss")
  [ -n "$cpu_base" ] || cpu_base=$cpu_max
  printf "%-6s %8.2f %8.2f %8.2f %14s %13s %-27s %-18s %s\n" "$np" "$wall" "$(echo "$base / $wall" | bc -l)" \
         "$(echo "$cpu_base / $cpu_max" | bc -l)" "${capture:--}" "$blocks" "$split" "$cpu" "$rss"
done
