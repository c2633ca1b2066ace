#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The HF transformers peer of lazyllm-bench-engine's serving scenario: B requests of P random
prompt tokens each, served as one padded batch by `generate` (LlamaForCausalLM, bf16, sdpa,
greedy, exactly G new tokens each, random weights of a Llama 2 shape). Reports, per batch size,
the time to the first token of every request (= the batch's prefill plus its first token),
output tokens/s, total time and the peak GPU memory, or that the batch ran out of memory.

    python3 benchmarks/peer/hf_batched.py --shape llama2-7b -b 1,4,16,32 -p 4096 -n 128 -o hf_batched.json
"""
import argparse
import json
import os
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from hf_llama import SHAPES, VOCAB, rope_kwargs  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="llama2-7b", choices=SHAPES)
    ap.add_argument("-b", "--batches", default="1,4,16,32")
    ap.add_argument("-p", "--prompt", type=int, default=4096)
    ap.add_argument("-n", "--gen", type=int, default=128)
    ap.add_argument("-o", "--out", default=None, help="JSON file (default: stdout)")
    a = ap.parse_args()
    vocab = VOCAB.get(a.shape, 32000)
    cfg = LlamaConfig(vocab_size=vocab, max_position_embeddings=a.prompt + a.gen + 8, rms_norm_eps=1e-5, **rope_kwargs(a.shape),
                      attn_implementation="sdpa", **SHAPES[a.shape])
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    model.generation_config.pad_token_id = 0
    ev = lambda: torch.cuda.Event(enable_timing=True)  # noqa: E731
    cases = []
    for b in [int(x) for x in a.batches.split(",")]:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        ids = torch.randint(3, vocab, (b, a.prompt), device="cuda")
        mask = torch.ones_like(ids)
        case = {"requests": b}
        try:
            with torch.inference_mode():
                # Warm-up at a small size (kernels, allocator), then the timed runs.
                model.generate(input_ids=ids[:, :64], attention_mask=mask[:, :64], max_new_tokens=2, min_new_tokens=2,
                               do_sample=False)
                s, f, e = ev(), ev(), ev()
                s.record()
                model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1, min_new_tokens=1, do_sample=False)
                f.record()
                torch.cuda.synchronize()
                t0 = time.time()
                s2 = ev()
                s2.record()
                out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=a.gen, min_new_tokens=a.gen,
                                     do_sample=False)
                e.record()
                torch.cuda.synchronize()
            assert out.shape[1] == a.prompt + a.gen
            ttft = s.elapsed_time(f)
            total = s2.elapsed_time(e)
            case.update({"ttft_ms_mean": ttft, "ttft_ms_p90": ttft, "total_ms": total,
                         "output_tok_s": b * a.gen / (total / 1e3), "prompt_tok_s": b * a.prompt / (ttft / 1e3),
                         "peak_gpu_bytes": torch.cuda.max_memory_allocated(), "wall_s": time.time() - t0})
        except torch.OutOfMemoryError as err:
            case.update({"oom": True, "error": str(err).splitlines()[0]})
        print(json.dumps(case), file=sys.stderr)
        cases.append(case)
        del ids, mask
    doc = {"schema": "lazyllm-bench-engine-peer/1", "peer": "hf-transformers-generate", "model": a.shape,
           "prompt": a.prompt, "gen": a.gen, "env": common.env_info(torch), "cases": cases}
    text = json.dumps(doc, indent=1)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
