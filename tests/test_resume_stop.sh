#!/bin/bash
# tests/test_resume_stop.sh: a quantize job stopped by a signal at each stage (capture, in
# the middle of a block, between blocks, at the gather/checkpoint) on 1 and 2 ranks, and in
# sequential mode on 2 ranks, exits 75 with its state saved; the same command run again
# resumes and writes a checkpoint whose codes, scales and exponents are identical to an
# uninterrupted run's (compared dataset by dataset with compare_checkpoints).
#
# Signals go to the rank processes (as SLURM signals every task), once to one rank only
# (the ranks must agree), and once as SIGUSR1 to mpirun (which forwards it). The moment is
# a named point where the job holds until the test has signalled it (RL_HOLD,
# mpi/test_hold.h), never a sleep or a race with a fast machine.
set -u
src=${NUPES_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/tests/resume_lib.sh"
t_start=$(rl_now)

# ------------------------------------------------------------------ helpers
# Job arguments for the bundled model; extra --set options appended.
args_for() {
  local dir=$1
  shift
  mapfile -t ARGS < <(rl_job_args "$dir")
  ARGS+=("$@")
}

# A synthetic model with d 512 (1 block, so 2 levels): the ranks hold after writing level
# 1, and 2 optimiser steps keep the rest of the job short.
cap_args_for() {
  args_for "$1" --set "model.path=$RL_WORK/synthetic-d512.bin" --set calibration.seq_len=128 \
    --set reconstruction.iterations=2 --set output.zstd_level=1
}

# The stopped run's exit code and what it leaves behind (progress.log names the stop).
expect_stopped() {
  local dir=$1
  rl_expect_rc 75
  grep -q 'stopped on signal' "$RL_WORK/$RL_NAME.out" || fail "$RL_NAME: no 'stopped on signal' line"
  grep -qE 'stopped \(signal (15|10)\): state saved, exit 75' "$dir/progress.log" ||
    fail "$RL_NAME: progress.log does not record the stop"
  [ -e "$dir/checkpoint.h5" ] && fail "$RL_NAME: a stopped run wrote the checkpoint"
  # a new run checks every weight (the resume below says it need not)
  grep -q 'model: every weight was checked when this run started' "$RL_WORK/$RL_NAME.out" &&
    fail "$RL_NAME: a new run skipped the weights' check"
  rl_log "  $RL_NAME: exit 75, ranks ${RL_RANK_EXIT_SECONDS:-?} s and mpirun ${RL_STOP_SECONDS:-?} s" \
    "after the signal; $(rl_count "$dir/done") done," \
    "$(rl_count "$dir/state") in progress"
}

# The same command again: exit 0, the run directory resumed, no warning, identical codes.
resume_and_compare() {
  local name=$1 np=$2 dir=$3 ref=$4
  rl_run "$name-resume" "$np" "${ARGS[@]}"
  rl_expect_rc 0
  grep -q "run: $dir (resumed)" "$RL_WORK/$RL_NAME.out" || fail "$RL_NAME: run directory not resumed"
  # the same fingerprint: root hashed the model but did not check every weight again
  grep -q 'model: every weight was checked when this run started' "$RL_WORK/$RL_NAME.out" ||
    fail "$RL_NAME: the resume checked the weights again (or did not say it skipped them)"
  grep -qi 'warning' "$RL_WORK/$RL_NAME.err" && fail "$RL_NAME: unexpected warning: $(cat "$RL_WORK/$RL_NAME.err")"
  # the job names the kernel's huge page setting (the bracketed word of sysfs's file)
  local thp
  thp=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)
  grep -q "memory: transparent huge pages \"${thp:-unavailable}\" here" "$RL_WORK/$RL_NAME.out" ||
    fail "$RL_NAME: no 'memory: transparent huge pages \"${thp:-unavailable}\"' line"
  rl_same_codes "$ref" "$dir/checkpoint.h5"
  [ "$(rl_count "$dir/state")" = 0 ] || fail "$RL_NAME: state files left after completion"
}

