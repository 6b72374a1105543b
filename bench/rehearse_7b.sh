#!/usr/bin/env bash
# bench/rehearse_7b.sh: the whole job at the real LLaMA-7B width on 2 ranks, measured
# against its own --dry-run plan (issue 15, item 1). Not a test and not in CI: one mode
# takes 10-30 minutes on a loaded 2-core machine (see bench/README.md for measured times).
#
# For each mode (parallel, pipelined, sequential):
#   1. the plan: `mpirun -np 2 nupes-mpi --dry-run` of this very job;
#   2. an uninterrupted run, measured: peak RSS per rank (/usr/bin/time -v) and per phase
#      (VmRSS sampled every second, phase = root's last progress line), disk in run.dir per
#      kind of file (largest size seen), phase times and the longest silence on root's
#      stdout (from timestamps of its lines); then the same dry run again, whose probes say
#      whether the machine still runs at the speed the plan probed (a VM's does not always);
#   3. interruptions in a second run directory: the ranks held at block 0's setup (the
#      capture is complete: NUPES_TEST_HOLD=setup:0000), rank 1 SIGKILLed; the re-run
#      reuses the capture, and once block 0 iterates (its first status line) both ranks get
#      SIGTERM, as SLURM signals each task: the seconds from the signal to each rank's exit
#      (exit 75, state saved) are the figure to hold against SLURM's KillWait (30 s by
#      default); the third run finishes, and its checkpoint must be identical (codes,
#      scales, exponents: tools/compare_checkpoints) to the uninterrupted run's and pass
#      `nupes-mpi verify`.
# Then it prints one "planned vs measured" table per mode.
#
# Memory: every launch runs under `flock $NUPES_BIGMEM_LOCK` (default /tmp/nupes-bigmem.lock)
# so that big-memory runs on a shared machine do not overlap, and the script refuses to
# start when the plan's peak per node exceeds --mem-limit GB. A full 7B block needs ~6.2 GB
# per rank (its fp32 weights, latents, Adam moments, quantized copy, gradients, plus the
# 1.05 GB fp32 head every rank holds): 2 ranks with 2 blocks in flight need ~12.5 GB. Under
# a smaller limit, keep the width and quantize fewer matrices: --skip w1,w2,w3 (the MLP stays
# fp32: 67 M quantized weights per block, ~4.5 GB per rank), or --layers 1 (the idle rank
# holds only the head; parallel mode only: sequential mode's 2 ranks both hold the block).
#
# Usage: bash bench/rehearse_7b.sh [options]
#   --layers N        blocks of the synthetic model, 1..4 (default 2)
#   --modes "M ..."   modes to run (default "parallel pipelined sequential")
#   --seq-len T       calibration tokens per sequence (default 256)
#   --sequences S     calibration sequences (default 8)
#   --batch B         sequences per step (default 2: sequential mode's 2 ranks each get one)
#   --iterations I    steps per block (default 4)
#   --skip LIST       matrices kept fp32, comma-separated (default none)
#   --mem-limit GB    refuse a plan whose peak per node is above this (default 11)
#   --no-interrupt    skip the SIGKILL/SIGTERM/resume runs
#   --work DIR        work directory (default /work/rehearse-7b, or $TMPDIR); the model
#                     there is reused if it has the right number of layers
#   --build DIR       build directory (default build)
#   --keep            keep the model and run directories (default: removed at the end)
#   --settle S        seconds to wait after a job before each dry run (default 30): on a
#                     VM, memory a job freed faults back in ~25x faster for ~10-20 s (the
#                     host has not taken it back yet), and a dry run's page fault probe
#                     then plans a fresh job's faults far too fast
# Environment: MPIEXEC (mpirun), NUPES_BIGMEM_LOCK, OPENBLAS_NUM_THREADS (1).
set -eEuo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# names the line that ends the script (set -e); not the expected failures inside command
# substitutions and the background sampler, which run in subshells
trap '[ "$BASH_SUBSHELL" = 0 ] && echo "rehearse_7b: line $LINENO failed (exit $?): $BASH_COMMAND" >&2' ERR

