#!/usr/bin/env python3
"""Independent float64 PyTorch reference for llama2.c legacy checkpoints.

Reads the checkpoint itself (no llama2.c code), implements the Llama forward
from the math, and writes a JSON fixture with greedy continuations and top-k
logits that the C++ CPU backend's tests compare against.

Usage:
    python3 tools/reference/llama2c_reference.py \
        --model ../shared/models/stories260K.bin \
        --out tests/fixtures/stories260K.json

Model math (all in float64):
  RMSNorm(x, w)  = x * rsqrt(mean(x^2) + 1e-5) * w
  RoPE           = interleaved form: in each head, the pair (2i, 2i+1) is
                   rotated by angle pos * 10000^(-2i/head_dim)
  attention      = causal, grouped-query: query head h reads kv head
                   h // (n_heads / n_kv_heads); scores scaled by 1/sqrt(head_dim)
  FFN            = w2(silu(w1 x) * w3 x)
  logits         = classifier(RMSNorm(x, rms_final))
Every forward is a full-sequence recompute (no KV cache).
"""

import argparse
import json
import math
import os
import random
import struct
import sys

import torch

BOS = 1
EOS = 2
NORM_EPS = 1e-5
ROPE_THETA = 10000.0


class Checkpoint:
    pass


def load_llama2c(path, dtype=torch.float64):
    with open(path, "rb") as f:
        raw = f.read()
    header = struct.unpack("<7i", raw[:28])
    dim, hidden, n_layers, n_heads, n_kv_heads, vocab, seq_len = header
    shared = vocab > 0
    vocab = abs(vocab)
    head_dim = dim // n_heads
    kv_dim = n_kv_heads * head_dim

    data = torch.frombuffer(bytearray(raw[28:]), dtype=torch.float32)
    off = 0

    def take(*shape):
        nonlocal off
        n = 1
        for s in shape:
            n *= s
        if off + n > data.numel():
            raise ValueError("checkpoint truncated")
        t = data[off:off + n].reshape(shape).to(dtype).clone()
        off += n
        return t

    c = Checkpoint()
    c.dim, c.hidden, c.n_layers, c.n_heads = dim, hidden, n_layers, n_heads
    c.n_kv_heads, c.vocab, c.seq_len = n_kv_heads, vocab, seq_len
    c.head_dim, c.kv_dim, c.shared = head_dim, kv_dim, shared
    c.tok_emb = take(vocab, dim)
    c.rms_att = take(n_layers, dim)
    c.wq = take(n_layers, dim, dim)
    c.wk = take(n_layers, kv_dim, dim)
    c.wv = take(n_layers, kv_dim, dim)
    c.wo = take(n_layers, dim, dim)
    c.rms_ffn = take(n_layers, dim)
    c.w1 = take(n_layers, hidden, dim)
    c.w2 = take(n_layers, dim, hidden)
    c.w3 = take(n_layers, hidden, dim)
    c.rms_final = take(dim)
    # two legacy RoPE tables (freq_cis_real, freq_cis_imag): skipped
    off += 2 * seq_len * head_dim // 2
    if shared:
        c.wcls = c.tok_emb
    else:
        c.wcls = take(vocab, dim)
    if off != data.numel():
        raise ValueError("checkpoint has %d trailing floats" % (data.numel() - off))
    return c


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + NORM_EPS) * w


def rope_interleaved(x, head_dim):
    """x: [T, H, head_dim]; rotates pairs (2i, 2i+1) by pos * theta^(-2i/head_dim)."""
    T = x.shape[0]
    pos = torch.arange(T, dtype=x.dtype).unsqueeze(1)                     # [T,1]
    i2 = torch.arange(0, head_dim, 2, dtype=x.dtype)                      # 2i
    inv_freq = ROPE_THETA ** (-i2 / head_dim)                             # [hd/2]
    ang = pos * inv_freq                                                  # [T, hd/2]
    cos = torch.cos(ang).unsqueeze(1)                                     # [T,1,hd/2]
    sin = torch.sin(ang).unsqueeze(1)
    x0 = x[..., 0::2]
    x1 = x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


def forward(c, tokens, dtype=torch.float64):
    """Full-sequence forward. Returns logits [T, vocab]."""
    T = len(tokens)
    if T > c.seq_len:
        raise ValueError("sequence longer than seq_len")
    cast = (lambda t: t) if dtype == torch.float64 else (lambda t: t.to(dtype))
    ids = torch.tensor(tokens, dtype=torch.long)
    x = cast(c.tok_emb)[ids]                                              # [T, dim]
    H, KV, hd = c.n_heads, c.n_kv_heads, c.head_dim
    group = H // KV
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    kv_of_head = torch.arange(H) // group
    for l in range(c.n_layers):
        xn = rmsnorm(x, cast(c.rms_att[l]))
        q = (xn @ cast(c.wq[l]).T).reshape(T, H, hd)
        k = (xn @ cast(c.wk[l]).T).reshape(T, KV, hd)
        v = (xn @ cast(c.wv[l]).T).reshape(T, KV, hd)
        q = rope_interleaved(q, hd)
        k = rope_interleaved(k, hd)
        k_h = k[:, kv_of_head, :]                                         # [T, H, hd]
        v_h = v[:, kv_of_head, :]
        scores = torch.einsum("thd,shd->hts", q, k_h) / math.sqrt(hd)     # [H, T, S]
        scores = scores.masked_fill(~causal, float("-inf"))
        att = torch.softmax(scores, dim=-1)
        o = torch.einsum("hts,shd->thd", att, v_h).reshape(T, H * hd)
        x = x + o @ cast(c.wo[l]).T
        xn = rmsnorm(x, cast(c.rms_ffn[l]))
        h1 = xn @ cast(c.w1[l]).T
        h3 = xn @ cast(c.w3[l]).T
        g = h1 * torch.sigmoid(h1)
        x = x + (g * h3) @ cast(c.w2[l]).T
    x = rmsnorm(x, cast(c.rms_final))
    return x @ cast(c.wcls).T


