#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The HF transformers peer: LlamaForCausalLM, bf16, sdpa attention, random weights of a Llama 2
shape, batch 1. Writes the common JSON schema (benchmarks/peer/common.py) with the
time-to-first-token (prompt ids on the GPU -> last token's logits and its argmax on the GPU) per
prompt length and the decode time per token, measured with CUDA events after a warm-up.

    python3 benchmarks/peer/hf_llama.py --shape llama2-7b --lengths 2048,4096 --reps 3 --gen 16 -o hf.json
"""
import argparse, os, statistics, sys, time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SHAPES = {
    "llama2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32),
    "llama2-13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40, num_key_value_heads=40),
    "tiny": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=8, num_attention_heads=4, num_key_value_heads=4),
    "llama3.1-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                        num_key_value_heads=8),
}
# Vocabulary and RoPE of a shape where they are not Llama 2's (the RoPE type costs nothing in time:
# the frequencies are computed once).
VOCAB = {"llama3.1-8b": 128256}
ROPE = {"llama3.1-8b": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}


def rope_kwargs(shape):
    """LlamaConfig arguments for the shape's RoPE (transformers 5's rope_parameters, or 4.x's spelling)."""
    if shape not in ROPE:
        return {}
    import transformers
    rp = dict(ROPE[shape])
    if int(transformers.__version__.split(".")[0]) >= 5:
        return {"rope_parameters": rp}
    return {"rope_theta": rp.pop("rope_theta"), "rope_scaling": rp}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="llama2-7b", choices=SHAPES)
    ap.add_argument("--lengths", default="2048,4096")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--gen", type=int, default=16)
    ap.add_argument("-o", "--out", default=None, help="JSON file (default: stdout)")
    a = ap.parse_args()
    lengths = [int(x) for x in a.lengths.split(",")]
    vocab = VOCAB.get(a.shape, 32000)
    cfg = LlamaConfig(vocab_size=vocab, max_position_embeddings=max(lengths) + a.gen + 8, rms_norm_eps=1e-5,
                      attn_implementation="sdpa", **SHAPES[a.shape], **rope_kwargs(a.shape))
    torch.manual_seed(0)
    t0 = time.time()
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    print(f"built in {time.time() - t0:.1f} s", file=sys.stderr)
    ev = lambda: torch.cuda.Event(enable_timing=True)
    meas = []
    with torch.inference_mode():
        for n in lengths:
            ids = torch.randint(3, vocab, (1, n), device="cuda")
            ttft, tg = [], []
            for r in range(a.reps + 1):
                s, e = ev(), ev()
                s.record()
                o = model(input_ids=ids, use_cache=True, logits_to_keep=1)
                nxt = o.logits[:, -1].argmax(-1, keepdim=True)
                e.record(); torch.cuda.synchronize()
                past = o.past_key_values
                s2, e2 = ev(), ev()
                s2.record()
                for _ in range(a.gen):
                    o = model(input_ids=nxt, past_key_values=past, use_cache=True)
                    past = o.past_key_values
                    nxt = o.logits[:, -1].argmax(-1, keepdim=True)
                e2.record(); torch.cuda.synchronize()
                if r:
                    ttft.append(s.elapsed_time(e))
                    if a.gen:
                        tg.append(s2.elapsed_time(e2) / a.gen)
            del o, past
            torch.cuda.empty_cache()
            meas.append(common.measurement("dense", "none", n, a.gen, ttft, tg, sm_clock_mhz=common.sm_clock_mhz()))
            print(f"hf pp{n}: TTFT {statistics.mean(ttft):.2f} ms, decode "
                  f"{statistics.mean(tg) if tg else 0.0:.2f} ms/token", file=sys.stderr)
    env = common.env_info(torch, {"transformers": transformers.__version__, "attn": "sdpa", "dtype": "bf16"})
    common.write_report("hf-transformers", a.shape, "hf-transformers-sdpa-bf16", env, meas, a.out)


if __name__ == "__main__":
    main()
