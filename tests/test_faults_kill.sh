#!/bin/bash
# tests/test_faults_kill.sh: one rank of a 2-rank quantize job killed with SIGKILL (no
# chance to save anything) at 20 moments of a seeded schedule spread over capture,
# reconstruction and gather/checkpoint; after each kill the same command is run again
# until it exits 0. Every re-run must succeed (a file the killed run was writing must
# never make a re-run fail: exit 0 at the first re-run, no warning; an interrupted
# capture is captured again), and every final checkpoint must have codes, scales and exponents
# identical to an uninterrupted run's.
#
# NUPES_FAULT_KILLS (default 20) and NUPES_FAULT_SEED (default 7) set the schedule.
set -u
src=${NUPES_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/tests/resume_lib.sh"
kills=${NUPES_FAULT_KILLS:-20}
seed=${NUPES_FAULT_SEED:-7}

job_args() {
  ARGS=(--config "$src/configs/stories260K.toml"
    --set "model.path=$NUPES_DATA/stories260K.bin" --set "tokenizer.path=$NUPES_DATA/tok512.bin"
    --set "calibration.text=$NUPES_DATA/calib-generated.txt"
    --set calibration.sequences=16 --set calibration.seq_len=64
    --set reconstruction.iterations=60 --set run.checkpoint_interval=0.2
    --set output.zstd_level=3 --set "run.dir=$1")
}

# ------------------------------------------------------------------ reference
job_args "$RL_WORK/ref"
t0=$(rl_now)
rl_run ref 2 "${ARGS[@]}"
rl_expect_rc 0
ref_seconds=$(rl_seconds_since "$t0")
ref_ms=$(($(rl_now) / 1000000 - t0 / 1000000))
rl_log "reference run: ${ref_seconds} s"

# The schedule: delays in [0.05 s, 0.8 x reference) after the victim rank appears, seeded
# (a job killed late may finish first: that round then just checks its codes).
mapfile -t delays < <(python3 -c "
import random
r = random.Random($seed)
print('\n'.join(str(int(50 + r.random() * ($ref_ms * 0.8 - 50))) for _ in range($kills)))")

printf '%-4s %8s %5s %-34s %s\n' kill 'at (ms)' rank 'killed during' 'after re-runs'
for ((k = 0; k < kills; k++)); do
  dir=$RL_WORK/kill-$k
  job_args "$dir"
  victim=$((k % 2))
  rl_start "kill-$k" 2 "${ARGS[@]}"
  rl_rank_pid "$victim"
  pid=$RL_FOUND_PID
  sleep "$(printf '%d.%03d' $((${delays[$k]} / 1000)) $((${delays[$k]} % 1000)))"
  stage=$(tail -n 1 "$RL_WORK/kill-$k.out" 2>/dev/null | cut -c1-34)
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"
    rl_finish
    what="$stage"
  else
    rl_finish
    what="(finished before the kill)"
  fi
  first_rc=$RL_RC
  runs=0
  recovered=
  while [ "$RL_RC" != 0 ]; do
    runs=$((runs + 1))
    [ $runs -gt 3 ] && fail "kill $k: no success after 3 re-runs"
    rl_run "kill-$k-rerun-$runs" 2 "${ARGS[@]}"
    [ "$RL_RC" = 0 ] ||
      fail "kill $k (at ${delays[$k]} ms, $what): re-run exited $RL_RC: $(grep -h 'error' "$RL_WORK/$RL_NAME.err" | head -2)"
    grep -qiE 'warning' "$RL_WORK/$RL_NAME.err" &&
      fail "kill $k: re-run warned: $(grep -hi warning "$RL_WORK/$RL_NAME.err" | head -2)"
    recovered=$(grep -hE 'cannot be opened|damaged|capturing again|starting over' "$RL_WORK/$RL_NAME.out" | head -1)
  done
  rl_same_codes "$RL_WORK/ref/checkpoint.h5" "$dir/checkpoint.h5"
  find "$dir" -name '.*.tmp.*' | grep -q . && fail "kill $k: temporary files left: $(find "$dir" -name '.*.tmp.*')"
  printf '%-4s %8s %5s %-34s rc %s, %d re-run(s), codes identical%s\n' "$k" "${delays[$k]}" \
    "$victim" "$what" "$first_rc" "$runs" "${recovered:+ (${recovered:0:60})}"
  rm -rf "$dir"
done
rl_log "PASS: $kills SIGKILLs, every re-run completed with identical codes ($(rl_seconds_since "$t0") s)"
