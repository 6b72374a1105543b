#!/bin/bash
# tests/test_slurm_resume.sh: the real quantization under a real single-node SLURM
# (slurm/testlib.sh), through slurm/nupes.sbatch (srun nupes-mpi on 2 tasks):
#  - `scancel --signal=USR1 --batch` in the middle of the job: the batch script forwards
#    USR1 to the step, the ranks save and exit 75, the script requeues the job, and the
#    restarted job (SLURM_RESTART_COUNT=1) resumes and completes;
#  - a job of partition low preempted by a job of partition high (PreemptMode=REQUEUE):
#    SIGTERM to the step, exit 75, SLURM requeues it, and it resumes after the high job.
# Both checkpoints have codes identical to an uninterrupted run (compare_checkpoints), and
# the job logs show each restart. Needs root (SlurmUser=root). About a minute.
set -u
src=${NUPES_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/tests/resume_lib.sh"
. "$src/slurm/testlib.sh"
t_start=$(rl_now)
cluster=$RL_WORK/cluster
jobs=$RL_WORK/jobs
mkdir -p "$jobs"

slurm_cleanup() {
  local rc=$?
  if ! cluster_down "$cluster"; then
    echo "FAIL: cluster_down left processes behind"
    rl_failed=1
  fi
  if [ "$rc" != 0 ] || [ "$rl_failed" = 1 ]; then
    echo "---- job and daemon logs"
    tail -n 40 "$jobs"/*.out 2>/dev/null
    tail -n 20 "$cluster"/log/slurmctld.log 2>/dev/null
  fi
  (exit "$rc")
  rl_cleanup
}
trap slurm_cleanup EXIT

# The signal travels scancel -> slurmctld -> slurmd -> batch script -> srun -> tasks, which
# can take a second on a loaded machine: blocks 3x longer than in the other resume tests
# keep the job running until it arrives.
LONGER=(--set reconstruction.iterations=300)

# The job's arguments after CONFIG (nupes.sbatch puts --config CONFIG first).
job_args_for() {
  local a
  mapfile -t a < <(rl_job_args "$1")
  CONFIG=${a[1]}
  ARGS=("${a[@]:2}" "${LONGER[@]}")
}

expect_lines() {
  local file=$1 regex=$2 want=$3 got
  got=$(grep -cE -- "$regex" "$file")
  [ "$got" = "$want" ] || fail "$file: $got lines match '$regex', expected $want"
}

expect_field() {
  local got
  got=$(job_field "$1" "$2")
  [ "$got" = "$3" ] || fail "job $1: $2=$got, expected $3"
}

# Submits nupes.sbatch with sbatch OPTIONS (before --) for run directory DIR; prints the id.
# The tasks inherit this environment (OPENBLAS_NUM_THREADS, HDF5_PLUGIN_PATH, ...);
# under ASan the job gets no leak check, as in rl_start.
submit() {
  local opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  job_args_for "$2"
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" NUPES_BIN=$NUPES_BIN \
    timeout 30 sbatch --parsable -D "$jobs" -o "$jobs/%j.out" "${opts[@]}" \
    "$NUPES_SBATCH" "$CONFIG" "${ARGS[@]}" || fail "sbatch ${opts[*]}"
}

# ------------------------------------------------------------------ reference
echo "== uninterrupted reference run (mpirun, 2 ranks)"
mapfile -t REF_ARGS < <(rl_job_args "$RL_WORK/ref")
REF_ARGS+=("${LONGER[@]}")
rl_run ref 2 "${REF_ARGS[@]}"
rl_expect_rc 0
ref=$RL_WORK/ref/checkpoint.h5

cluster_up "$cluster" || fail "cluster_up"
t_cluster=$(rl_now)

# ------------------------------------------------------------------ USR1 + own requeue
echo "== scancel --signal=USR1 --batch: the job stops, requeues itself and completes"
dir=$RL_WORK/usr1
# The tasks inherit the hold (mpi/test_hold.h): block 1's rank holds after its first state
# save until the signal has been sent, so the job is certainly mid-block.
RL_HOLD_DIR=$RL_WORK/hold-usr1
mkdir -p "$RL_HOLD_DIR"
job=$(NUPES_TEST_HOLD=state-saved:0001 NUPES_TEST_HOLD_DIR=$RL_HOLD_DIR submit -n 2 -- "$dir")
log=$jobs/$job.out
rl_wait_held state-saved:0001
timeout 10 scancel --signal=USR1 --batch "$job" || fail "scancel --signal=USR1 --batch $job"
rl_release
wait_for_job_state "$job" COMPLETED 240 || fail "job $job did not complete after USR1"
expect_field "$job" Restarts 1
expect_field "$job" ExitCode 0:0
expect_lines "$log" "nupes.sbatch: .* job $job restart 0, 2 tasks" 1
expect_lines "$log" "nupes.sbatch: .* job $job restart 1, 2 tasks" 1
expect_lines "$log" 'USR1: asking the step to stop' 1
expect_lines "$log" '^stopped on signal 10: state saved' 1
expect_lines "$log" 'step exited 75$' 1
expect_lines "$log" "stopped and resumable: requeued job $job\$" 1
expect_lines "$log" "^run: $dir \\(resumed\\)" 1
expect_lines "$log" 'step exited 0$' 1
expect_lines "$dir/progress.log" 'stopped \(signal 10\): state saved, exit 75' 1
rl_same_codes "$ref" "$dir/checkpoint.h5"
rl_log "  job $job: stopped, requeued (Restarts 1), resumed, identical codes"

# ------------------------------------------------------------------ preemption
echo "== preemption: a job in partition high requeues the running job in partition low"
dir=$RL_WORK/preempt
RL_HOLD_DIR=$RL_WORK/hold-preempt
mkdir -p "$RL_HOLD_DIR"
low=$(NUPES_TEST_HOLD=state-saved:0001 NUPES_TEST_HOLD_DIR=$RL_HOLD_DIR submit -p low -n 2 -- "$dir")
log=$jobs/$low.out
rl_wait_held state-saved:0001
high=$(preempt_job "$low" 240) || fail "preempt_job $low"
rl_release
wait_for_job_state "$low" COMPLETED 240 || fail "preempted job $low did not complete"
expect_field "$low" Restarts 1
expect_field "$low" Partition low
expect_field "$low" ExitCode 0:0
grep -q "preempted JobId=$low has been requeued to reclaim resources for JobId=$high" \
  "$cluster/log/slurmctld.log" || fail "slurmctld.log does not show job $low preempted by $high"
expect_lines "$log" "nupes.sbatch: .* job $low restart 1, 2 tasks" 1
expect_lines "$log" '^stopped on signal 15: state saved' 1
expect_lines "$log" 'step exited 75$' 1
expect_lines "$log" 'stopped by SLURM; SLURM decides' 1
expect_lines "$log" 'requeued job' 0
expect_lines "$log" "^run: $dir \\(resumed\\)" 1
expect_lines "$log" 'step exited 0$' 1
rl_same_codes "$ref" "$dir/checkpoint.h5"
rl_log "  job $low: preempted by job $high, requeued by SLURM (Restarts 1), resumed, identical codes"

echo "PASS: test_slurm_resume ($(rl_seconds_since "$t_start") s, of which SLURM" \
  "$(rl_seconds_since "$t_cluster") s)"
