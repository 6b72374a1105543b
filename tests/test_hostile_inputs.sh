#!/bin/bash
# tests/test_hostile_inputs.sh: inputs that used to crash or pass silently (issue 14 item 6)
# end in one line naming the file and what is wrong:
#  - a directory given as calibration text, tokenizer or eval text: exit 2 (was "out of
#    memory allocating 9223372036854775808 bytes");
#  - invalid UTF-8 in the calibration text: exit 2 naming the byte offset (was accepted);
#  - NaN / Inf in a weight: exit 2 naming file, tensor and index, for quantize and eval
#    (was an MPI_ABORT banner, and eval printed "perplexity: -nan" with exit 0);
#  - lr_weights = 1e30: exit 2 (range 0..1); lr_weights = 1, which diverges: exit 3
#    naming the block, nothing written for it (was codes of all +-7 and exit 0);
#  - a full file system at the checkpoint write: exit 3 with the error, no crash (was
#    exit 139), no temporary file left. Needs root (mount -t tmpfs), as CI runs.
set -u
: "${NUPES_BIN:?}" "${NUPES_DATA:?}" "${NUPES_SOURCE_DIR:?}"
work=$(mktemp -d /tmp/nupes-hostile.XXXXXX)
mnt=$work/small
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}

job_args=(--config "$NUPES_SOURCE_DIR/configs/stories260K.toml"
  --set "model.path=$NUPES_DATA/stories260K.bin" --set "tokenizer.path=$NUPES_DATA/tok512.bin"
  --set "calibration.text=$NUPES_DATA/calib-generated.txt" --set calibration.sequences=16
  --set calibration.seq_len=32 --set reconstruction.iterations=40)

# expect NAME RC REGEX CMD...: CMD exits RC, its stderr has exactly one line, matching REGEX.
expect() {
  local name=$1 want=$2 regex=$3 rc
  shift 3
  # Under ASan: no leak check (Open MPI's components leak at exit, as in the other MPI tests).
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$@" >"$work/$name.out" 2>"$work/$name.err"
  rc=$?
  [ "$rc" = "$want" ] || fail "$name: exit $rc, expected $want: $(head -c 600 "$work/$name.err")"
  grep -qE "$regex" "$work/$name.err" || fail "$name: stderr does not match '$regex': $(head -c 600 "$work/$name.err")"
  # (a block's failure ends the job through MPI_Abort, whose banner Open MPI adds)
  [ "${ONE_LINE:-1}" = 0 ] || [ "$(grep -c . "$work/$name.err")" = 1 ] ||
    fail "$name: expected one line on stderr: $(cat "$work/$name.err")"
  grep -qE "perplexity: *-?nan" "$work/$name.out" && fail "$name: printed a NaN perplexity"
  echo "  $name: $(grep -m1 -E "$regex" "$work/$name.err")"
}

eval_args() { # MODEL TEXT TOKENIZER
  echo eval --model "$1" --text "$2" --tokenizer "$3" --seq-len 32
}

echo "== a directory where a file goes"
mkdir "$work/adir"
expect dir-calib 2 "adir: is a directory, expected a text file" \
  "$NUPES_BIN" "${job_args[@]}" --set "calibration.text=$work/adir" --set "run.dir=$work/r1"
expect dir-tok 2 "adir: is a directory, expected a tokenizer file" \
  "$NUPES_BIN" "${job_args[@]}" --set "tokenizer.path=$work/adir" --set "run.dir=$work/r2"
expect dir-eval 2 "adir: is a directory, expected a text file" \
  "$NUPES_BIN" $(eval_args "$NUPES_DATA/stories260K.bin" "$work/adir" "$NUPES_DATA/tok512.bin")

echo "== invalid UTF-8 in the calibration text"
head -c 1000 "$NUPES_DATA/calib-generated.txt" >"$work/bad.txt"
printf 'caf\xc3 \xff' >>"$work/bad.txt"
cat "$NUPES_DATA/calib-generated.txt" >>"$work/bad.txt"
expect utf8 2 "bad.txt: invalid UTF-8 at byte offset 1003 \(byte 0xc3\)" \
  "$NUPES_BIN" "${job_args[@]}" --set "calibration.text=$work/bad.txt" --set "run.dir=$work/r3"

