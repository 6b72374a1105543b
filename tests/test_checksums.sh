#!/bin/bash
# tests/test_checksums.sh: one flipped bit in any file of a run directory or in the
# checkpoint is detected (io/h5sum.h, io/activations.h, io/qlevel_file.h):
#  - a done file, a level of activations.h5 and a hand-on (qinputs/level-NNNN.h5), each
#    with one bit flipped in its data between two runs: the re-run warns in one line
#    naming the file, redoes that artifact, exits 0, and its codes are identical to the
#    undamaged run's;
#  - a done file of another block, and one of another run (foreign fingerprint): detected,
#    warned about and redone, identical codes;
#  - the checkpoint: a bit flipped in a dataset's data, in a string attribute (global
#    heap) and in a number attribute: `verify` exits 2 naming the object, and eval, export
#    and generate refuse it; then 20 bits flipped at seeded random offsets: each is either
#    refused by `verify` or changes nothing h5dump can see (no flip may change a number
#    unnoticed);
#  - a checkpoint without checksums (format_version 1, as written before them): read with
#    a warning saying how to rewrite it; `verify` refuses to vouch for it (exit 2).
set -u
src=${NUPES_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$src/tests/resume_lib.sh"
t_start=$(rl_now)
PY=/usr/bin/python3 # Debian's python3-h5py
# Under ASan: no leak check of nupes-mpi (Open MPI's components leak at exit).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
FLIP=$RL_WORK/flip.py
# In the sanitizer build the plugin links the ASan/UBSan runtimes, which must come first in
# the (uninstrumented) h5dump that loads it.
preload=$(ldd "$HDF5_PLUGIN_PATH/libH5Zzstd.so" | awk '/lib(asan|ubsan)\.so/ { print $3 }' | paste -sd: -)
h5dump_p() { env ${preload:+LD_PRELOAD=$preload} h5dump "$@"; }

# flip.py MODE FILE ARGS...: flips one bit and prints the byte offset.
#   data FILE DATASET [ELEMENT]  a bit of element ELEMENT (default: the middle) of DATASET's
#                                stored bytes (contiguous: the element itself; chunked:
#                                that byte of the first chunk, which is compressed)
#   text FILE TEXT               a bit in the middle of the one occurrence of TEXT
#   double FILE OBJECT ATTR      a bit of the float64 value of OBJECT's attribute ATTR
#   random FILE SEED             a seeded random bit anywhere in the file
cat >"$FLIP" <<'EOF'
import random, struct, sys
import h5py

def flip(path, offset, bit=3):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ (1 << bit)]))
    print(offset)

def find_unique(path, pattern):
    data = open(path, "rb").read()
    at = data.find(pattern)
    if at < 0 or data.find(pattern, at + 1) >= 0:
        sys.exit("pattern found %d times" % data.count(pattern))
    return at

mode, path = sys.argv[1], sys.argv[2]
if mode == "data":
    with h5py.File(path, "r") as f:
        d = f[sys.argv[3]]
        off = d.id.get_offset()
        item = d.dtype.itemsize
        if off is not None:
            elem = int(sys.argv[4]) if len(sys.argv) > 4 else d.size // 2
            off += elem * item + item - 2  # a mantissa/low byte: the value stays finite
        else:
            info = d.id.get_chunk_info(0)
            off = info.byte_offset + info.size // 2
    flip(path, off)
