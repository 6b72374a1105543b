# shellcheck shell=bash
# slurm/multinode.sh: a real multi-node SLURM on one machine, for tests. Each node is a
# network namespace (`ip netns`) with its own host name (a UTS namespace), its own address
# and its own slurmd; the nodes and the controller talk over a bridge, on a private /24
# that exists only on this machine (the root namespace holds the bridge's address, the
# controller and munged). The nodes share the host's file systems, as a cluster's nodes
# share a parallel file system: a run directory under /tmp is seen by all of them.
#
# Source it from bash after slurm/testlib.sh:
#
#   mn_cluster_up STATE_DIR N    start munged + slurmctld (root namespace) and N slurmds
#                                (nodes node1..nodeN, one namespace each); exports SLURM_CONF
#   mn_cluster_down STATE_DIR    cancel jobs, stop the daemons by pid, kill whatever is left
#                                in the nodes' namespaces, delete namespaces, bridge, links
#   mn_node_lose STATE_DIR I     SIGKILL every process of node I (slurmd, slurmstepd, tasks:
#                                the namespace's processes), as if the node had died
#   mn_node_pids STATE_DIR I     the pids of node I's processes
#   mn_node_bytes STATE_DIR I    bytes sent + received on node I's link (its veth)
#   mn_subnet                    the cluster's /24 (e.g. 10.213.7.0/24), for Open MPI's
#                                btl_tcp_if_include
#
# Names are derived from a short tag of STATE_DIR, so two clusters never collide, and are
# recorded in STATE_DIR/net so that mn_cluster_down removes exactly what mn_cluster_up made.
#
# Facts found on the way (SLURM 22.05, Open MPI 4.1, gVisor/Linux netns):
# - The nodes need distinct host names, not only distinct NodeNames: Open MPI names its
#   session directories (/tmp/ompi.HOST.UID) after the host, and the nodes share /tmp.
# - slurmd of every node reads the same slurm.conf; %n in SlurmdSpoolDir, SlurmdPidFile and
#   SlurmdLogFile gives each its own spool (PMIx server sockets live there), pid and log.
# - `ip netns exec` mounts a fresh /sys for the namespace, without /sys/fs/cgroup, and
#   slurmd then fails ("Unable to initialize cgroup plugin"): the nodes' processes enter
#   the network namespace with `nsenter --net` and keep the host's mounts.
# - The nodes share /tmp, a cluster's nodes do not: SLURM's PMIx plugin makes its client
#   directory TmpFS/spmix_appdir_UID_JOB.STEP on every node, and with TmpFS=/tmp the
#   second node fails "File exists". TmpFS=STATE_DIR/tmp/%n gives each node its own.
# - munged's socket is a path on the shared file system: a unix socket is reachable from
#   every network namespace, so one munged in the root namespace serves all nodes.
# - SlurmdTimeout is lowered so that a lost node is marked DOWN within seconds.

: "${MN_SLURMD_TIMEOUT:=10}"

mn_log() { printf 'multinode: %s\n' "$*" >&2; }

# A short tag of the state directory (5 hex digits): names of namespaces and links.
mn_tag() { printf '%s' "$1" | md5sum | cut -c1-5; }

# Picks a 10.X.Y.0/24 that no interface of the root namespace uses. Prints "10.X.Y".
mn_pick_prefix() {
  local tag=$1 x y try
  for ((try = 0; try < 50; try++)); do
    x=$((200 + (0x${tag:0:2} + try) % 50))
    y=$(((0x${tag:2:2} + 7 * try) % 250 + 1))
    ip -o -4 addr show | grep -q " 10\.$x\.$y\." || { echo "10.$x.$y"; return 0; }
  done
  mn_log "no free 10.X.Y.0/24 found"
  return 1
}

mn_subnet() { echo "$(cat "$MN_DIR/net/prefix").0/24"; }

mn_ns() { echo "nupes-$(cat "$1/net/tag")-n$2"; }

mn_write_conf() {
  local dir=$1 n=$2 prefix=$3 i cpus mem ctld_port slurmd_port nodes
  cpus=$(nproc)
  mem=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)
  mem=$((mem / 1024 * 9 / 10))
  ctld_port=$(slurm_free_port) || return 1
  slurmd_port=$(slurm_free_port) || return 1
  nodes="node[1-$n]"
  {
    cat <<EOF
# Written by slurm/multinode.sh: a throw-away $n-node cluster of network namespaces.
ClusterName=nupes-mn
SlurmctldHost=$(hostname -s)($prefix.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=5
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
SlurmdTimeout=$MN_SLURMD_TIMEOUT
MessageTimeout=5
MailProg=/bin/true
ReturnToService=2
MinJobAge=600
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
TmpFS=$dir/tmp/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
EOF
    for ((i = 1; i <= n; i++)); do
      echo "NodeName=node$i NodeAddr=$prefix.$((10 + i)) NodeHostname=node$i CPUs=$cpus RealMemory=$mem State=UNKNOWN"
    done
    echo "PartitionName=low Nodes=$nodes Default=YES PriorityTier=1 MaxTime=INFINITE State=UP"
    echo "PartitionName=high Nodes=$nodes PriorityTier=10 MaxTime=INFINITE State=UP"
  } >"$dir/slurm.conf"
}

