#!/usr/bin/env bash
# The run directory has one job at a time and one owner (io/run_dir.h, io/run_lock.h):
#  - a second job on a run directory whose job is alive (its root held after block 0's
#    first state save, tests/resume_lib.sh, so it certainly holds the lock however fast
#    the machine) exits 2 before touching it,
#    with one line naming the holder (host, pid = the first job's rank 0, start time); the
#    first job then finishes with codes identical to an uninterrupted run;
#  - a job whose root was killed (SIGKILL) never blocks its re-run (the kernel dropped the
#    lock), and the re-run removes every stale temporary (state, hand-on, run.toml's, the
#    checkpoint's), keeps files that are not ours, and ends identical;
#  - --restart removes the hand-ons (qinputs/): pipelined at 4 bits, then --restart at 3
#    bits gives the codes of a fresh 3-bit run;
#  - bad paths are refused up front (exit 2, nothing created): run.dir a file, output.path
#    an existing directory, output.path in a missing directory whose name starts with the
#    run.dir string.
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

echo "== two jobs on one run directory"
dir=$W/two
mapfile -t ARGS < <(rl_job_args "$dir")
RL_HOLD=state-saved:0000
rl_start first 2 "${ARGS[@]}"
rl_freeze_when_saved "$dir" 0000 0 # rank 0 (the lock holder) held mid-block
rl_rank_pid 0
holder_pid=$RL_FOUND_PID
rk_run second 2 "${ARGS[@]}"
rk_expect second 2 "run directory in use by another job \(host [^ ]+ pid $holder_pid started [0-9T:-]+Z\)"
[ "$(grep -c 'error' "$W/second.err")" = 1 ] || fail "second: more than one error line: $(cat "$W/second.err")"
grep -q "capture" "$W/second.out" && fail "second: it started work: $(cat "$W/second.out")"
rl_log "  second job: $(grep -m1 error "$W/second.err")"
rl_release
rl_finish
rl_expect_rc 0
rl_same_codes "$W/ref/checkpoint.h5" "$dir/checkpoint.h5"
rl_log "  first job: exit 0, codes identical to the reference"

echo "== a killed job never blocks its re-run; stale temporaries are swept"
dir=$W/killed
mapfile -t ARGS < <(rl_job_args "$dir")
RL_HOLD=state-saved:0000
rl_start killed 2 "${ARGS[@]}"
rl_freeze_when_saved "$dir" 0000 0
rl_signal KILL 0
rl_finish
[ "$RL_RC" = 0 ] && fail "killed: exit 0 after its root was killed"
stale=("$dir/state/.block-0003.h5.tmp.999999" "$dir/done/.block-0001.h5.tmp.4242" "$dir/qinputs/.level-0002.h5.tmp"
  "$dir/.run.toml.tmp.31337" "$dir/.checkpoint.h5.tmp.27182" "$dir/.lock.holder.tmp.1")
for f in "${stale[@]}"; do mkdir -p "$(dirname "$f")" && echo stale >"$f"; done
echo mine >"$dir/notes.txt"
echo mine >"$dir/state/.block-0003.h5.tmp.notapid"
rl_run rerun 2 "${ARGS[@]}"
rl_expect_rc 0
for f in "${stale[@]}"; do [ -e "$f" ] && fail "rerun: stale temporary $f left"; done
[ -e "$dir/notes.txt" ] && [ -e "$dir/state/.block-0003.h5.tmp.notapid" ] || fail "rerun: removed a file that is not ours"
rl_same_codes "$W/ref/checkpoint.h5" "$dir/checkpoint.h5"
rl_log "  re-run: exit 0, ${#stale[@]} stale temporaries removed, other files kept, codes identical"

echo "== --restart removes the hand-ons"
mapfile -t P4 < <(rk_args "$W/pipe" reconstruction.mode=pipelined quantization.bits=4 reconstruction.iterations=30)
rl_run pipe4 2 "${P4[@]}"
rl_expect_rc 0
[ "$(find "$W/pipe/qinputs" -name 'level-*.h5' | wc -l)" -gt 0 ] || fail "pipe4: no hand-on written"
mapfile -t P3 < <(rk_args "$W/pipe" reconstruction.mode=pipelined quantization.bits=3 reconstruction.iterations=30)
rl_run pipe3-restart 2 "${P3[@]}" --restart
rl_expect_rc 0
mapfile -t F3 < <(rk_args "$W/fresh3" reconstruction.mode=pipelined quantization.bits=3 reconstruction.iterations=30)
rl_run fresh3 2 "${F3[@]}"
rl_expect_rc 0
rl_same_codes "$W/fresh3/checkpoint.h5" "$W/pipe/checkpoint.h5"
rl_log "  pipelined 4 bits, then --restart at 3 bits: codes identical to a fresh 3-bit run"

echo "== bad paths refused up front"
: >"$W/afile"
mapfile -t A < <(rl_job_args "$W/afile")
rk_run runfile 1 "${A[@]}"
rk_expect runfile 2 "run.dir = $W/afile: exists and is not a directory"
mkdir -p "$W/outdir"
mapfile -t A < <(rk_args "$W/u1" "output.path=$W/outdir")
rk_run outisdir 1 "${A[@]}"
rk_expect outisdir 2 "output.path = $W/outdir: is a directory"
[ -e "$W/u1" ] && fail "outisdir: run.dir created"
mapfile -t A < <(rk_args "$W/u2" "output.path=$W/u2-out/checkpoint.h5")
rk_run outprefix 1 "${A[@]}"
rk_expect outprefix 2 "output.path = $W/u2-out/checkpoint.h5: directory $W/u2-out does not exist"
[ -e "$W/u2" ] && fail "outprefix: run.dir created"
rl_log "  run.dir a file, output.path a directory, output.path in a missing run.dir-prefixed directory: exit 2"
echo "PASS"
