#!/usr/bin/env bash
# eval --kld-base FILE (io/kld_base.h): the first run stores the fp32 logits, later runs
# read them instead of running the fp32 model and print the same statistics; a base made
# from another model, seq-len, text or number of windows is refused with one line (exit
# 2) before any work, and so is a damaged base (its windows' checksums); a base is never
# left half-written. eval --config takes the model, tokenizer and [eval] from a config.
set -uo pipefail
: "${NUPES_BIN:?}" "${NUPES_DATA:?}"
work=$(mktemp -d "${TMPDIR:-/tmp}/nupes-kld-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
failed=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; failed=1; fi; }
D=$NUPES_DATA
python3 - "$D/stories260K.bin" "$work/other.bin" <<'PY'
import array, sys
data = open(sys.argv[1], 'rb').read()
weights = array.array('f'); weights.frombytes(data[28:])
weights[1000] += 0.5  # one weight differs: another model of the same shape
open(sys.argv[2], 'wb').write(data[:28] + weights.tobytes())
PY
run() { # run NAME ARGS...: eval with the common arguments, output in $work/NAME.{out,err}, rc in $work/NAME.rc
  local name=$1; shift
  "$NUPES_BIN" eval --tokenizer "$D/tok512.bin" "$@" > "$work/$name.out" 2> "$work/$name.err"
  echo $? > "$work/$name.rc"
}
common=(--text "$D/eval-generated.txt" --seq-len 64 --sequences 12 --batch 4)
metrics() { grep -E '^(windows|fp32 perplexity|quantized perplexity|mean KL|KL percentiles|top-1)' "$1"; }
run plain --model "$D/stories260K.bin" "${common[@]}" --checkpoint "$work/other.bin"
run create --model "$D/stories260K.bin" "${common[@]}" --checkpoint "$work/other.bin" --kld-base "$work/base.h5"
run reuse --model "$D/stories260K.bin" "${common[@]}" --checkpoint "$work/other.bin" --kld-base "$work/base.h5"
check "create exits 0 and says so" '[ "$(cat $work/create.rc)" = 0 ] && grep -q "(created)" $work/create.out'
check "reuse exits 0 without the fp32 pass" '[ "$(cat $work/reuse.rc)" = 0 ] && grep -q "(reused, no fp32 pass)" $work/reuse.out'
check "no temporary file is left" '[ "$(ls -A $work | grep -c "^\.")" = 0 ]'
check "plain, create and reuse print the same statistics" \
  'diff <(metrics $work/plain.out) <(metrics $work/create.out) && diff <(metrics $work/plain.out) <(metrics $work/reuse.out)'
check "statistics are printed with uncertainties and percentiles" \
  '[ "$(metrics $work/reuse.out | grep -c "±")" = 4 ] && grep -q "^KL percentiles: 90% .*, 99% .*, 99.9% .*, max " $work/reuse.out'
# Refusals: exit 2, one line naming the base and what differs.
refused() { # refused NAME PATTERN
  [ "$(cat "$work/$1.rc")" = 2 ] && [ "$(wc -l < "$work/$1.err")" = 1 ] && grep -q "$2" "$work/$1.err" ||
    { cat "$work/$1.err"; return 1; }
}
run model --model "$work/other.bin" "${common[@]}" --kld-base "$work/base.h5"
check "another model is refused" 'refused model "base.h5: made from another model"'
run seqlen --model "$D/stories260K.bin" --text "$D/eval-generated.txt" --seq-len 32 --sequences 12 --kld-base "$work/base.h5"
check "another seq-len is refused" 'refused seqlen "base.h5: made with --seq-len 64, not 32"'
run text --model "$D/stories260K.bin" --text "$D/calib-generated.txt" --seq-len 64 --sequences 12 --kld-base "$work/base.h5"
check "another text is refused" 'refused text "base.h5: made from another text"'
run windows --model "$D/stories260K.bin" --text "$D/eval-generated.txt" --seq-len 64 --sequences 11 --kld-base "$work/base.h5"
check "another number of windows is refused" 'refused windows "base.h5: made from another text or --sequences (12 windows, now 11)"'
# Damage: a few bytes in the middle of the logits (the file's middle) changes a window.
cp "$work/base.h5" "$work/damaged.h5"
python3 -c "import os,sys; p=sys.argv[1]; f=open(p,'r+b'); f.seek(os.path.getsize(p)//2); f.write(b'\x12\x34\x56\x78')" "$work/damaged.h5"
run damaged --model "$D/stories260K.bin" "${common[@]}" --checkpoint "$work/other.bin" --kld-base "$work/damaged.h5"
check "a damaged base is refused before any work" 'refused damaged "damaged.h5: window [0-9]*: checksum mismatch" && [ ! -s $work/damaged.out ]'
run nodir --model "$D/stories260K.bin" "${common[@]}" --kld-base "$work/missing/base.h5"
check "an unwritable base directory is refused" 'refused nodir "cannot write to directory"'
# --config: model, tokenizer and [eval] from the file; the command line wins.
cat > "$work/job.toml" <<TOML
[model]
path = "$D/stories260K.bin"
[tokenizer]
path = "$D/tok512.bin"
[calibration]
text = "$D/calib-generated.txt"
[eval]
text = "$D/eval-generated.txt"
seq_len = 64
sequences = 12
TOML
"$NUPES_BIN" eval --config "$work/job.toml" --batch 4 --checkpoint "$work/other.bin" > "$work/config.out" 2>&1
check "eval --config uses the [eval] section" 'diff <(metrics $work/plain.out) <(metrics $work/config.out)'
"$NUPES_BIN" eval --config "$work/job.toml" --sequences 3 > "$work/config3.out" 2>&1
check "the command line wins over the config" 'grep -q "^windows: 3 of 64 tokens" $work/config3.out'
printf '[model]\npath = "%s"\n' "$D/stories260K.bin" > "$work/noeval.toml"
"$NUPES_BIN" eval --config "$work/noeval.toml" --tokenizer "$D/tok512.bin" > /dev/null 2> "$work/noeval.err"; rc=$?
check "a config without eval.text is refused (exit 2)" '[ $rc = 2 ] && grep -q "noeval.toml: eval.text is not set" $work/noeval.err'
if [ $failed = 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; exit 1; fi