# The in-progress blocks' state files are valid (inspect reads them) and past step 0.
expect_valid_states() {
  local f out
  for f in "$1"/state/block-*.h5; do
    [ -e "$f" ] || continue
    out=$("$NUPES_BIN" inspect "$f" 2>&1) || fail "inspect $f: $out"
    [[ $out =~ step\ ([0-9]+)\ /\ ([0-9]+) ]] || fail "inspect $f printed no step: $out"
    [ "${BASH_REMATCH[1]}" -ge 1 ] && [ "${BASH_REMATCH[1]}" -lt "${BASH_REMATCH[2]}" ] ||
      fail "$f: step ${BASH_REMATCH[1]} of ${BASH_REMATCH[2]}"
  done
}

# ------------------------------------------------------------------ references
echo "== uninterrupted reference runs"
args_for "$RL_WORK/ref-par"
rl_run ref-par 1 "${ARGS[@]}"
rl_expect_rc 0
ref_par=$RL_WORK/ref-par/checkpoint.h5

args_for "$RL_WORK/ref-seq" --set reconstruction.mode=sequential
rl_run ref-seq 2 "${ARGS[@]}"
rl_expect_rc 0
ref_seq=$RL_WORK/ref-seq/checkpoint.h5

"$NUPES_TOOLS_DIR/make_synthetic_model" "$RL_WORK/synthetic-d512.bin" 512 1376 1 8 4 512 256 7 \
  >/dev/null || fail "make_synthetic_model"
cap_args_for "$RL_WORK/ref-cap"
rl_run ref-cap 1 "${ARGS[@]}"
rl_expect_rc 0
ref_cap=$RL_WORK/ref-cap/checkpoint.h5
rl_log "  references written ($(rl_seconds_since "$t_start") s)"

# ------------------------------------------------------------------ during capture
for np in 1 2; do
  echo "== SIGTERM during capture, $np rank(s)"
  dir=$RL_WORK/cap$np
  cap_args_for "$dir"
  RL_HOLD=capture-level
  rl_start "cap$np" "$np" "${ARGS[@]}"
  rl_wait_held capture-level $((np - 1))
  rl_signal TERM $((np - 1)) # the last rank only: on 2 ranks, rank 0 learns it from rank 1
  rl_finish
  expect_stopped "$dir"
  [ "$(rl_count "$dir/done")" = 0 ] || fail "cap$np: blocks done although capture was stopped"
  grep -q 'capture done' "$dir/progress.log" && fail "cap$np: capture finished before the stop"
  [ -e "$dir/activations.h5" ] && fail "cap$np: activations.h5 (a complete capture) after a stop in capture"
  out=$("$NUPES_BIN" inspect "$dir/activations.h5.partial" 2>&1) || fail "inspect activations: $out"
  [[ $out == *INCOMPLETE* ]] || fail "cap$np: activations.h5.partial not shown incomplete: $out"
  resume_and_compare "cap$np" "$np" "$dir" "$ref_cap"
  grep -q '^capture: 32 sequences x 128 tokens' "$RL_WORK/cap$np-resume.out" ||
    fail "cap$np-resume: capture was not redone"
done

# Between two sequences of a level (a level of a 7B capture takes minutes): the bundled
# model (6 levels), 1 rank, held after 2 sequences of level 3. Levels 0..1 are marked
# complete; the resume forwards level 1 through block 1 again and goes on from level 2.
echo "== SIGTERM between two sequences of capture level 3, 1 rank"
dir=$RL_WORK/capseq
args_for "$dir"
# The point after sequence 3 is listed too: a job that went on with the level would pass it
# (and leave its held file; a signalled job never waits there).
RL_HOLD=capture-sequence:3:2,capture-sequence:3:3
rl_start capseq 1 "${ARGS[@]}"
rl_wait_held capture-sequence:3:2 0
rl_signal TERM 0
rl_finish
expect_stopped "$dir"
grep -q '^capture: level 2/6 written' "$RL_WORK/capseq.out" || fail "capseq: level 2 was not written before the stop"
rl_held capture-sequence:3:3 0 && fail "capseq: the level went on after the stop (sequence 3 done)"
resume_and_compare capseq 1 "$dir" "$ref_par"
grep -q '^capture: levels 0..1 complete, resuming at level 2' "$RL_WORK/capseq-resume.out" ||
  fail "capseq-resume: capture did not resume at level 2"

