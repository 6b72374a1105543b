#!/bin/bash
# tests/test_stop_mid_iteration.sh: a stop signal abandons the iteration in progress (its
# forward or backward pass, seconds to minutes at 7B width, more than SLURM's KillWait
# leaves after it) instead of waiting for its end: the block's state is saved at the step
# the iteration started from (nothing learned had changed), the job exits 75, and the re-run
# does that step again and ends with codes identical to an uninterrupted run's.
#
# The ranks hold inside block 1's pass of step 5 (test hold iteration:0001:5, called
# between the pass's groups of matrix products) until signalled, so the signal lands
# mid-iteration however fast the machine is. 1 rank in parallel mode; 2 ranks in
# sequential mode (one group of 2: the group agrees before the gradient sum) with the
# signal to rank 1 only, so rank 0 finishes its share and learns of the stop there.
# A stop whose state write outlasts run.stop_seconds keeps the state file already there.
# Also: the probe passes before the first step and after the last are abandoned the same
# way (holds probe:0001:0 and probe:0001:20), and the checkpoint assembly prints one
# progress line per block.
set -u
src=${NUPES_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/tests/resume_lib.sh"
t_start=$(rl_now)

args_for() {
  local dir=$1
  shift
  mapfile -t ARGS < <(rl_job_args "$dir")
  ARGS+=(--set reconstruction.iterations=20 "$@")
}

# The run stopped in block 1's step 5: exit 75, the notes, block 1's state at step 5.
expect_stopped_mid_iteration() {
  local dir=$1 out
  rl_expect_rc 75
  grep -q '^block 1: stopped during step 5: the step is dropped' "$RL_WORK/$RL_NAME.out" ||
    fail "$RL_NAME: no 'block 1: stopped during step 5' line (the iteration was not abandoned)"
  grep -qE '^block 1: state of step 5 written on the stop: [0-9.]+ MB in [0-9.]+ s$' "$RL_WORK/$RL_NAME.out" ||
    fail "$RL_NAME: no 'block 1: state of step 5 written on the stop' line"
  out=$("$NUPES_BIN" inspect "$dir/state/block-0001.h5" 2>&1) || fail "inspect block 1's state: $out"
  [[ $out =~ step\ 5\ /\ 20 ]] || fail "$RL_NAME: block 1's state is not at step 5 of 20: $out"
  rl_log "  $RL_NAME: exit 75, ranks ${RL_RANK_EXIT_SECONDS:-?} s after the signal; state at step 5"
}

# The run stopped in block 1's probe pass at step STEP: exit 75 and the note.
expect_stopped_in_probe() {
  local step=$1
  rl_expect_rc 75
  grep -q "^block 1: stopped during the probe at step $step: it is done again on resume" "$RL_WORK/$RL_NAME.out" ||
    fail "$RL_NAME: no 'block 1: stopped during the probe at step $step' line (the probe was not abandoned)"
}

# Runs job NAME (ARGS) on 1 rank, held at POINT, and SIGTERMs it there.
stop_1rank_at() {
  local name=$1 point=$2
  RL_HOLD=$point
  rl_start "$name" 1 "${ARGS[@]}"
  rl_wait_held "$point" 0
  rl_signal TERM 0
  rl_finish
}

resume_and_compare() {
  local name=$1 np=$2 dir=$3 ref=$4
  rl_run "$name-resume" "$np" "${ARGS[@]}"
  rl_expect_rc 0
  grep -q "run: $dir (resumed)" "$RL_WORK/$RL_NAME.out" || fail "$RL_NAME: run directory not resumed"
  rl_same_codes "$ref" "$dir/checkpoint.h5"
}

echo "== uninterrupted references (parallel on 1 rank, sequential on 2)"
args_for "$RL_WORK/ref-par"
rl_run ref-par 1 "${ARGS[@]}"
rl_expect_rc 0
# The checkpoint assembly (minutes at 7B width) reports each block it adds.
n=$(grep -cE '^checkpoint: block [1-5]/5 added, [0-9.]+ s, ETA [0-9]+ s$' "$RL_WORK/ref-par.out")
[ "$n" = 5 ] || fail "ref-par: $n 'checkpoint: block N/5 added' lines, expected 5"
# So does the capture (minutes too), each level with the time the remaining blocks take at
# the last one's pace: ETA 0 once the last block is forwarded.
n=$(grep -cE '^capture: level [1-6]/6 written, [0-9]+ tokens/s, ETA [0-9]+ s$' "$RL_WORK/ref-par.out")
[ "$n" = 6 ] || fail "ref-par: $n 'capture: level N/6 written ... ETA' lines, expected 6"
grep -qE '^capture: level 6/6 written, [0-9]+ tokens/s, ETA 0 s$' "$RL_WORK/ref-par.out" ||
  fail "ref-par: the last capture level's ETA is not 0"
args_for "$RL_WORK/ref-seq" --set reconstruction.mode=sequential
rl_run ref-seq 2 "${ARGS[@]}"
rl_expect_rc 0

# A save every step (run.checkpoint_interval 1 ns): the periodic save of step 5, whose
# bytes a thread writes while the step computes, is still the job's when the signal comes:
# the stop finishes it.
echo "== SIGTERM inside block 1's step 5, parallel mode, 1 rank, a save every step"
dir=$RL_WORK/par1
args_for "$dir" --set run.checkpoint_interval=1e-9
stop_1rank_at par1 iteration:0001:5
expect_stopped_mid_iteration "$dir"
resume_and_compare par1 1 "$dir" "$RL_WORK/ref-par/checkpoint.h5"

echo "== SIGTERM to rank 1 only inside block 1's step 5, sequential mode, 2 ranks"
dir=$RL_WORK/seq2
args_for "$dir" --set reconstruction.mode=sequential
RL_HOLD=iteration:0001:5
rl_start seq2 2 "${ARGS[@]}"
rl_wait_held iteration:0001:5 0
rl_wait_held iteration:0001:5 1
rl_signal TERM 1 # rank 0, released, finishes its share and learns of the stop in the group
rl_finish
expect_stopped_mid_iteration "$dir"
resume_and_compare seq2 2 "$dir" "$RL_WORK/ref-seq/checkpoint.h5"

# A stop's state write is given run.stop_seconds (SLURM's KillWait less a margin); when
# they run out (here 1 ns: always, whatever the machine), the state file already on disk
# stays and the re-run does the steps since it again: the same codes. No periodic saves
# (run.checkpoint_interval 1000 s), so which file is on disk does not depend on the
# machine's speed: none at first; then a normal stop writes step 5; then a stop at step 8
# out of time keeps step 5.
budget_stop() {
  local name=$1 step=$2
  shift 2
  args_for "$dir" --set run.checkpoint_interval=1000 "$@"
  stop_1rank_at "$name" "iteration:0001:$step"
  rl_expect_rc 75
}
budget_state_step() {
  local out
  out=$("$NUPES_BIN" inspect "$dir/state/block-0001.h5" 2>&1) || fail "inspect block 1's state: $out"
  [[ $out =~ step\ $1\ /\ 20 ]] || fail "$RL_NAME: block 1's state is not at step $1 of 20: $out"
}
budget_note() {
  local want="block 1: the state of step $1 was not written within run.stop_seconds = 1e-09 s"
  line=$(grep -F "$want" "$RL_WORK/$RL_NAME.out") || fail "$RL_NAME: no line '$want'"
  [[ $line == *"$2, to the same numbers" ]] || fail "$RL_NAME: expected '$2' in: $line"
  compgen -G "$dir/state/.*tmp*" >/dev/null && fail "$RL_NAME: a temporary state file was left: $(ls -a "$dir/state")"
  rl_log "  $RL_NAME: exit 75, ranks ${RL_RANK_EXIT_SECONDS:-?} s after the signal; ${line#block 1: }"
}
echo "== SIGTERM inside block 1's step 5, then 8, parallel mode, 1 rank, run.stop_seconds too short for the write"
dir=$RL_WORK/budget
budget_stop budget-a 5 --set run.stop_seconds=1e-9
budget_note 5 "it has no state file: the resume starts it over"
[ -e "$dir/state/block-0001.h5" ] && fail "$RL_NAME: a state file for block 1 was written"
budget_stop budget-b 5
budget_state_step 5
budget_stop budget-c 8 --set run.stop_seconds=1e-9
budget_note 8 "its state file of step 5 stays and the resume does steps 5..7 again"
budget_state_step 5
args_for "$dir"
resume_and_compare budget 1 "$dir" "$RL_WORK/ref-par/checkpoint.h5"

# The probe passes (the block's loss before its first step and after its last, a forward
# over the probe sequences) are abandoned too. In the first, nothing is learned yet: no
# state is saved and the re-run sets the block up again. In the last, the state at the
# final step is saved and the re-run only probes again.
echo "== SIGTERM inside block 1's first probe (step 0), parallel mode, 1 rank"
dir=$RL_WORK/probe0
args_for "$dir"
stop_1rank_at probe0 probe:0001:0
expect_stopped_in_probe 0
[ -e "$dir/state/block-0001.h5" ] && fail "$RL_NAME: a state was saved for block 1 before its first step"
rl_log "  $RL_NAME: exit 75, ranks ${RL_RANK_EXIT_SECONDS:-?} s after the signal; no state for block 1"
resume_and_compare probe0 1 "$dir" "$RL_WORK/ref-par/checkpoint.h5"

echo "== SIGTERM inside block 1's last probe (step 20), parallel mode, 1 rank"
dir=$RL_WORK/probe20
args_for "$dir"
stop_1rank_at probe20 probe:0001:20
expect_stopped_in_probe 20
out=$("$NUPES_BIN" inspect "$dir/state/block-0001.h5" 2>&1) || fail "inspect block 1's state: $out"
[[ $out =~ step\ 20\ /\ 20 ]] || fail "$RL_NAME: block 1's state is not at step 20 of 20: $out"
rl_log "  $RL_NAME: exit 75, ranks ${RL_RANK_EXIT_SECONDS:-?} s after the signal; state at step 20"
resume_and_compare probe20 1 "$dir" "$RL_WORK/ref-par/checkpoint.h5"

echo "PASS: test_stop_mid_iteration ($(rl_seconds_since "$t_start") s)"
