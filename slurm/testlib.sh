# shellcheck shell=bash
# slurm/testlib.sh: a real single-node SLURM (munge, slurmctld, slurmd) for tests.
#
# Source it from bash:  . "$NUPES_SOURCE_DIR/slurm/testlib.sh"
#
#   cluster_up STATE_DIR          start munged, slurmctld, slurmd in STATE_DIR (config, keys,
#                                 spool, logs, pid files all live there); exports SLURM_CONF
#   cluster_down STATE_DIR        stop everything cluster_up started, by pid; nothing is left
#   job_field JOBID KEY           one field of `scontrol show job -o` (e.g. JobState, Restarts)
#   wait_for_job_state JOBID STATE [TIMEOUT_S]   poll until JobState matches (a regex)
#   wait_for_job_gone JOBID [TIMEOUT_S]           poll until the job is finished or purged
#   job_step_started JOBID [TIMEOUT_S]            poll until step 0 of the job runs
#   wait_for_match FILE REGEX COUNT [TIMEOUT_S]   poll until COUNT lines of FILE match
#   preempt_job JOBID [TIMEOUT_S]  preempt a running job of partition low with a job of
#                                  partition high that needs the whole node; prints the
#                                  high job's id once it has run (SLURM requeues JOBID)
#   NUPES_SBATCH                   path of slurm/nupes.sbatch
#
# No systemd: the daemons run in the foreground (-D / -F), detached with setsid, and their
# pids are recorded in STATE_DIR/pids/. Every process the cluster starts (daemons, slurmstepd,
# job tasks) carries NUPES_SLURM_STATE=STATE_DIR in its environment; cluster_down uses that
# marker to find leftovers, so it never kills anything by name and never touches another
# cluster (the ports are chosen free at start, so two clusters can run side by side).
#
# SLURM 22.05 on a 2-CPU node (TOOLCHAIN.md): `srun -n 3` waits forever unless --overcommit;
# wrap every srun/sbatch in `timeout`. There is no accounting (no sacct): use job_field.

# The daemons start within ~1 s; a node that is not idle after this many seconds is an error.
: "${NUPES_SLURM_UP_TIMEOUT:=30}"
# shellcheck disable=SC2034  # used by the scripts that source this file
NUPES_SBATCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/nupes.sbatch
# KillWait of the test cluster: a preempted or cancelled step gets SIGTERM, then SIGKILL
# this many seconds later (measured: a 4 s save survives KillWait=5, an 8 s save is killed).
: "${NUPES_SLURM_KILL_WAIT:=5}"
# Seconds a daemon gets to exit after SIGTERM before SIGKILL.
: "${NUPES_SLURM_DOWN_TIMEOUT:=15}"

slurm_log() { printf 'slurm-testlib: %s\n' "$*" >&2; }

# Seconds (one decimal) since T0, a `date +%s%N` stamp.
slurm_elapsed() {
  local ms=$((($(date +%s%N) - $1) / 1000000))
  printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

# Prints a TCP port nobody listens on (the kernel picks it; tiny race, then rechecked by bind).
slurm_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
}

