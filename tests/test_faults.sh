#!/bin/bash
# tests/test_faults.sh: faults around the quantize job's files, each of which must end
# with a clear one-line error (or a recovery) and no damaged file, after which the same
# command, once the fault is gone, completes with codes identical to an uninterrupted
# run's (compare_checkpoints):
#   1. the run directory's file system fills up during capture (a small tmpfs, filled by
#      another writer once capture has begun);
#   2. it fills up while the optimiser state is being written (tmpfs with room for the
#      activations but not for the state files);
#   3. a state file truncated between runs;
#   4. the activations file truncated between runs;
#   5. output.path in a directory that does not exist;
#   6. output.path on a read-only file system (tmpfs mounted ro).
# Needs root (mount -t tmpfs), as CI runs.
set -u
src=${NUPES_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/tests/resume_lib.sh"
t0=$(rl_now)
mounts=()
umount_all() { local m; for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done; }
trap 'umount_all; rl_cleanup' EXIT

# Job arguments: MODEL DIR [--set ...]; the bundled model, 2 ranks, small and fast.
job_args() {
  local model=$1 dir=$2
  shift 2
  ARGS=(--config "$src/configs/stories260K.toml"
    --set "model.path=$model" --set "tokenizer.path=$NUPES_DATA/tok512.bin"
    --set "calibration.text=$NUPES_DATA/calib-generated.txt"
    --set calibration.sequences=16 --set calibration.seq_len=64
    --set reconstruction.iterations=60 --set run.checkpoint_interval=0.2
    --set output.zstd_level=3 --set "run.dir=$dir" "$@")
}
bundled=$NUPES_DATA/stories260K.bin
synthetic=$RL_WORK/synthetic-d512.bin # 3 blocks: capture takes long enough (~0.4 s a level) to hit
"$NUPES_TOOLS_DIR/make_synthetic_model" "$synthetic" 512 1376 3 8 4 512 256 7 >/dev/null ||
  fail "make_synthetic_model"

make_tmpfs() { # DIR SIZE [ro]
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2${3:+,$3}" tmpfs "$1" || fail "mount -t tmpfs $1 (needs root)"
  mounts+=("$1")
}

# The error line the user saw (stderr of root, without mpirun's banner).
user_error() { grep -m1 -E '^nupes-mpi: (error|rank [0-9]+)' "$RL_WORK/$1.err" || echo "(no error line)"; }

# No temporary or damaged file of ours in DIR: every .h5 left there opens (inspect).
expect_clean() {
  local dir=$1 f
  find "$dir" -name '.*.tmp.*' | grep -q . && fail "$RL_NAME: temporary files left: $(find "$dir" -name '.*.tmp.*')"
  for f in "$dir"/done/*.h5 "$dir"/state/*.h5; do
    [ -e "$f" ] || continue
    "$NUPES_BIN" inspect "$f" >/dev/null 2>&1 || fail "$RL_NAME: $f left damaged"
  done
}

# Re-runs (at most 2) until exit 0 and compares the codes with REF.
rerun_and_compare() {
  local name=$1 ref=$2 dir=$3 i
  for i in 1 2; do
    rl_run "$name-rerun$i" 2 "${ARGS[@]}"
    [ "$RL_RC" = 0 ] && break
  done
  rl_expect_rc 0
  rl_same_codes "$ref" "${4:-$dir/checkpoint.h5}"
}

row() { printf "%-40s | %-70.400s | %s\n" "$1" "$2" "$3"; }
table=()

# ------------------------------------------------------------------ references
job_args "$bundled" "$RL_WORK/ref"
rl_run ref 2 "${ARGS[@]}"
rl_expect_rc 0
job_args "$synthetic" "$RL_WORK/ref-syn" --set reconstruction.iterations=4 --set calibration.seq_len=128
rl_run ref-syn 2 "${ARGS[@]}"
rl_expect_rc 0
act_kb=$(($(stat -c %s "$RL_WORK/ref-syn/activations.h5") / 1024))

# ------------------------------------------------------------------ 1. full during capture
mnt=$RL_WORK/fs-capture
make_tmpfs "$mnt" "$((act_kb + 512))k"
job_args "$synthetic" "$mnt/run" --set reconstruction.iterations=4 --set calibration.seq_len=128
RL_HOLD=capture-level # held mid-capture until the file system is full
rl_start capture-full 2 "${ARGS[@]}"
rl_wait_held capture-level
dd if=/dev/zero of="$mnt/filler" bs=64k 2>/dev/null # until ENOSPC
rl_release
rl_finish
first_rc=$RL_RC
[ "$RL_RC" = 0 ] && fail "capture-full: the job succeeded on a full file system"
saw=$(user_error capture-full)
echo "$saw" | grep -qiE 'space|full' || fail "capture-full: unclear error: $saw"
expect_clean "$mnt/run"
rm -f "$mnt/filler"
mount -o remount,size=256m "$mnt" # the re-run also needs room for the state files
rerun_and_compare capture-full "$RL_WORK/ref-syn/checkpoint.h5" "$mnt/run"
table+=("$(row "fs full during capture (tmpfs)" "exit $first_rc: ${saw#nupes-mpi: }" "re-run: exit 0, codes identical")")

# ------------------------------------------------------------------ 2. full during a state write
mnt=$RL_WORK/fs-state
ref_act_kb=$(($(stat -c %s "$RL_WORK/ref/activations.h5") / 1024))
make_tmpfs "$mnt" "$((ref_act_kb + 160))k"
job_args "$bundled" "$mnt/run"
rl_run state-full 2 "${ARGS[@]}"
first_rc=$RL_RC
[ "$RL_RC" = 0 ] && fail "state-full: the job succeeded on a full file system"
saw=$(user_error state-full)
echo "$saw" | grep -qiE 'space|full' || fail "state-full: unclear error: $saw"
expect_clean "$mnt/run"
mount -o remount,size=64m "$mnt"
rerun_and_compare state-full "$RL_WORK/ref/checkpoint.h5" "$mnt/run"
table+=("$(row "fs full during state write (tmpfs)" "exit $first_rc: ${saw#nupes-mpi: }" "re-run: exit 0, codes identical")")

# ------------------------------------------------------------------ 3, 4. truncated files
# Stops a run (SIGTERM, exit 75) once a state file exists, truncates FILE to half.
stop_and_truncate() {
  local name=$1 dir=$2 which=$3 f
  job_args "$bundled" "$dir" --set reconstruction.iterations=400
  rl_start "$name" 2 "${ARGS[@]}"
  rl_poll "a state file" "$RL_TIMEOUT" bash -c "ls '$dir'/state/block-*.h5 >/dev/null 2>&1"
  rl_signal TERM 0 1
  rl_finish
  rl_expect_rc 75
  if [ "$which" = state ]; then f=$(ls "$dir"/state/block-*.h5 | head -1); else f=$dir/activations.h5; fi
  truncate -s $(($(stat -c %s "$f") / 2)) "$f"
}
job_args "$bundled" "$RL_WORK/ref400" --set reconstruction.iterations=400
rl_run ref400 2 "${ARGS[@]}"
rl_expect_rc 0
for which in state activations; do
  dir=$RL_WORK/trunc-$which
  stop_and_truncate "trunc-$which" "$dir" "$which"
  rl_run "trunc-$which-rerun" 2 "${ARGS[@]}"
  saw=$(user_error "trunc-$which-rerun")
  if [ "$RL_RC" = 0 ]; then
    got="recovered: $(grep -hiE "cannot be opened|capturing again|damaged|starting over|is complete" "$RL_WORK/$RL_NAME.out" "$RL_WORK/$RL_NAME.err" | head -1)"
    rl_same_codes "$RL_WORK/ref400/checkpoint.h5" "$dir/checkpoint.h5"
    result="exit 0 at once, codes identical"
  else
    got="exit $RL_RC: ${saw#nupes-mpi: error: }"
    rerun_and_compare "trunc-$which" "$RL_WORK/ref400/checkpoint.h5" "$dir"
    result="re-run: exit 0, codes identical"
  fi
  table+=("$(row "$which file truncated between runs" "$got" "$result")")
done

# ------------------------------------------------------------------ 5, 6. output not writable
ro=$RL_WORK/ro
make_tmpfs "$ro" 1m ro
for case in missing-dir read-only; do
  dir=$RL_WORK/out-$case
  if [ $case = missing-dir ]; then out=$RL_WORK/no/such/dir/ck.h5; else out=$ro/ck.h5; fi
  job_args "$bundled" "$dir" --set "output.path=$out"
  rl_run "out-$case" 2 "${ARGS[@]}"
  first_rc=$RL_RC
  [ "$RL_RC" = 0 ] && fail "out-$case: the job succeeded writing to $out"
  saw=$(user_error "out-$case")
  echo "$saw" | grep -qF "$(dirname "$out")" || fail "out-$case: error does not name $(dirname "$out"): $saw"
  expect_clean "$dir"
  job_args "$bundled" "$dir" --set "output.path=$dir/ck.h5"
  rerun_and_compare "out-$case" "$RL_WORK/ref/checkpoint.h5" "$dir" "$dir/ck.h5"
  table+=("$(row "output.path: $case" "exit $first_rc: ${saw#nupes-mpi: }" "re-run with a writable path: exit 0, codes identical")")
done

printf '%s\n' "${table[@]}"
rl_log "PASS: faults ($(rl_seconds_since "$t0") s)"
