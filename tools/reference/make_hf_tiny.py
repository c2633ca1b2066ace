#!/usr/bin/env python3
"""Build a tiny random HF Llama checkpoint and its reference logits.

Writes (paths relative to the repo root unless overridden):
  tests/data/hf_tiny/          fp32 config.json + model.safetensors
  tests/data/hf_tiny_bf16/     the same weights rounded to bf16
  tests/data/hf_tiny_sharded/  the fp32 weights in 3 shards + model.safetensors.index.json
  tests/fixtures/hf_tiny.json  logits computed by HF transformers itself (eager attention, fp32, CPU)

Usage:
    python3 tools/reference/make_hf_tiny.py [--data-dir tests/data] [--out tests/fixtures/hf_tiny.json]
"""

import argparse
import copy
import inspect
import json
import os
import shutil
import sys

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

PROMPT = [1, 17, 33, 200, 5, 99, 128, 7, 64, 250, 3, 42]
N_GREEDY = 16
ROPE_THETA = 50000.0
KEEP = {"config.json", "model.safetensors", "model.safetensors.index.json"}


def make_config(theta):
    kw = dict(
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=256,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        initializer_range=0.02,
        bos_token_id=1,
        eos_token_id=2,
        attn_implementation="eager",
    )
    params = inspect.signature(LlamaConfig.__init__).parameters
    if "rope_parameters" in params or hasattr(LlamaConfig(), "rope_parameters"):  # transformers 5.x
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
        if "rope_theta" in params:
            kw["rope_theta"] = theta
    else:                                    # transformers 4.x
        kw["rope_theta"] = theta
    cfg = LlamaConfig(**kw)
    try:
        cfg._attn_implementation = "eager"
    except Exception:
        pass
    return cfg


def check_theta(model, theta):
    cfg = model.config
    hd = cfg.hidden_size // cfg.num_attention_heads
    want = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    inv = model.model.rotary_emb.inv_freq.double().cpu()
    err = float((inv - want).abs().max())
    assert err < 1e-6, ("rope theta not applied", inv, want)
    return err


def prune(folder):
    for name in os.listdir(folder):
        if name not in KEEP and not name.startswith("model-"):
            os.remove(os.path.join(folder, name))


def save(model, folder, **kw):
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kw["safe_serialization"] = True
    model.save_pretrained(folder, **kw)
    prune(folder)
    print(folder, sorted(os.listdir(folder)),
          sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)), "bytes")


def load(folder):
    m = LlamaForCausalLM.from_pretrained(folder, attn_implementation="eager")
    assert m.config._attn_implementation == "eager", m.config._attn_implementation
    return m.float().eval()


@torch.no_grad()
def all_logits(model, ids):
    out = model(torch.tensor([ids], dtype=torch.long))
    return out.logits[0]                          # [T, vocab], in the model's dtype


@torch.no_grad()
def greedy(model, prompt, n):
    seq = list(prompt)
    gen = []
    for _ in range(n):
        nxt = int(torch.argmax(model(torch.tensor([seq])).logits[0, -1]))
        gen.append(nxt)
        seq.append(nxt)
    return gen