echo "== NaN and Inf weights"
# llama2.c layout: 7 int32 header, tok_embeddings [V][d], attn_norm [L][d], wq [L][d][d], ...
/usr/bin/python3 - "$NUPES_DATA/stories260K.bin" "$work" <<'EOF' || fail "writing the damaged models"
import struct, sys
src, out = sys.argv[1:3]
data = bytearray(open(src, "rb").read())
dim, hidden, L, H, KV, V, S = struct.unpack("<7i", data[:28])
wq = 28 + (V * dim + L * dim) * 4
nan = bytearray(data)
at = wq + (2 * dim * dim + 3 * dim + 5) * 4
nan[at:at + 4] = struct.pack("<f", float("nan"))
open(out + "/nan.bin", "wb").write(nan)
inf = bytearray(data)
at = 28 + (7 * dim + 1) * 4
inf[at:at + 4] = struct.pack("<f", float("inf"))
open(out + "/inf.bin", "wb").write(inf)
big = bytearray(data)  # beyond fp16, the type of the stored group scales
at = wq + (dim * dim + 2 * dim + 3) * 4
big[at:at + 4] = struct.pack("<f", 70000.0)
open(out + "/big.bin", "wb").write(big)
EOF
expect nan-quantize 2 "nan.bin: block 2 wq\[3\]\[5\] = nan, expected a finite weight" \
  "$NUPES_BIN" "${job_args[@]}" --set "model.path=$work/nan.bin" --set "run.dir=$work/r4"
# found before any work: no capture was started, no run.toml written
[ -e "$work/r4/run.toml" ] || compgen -G "$work/r4/activations.h5*" >/dev/null &&
  fail "nan-quantize: the run directory was written before the NaN was found: $(ls -A "$work/r4")"
expect big-quantize 2 "big.bin: block 1 wq\[2\]\[3\] = 70000, expected \|w\| <= 65504: the group scales are stored as fp16" \
  "$NUPES_BIN" "${job_args[@]}" --set "model.path=$work/big.bin" --set "run.dir=$work/rbig"
[ -e "$work/rbig/run.toml" ] && fail "big-quantize: the run directory was written: $(ls -A "$work/rbig")"
expect nan-eval 2 "nan.bin: block 2 wq\[3\]\[5\] = nan, expected a finite weight" \
  "$NUPES_BIN" $(eval_args "$work/nan.bin" "$NUPES_DATA/calib-generated.txt" "$NUPES_DATA/tok512.bin")
expect inf-eval 2 "inf.bin: tok_embeddings\[7\]\[1\] = inf, expected a finite weight" \
  "$NUPES_BIN" $(eval_args "$work/inf.bin" "$NUPES_DATA/calib-generated.txt" "$NUPES_DATA/tok512.bin")

echo "== learning rates out of range, and a diverging block"
expect lr-range 2 "reconstruction.lr_weights=1e30: expected a number in \[0, 1\]" \
  "$NUPES_BIN" "${job_args[@]}" --set reconstruction.lr_weights=1e30 --set "run.dir=$work/r5"
ONE_LINE=0 expect diverge 3 "block 0 diverged: probe loss .* \(more than x100\): nothing written for it; lower reconstruction.lr_weights" \
  "$NUPES_BIN" "${job_args[@]}" --set reconstruction.lr_weights=1 --set "run.dir=$work/r6"
[ -e "$work/r6/done/block-0000.h5" ] && fail "diverge: a done file was written for the diverged block"

echo "== a full file system at the checkpoint write"
mkdir "$mnt"
mount -t tmpfs -o size=150k tmpfs "$mnt" || fail "mount -t tmpfs (needs root)"
expect full 3 "small/ck.h5: cannot reserve .* MB for the file: No space left on device" \
  "$NUPES_BIN" "${job_args[@]}" --set "run.dir=$work/r7" --set "output.path=$mnt/ck.h5"
[ -z "$(ls -A "$mnt")" ] || fail "full: files left on the full file system: $(ls -A "$mnt")"

echo "PASS: test_hostile_inputs"
