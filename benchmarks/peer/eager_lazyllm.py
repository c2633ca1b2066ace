#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The eager PyTorch peer: what a Python user of LazyLLM would write. A Llama-2-shaped prefill in
plain torch ops (bf16 weights and activations), F.scaled_dot_product_attention (causal) over the
kept tokens, an explicit last-row attention-probability pass for the scores, torch.kthvalue for
the percentile threshold (the same rule as lazyllm: threshold = the floor(p*n)-th smallest score,
ties kept, the last token always kept) and index_select for the compaction. Random bf16 weights,
one layer's weights shared by every layer (as lazyllm-bench --synthetic, to fit memory). Schedules
use lazyllm-bench's syntax ("4:0.5,8:0.5,16:0.5" or a preset: gentle, default, aggressive).

TTFT = prompt ids on the GPU -> last token's logits on the GPU, with CUDA events, after a warm-up.
Writes the common JSON schema (benchmarks/peer/common.py).

    python3 benchmarks/peer/eager_lazyllm.py --shape llama2-7b --lengths 2048,4096 --reps 3 \
        --schedule 4:0.5,8:0.5,16:0.5 --schedule gentle -o eager.json
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def build(shape, max_len, device, seed=0):
    s = common.SHAPES[shape]
    d, h, H, KV, v = s["dim"], s["hidden"], s["heads"], s["kv_heads"], s["vocab"]
    hd = d // H
    g = torch.Generator(device=device).manual_seed(seed)

    def rnd(*size, scale):
        return ((torch.rand(*size, generator=g, device=device, dtype=torch.float32) * 2 - 1) * scale).to(torch.bfloat16)

    sd, sh = (3.0 / d) ** 0.5, (3.0 / h) ** 0.5
    w = {
        "emb": rnd(v, d, scale=1.0),
        "wqkv": rnd(d + 2 * KV * hd, d, scale=sd),  # fused q/k/v, [out, in] as nn.Linear
        "wo": rnd(d, d, scale=sd),
        "wgu": rnd(2 * h, d, scale=sd),  # fused gate/up
        "wdown": rnd(d, h, scale=sh),
        "attn_norm": torch.ones(d, device=device, dtype=torch.bfloat16),
        "ffn_norm": torch.ones(d, device=device, dtype=torch.bfloat16),
        "final_norm": torch.ones(d, device=device, dtype=torch.bfloat16),
        "cls": rnd(v, d, scale=sd),
    }
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, device=device, dtype=torch.float32) / hd))
    ang = torch.outer(torch.arange(max_len, device=device, dtype=torch.float32), inv)
    w["cos"] = torch.cat([ang.cos(), ang.cos()], -1).to(torch.bfloat16)  # rotate-half (HF) layout
    w["sin"] = torch.cat([ang.sin(), ang.sin()], -1).to(torch.bfloat16)
    w["cfg"] = dict(d=d, h=h, H=H, KV=KV, hd=hd, L=s["layers"], v=v)
    return w


def rmsnorm(x, weight, eps=1e-5):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


