#!/usr/bin/env bash
# Learning on llama.cpp's grids (quantization.grid) as on the power grid: every mode on any
# number of ranks gives the same codes and scales, and a stopped job resumes to them.
#  1. iq4_nl on the bundled model: parallel and pipelined give identical checkpoints on 1
#     and 2 ranks (sequential mode splits a block's batch over the ranks, which sums the
#     gradient in another order: test_mpi_sequential bounds that for any grid; here it
#     runs in part 2);
#  2. iq4_nl sequential on 2 ranks, stopped (SIGTERM) once block 1 has saved its state,
#     exits 75 and resumes to the uninterrupted run's checkpoint;
#  3. iq4_xs on a synthetic model with rows of 256: 1 and 2 ranks identical, and the
#     checkpoint stores super_scale / sub_scale (IQ4_XS's arrays), not scale.
set -euo pipefail
: "${NUPES_BIN:?}" "${NUPES_SOURCE_DIR:?}" "${NUPES_TOOLS_DIR:?}" "${MPIEXEC:?}"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" # Open MPI's teardown, as elsewhere
work=$(mktemp -d "${TMPDIR:-/tmp}/nupes-iq4.XXXXXX")
pid=""
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
config=$NUPES_SOURCE_DIR/configs/stories260K.toml
fast=(--set quantization.grid=iq4_nl --set reconstruction.iterations=20
      --set calibration.sequences=16 --set calibration.seq_len=64)
same() { "$NUPES_TOOLS_DIR/compare_checkpoints" "$1" "$2" > "$work/cmp.txt" || { cat "$work/cmp.txt" >&2; fail "$3"; }; }
run() { # run NAME NP ARGS...
  local name=$1 np=$2
  shift 2
  "$MPIEXEC" -np "$np" "$NUPES_BIN" --config "$config" "$@" --set run.dir="$work/$name" > "$work/$name.log" 2>&1 ||
    { cat "$work/$name.log"; fail "$name on $np ranks failed"; }
}

# 1. parallel and pipelined, 1 and 2 ranks
for mode in parallel pipelined; do
  run "$mode-1" 1 "${fast[@]}" --set reconstruction.mode=$mode
  run "$mode-2" 2 "${fast[@]}" --set reconstruction.mode=$mode
  same "$work/$mode-1/checkpoint.h5" "$work/$mode-2/checkpoint.h5" "iq4_nl $mode: 2 ranks differ from 1"
done
h5dump -a /quantizer "$work/parallel-1/checkpoint.h5" | grep -q '"iq4_nl"' || fail "checkpoint attribute quantizer is not iq4_nl"
echo "iq4_nl: parallel and pipelined identical on 1 and 2 ranks"

# 2. stop and resume: rank 1 holds once block 1 has saved its state, then both get SIGTERM
slow=("${fast[@]}" --set reconstruction.mode=sequential --set reconstruction.iterations=60
      --set run.checkpoint_interval=0.1)
run ref 2 "${slow[@]}"
mkdir -p "$work/hold"
NUPES_TEST_HOLD=state-saved:0001 NUPES_TEST_HOLD_DIR="$work/hold" \
  "$MPIEXEC" -np 2 "$NUPES_BIN" --config "$config" "${slow[@]}" --set run.dir="$work/stop" > "$work/stop.log" 2>&1 &
pid=$!
for _ in $(seq 1 3000); do # 300 s at most: the job holds there until signalled
  ls "$work/hold" 2>/dev/null | grep -q '^held\.state-saved:0001\.' && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
ls "$work/hold" | grep -q '^held\.state-saved:0001\.' || { cat "$work/stop.log"; fail "block 1 never saved its state"; }
pkill -TERM -P "$pid" -f nupes-mpi || true
: > "$work/hold/release.all"
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" -eq 75 ] || { cat "$work/stop.log"; fail "the stopped iq4_nl job exited $rc, expected 75"; }
run stop 2 "${slow[@]}"
same "$work/ref/checkpoint.h5" "$work/stop/checkpoint.h5" "iq4_nl: the resumed checkpoint differs"
echo "iq4_nl: stop (exit 75) and resume give the uninterrupted checkpoint"

# 3. iq4_xs where rows are whole super-blocks of 256
"$NUPES_TOOLS_DIR/make_synthetic_model" "$work/w256.bin" 256 512 2 4 4 512 128 11 > /dev/null
xs=(--set model.path="$work/w256.bin" --set quantization.grid=iq4_xs --set reconstruction.iterations=10
    --set calibration.sequences=8 --set calibration.seq_len=64)
run xs-1 1 "${xs[@]}"
run xs-2 2 "${xs[@]}"
same "$work/xs-1/checkpoint.h5" "$work/xs-2/checkpoint.h5" "iq4_xs: 2 ranks differ from 1"
h5ls -r "$work/xs-1/checkpoint.h5" | grep -q 'blocks/0000/w2/sub_scale' || fail "no IQ4_XS sub_scale stored for w2"
h5ls -r "$work/xs-1/checkpoint.h5" | grep -q 'blocks/0000/w2/super_scale' || fail "no IQ4_XS super_scale stored for w2"
echo "iq4_xs: identical on 1 and 2 ranks, super_scale and sub_scale stored"
echo "3 passed, 0 failed"
