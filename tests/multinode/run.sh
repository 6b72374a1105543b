#!/bin/bash
# tests/multinode/run.sh: the real quantization on a real 3-node SLURM on this one
# machine (slurm/multinode.sh): every node is a network namespace with its own address,
# host name and slurmd; Open MPI talks TCP between the nodes (btl tcp,self on the nodes'
# subnet, no shared memory), and the run directory is on /tmp, which every node shares.
#  0. `sbatch --cpus-per-task=2 slurm/nupes.sbatch`: each task gets OPENBLAS_NUM_THREADS=2.
#  1. `srun -N 2` of nupes-mpi across two nodes: codes identical to a one-node mpirun run.
#  2. `sbatch -N 2 slurm/nupes.sbatch` on node1+node2, preempted by a job of partition
#     high that needs node1: SLURM requeues it, it resumes on node2+node3 (rank 0 now on
#     node2, rank 1 on node3), identical codes.
#  3. the same job on node1+node2, node2 lost (SIGKILL to every process of that node:
#     slurmd, slurmstepd, its rank): SLURM ends the step, marks node2 DOWN and requeues
#     the job (nupes.sbatch asks --requeue), which resumes on node1+node3; identical codes.
#  4. a --no-requeue job on node1+node3, node3 lost: the job ends NODE_FAIL; resubmitted
#     on the one node left (2 ranks on node1), it resumes; identical codes.
# Needs root (namespaces, SlurmUser=root). Run it with scripts/multinode_test.sh (which
# gives it ctest's environment): 2.5-3 minutes in the release build, 6 under ASan, so it
# is not in CI (a tests/test_slurm_*.sh name would put it there).
set -u
src=${NUPES_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$src/tests/resume_lib.sh"
. "$src/slurm/testlib.sh"
. "$src/slurm/multinode.sh"
t_start=$(rl_now)
cluster=$RL_WORK/cluster
jobs=$RL_WORK/jobs
mkdir -p "$jobs"

mn_cleanup() {
  local rc=$?
  if ! mn_cluster_down "$cluster"; then
    echo "FAIL: mn_cluster_down left processes behind"
    rl_failed=1
  fi
  if [ "$rc" != 0 ] || [ "$rl_failed" = 1 ]; then
    echo "---- job and daemon logs"
    tail -n 40 "$jobs"/*.out 2>/dev/null
    tail -n 30 "$cluster"/log/slurmctld.log 2>/dev/null
  fi
  (exit "$rc")
  rl_cleanup
}
trap mn_cleanup EXIT

# Blocks 3x longer than in the one-node resume tests: signals cross more daemons here.
LONGER=(--set reconstruction.iterations=300)

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
# Rank 1 holds in block 1 right after its first state save (test_hold, as RL_HOLD does in
# the one-node tests) until the test releases it or a signal stops it: waiting for the
# state file instead raced the block, whose 300 steps take about a second on a fast
# machine. The hold directory DIR.hold is on /tmp, which every node shares; a job
# resubmitted for the same DIR finds it released (release_holds) and does not hold.
submit() {
  local opts=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  job_args_for "$2"
  mkdir -p "$2.hold"
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" NUPES_BIN=$NUPES_BIN \
    NUPES_TEST_HOLD=state-saved:0001 NUPES_TEST_HOLD_DIR="$2.hold" \
    timeout 30 sbatch --parsable -D "$jobs" -o "$jobs/%j.out" "${opts[@]}" \
    "$NUPES_SBATCH" "$CONFIG" "${ARGS[@]}" || fail "sbatch ${opts[*]}"
}

# Waits until rank 1 of the job in DIR holds after its first state save of block 1.
wait_saved() { RL_HOLD_DIR=$1.hold RL_NAME=$1 rl_freeze_when_saved "$1" 0001 1; }

# Lets every later hold of the job in DIR (the requeued or resubmitted run's) go on.
release_holds() { : >"$1.hold/release.all"; }

# The node (1..3) whose namespace runs world rank RANK of nupes-mpi; empty if none yet.
rank_node() {
  local rank=$1 i p
  for ((i = 1; i <= 3; i++)); do
    for p in $(mn_node_pids "$cluster" "$i"); do
      [ "$(cat "/proc/$p/comm" 2>/dev/null)" = nupes-mpi ] || continue
      if tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qx "SLURM_PROCID=$rank"; then
        echo "$i"
        return 0
      fi
    done
  done
}

# Waits until ranks 0 and 1 run on nodes A and B (named event: the processes exist there).
wait_ranks_on() {
  local a=$1 b=$2 i
  for ((i = 0; i < RL_TIMEOUT * 5; i++)); do
    [ "$(rank_node 0)" = "$a" ] && [ "$(rank_node 1)" = "$b" ] && return 0
    sleep 0.2
  done
  fail "ranks 0 and 1 not on node$a and node$b (now: node$(rank_node 0) and node$(rank_node 1))"
}

# ------------------------------------------------------------------ reference
echo "== uninterrupted reference run (mpirun, 2 ranks, one node, shared memory)"
mapfile -t REF_ARGS < <(rl_job_args "$RL_WORK/ref")
REF_ARGS+=("${LONGER[@]}")
rl_run ref 2 "${REF_ARGS[@]}"
rl_expect_rc 0
ref=$RL_WORK/ref/checkpoint.h5

mn_cluster_up "$cluster" 3 || fail "mn_cluster_up"
t_cluster=$(rl_now)
# Open MPI between the nodes: TCP on the cluster's subnet only, no shared memory.
export OMPI_MCA_btl=tcp,self
OMPI_MCA_btl_tcp_if_include=$(MN_DIR=$cluster mn_subnet)
export OMPI_MCA_btl_tcp_if_include

# ------------------------------------------------------------------ threads per task
echo "== nupes.sbatch --cpus-per-task=2: every task runs OPENBLAS_NUM_THREADS=2 threads"
printf '%s\n' '#!/bin/bash' \
  'echo "task $SLURM_PROCID on $(hostname) OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS cpus ${SLURM_CPUS_PER_TASK:-unset}"' \
  >"$RL_WORK/threads.sh"
chmod +x "$RL_WORK/threads.sh"
job=$(NUPES_BIN=$RL_WORK/threads.sh timeout 30 sbatch --parsable -D "$jobs" -o "$jobs/%j.out" -N 2 \
  --ntasks-per-node=1 --cpus-per-task=2 "$NUPES_SBATCH" cfg.toml) || fail "sbatch --cpus-per-task=2"
wait_for_job_state "$job" COMPLETED "$RL_TIMEOUT" || fail "threads job $job did not complete"
expect_lines "$jobs/$job.out" 'threads per task: OPENBLAS_NUM_THREADS=2 \(--cpus-per-task\)' 1
expect_lines "$jobs/$job.out" '^task 0 on node1 OPENBLAS_NUM_THREADS=2 cpus 2$' 1
expect_lines "$jobs/$job.out" '^task 1 on node2 OPENBLAS_NUM_THREADS=2 cpus 2$' 1
rl_log "  job $job: both tasks (node1, node2) got OPENBLAS_NUM_THREADS=2 and 2 CPUs"

# ------------------------------------------------------------------ srun
echo "== srun -N 2: one rank on each of node1 and node2, MPI over TCP"
bytes1=$(mn_node_bytes "$cluster" 1)
bytes2=$(mn_node_bytes "$cluster" 2)
job_args_for "$RL_WORK/srun"
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" timeout 300 \
  srun -N 2 --ntasks-per-node=1 -w node1,node2 "$NUPES_BIN" --config "$CONFIG" "${ARGS[@]}" \
  >"$jobs/srun.out" 2>&1 || fail "srun -N 2 nupes-mpi: exit $? (see $jobs/srun.out)"
sent1=$(($(mn_node_bytes "$cluster" 1) - bytes1))
sent2=$(($(mn_node_bytes "$cluster" 2) - bytes2))
rl_same_codes "$ref" "$RL_WORK/srun/checkpoint.h5"
# The gather alone moves every block of rank 1 (node2) to rank 0 (node1): > 100 kB.
[ "$sent2" -gt 100000 ] || fail "only $sent2 bytes crossed node2's link"
rl_log "  srun -N 2: identical codes; $sent1 bytes on node1's link, $sent2 on node2's"

# ------------------------------------------------------------------ preemption
echo "== sbatch -N 2: preempted on node1+node2, requeued by SLURM, resumed on node2+node3"
dir=$RL_WORK/preempt
low=$(submit -p low -N 2 --ntasks-per-node=1 -- "$dir")
log=$jobs/$low.out
wait_ranks_on 1 2
wait_saved "$dir" # both ranks are in their first block, rank 1 has saved and holds there
# The preemptor needs node1 and holds it until released, so the requeued job must move.
release=$RL_WORK/release-preemptor
high=$(timeout 30 sbatch --parsable -p high -w node1 --exclusive -J preemptor -D "$jobs" \
  -o "$jobs/preemptor-%j.out" \
  --wrap "while [ ! -e $release ]; do sleep 0.2; done; echo preemptor \$SLURM_JOB_ID done") ||
  fail "sbatch preemptor"
wait_for_job_state "$high" RUNNING "$RL_TIMEOUT" || fail "preemptor $high did not run"
release_holds "$dir"
wait_ranks_on 2 3
touch "$release"
wait_for_job_state "$low" COMPLETED "$RL_TIMEOUT" || fail "preempted job $low did not complete"
expect_field "$low" Restarts 1
expect_field "$low" ExitCode 0:0
expect_field "$low" NodeList 'node[2-3]'
grep -q "preempted JobId=$low has been requeued to reclaim resources for JobId=$high" \
  "$cluster/log/slurmctld.log" || fail "slurmctld.log does not show job $low preempted by $high"
expect_lines "$log" "nupes.sbatch: .* job $low restart 0, 2 tasks on node\[1-2\]" 1
expect_lines "$log" "nupes.sbatch: .* job $low restart 1, 2 tasks on node\[2-3\]" 1
expect_lines "$log" '^stopped on signal 15: state saved' 1
expect_lines "$log" 'step exited 75$' 1
expect_lines "$log" "^run: $dir \\(resumed\\)" 1
expect_lines "$log" 'step exited 0$' 1
rl_same_codes "$ref" "$dir/checkpoint.h5"
rl_log "  job $low: ranks 0,1 on node1,node2; preempted by job $high; requeued (Restarts 1);" \
  "resumed with ranks 0,1 on node2,node3; identical codes"

# ------------------------------------------------------------------ a lost node
# A node is lost: SIGKILL to every process in its namespace (its slurmd, slurmstepd and
# rank), as a power cut would. The rank on the other node loses its TCP peer; SLURM marks
# the node DOWN after SlurmdTimeout and ends the job NODE_FAIL.
lose_node_of() {
  local job=$1 node=$2 dir=$3 t0
  wait_saved "$dir"
  t0=$(rl_now)
  mn_node_lose "$cluster" "$node" || fail "mn_node_lose node$node"
  release_holds "$dir"
  LOST_T0=$t0
}

echo "== sbatch -N 2 (nupes.sbatch as shipped, --requeue) on node1+node2; node2 is lost;" \
  "SLURM requeues the job, it resumes on node1+node3"
dir=$RL_WORK/lost
job=$(submit -N 2 --ntasks-per-node=1 -- "$dir")
wait_ranks_on 1 2
lose_node_of "$job" 2 "$dir"
wait_ranks_on 1 3
rl_log "  job $job: node2 lost; requeued and running on node1,node3 $(rl_seconds_since "$LOST_T0") s later"
wait_for_job_state "$job" COMPLETED "$RL_TIMEOUT" || fail "requeued job $job did not complete"
expect_field "$job" Restarts 1
expect_field "$job" NodeList 'node[1,3]'
expect_lines "$jobs/$job.out" "^run: $dir \\(resumed\\)" 1
rl_same_codes "$ref" "$dir/checkpoint.h5"
rl_log "  job $job: resumed on node1,node3, identical codes"

echo "== sbatch -N 2 --no-requeue on node1+node3; node3 is lost; the job fails;" \
  "resubmitted on the one node left (2 ranks on node1), it resumes"
dir=$RL_WORK/resubmit
first=$(submit -N 2 --ntasks-per-node=1 --no-requeue -- "$dir")
wait_ranks_on 1 3
lose_node_of "$first" 3 "$dir"
wait_for_job_gone "$first" "$RL_TIMEOUT" || fail "job $first still running after node3 was lost"
rl_log "  job $first: node3 lost; job ended $(job_field "$first" JobState)" \
  "(reason $(job_field "$first" Reason)) $(rl_seconds_since "$LOST_T0") s later"
[ -e "$dir/checkpoint.h5" ] && fail "job $first wrote a checkpoint although node3 was lost"
second=$(submit -N 1 -n 2 -- "$dir")
wait_for_job_state "$second" COMPLETED "$RL_TIMEOUT" || fail "resubmitted job $second did not complete"
expect_field "$second" NodeList node1
expect_lines "$jobs/$second.out" "^run: $dir \\(resumed\\)" 1
rl_same_codes "$ref" "$dir/checkpoint.h5"
rl_log "  job $second: resubmitted on node1 alone, resumed, identical codes"

echo "PASS: tests/multinode/run.sh ($(rl_seconds_since "$t_start") s, of which SLURM" \
  "$(rl_seconds_since "$t_cluster") s)"
