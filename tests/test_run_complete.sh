#!/usr/bin/env bash
# Every artifact of a run directory is complete or absent, and a resume reuses every
# complete one (io/run_dir.h):
#  - a rank killed after capture finished (block 0 already training: root held after its
#    first state save): the re-run reuses activations.h5 ("is complete, reusing
#    it", no capture line) and ends with the codes of an uninterrupted run;
#  - a capture killed after level K (activations.h5.partial with levels_done = K; levels K..
#    overwritten with NaN by tests/tools/make_partial_capture, so reusing them would fail):
#    the re-run resumes at level K ("resuming at level 3") on 3 ranks, renames the file to
#    activations.h5, and ends with the codes of an uninterrupted 2-rank run;
#  - inspect during a run says which phase it is in and shows the running block with its
#    step, not as pending.
set -u
# shellcheck source=tests/resume_lib.sh
source "$(dirname "$0")/resume_lib.sh"
# shellcheck source=tests/runlock_lib.sh
source "$(dirname "$0")/runlock_lib.sh"
W=$RL_WORK

echo "== reference: an uninterrupted run on 2 ranks"
mapfile -t REF < <(rl_job_args "$W/ref")
rl_run ref 2 "${REF[@]}"
rl_expect_rc 0

echo "== a rank killed after capture: the capture is reused"
dir=$W/after
mapfile -t ARGS < <(rl_job_args "$dir")
RL_HOLD=state-saved:0000
rl_start after 2 "${ARGS[@]}"
rl_freeze_when_saved "$dir" 0000 0
"$NUPES_BIN" inspect "$dir" >"$W/inspect-running.out" 2>&1 || fail "inspect during the run: $(cat "$W/inspect-running.out")"
grep -qE "^  job: +running" "$W/inspect-running.out" || fail "inspect: no running job shown: $(cat "$W/inspect-running.out")"
grep -qE "^  activations: .*complete" "$W/inspect-running.out" || fail "inspect: activations not complete: $(cat "$W/inspect-running.out")"
grep -q "INCOMPLETE" "$W/inspect-running.out" && fail "inspect: says INCOMPLETE during the run"
grep -qE "block 0000 +(in progress|running)" "$W/inspect-running.out" || fail "inspect: block 0 not shown running: $(cat "$W/inspect-running.out")"
rl_log "  inspect during the run: $(grep -E '^  (job|phase):' "$W/inspect-running.out" | tr -s ' ' | paste -sd';')"
rl_signal KILL 1
rl_finish
[ "$RL_RC" = 0 ] && fail "after: exit 0 after a rank was killed"
[ -e "$dir/activations.h5" ] || fail "after: activations.h5 missing after the capture finished"
rl_run after-rerun 2 "${ARGS[@]}"
rl_expect_rc 0
grep -q "is complete, reusing it" "$W/after-rerun.out" || fail "after-rerun: the capture was not reused"
grep -q "sequences x" "$W/after-rerun.out" && fail "after-rerun: it captured again"
rl_same_codes "$W/ref/checkpoint.h5" "$dir/checkpoint.h5"
rl_log "  re-run: capture reused, codes identical"
"$NUPES_BIN" inspect "$dir" >"$W/inspect-after.out" 2>&1 || fail "inspect after the run"
grep -qE "^  job: +none running" "$W/inspect-after.out" || fail "inspect after: $(cat "$W/inspect-after.out")"

echo "== a capture stopped after its first level: resumed at level 1"
dir=$W/stopped
mapfile -t ARGS < <(rl_job_args "$dir")
RL_HOLD=capture-level # every rank holds once level 1 is written, before it is marked done
rl_start stopped 2 "${ARGS[@]}"
rl_wait_held capture-level 1
rl_signal TERM 0 1
rl_finish
rl_expect_rc 75
[ -e "$dir/activations.h5" ] && fail "stopped: activations.h5 exists although capture was stopped"
out=$("$NUPES_BIN" inspect "$dir/activations.h5.partial" 2>&1) || fail "inspect partial: $out"
[[ $out == *"INCOMPLETE: 1 of 6 levels done"* ]] || fail "inspect partial: $out"
rl_run stopped-resume 2 "${ARGS[@]}"
rl_expect_rc 0
grep -q "resuming at level 1" "$W/stopped-resume.out" || fail "stopped-resume: $(grep capture "$W/stopped-resume.out")"
rl_same_codes "$W/ref/checkpoint.h5" "$dir/checkpoint.h5"
rl_log "  stopped: $(grep -m1 'resuming at level' "$W/stopped-resume.out"); codes identical"

echo "== a capture killed after level 3: resumed at level 3"
dir=$W/partial
mkdir -p "$dir"
cp "$W/ref/run.toml" "$dir/run.toml"
"$NUPES_TOOLS_DIR/make_partial_capture" "$W/ref/activations.h5" "$dir/activations.h5.partial" 3 ||
  fail "make_partial_capture"
"$NUPES_BIN" inspect "$dir" >"$W/inspect-partial.out" 2>&1 || fail "inspect partial: $(cat "$W/inspect-partial.out")"
grep -qE "^  activations: .*3 of 6 levels" "$W/inspect-partial.out" || fail "inspect partial: $(cat "$W/inspect-partial.out")"
mapfile -t ARGS < <(rl_job_args "$dir")
rl_run partial 3 "${ARGS[@]}"
rl_expect_rc 0
grep -q "resuming at level 3" "$W/partial.out" || fail "partial: no resume at level 3: $(grep capture "$W/partial.out")"
[ -e "$dir/activations.h5.partial" ] && fail "partial: activations.h5.partial left"
rl_same_codes "$W/ref/checkpoint.h5" "$dir/checkpoint.h5"
rl_log "  $(grep -m1 'resuming at level' "$W/partial.out"); codes identical to the 2-rank reference"
echo "PASS"