layers=2 modes="parallel pipelined sequential" seq_len=256 sequences=8 batch=2 iterations=4
skip="" mem_limit=11 interrupt=1 work=/work/rehearse-7b build="$src/build" keep=0 settle=30
usage() { sed -n '2,/^set -e/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --layers) layers=$2; shift ;;
    --modes) modes=$2; shift ;;
    --seq-len) seq_len=$2; shift ;;
    --sequences) sequences=$2; shift ;;
    --batch) batch=$2; shift ;;
    --iterations) iterations=$2; shift ;;
    --skip) skip=$2; shift ;;
    --mem-limit) mem_limit=$2; shift ;;
    --no-interrupt) interrupt=0 ;;
    --work) work=$2; shift ;;
    --build) build=$(cd "$2" && pwd); shift ;;
    --keep) keep=1 ;;
    --settle) settle=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "rehearse_7b: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case $layers in 1|2|3|4) ;; *) echo "rehearse_7b: --layers must be 1..4" >&2; exit 2 ;; esac
case $settle in ''|*[!0-9]*) echo "rehearse_7b: --settle must be whole seconds" >&2; exit 2 ;; esac
for m in $modes; do
  case $m in parallel|pipelined|sequential) ;; *) echo "rehearse_7b: unknown mode $m" >&2; exit 2 ;; esac
done
bin=$build/nupes-mpi
for f in "$bin" "$build/tools/compare_checkpoints" /usr/bin/time /usr/bin/python3 perl; do
  command -v "$f" > /dev/null || { echo "rehearse_7b: $f missing (bash scripts/build.sh; apt-get install time python3-numpy)" >&2; exit 2; }
done

export HDF5_PLUGIN_PATH="$build/plugins" OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIEXEC=${MPIEXEC:-mpirun}
lock=${NUPES_BIGMEM_LOCK:-/tmp/nupes-bigmem.lock}
NP=2

mkdir -p "$work"
work=$(cd "$work" && pwd)
model=$work/model
cleanup() {
  local p
  for p in $(jobs -p); do kill "$p" 2>/dev/null || true; done
  if [ "$keep" = 0 ]; then rm -rf "$model" "$work"/run-*; fi
}
trap cleanup EXIT

