#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""An independent LazyLLM prefill in PyTorch (fp32 on the CPU, from an exported model's bf16
weights), written from ../shared/DESIGN.md section 1 and not from the C++ code, to check the
library's pruned path on a real trained model: `lazyllm-ref-logits MODEL_DIR reference_lazy.json`
(ctest `lazyqa_pytorch_lazy`) runs the same prompts and schedules through the CPU pipeline with
policy::Lazy and compares |S_l| per layer, the last position's logits and the greedy next token.

The method as implemented here: S_0 = every prompt token. Layer l runs on the tokens of S_l only
(causal attention among them in position order, RoPE at their original positions). Its score
for token i of S_l is the last token's attention probability to i, mean over heads. Going into
a scheduled layer l+1 with percentile p: threshold = the k-th smallest score of S_l with
k = min(floor(p * |S_l|), |S_l| - 1) (0-based; p the decimal as written, in exact integer
arithmetic: 0.7 of 10 is 7, although float32(0.7) * 10 is 6.99999988); keep the
tokens scoring at or above it (ties kept) and the last token. The logits come from the last
token after the final norm (tied embeddings).

Each case records the gap between the threshold and the nearest score on either side of the
cut at every pruning boundary: a case whose gap is below --min-gap (relative) could flip under
float reordering, so it is left out rather than making a fragile test.

  python3 tools/train/lazy_reference.py --make-task build/examples/eval/lazyllm-make-task \
      -o models/lazyqa/reference_lazy.json
  python3 tools/train/lazy_reference.py --make-task build/examples/eval/lazyllm-make-task \
      --model models/lazyqa-notes --filler 0.7 --length 512 \
      --schedules "2:0.5,4:0.5;2:0.35,3:0.7,4:0.5,5:0.5" -o models/lazyqa-notes/reference_lazy.json

The model families beyond Llama 2 (tests/data/families: q/k/v biases, q/k norms, an explicit
head_dim, llama3 / YaRN RoPE, an untied lm_head) run too; --prompt-ids gives the prompts as ids
(';'-separated lists) instead of lazyllm-make-task's:

  python3 tools/train/lazy_reference.py --model tests/data/families/qwen2 --prompt-ids "$(...)" \
      --schedules "1:0.5" -o tests/data/families/qwen2/reference_lazy.json
"""
import argparse
import fractions
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hf_check"))
import train  # noqa: E402  (load_safetensors, generate)
from make_tokenizer import EOS, Tokenizer  # noqa: E402

SCHEDULES = ["3:0.3,5:0.5", "2:0.5,4:0.5", "1:0.5,3:0.5,5:0.5"]
PROMPTS = [(424243, "single"), (424244, "twohop"), (424245, "single"), (424246, "twohop")]  # (make-task seed, variant)


class Model:
    def __init__(self, model_dir):
        cfg = json.load(open(os.path.join(model_dir, "config.json")))
        t = train.load_safetensors(os.path.join(model_dir, "model.safetensors"))
        self.L = cfg["num_hidden_layers"]
        self.H, self.KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.hd = cfg.get("head_dim") or cfg["hidden_size"] // self.H
        self.eps, self.theta = cfg["rms_norm_eps"], cfg.get("rope_theta")
        rs = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
        self.inv_freq, self.att_scale = None, 1.0
        if rs.get("rope_type", rs.get("type", "default")) != "default" or self.theta is None:
            # llama3 / YaRN (Llama 3.1, Qwen2.5): transformers' formulas as families_ref.py transcribes them
            import families_ref  # noqa: E402
            inv, self.att_scale = families_ref.inv_freq_and_scale(cfg)
            self.inv_freq = inv.double()
        self.emb = t["model.embed_tokens.weight"]
        self.head = t.get("lm_head.weight", self.emb)  # untied classifier where the checkpoint has one
        self.final_norm = t["model.norm.weight"]
        self.layers = []
        for i in range(self.L):
            p = f"model.layers.{i}."
            self.layers.append({n: t[p + n + ".weight"] for n in (
                "input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj",
                "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")})
            for n in ("self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias",  # Qwen2
                      "self_attn.q_norm.weight", "self_attn.k_norm.weight"):  # Qwen3
                if p + n in t:
                    self.layers[-1][n] = t[p + n]

    def rms(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def rope(self, x, pos):  # x [heads, n, hd]; HF layout: pairs (i, i + hd/2)
        if self.inv_freq is None:
            inv = 1.0 / (self.theta ** (torch.arange(0, self.hd, 2, dtype=torch.float64) / self.hd))
        else:
            inv = self.inv_freq
        ang = torch.outer(pos.double(), inv)
        cos = (torch.cat([ang.cos(), ang.cos()], -1) * self.att_scale).float()
        sin = (torch.cat([ang.sin(), ang.sin()], -1) * self.att_scale).float()
        half = self.hd // 2
        rot = torch.cat([-x[..., half:], x[..., :half]], -1)
        return x * cos + rot * sin

    def qkv(self, i, x, pos):
        """Layer i's normed input projections of rows x at positions pos: q [H, n, hd], k and v
        [KV, n, hd] (RoPE applied to q and k)."""
        w = self.layers[i]
        n = x.shape[0]
        h = self.rms(x, w["input_layernorm"])
        q, k, v = h @ w["self_attn.q_proj"].T, h @ w["self_attn.k_proj"].T, h @ w["self_attn.v_proj"].T
        if "self_attn.q_proj.bias" in w:
            q, k, v = q + w["self_attn.q_proj.bias"], k + w["self_attn.k_proj.bias"], v + w["self_attn.v_proj.bias"]
        q = q.view(n, self.H, self.hd).transpose(0, 1)
        k = k.view(n, self.KV, self.hd).transpose(0, 1)
        v = v.view(n, self.KV, self.hd).transpose(0, 1)
        if "self_attn.q_norm.weight" in w:  # per-head RMSNorm over head_dim, before RoPE
            q, k = self.rms(q, w["self_attn.q_norm.weight"]), self.rms(k, w["self_attn.k_norm.weight"])
        return self.rope(q, pos), self.rope(k, pos), v

    def finish(self, i, x, q, qpos, k, v, kpos):
        """Layer i for the query rows x (their q at positions qpos) over keys/values k, v at kpos
        (causal by position): new rows, and the last query row's probabilities mean over heads."""
        w = self.layers[i]
        g = self.H // self.KV  # query head j uses KV head j // g
        k, v = k.repeat_interleave(g, 0), v.repeat_interleave(g, 0)
        s = (q @ k.transpose(1, 2)) / math.sqrt(self.hd)
        s = s.masked_fill(kpos[None, :] > qpos[:, None], float("-inf"))
        prob = torch.softmax(s, -1)
        o = (prob @ v).transpose(0, 1).reshape(x.shape[0], self.H * self.hd)
        x = x + o @ w["self_attn.o_proj"].T
        h = self.rms(x, w["post_attention_layernorm"])
        gate, up = h @ w["mlp.gate_proj"].T, h @ w["mlp.up_proj"].T
        return x + (torch.nn.functional.silu(gate) * up) @ w["mlp.down_proj"].T, prob[:, -1, :].mean(0)


