#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The HF transformers peer: LlamaForCausalLM, bf16, sdpa attention, random weights of a Llama 2
shape, batch 1. Prints JSON with the time-to-first-token (prompt in -> last logits) per prompt
length and the decode time per token, measured with CUDA events after a warm-up.

    python3 benchmarks/peer/hf_llama.py --shape llama2-7b --lengths 2048,4096 --reps 3 --gen 16
"""
import argparse, json, statistics, sys, time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

SHAPES = {
    "llama2-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32),
    "llama2-13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40, num_key_value_heads=40),
    "tiny": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=8, num_attention_heads=4, num_key_value_heads=4),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="llama2-7b", choices=SHAPES)
    ap.add_argument("--lengths", default="2048,4096")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--gen", type=int, default=16)
    a = ap.parse_args()
    lengths = [int(x) for x in a.lengths.split(",")]
    cfg = LlamaConfig(vocab_size=32000, max_position_embeddings=max(lengths) + a.gen + 8, rms_norm_eps=1e-5,
                      attn_implementation="sdpa", **SHAPES[a.shape])
    torch.manual_seed(0)
    t0 = time.time()
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    print(f"built in {time.time() - t0:.1f} s", file=sys.stderr)
    ev = lambda: torch.cuda.Event(enable_timing=True)
    out = {"peer": "hf-transformers", "transformers": transformers.__version__, "torch": torch.__version__,
           "device": torch.cuda.get_device_name(), "shape": a.shape, "attn": "sdpa", "dtype": "bf16", "results": []}
    with torch.inference_mode():
        for n in lengths:
            ids = torch.randint(3, 32000, (1, n), device="cuda")
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
                    ttft.append(s.elapsed_time(e)); tg.append(s2.elapsed_time(e2) / a.gen)
            out["results"].append({"test": f"pp{n}", "ms": ttft, "mean_ms": statistics.mean(ttft),
                                   "tg_ms_per_token": statistics.mean(tg)})
            print(f"pp{n}: TTFT {statistics.mean(ttft):.2f} ms, decode {statistics.mean(tg):.2f} ms/token", file=sys.stderr)
    json.dump(out, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