log() { printf '[rehearse %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- the model and the job
if ! grep -qs "\"num_hidden_layers\": $layers," "$model/config.json"; then
  rm -rf "$model"
  log "writing the synthetic model ($layers layers, BF16) into $model"
  /usr/bin/python3 "$src/bench/rehearse_7b_model.py" "$model" --layers "$layers" >&2
fi
skip_toml=$(printf '%s' "$skip" | awk -F, '{ for (i = 1; i <= NF; i++) printf "%s\"%s\"", (i > 1 ? ", " : ""), $i }')
cat > "$work/job.toml" << EOF
# written by bench/rehearse_7b.sh
[model]
path = "model"
format = "hf"
[tokenizer]
path = "$src/data/llama2-tokenizer/tokenizer.model"
[calibration]
text = "$src/data/calib-generated.txt"
sequences = $sequences
seq_len = $seq_len
[quantization]
method = "nupes"
bits = 4
skip = [$skip_toml]
[reconstruction]
iterations = $iterations
batch = $batch
[run]
checkpoint_interval = 300
[output]
zstd_level = 1
[mpi]
data_parallel = 1
EOF

# ---------------------------------------------------------------- launching and measuring
# launch NAME MODE RUNDIR [HOLD]: starts the job in the background under the lock; root's
# stdout timestamped in NAME.out, stderr in NAME.err, /usr/bin/time -v per rank in
# NAME.time.R, each rank's pid (time's child) found through NAME.pid.R. Sets LAUNCH_PID.
launch() {
  local name=$1 mode=$2 rundir=$3 hold=${4:-}
  rm -f "$work/$name".pid.* "$work/$name".time.*
  rm -rf "$work/hold-$name"; mkdir -p "$work/hold-$name"
  # emptied here, not by the redirection below: the timestamping process may start after the
  # first wait_for, which would then read the previous run's lines (it did: a SIGTERM sent
  # before the job had its signal handlers, exit 143)
  : > "$work/$name.out"; : > "$work/$name.err"
  date +%s.%N > "$work/$name.launched"
  NUPES_TEST_HOLD="$hold" NUPES_TEST_HOLD_DIR="$work/hold-$name" \
    flock "$lock" "$MPIEXEC" -np "$NP" sh -c 'echo $$ > "$0.pid.$OMPI_COMM_WORLD_RANK"; exec /usr/bin/time -v -o "$0.time.$OMPI_COMM_WORLD_RANK" "$@"' \
      "$work/$name" "$bin" --config "$work/job.toml" --set run.dir="$rundir" \
      --set reconstruction.mode="$mode" \
    > >(perl -MTime::HiRes=time -ne '$| = 1; printf "%.3f %s", time, $_' > "$work/$name.out") \
    2> "$work/$name.err" &
  LAUNCH_PID=$!
}
# rank_pid NAME R: the pid of rank R's nupes-mpi (child of the shell that exec'ed time).
rank_pid() {
  local f="$work/$1.pid.$2" p i
  for ((i = 0; i < 50; i++)); do # 10 s: the pid file and the exec may lag the first output
    if [ -s "$f" ] && p=$(pgrep -P "$(cat "$f")" -x nupes-mpi); then
      echo "$p"
      return 0
    fi
    sleep 0.2
  done
  echo "rehearse_7b: no nupes-mpi child of $(cat "$f" 2>/dev/null || echo "? (no $f)") for $1 rank $2" >&2
  return 1
}
# wait_for DESCRIPTION TIMEOUT COMMAND...: polls every 0.2 s; fails if the job has exited.
wait_for() {
  local what=$1 timeout=$2 i
  shift 2
  for ((i = 0; i < timeout * 5; i++)); do
    "$@" && return 0
    kill -0 "$LAUNCH_PID" 2>/dev/null || { "$@" && return 0; log "job exited before: $what"; return 1; }
    sleep 0.2
  done
  log "no $what after $timeout s"; return 1
}
has_line() { grep -qE -- "$2" "$work/$1.out" 2> /dev/null; }
# last_phase: the job phase of the last line of root's stdout (without its timestamp) that
# starts one. One awk, not a shell function per line: the sampler runs every second beside
# the job on the same cores, and must not take their time from it.
last_phase() {
  awk '/^capture:/ { p = "capture"; next }
       /handing on|quantized inputs/ { p = "hand-on"; next }
       /^block [0-9]+: setup/ { p = "setup"; next }
       /^status:|^block [0-9]+ done|^block [0-9]+: probe loss/ { p = "reconstruction"; next }
       /^checkpoint:/ { p = "checkpoint"; next }
       END { print p }'
}
# sampler NAME: every second while the job runs, each rank's VmRSS and run.dir's file sizes
# by kind into NAME.samples: "t phase rank rss_kb" and "t disk kind bytes". At nice 19,
# with the ranks' pids found once and VmRSS read by bash itself: the first version forked
# ~50 processes a second beside the ranks, which then ran at ~82% of a core each and the
# job 20-35% over its plan (page faults, so fork and exec, are slow on this VM).
sampler() {
  local name=$1 dir=$2 phase=import line r rss key value unit size path kind
  local -a pids=()
  local -A bytes
  renice -n 19 -p "$BASHPID" > /dev/null 2>&1 || true
  while kill -0 "$LAUNCH_PID" 2>/dev/null; do
    line=$(tail -n 200 "$work/$name.out" 2>/dev/null | cut -d' ' -f2- | last_phase)
    # (an 'if', not '&&': under set -e a line with no phase must not end the sampler)
    if [ -n "$line" ]; then phase=$line; fi
    for r in $(seq 0 $((NP - 1))); do
      if [ -z "${pids[r]:-}" ] || [ ! -e "/proc/${pids[r]}/status" ]; then
        pids[r]=$(rank_pid "$name" "$r") || { pids[r]=; continue; }
      fi
      rss=
      while read -r key value unit; do
        if [ "$key" = VmRSS: ]; then rss=$value; break; fi
      done < "/proc/${pids[r]}/status" 2> /dev/null || true
      [ -n "$rss" ] && echo "$EPOCHREALTIME $phase $r $rss"
    done
    if [ -d "$dir" ]; then # one du for every kind of file
      bytes=([activations]=0 [state]=0 [done]=0 [qinputs]=0 [checkpoint]=0)
      while read -r size path; do
        case ${path##*/} in
          activations.h5*) kind=activations ;;
          state | "done" | qinputs) kind=${path##*/} ;;
          checkpoint.h5 | .checkpoint.h5.tmp.*) kind=checkpoint ;;
          *) continue ;;
        esac
        bytes[$kind]=$((bytes[$kind] + size))
      done < <(du -sb "$dir"/activations.h5* "$dir/state" "$dir/done" "$dir/qinputs" "$dir/checkpoint.h5" \
                 "$dir"/.checkpoint.h5.tmp.* 2> /dev/null)
      for kind in activations state done qinputs checkpoint; do echo "$EPOCHREALTIME disk $kind ${bytes[$kind]}"; done
    fi
    sleep 1
  done > "$work/$name.samples"
}
finish() { # finish: waits for the launched job, RC = its exit code
  RC=0
  wait "$LAUNCH_PID" || RC=$? # (|| keeps the ERR trap quiet: a job's exit code is data here)
}
gb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e9 }'; }

