# The real llama.cpp for the GGUF tests: node-llama-cpp 3.21.1's prebuilt CPU binaries,
# installed with npm into a cache folder outside the source tree (reused when present;
# nothing else is built or downloaded). Source after setting HERE (this folder), NPM_DIR
# and TMP; then `llamacpp_install || exit 1` and `llamacpp ARGS...` (eval_gguf.mjs).
# Also the tests' tally: ok NAME, bad NAME, check NAME CMD... (counts in $pass, $fail).

pass=0
fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
check() { # check NAME CMD...: passes when CMD exits 0
    local name=$1
    shift
    if "$@" >"$TMP/check.log" 2>&1; then ok "$name"; sed 's/^/     /' "$TMP/check.log"
    else bad "$name"; sed 's/^/     /' "$TMP/check.log"; fi
}

# npm only: --omit=optional keeps the CUDA/Vulkan variants out (83 MB instead of 730 MB),
# --ignore-scripts skips node-llama-cpp's postinstall (which may download or build). The
# lock lets two tests install into one cache at once.
llamacpp_install() {
    local t0
    t0=$(date +%s)
    mkdir -p "$NPM_DIR" || return 1
    if ! (
        flock 9
        if [[ -f $NPM_DIR/node_modules/@node-llama-cpp/linux-x64/package.json &&
              -f $NPM_DIR/node_modules/node-llama-cpp/package.json ]]; then exit 0; fi
        echo '{"name": "nupes-llamacpp-tests", "private": true}' >"$NPM_DIR/package.json"
        CI=true npm install --prefix "$NPM_DIR" -E --omit=optional --ignore-scripts --no-audit --no-fund \
            node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1 </dev/null
    ) 9>"$NPM_DIR/.lock" >"$TMP/npm.log" 2>&1; then
        echo "FAIL npm install node-llama-cpp@3.21.1 into $NPM_DIR"; tail -20 "$TMP/npm.log"; return 1
    fi
    echo "node-llama-cpp in $NPM_DIR ($(( $(date +%s) - t0 )) s)"
}

llamacpp() { # llamacpp ARGS...: the evaluation script, no terminal, CI mode, no downloads
    CI=true NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_DIR="$NPM_DIR" \
        node "$HERE/eval_gguf.mjs" "$@" </dev/null
}