# The network: a bridge with PREFIX.1 in the root namespace, and per node a namespace with
# a veth whose inside end has PREFIX.(10+I). Everything made is recorded in DIR/net.
mn_net_up() {
  local dir=$1 n=$2 tag=$3 prefix=$4 br i ns out in
  br=nb$tag
  ip link add "$br" type bridge || return 1
  echo "link $br" >>"$dir/net/made"
  ip addr add "$prefix.1/24" dev "$br" && ip link set "$br" up || return 1
  for ((i = 1; i <= n; i++)); do
    ns=$(mn_ns "$dir" "$i")
    out=nv${tag}o$i
    in=nv${tag}i$i
    ip netns add "$ns" || return 1
    echo "netns $ns" >>"$dir/net/made"
    ip link add "$out" type veth peer name "$in" || return 1
    echo "link $out" >>"$dir/net/made"
    echo "$out" >"$dir/net/veth-$i"
    ip link set "$out" master "$br" && ip link set "$out" up || return 1
    ip link set "$in" netns "$ns" || return 1
    ip netns exec "$ns" ip link set lo up || return 1
    ip netns exec "$ns" ip addr add "$prefix.$((10 + i))/24" dev "$in" || return 1
    ip netns exec "$ns" ip link set "$in" up || return 1
  done
}

mn_start_slurmd() {
  local dir=$1 i=$2
  # nsenter, unshare and sh all exec: the recorded pid is slurmd's. Started from a
  # subshell, so that it is no job of this shell (no "Killed" notice when a node is lost).
  (
    NUPES_SLURM_STATE=$dir setsid nsenter --net="/run/netns/$(mn_ns "$dir" "$i")" \
      unshare --uts /bin/sh -c 'hostname "$0" && exec "$@"' "node$i" \
      slurmd -D -f "$dir/slurm.conf" -N "node$i" </dev/null >>"$dir/log/slurmd-node$i.out" 2>&1 &
    echo $! >"$dir/pids/slurmd-node$i"
  )
}

mn_cluster_up() {
  local dir=$1 n=$2 t0 tag prefix i name state idle
  [ -n "$dir" ] && [ -n "$n" ] || { mn_log "usage: mn_cluster_up STATE_DIR N"; return 2; }
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || return 1
  [ -e "$dir/slurm.conf" ] && { mn_log "$dir already holds a cluster"; return 1; }
  t0=$(date +%s%N)
  mkdir -p "$dir"/{munge,state,spool,log,run,pids,net} || return 1
  for ((i = 1; i <= n; i++)); do mkdir -p "$dir/spool/node$i" "$dir/tmp/node$i"; done
  chmod 700 "$dir/munge"
  MN_DIR=$dir
  tag=$(mn_tag "$dir")
  echo "$tag" >"$dir/net/tag"
  prefix=$(mn_pick_prefix "$tag") || return 1
  echo "$prefix" >"$dir/net/prefix"
  echo "$n" >"$dir/net/nodes"
  mn_net_up "$dir" "$n" "$tag" "$prefix" || { mn_log "network set-up failed"; return 1; }

  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none || return 1
  chmod 400 "$dir/munge/munge.key"
  slurm_spawn "$dir" munged munged -F --force --socket="$dir/munge/munge.socket" \
    --key-file="$dir/munge/munge.key" --pid-file="$dir/run/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" || return 1
  for ((i = 0; i < 100; i++)); do [ -S "$dir/munge/munge.socket" ] && break; sleep 0.1; done
  [ -S "$dir/munge/munge.socket" ] || { mn_log "munged did not start: see $dir/log"; return 1; }

  mn_write_conf "$dir" "$n" "$prefix" || return 1
  export SLURM_CONF=$dir/slurm.conf
  slurm_spawn "$dir" slurmctld slurmctld -D -i -f "$SLURM_CONF" || return 1
  for ((i = 1; i <= n; i++)); do mn_start_slurmd "$dir" "$i" || return 1; done

  # Up: every node idle and the controller answers.
  for ((i = 0; i < NUPES_SLURM_UP_TIMEOUT * 5; i++)); do
    idle=$(sinfo -h -N -p low -o '%N %t' 2>/dev/null | grep -c ' idle$')
    [ "$idle" = "$n" ] && break
    for name in munged slurmctld $(cd "$dir/pids" && ls -d slurmd-*); do
      if ! slurm_pid_alive "$(cat "$dir/pids/$name")"; then
        mn_log "$name exited during start-up; its log:"
        tail -n 20 "$dir/log/$name.log" "$dir/log/$name.out" >&2 2>/dev/null
        return 1
      fi
    done
    sleep 0.2
  done
  if [ "$idle" != "$n" ]; then
    mn_log "$idle of $n nodes idle after ${NUPES_SLURM_UP_TIMEOUT}s:"
    sinfo -N -p low >&2
    return 1
  fi
  mn_log "$n-node cluster up in $(slurm_elapsed "$t0") s: $dir (nodes on $prefix.0/24)"
}

