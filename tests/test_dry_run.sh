#!/usr/bin/env bash
# --dry-run plans a Llama-2-7B job (configs/llama7b.toml) from config.json alone (a fake HF
# directory with no weights) on 1 rank, 8 real MPI ranks and 32 planned ranks
# (NUPES_PLAN_RANKS), and the numbers are checked against values computed here from the
# architecture: parameters, per-block weights, memory items, activation bytes, FLOPs and the
# block-time counts of each mode. Then the disk check: a real job whose run.dir is on a
# 1 MB tmpfs (mounted in a private mount namespace) is refused with exit 2 and the message
# naming the need and the free space, and writes nothing.
set -u
BIN=${NUPES_BIN:?NUPES_BIN is not set (run through ctest)}
SRC=${NUPES_SOURCE_DIR:?NUPES_SOURCE_DIR is not set}
MPIEXEC=${MPIEXEC:-mpiexec}
TMP=$(mktemp -d /tmp/nupes-dry-run.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
export ASAN_OPTIONS=detect_leaks=0 # Open MPI's dlopen'ed components leak; not this test's subject

mkdir -p "$TMP/Llama-2-7b-hf"
cat >"$TMP/Llama-2-7b-hf/config.json" <<'EOF_JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
 "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
 "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
 "max_position_embeddings": 4096, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
 "rope_scaling": null, "tie_word_embeddings": false, "torch_dtype": "float16"}
EOF_JSON
DRY=("$BIN" --config "$SRC/configs/llama7b.toml" --set model.path="$TMP/Llama-2-7b-hf" --set run.dir="$TMP/run"
     --dry-run)

run_plan() { # run_plan NAME RANKS_EXPECTED CMD...
    local name=$1 ranks=$2
    shift 2
    if "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"; then :; else
        bad "$name: exit $?"; cat "$TMP/$name.err"; return; fi
    cat "$TMP/$name.out"
    if python3 - "$TMP/$name.out" "$ranks" <<'EOF_PY'
import math, re, sys
text = open(sys.argv[1]).read()
R = int(sys.argv[2])
d, f, L, H, V, T, N, B, it = 4096, 11008, 32, 32, 32000, 2048, 128, 4, 500
hs = d // H
W = 4 * d * d + 3 * d * f                      # wq wk wv wo (Hkv = H), w1 w2 w3
checks = {}
def num(pattern):
    m = re.search(pattern, text)
    if not m:
        raise SystemExit("missing in output: " + pattern)
    return float(m.group(1))
def near(a, b, rel=5e-3):
    return abs(a - b) <= rel * abs(b)
checks["one plan printed (rank 0 only)"] = text.count("dry run:") == 1
checks["parameters 6.738e9 total"] = near(num(r"parameters: ([0-9.e+]+) total"), W * L + 2 * L * d + 2 * V * d + d, 1e-3)
checks["6.476e9 in blocks"] = near(num(r"= ([0-9.e+]+) in blocks"), (W + 2 * d) * L, 1e-3)
checks["202.4 M per block"] = near(num(r"\(([0-9.]+) M per block\)"), (W + 2 * d) / 1e6, 1e-3)
G = R if R <= L else R  # D = 1 (mpi.data_parallel = 1): one group per rank
checks["ranks line"] = re.search(r"ranks: %d = %d groups? of 1; at most %d blocks? per group" % (R, G, math.ceil(L / G)), text) is not None
checks["latents z = 4 W"] = near(num(r"latents z +([0-9.]+) GB"), 4 * W / 1e9)
checks["Adam = 8 W"] = near(num(r"Adam moments m, v of z +([0-9.]+) GB"), 8 * W / 1e9)
checks["attention = 4 (B H T^2 + T^2)"] = near(num(r"attention probabilities.* +([0-9.]+) GB"), 4 * (B * H * T * T + T * T) / 1e9)
acts = 4 * (8 * B * T * d + 4 * B * T * d + 5 * B * T * f + B * T + T * hs)
checks["block activations (src/block.c's list)"] = near(num(r"block activations for the backward +([0-9.]+) GB"), acts / 1e9)
# weights, z, Adam m v, w_hat + codes, dL/dw_hat; activations; attention; batch buffers
total = 4 * W + 4 * W + 8 * W + 5 * W + 4 * W + acts + 4 * (B * H * T * T + T * T) + 16 * B * T * d
checks["memory total"] = near(num(r"  total +([0-9.]+) GB"), total / 1e9, 2e-3)
checks["activations 141.7 GB = 33 levels x N x T x d fp32"] = near(num(r"disk: activations ([0-9.]+) GB"), (L + 1) * N * T * d * 4 / 1e9)
checks["/inputs shape"] = "/inputs [33][128][2048][4096]" in text
flops = 6 * W * B * T + 12 * B * H * T * T * hs
checks["TFLOP per iteration"] = near(num(r"compute: ([0-9.]+) TFLOP per iteration"), flops / 1e12)
checks["PFLOP per block"] = near(num(r"iterations: ([0-9.]+) PFLOP per block"), flops * it / 1e15)
# block-time counts: parallel ceil(L/G) rounds; pipelined: block l starts (1 - f) after
# block l - 1 and when its group (l mod G) is free; sequential L block-times.
def pipelined(L, G, f):
    free, start, end = [0.0] * G, 0.0, 0.0
    for l in range(L):
        start = max(0.0 if l == 0 else start + (1 - f), free[l % G])
        end = start + 1
        free[l % G] = end
    return end
checks["parallel rounds"] = re.search(r"parallel +%d groups? x 1: %d rounds?" % (G, math.ceil(L / G)), text) is not None
checks["pipelined block-times %.2f" % pipelined(L, G, 0.8)] = re.search(r"switch 0.80: %.2f block-times" % pipelined(L, G, 0.8), text) is not None
checks["sequential: 1 group of R"] = re.search(r"1 group of %d: 32 block-times" % R, text) is not None
def seconds(s):
    v, unit = s.split()
    return float(v) * {"s": 1, "min": 60, "h": 3600, "days": 86400}[unit]
times = {m: [seconds(x) for x in re.search(r"  %s .*block +([0-9.]+ \w+), total +([0-9.]+ \w+)" % m, text).groups()] for m in ("parallel", "sequential", "pipelined")}
checks["parallel total = rounds x block"] = near(times["parallel"][1], math.ceil(L / G) * times["parallel"][0], 0.06)
checks["pipelined total = block-times x block"] = near(times["pipelined"][1], pipelined(L, G, 0.8) * times["pipelined"][0], 0.06)
checks["calibration from calibration.sequences"] = "calibration: 128 sequences of 2048 tokens" in text
bad = [k for k, v in checks.items() if not v]
for k, v in checks.items():
    print(("  ok   " if v else "  FAIL ") + k)
sys.exit(1 if bad else 0)
EOF_PY
    then ok "$name: plan numbers"; else bad "$name: plan numbers"; fi
}