# Prints the node line of `slurmd -C` with RealMemory lowered by 10% (the kernel and the
# daemons use some; a node that reports less memory than configured is drained).
slurm_node_line() {
  local line mem
  line=$(slurmd -C | head -n 1) || return 1
  mem=$(printf '%s\n' "$line" | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  [ -n "$mem" ] || { slurm_log "slurmd -C printed no RealMemory: $line"; return 1; }
  printf '%s\n' "$line" | sed "s/RealMemory=[0-9]*/RealMemory=$((mem * 9 / 10))/"
}

slurm_write_conf() {
  local dir=$1 node_line=$2 node_name=$3 host ctld_port slurmd_port
  host=$(hostname -s)
  ctld_port=$(slurm_free_port) && slurmd_port=$(slurm_free_port) || return 1
  while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(slurm_free_port) || return 1; done
  cat >"$dir/slurm.conf" <<EOF
# Written by slurm/testlib.sh: a throw-away single-node cluster for tests.
ClusterName=nupes-test
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire=5: a requeued job may start again after 5 s instead of 120 s.
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=5
# Debian's Open MPI only launches under srun with PMIx (no PMI-2 support).
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
JobRequeue=1
KillWait=$NUPES_SLURM_KILL_WAIT
MailProg=/bin/true
ReturnToService=2
MinJobAge=600
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$node_line
PartitionName=low Nodes=$node_name Default=YES PriorityTier=1 MaxTime=INFINITE State=UP
PartitionName=high Nodes=$node_name PriorityTier=10 MaxTime=INFINITE State=UP
EOF
}

# Starts "$@" detached (own session, no inherited stdio so ctest's pipes close), in the
# foreground mode of the daemon, and records its pid as STATE_DIR/pids/NAME.
slurm_spawn() {
  local dir=$1 name=$2
  shift 2
  NUPES_SLURM_STATE=$dir setsid "$@" </dev/null >>"$dir/log/$name.out" 2>&1 &
  echo $! >"$dir/pids/$name"
}

# Succeeds while PID is a live (not zombie) process.
slurm_pid_alive() {
  local state
  [ -r "/proc/$1/stat" ] || return 1
  state=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

cluster_up() {
  local dir=$1 node_line node_name t0 i state
  [ -n "$dir" ] || { slurm_log "usage: cluster_up STATE_DIR"; return 2; }
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || return 1
  if [ -e "$dir/slurm.conf" ]; then
    slurm_log "$dir already holds a cluster (slurm.conf exists); use a fresh directory"
    return 1
  fi
  t0=$(date +%s%N)
  mkdir -p "$dir"/{munge,state,spool,log,run,pids} || return 1
  chmod 700 "$dir/munge"

  # munge: a private key and socket, so nothing under /etc or /run is touched.
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none || return 1
  chmod 400 "$dir/munge/munge.key"
  slurm_spawn "$dir" munged munged -F --force --socket="$dir/munge/munge.socket" \
    --key-file="$dir/munge/munge.key" --pid-file="$dir/run/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" || return 1
  for ((i = 0; i < 100; i++)); do [ -S "$dir/munge/munge.socket" ] && break; sleep 0.1; done
  [ -S "$dir/munge/munge.socket" ] || { slurm_log "munged did not start: see $dir/log"; return 1; }

  node_line=$(slurm_node_line) || return 1
  node_name=$(printf '%s\n' "$node_line" | sed -n 's/^NodeName=\([^ ]*\).*/\1/p')
  slurm_write_conf "$dir" "$node_line" "$node_name" || return 1
  export SLURM_CONF=$dir/slurm.conf

  slurm_spawn "$dir" slurmctld slurmctld -D -i -f "$SLURM_CONF" || return 1
  slurm_spawn "$dir" slurmd slurmd -D -f "$SLURM_CONF" -N "$node_name" || return 1

  # Up means: the node is idle in both partitions and the controller answers.
  for ((i = 0; i < NUPES_SLURM_UP_TIMEOUT * 5; i++)); do
    state=$(sinfo -h -N -n "$node_name" -p low -o '%t' 2>/dev/null | head -n 1)
    [ "$state" = idle ] && break
    for name in munged slurmctld slurmd; do
      if ! slurm_pid_alive "$(cat "$dir/pids/$name")"; then
        slurm_log "$name exited during start-up; its log:"
        tail -n 20 "$dir/log/$name.log" "$dir/log/$name.out" >&2 2>/dev/null
        return 1
      fi
    done
    sleep 0.2
  done
  if [ "$state" != idle ]; then
    slurm_log "node $node_name not idle after ${NUPES_SLURM_UP_TIMEOUT}s (state '$state')"
    return 1
  fi
  slurm_log "cluster up in $(slurm_elapsed "$t0") s: $dir"
}

# Pids of every process carrying this cluster's marker (daemons, slurmstepd, job tasks).
slurm_marked_pids() {
  local dir=$1 p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = $$ ] && continue
    if grep -qzxF "NUPES_SLURM_STATE=$dir" "/proc/$p/environ" 2>/dev/null; then
      slurm_pid_alive "$p" && echo "$p"
    fi
  done
}

# Sends SIG to each pid, waits up to TIMEOUT s for all to exit, then SIGKILLs the rest.
slurm_stop_pids() {
  local sig=$1 timeout=$2 p i left
  shift 2
  [ $# -gt 0 ] || return 0
  kill "-$sig" "$@" 2>/dev/null
  for ((i = 0; i < timeout * 10; i++)); do
    left=()
    for p in "$@"; do slurm_pid_alive "$p" && left+=("$p"); done
    [ ${#left[@]} -eq 0 ] && break
    sleep 0.1
  done
  if [ ${#left[@]} -gt 0 ]; then
    slurm_log "still running after ${timeout}s, SIGKILL: ${left[*]}"
    kill -KILL "${left[@]}" 2>/dev/null
    sleep 0.2
  fi
  for p in "$@"; do wait "$p" 2>/dev/null; done  # reap the ones that are our children
  return 0
}

cluster_down() {
  local dir=$1 t0 name pid jobs leftover
  [ -n "$dir" ] || { slurm_log "usage: cluster_down STATE_DIR"; return 2; }
  [ -d "$dir" ] || return 0  # never started
  dir=$(cd "$dir" && pwd) || return 1
  [ -d "$dir/pids" ] || return 0
  t0=$(date +%s%N)
  # Jobs first, while the controller still runs: their steps then end the normal way.
  if [ -f "$dir/slurm.conf" ] && slurm_pid_alive "$(cat "$dir/pids/slurmctld" 2>/dev/null)"; then
    jobs=$(SLURM_CONF=$dir/slurm.conf timeout 10 squeue -h -o %A 2>/dev/null)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      SLURM_CONF=$dir/slurm.conf timeout 10 scancel $jobs 2>/dev/null
    fi
  fi
  # Then the daemons, in reverse order of start, each by its recorded pid.
  for name in slurmd slurmctld munged; do
    pid=$(cat "$dir/pids/$name" 2>/dev/null) || continue
    slurm_pid_alive "$pid" && slurm_stop_pids TERM "$NUPES_SLURM_DOWN_TIMEOUT" "$pid"
  done
  # Leftovers (a slurmstepd or a task that outlived slurmd): found by the cluster's marker.
  mapfile -t leftover < <(slurm_marked_pids "$dir")
  if [ ${#leftover[@]} -gt 0 ]; then
    slurm_log "stopping leftover processes of $dir: ${leftover[*]}"
    slurm_stop_pids TERM 5 "${leftover[@]}"
  fi
  mapfile -t leftover < <(slurm_marked_pids "$dir")
  if [ ${#leftover[@]} -gt 0 ]; then
    slurm_log "processes still alive after cluster_down: ${leftover[*]}"
    return 1
  fi
  rm -rf "$dir/pids"
  slurm_log "cluster down in $(slurm_elapsed "$t0") s: $dir"
}

# One field of `scontrol show job -o JOBID` (empty when the job is unknown).
job_field() {
  scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# Polls until the job's JobState matches the regex STATE (anchored); fails after TIMEOUT s.
wait_for_job_state() {
  local job=$1 want=$2 timeout=${3:-60} i state
  for ((i = 0; i < timeout * 5; i++)); do
    state=$(job_field "$job" JobState)
    [[ $state =~ ^($want)$ ]] && return 0
    sleep 0.2
  done
  slurm_log "job $job: state '$state' after ${timeout}s, expected '$want'"
  return 1
}

# Polls until the job has finished (COMPLETED, FAILED, CANCELLED, ...) or is purged.
wait_for_job_gone() {
  wait_for_job_state "$1" 'COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|' "${2:-60}"
}

# Polls until step 0 of the job is running (the job's srun has launched its tasks).
job_step_started() {
  local job=$1 timeout=${2:-60} i
  for ((i = 0; i < timeout * 5; i++)); do
    squeue -h -s -j "$job" -o '%i' 2>/dev/null | grep -qx "$job\.0" && return 0
    sleep 0.2
  done
  slurm_log "job $job: step 0 not running after ${timeout}s"
  return 1
}

# Polls until at least COUNT lines of FILE match the extended regex REGEX.
wait_for_match() {
  local file=$1 regex=$2 want=$3 timeout=${4:-30} i got=0
  for ((i = 0; i < timeout * 5; i++)); do
    got=$(grep -cE -- "$regex" "$file" 2>/dev/null)
    [ "${got:-0}" -ge "$want" ] && return 0
    sleep 0.2
  done
  slurm_log "$file: ${got:-0} lines match '$regex' after ${timeout}s, expected $want"
  return 1
}

# Preemption as a cluster does it: a job of the higher-tier partition "high" that needs the
# whole node (--exclusive, so it also displaces an --overcommit job holding one CPU).
# PreemptMode=REQUEUE: SLURM sends SIGTERM to JOBID's steps and batch shell, requeues it,
# runs the high job, then JOBID again. Prints the high job's id once it has completed.
preempt_job() {
  local job=$1 timeout=${2:-60} high dir
  dir=$(dirname "$SLURM_CONF")
  [ "$(job_field "$job" JobState)" = RUNNING ] || { slurm_log "job $job is not running"; return 1; }
  # shellcheck disable=SC2016  # expanded by the job, not here
  high=$(timeout 30 sbatch --parsable -p high --exclusive -J preemptor -D "$dir" \
    -o "$dir/log/preemptor-%j.out" --wrap 'echo "preemptor job $SLURM_JOB_ID ran"') || return 1
  wait_for_job_state "$high" COMPLETED "$timeout" || return 1
  echo "$high"
}
