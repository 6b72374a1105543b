#!/bin/bash
# tests/test_resume_damage.sh: resuming after damage.
#  - kill -9 of one rank in the middle of a block: mpirun aborts the job (non-zero exit,
#    no rank left behind); the state file saved before the kill is intact and the re-run
#    resumes from it and finishes with codes identical to an uninterrupted run.
#  - a changed config on resume is refused with exit 2 and a message naming what differs,
#    and the refusal touches nothing (the resume afterwards is still identical); --restart
#    starts the new config over.
#  - a truncated state file and one whose data was altered (checksum) are reported on
#    stderr, naming the file; those blocks restart from their beginning (same seed), so
#    the result is still identical to the uninterrupted run, with exit 0.
set -u
src=${NUPES_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/tests/resume_lib.sh"
t_start=$(rl_now)
PY=/usr/bin/python3 # Debian's python3-h5py

args_for() {
  local dir=$1
  shift
  mapfile -t ARGS < <(rl_job_args "$dir")
  ARGS+=("$@")
}

# The re-run with ARGS: exit 0, resumed, identical codes, no state file left.
resume_and_compare() {
  local name=$1 np=$2 dir=$3
  rl_run "$name" "$np" "${ARGS[@]}"
  rl_expect_rc 0
  grep -q "run: $dir (resumed)" "$RL_WORK/$name.out" || fail "$name: run directory not resumed"
  rl_same_codes "$ref" "$dir/checkpoint.h5"
  [ "$(rl_count "$dir/state")" = 0 ] || fail "$name: state files left after completion"
}

# Fails unless every state file of DIR reads back (inspect) at a step past 0.
expect_valid_states() {
  local f out
  for f in "$1"/state/block-*.h5; do
    [ -e "$f" ] || continue
    out=$("$NUPES_BIN" inspect "$f" 2>&1) || fail "inspect $f: $out"
    [[ $out =~ step\ ([1-9][0-9]*)\ / ]] || fail "$f: no step past 0: $out"
  done
}

echo "== uninterrupted reference run (2 ranks)"
args_for "$RL_WORK/ref"
rl_run ref 2 "${ARGS[@]}"
rl_expect_rc 0
ref=$RL_WORK/ref/checkpoint.h5

# ------------------------------------------------------------------ kill -9
echo "== kill -9 of rank 1 in the middle of block 1, 2 ranks"
dir=$RL_WORK/kill
args_for "$dir"
RL_HOLD=state-saved:0001
rl_start kill 2 "${ARGS[@]}"
rl_freeze_when_saved "$dir" 0001 1 # rank 1's block has saved its state once
rl_rank_pid 0
rank0=$RL_FOUND_PID
rl_signal KILL 1
rl_finish
case $RL_RC in
  0 | 75) fail "kill: mpirun exited $RL_RC after a rank was killed, expected a failure" ;;
esac
rl_poll "exit of rank 0 (pid $rank0) after the abort" 30 rl_pid_gone "$rank0"
rl_log "  kill: mpirun exit $RL_RC; $(rl_count "$dir/done") done, $(rl_count "$dir/state") in progress"
[ -e "$dir/checkpoint.h5" ] && fail "kill: checkpoint written by an aborted job"
expect_valid_states "$dir"
[ -e "$dir/state/block-0001.h5" ] || fail "kill: block 1's state file is gone"

# ------------------------------------------------------------------ changed config
echo "== a changed config on resume is refused, naming what differs, and changes nothing"
snapshot() { (cd "$dir" && find . -type f ! -name progress.log -print0 | sort -z | xargs -0 md5sum); }
before=$(snapshot)
for change in quantization.bits=3 reconstruction.iterations=99 calibration.sequences=31 \
  reconstruction.seed=2; do
  key=${change%%=*}
  rl_run "refuse-${key##*.}" 1 "${ARGS[@]}" --set "$change"
  rl_expect_rc 2
  err=$RL_WORK/$RL_NAME.err
  grep -q "$dir" "$err" || fail "$RL_NAME: the message does not name the run directory: $(cat "$err")"
  grep -q -- "--restart" "$err" || fail "$RL_NAME: the message does not mention --restart: $(cat "$err")"
  # The key itself, or for the calibration the tokens it changes.
  grep -qE "${key##*.}|${key%%.*}" "$err" || fail "$RL_NAME: the message does not name $key: $(cat "$err")"
  rl_log "  --set $change: $(grep -m1 'error' "$err")"
done
[ "$(snapshot)" = "$before" ] || fail "a refused run changed the run directory"

echo "== the re-run after the kill (and the refusals) resumes and gives identical codes"
resume_and_compare kill-resume 2 "$dir"
grep -qi warning "$RL_WORK/kill-resume.err" && fail "kill-resume: warning: $(cat "$RL_WORK/kill-resume.err")"

echo "== --restart runs the changed config from the beginning"
rl_run restart 2 "${ARGS[@]}" --set quantization.bits=3 --restart
rl_expect_rc 0
grep -q "run: $dir (restarted)" "$RL_WORK/restart.out" || fail "restart: run directory not restarted"
"$NUPES_BIN" inspect "$dir/checkpoint.h5" >"$RL_WORK/restart-inspect.txt" 2>&1 ||
  fail "inspect the restarted checkpoint: $(cat "$RL_WORK/restart-inspect.txt")"
grep -qE '\b3 bits\b|bits[ =:]+3\b' "$RL_WORK/restart-inspect.txt" ||
  fail "restart: the checkpoint is not 3-bit: $(head -n 5 "$RL_WORK/restart-inspect.txt")"
grep -q 'bits = 3' "$dir/run.toml" || fail "restart: run.toml does not hold the new config"

# ------------------------------------------------------------------ damaged state files
echo "== truncated and altered state files: reported, those blocks start over, identical result"
dir=$RL_WORK/damaged
args_for "$dir"
RL_HOLD=state-saved:0000,state-saved:0001
rl_start damaged 2 "${ARGS[@]}"
rl_freeze_when_saved "$dir" 0000 0
rl_freeze_when_saved "$dir" 0001 1
rl_signal TERM 0 1
rl_finish
rl_expect_rc 75
[ -e "$dir/state/block-0000.h5" ] && [ -e "$dir/state/block-0001.h5" ] ||
  fail "damaged: expected state files for blocks 0 and 1, have: $(ls "$dir/state")"
expect_valid_states "$dir"
size=$(stat -c %s "$dir/state/block-0000.h5")
truncate -s $((size / 2)) "$dir/state/block-0000.h5" || fail "truncate"
# A structurally valid file with one weight changed: only the data checksum can tell.
"$PY" - "$dir/state/block-0001.h5" <<'EOF' || fail "altering block-0001.h5 with h5py"
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    z = f["w1.z"]
    v = z[0]
    z[0] = v + 1.0
EOF
args_for "$dir"
rl_run damaged-resume 2 "${ARGS[@]}"
rl_expect_rc 0
err=$RL_WORK/damaged-resume.err
for b in 0000 0001; do
  grep -q "warning: .*state/block-$b.h5.*restarts from its beginning" "$err" ||
    fail "damaged-resume: no warning naming state/block-$b.h5: $(cat "$err")"
done
rl_log "  $(grep -c warning "$err") warnings, e.g.: $(grep -m1 warning "$err")"
rl_same_codes "$ref" "$dir/checkpoint.h5"
[ "$(rl_count "$dir/state")" = 0 ] || fail "damaged-resume: state files left after completion"

echo "PASS: test_resume_damage ($(rl_seconds_since "$t_start") s)"