def rows(t):
    # float32 values: 9 significant digits round-trip exactly
    return [[float("%.9g" % v) for v in r.tolist()] for r in t]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="tests/data")
    ap.add_argument("--out", default="tests/fixtures/hf_tiny.json")
    args = ap.parse_args()

    torch.set_num_threads(min(8, os.cpu_count() or 1))
    print("torch", torch.__version__, "transformers", transformers.__version__)

    torch.manual_seed(1234)
    cfg = make_config(ROPE_THETA)
    model = LlamaForCausalLM(cfg).float().eval()
    # norm weights: 1 + 0.1 * randn, so that a loader that ignores them is caught
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape))
    if getattr(model.config, "_attn_implementation", None) != "eager":
        model.set_attn_implementation("eager")
    print("attn impl:", getattr(model.config, "_attn_implementation", None))
    check_theta(model, ROPE_THETA)
    for name, p in model.state_dict().items():
        print("  %-45s %s %s" % (name, tuple(p.shape), p.dtype))

    d_f32 = os.path.join(args.data_dir, "hf_tiny")
    d_bf16 = os.path.join(args.data_dir, "hf_tiny_bf16")
    d_shard = os.path.join(args.data_dir, "hf_tiny_sharded")
    save(model, d_f32)
    save(model, d_shard, max_shard_size="200KB")
    save(copy.deepcopy(model).to(torch.bfloat16), d_bf16)
    with open(os.path.join(d_f32, "config.json")) as f:
        print("config.json:", f.read())

    # logits from what was written to disk, cross-checked against the in-memory model
    ref = all_logits(model, PROMPT)
    m_f32 = load(d_f32)
    check_theta(m_f32, ROPE_THETA)
    l_f32 = all_logits(m_f32, PROMPT)
    l_shard = all_logits(load(d_shard), PROMPT)
    print("reload max|diff|: fp32 dir %.3g, sharded dir %.3g"
          % (float((ref - l_f32).abs().max()), float((ref - l_shard).abs().max())))
    assert torch.allclose(ref, l_f32, rtol=0, atol=1e-6)
    assert torch.allclose(ref, l_shard, rtol=0, atol=1e-6)
    m_bf16 = load(d_bf16)
    assert all(p.dtype == torch.float32 for p in m_bf16.parameters())
    l_bf16 = all_logits(m_bf16, PROMPT)
    g_f32 = greedy(m_f32, PROMPT, N_GREEDY)

    # diagnostics for test tolerances
    l_f64 = all_logits(load(d_f32).double(), PROMPT)
    assert l_f64.dtype == torch.float64 and l_f32.dtype == torch.float32
    diff_f64 = float((l_f32.double() - l_f64).abs().max())
    m_theta = LlamaForCausalLM(make_config(10000.0)).float().eval()
    sd = {k: v for k, v in m_f32.state_dict().items() if "rotary" not in k}
    missing, unexpected = m_theta.load_state_dict(sd, strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    check_theta(m_theta, 10000.0)
    diff_theta = float((all_logits(m_theta, PROMPT) - l_f32).abs().max())
    diff_bf16 = float((l_bf16 - l_f32).abs().max())
    print("max|f32-f64| = %.3g, max|bf16w-f32| = %.3g, max|theta1e4-theta5e4| = %.3g"
          % (diff_f64, diff_bf16, diff_theta))
    print("greedy_f32:", g_f32)
    print("logit range: %.4f .. %.4f" % (float(l_f32.min()), float(l_f32.max())))

    doc = {
        "generator": "tools/reference/make_hf_tiny.py",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "config": {"hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
                   "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
                   "rms_norm_eps": 1e-5, "rope_theta": ROPE_THETA, "tie_word_embeddings": False},
        "notes": "logits_f32: HF LlamaForCausalLM (eager, fp32, CPU) loaded from hf_tiny/, one row "
                 "per prompt position (row P predicts token P+1); identical for hf_tiny_sharded/. "
                 "logits_bf16_weights: hf_tiny_bf16/ loaded and upcast with model.float(). "
                 "greedy_f32: argmax continuation, full recompute per step, no EOS stop. "
                 "diag_*: max abs logit differences (f32 vs float64 compute, HF computing RoPE angles in f32; bf16 weights vs f32; "
                 "rope_theta 10000 instead of 50000) to help choose tolerances.",
        "prompt": PROMPT,
        "logits_f32": rows(l_f32),
        "logits_bf16_weights": rows(l_bf16),
        "greedy_f32": g_f32,
        "diag_max_abs_f32_vs_f64": diff_f64,
        "diag_max_abs_bf16_weights_vs_f32": diff_bf16,
        "diag_max_abs_theta_10000_vs_50000": diff_theta,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(json.dumps(doc, separators=(",", ":")).replace('],[', '],\n['))
        f.write("\n")
    print("wrote", args.out, os.path.getsize(args.out), "bytes")


if __name__ == "__main__":
    sys.exit(main())