# plan_value PLANFILE REGEX FIELD: a number from the plan's text.
plan_line() { grep -E -- "$2" "$1" | head -n 1; }

run_measured() { # run_measured MODE: the uninterrupted run "ref"
  local mode=$1 name=ref-$1
  rm -rf "$work/run-$name" # a kept run directory would resume, measuring nothing
  launch "$name" "$mode" "$work/run-$name"
  sampler "$name" "$work/run-$name" &
  local sp=$!
  finish
  wait "$sp" || true
  [ "$RC" = 0 ] || { tail -n 20 "$work/$name.err" "$work/$name.out" >&2; log "$mode: uninterrupted run exited $RC"; exit 3; }
}

run_interrupted() { # run_interrupted MODE: SIGKILL after capture, SIGTERM mid-block, resume
  local mode=$1 dir p0 p1 t0 t1 s0 s1
  dir=$work/run-$mode-int
  rm -rf "$dir"
  # 1. held at block 0's setup (capture complete), rank 1 killed
  launch int1 "$mode" "$dir" setup:0000
  wait_for "hold at setup:0000" 3600 compgen -G "$work/hold-int1/held.setup:0000.*" > /dev/null || exit 3
  p1=$(rank_pid int1 1)
  kill -KILL "$p1"
  finish
  INT_KILL_RC=$RC
  [ -e "$dir/activations.h5" ] && INT_CAPTURE_KEPT=yes || INT_CAPTURE_KEPT=no
  # 2. the re-run reuses the capture; SIGTERM to both ranks once block 0 iterates
  launch int2 "$mode" "$dir"
  wait_for "status line of block 0" 3600 has_line int2 '^[0-9.]+ status: ' || exit 3
  p0=$(rank_pid int2 0); p1=$(rank_pid int2 1)
  t0=$(date +%s.%N)
  kill -TERM "$p0" "$p1"
  s0= s1=
  while [ -z "$s0" ] || [ -z "$s1" ]; do
    [ -z "$s0" ] && ! kill -0 "$p0" 2>/dev/null && s0=$(echo "$(date +%s.%N) - $t0" | bc -l)
    [ -z "$s1" ] && ! kill -0 "$p1" 2>/dev/null && s1=$(echo "$(date +%s.%N) - $t0" | bc -l)
    sleep 0.05
  done
  finish
  INT_TERM_RC=$RC
  INT_TERM_S0=$(printf '%.1f' "$s0") INT_TERM_S1=$(printf '%.1f' "$s1")
  INT_REUSED=$(has_line int2 'capture: .* is complete, reusing it' && echo yes || echo no)
  INT_STATE=$(du -sb "$dir/state" 2>/dev/null | awk '{ print $1 + 0 }')
  # each leader's stop write (root logs them): seconds, or given up at run.stop_seconds
  INT_WRITES=$( (grep -oE 'written on the stop: [0-9.]+ MB in [0-9.]+ s' "$work/int2.out" || true) |
    sed -E 's/.* in ([0-9.]+) s/\1/' | paste -sd/ -)
  INT_GAVE_UP=$( (grep -c 'was not written within run.stop_seconds' "$work/int2.out" || true) | head -n 1)
  # 3. resume to the end
  launch int3 "$mode" "$dir"
  finish
  INT_RESUME_RC=$RC
  INT_SAME=no INT_VERIFY=no
  if [ "$RC" = 0 ]; then
    "$build/tools/compare_checkpoints" "$work/run-ref-$mode/checkpoint.h5" "$dir/checkpoint.h5" > "$work/compare-$mode.txt" 2>&1 && INT_SAME=yes
    "$bin" verify "$dir/checkpoint.h5" > "$work/verify-$mode.txt" 2>&1 && INT_VERIFY=yes
  fi
  for n in int1 int2 int3; do cp "$work/$n.out" "$work/$mode-$n.out"; cp "$work/$n.err" "$work/$mode-$n.err"; done
  [ "$keep" = 1 ] || rm -rf "$dir"
}