run_plan "1 rank" 1 "${DRY[@]}"
run_plan "8 MPI ranks" 8 "$MPIEXEC" -np 8 "${DRY[@]}"
run_plan "32 planned ranks" 32 env NUPES_PLAN_RANKS=32 "${DRY[@]}"
if [[ ! -e $TMP/run ]]; then ok "dry runs wrote nothing (no run.dir)"; else bad "run.dir created by a dry run"; fi

# A bad layout is refused like the real job would refuse it.
"${DRY[@]}" --set mpi.data_parallel=3 >"$TMP/dp.out" 2>&1 </dev/null
rc=$?
if [[ $rc -eq 2 ]] && grep -q "mpi.data_parallel = 3 does not divide the 1 ranks" "$TMP/dp.out"; then ok "data_parallel 3 on 1 rank: exit 2"
else bad "data_parallel 3 on 1 rank: exit $rc"; cat "$TMP/dp.out"; fi

# The disk check of a real job: run.dir on a 1 MB tmpfs, in a private mount namespace.
UNSHARE=(unshare --mount --propagation private)
[[ $(id -u) -ne 0 ]] && UNSHARE=(unshare --user --map-root-user --mount --propagation private)
mkdir -p "$TMP/small"
"${UNSHARE[@]}" bash -c 'mount -t tmpfs -o size=1m tmpfs "$1" && shift && exec "$@"' _ "$TMP/small" \
    "$BIN" --config "$SRC/configs/stories260K.toml" --set run.dir="$TMP/small/run" --set calibration.seq_len=64 \
    --set calibration.sequences=100 >"$TMP/disk.out" 2>&1
rc=$?
# need: (L + 1) x N x T x d x 4 = 6 x 100 x 64 x 64 x 4 bytes = 9.8 MB
if [[ $rc -eq 2 ]] && grep -q "run.dir $TMP/small/run: the activations need 9.8 MB, the file system has 1.0 MB free" "$TMP/disk.out"
then ok "run.dir on a 1 MB tmpfs refused: $(grep -m1 'activations need' "$TMP/disk.out")"
else bad "disk check: exit $rc"; cat "$TMP/disk.out"; fi
"${UNSHARE[@]}" bash -c 'mount -t tmpfs -o size=64m tmpfs "$1" && shift && exec "$@"' _ "$TMP/small" \
    "$BIN" --config "$SRC/configs/stories260K.toml" --set run.dir="$TMP/small/run" --set calibration.seq_len=64 \
    --set calibration.sequences=100 --set reconstruction.iterations=2 >"$TMP/disk2.out" 2>&1
rc=$?
if [[ $rc -eq 0 ]]; then ok "the same job on a 64 MB tmpfs runs (exit 0)"
else bad "64 MB tmpfs: exit $rc"; tail -5 "$TMP/disk2.out"; fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
