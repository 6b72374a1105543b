#!/usr/bin/env bash
# nupes-mpi export on a real checkpoint (a quick NUPES quantize of the bundled model):
#  - llama2c: read back, weights and logits bit-identical to the dequantized checkpoint;
#  - safetensors F32: weights bit-identical after un-permuting q/k; logits within 1e-4
#    (HF's half-rope layout sums the q.k dot products in another order, so not bit-exact);
#    F16 / BF16 within their rounding; HF -> llama2c round trip byte-identical to the
#    direct llama2c export (un-permute(permute(w)) = w exactly);
#  - the fp32 bundled model exported to llama2c is byte-identical to the original file up
#    to the RoPE tables (llama2.c's export computed them with torch; ours differ by <= 1 ulp);
#  - eval on the exports gives the checkpoint's numbers; bad command lines exit 2 and
#    leave no file behind.
set -u
BIN=${NUPES_BIN:?NUPES_BIN is not set (run through ctest)}
DATA=${NUPES_DATA:?NUPES_DATA is not set}
SRC=${NUPES_SOURCE_DIR:?NUPES_SOURCE_DIR is not set}
TOOLS=${NUPES_TOOLS_DIR:?NUPES_TOOLS_DIR is not set}
TMP=$(mktemp -d /tmp/nupes-export.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
check() { # check NAME CMD...: passes when CMD exits 0
    local name=$1
    shift
    if "$@" >"$TMP/check.log" 2>&1; then ok "$name"; else bad "$name"; sed 's/^/     /' "$TMP/check.log"; fi
}
expect_exit() { # expect_exit CODE NAME CMD...
    local code=$1 name=$2
    shift 2
    "$@" >"$TMP/out.log" 2>"$TMP/err.log"
    local rc=$?
    if [[ $rc -eq $code ]]; then ok "$name (exit $rc: $(head -c 160 "$TMP/err.log" | head -1))"
    else bad "$name: exit $rc, expected $code"; cat "$TMP/err.log"; fi
}

# The fixture: leak reports from Open MPI's dlopen'ed components are not this test's subject.
CK=$TMP/run/checkpoint.h5
if ! ASAN_OPTIONS=detect_leaks=0 "$BIN" --config "$SRC/configs/stories260K.toml" --set run.dir="$TMP/run" \
        --set calibration.sequences=16 --set calibration.seq_len=64 --set reconstruction.iterations=5 \
        >"$TMP/quantize.log" 2>&1; then
    echo "FAIL quantize fixture"; tail -20 "$TMP/quantize.log"; exit 1
fi

check "export llama2c" "$BIN" export --checkpoint "$CK" --format llama2c --out "$TMP/q.bin"
check "llama2c export: weights and logits bit-identical to the checkpoint" "$TOOLS/compare_models" "$CK" "$TMP/q.bin"
check "export safetensors f32" "$BIN" export --checkpoint "$CK" --format safetensors --out "$TMP/hf32"
check "safetensors f32: weights bit-identical (q/k un-permuted), logits within 1e-4" \
    "$TOOLS/compare_models" "$CK" "$TMP/hf32" --logits-tol 1e-4
check "safetensors f32 -> llama2c: byte-identical to the direct llama2c export" \
    bash -c "'$BIN' export --checkpoint '$TMP/hf32' --format llama2c --out '$TMP/rt.bin' && cmp '$TMP/rt.bin' '$TMP/q.bin'"
check "export safetensors f16" "$BIN" export --checkpoint "$CK" --format safetensors --out "$TMP/hf16" --dtype f16
check "safetensors f16: weights within 2e-3 (|w| < 2, half precision), logits within 5e-2" \
    "$TOOLS/compare_models" "$CK" "$TMP/hf16" --weights-tol 2e-3 --logits-tol 5e-2
check "export safetensors bf16" "$BIN" export --checkpoint "$CK" --format safetensors --out "$TMP/hfbf" --dtype bf16
check "safetensors bf16: weights within 1.6e-2, logits within 0.3" \
    "$TOOLS/compare_models" "$CK" "$TMP/hfbf" --weights-tol 1.6e-2 --logits-tol 0.3
check "safetensors header: dtypes, names, 8-byte aligned data, config.json fields" python3 - "$TMP/hf16" <<'EOF_PY'
import json, struct, sys
d = sys.argv[1]
with open(d + "/model.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
    size = f.seek(0, 2)
assert (8 + n) % 8 == 0, n
meta = h.pop("__metadata__")
assert meta == {"format": "pt"}, meta
assert all(t["dtype"] == "F16" for t in h.values())
spans = sorted(tuple(t["data_offsets"]) for t in h.values())
assert spans[0][0] == 0 and spans[-1][1] == size - 8 - n
assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), "holes or overlaps"
assert h["model.layers.4.self_attn.k_proj.weight"]["shape"] == [32, 64]
assert h["model.layers.0.mlp.down_proj.weight"]["shape"] == [64, 172]
assert "lm_head.weight" not in h and len(h) == 2 + 5 * 9
c = json.load(open(d + "/config.json"))
assert c["hidden_size"] == 64 and c["intermediate_size"] == 172 and c["num_key_value_heads"] == 4
assert c["rms_norm_eps"] == 1e-05 and c["rope_theta"] == 10000 and c["tie_word_embeddings"] is True
assert c["torch_dtype"] == "float16" and c["max_position_embeddings"] == 512
EOF_PY

# The fp32 model as a format conversion: the original file, RoPE tables aside.
check "fp32 stories260K -> llama2c: identical to the original up to the RoPE tables (<= 1e-7)" bash -c "
    '$BIN' export --checkpoint '$DATA/stories260K.bin' --format llama2c --out '$TMP/orig.bin' &&
    python3 - '$TMP/orig.bin' '$DATA/stories260K.bin' <<'EOF_PY'
import struct, sys
a, b = (open(p, 'rb').read() for p in sys.argv[1:])
assert len(a) == len(b), (len(a), len(b))
tables = 2 * 512 * 4 * 4   # cos and sin, [seq_len][hs/2] fp32 each; tied: they end the file
assert a[:-tables] == b[:-tables], 'weights differ'
fa = struct.unpack('<%df' % (tables // 4), a[-tables:])
fb = struct.unpack('<%df' % (tables // 4), b[-tables:])
worst = max(abs(x - y) for x, y in zip(fa, fb))
print('rope tables: max |diff| %.2e, %d of %d values differ' % (worst, sum(x != y for x, y in zip(fa, fb)), len(fa)))
assert worst <= 1e-7
EOF_PY"

# An untied classifier: vocab_size < 0 in the llama2.c header, lm_head.weight in safetensors.
mkdir -p "$TMP/untied"
"$TOOLS/make_hf_model" "$DATA/stories260K.bin" "$TMP/untied" --untied >/dev/null
check "untied HF -> llama2c: negative vocab_size, weights bit-identical, logits within 1e-4" bash -c "
    '$BIN' export --checkpoint '$TMP/untied' --format llama2c --out '$TMP/untied.bin' &&
    python3 -c \"import struct, sys; h = struct.unpack('<7i', open('$TMP/untied.bin', 'rb').read(28)); sys.exit(h[5] != -512)\" &&
    '$TOOLS/compare_models' '$TMP/untied' '$TMP/untied.bin' --logits-tol 1e-4"
check "untied llama2c -> safetensors: lm_head.weight, weights and logits bit-identical to the HF original" bash -c "
    '$BIN' export --checkpoint '$TMP/untied.bin' --format safetensors --out '$TMP/untied2' &&
    python3 -c \"import json, sys; sys.exit(json.load(open('$TMP/untied2/config.json'))['tie_word_embeddings'] is not False)\" &&
    grep -q 'lm_head.weight' '$TMP/untied2/model.safetensors' &&
    '$TOOLS/compare_models' '$TMP/untied' '$TMP/untied2'"

# The HF directory's other files: README (dequantized, from which checkpoint, method, bits),
# generation_config.json, the tokenizer (tokenizer.bin copied as it is; a SentencePiece
# tokenizer.model copied with tokenizer_config.json and special_tokens_map.json).
check "safetensors directory: README says dequantized (method, bits), generation_config, tokenizer.bin copied" bash -c "
    '$BIN' export --checkpoint '$CK' --format safetensors --out '$TMP/hfdir' --dtype f16 --tokenizer '$DATA/tok512.bin' >/dev/null &&
    grep -q 'These weights are dequantized' '$TMP/hfdir/README.md' && grep -q 'method \`nupes\`, 4-bit codes' '$TMP/hfdir/README.md' &&
    grep -q 'Hugging Face has no reader' '$TMP/hfdir/README.md' && cmp '$TMP/hfdir/tokenizer.bin' '$DATA/tok512.bin' &&
    python3 -c \"import json; g = json.load(open('$TMP/hfdir/generation_config.json')); assert g == {'bos_token_id': 1, 'eos_token_id': 2}, g\" &&
    '$TOOLS/compare_models' '$CK' '$TMP/hfdir' --weights-tol 2e-3 --logits-tol 5e-2"
# Sharding: at most --max-shard-size of data per file (a bigger tensor alone), the index,
# and the same model read back.
check "safetensors --max-shard-size 100KB: shards, index, weights and logits bit-identical to one file" bash -c "
    '$BIN' export --checkpoint '$CK' --format safetensors --out '$TMP/shards' --max-shard-size 100KB >/dev/null &&
    '$TOOLS/compare_models' '$TMP/hf32' '$TMP/shards' &&
    '$BIN' export --checkpoint '$TMP/shards' --format llama2c --out '$TMP/shards.bin' >/dev/null && cmp '$TMP/shards.bin' '$TMP/q.bin' &&
    python3 - '$TMP/shards' '$TMP/hf32' <<'EOF_PY'
import json, os, struct, sys
d, one = sys.argv[1:]
idx = json.load(open(d + '/model.safetensors.index.json'))
files = sorted(set(idx['weight_map'].values()))
n = len(files)
assert n > 2 and files == ['model-%05d-of-%05d.safetensors' % (k + 1, n) for k in range(n)], files
assert not os.path.exists(d + '/model.safetensors')
total, names = 0, set()
for f in files:
    with open(d + '/' + f, 'rb') as fh:
        h = json.loads(fh.read(struct.unpack('<Q', fh.read(8))[0]))
    h.pop('__metadata__')
    size = sum(t['data_offsets'][1] - t['data_offsets'][0] for t in h.values())
    assert size <= 100000 or len(h) == 1, (f, size, len(h))
    assert all(idx['weight_map'][k] == f for k in h)
    total += size
    names |= set(h)
with open(one + '/model.safetensors', 'rb') as fh:
    ref = json.loads(fh.read(struct.unpack('<Q', fh.read(8))[0]))
ref.pop('__metadata__')
assert names == set(ref) == set(idx['weight_map']) and idx['metadata']['total_size'] == total
print('%d shards, %d tensors, %d bytes' % (n, len(names), total))
EOF_PY"
"$TOOLS/make_synthetic_model" "$TMP/v32k.bin" 32 64 1 4 4 32000 64 7 >/dev/null
check "safetensors directory with a SentencePiece tokenizer: tokenizer.model, tokenizer_config.json, special tokens" bash -c "
    '$BIN' export --checkpoint '$TMP/v32k.bin' --format safetensors --out '$TMP/hfsp' --tokenizer '$DATA/llama2-tokenizer/tokenizer.model' >/dev/null &&
    cmp '$TMP/hfsp/tokenizer.model' '$DATA/llama2-tokenizer/tokenizer.model' && grep -q 'Converted from the fp32 model' '$TMP/hfsp/README.md' &&
    python3 -c \"
import json
c = json.load(open('$TMP/hfsp/tokenizer_config.json')); m = json.load(open('$TMP/hfsp/special_tokens_map.json'))
assert c['tokenizer_class'] == 'LlamaTokenizer' and c['add_bos_token'] is True and c['add_eos_token'] is False, c
assert c['model_max_length'] == 64 and m == {'bos_token': '<s>', 'eos_token': '</s>', 'unk_token': '<unk>'}, (c, m)
\""

# eval: the exports give the checkpoint's numbers.
EV=(--tokenizer "$DATA/tok512.bin" --text "$DATA/eval-generated.txt" --seq-len 256 --sequences 24)
ppl() { "$BIN" eval --model "$1" "${EV[@]}" | sed -n 's/^fp32 perplexity: *//p'; }
p_ck=$(ppl "$CK"); p_l2=$(ppl "$TMP/q.bin"); p_hf=$(ppl "$TMP/hf32")
if [[ -n $p_ck && $p_ck == "$p_l2" && $p_ck == "$p_hf" ]]; then ok "eval perplexity: checkpoint $p_ck = llama2c $p_l2 = safetensors $p_hf"
else bad "eval perplexity: checkpoint '$p_ck', llama2c '$p_l2', safetensors '$p_hf'"; fi
"$BIN" eval --model "$TMP/q.bin" --checkpoint "$CK" "${EV[@]}" >"$TMP/eval.log" 2>&1
if grep -q 'mean KL(fp32 || quantized): 0.000000' "$TMP/eval.log" && grep -q 'top-1 agreement: 100.00%' "$TMP/eval.log"
then ok "eval llama2c export against the checkpoint: KL 0, top-1 100%"
else bad "eval llama2c export against the checkpoint"; cat "$TMP/eval.log"; fi

# Bad command lines and inputs: exit 2, one line, nothing written.
check "export --help" "$BIN" export --help
expect_exit 2 "missing --out" "$BIN" export --checkpoint "$CK" --format llama2c
expect_exit 2 "unknown --format" "$BIN" export --checkpoint "$CK" --format onnx --out "$TMP/x"
expect_exit 2 "bad --max-shard-size" "$BIN" export --checkpoint "$CK" --format safetensors --out "$TMP/x" --max-shard-size 5XB
expect_exit 2 "--max-shard-size with llama2c" "$BIN" export --checkpoint "$CK" --format llama2c --out "$TMP/x" --max-shard-size 1MB
expect_exit 2 "--tokenizer with llama2c" "$BIN" export --checkpoint "$CK" --format llama2c --out "$TMP/x" --tokenizer "$DATA/tok512.bin"
expect_exit 2 "safetensors with a tokenizer of another vocabulary" \
    "$BIN" export --checkpoint "$CK" --format safetensors --out "$TMP/x" --tokenizer "$DATA/llama2-tokenizer/tokenizer.model"
expect_exit 2 "--dtype f16 with llama2c" "$BIN" export --checkpoint "$CK" --format llama2c --out "$TMP/x" --dtype f16
expect_exit 2 "unknown --dtype" "$BIN" export --checkpoint "$CK" --format safetensors --out "$TMP/x" --dtype f8
expect_exit 2 "missing checkpoint" "$BIN" export --checkpoint "$TMP/none.h5" --format llama2c --out "$TMP/x"
expect_exit 2 "safetensors --out is a file" "$BIN" export --checkpoint "$CK" --format safetensors --out "$TMP/q.bin"
cp -r "$TMP/hf32" "$TMP/theta"
sed -i 's/"rope_theta":.*/"rope_theta":\t500000,/' "$TMP/theta/config.json"
expect_exit 2 "llama2c export of a model with rope_theta 500000 (the format cannot say so)" \
    "$BIN" export --checkpoint "$TMP/theta" --format llama2c --out "$TMP/theta.bin"
if [[ ! -e $TMP/x && ! -e $TMP/theta.bin && -z $(find "$TMP" -name '.*.tmp.*') ]]; then ok "no output or temporary file after the failures"
else bad "files left behind: $(ls -a "$TMP")"; fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