# ---------------------------------------------------------------- the tables
# first_ts NAME REGEX / last_ts NAME REGEX: timestamp of the first / last matching line.
first_ts() { (grep -E -- "^[0-9.]+ $2" "$work/$1.out" || true) | head -n 1 | cut -d' ' -f1; }
last_ts() { (grep -E -- "^[0-9.]+ $2" "$work/$1.out" || true) | tail -n 1 | cut -d' ' -f1; }
span() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }' || echo -; }
plan_num() { # plan_num MODE REGEX: the first number after the regex in the plan
  (grep -E -- "$2" "$work/plan-$1.txt" || true) | head -n 1 | sed -E "s/.*$2[^0-9]*([0-9.]+).*/\1/"
}
plan_min_s() { # a "X min" or "X s" figure of the plan, in seconds
  local line
  line=$( (grep -E -- "$2" "$work/plan-$1.txt" || true) | head -n 1)
  printf '%s\n' "$line" | sed -E "s/.*$3 *([0-9.]+) (min|s).*/\1 \2/" |
    awk 'NF == 2 { printf "%.1f", $2 == "min" ? $1 * 60 : $1; exit } { print "-" }'
}
max_rss_kb() { awk '/Maximum resident set size/ { print $NF }' "$work/$1.time.$2" 2>/dev/null || echo 0; }
phase_peak() { # phase_peak NAME PHASE RANK: max sampled VmRSS in GB
  awk -v p="$2" -v r="$3" '$2 == p && $3 == r && $4 > m { m = $4 } END { printf "%.2f", m * 1024 / 1e9 }' "$work/$1.samples"
}
disk_peak() { awk -v k="$2" '$2 == "disk" && $3 == k && $4 > m { m = $4 } END { printf "%.2f", m / 1e9 }' "$work/$1.samples"; }
longest_silence() { # the longest gap between two lines of root's stdout, and the line before it
  awk '{ t = $1; if (NR > 1 && t - prev > gap) { gap = t - prev; what = line } prev = t; $1 = ""; line = $0 }
       END { printf "%.0f s after \"%s\"", gap, substr(what, 2, 70) }' "$work/$1.out"
}
pct() { awk -v m="$1" -v p="$2" 'BEGIN { if (m == "-" || p == "-" || p + 0 == 0) print "-"; else printf "%+.0f%%", (m / p - 1) * 100 }'; }

