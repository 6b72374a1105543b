# tests/resume_lib.sh: helpers for the stop/resume tests (tests/test_resume_*.sh).
#
# Source it from bash after `set -u`. It makes a work directory ($RL_WORK, removed on
# success, kept on failure), and runs real quantize jobs under real mpirun:
#
#   rl_start NAME NP ARGS...     start `mpirun -np NP nupes-mpi ARGS...` in the background;
#                                stdout/stderr go to $RL_WORK/NAME.out / NAME.err
#   rl_wait_line NAME REGEX [T]  poll until NAME.out has a line matching REGEX (fails if the
#                                job exits first or after T seconds)
#   rl_wait_lines FILE REGEX N [T]  poll until N lines of FILE match REGEX (e.g. the run
#                                directory's progress.log, written by root line by line)
#   rl_wait_file PATH [T]        poll until PATH exists (same failure rules)
#   rl_rank_pid RANK             $RL_FOUND_PID = pid of world rank RANK (a child of mpirun)
#   rl_signal SIG RANK...        send SIG to those ranks directly (as SLURM signals each task),
#                                then release the holds
#   RL_HOLD=POINTS               before rl_start: the job's ranks hold at these named points
#                                (mpi/test_hold.h: capture-level, state-saved:NNNN, done:NNNN,
#                                checkpoint:NNNN) until released; applies to that start only
#   rl_wait_held POINT [RANK]    wait until a rank (RANK, or any) holds at POINT
#   rl_release                   release every hold (rl_signal does it after its signal)
#   rl_freeze_when_saved DIR NNNN RANK  wait until RANK holds at state-saved:NNNN (block NNNN
#                                has saved its state once; RL_HOLD must have listed it)
#   rl_finish                    wait for the started job (mpirun killed if it outlives its
#                                ranks by RL_MPIRUN_GRACE s); its exit code in $RL_RC; seconds
#                                from the last rl_signal to the signalled ranks' exit in
#                                $RL_RANK_EXIT_SECONDS, to mpirun's exit in $RL_STOP_SECONDS
#   rl_run NAME NP ARGS...       start + finish (a run in the foreground)
#   rl_expect_rc WANT            fail unless $RL_RC is WANT
#   rl_same_codes REF CKPT       compare_checkpoints: every code, scale, exponent identical
#   fail MESSAGE                 print, keep the work dir, exit 1
#
# Waits poll files (never a fixed sleep as the only synchronisation): the jobs are slow
# under ASan and on a loaded machine, and every wait has a generous timeout. A moment that
# a fast machine could pass through is held by the job itself (RL_HOLD) until the test has
# acted, so no test depends on the machine's speed.

: "${NUPES_BIN:?NUPES_BIN must name the nupes-mpi executable}"
: "${NUPES_DATA:?NUPES_DATA must name the repository data directory}"
: "${NUPES_TOOLS_DIR:?NUPES_TOOLS_DIR must name the test tools directory}"
: "${MPIEXEC:=mpirun}"
: "${RL_TIMEOUT:=180}"  # seconds any one wait may take (ASan on 2 loaded cores)

RL_WORK=$(mktemp -d /tmp/nupes-resume.XXXXXX) || exit 1
RL_PID=
RL_HOLD=
RL_HOLD_DIR=
RL_SIGNALLED=()
RL_RC=
RL_SIGNAL_TIME=
RL_STOP_SECONDS=
rl_failed=0

rl_cleanup() {
  local rc=$?
  [ "$rl_failed" = 1 ] && rc=1
  if [ -n "$RL_PID" ] && kill -0 "$RL_PID" 2>/dev/null; then
    rl_release
    kill -TERM "$RL_PID" 2>/dev/null
    wait "$RL_PID" 2>/dev/null
  fi
  if [ "$rc" = 0 ]; then
    rm -rf "$RL_WORK"
  else
    echo "---- work directory kept: $RL_WORK"
  fi
  exit "$rc"
}
trap rl_cleanup EXIT

