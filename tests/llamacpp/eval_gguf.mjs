// Runs GGUF files in the real llama.cpp (node-llama-cpp's prebuilt CPU binaries) and
// prints, as one JSON object on stdout:
//   - per model: perplexity over the eval windows (the protocol of nupes-mpi eval: the
//     whole text tokenized once with BOS first, cut into consecutive windows of T tokens,
//     each window evaluated from position 0; T - 1 next-token predictions per window);
//   - against the first model (the fp32 reference): mean KL(ref || model) over all T
//     positions of every window, and top-1 agreement;
//   - per model: the greedy continuation (temperature 0) of a prompt, as token ids and text;
//   - per model: the SHA-256 of the text's token ids ("1,403,...\n", BOS first), to compare
//     llama.cpp's tokenizer with nupes-mpi's.
// Usage: node eval_gguf.mjs --text FILE --seq-len T --windows N --prompt P --steps S REF.gguf [MODEL.gguf ...]
// node-llama-cpp is imported from NODE_LLAMA_CPP_DIR (a folder outside the source tree where
// the test installed it). It must use the prebuilt binaries: nothing is built or downloaded.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

function parseArgs(argv) {
    const o = {models: [], seqLen: 256, windows: 4, prompt: "Once upon a time", steps: 32};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--text") o.text = argv[++i];
        else if (a === "--seq-len") o.seqLen = Number(argv[++i]);
        else if (a === "--windows") o.windows = Number(argv[++i]);
        else if (a === "--prompt") o.prompt = argv[++i];
        else if (a === "--steps") o.steps = Number(argv[++i]);
        else o.models.push(a);
    }
    if (!o.text || o.models.length === 0) throw new Error("usage: eval_gguf.mjs --text FILE [...] REF.gguf [MODEL.gguf ...]");
    return o;
}

const opts = parseArgs(process.argv.slice(2));
const dir = process.env.NODE_LLAMA_CPP_DIR;
if (!dir) throw new Error("NODE_LLAMA_CPP_DIR is not set");
const entry = path.join(dir, "node_modules", "node-llama-cpp", "dist", "index.js");
const {getLlama, LlamaLogLevel} = await import(pathToFileURL(entry).href);

// Prebuilt CPU binaries only: no GPU probing, no source download, no build.
const llama = await getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    maxThreads: 2,
    logLevel: LlamaLogLevel.error,
});

if (llama.buildType !== "prebuilt")
    throw new Error(`node-llama-cpp uses a ${llama.buildType} build, expected the prebuilt @node-llama-cpp/linux-x64 binaries`);

// Full next-token distribution: temperature 1 and no truncation, so that the
// probabilities are softmax(logits).
const fullDistribution = {temperature: 1, topK: 0, topP: 1, minP: 0};

function windowsOf(tokens, T, n) {
    const out = [];
    for (let w = 0; w + 1 <= n && (w + 1) * T <= tokens.length; w++) out.push(tokens.slice(w * T, (w + 1) * T));
    return out;
}

async function distributions(sequence, window, V) {
    await sequence.clearHistory();
    const input = window.map((t) => [t, {generateNext: {probabilities: true, options: fullDistribution}}]);
    const res = await sequence.controlledEvaluate(input);
    return res.map((r, p) => {
        const probs = new Float64Array(V);
        let sum = 0;
        for (const [tok, pr] of r.next.probabilities) {
            probs[tok] = pr;
            sum += pr;
        }
        if (Math.abs(sum - 1) > 1e-3 || r.next.probabilities.size !== V)
            throw new Error(`position ${p}: ${r.next.probabilities.size} probabilities summing to ${sum}, expected ${V} summing to 1`);
        return probs;
    });
}

async function greedy(sequence, model, prompt, steps) {
    await sequence.clearHistory();
    const ids = [model.tokens.bos, ...model.tokenize(prompt)];
    const out = [];
    let input = ids;
    for (let s = 0; s < steps; s++) {
        const items = input.map((t, i) => (i === input.length - 1 ? [t, {generateNext: {token: true, options: {temperature: 0}}}] : t));
        const res = await sequence.controlledEvaluate(items);
        const next = res[input.length - 1].next.token;
        if (next == null || next === model.tokens.bos || next === model.tokens.eos) break;
        out.push(next);
        input = [next];
    }
    return {prompt_tokens: ids, tokens: out, text: model.detokenize(out)};
}

const text = fs.readFileSync(opts.text, "utf8");
// The CPU features of the ggml backend variant node-llama-cpp picked for this machine.
const results = {build: llama.buildType, system_info: llama.systemInfo, models: []};
let ref = null; // [window][position] distributions of the first model
for (const [mi, file] of opts.models.entries()) {
    const model = await llama.loadModel({modelPath: file, gpuLayers: 0, useMmap: true});
    const V = model.fileInsights.tensorInfo ? model.tokens.size ?? null : null;
    const vocab = Number(model.fileInfo.metadata.llama?.vocab_size ?? model.fileInfo.metadata.tokenizer.ggml.tokens.length);
    const context = await model.createContext({contextSize: opts.seqLen, batchSize: opts.seqLen, sequences: 1, threads: 2});
    const sequence = context.getSequence();
    const tokens = [model.tokens.bos, ...model.tokenize(text)];
    const wins = windowsOf(tokens, opts.seqLen, opts.windows);
    let nll = 0, nPred = 0, kl = 0, nPos = 0, agree = 0;
    const mine = [];
    for (const [w, win] of wins.entries()) {
        const d = await distributions(sequence, win, vocab);
        for (let p = 0; p + 1 < win.length; p++) {
            nll -= Math.log(d[p][win[p + 1]]);
            nPred++;
        }
        if (mi === 0) mine.push(d);
        else {
            for (let p = 0; p < win.length; p++) {
                const P = ref[w][p], Q = d[p];
                let k = 0, am = 0, bm = 0;
                for (let v = 0; v < vocab; v++) {
                    if (P[v] > 0) k += P[v] * (Math.log(P[v]) - Math.log(Math.max(Q[v], 1e-300)));
                    if (P[v] > P[am]) am = v;
                    if (Q[v] > Q[bm]) bm = v;
                }
                kl += k;
                agree += am === bm ? 1 : 0;
                nPos++;
            }
        }
    }
    if (mi === 0) ref = mine;
    const g = await greedy(sequence, model, opts.prompt, opts.steps);
    results.models.push({
        file,
        vocab,
        text_tokens: tokens.length,
        text_tokens_sha256: crypto.createHash("sha256").update(tokens.join(",") + "\n").digest("hex"),
        first_tokens: tokens.slice(0, 32),
        windows: wins.length,
        predictions: nPred,
        perplexity: Math.exp(nll / nPred),
        kl: mi === 0 ? 0 : kl / nPos,
        top1: mi === 0 ? 1 : agree / nPos,
        greedy: g,
    });
    void V;
    await context.dispose();
    await model.dispose();
}
await llama.dispose();
process.stdout.write(JSON.stringify(results) + "\n");