class LazyRun:
    """One sequence under a schedule, step by step (DESIGN.md section 1): per-layer K/V caches
    that nest, an Aux Cache of parked hidden states, selection repeated from layer 0 at every step
    with the newest token as the last token, and revival of selected tokens that lack K/V."""

    def __init__(self, model, schedule):
        self.m = model
        # layer -> percentile as an exact fraction (the decimal text, not a float)
        self.plan = {int(a): fractions.Fraction(b) for a, b in (e.split(":") for e in schedule.split(","))} if schedule else {}
        self.kv = [dict() for _ in range(model.L)]  # layer -> {position: (k [KV, hd], v [KV, hd])}
        self.aux = {}  # position -> (layer, hidden state at the input of that layer)
        self.n = 0  # context length
        self.scores = []  # the last step's score per layer, over that layer's set S_l

    def step(self, ids):
        """Appends ids (the prompt, or one token) and runs them; returns (logits of the newest
        token, |S_l| per layer, |C_l| per layer, revivals, smallest relative score gap at a cut)."""
        m = self.m
        new = list(range(self.n, self.n + len(ids)))
        self.n += len(ids)
        sel = list(range(self.n))  # S_0: every context token
        hid = {p: m.emb[t] for p, t in zip(new, ids)}  # inputs of the tokens computed at this layer
        sizes, computed, revivals, gap = [], [], 0, float("inf")
        self.scores = []
        for i in range(m.L):
            comp = [p for p in sel if p not in self.kv[i]]
            for p in comp:
                if p not in hid:  # selected again without layer-i K/V: revive from the Aux Cache
                    layer, h = self.aux.pop(p)
                    assert layer == i, f"token {p}: Aux entry for layer {layer}, needed at {i}"
                    hid[p] = h
                    revivals += 1
            x = torch.stack([hid[p] for p in comp])
            cpos = torch.tensor(comp)
            q, k, v = m.qkv(i, x, cpos)
            for j, p in enumerate(comp):
                self.kv[i][p] = (k[:, j], v[:, j])
            spos = torch.tensor(sel)
            K = torch.stack([self.kv[i][p][0] for p in sel], 1)
            V = torch.stack([self.kv[i][p][1] for p in sel], 1)
            out, score = m.finish(i, x, q, cpos, K, V, spos)
            self.scores.append(score)
            sizes.append(len(sel))
            computed.append(len(comp))
            hid = {p: out[j] for j, p in enumerate(comp)}
            if i + 1 in self.plan:
                n = score.numel()
                kth = min(math.floor(self.plan[i + 1] * n), n - 1)
                srt = torch.sort(score).values
                thr = srt[kth]
                below, above = srt[srt < thr], srt[srt > thr]
                if below.numel():
                    gap = min(gap, float((thr - below[-1]) / thr))
                if above.numel():  # a score just above could fall under thr too
                    gap = min(gap, float((above[0] - thr) / thr))
                keep = score >= thr
                keep[-1] = True
                for j, p in enumerate(sel):
                    if not keep[j] and p in hid:  # computed at layer i this step, dropped going into i+1
                        self.aux[p] = (i + 1, hid.pop(p))
                sel = [p for j, p in enumerate(sel) if keep[j]]
        last = self.n - 1
        logits = m.rms(hid[last][None], m.final_norm) @ m.head.T
        return logits[0], sizes, computed, revivals, gap


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--make-task", help="lazyllm-make-task (prompts from it, tokenized with the model's tokenizer.bin)")
    ap.add_argument("--prompt-ids", default=None, help="';'-separated comma lists of prompt ids instead of --make-task")
    ap.add_argument("--model", default=os.path.join(here, "..", "..", "models", "lazyqa"))
    ap.add_argument("--length", type=int, default=256, help="prompt tokens")
    ap.add_argument("--decode-steps", type=int, default=4, help="greedy decode steps per case")
    ap.add_argument("--min-gap", type=float, default=1e-4, help="relative score gap a case needs at every cut")
    ap.add_argument("--filler", type=float, default=0.0, help="lazyllm-make-task --filler: this share of notes")
    ap.add_argument("--schedules", default=";".join(SCHEDULES), help="';'-separated pruned schedules")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    if not a.make_task and not a.prompt_ids:
        ap.error("give --make-task or --prompt-ids")
    tok_path = os.path.join(a.model, "tokenizer.bin")
    tok = Tokenizer.load(tok_path) if a.make_task else None
    model = Model(a.model)
    cases = []
    prompts = PROMPTS if a.make_task else [(None, p) for p in a.prompt_ids.split(";") if p]
    for seed, variant in prompts:
        if seed is None:  # --prompt-ids: `variant` is the id list
            r, ids = {"answers": [""]}, [int(x) for x in variant.split(",")]
            variant = "ids"
        else:
            r = train.generate(a.make_task, seed, 1, a.length, variant, tok_path, filler=a.filler)[0]
            ids = tok.encode_fast(r["prompt"], True)
        for sched in [""] + [x for x in a.schedules.split(";") if x]:
            run = LazyRun(model, sched)
            logits, sizes, comp, rev, gap = run.step(ids)
            tag = f"seed {seed} {variant} ({len(ids)} tokens), schedule {sched or 'none'}"
            if gap < a.min_gap:
                print(f"{tag}: left out, relative gap {gap:.2e} at a prefill cut")
                continue
            first = int(logits.argmax())
            notes = f" --filler {a.filler}" if a.filler else ""
            case = {"make_task": (f"--seed {seed} --count 1 --length {a.length} --variant {variant}{notes} --emit-prompt"
                                  if seed is not None else "--prompt-ids"),
                    "schedule": sched or "none", "prompt_ids": ids, "selected": sizes, "computed": comp,
                    "min_relative_gap": gap if math.isfinite(gap) else None, "greedy_id": first,
                    "last_logits": [round(float(v), 4) for v in logits], "decode": []}
            # decode: feed the greedy token each step, until EOS, --decode-steps or a close cut
            nxt, steps = first, []
            while len(steps) < a.decode_steps and nxt != EOS:
                logits, sizes, comp, rev, gap = run.step([nxt])
                if gap < a.min_gap:
                    print(f"{tag}: decode stops before step {len(steps) + 1} (relative gap {gap:.2e})")
                    break
                steps.append({"id": nxt, "selected": sizes, "computed": comp, "revivals": rev,
                              "greedy_id": int(logits.argmax()), "last_logits": [round(float(v), 4) for v in logits]})
                nxt = int(logits.argmax())
            case["decode"] = steps
            text = tok.decode([first] + [st["greedy_id"] for st in steps]) if tok else [first] + [
                st["greedy_id"] for st in steps]
            print(f"{tag}: |S_l| {case['selected']}, gap {case['min_relative_gap']}, {len(steps)} decode steps, "
                  f"revivals {[st['revivals'] for st in steps]}, greedy {text!r} (answer {r['answers'][0]!r})")
            cases.append(case)
    with open(a.out, "w") as f:
        json.dump({"what": "LazyLLM prefill, PyTorch fp32 from the bf16 weights (tools/train/lazy_reference.py)",
                   "model": os.path.basename(os.path.normpath(a.model)), "cases": cases}, f)
    print(f"{len(cases)} cases -> {a.out}")


if __name__ == "__main__":
    main()