echo "== capture progress: a level held past the 10 s report interval prints its rate and ETA"
# Levels of the bundled model take milliseconds, so the line (every 10 s on root, for the
# minutes a 7B level takes) would never print: the job is held after sequence 1 of level
# 3 for 11 s (past the interval, by the job's own clock); released, that same sequence's
# report must print (the level is "4/6" counting the embeddings as level 1).
dir=$RL_WORK/capprog
args_for "$dir" --set reconstruction.iterations=2
RL_HOLD=capture-sequence:3:1
rl_start capprog 1 "${ARGS[@]}"
rl_wait_held capture-sequence:3:1 0
sleep 11
rl_release
rl_finish
rl_expect_rc 0
grep -qE '^capture: level 4/6, 1/32 sequences on rank 0, [0-9]+ tokens/s per rank, ETA [0-9]+ s for the level$' \
  "$RL_WORK/capprog.out" || fail "capprog: no progress line for level 4 after the held sequence"

echo "== probe progress: a probe pass held past 2 s prints its loss and time"
# Likewise a probe pass (the loss before and after a block's iterations), which prints
# once it has taken 2 s (a minute at 7B width on a small rank): held 3 s in block 1's first.
dir=$RL_WORK/probeprog
args_for "$dir" --set reconstruction.iterations=2
RL_HOLD=probe:0001:0
rl_start probeprog 1 "${ARGS[@]}"
rl_wait_held probe:0001:0 0
sleep 3
rl_release
rl_finish
rl_expect_rc 0
grep -qE '^block 1: probe loss before [0-9.e+-]+ over 8 sequences in [0-9.]+ s$' "$RL_WORK/probeprog.out" ||
  fail "probeprog: no probe line for block 1 after the held probe"

# ------------------------------------------------------------------ in the middle of a block
echo "== SIGTERM in the middle of block 1, 1 rank"
dir=$RL_WORK/mid1
args_for "$dir"
RL_HOLD=state-saved:0001
rl_start mid1 1 "${ARGS[@]}"
rl_freeze_when_saved "$dir" 0001 0 # block 1 is running and has saved once
rl_signal TERM 0
rl_finish
expect_stopped "$dir"
stop_seconds_bundled=$RL_STOP_SECONDS
stop_rank_bundled=$RL_RANK_EXIT_SECONDS
[ "$(rl_count "$dir/state")" -ge 1 ] || fail "mid1: no state file after a stop mid-block"
expect_valid_states "$dir"
resume_and_compare mid1 1 "$dir" "$ref_par"
grep -q 'is complete, reusing it' "$RL_WORK/mid1-resume.out" || fail "mid1-resume: capture redone"

echo "== SIGTERM during block 1's setup (scales, exponent search), 1 rank"
dir=$RL_WORK/setup1
args_for "$dir"
RL_HOLD=setup:0001 # after the setup's first matrix
rl_start setup1 1 "${ARGS[@]}"
rl_wait_held setup:0001
rl_signal TERM 0
rl_finish
expect_stopped "$dir"
[ -e "$dir/state/block-0001.h5" ] && fail "setup1: a state file for a block stopped in its setup"
[ "$(rl_count "$dir/done")" = 1 ] || fail "setup1: $(rl_count "$dir/done") blocks done, expected 1"
resume_and_compare setup1 1 "$dir" "$ref_par"

echo "== SIGTERM to both ranks in the middle of blocks 0 and 1, 2 ranks"
dir=$RL_WORK/mid2
args_for "$dir"
RL_HOLD=state-saved:0000,state-saved:0001
rl_start mid2 2 "${ARGS[@]}"
rl_freeze_when_saved "$dir" 0000 0
rl_freeze_when_saved "$dir" 0001 1
rl_signal TERM 0 1
rl_finish
expect_stopped "$dir"
[ "$(rl_count "$dir/state")" -ge 1 ] || fail "mid2: no state file after a stop mid-block"
expect_valid_states "$dir"
resume_and_compare mid2 2 "$dir" "$ref_par"

