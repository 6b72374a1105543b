#!/bin/bash
# tests/test_slurm_smoke.sh: a real single-node SLURM (slurm/testlib.sh) runs real MPI
# steps, and slurm/nupes.sbatch stops, requeues and resumes jobs as docs/design.md 6
# says. nupes-mpi itself is stood in for by tests/slurm/mpi_stopper.c (an MPI program that
# exits 75 on TERM/USR1 and 0 once restarted) and by a shell step with a chosen exit code,
# so this tests the cluster and the batch script; tests/test_slurm_resume.sh runs the real
# quantization. Needs root (SlurmUser=root). About 40 s.
set -u

src=${NUPES_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/slurm/testlib.sh"
sbatch_script=$NUPES_SBATCH

work=$(mktemp -d /tmp/nupes-slurm-smoke.XXXXXX) || exit 1
cluster=$work/cluster
jobs=$work/jobs
mkdir -p "$jobs" "$work/bin"
failed=0

cleanup() {
  local rc=$?
  [ "$failed" = 1 ] && rc=1
  if ! cluster_down "$cluster"; then
    echo "FAIL: cluster_down left processes behind"
    rc=1
  fi
  if [ "$rc" != 0 ]; then
    echo "---- logs of $work (kept for inspection)"
    tail -n 30 "$cluster"/log/*.log "$jobs"/*.out 2>/dev/null
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  failed=1
  exit 1
}

# Fails unless FILE has exactly COUNT lines matching the regex.
expect_lines() {
  local file=$1 regex=$2 want=$3 got
  got=$(grep -cE -- "$regex" "$file")
  [ "$got" = "$want" ] || fail "$file: $got lines match '$regex', expected $want"
}

expect_field() {
  local job=$1 key=$2 want=$3 got
  got=$(job_field "$job" "$key")
  [ "$got" = "$want" ] || fail "job $job: $key=$got, expected $want"
}

wait_for_lines() { wait_for_match "$@" || fail "waiting for $2 in $1"; }

# Submits nupes.sbatch (extra sbatch options first, then "--", then the script's args);
# prints the job id.
submit() {
  local opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  timeout 30 sbatch --parsable -D "$jobs" -o "$jobs/%j.out" "${opts[@]}" \
    "$sbatch_script" "$@" || fail "sbatch ${opts[*]} failed"
}

# ------------------------------------------------------------------ the stand-ins
mpicc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
  -o "$work/bin/mpi_stopper" "$src/tests/slurm/mpi_stopper.c" || fail "mpicc mpi_stopper.c"
stopper=$work/bin/mpi_stopper

# A step that exits $STEP_FIRST_EXIT on the first run and 0 once requeued.
cat >"$work/bin/step_exit.sh" <<'EOF'
#!/bin/bash
echo "step task $SLURM_PROCID restart ${SLURM_RESTART_COUNT:-none} args: $*"
[ "${SLURM_RESTART_COUNT:-0}" -ge 1 ] && exit 0
exit "$STEP_FIRST_EXIT"
EOF
chmod +x "$work/bin/step_exit.sh"

# ------------------------------------------------------------------ cluster
t0=$(date +%s)
cluster_up "$cluster" || fail "cluster_up"

# ------------------------------------------------------------------ srun + PMIx
echo "== srun launches MPI ranks through PMIx"
timeout 60 srun --overcommit -n 2 "$stopper" --hello >"$work/hello2.txt" 2>&1 ||
  fail "srun -n 2: $(cat "$work/hello2.txt")"
expect_lines "$work/hello2.txt" '^rank 0 of 2 restart 0$' 1
expect_lines "$work/hello2.txt" '^rank 1 of 2 restart 0$' 1
# 3 ranks on 2 CPUs: without --overcommit this srun would wait forever.
timeout 60 srun --overcommit -n 3 "$stopper" --hello >"$work/hello3.txt" 2>&1 ||
  fail "srun --overcommit -n 3: $(cat "$work/hello3.txt")"
expect_lines "$work/hello3.txt" '^rank [012] of 3 restart 0$' 3
timeout 60 srun -n 1 "${NUPES_BIN:?NUPES_BIN must name the nupes-mpi executable}" --version \
  >"$work/version.txt" 2>&1 || fail "srun nupes-mpi --version: $(cat "$work/version.txt")"
expect_lines "$work/version.txt" '^nupes-mpi [0-9]' 1

# ------------------------------------------------------------------ exit codes
echo "== nupes.sbatch: exit 75 requeues, the restart resumes and sbatch --wait gets 0"
STEP_FIRST_EXIT=75 NUPES_BIN=$work/bin/step_exit.sh timeout 60 sbatch --wait -D "$jobs" \
  -o "$jobs/%j.out" -n 2 "$sbatch_script" cfg.toml --extra-arg >"$work/sb75.txt"
rc=$?
[ "$rc" = 0 ] || fail "sbatch --wait of a job requeued after exit 75 returned $rc, expected 0"
job=$(sed -n 's/^Submitted batch job \([0-9]*\)$/\1/p' "$work/sb75.txt")
log=$jobs/$job.out
expect_field "$job" JobState COMPLETED
expect_field "$job" Restarts 1
expect_lines "$log" "nupes.sbatch: .* job $job restart 0, 2 tasks" 1
expect_lines "$log" "nupes.sbatch: .* job $job restart 1, 2 tasks" 1
expect_lines "$log" '^step task [01] restart none args: --config cfg.toml --extra-arg$' 2
expect_lines "$log" '^step task [01] restart 1 args: --config cfg.toml --extra-arg$' 2
expect_lines "$log" "stopped and resumable: requeued job $job\$" 1
expect_lines "$log" 'step exited 75$' 1
expect_lines "$log" 'step exited 0$' 1

echo "== nupes.sbatch: exit 2 (bad input) is the job's exit code, no requeue; NUPES_SRUN_ARGS"
STEP_FIRST_EXIT=2 NUPES_BIN=$work/bin/step_exit.sh NUPES_SRUN_ARGS="--label --overcommit" \
  timeout 60 sbatch --wait -D "$jobs" -o "$jobs/%j.out" -n 1 "$sbatch_script" bad.toml \
  >"$work/sb2.txt"
rc=$?
[ "$rc" = 2 ] || fail "sbatch --wait of a step exiting 2 returned $rc, expected 2"
job=$(sed -n 's/^Submitted batch job \([0-9]*\)$/\1/p' "$work/sb2.txt")
expect_field "$job" JobState FAILED
expect_field "$job" ExitCode 2:0
expect_field "$job" Restarts 0
expect_lines "$jobs/$job.out" '^0: step task 0 restart none args: --config bad.toml$' 1
expect_lines "$jobs/$job.out" 'step exited 2$' 1

# ------------------------------------------------------------------ warning signal
echo "== USR1 to the batch shell (as --signal=B:USR1@300 sends it) reaches every rank"
job=$(submit -n 2 --export=ALL,NUPES_BIN="$stopper",STOPPER_SAVE_SECONDS=1 -- cfg.toml)
log=$jobs/$job.out
wait_for_lines "$log" '^rank [01] ready$' 2
timeout 10 scancel --signal=USR1 --batch "$job" || fail "scancel --signal=USR1 --batch $job"
wait_for_job_state "$job" COMPLETED 60 || fail "job $job did not complete after USR1"
expect_field "$job" Restarts 1
expect_lines "$log" 'USR1: asking the step to stop' 1
expect_lines "$log" '^rank [01] stopped by signal 10$' 2
expect_lines "$log" '^rank [01] saved$' 2
expect_lines "$log" 'step exited 75$' 1
expect_lines "$log" "stopped and resumable: requeued job $job\$" 1
expect_lines "$log" '^rank [01] of 2 restart 1$' 2
expect_lines "$log" 'step exited 0$' 1

# ------------------------------------------------------------------ preemption
echo "== a job in partition high preempts (requeues) a running job in partition low"
low=$(submit -p low -n 2 --export=ALL,NUPES_BIN="$stopper",STOPPER_SAVE_SECONDS=2 -- cfg.toml)
log=$jobs/$low.out
wait_for_lines "$log" '^rank [01] ready$' 2
high=$(preempt_job "$low") || fail "preempt_job $low"
wait_for_job_state "$low" COMPLETED 60 || fail "preempted job $low did not complete"
expect_field "$low" Restarts 1
expect_field "$low" Partition low
expect_lines "$cluster/log/preemptor-$high.out" "^preemptor job $high ran\$" 1
grep -q "preempted JobId=$low has been requeued to reclaim resources for JobId=$high" \
  "$cluster/log/slurmctld.log" || fail "slurmctld.log does not show job $low preempted by $high"
# SIGTERM to the step, a 2 s save that srun's "forcing job termination" does not cut
# short, exit 75, and no requeue by the script (SLURM requeues a preempted job itself).
expect_lines "$log" '^rank [01] stopped by signal 15$' 2
expect_lines "$log" '^rank [01] saved$' 2
expect_lines "$log" 'step exited 75$' 1
expect_lines "$log" 'stopped by SLURM; SLURM decides' 1
expect_lines "$log" 'requeued job' 0
expect_lines "$log" '^rank [01] of 2 restart 1$' 2
high_start=$(job_field "$high" StartTime)
low_start=$(job_field "$low" StartTime)
[[ $high_start < $low_start || $high_start == "$low_start" ]] ||
  fail "preempted job restarted at $low_start, before the high job started at $high_start"

# ------------------------------------------------------------------ cancel
echo "== scancel: the step exits 75 but a cancelled job stays cancelled"
job=$(submit -n 2 --export=ALL,NUPES_BIN="$stopper" -- cfg.toml)
log=$jobs/$job.out
wait_for_lines "$log" '^rank [01] ready$' 2
timeout 10 scancel "$job" || fail "scancel $job"
wait_for_lines "$log" 'stopped by SLURM; SLURM decides' 1
wait_for_job_state "$job" CANCELLED 30 || fail "cancelled job $job is not CANCELLED"
sleep 3  # a requeue would show by now (cred_expire=5 only delays the start)
expect_field "$job" JobState CANCELLED
expect_field "$job" Restarts 0
expect_lines "$log" '^rank [01] stopped by signal 15$' 2

echo "PASS: test_slurm_smoke ($(($(date +%s) - t0)) s)"