report_mode() {
  local mode=$1 name=ref-$1 r p_peak p_setup p_block p_head p_cap p_act p_state p_done p_ckpt t0 t1 tc0 tc1 tb tck tend
  p_peak=$(plan_num "$mode" 'peak per rank')
  p_setup=$(plan_num "$mode" '^  setup: the model.s block, no activations yet')
  p_block=$(plan_num "$mode" '^  iterating: the model.s block released')
  p_head=$(plan_num "$mode" 'classifier, fp32\) from the capture on:')
  p_cap=$(plan_num "$mode" 'forward-only scratch of [0-9]+ [0-9.]+ GB =')
  p_act=$(plan_num "$mode" 'activations.h5 .inputs [^ ]+ fp32')
  p_state=$(plan_num "$mode" 'blocks? in flight x')
  p_done=$(plan_num "$mode" 'blocks x ~')
  p_ckpt=$(plan_num "$mode" 'checkpoint \(~, zstd codes \+ fp32 head\)')
  # from the launch: the model's check (root, before its first line) is part of the job
  t0=$(cat "$work/$name.launched" 2>/dev/null || head -n 1 "$work/$name.out" | cut -d' ' -f1)
  tc0=$(first_ts "$name" 'capture:'); tc1=$(last_ts "$name" 'capture:')
  tb=$(last_ts "$name" 'block [0-9]+ done'); tck=$(last_ts "$name" 'checkpoint: .* written')
  tend=$(tail -n 1 "$work/$name.out" | cut -d' ' -f1)
  local m_block s_it
  m_block=$( (grep -oE 'block 0 done .* in [0-9.]+ s' "$work/$name.out" || true) | sed -E 's/.* in ([0-9.]+) s/\1/')
  s_it=$(awk -v b="${m_block:-0}" -v i="$iterations" 'BEGIN { if (b > 0) printf "%.1f", b / i; else print "-" }')
  local setup0 probes0 handon0
  setup0=$( (grep -oE 'block 0: setup done in [0-9.]+ s' "$work/$name.out" || true) | head -n 1 | sed -E 's/.* in ([0-9.]+) s/\1/')
  probes0=$( (grep -oE 'block 0: probe loss (before|after) .* in [0-9.]+ s' "$work/$name.out" || true) |
    sed -E 's/.* in ([0-9.]+) s/\1/' | awk '{ t += $1; n++ } END { if (n == 2) printf "%.1f", t; else print "-" }')
  handon0=$( (grep -oE 'block 0: handed on to block 1 in [0-9.]+ s' "$work/$name.out" || true) | head -n 1 | sed -E 's/.* in ([0-9.]+) s/\1/')
  echo
  echo "### $mode: planned vs measured (2 ranks; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
  echo
  echo "| figure | planned | measured | measured / planned |"
  echo "|---|---|---|---|"
  for r in 0 1; do
    local m
    m=$(awk -v k="$(max_rss_kb "$name" "$r")" 'BEGIN { printf "%.2f", k * 1024 / 1e9 }')
    echo "| peak RSS rank $r, GB (VmHWM, /usr/bin/time) | $p_peak | $m | $(pct "$m" "$p_peak") |"
  done
  for r in 0 1; do
    local ph line=""
    for ph in import capture setup reconstruction hand-on checkpoint; do
      line="$line $ph $(phase_peak "$name" "$ph" "$r"),"
    done
    echo "| RSS by phase rank $r, GB (sampled VmRSS) | capture $p_cap + head $p_head; block setup $p_setup, iterating $p_block, + head $p_head |${line%,} | |"
  done
  local d
  d=$(disk_peak "$name" activations); echo "| disk: activations, GB | $p_act | $d | $(pct "$d" "$p_act") |"
  d=$(disk_peak "$name" state); echo "| disk: state/ (largest seen), GB | $p_state per block in flight | $d | |"
  d=$(disk_peak "$name" done); echo "| disk: done/ (all blocks), GB | $p_done per block | $d | |"
  d=$(disk_peak "$name" qinputs); echo "| disk: qinputs/ hand-ons, GB | | $d | |"
  d=$(du -sb "$work/run-$name/checkpoint.h5" | awk '{ printf "%.2f", $1 / 1e9 }')
  echo "| checkpoint, GB | $p_ckpt | $d | $(pct "$d" "$p_ckpt") |"
  local bpw
  bpw=$( ("$bin" inspect "$work/run-$name/checkpoint.h5" 2>/dev/null || true) |
    (grep -E 'stored: .* bits per quantized weight' || true) | head -n 1 | sed -E 's/^ *stored: *//; s/\|/\//g')
  echo "| checkpoint bits per weight | | ${bpw:--} | |"
  local pc pr pg pk ps pp ph pj pm mk mj
  pc=$(plan_min_s "$mode" 'capture over' ':')
  pr=$(plan_min_s "$mode" "^  $mode " 'total')
  pg=$(plan_num "$mode" 'waited for:')
  pk=$(plan_min_s "$mode" '^  checkpoint: every done file' ':')
  ps=$(plan_min_s "$mode" 'setup \(scales, exponent search; probed\)' 'probed\)')
  pp=$(plan_min_s "$mode" 'probe passes [0-9.]+ (min|s)' 'probe passes')
  ph=$(plan_min_s "$mode" 'the hand-on of its output to the next block' 'next block')
  pj=$(plan_min_s "$mode" '^  job \(' ':')
  mk=$(span "$tb" "$tck"); mj=$(span "$t0" "$tend")
  pm=$(plan_min_s "$mode" '^  model check by root' ':')
  # the launcher's start (mpirun, every rank's MPI_Init) is not the job's to plan: its own row
  t1=$(head -n 1 "$work/$name.out" | cut -d' ' -f1)
  echo "| time: launch to root's first line (mpirun, MPI_Init, the config read), s | | $(span "$t0" "$t1") | |"
  echo "| time: root's first line to capture (the model hashed and every weight checked by root, tokenizing), s | $pm (the model check) | $(span "$t1" "$tc0") | $(pct "$(span "$t1" "$tc0")" "$pm") |"
  echo "| time: capture, s | $pc | $(span "$tc0" "$tc1") | $(pct "$(span "$tc0" "$tc1")" "$pc") |"
  echo "| time: block 0 setup (scales, exponent search), s | $ps | ${setup0:--} | $(pct "${setup0:--}" "$ps") |"
  echo "| time: block 0 probe passes (loss before + after), s | $pp | $probes0 | $(pct "$probes0" "$pp") |"
  [ "$mode" = parallel ] ||
    echo "| time: hand-on of block 0 to block 1, s | $ph | ${handon0:--} | $(pct "${handon0:--}" "$ph") |"
  echo "| time: capture end to last block done, s | $pr (reconstruction, $mode) | $(span "$tc1" "$tb") | $(pct "$(span "$tc1" "$tb")" "$pr") |"
  echo "| time: block 0 after setup (probes + $iterations iterations), s | | ${m_block:--} ($s_it s/iteration) | |"
  # root prints "block N done" once N's done file is written (the gather): what follows is
  # the checkpoint's assembly alone
  echo "| time: last block done to checkpoint written, s | $pk (checkpoint; the gather before it: $pg) | $mk | $(pct "$mk" "$pk") |"
  echo "| time: whole job, s | $pj | $mj | $(pct "$mj" "$pj") |"
  # This VM's speed moves with its host's load: the same setup probe read 310 and 600 ns
  # per weight minutes apart. The same dry run again after the job says whether the
  # machine the plan probed is the one the job ran on.
  local a=$mode-after pj2 sgemm setup faults
  pj2=$(plan_min_s "$a" '^  job \(' ':')
  sgemm="$(plan_num "$mode" 'sgemm') / $(plan_num "$a" 'sgemm') GFLOP/s per rank"
  setup="$ps / $(plan_min_s "$a" 'setup \(scales, exponent search; probed\)' 'probed\)') s"
  faults="$(plan_num "$mode" 'faulted in at') / $(plan_num "$a" 'faulted in at') GB/s"
  echo "| the machine, dry-run probes before / after the job | sgemm $sgemm; setup $setup; page faults $faults | | |"
  echo "| time: whole job, s, planned from the probes after the job | $pj2 | $mj | $(pct "$mj" "$pj2") |"
  echo "| longest silence on root's stdout | ~30 s | $(longest_silence "$name") | |"
  if [ "$interrupt" = 1 ]; then
    echo "| SIGKILL of rank 1 held at block 0's setup: exit; capture kept | | $INT_KILL_RC; $INT_CAPTURE_KEPT | |"
    echo "| re-run reused the capture | | $INT_REUSED | |"
    echo "| SIGTERM (both ranks, block 0 iterating) to exit, s, rank 0 / rank 1 | < 30 (KillWait) | $INT_TERM_S0 / $INT_TERM_S1 (exit $INT_TERM_RC) | |"
    echo "| state saved on the stop, GB | $p_state per block in flight | $(gb "${INT_STATE:-0}") | |"
    local gave_up=""
    [ "${INT_GAVE_UP:-0}" -gt 0 ] && gave_up="; $INT_GAVE_UP given up at run.stop_seconds (the resume redid those steps)"
    echo "| state write on the stop, s, each block in flight | $(plan_min_s "$mode" '^stop \(' 'at once:') (the node's) | ${INT_WRITES:--}$gave_up | |"
    echo "| resume: exit; checkpoint identical to uninterrupted; verify | | $INT_RESUME_RC; $INT_SAME; $INT_VERIFY | |"
  fi
}