def greedy(c, prompt, n, dtype=torch.float64):
    """Returns (generated ids, list of top1-top2 margins at each step)."""
    seq = list(prompt)
    out, margins = [], []
    for _ in range(n):
        last = forward(c, seq, dtype)[-1]
        top2 = torch.topk(last, 2)
        nxt = int(top2.indices[0])
        margins.append(float(top2.values[0] - top2.values[1]))
        if nxt in (BOS, EOS):
            break
        out.append(nxt)
        seq.append(nxt)
    return out, margins


def fmt(v):
    # 12 significant digits: far more than the float32 C++ backend can match.
    return float("%.12g" % v)


def logits_entry(logits_row, pos, k=10):
    vals, idx = torch.topk(logits_row, k)
    return {"pos": pos, "top_ids": [int(i) for i in idx],
            "top_logits": [fmt(float(v)) for v in vals]}


def spread_positions(lo, hi, count):
    """About `count` positions spread evenly over [lo, hi] inclusive."""
    if hi < lo:
        return []
    if hi - lo + 1 <= count:
        return list(range(lo, hi + 1))
    return sorted({lo + round(j * (hi - lo) / (count - 1)) for j in range(count)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="../shared/models/stories260K.bin")
    ap.add_argument("--out", default="tests/fixtures/stories260K.json")
    args = ap.parse_args()

    torch.set_num_threads(min(8, os.cpu_count() or 1))
    c = load_llama2c(args.model)
    print("header: dim=%d hidden=%d layers=%d heads=%d kv_heads=%d vocab=%d seq_len=%d shared=%s"
          % (c.dim, c.hidden, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab, c.seq_len, c.shared))

    rng = random.Random(20240607)
    long_prompt = [BOS] + [rng.randint(3, 511) for _ in range(199)]
    cases_in = [
        ([BOS], 64),
        ([BOS, 400, 30], 48),
        ([BOS, 5, 17, 300, 41, 100, 250], 32),
        (long_prompt, 16),
    ]

    cases = []
    for ci, (prompt, n) in enumerate(cases_in):
        gen, margins = greedy(c, prompt, n)
        gen32, _ = greedy(c, prompt, n, dtype=torch.float32)
        full = prompt + gen
        logits = forward(c, full)                                         # [T, vocab]
        # self-check: teacher-forced logits reproduce the greedy choices
        for p in range(len(prompt) - 1, len(full) - 1):
            assert int(torch.argmax(logits[p])) == full[p + 1], ("teacher-forced mismatch", ci, p)
        positions = sorted({0, len(prompt) - 1} |
                           set(spread_positions(len(prompt), len(full) - 1, 5)))
        case = {
            "prompt": prompt,
            "n": n,
            "greedy": gen,
            "stopped_early": len(gen) < n,
            "min_greedy_margin": fmt(min(margins)),
            "greedy_float32_matches": gen32 == gen,
            "logits": [logits_entry(logits[p], p) for p in positions],
        }
        if ci == 0:
            case["all_logits_pos0"] = [fmt(float(v)) for v in logits[0]]
        cases.append(case)
        print("case %d: prompt_len=%d n=%d generated=%d min_margin=%.4g f32_match=%s"
              % (ci, len(prompt), n, len(gen), min(margins), gen32 == gen))
        print("  greedy:", gen)
        print("  logit positions:", positions)

    doc = {
        "model": os.path.basename(args.model),
        "generator": "tools/reference/llama2c_reference.py",
        "dtype": "float64",
        "torch": torch.__version__,
        "notes": "logits at position P are computed on prompt+greedy (teacher forced) and "
                 "predict token P+1; greedy stops (without emitting) at BOS=1 or EOS=2; "
                 "min_greedy_margin is the smallest top1-top2 logit gap over the greedy steps; "
                 "greedy_float32_matches says whether the same forward in float32 gives the "
                 "same greedy ids",
        "config": {"dim": c.dim, "hidden_dim": c.hidden, "n_layers": c.n_layers,
                   "n_heads": c.n_heads, "n_kv_heads": c.n_kv_heads, "vocab_size": c.vocab,
                   "seq_len": c.seq_len, "shared_classifier": c.shared},
        "cases": cases,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote", args.out, os.path.getsize(args.out), "bytes")


if __name__ == "__main__":
    sys.exit(main())
