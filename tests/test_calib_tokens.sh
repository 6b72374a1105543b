#!/usr/bin/env bash
# calibration.tokens: an HDF5 file of int32 ids instead of calibration.text. The ids of the
# same text (flat [n], and cut into rows [N][T]) give codes bit-identical to the text run
# (compare_checkpoints without bounds); bad files exit 2 with a message naming the file
# and the offending dataset entry, before anything is written.
set -u
BIN=${NUPES_BIN:?NUPES_BIN is not set (run through ctest)}
DATA=${NUPES_DATA:?NUPES_DATA is not set}
SRC=${NUPES_SOURCE_DIR:?NUPES_SOURCE_DIR is not set}
TOOLS=${NUPES_TOOLS_DIR:?NUPES_TOOLS_DIR is not set}
TMP=$(mktemp -d /tmp/nupes-calib-tokens.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
export ASAN_OPTIONS=detect_leaks=0 # Open MPI's dlopen'ed components leak; not this test's subject
Q=("$BIN" --config "$SRC/configs/stories260K.toml" --set calibration.sequences=16 --set calibration.seq_len=64
   --set reconstruction.iterations=5)
quantize() { # quantize NAME [--set ...]: run dir $TMP/NAME
    local name=$1
    shift
    "${Q[@]}" --set run.dir="$TMP/$name" "$@" >"$TMP/$name.log" 2>&1
}
make_tokens() { "$TOOLS/make_calib_tokens" "$DATA/tok512.bin" 512 "$DATA/calib-generated.txt" "$@" >/dev/null; }

quantize text || { bad "quantize with calibration.text"; tail "$TMP/text.log"; }
make_tokens "$TMP/flat.h5" && make_tokens "$TMP/rows.h5" --rows 64 || bad "make_calib_tokens"
for kind in flat rows; do
    if quantize "$kind" --set calibration.text= --set calibration.tokens="$TMP/$kind.h5" &&
        "$TOOLS/compare_checkpoints" "$TMP/text/checkpoint.h5" "$TMP/$kind/checkpoint.h5" >"$TMP/cmp-$kind.log" 2>&1
    then ok "calibration.tokens ($kind) gives codes bit-identical to calibration.text"
    else bad "calibration.tokens ($kind)"; tail -5 "$TMP/$kind.log" "$TMP/cmp-$kind.log"; fi
done
fp_text=$(sed -n 's/.*fingerprint \([0-9a-f]*\).*/\1/p' "$TMP/text.log" | head -1)
fp_flat=$(sed -n 's/.*fingerprint \([0-9a-f]*\).*/\1/p' "$TMP/flat.log" | head -1)
if [[ -n $fp_text && $fp_text == "$fp_flat" ]]; then ok "same tokens, same run fingerprint ($fp_text)"
else bad "fingerprints differ: text '$fp_text', tokens '$fp_flat'"; fi

expect_refused() { # expect_refused NAME PATTERN --set ...
    local name=$1 pattern=$2
    shift 2
    quantize "$name" "$@"
    local rc=$?
    if [[ $rc -eq 2 ]] && grep -q -- "$pattern" "$TMP/$name.log" && [[ ! -e $TMP/$name ]]; then
        ok "$name: exit 2, nothing written: $(grep -m1 -- "$pattern" "$TMP/$name.log")"
    else bad "$name: exit $rc, expected 2 with '$pattern' and no run dir"; tail -3 "$TMP/$name.log"; fi
}
make_tokens "$TMP/badid.h5" --set 700 600
expect_refused bad_id "/tokens\[700\] = 600, expected a token id in 0..511" \
    --set calibration.text= --set calibration.tokens="$TMP/badid.h5"
make_tokens "$TMP/rows32.h5" --rows 32
expect_refused bad_rows "rows of 32 tokens, expected calibration.seq_len = 64" \
    --set calibration.text= --set calibration.tokens="$TMP/rows32.h5"
expect_refused missing "none.h5: cannot open" --set calibration.text= --set calibration.tokens="$TMP/none.h5"
expect_refused not_hdf5 "not an HDF5 file" --set calibration.text= --set calibration.tokens="$DATA/tok512.bin"
expect_refused both "calibration" --set calibration.tokens="$TMP/flat.h5"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