# ---------------------------------------------------------------- main
log "work directory $work; $(df -h "$work" | awk 'NR == 2 { print $4 " free" }'); load average $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in $modes; do
  sleep "$settle"
  "$MPIEXEC" -np "$NP" "$bin" --config "$work/job.toml" --set run.dir="$work/run-plan" \
    --set reconstruction.mode="$mode" --dry-run > "$work/plan-$mode.txt" 2>&1 ||
    { cat "$work/plan-$mode.txt" >&2; exit 3; }
  node=$(plan_num "$mode" 'per node \([0-9]+ ranks\)')
  if awk -v n="$node" -v l="$mem_limit" 'BEGIN { exit !(n > l) }'; then
    echo "rehearse_7b: the plan needs $node GB on this node, above --mem-limit $mem_limit GB:" \
         "use --skip w1,w2,w3 or --layers 1 (see --help)" >&2
    exit 2
  fi
  log "$mode: plan $node GB per node; uninterrupted run"
  run_measured "$mode"
  sleep "$settle"
  "$MPIEXEC" -np "$NP" "$bin" --config "$work/job.toml" --set run.dir="$work/run-plan" \
    --set reconstruction.mode="$mode" --dry-run > "$work/plan-$mode-after.txt" 2>&1 ||
    { cat "$work/plan-$mode-after.txt" >&2; exit 3; }
  if [ "$interrupt" = 1 ]; then
    log "$mode: SIGKILL after capture, SIGTERM mid-block, resume"
    run_interrupted "$mode"
  fi
  report_mode "$mode" | tee "$work/table-$mode.md"
  for f in out err samples time.0 time.1; do cp "$work/ref-$mode.$f" "$work/$mode-ref.$f" 2>/dev/null || true; done
  [ "$keep" = 1 ] || rm -rf "$work/run-ref-$mode"
done
echo
echo "plan for Llama-2-7B W4 on 32 nodes (configs/llama7b.toml --dry-run --nodes 32 --ranks-per-node 1 --threads 32):"
"$bin" --config "$src/configs/llama7b.toml" --dry-run --nodes 32 --ranks-per-node 1 --threads 32 2>&1 |
  grep -E 'compute:|speed per rank|capture over|^  (parallel|sequential|pipelined) |gather:|checkpoint: every|job \(' || true
