#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A tiny random-weight Hugging Face checkpoint with a real tokenizer's vocabulary size, for the
driver's text-prompt tests (tests/driver_families.sh). Standard library only (no numpy/torch).

usage: make_tiny_hf.py OUT_DIR FAMILY VOCAB
  FAMILY llama3: model_type llama, rope_type llama3 (Llama 3.1's parameters), tied embeddings
  FAMILY qwen2:  model_type qwen2, q/k/v biases, tied embeddings
Weights: bf16, hidden 16, 2 layers, 2 heads, 1 KV head; seeded (the same files every run).
"""
import array
import json
import os
import random
import struct
import sys


def bf16(values):
    bits = array.array("I", array.array("f", values).tobytes())
    return array.array("H", (((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF for b in bits)).tobytes()


def main():
    out, family, vocab = sys.argv[1], sys.argv[2], int(sys.argv[3])
    d, hid, layers, nh, nkv = 16, 32, 2, 2, 1
    hd = d // nh
    rng = random.Random(1234)
    cfg = {"model_type": "llama" if family == "llama3" else "qwen2", "hidden_size": d, "intermediate_size": hid,
           "num_hidden_layers": layers, "num_attention_heads": nh, "num_key_value_heads": nkv, "vocab_size": vocab,
           "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": True}
    if family == "llama3":
        cfg.update(rope_theta=500000.0, bos_token_id=128000, eos_token_id=[128001, 128008, 128009],
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    else:
        cfg.update(rope_theta=1000000.0, use_sliding_window=False, bos_token_id=151643, eos_token_id=151645)
    tensors = {}

    def add(name, shape, scale, mean=0.0):
        n = 1
        for x in shape:
            n *= x
        tensors[name] = (shape, [mean + scale * rng.uniform(-1, 1) for _ in range(n)])

    add("model.embed_tokens.weight", [vocab, d], 1.0)
    for l in range(layers):
        p = "model.layers.%d." % l
        add(p + "input_layernorm.weight", [d], 0.1, 1.0)
        add(p + "post_attention_layernorm.weight", [d], 0.1, 1.0)
        add(p + "self_attn.q_proj.weight", [nh * hd, d], 0.5)
        add(p + "self_attn.k_proj.weight", [nkv * hd, d], 0.5)
        add(p + "self_attn.v_proj.weight", [nkv * hd, d], 0.5)
        add(p + "self_attn.o_proj.weight", [d, nh * hd], 0.3)
        if family == "qwen2":
            add(p + "self_attn.q_proj.bias", [nh * hd], 0.5)
            add(p + "self_attn.k_proj.bias", [nkv * hd], 0.5)
            add(p + "self_attn.v_proj.bias", [nkv * hd], 0.5)
        add(p + "mlp.gate_proj.weight", [hid, d], 0.4)
        add(p + "mlp.up_proj.weight", [hid, d], 0.4)
        add(p + "mlp.down_proj.weight", [d, hid], 0.3)
    add("model.norm.weight", [d], 0.1, 1.0)
    header, blobs, at = {}, [], 0
    for name in sorted(tensors):
        shape, vals = tensors[name]
        raw = bf16(vals)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)


if __name__ == "__main__":
    main()
