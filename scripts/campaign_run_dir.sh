#!/usr/bin/env bash
# Run-directory campaign (issue 14): random kills and concurrent jobs on the bundled model,
# each ending in a clean re-run whose codes are compared with an uninterrupted run.
#
#   bash scripts/campaign_run_dir.sh [KILL_TRIALS [TWO_JOB_TRIALS [SEED]]]   (40 10 1)
#
# Kill trial: mode (parallel / sequential / pipelined) x ranks (2 / 3) x signal (SIGKILL /
# SIGTERM) x target (one random rank, every rank, mpirun) x a random moment in the run
# (0 to the reference's wall time). Then the same command again until it exits 0 (a job
# stopped by SIGTERM exits 75 and resumes). Two-job trial: a second identical job started
# a random moment after the first, on the same run directory; both waited for, then one
# clean re-run. Each trial is
#   identical  the final checkpoint has the reference's codes, scales and exponents,
#   refused    (two-job trials) identical, and one job was refused with exit 2 naming the
#              holder,
#   wrong      anything else (different codes, a re-run that does not exit 0, a second
#              job that neither was refused nor ran after the first had ended).
# Not in CI (minutes). Needs the release build in ./build (bash scripts/build.sh).
#
# Measured 2026-12-02 (seed 14, 2 cores shared with other jobs, load ~7; 25 min): 50 trials,
# 40 identical, 10 refused, 0 wrong. Kill trials: 19 SIGKILL, 21 SIGTERM; 11 parallel,
# 13 sequential, 16 pipelined; 18 on one rank, 10 on every rank, 12 on mpirun; 4 of the 40
# landed after the job had finished. Two-job trials: the second job was refused (exit 2,
# holder named) in all 10, the first always exited 0 with the reference's codes.
set -u
KILLS=${1:-40}
TWOS=${2:-10}
SEED=${3:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${NUPES_BIN:-$ROOT/build/nupes-mpi}
COMPARE=${NUPES_TOOLS_DIR:-$ROOT/build/tools}/compare_checkpoints
DATA=$ROOT/data
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OPENBLAS_NUM_THREADS=1
export HDF5_PLUGIN_PATH=${HDF5_PLUGIN_PATH:-$ROOT/build/plugins}
MPIEXEC=${MPIEXEC:-mpirun}
WORK=$(mktemp -d /tmp/nupes-campaign.XXXXXX)
RANDOM=$SEED
modes=(parallel sequential pipelined)
identical=0 refused=0 wrong=0
declare -A REF_SECONDS

args() { # args DIR MODE
  printf '%s\n' --config "$ROOT/configs/stories260K.toml" --set "model.path=$DATA/stories260K.bin" \
    --set "tokenizer.path=$DATA/tok512.bin" --set "calibration.text=$DATA/calib-generated.txt" \
    --set calibration.sequences=32 --set calibration.seq_len=64 --set reconstruction.iterations=100 \
    --set run.checkpoint_interval=0.05 --set "reconstruction.mode=$2" --set "run.dir=$1"
}
now() { date +%s.%N; }
rand_float() { awk -v r="$RANDOM" -v max="$1" 'BEGIN { printf "%.2f", r / 32767 * max }'; }

# Re-runs until exit 0 (at most 4 times); 0 when the codes then match the reference.
finish_and_compare() { # DIR MODE NP LOG
  local dir=$1 mode=$2 np=$3 log=$4 i rc=1
  mapfile -t A < <(args "$dir" "$mode")
  for i in 1 2 3 4; do
    "$MPIEXEC" -np "$np" "$BIN" "${A[@]}" >>"$log" 2>&1
    rc=$?
    [ "$rc" = 0 ] && break
  done
  [ "$rc" = 0 ] || { echo "re-run exit $rc" >>"$log"; return 1; }
  "$COMPARE" "$WORK/ref-$mode-$np/checkpoint.h5" "$dir/checkpoint.h5" >>"$log" 2>&1
}

echo "campaign: $KILLS kill trials, $TWOS two-job trials, seed $SEED, work $WORK"
for mode in "${modes[@]}"; do
  for np in 2 3; do
    mapfile -t A < <(args "$WORK/ref-$mode-$np" "$mode")
    t0=$(now)
    "$MPIEXEC" -np "$np" "$BIN" "${A[@]}" >"$WORK/ref-$mode-$np.log" 2>&1 || { echo "reference $mode $np failed"; exit 1; }
    REF_SECONDS[$mode-$np]=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
    echo "  reference $mode on $np ranks: ${REF_SECONDS[$mode-$np]} s"
  done
done

for ((t = 1; t <= KILLS; t++)); do
  mode=${modes[RANDOM % 3]}
  np=$((2 + RANDOM % 2))
  sig=$([ $((RANDOM % 2)) = 0 ] && echo KILL || echo TERM)
  target=$((RANDOM % 4)) # 0, 1: one rank; 2: every rank; 3: mpirun
  delay=$(rand_float "${REF_SECONDS[$mode-$np]}")
  dir=$WORK/kill-$t log=$WORK/kill-$t.log
  mapfile -t A < <(args "$dir" "$mode")
  "$MPIEXEC" -np "$np" "$BIN" "${A[@]}" >"$log" 2>&1 &
  pid=$!
  sleep "$delay"
  ranks=($(pgrep -P "$pid"))
  case $target in
    0 | 1) victims=("${ranks[RANDOM % (${#ranks[@]} > 0 ? ${#ranks[@]} : 1)]:-}"); what="rank" ;;
    2) victims=("${ranks[@]}"); what="all ranks" ;;
    3) victims=("$pid"); what="mpirun" ;;
  esac
  [ -n "${victims[*]}" ] && kill "-$sig" "${victims[@]}" 2>/dev/null
  wait "$pid"
  first=$?
  if finish_and_compare "$dir" "$mode" "$np" "$log"; then
    result=identical
    identical=$((identical + 1))
  else
    result=WRONG
    wrong=$((wrong + 1))
  fi
  printf '  kill %2d: %-10s np %d SIG%s to %-9s at %5.2f s: first exit %3d -> %s\n' "$t" "$mode" "$np" "$sig" \
    "$what" "$delay" "$first" "$result"
  [ "$result" = identical ] && rm -rf "$dir"
