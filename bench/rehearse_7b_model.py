#!/usr/bin/python3
"""bench/rehearse_7b_model.py: write a synthetic Hugging Face LLaMA directory at the real
LLaMA-7B width for bench/rehearse_7b.sh (hidden 4096, intermediate 11008, 32 heads, vocab
32000, untied head), BF16, in 2 safetensors shards with model.safetensors.index.json and
config.json.

Weights are random with LLaMA-like statistics, so that the reconstruction does real work:
  - linear layers: normal with std 0.02 / sqrt-ish spread per output row (row scales
    log-normal, sigma 0.3: heavy-tailed rows), Student-t (5 degrees of freedom) entries
    instead of Gaussian ones (heavy tails inside a row), and 8 outlier input channels per
    matrix scaled x6 (the "massive activation" channels of real LLaMA checkpoints);
  - RMSNorm gains near 1 (1 + 0.05 normal), embeddings and head std 0.02.
Deterministic for a given --seed. Uses only numpy (Debian's python3-numpy).

Usage: rehearse_7b_model.py OUT_DIR [--layers N] [--seed S]
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

DIM, HIDDEN, HEADS, VOCAB = 4096, 11008, 32, 32000


def to_bf16(x):
    """float32 array -> uint16 BF16 bits, round to nearest even (x finite)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    u = u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
    return (u >> np.uint32(16)).astype(np.uint16)


def linear(rng, out_dim, in_dim):
    """[out][in] LLaMA-like weight: t(5) entries, log-normal row scales, outlier columns."""
    w = rng.standard_t(5, size=(out_dim, in_dim)).astype(np.float32)
    w *= np.float32(0.02 / np.sqrt(5.0 / 3.0))  # t(5) has variance 5/3
    w *= rng.lognormal(0.0, 0.3, size=(out_dim, 1)).astype(np.float32)
    cols = rng.choice(in_dim, size=8, replace=False)
    w[:, cols] *= np.float32(6.0)
    return w


def tensors_of_layer(layer):
    p = f"model.layers.{layer}."
    return [
        (p + "self_attn.q_proj.weight", (DIM, DIM)),
        (p + "self_attn.k_proj.weight", (DIM, DIM)),
        (p + "self_attn.v_proj.weight", (DIM, DIM)),
        (p + "self_attn.o_proj.weight", (DIM, DIM)),
        (p + "mlp.gate_proj.weight", (HIDDEN, DIM)),
        (p + "mlp.up_proj.weight", (HIDDEN, DIM)),
        (p + "mlp.down_proj.weight", (DIM, HIDDEN)),
        (p + "input_layernorm.weight", (DIM,)),
        (p + "post_attention_layernorm.weight", (DIM,)),
    ]


def make(rng, name, shape):
    if len(shape) == 1:
        return (1.0 + 0.05 * rng.standard_normal(shape)).astype(np.float32)
    if "embed_tokens" in name or "lm_head" in name:
        return (0.02 * rng.standard_normal(shape)).astype(np.float32)
    return linear(rng, *shape)


def write_shard(path, names_shapes, rng):
    """One safetensors file: u64 header length, JSON header, then the BF16 tensors."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in names_shapes:
        n = 2 * int(np.prod(shape))
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # data starts 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape in names_shapes:
            f.write(to_bf16(make(rng, name, shape)).tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if not 1 <= a.layers <= 32:
        sys.exit("rehearse_7b_model: --layers must be 1..32")
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    half = (a.layers + 1) // 2
    shards = [[("model.embed_tokens.weight", (VOCAB, DIM))], []]
    for layer in range(a.layers):
        shards[0 if layer < half else 1] += tensors_of_layer(layer)
    shards[1] += [("model.norm.weight", (DIM,)), ("lm_head.weight", (VOCAB, DIM))]
    weight_map, total = {}, 0
    for i, names_shapes in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_shard(os.path.join(a.out, fname), names_shapes, rng)
        for name, shape in names_shapes:
            weight_map[name] = fname
            total += 2 * int(np.prod(shape))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": DIM, "intermediate_size": HIDDEN, "num_hidden_layers": a.layers,
        "num_attention_heads": HEADS, "num_key_value_heads": HEADS, "vocab_size": VOCAB,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "hidden_act": "silu", "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "bos_token_id": 1, "eos_token_id": 2,
    }
    for fname, obj in (("model.safetensors.index.json", index), ("config.json", config)):
        with open(os.path.join(a.out, fname), "w") as f:
            json.dump(obj, f, indent=2)
    print(f"rehearse_7b_model: {a.out}: {a.layers} layers, {total / 1e9:.2f} GB BF16 in 2 shards")


if __name__ == "__main__":
    main()