mn_node_pids() {
  local ns
  ns=$(mn_ns "$1" "$2")
  ip netns pids "$ns" 2>/dev/null
}

mn_node_lose() {
  local dir=$1 i=$2 pids t
  mapfile -t pids < <(mn_node_pids "$dir" "$i")
  [ ${#pids[@]} -gt 0 ] || { mn_log "node$i has no processes"; return 1; }
  kill -KILL "${pids[@]}" 2>/dev/null
  for ((t = 0; t < 100; t++)); do
    [ -z "$(mn_node_pids "$dir" "$i")" ] && break
    sleep 0.1
  done
  [ -z "$(mn_node_pids "$dir" "$i")" ] || { mn_log "node$i: processes survive SIGKILL"; return 1; }
  mn_log "node$i lost: SIGKILL to ${#pids[@]} processes (${pids[*]})"
}

mn_node_bytes() {
  local dev
  dev=$(cat "$1/net/veth-$2") || return 1
  echo $(($(cat "/sys/class/net/$dev/statistics/rx_bytes") + $(cat "/sys/class/net/$dev/statistics/tx_bytes")))
}

mn_cluster_down() {
  local dir=$1 t0 jobs name pid n i left kind what rc=0
  [ -n "$dir" ] || { mn_log "usage: mn_cluster_down STATE_DIR"; return 2; }
  [ -d "$dir/net" ] || return 0
  dir=$(cd "$dir" && pwd) || return 1
  t0=$(date +%s%N)
  if [ -f "$dir/slurm.conf" ] && slurm_pid_alive "$(cat "$dir/pids/slurmctld" 2>/dev/null)"; then
    jobs=$(SLURM_CONF=$dir/slurm.conf timeout 10 squeue -h -o %A 2>/dev/null)
    # shellcheck disable=SC2086
    [ -n "$jobs" ] && SLURM_CONF=$dir/slurm.conf timeout 10 scancel $jobs 2>/dev/null
  fi
  n=$(cat "$dir/net/nodes" 2>/dev/null || echo 0)
  for name in $(cd "$dir/pids" 2>/dev/null && ls -d slurmd-* 2>/dev/null) slurmctld munged; do
    pid=$(cat "$dir/pids/$name" 2>/dev/null) || continue
    slurm_pid_alive "$pid" && slurm_stop_pids TERM "$NUPES_SLURM_DOWN_TIMEOUT" "$pid"
  done
  # Whatever is left in a node (a slurmstepd, a task): the namespace's processes.
  for ((i = 1; i <= n; i++)); do
    mapfile -t left < <(mn_node_pids "$dir" "$i")
    if [ ${#left[@]} -gt 0 ]; then
      mn_log "node$i: stopping leftover processes ${left[*]}"
      slurm_stop_pids TERM 5 "${left[@]}"
    fi
    if [ -n "$(mn_node_pids "$dir" "$i")" ]; then
      mn_log "node$i: processes still alive: $(mn_node_pids "$dir" "$i" | tr '\n' ' ')"
      rc=1
    fi
  done
  mapfile -t left < <(slurm_marked_pids "$dir")
  [ ${#left[@]} -gt 0 ] && slurm_stop_pids TERM 5 "${left[@]}"
  # The network, in reverse order of creation (deleting a veth end deletes its peer).
  if [ "$rc" = 0 ] && [ -f "$dir/net/made" ]; then
    tac "$dir/net/made" | while read -r kind what; do
      case $kind in
        link) ip link show "$what" >/dev/null 2>&1 && ip link del "$what" ;;
        netns) ip netns del "$what" ;;
      esac
    done
    rm -f "$dir/net/made"
  fi
  [ "$rc" = 0 ] && rm -rf "$dir/pids"
  mn_log "cluster down in $(slurm_elapsed "$t0") s: $dir"
  return "$rc"
}