done

for ((t = 1; t <= TWOS; t++)); do
  mode=${modes[RANDOM % 3]}
  np=$((2 + RANDOM % 2))
  delay=$(rand_float "${REF_SECONDS[$mode-$np]}")
  dir=$WORK/two-$t
  mapfile -t A < <(args "$dir" "$mode")
  "$MPIEXEC" -np "$np" "$BIN" "${A[@]}" >"$WORK/two-$t-a.log" 2>&1 &
  pa=$!
  sleep "$delay"
  a_alive=$(kill -0 "$pa" 2>/dev/null && echo 1 || echo 0)
  "$MPIEXEC" -np "$np" "$BIN" "${A[@]}" >"$WORK/two-$t-b.log" 2>&1
  rb=$?
  wait "$pa"
  ra=$?
  was_refused=0
  grep -q "in use by another job" "$WORK/two-$t-a.log" "$WORK/two-$t-b.log" && was_refused=1
  ok=1
  # The only acceptable outcomes: one refused (exit 2, holder named) and the other done,
  # or both done one after the other (the second took the lock after the first ended);
  # either way the checkpoint left has the reference's codes.
  if [ "$was_refused" = 1 ]; then
    { [ "$ra" = 2 ] && [ "$rb" = 0 ]; } || { [ "$rb" = 2 ] && [ "$ra" = 0 ]; } || ok=0
  else
    { [ "$ra" = 0 ] && [ "$rb" = 0 ]; } || ok=0
  fi
  if [ "$ok" = 1 ]; then
    "$COMPARE" "$WORK/ref-$mode-$np/checkpoint.h5" "$dir/checkpoint.h5" >>"$WORK/two-$t-b.log" 2>&1 || ok=0
  fi
  finish_and_compare "$dir" "$mode" "$np" "$WORK/two-$t-b.log" || ok=0
  if [ "$ok" = 1 ] && [ "$was_refused" = 1 ]; then
    result=refused
    refused=$((refused + 1))
  elif [ "$ok" = 1 ]; then
    result=identical
    identical=$((identical + 1))
  else
    result=WRONG
    wrong=$((wrong + 1))
  fi
  printf '  two  %2d: %-10s np %d second at %5.2f s (first alive: %d): exits %d/%d -> %s\n' "$t" "$mode" "$np" \
    "$delay" "$a_alive" "$ra" "$rb" "$result"
  [ "$result" != WRONG ] && rm -rf "$dir"
done

echo "campaign: $((KILLS + TWOS)) trials: $identical identical, $refused refused, $wrong wrong"
[ "$wrong" = 0 ] && rm -rf "$WORK" || echo "work directory kept: $WORK"
[ "$wrong" = 0 ]
