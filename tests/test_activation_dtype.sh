#!/bin/bash
# tests/test_activation_dtype.sh: calibration.activation_dtype (docs/design.md 5.2).
#  - a bad value is exit 2 with one line naming the file, line and key (config file) or the
#    --set option, before anything is written;
#  - fp16 activations take half the bytes of fp32 in activations.h5 and in the hand-ons
#    (sequential mode), and h5dump reads them as numbers (the file's type is IEEE half);
#  - a sequential fp16 run on 2 ranks stopped during capture, resumed, stopped again in
#    block 2's setup (the hand-ons of levels 1-2 are on disk) and resumed gives the codes
#    of an uninterrupted fp16 run, bit for bit;
#  - resuming that run directory with bf16 is refused (exit 2) naming the setting.
set -u
# Open MPI's components leak when a job exits on a config error (as in test_dry_run.sh):
# not this test's subject.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
src=${NUPES_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/tests/resume_lib.sh"

args_for() {
  local dir=$1
  shift
  mapfile -t ARGS < <(rl_job_args "$dir")
  ARGS+=(--set reconstruction.iterations=20 --set reconstruction.mode=sequential "$@")
}

# ------------------------------------------------------------------ bad values
echo "== bad values"
cfg=$RL_WORK/bad.toml
sed 's/^activation_dtype = "fp32"/activation_dtype = "half"/' "$src/configs/stories260K.toml" >"$cfg"
line=$(grep -n '^activation_dtype = "half"' "$cfg" | cut -d: -f1)
[ -n "$line" ] || fail "could not write $cfg"
out=$("$NUPES_BIN" quantize --config "$cfg" --set "run.dir=$RL_WORK/bad-run" 2>&1 >/dev/null)
rc=$?
[ "$rc" = 2 ] || fail "config activation_dtype = \"half\": exit $rc, expected 2: $out"
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "more than one line: $out"
[[ $out == *"bad.toml:$line"*"calibration.activation_dtype"*fp16* ]] || fail "message does not name file:line, key and choices: $out"
[ -e "$RL_WORK/bad-run" ] && fail "a bad config created the run directory"
rl_log "  $out"
out=$("$NUPES_BIN" quantize --config "$src/configs/stories260K.toml" --set calibration.activation_dtype=fp8 \
  --set "run.dir=$RL_WORK/bad-run" 2>&1 >/dev/null)
rc=$?
[ "$rc" = 2 ] || fail "--set calibration.activation_dtype=fp8: exit $rc, expected 2: $out"
[[ $out == *"calibration.activation_dtype"* ]] || fail "message does not name the key: $out"
[ -e "$RL_WORK/bad-run" ] && fail "a bad --set created the run directory"
rl_log "  $out"

# ------------------------------------------------------------------ references
echo "== uninterrupted fp32 and fp16 runs (sequential, 2 ranks)"
args_for "$RL_WORK/ref32" --set calibration.activation_dtype=fp32
rl_run ref32 2 "${ARGS[@]}"
rl_expect_rc 0
args_for "$RL_WORK/ref16" --set calibration.activation_dtype=fp16
rl_run ref16 2 "${ARGS[@]}"
rl_expect_rc 0
ref16=$RL_WORK/ref16/checkpoint.h5

# 6 levels x 32 sequences x 64 tokens x d 64: 3 MB of values in fp32; the rest of each
# file (metadata, checksums) is the same few kB in both.
size() { stat -c %s "$1"; }
for f in activations.h5 qinputs/level-0001.h5 qinputs/level-0004.h5; do
  a=$(size "$RL_WORK/ref32/$f") b=$(size "$RL_WORK/ref16/$f")
  rl_log "  $f: fp32 $a bytes, fp16 $b bytes"
  [ $((a - 2 * b)) -gt -65536 ] && [ $((a - 2 * b)) -lt 65536 ] || fail "$f: fp16 $b bytes is not half of fp32 $a"
done
# h5dump reads the fp16 file through its own type conversion (no code of ours): level 0
# (the embeddings) must be the fp32 file's values rounded to fp16, within half an fp16 ulp.
dump() { h5dump -d /inputs -s 0,3,5,0 -c 1,1,1,8 -w 400 "$1" 2>&1 | grep -E '^ *\([0-9,]+\):' | sed 's/.*)://'; }
if command -v h5dump >/dev/null; then
  v32=$(dump "$RL_WORK/ref32/activations.h5") v16=$(dump "$RL_WORK/ref16/activations.h5")
  rl_log "  h5dump /inputs[0][3][5][0..8): fp32 $v32"
  rl_log "                                 fp16 $v16"
  python3 - "$v32" "$v16" <<'PY' || fail "h5dump's fp16 values are not the fp32 ones rounded"
import sys
a = [float(x) for x in sys.argv[1].split(",")]
b = [float(x) for x in sys.argv[2].split(",")]
assert len(a) == len(b) == 8 and any(x != 0 for x in a), (a, b)
for x, y in zip(a, b):  # fp16: 11 significant bits; h5dump prints ~6 digits
    assert abs(x - y) <= abs(x) * 2**-11 * 1.01 + 1e-6, (x, y)
PY
fi

# ------------------------------------------------------------------ stops and resumes
echo "== fp16, stopped during capture, then in block 2's setup; resumed each time"
dir=$RL_WORK/stop16
args_for "$dir" --set calibration.activation_dtype=fp16
RL_HOLD=capture-level
rl_start cap16 2 "${ARGS[@]}"
rl_wait_held capture-level 1
rl_signal TERM 1
rl_finish
rl_expect_rc 75
[ -e "$dir/activations.h5.partial" ] || fail "cap16: no partial capture after the stop"
RL_HOLD=setup:0002
rl_start setup16 2 "${ARGS[@]}"
rl_wait_held setup:0002
rl_signal TERM 0
rl_finish
rl_expect_rc 75
grep -q 'resuming at level' "$RL_WORK/setup16.out" || fail "setup16: the capture did not resume"
[ -e "$dir/qinputs/level-0002.h5" ] || fail "setup16: no hand-on of level 2 before the stop"
rl_run resume16 2 "${ARGS[@]}"
rl_expect_rc 0
rl_same_codes "$ref16" "$dir/checkpoint.h5"
rl_log "  codes identical to the uninterrupted fp16 run"

echo "== the same run directory resumed with bf16: refused"
args_for "$dir" --set calibration.activation_dtype=bf16
rm -f "$dir/checkpoint.h5"
rl_run bf16 2 "${ARGS[@]}"
rl_expect_rc 2
grep -q 'activation_dtype' "$RL_WORK/bf16.err" || fail "bf16: the refusal does not name the setting: $(cat "$RL_WORK/bf16.err")"
rl_log "  $(grep -m1 activation_dtype "$RL_WORK/bf16.err")"
echo "PASS"