fail() {
  echo "FAIL: $*"
  local f
  for f in "$RL_WORK"/*.err; do
    [ -s "$f" ] && { echo "---- $f"; tail -n 15 "$f"; }
  done
  rl_failed=1
  exit 1
}

rl_log() { printf '%s\n' "$*"; }

# Nanosecond clock; seconds (3 decimals) since a stamp.
rl_now() { date +%s%N; }
rl_seconds_since() {
  local ms=$((($(rl_now) - $1) / 1000000))
  printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# The job keys every resume test uses: bundled model and text from NUPES_DATA, a run small
# enough for CI (32 sequences of 64 tokens) but with blocks long enough that a
# signal lands where the test wants it (0.2-1 s each), and optimiser state saved every 0.05 s.
rl_job_args() {
  local dir=$1
  printf '%s\n' --config "${NUPES_SOURCE_DIR:?}/configs/stories260K.toml" \
    --set "model.path=$NUPES_DATA/stories260K.bin" \
    --set "tokenizer.path=$NUPES_DATA/tok512.bin" \
    --set "calibration.text=$NUPES_DATA/calib-generated.txt" \
    --set calibration.sequences=32 --set calibration.seq_len=64 \
    --set reconstruction.iterations=100 --set run.checkpoint_interval=0.05 \
    --set "run.dir=$dir"
}

rl_start() {
  local name=$1 np=$2
  shift 2
  # Under ASan: no leak check of the job (Open MPI's components leak at exit, as in the
  # other MPI tests); everything else the sanitizer reports still fails the run.
  RL_HOLD_DIR=$RL_WORK/hold-$name
  rm -rf "$RL_HOLD_DIR"
  mkdir -p "$RL_HOLD_DIR"
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    NUPES_TEST_HOLD="$RL_HOLD" NUPES_TEST_HOLD_DIR="$RL_HOLD_DIR" \
    "$MPIEXEC" -np "$np" "$NUPES_BIN" "$@" >"$RL_WORK/$name.out" 2>"$RL_WORK/$name.err" &
  RL_PID=$!
  RL_NAME=$name
  RL_HOLD=
  RL_SIGNAL_TIME=
  RL_SIGNALLED=()
}

rl_finish() {
  local p i alive
  RL_RANK_EXIT_SECONDS=
  if [ -n "$RL_SIGNAL_TIME" ] && [ ${#RL_SIGNALLED[@]} -gt 0 ]; then
    for ((i = 0; i < RL_TIMEOUT * 100; i++)); do # the signalled ranks' exit, every 10 ms
      alive=0
      for p in "${RL_SIGNALLED[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ "$alive" = 0 ] && break
      sleep 0.01
    done
    RL_RANK_EXIT_SECONDS=$(rl_seconds_since "$RL_SIGNAL_TIME")
  fi
  rl_wait_mpirun
  RL_STOP_SECONDS=
  [ -n "$RL_SIGNAL_TIME" ] && RL_STOP_SECONDS=$(rl_seconds_since "$RL_SIGNAL_TIME")
  RL_PID=
}

# Open MPI 4.1's mpirun can deadlock in its own PMIx finalize after a rank was SIGKILLed
# (seen once in test_faults_kill: mpirun's main thread waiting on a PMIx mutex for 6 min,
# the killed rank an unreaped zombie, the other rank gone). So once none of its ranks is
# alive, mpirun gets RL_MPIRUN_GRACE seconds (default 30) to exit, then SIGKILL: its exit
# code is then 137, which fails any test that expects 0 or 75.
: "${RL_MPIRUN_GRACE:=30}"
rl_ranks_alive() {
  local p
  for p in $(pgrep -P "$RL_PID"); do rl_pid_alive "$p" && return 0; done
  return 1
}
rl_wait_mpirun() {
  local gone_since=
  while rl_pid_alive "$RL_PID"; do
    if rl_ranks_alive; then
      gone_since=
    elif [ -z "$gone_since" ]; then
      gone_since=$SECONDS
    elif [ $((SECONDS - gone_since)) -ge "$RL_MPIRUN_GRACE" ]; then
      rl_log "  $RL_NAME: mpirun still running ${RL_MPIRUN_GRACE} s after its ranks exited (Open MPI's PMIx finalize deadlock): killed"
      kill -KILL "$RL_PID" 2>/dev/null
      break
    fi
    sleep 0.1
  done
  wait "$RL_PID"
  RL_RC=$?
}

rl_run() {
  rl_start "$@"
  rl_finish
}

rl_expect_rc() {
  [ "$RL_RC" = "$1" ] || fail "$RL_NAME: exit $RL_RC, expected $1 (see $RL_WORK/$RL_NAME.out/.err)"
}

# Polls COND (a command) every 20 ms until it succeeds; fails if the job has exited first
# (the moment is gone) or after TIMEOUT seconds.
rl_poll() {
  local what=$1 timeout=$2 i
  shift 2
  for ((i = 0; i < timeout * 50; i++)); do
    "$@" && return 0
    if [ -n "$RL_PID" ] && ! kill -0 "$RL_PID" 2>/dev/null; then
      "$@" && return 0
      fail "$RL_NAME exited before $what (see $RL_WORK/$RL_NAME.out)"
    fi
    sleep 0.02
  done
  fail "$RL_NAME: no $what after ${timeout}s"
}

rl_has_line() { grep -qE -- "$2" "$RL_WORK/$1.out" 2>/dev/null; }
rl_wait_line() { rl_poll "line '$2'" "${3:-$RL_TIMEOUT}" rl_has_line "$1" "$2"; }
rl_has_lines() {
  local n
  n=$(grep -cE -- "$2" "$1" 2>/dev/null)
  [ "${n:-0}" -ge "$3" ]
}
rl_wait_lines() { rl_poll "$3 lines '$2' in $1" "${4:-$RL_TIMEOUT}" rl_has_lines "$1" "$2" "$3"; }
rl_wait_file() { rl_poll "file $1" "${2:-$RL_TIMEOUT}" test -e "$1"; }

# The rank's pid: mpirun starts local ranks as its children, each with its world rank in
# OMPI_COMM_WORLD_RANK.
rl_find_rank() {
  local want=$1 p
  for p in $(pgrep -P "$RL_PID"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$want"; then
      RL_FOUND_PID=$p
      return 0
    fi
  done
  return 1
}
rl_rank_pid() {
  RL_FOUND_PID=
  rl_poll "rank $1 process" "$RL_TIMEOUT" rl_find_rank "$1"
}

rl_signal() {
  local sig=$1 r
  shift
  RL_SIGNALLED=()
  for r in "$@"; do
    rl_rank_pid "$r"
    RL_SIGNALLED+=("$RL_FOUND_PID")
  done
  RL_SIGNAL_TIME=$(rl_now)
  kill "-$sig" "${RL_SIGNALLED[@]}" || fail "kill -$sig ${RL_SIGNALLED[*]}"
  rl_release
}

# Held ranks go on (a signalled rank has gone on by itself: it saw its stop).
rl_release() {
  [ -n "$RL_HOLD_DIR" ] && [ -d "$RL_HOLD_DIR" ] && : >"$RL_HOLD_DIR/release.all"
  return 0
}

rl_held() { compgen -G "$RL_HOLD_DIR/held.$1.$2" >/dev/null; }
rl_wait_held() { rl_poll "hold at $1" "$RL_TIMEOUT" rl_held "$1" "${2:-*}"; }

# RANK holds in block NNNN right after its first state save (RL_HOLD listed
# state-saved:NNNN): the block is certainly still running, however fast the machine.
rl_freeze_when_saved() {
  local dir=$1 block=$2 rank=$3
  rl_wait_held "state-saved:$block" "$rank"
  [ -e "$dir/state/block-$block.h5" ] || fail "$RL_NAME: held after saving block $block, but no state file"
  [ -e "$dir/done/block-$block.h5" ] && fail "$RL_NAME: block $block finished while held"
  return 0
}

rl_same_codes() {
  "$NUPES_TOOLS_DIR/compare_checkpoints" "$1" "$2" >"$RL_WORK/compare.txt" 2>&1 ||
    fail "$2 differs from $1: $(tail -n 3 "$RL_WORK/compare.txt")"
}

# Succeeds while PID is a live process (not a zombie waiting to be reaped).
rl_pid_alive() {
  local state
  state=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}
rl_pid_gone() { ! rl_pid_alive "$1"; }

# Counts of done and state files of a run directory.
rl_count() { find "$1" -maxdepth 1 -name 'block-*.h5' 2>/dev/null | wc -l; }
