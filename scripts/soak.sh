#!/usr/bin/env bash
# Soak test (not in CI): runs the bundled job under repeated random SIGTERMs and checks
# that the final checkpoint's codes equal an uninterrupted run's.
#
#   scripts/soak.sh [ROUNDS] [NP] [SEED]      default 50 rounds, 2 ranks, seed 1
#
# Each round starts `mpirun -np NP nupes-mpi --config configs/stories260K.toml` on the same
# run directory, sends SIGTERM to one random rank (or all) after a random delay, and
# expects exit 75 (state saved) or 0 (finished first); a finished job's checkpoint is
# compared with the reference (tests/tools/compare_checkpoints) and the next round starts
# over with --restart. Any other exit code, or a difference, stops the soak with exit 1.
# Environment: NUPES_BUILD (build dir, default <repo>/build), MPIEXEC (default mpirun),
# NUPES_SOAK_ARGS (more --set options, e.g. "--set reconstruction.iterations=100").
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-50}
np=${2:-2}
seed=${3:-1}
build=${NUPES_BUILD:-$repo/build}
bin=$build/nupes-mpi
compare=$build/tools/compare_checkpoints
mpiexec=${MPIEXEC:-mpirun}
[ -x "$bin" ] && [ -x "$compare" ] || { echo "soak: build $bin and $compare first" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export HDF5_PLUGIN_PATH=$build/plugins
work=$(mktemp -d /tmp/nupes-soak.XXXXXX)
RANDOM=$seed
read -r -a extra <<<"${NUPES_SOAK_ARGS:-}"
job() { "$mpiexec" -np "$np" "$bin" --config "$repo/configs/stories260K.toml" --set "run.dir=$1" \
  --set run.checkpoint_interval=0.5 "${extra[@]}" "${@:2}"; }

echo "soak: reference run in $work/ref"
t0=$(date +%s%N)
job "$work/ref" >"$work/ref.log" 2>&1 || { echo "soak: reference run failed, see $work/ref.log"; exit 1; }
ref_ms=$((($(date +%s%N) - t0) / 1000000))
echo "soak: reference took $ref_ms ms; $rounds rounds of SIGTERM"

stops=0 completions=0 restart=()
for ((r = 1; r <= rounds; r++)); do
  delay=$((200 + RANDOM % (ref_ms > 200 ? ref_ms : 201)))
  job "$work/run" "${restart[@]}" >"$work/round.log" 2>&1 &
  pid=$!
  sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
  # $pid is the subshell running job(); the ranks are the children of its mpirun (a
  # SIGTERM to mpirun itself would make it kill the ranks and exit 1).
  ranks=$(for m in $(pgrep -P "$pid"); do pgrep -P "$m"; done)
  if [ -n "$ranks" ]; then
    if ((RANDOM % 3 == 0)); then victims=$ranks; else victims=$(echo "$ranks" | shuf -n 1 --random-source=<(yes $r)); fi
    kill -TERM $victims 2>/dev/null
  fi
  wait "$pid"
  rc=$?
  restart=()
  case $rc in
  75) stops=$((stops + 1)); printf 'round %3d: SIGTERM after %5d ms -> exit 75 (%s)\n' "$r" "$delay" \
        "$(grep -oE '[0-9]+/[0-9]+ blocks done' "$work/round.log" | tail -1)" ;;
  0)
    completions=$((completions + 1))
    if ! "$compare" "$work/ref/checkpoint.h5" "$work/run/checkpoint.h5" >"$work/compare.txt" 2>&1; then
      echo "soak: round $r: codes differ from the reference:"; tail -3 "$work/compare.txt"; exit 1
    fi
    printf 'round %3d: finished, codes identical to the reference; starting over\n' "$r"
    restart=(--restart) ;;
  *) echo "soak: round $r: exit $rc, expected 75 or 0; log: $work/round.log"; tail -5 "$work/round.log"; exit 1 ;;
  esac
done
# Finish the last interrupted run without signals and compare it too.
job "$work/run" >"$work/final.log" 2>&1 || { echo "soak: final run failed: $work/final.log"; exit 1; }
"$compare" "$work/ref/checkpoint.h5" "$work/run/checkpoint.h5" >"$work/compare.txt" 2>&1 ||
  { echo "soak: final codes differ"; tail -3 "$work/compare.txt"; exit 1; }
echo "soak: PASS: $rounds rounds, $stops stops (exit 75), $completions completions, final codes identical"
rm -rf "$work"