def sdpa_causal(q, k, v):
    """F.scaled_dot_product_attention(is_causal=True); an explicit fallback for torch < 2.0
    (only for --device cpu functional checks on old installs; never taken on the GPU box)."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    n = q.shape[-2]
    a = (q.float() @ k.float().transpose(-1, -2)) / q.shape[-1] ** 0.5
    a = a.masked_fill(torch.ones(n, n, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return (torch.softmax(a, -1) @ v.float()).to(q.dtype)


def rope(x, cos, sin):
    # x [H, n, hd]; cos/sin [n, hd]
    half = x.shape[-1] // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


def prefill(w, ids, sched):
    """Returns (logits of the last token [v] fp32, |C_l| per layer). `sched` = {layer: percentile}."""
    c = w["cfg"]
    d, H, KV, hd, L = c["d"], c["H"], c["KV"], c["hd"], c["L"]
    x = w["emb"].index_select(0, ids)  # [n, d] bf16 residual stream
    pos = torch.arange(ids.shape[0], device=ids.device)
    computed, scores = [], None
    kv_cache = []  # what a real implementation keeps for decode (no copy: views)
    for l in range(L):
        if l in sched:  # prune going into layer l with layer l-1's last-row attention
            n = scores.shape[0]
            k = n - common.keep_count(n, sched[l])  # floor(p * n) with p as a float32, as lazyllm
            thr = torch.kthvalue(scores, k + 1).values
            keep = scores >= thr
            keep[-1] = True
            idx = keep.nonzero().squeeze(1)  # compaction (a device -> host sync, as in any eager code)
            x = x.index_select(0, idx)
            pos = pos.index_select(0, idx)
        n = x.shape[0]
        computed.append(n)
        hn = rmsnorm(x, w["attn_norm"])
        qkv = hn @ w["wqkv"].t()
        q = qkv[:, :d].view(n, H, hd).transpose(0, 1)
        k_ = qkv[:, d:d + KV * hd].view(n, KV, hd).transpose(0, 1)
        v_ = qkv[:, d + KV * hd:].view(n, KV, hd).transpose(0, 1)
        cos, sin = w["cos"].index_select(0, pos), w["sin"].index_select(0, pos)
        q, k_ = rope(q, cos, sin), rope(k_, cos, sin)
        kv_cache.append((k_, v_))
        if KV != H:
            k_ = k_.repeat_interleave(H // KV, 0)
            v_ = v_.repeat_interleave(H // KV, 0)
        att = sdpa_causal(q.unsqueeze(0), k_.unsqueeze(0), v_.unsqueeze(0))
        if (l + 1) in sched:  # scores: softmax of the last query row over the kept keys, mean over heads
            logits_last = (q[:, -1:, :].float() @ k_.float().transpose(1, 2)) / hd ** 0.5  # [H, 1, n]
            scores = torch.softmax(logits_last, -1).mean(0).squeeze(0)  # [n]
        x = x + att.squeeze(0).transpose(0, 1).reshape(n, d) @ w["wo"].t()
        hn = rmsnorm(x, w["ffn_norm"])
        gu = hn @ w["wgu"].t()
        gate, up = gu.chunk(2, -1)
        x = x + (F.silu(gate) * up) @ w["wdown"].t()
    logits = (rmsnorm(x[-1:], w["final_norm"]) @ w["cls"].t()).float()[0]
    return logits, computed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="llama2-7b", choices=common.SHAPES)
    ap.add_argument("--lengths", default="2048,4096")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--schedule", action="append", default=[], help="repeatable; default: aggressive")
    ap.add_argument("--no-dense", action="store_true")
    ap.add_argument("-o", "--out", default=None, help="JSON file (default: stdout)")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a functional check (wall-clock timing)")
    a = ap.parse_args()
    cuda = a.device.startswith("cuda")
    lengths = [int(x) for x in a.lengths.split(",")]
    n_layers = common.SHAPES[a.shape]["layers"]
    scheds = [] if a.no_dense else [[]]
    scheds += [common.parse_schedule(s, n_layers) for s in (a.schedule or ["aggressive"])]
    t0 = time.time()
    w = build(a.shape, max(lengths) + 8, a.device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    print(f"eager: weights built in {time.time() - t0:.1f} s", file=sys.stderr)
    ev = (lambda: torch.cuda.Event(enable_timing=True)) if cuda else common.HostEvent
    meas = []
    with torch.inference_mode():
        for sched in scheds:
            sd = dict(sched)
            for n in lengths:
                ids = torch.randint(3, common.SHAPES[a.shape]["vocab"], (n,), device=a.device)
                ttft, computed = [], None
                for r in range(a.reps + 1):  # r = 0 warms up
                    s, e = ev(), ev()
                    s.record()
                    logits, computed = prefill(w, ids, sd)
                    e.record()
                    sync()
                    if r:
                        ttft.append(s.elapsed_time(e))
                m = common.measurement("dense" if not sched else "lazy", common.schedule_str(sched), n, 0, ttft,
                                       computed=computed, n_layers=n_layers, sm_clock_mhz=common.sm_clock_mhz())
                meas.append(m)
                print(f"eager {m['policy']} {m['schedule']} pp{n}: TTFT {m['ttft_ms_mean']:.2f} ± {m['ttft_ms_sd']:.2f} ms"
                      f" ({100 * m['prefill_token_layer_fraction']:.1f} % token-layers)", file=sys.stderr)
                del logits
            if cuda:
                torch.cuda.empty_cache()
    common.write_report("eager-pytorch", a.shape, "torch-eager-sdpa-bf16", common.env_info(torch), meas, a.out)


if __name__ == "__main__":
    main()