echo "== SIGTERM to rank 1 only in the middle of block 1, sequential mode, 2 ranks"
dir=$RL_WORK/seq2
args_for "$dir" --set reconstruction.mode=sequential
RL_HOLD=state-saved:0001
rl_start seq2 2 "${ARGS[@]}"
rl_freeze_when_saved "$dir" 0001 0 # the group's leader; rank 1 waits for it in the gradient sum
rl_signal TERM 1 # rank 0 (the leader, which saves) learns it in the gradient group
rl_finish
expect_stopped "$dir"
[ "$(rl_count "$dir/state")" = 1 ] || fail "seq2: expected one state file"
expect_valid_states "$dir"
resume_and_compare seq2 2 "$dir" "$ref_seq"

# ------------------------------------------------------------------ between blocks
echo "== SIGTERM right after block 1 is done (the second block), 1 rank"
dir=$RL_WORK/between1
args_for "$dir"
RL_HOLD=done:0001
rl_start between1 1 "${ARGS[@]}"
rl_wait_held done:0001
rl_signal TERM 0
rl_finish
expect_stopped "$dir"
n=$(rl_count "$dir/done")
[ "$n" = 2 ] || fail "between1: $n blocks done, expected 2 (blocks 0 and 1)"
resume_and_compare between1 1 "$dir" "$ref_par"

echo "== SIGUSR1 to mpirun (forwarded to the ranks) right after a block is done, 2 ranks"
dir=$RL_WORK/between2
args_for "$dir"
RL_HOLD=done:0000
rl_start between2 2 "${ARGS[@]}"
rl_wait_held done:0000
RL_SIGNAL_TIME=$(rl_now)
kill -USR1 "$RL_PID" || fail "kill -USR1 mpirun"
rl_release
rl_finish
expect_stopped "$dir"
grep -q 'stopped on signal 10' "$RL_WORK/between2.out" || fail "between2: not stopped by SIGUSR1"
n=$(rl_count "$dir/done")
[ "$n" -ge 1 ] && [ "$n" -lt 5 ] || fail "between2: $n blocks done, expected 1..4"
resume_and_compare between2 2 "$dir" "$ref_par"

# ------------------------------------------------------------------ at the gather
# 1 rank: every block is done and root assembles the checkpoint; the stop lands between
# two of its blocks (held before block 2): the temporary checkpoint is removed, the done
# files stay, exit 75, and the re-run assembles the checkpoint from them.
echo "== SIGTERM while root assembles the checkpoint, 1 rank"
dir=$RL_WORK/gather1
args_for "$dir"
RL_HOLD=checkpoint:0002
rl_start gather1 1 "${ARGS[@]}"
rl_wait_held checkpoint:0002
rl_signal TERM 0
rl_finish
expect_stopped "$dir"
[ "$(rl_count "$dir/done")" = 5 ] || fail "gather1: $(rl_count "$dir/done") done files, expected 5"
compgen -G "$dir/.checkpoint.h5.tmp*" >/dev/null && fail "gather1: temporary checkpoint left behind"
resume_and_compare gather1 1 "$dir" "$ref_par"

# 2 ranks: groups take blocks round-robin (group 0: 0 2 4, group 1: 1 3). Rank 1 is frozen
# (SIGSTOP) on its last block, so root finishes block 4 and then only gathers: it waits
# for rank 1's block 3. The stop reaches root there; rank 1, thawed, saves block 3.
echo "== SIGTERM while root waits in the gather for rank 1's last block, 2 ranks"
dir=$RL_WORK/gather2
args_for "$dir"
RL_HOLD=state-saved:0003
rl_start gather2 2 "${ARGS[@]}"
rl_freeze_when_saved "$dir" 0003 1
rl_wait_lines "$dir/progress.log" ' block 4 done' 1
rl_signal TERM 0 1
rl_finish
expect_stopped "$dir"
[ "$(rl_count "$dir/done")" = 4 ] || fail "gather2: $(rl_count "$dir/done") done files, expected 4"
[ -e "$dir/state/block-0003.h5" ] || fail "gather2: no state file for block 3"
expect_valid_states "$dir"
resume_and_compare gather2 2 "$dir" "$ref_par"

echo "stop latency, bundled model, 1 rank, mid-block: signal to rank exit $stop_rank_bundled s," \
  "to mpirun exit $stop_seconds_bundled s"
echo "PASS: test_resume_stop ($(rl_seconds_since "$t_start") s)"
