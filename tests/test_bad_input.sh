#!/usr/bin/env bash
# nupes-mpi eval on bad input (and a BLAS kernel this CPU cannot run): each case must exit
# 2 with one line on stderr that names the file (or option) and what was wrong. Then the
# end-to-end protocol check: fp32 perplexity of the bundled model on eval-generated.txt at
# T = 256 is 4.4606 (198 windows).
set -u
BIN=${NUPES_BIN:?NUPES_BIN is not set (run through ctest)}
DATA=${NUPES_DATA:?NUPES_DATA is not set}
MODEL=$DATA/stories260K.bin
TOK=$DATA/tok512.bin
TEXT=$DATA/eval-generated.txt
TMP=$(mktemp -d /tmp/nupes-bad-input.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
passed=0
failed=0

# expect_error NAME FRAGMENT ARGS...: exit code 2, exactly one stderr line containing
# FRAGMENT, nothing on stdout.
expect_error() {
    local name=$1 fragment=$2
    shift 2
    "$BIN" eval "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    local lines
    lines=$(wc -l <"$TMP/err")
    if [[ $rc -eq 2 && $lines -eq 1 && ! -s $TMP/out ]] && grep -qF -- "$fragment" "$TMP/err"; then
        echo "ok   $name: $(cat "$TMP/err")"
        passed=$((passed + 1))
    else
        echo "FAIL $name: exit $rc, $lines stderr lines, expected exit 2 and one line with '$fragment'"
        sed 's/^/     stderr: /' "$TMP/err"
        sed 's/^/     stdout: /' "$TMP/out"
        failed=$((failed + 1))
    fi
}

# patch_header SRC DST INDEX VALUE: copy SRC to DST with int32 header field INDEX set.
patch_header() {
    python3 - "$1" "$2" "$3" "$4" <<'EOF'
import struct, sys
src, dst, index, value = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = bytearray(open(src, "rb").read())
struct.pack_into("<i", data, 4 * index, value)
open(dst, "wb").write(data)
EOF
}

run_ok() { "$BIN" eval --model "$MODEL" --tokenizer "$TOK" --text "$TEXT" "$@"; }

# ---------------------------------------------------------------- bad models
expect_error "missing model" "$TMP/nope.bin: cannot open model" \
    --model "$TMP/nope.bin" --tokenizer "$TOK" --text "$TEXT"
head -c 1000 "$MODEL" >"$TMP/truncated.bin"
expect_error "truncated model" "$TMP/truncated.bin: file is 1000 bytes, the header implies 1056540" \
    --model "$TMP/truncated.bin" --tokenizer "$TOK" --text "$TEXT"
head -c 10 "$MODEL" >"$TMP/tiny.bin"
expect_error "model shorter than its header" "$TMP/tiny.bin: file is 10 bytes, expected at least the 28-byte" \
    --model "$TMP/tiny.bin" --tokenizer "$TOK" --text "$TEXT"
patch_header "$MODEL" "$TMP/heads0.bin" 3 0
expect_error "n_heads = 0" "$TMP/heads0.bin: header n_heads = 0, expected > 0" \
    --model "$TMP/heads0.bin" --tokenizer "$TOK" --text "$TEXT"
patch_header "$MODEL" "$TMP/kv3.bin" 4 3
expect_error "n_kv_heads not dividing n_heads" "$TMP/kv3.bin: header n_heads = 8 is not divisible by n_kv_heads = 3" \
    --model "$TMP/kv3.bin" --tokenizer "$TOK" --text "$TEXT"
patch_header "$MODEL" "$TMP/hidden.bin" 1 200
expect_error "sizes disagree with the file" "$TMP/hidden.bin: file is 1056540 bytes, the header implies 1164060" \
    --model "$TMP/hidden.bin" --tokenizer "$TOK" --text "$TEXT"
patch_header "$MODEL" "$TMP/big.bin" 0 65536
expect_error "dim 65536 (sizes past 32 bits)" "$TMP/big.bin: file is 1056540 bytes, the header implies 258528247836" \
    --model "$TMP/big.bin" --tokenizer "$TOK" --text "$TEXT"
patch_header "$MODEL" "$TMP/huge.bin" 0 1073741824
expect_error "dim 2^30 (sizes past 64 bits)" "$TMP/huge.bin: header sizes overflow 64 bits" \
    --model "$TMP/huge.bin" --tokenizer "$TOK" --text "$TEXT"

# ---------------------------------------------------------------- bad tokenizer and text
expect_error "tokenizer of another vocabulary" "$DATA/llama2-tokenizer/tokenizer.bin: holds 32000 tokens, expected 512" \
    --model "$MODEL" --tokenizer "$DATA/llama2-tokenizer/tokenizer.bin" --text "$TEXT"
expect_error "missing tokenizer file" "$TMP/tok.bin: cannot open tokenizer" \
    --model "$MODEL" --tokenizer "$TMP/tok.bin" --text "$TEXT"
: >"$TMP/empty.txt"
expect_error "empty text" "$TMP/empty.txt: text file is empty" \
    --model "$MODEL" --tokenizer "$TOK" --text "$TMP/empty.txt"
echo "Once upon a time, there was a little dog." >"$TMP/short.txt"
expect_error "text shorter than one sequence" "$TMP/short.txt: 14 tokens, fewer than one sequence of 256" \
    --model "$MODEL" --tokenizer "$TOK" --text "$TMP/short.txt"
expect_error "missing text" "$TMP/none.txt: cannot open text" \
    --model "$MODEL" --tokenizer "$TOK" --text "$TMP/none.txt"

# ---------------------------------------------------------------- bad command lines
expect_error "seq-len beyond the model" "--seq-len = 1024, expected 2..512 ($MODEL: seq_len)" \
    --model "$MODEL" --tokenizer "$TOK" --text "$TEXT" --seq-len 1024
expect_error "seq-len not a number" "--seq-len = '12x', expected a positive integer" \
    --model "$MODEL" --tokenizer "$TOK" --text "$TEXT" --seq-len 12x
expect_error "unknown option" "unknown option '--bogus'" \
    --model "$MODEL" --tokenizer "$TOK" --text "$TEXT" --bogus
expect_error "missing tokenizer option" "--tokenizer is required" --model "$MODEL" --text "$TEXT"
expect_error "option without value" "option '--text' needs a value" --model "$MODEL" --tokenizer "$TOK" --text
expect_error "stray argument" "unexpected argument 'extra'" \
    --model "$MODEL" --tokenizer "$TOK" --text "$TEXT" extra
expect_error "missing checkpoint" "$TMP/ck.h5: cannot open model" \
    --model "$MODEL" --tokenizer "$TOK" --text "$TEXT" --checkpoint "$TMP/ck.h5"

# ---------------------------------------------------------------- help and end to end
if "$BIN" eval --help | grep -q -- "--sequences N"; then
    echo "ok   eval --help"
    passed=$((passed + 1))
else
    echo "FAIL eval --help does not describe --sequences"
    failed=$((failed + 1))
fi

if run_ok --seq-len 256 >"$TMP/eval.out" 2>"$TMP/eval.err"; then
    cat "$TMP/eval.out"
    ppl=$(sed -n 's/^fp32 perplexity: \([0-9.]*\) ± [0-9.]*$/\1/p' "$TMP/eval.out")
    windows=$(sed -n 's/^windows: \([0-9]*\) of 256 tokens.*/\1/p' "$TMP/eval.out")
    if [[ $windows == 198 ]] && python3 -c "import sys; p = float('$ppl'); sys.exit(abs(p / 4.4606 - 1) > 1e-3)"; then
        echo "ok   eval-generated.txt at T 256: perplexity $ppl (expected 4.4606 within 0.1%), $windows windows"
        passed=$((passed + 1))
    else
        echo "FAIL eval-generated.txt at T 256: perplexity '$ppl', windows '$windows'; expected 4.4606 and 198"
        failed=$((failed + 1))
    fi
else
    echo "FAIL eval on eval-generated.txt exited non-zero: $(cat "$TMP/eval.err")"
    failed=$((failed + 1))
fi

# --sequences limits the windows; the batch size does not change the result.
a=$(run_ok --seq-len 128 --sequences 5 --batch 2 | grep -E '^(windows|fp32)')
b=$(run_ok --seq-len 128 --sequences 5 --batch 5 | grep -E '^(windows|fp32)')
if [[ $a == "$b" && $a == *"windows: 5 of 128 tokens"* ]]; then
    echo "ok   --sequences 5 at batch 2 and 5: $(echo "$a" | tr '\n' ' ')"
    passed=$((passed + 1))
else
    echo "FAIL --sequences/--batch: '$a' vs '$b'"
    failed=$((failed + 1))
fi

# The comparison path, with llama2.c files standing in for the quantized checkpoint: the
# model against itself gives KL 0 and full agreement; a perturbed copy gives KL > 0.
same=$(run_ok --seq-len 128 --sequences 4 --checkpoint "$MODEL")
if [[ $same == *"mean KL(fp32 || quantized): 0.000000 ± 0.000000 nats/token over 512 positions"* &&
      $same == *"top-1 agreement: 100.00%"* &&
      $(sed -n 's/^fp32 perplexity: //p' <<<"$same") == $(sed -n 's/^quantized perplexity: //p' <<<"$same") ]]; then
    echo "ok   model against itself: KL 0, agreement 100%, equal perplexities"
    passed=$((passed + 1))
else
    echo "FAIL model against itself:"
    echo "$same"
    failed=$((failed + 1))
fi
python3 - "$MODEL" "$TMP/noisy.bin" <<'EOF2'
import random, struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
random.seed(1)
start = 28 + 4 * (512 * 64 + 5 * 64)  # wq of block 0
for i in range(64 * 64):
    at = start + 4 * i
    w, = struct.unpack_from("<f", data, at)
    struct.pack_into("<f", data, at, w + random.gauss(0, 0.05))
open(sys.argv[2], "wb").write(data)
EOF2
noisy=$(run_ok --seq-len 128 --sequences 4 --checkpoint "$TMP/noisy.bin")
kl=$(sed -n 's/^mean KL(fp32 || quantized): \([0-9.]*\) .*/\1/p' <<<"$noisy")
agree=$(sed -n 's/^top-1 agreement: \([0-9.]*\)% ± [0-9.]*%$/\1/p' <<<"$noisy")
if python3 -c "import sys; sys.exit(not (0 < float('$kl') < 1 and 50 < float('$agree') < 100))"; then
    echo "ok   perturbed wq: KL $kl nats/token, top-1 agreement $agree%"
    passed=$((passed + 1))
else
    echo "FAIL perturbed wq: KL '$kl', agreement '$agree'"
    echo "$noisy"
    failed=$((failed + 1))
fi
python3 - "$TMP/other.bin" <<'EOF2'
import struct, sys
d, f, L, H, Hkv, V, S = 64, 100, 5, 8, 4, 512, 512  # hidden_dim 100 instead of 172
hs, dkv = d // H, Hkv * d // H
n = V * d + L * d + L * (2 * d * d + 2 * dkv * d) + L * d + 3 * L * f * d + d + S * hs
open(sys.argv[1], "wb").write(struct.pack("<7i", d, f, L, H, Hkv, V, S) + bytes(4 * n))
EOF2
expect_error "checkpoint of another shape" "$TMP/other.bin: hidden_dim = 100, expected 172 (the model's)" \
    --model "$MODEL" --tokenizer "$TOK" --text "$TEXT" --checkpoint "$TMP/other.bin"
# A checkpoint with a shorter seq_len (the RoPE tables at the end shrink with it) limits T.
patch_header "$MODEL" "$TMP/short-ctx.bin" 6 128
truncate -s $((1056540 - (512 - 128) * 8 * 4)) "$TMP/short-ctx.bin"
expect_error "seq-len beyond the checkpoint" "--seq-len = 256, expected 2..128 ($TMP/short-ctx.bin: seq_len)" \
    --model "$MODEL" --tokenizer "$TOK" --text "$TEXT" --checkpoint "$TMP/short-ctx.bin" --seq-len 256

# An OPENBLAS_CORETYPE naming a kernel this CPU cannot run (SkylakeX without AVX-512)
# would die of SIGILL at the first product: refused before any work. On a CPU with
# AVX-512 the same kernel runs, and eval must succeed under it.
if grep -qw avx512f /proc/cpuinfo && grep -qw avx512bw /proc/cpuinfo && grep -qw avx512vl /proc/cpuinfo &&
    grep -qw avx512dq /proc/cpuinfo; then
    if OPENBLAS_CORETYPE=SkylakeX "$BIN" eval --model "$MODEL" --tokenizer "$TOK" --text "$TEXT" \
        >"$TMP/skx.out" 2>"$TMP/skx.err"; then
        echo "ok   OPENBLAS_CORETYPE=SkylakeX on an AVX-512 CPU: eval runs"; passed=$((passed + 1))
    else
        echo "FAIL OPENBLAS_CORETYPE=SkylakeX on an AVX-512 CPU: exit $?"; cat "$TMP/skx.err"; failed=$((failed + 1))
    fi
else
    OPENBLAS_CORETYPE=SkylakeX expect_error "SkylakeX kernel without AVX-512" \
        "OpenBLAS kernel SkylakeX (OPENBLAS_CORETYPE=SkylakeX) needs AVX-512 (F, BW, VL, DQ), which this CPU lacks" \
        --model "$MODEL" --tokenizer "$TOK" --text "$TEXT"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