elif mode == "text":
    pattern = sys.argv[3].encode()
    flip(path, find_unique(path, pattern) + len(pattern) // 2)
elif mode == "double":
    with h5py.File(path, "r") as f:
        v = float(f[sys.argv[3]].attrs[sys.argv[4]])
    flip(path, find_unique(path, struct.pack("<d", v)) + 4)
elif mode == "random":
    size = len(open(path, "rb").read())
    rng = random.Random(int(sys.argv[3]))
    flip(path, rng.randrange(size), rng.randrange(8))
EOF

args_for() {
  local dir=$1
  shift
  mapfile -t ARGS < <(rl_job_args "$dir")
  ARGS+=(--set reconstruction.mode=pipelined --set reconstruction.iterations=40 "$@")
}

# The re-run of DIR: exit 0, a warning matching WARN on stderr, codes identical to ref.
rerun_expect() {
  local name=$1 dir=$2 warn=$3
  args_for "$dir"
  rl_run "$name" 2 "${ARGS[@]}"
  rl_expect_rc 0
  grep -qE "warning: .*$warn" "$RL_WORK/$name.err" ||
    fail "$name: no warning matching '$warn': $(cat "$RL_WORK/$name.err")"
  [ "$(grep -c warning "$RL_WORK/$name.err")" = 1 ] ||
    fail "$name: expected one warning line: $(cat "$RL_WORK/$name.err")"
  rl_same_codes "$ref" "$dir/checkpoint.h5"
  rl_log "  $name: $(grep -m1 warning "$RL_WORK/$name.err")"
}

echo "== reference run (2 ranks, pipelined)"
dir=$RL_WORK/run
args_for "$dir"
rl_run ref 2 "${ARGS[@]}"
rl_expect_rc 0
ref=$RL_WORK/ref.h5
cp "$dir/checkpoint.h5" "$ref"
"$NUPES_BIN" verify "$ref" >"$RL_WORK/verify.out" 2>&1 || fail "verify of a sound checkpoint: $(cat "$RL_WORK/verify.out")"
grep -q ": ok (" "$RL_WORK/verify.out" || fail "verify: $(cat "$RL_WORK/verify.out")"

# ------------------------------------------------------------------ run directory
echo "== a bit flipped in a done file's codes"
"$PY" "$FLIP" data "$dir/done/block-0002.h5" wq/codes >/dev/null || fail "flip done file"
rerun_expect done-flip "$dir" "done/block-0002.h5: .*/wq/codes.*(checksum mismatch|cannot read).*block 2 will be done again"

echo "== a bit flipped in activations.h5 level 3 (and block 3 to redo, so it reads them)"
N=32 T=64 d=64
"$PY" "$FLIP" data "$dir/activations.h5" inputs $(((3 * N + 5) * T * d + 100)) >/dev/null || fail "flip activations"
rm "$dir/done/block-0003.h5"
rerun_expect act-flip "$dir" "activations.h5: /inputs level 3 sequence 5: checksum mismatch.*capturing again"
grep -q "capture: .* through 5 blocks" "$RL_WORK/act-flip.out" || fail "act-flip: no new capture"

echo "== a bit flipped in the hand-on of level 2 (and block 2 to redo, so it reads it)"
"$PY" "$FLIP" data "$dir/qinputs/level-0002.h5" qinputs $((7 * T * d + 9)) >/dev/null || fail "flip hand-on"
rm "$dir/done/block-0002.h5"
rerun_expect qin-flip "$dir" "level-0002.h5: /qinputs sequence 7: checksum mismatch.*handing level 2 on again"

echo "== a done file of another block, and one of another run"
cp "$dir/done/block-0001.h5" "$dir/done/block-0004.h5"
rerun_expect wrong-block "$dir" "block-0004.h5: block = 1, expected 4.*block 4 will be done again"
other=$RL_WORK/other
args_for "$other" --set reconstruction.seed=9
rl_run other 1 "${ARGS[@]}"
rl_expect_rc 0
cp "$other/done/block-0000.h5" "$dir/done/block-0000.h5"
rerun_expect foreign "$dir" "block-0000.h5: fingerprint = .*another run.*block 0 will be done again"

# ------------------------------------------------------------------ checkpoint
# verify on FILE must exit 2 with a line matching WHAT; eval, export, generate refuse it.
expect_refused() {
  local file=$1 what=$2 out=$RL_WORK/refused.txt rc
  "$NUPES_BIN" verify "$file" >"$out" 2>&1
  rc=$?
  [ "$rc" = 2 ] || fail "verify $file: exit $rc, expected 2: $(cat "$out")"
  grep -qE "$what" "$out" || fail "verify $file: message does not match '$what': $(cat "$out")"
  rl_log "  verify: $(head -n1 "$out")"
  "$NUPES_BIN" eval --model "$NUPES_DATA/stories260K.bin" --tokenizer "$NUPES_DATA/tok512.bin" \
    --text "$NUPES_DATA/calib-generated.txt" --seq-len 64 --checkpoint "$file" >"$out" 2>&1
  rc=$?
  [ "$rc" = 0 ] && fail "eval accepted a damaged checkpoint: $(cat "$out")"
  grep -qE "$what" "$out" || fail "eval: message does not match '$what': $(cat "$out")"
  "$NUPES_BIN" export --checkpoint "$file" --format llama2c --out "$RL_WORK/x.bin" >"$out" 2>&1 &&
    fail "export accepted a damaged checkpoint"
  [ -e "$RL_WORK/x.bin" ] && fail "export wrote a file from a damaged checkpoint"
  "$NUPES_BIN" generate --checkpoint "$file" --tokenizer "$NUPES_DATA/tok512.bin" --steps 20 >"$out" 2>&1 &&
    fail "generate accepted a damaged checkpoint: $(cat "$out")"
  return 0
}

echo "== the checkpoint: a bit in a dataset's data, in a string attribute, in a number attribute"
bad=$RL_WORK/bad.h5
cp "$ref" "$bad"
"$PY" "$FLIP" data "$bad" blocks/0001/w2/scale >/dev/null || fail "flip checkpoint data"
expect_refused "$bad" "/blocks/0001/w2/scale.*(checksum mismatch|cannot read)"
cp "$ref" "$bad"
"$PY" "$FLIP" text "$bad" "iterations = 40" >/dev/null || fail "flip config attribute"
expect_refused "$bad" ": /: attribute checksum mismatch"
cp "$ref" "$bad"
"$PY" "$FLIP" double "$bad" blocks/0003 loss_init >/dev/null || fail "flip loss attribute"
expect_refused "$bad" "/blocks/0003"

echo "== 20 random bit flips in the checkpoint: refused, or nothing changed"
h5dump_p "$ref" >"$RL_WORK/ref.dump" 2>&1 || fail "h5dump of the reference: $(tail -n 3 "$RL_WORK/ref.dump")"
refused=0 unchanged=0
for seed in $(seq 1 20); do
  cp "$ref" "$bad"
  at=$("$PY" "$FLIP" random "$bad" "$seed") || fail "random flip $seed"
  if "$NUPES_BIN" verify "$bad" >"$RL_WORK/v.out" 2>&1; then
    h5dump_p "$bad" >"$RL_WORK/bad.dump" 2>&1
    cmp -s "$RL_WORK/ref.dump" "$RL_WORK/bad.dump" ||
      fail "flip $seed at byte $at: verify said ok but h5dump differs: $(diff "$RL_WORK/ref.dump" "$RL_WORK/bad.dump" | head -n 6)"
    unchanged=$((unchanged + 1))
  else
    refused=$((refused + 1))
  fi
done
rl_log "  20 flips: $refused refused, $unchanged changed nothing"

echo "== a checkpoint without checksums (format_version 1): read with a warning, not verified"
old=$RL_WORK/v1.h5
cp "$ref" "$old"
# Reading the scales decompresses them through the zstd plugin; in the ASan build the
# plugin needs the sanitizer runtimes loaded first ($preload, as for h5dump above).
env ${preload:+LD_PRELOAD=$preload ASAN_OPTIONS=detect_leaks=0} "$PY" - "$old" <<'EOF' || fail "making a format_version 1 checkpoint"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs["format_version"] = np.int64(1)
    del f.attrs["quantizer"]  # version 3 on
    sides = []
    def strip(name, obj):
        for a in ("checksum", "attrs_checksum"):
            if a in obj.attrs:
                del obj.attrs[a]
        if isinstance(obj, h5py.Dataset) and name.split("/")[-1] in ("scale", "exponent"):
            sides.append(name)
    f.visititems(strip)
    for name in sides:  # version 1 stored fp32 scales and exponents
        v = f[name][()].astype(np.float32)
        del f[name]
        f.create_dataset(name, data=v)
    del f.attrs["attrs_checksum"]
EOF
"$NUPES_BIN" verify "$old" >"$RL_WORK/old.out" 2>&1
rc=$?
[ "$rc" = 2 ] || fail "verify of a v1 checkpoint: exit $rc: $(cat "$RL_WORK/old.out")"
grep -q "format_version 1 has no checksums.*re-run" "$RL_WORK/old.out" || fail "verify v1: $(cat "$RL_WORK/old.out")"
"$NUPES_BIN" eval --model "$NUPES_DATA/stories260K.bin" --tokenizer "$NUPES_DATA/tok512.bin" \
  --text "$NUPES_DATA/calib-generated.txt" --seq-len 64 --checkpoint "$old" >"$RL_WORK/old.out" 2>&1 ||
  fail "eval of a v1 checkpoint: $(cat "$RL_WORK/old.out")"
grep -q "warning: .*format_version 1 has no checksums.*re-run" "$RL_WORK/old.out" ||
  fail "eval v1: no warning: $(cat "$RL_WORK/old.out")"

echo "PASS: test_checksums ($(rl_seconds_since "$t_start") s)"
