#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tiny random-weight checkpoints of the Llama-like families lazyllm loads (Llama 3.1 with
llama3 RoPE, Qwen2 with q/k/v biases and YaRN, Qwen3 with per-head q/k norms and an explicit
head_dim, Mistral with a sliding window longer than the prompt), each with reference logits from
an independent PyTorch forward written from the math of transformers' modeling_llama / qwen2 /
qwen3 / mistral (float64, weights rounded to bf16 as stored).

Writes tests/data/families/<name>/{config.json, model.safetensors, reference.json}:
  reference.json: {"prompt": [...], "greedy": [...], "step_logits": [[vocab floats] x (1 + len(greedy))]}
step_logits[0] are the logits after the prompt, step_logits[i] after greedy[i-1] was appended.

Runs on the CPU with Debian's python3-torch (no transformers needed):
  /usr/bin/python3 tools/hf_check/families_ref.py [--out tests/data/families]
tools/hf_check/run.py --families on the GPU machine checks the same families against transformers
itself (and can rewrite these fixtures from transformers' logits with --write-fixtures).
"""
import argparse
import json
import math
import os
import struct

import torch

VOCAB = 256
PROMPT = [1, 17, 93, 5, 211, 64, 128, 7, 42, 250, 3, 99]
N_GREEDY = 6

FAMILIES = {
    # Llama 3.1 / 3.2 style: GQA, theta 500000, rope_type llama3 with the published parameters.
    "llama31": dict(
        config={
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": VOCAB, "max_position_embeddings": 131072,
            "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": False,
            "attention_bias": False, "mlp_bias": False, "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        }, seed=1),
    # Qwen2 / Qwen2.5 style: q/k/v biases (no o bias), tied embeddings, theta 1e6, YaRN factor 4
    # (max_position_embeddings = factor * original, so transformers 4.x and 5.x agree on factor).
    "qwen2": dict(
        config={
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 64,
            "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": VOCAB, "max_position_embeddings": 16384,
            "rms_norm_eps": 1e-6, "hidden_act": "silu", "tie_word_embeddings": True,
            "use_sliding_window": False, "rope_theta": 1000000.0,
            "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096},
        }, seed=2),
    # Qwen3 style: head_dim 32 with hidden 64 and 4 heads (q is 128 wide), per-head q/k RMSNorm.
    "qwen3": dict(
        config={
            "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 32, "vocab_size": VOCAB,
            "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "hidden_act": "silu",
            "tie_word_embeddings": False, "attention_bias": False, "use_sliding_window": False,
            "rope_theta": 1000000.0,
        }, seed=3),
    # Mistral style: GQA, theta 1e6, sliding_window longer than the prompt (so it never masks).
    "mistral": dict(
        config={
            "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": VOCAB, "max_position_embeddings": 8192,
            "rms_norm_eps": 1e-5, "hidden_act": "silu", "tie_word_embeddings": False,
            "sliding_window": 4096, "rope_theta": 1000000.0,
        }, seed=4),
}


def head_dim(c):
    return c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]


def inv_freq_and_scale(c):
    """The RoPE inverse frequencies (float32, as transformers computes them) and attention scale."""
    hd = head_dim(c)
    rs = c.get("rope_parameters") or c.get("rope_scaling") or {}  # transformers 5 or 4.x spelling
    base = rs.get("rope_theta") or c["rope_theta"]
    inv = 1.0 / (base ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "default":
        return inv, 1.0
    if kind == "linear":
        return inv / rs["factor"], 1.0
    if kind == "llama3":
        factor, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        out = torch.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = (wavelen >= old / hi) & (wavelen <= old / lo)
        return torch.where(medium, smoothed, out), 1.0
    if kind == "yarn":
        factor = rs["factor"]
        orig = rs.get("original_max_position_embeddings") or c["max_position_embeddings"]
        fast, slow = rs.get("beta_fast") or 32, rs.get("beta_slow") or 1
        att = rs.get("attention_factor")
        if att is None:
            att = 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0

        def dim_for(rot):
            return hd * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(base))

        low, high = math.floor(dim_for(fast)), math.ceil(dim_for(slow))
        low, high = max(low, 0), min(high, hd - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(hd // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
        keep = 1 - ramp  # weight of the unscaled frequency
        pos_freqs = base ** (torch.arange(0, hd, 2).float() / hd)
        return (1.0 / (factor * pos_freqs)) * (1 - keep) + (1.0 / pos_freqs) * keep, att
    raise ValueError(kind)


def make_weights(c, seed):
    """name -> float64 tensor (values rounded to bf16, the stored dtype)."""
    g = torch.Generator().manual_seed(seed)
    d, hid, hd = c["hidden_size"], c["intermediate_size"], head_dim(c)
    nh, nkv, v = c["num_attention_heads"], c["num_key_value_heads"], c["vocab_size"]

    def rnd(*shape, std=1.0, mean=0.0):
        t = torch.randn(*shape, generator=g, dtype=torch.float32) * std + mean
        return t.to(torch.bfloat16).to(torch.float64)

    # A tied classifier reads the residual stream against the embedding itself: a smaller embedding
    # keeps the current token from dominating its own logits (greedy would just repeat it).
    w = {"model.embed_tokens.weight": rnd(v, d, std=0.15 if c["tie_word_embeddings"] else 1.0)}
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = rnd(d, std=0.1, mean=1.0)
        w[p + "post_attention_layernorm.weight"] = rnd(d, std=0.1, mean=1.0)
        # Large q/k weights make attention peaky, so LazyLLM's kept sets are well defined.
        w[p + "self_attn.q_proj.weight"] = rnd(nh * hd, d, std=0.5 / math.sqrt(d) * 4)
        w[p + "self_attn.k_proj.weight"] = rnd(nkv * hd, d, std=0.5 / math.sqrt(d) * 4)
        w[p + "self_attn.v_proj.weight"] = rnd(nkv * hd, d, std=1 / math.sqrt(d))
        w[p + "self_attn.o_proj.weight"] = rnd(d, nh * hd, std=1 / math.sqrt(nh * hd))
        if c["model_type"] == "qwen2":
            w[p + "self_attn.q_proj.bias"] = rnd(nh * hd, std=0.5)
            w[p + "self_attn.k_proj.bias"] = rnd(nkv * hd, std=0.5)
            w[p + "self_attn.v_proj.bias"] = rnd(nkv * hd, std=0.5)
        if c["model_type"] == "qwen3":
            w[p + "self_attn.q_norm.weight"] = rnd(hd, std=0.2, mean=1.0)
            w[p + "self_attn.k_norm.weight"] = rnd(hd, std=0.2, mean=1.0)
        w[p + "mlp.gate_proj.weight"] = rnd(hid, d, std=1 / math.sqrt(d))
        w[p + "mlp.up_proj.weight"] = rnd(hid, d, std=1 / math.sqrt(d))
        w[p + "mlp.down_proj.weight"] = rnd(d, hid, std=1 / math.sqrt(hid))
    w["model.norm.weight"] = rnd(d, std=0.1, mean=1.0)
    if not c["tie_word_embeddings"]:
        w["lm_head.weight"] = rnd(v, d, std=1 / math.sqrt(d))
    return w


def rmsnorm(x, weight, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * weight


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def forward(c, w, ids):
    """Logits [T, vocab] of the whole sequence (float64)."""
    T = len(ids)
    d, hd, eps = c["hidden_size"], head_dim(c), c["rms_norm_eps"]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    inv, att_scale = inv_freq_and_scale(c)
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv.to(torch.float64))
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos() * att_scale, emb.sin() * att_scale  # [T, hd]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    if c.get("sliding_window"):
        qi, ki = torch.arange(T)[:, None], torch.arange(T)[None, :]
        mask &= (qi - ki) < c["sliding_window"]
    h = w["model.embed_tokens.weight"][torch.tensor(ids)]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        x = rmsnorm(h, w[p + "input_layernorm.weight"], eps)
        q = x @ w[p + "self_attn.q_proj.weight"].T
        k = x @ w[p + "self_attn.k_proj.weight"].T
        v = x @ w[p + "self_attn.v_proj.weight"].T
        if p + "self_attn.q_proj.bias" in w:
            q, k, v = q + w[p + "self_attn.q_proj.bias"], k + w[p + "self_attn.k_proj.bias"], v + w[p + "self_attn.v_proj.bias"]
        q, k, v = q.view(T, nh, hd), k.view(T, nkv, hd), v.view(T, nkv, hd)
        if p + "self_attn.q_norm.weight" in w:
            q = rmsnorm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rmsnorm(k, w[p + "self_attn.k_norm.weight"], eps)
        q = q * cos[:, None, :] + rotate_half(q) * sin[:, None, :]
        k = k * cos[:, None, :] + rotate_half(k) * sin[:, None, :]
        group = nh // nkv
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        s = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd)
        s = s.masked_fill(~mask, float("-inf")).softmax(-1)
        o = torch.einsum("hqk,khd->qhd", s, v).reshape(T, nh * hd)
        h = h + o @ w[p + "self_attn.o_proj.weight"].T
        x = rmsnorm(h, w[p + "post_attention_layernorm.weight"], eps)
        gate, up = x @ w[p + "mlp.gate_proj.weight"].T, x @ w[p + "mlp.up_proj.weight"].T
        h = h + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    h = rmsnorm(h, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return h @ head.T


def write_safetensors(path, tensors):
    """bf16 safetensors: 8-byte little-endian header length, JSON header, raw data."""
    header, blobs, at = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].to(torch.float32).to(torch.bfloat16).contiguous()
        raw = t.view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def reference(c, w, prompt, n_greedy):
    ids, steps, greedy = list(prompt), [], []
    for i in range(n_greedy + 1):
        last = forward(c, w, ids)[-1]
        steps.append([round(float(x), 6) for x in last])
        if i == n_greedy:
            break
        nxt = int(torch.argmax(last))
        greedy.append(nxt)
        ids.append(nxt)
    return {"prompt": list(prompt), "greedy": greedy, "step_logits": steps}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "families"))
    ap.add_argument("--only", default="", help="comma-separated family names")
    a = ap.parse_args()
    for name, spec in FAMILIES.items():
        if a.only and name not in a.only.split(","):
            continue
        c = spec["config"]
        w = make_weights(c, spec["seed"])
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(c, f, indent=2)
            f.write("\n")
        write_safetensors(os.path.join(d, "model.safetensors"), w)
        ref = reference(c, w, PROMPT, N_GREEDY)
        ref["source"] = "tools/hf_check/families_ref.py (independent float64 PyTorch forward)"
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(ref, f, separators=(",", ":"))
            f.write("\n")
        print(f"{name}: greedy {ref['greedy']}")


if __name__ == "__main__":
    main()
