#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Trains lazyqa, the project's small long-context retrieval model (Llama 2 architecture), on
lazyllm-make-task's synthetic multi-document QA, and exports it as a Hugging Face Llama directory
(config.json + bf16 model.safetensors) plus the llama2.c tokenizer.bin it was trained with.

Data: generated while training by worker processes that run lazyllm-make-task (the one
implementation of the task and its prompt template) and tokenise its "prompt" field with
make_tokenizer.py's encoder (checked here against the exact encoder, and in the repo against the
C++ one). Training seeds count up from 1; held-out evaluation seeds start at 9,000,000.
Curriculum: short prompts first, then longer ones, by fraction of the time budget. Loss: the
answer tokens (" " + answer + EOS) plus ctx_weight x the mean loss of every other token.
--token-drop P: in a share P of the batches, late layers compute a random nested subset of the
rows (drop_plan), as LazyLLM prunes, so that the model tolerates missing context rows there
(models/MODEL_CARD.md, run 13); the loss is then over the rows the last layer computes.

Evaluation: exact match on held-out prompts made with -z tokenizer.bin at 1k/2k/4k tokens, single
and two-hop. Exact match is teacher-forced: greedy decoding gives exactly the target tokens iff
the argmax at every answer position is the target token.

Typical device command (see models/MODEL_CARD.md):
  python3 tools/train/train.py --make-task build-train/examples/eval/lazyllm-make-task --out $OUT
"""
import argparse
import collections
import json
import math
import multiprocessing as mp
import os
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer import EOS, Tokenizer  # noqa: E402

WORDS_PER_TOKEN = 0.745  # generator words per token of this tokenizer (measured: ~1.34 tokens/word)
EVAL_SEED = 9_000_000


# ------------------------------------------------------------------------------------ data
_W = {}


def _init_worker(tok_path, exe, filler=0.0):
    _W["tok"] = Tokenizer.load(tok_path)
    _W["exe"] = exe
    _W["filler"] = filler
    torch.set_num_threads(1)
    os.nice(5)  # the training process (which feeds the GPU) comes first


def generate(exe, seed, count, length, variant, tok_path=None, questions=1, position=None, filler=0.0):
    cmd = [exe, "--seed", str(seed), "--count", str(count), "--length", str(length), "--variant", variant,
           "--emit-prompt", "--questions", str(questions)]
    if filler:  # this fraction of the context is "Note: ..." paragraphs that state no fact
        cmd += ["--filler", str(filler)]
    if position is not None:  # (lo, hi): where the evidence documents go (fractions of the context)
        cmd += ["--answer-position", f"{position[0]}:{position[1]}"]
    if tok_path:
        cmd += ["-z", tok_path]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return [json.loads(line) for line in res.stdout.splitlines() if line.strip()]


# Per-token roles (of a token as a prediction target).
CTX, PRACTICE_ANSWER, ANSWER, IGNORE = 0, 1, 2, -1


def encode_example(tok, r):
    """(ids, roles): BOS + prompt, then " " + answers[0], then EOS. With the generator's practice
    turns ("training_segments", --questions K) the prompt holds K - 1 answered questions first;
    their answers are supervised too, and the token after each of them is not a target (at
    evaluation the answer is followed by EOS, in a practice turn by a newline)."""
    segs = r.get("training_segments")
    if segs is None:
        segs = [{"text": r["prompt"], "kind": "prompt"}, {"text": " " + r["answers"][0], "kind": "answer"}]
    ids, roles = [], []
    after_practice = False
    for k, seg in enumerate(segs):
        part = tok.encode_fast(seg["text"], True) if k == 0 else tok.encode_words(seg["text"])
        role = {"prompt": CTX, "practice_answer": PRACTICE_ANSWER, "answer": ANSWER}[seg["kind"]]
        rs = [role] * len(part)
        if after_practice and rs:
            rs[0] = IGNORE
        after_practice = role == PRACTICE_ANSWER
        ids += part
        roles += rs
    return ids + [EOS], roles + [ANSWER]


def make_batch(spec):
    """One padded batch from lazyllm-make-task: inputs (B, T) int32, targets (B, T) int16 (-1 =
    ignore), answer mask (every supervised answer) and final-answer mask (B, T) bool, plus the
    real prompt lengths."""
    seed, words, variant, count, z, questions, position, filler = spec
    tok = _W["tok"]
    recs = generate(_W["exe"], seed, count, words, variant, z, questions, position, filler)
    return pack([encode_example(tok, r) for r in recs], [r["dataset"] for r in recs])


def pack(examples, datasets=None, multiple=64):
    T = max(len(ids) - 1 for ids, _ in examples)
    T = (T + multiple - 1) // multiple * multiple
    B = len(examples)
    inp = np.zeros((B, T), np.int32)
    tgt = np.full((B, T), -1, np.int16)
    ans = np.zeros((B, T), np.bool_)
    fin = np.zeros((B, T), np.bool_)
    lens = []
    for b, (ids, roles) in enumerate(examples):
        n = len(ids) - 1
        role = np.asarray(roles[1:], np.int8)
        inp[b, :n] = ids[:-1]
        tgt[b, :n] = np.where(role == IGNORE, -1, np.asarray(ids[1:]))
        ans[b, :n] = (role == PRACTICE_ANSWER) | (role == ANSWER)
        fin[b, :n] = role == ANSWER
        lens.append(roles.index(ANSWER))
    return {"inp": inp, "tgt": tgt, "ans": ans, "fin": fin, "prompt_len": lens, "datasets": datasets}


# ------------------------------------------------------------------------------------ model
class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def attention(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    # torch < 2.0 (CPU smoke tests only)
    T = q.shape[-2]
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s.float(), -1).to(v.dtype) @ v


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hd = c["dim"], c["head_dim"]
        self.n_heads, self.n_kv, self.hd = c["n_heads"], c["n_kv_heads"], hd
        self.input_layernorm = RMSNorm(d, c["eps"])
        self.q_proj = nn.Linear(d, self.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(d, self.n_kv * hd, bias=False)
        self.v_proj = nn.Linear(d, self.n_kv * hd, bias=False)
        self.o_proj = nn.Linear(self.n_heads * hd, d, bias=False)
        self.post_attention_layernorm = RMSNorm(d, c["eps"])
        self.gate_proj = nn.Linear(d, c["hidden"], bias=False)
        self.up_proj = nn.Linear(d, c["hidden"], bias=False)
        self.down_proj = nn.Linear(c["hidden"], d, bias=False)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.n_heads, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        cq, sq = cos.to(q.dtype), sin.to(q.dtype)
        q = q * cq + rotate_half(q) * sq
        k = k * cq + rotate_half(k) * sq
        if self.n_kv != self.n_heads:  # GQA, HF layout: kv head j serves query heads j*r .. j*r+r-1
            r = self.n_heads // self.n_kv
            k = k.repeat_interleave(r, dim=1)
            v = v.repeat_interleave(r, dim=1)
        o = attention(q, k, v).transpose(1, 2).reshape(B, T, self.n_heads * self.hd)
        x = x + self.o_proj(o)
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab"], c["dim"])
        self.layers = nn.ModuleList(Block(c) for _ in range(c["layers"]))
        self.norm = RMSNorm(c["dim"], c["eps"])
        hd = c["head_dim"]
        inv = 1.0 / (c["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        self.register_buffer("inv_freq", inv.float(), persistent=False)
        std = 0.02
        for n, p in self.named_parameters():
            if p.dim() == 2:
                s = std / math.sqrt(2 * c["layers"]) if n.endswith(("o_proj.weight", "down_proj.weight")) else std
                nn.init.normal_(p, 0.0, s)

    def forward(self, ids, plan=None):
        """Logits (B, T, vocab). With plan (random token dropout, `drop_plan`): {layer: (B, n_l)
        sorted positions that layer computes}, nested; rows outside a layer's set are gone from it
        and every later layer, as LazyLLM prunes, and the logits are those of the last layer's rows."""
        T = ids.shape[1]
        pos = torch.arange(T, device=ids.device, dtype=torch.float32)
        f = torch.outer(pos, self.inv_freq)
        emb = torch.cat((f, f), -1)
        cos_t, sin_t = emb.cos(), emb.sin()
        cos, sin = cos_t[None, None], sin_t[None, None]
        x = self.embed_tokens(ids)
        cur = None  # (B, n) positions of x's rows once a layer has dropped some
        for i, layer in enumerate(self.layers):
            if plan and i in plan:
                keep = plan[i]
                rel = keep if cur is None else torch.searchsorted(cur, keep)
                x = x.gather(1, rel[..., None].expand(-1, -1, x.shape[-1]))
                cur = keep
                cos, sin = cos_t[keep][:, None], sin_t[keep][:, None]
            x = layer(x, cos, sin)
        return F.linear(self.norm(x), self.embed_tokens.weight)  # tied classifier


def drop_plan(protect, layers, first, keep_lo, keep_hi, gen):
    """Random token dropout for one batch (train.py --token-drop): from layer `first` on, each
    layer keeps a random share U(keep_lo, keep_hi) of the previous layer's rows, nested (a row
    dropped at layer l stays dropped), the same count in every sequence. `protect` (B, T) marks
    rows never dropped (the positions whose next token is a supervised answer). Which rows go is
    random, not scored: the model is to tolerate missing context rows in late layers, whatever
    picks them. Returns {layer: (B, n_l) sorted positions}."""
    B, T = protect.shape
    pri = torch.rand(B, T, device=protect.device, generator=gen)
    pri = pri.masked_fill(protect, -1.0)
    order = pri.argsort(1)  # protected rows first, then a random order
    floor = int(protect.sum(1).max()) + 1
    n, plan = T, {}
    for layer in range(first, layers):
        share = keep_lo + (keep_hi - keep_lo) * float(torch.rand(1, generator=gen, device=protect.device))
        n = min(n, max(int(n * share), floor))
        plan[layer] = order[:, :n].sort(1).values
    return plan


def hf_state_dict(model):
    out = {"model.embed_tokens.weight": model.embed_tokens.weight}
    for i, l in enumerate(model.layers):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = l.input_layernorm.weight
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[p + f"self_attn.{n}.weight"] = getattr(l, n).weight
        out[p + "post_attention_layernorm.weight"] = l.post_attention_layernorm.weight
        for n in ("gate_proj", "up_proj", "down_proj"):
            out[p + f"mlp.{n}.weight"] = getattr(l, n).weight
    out["model.norm.weight"] = model.norm.weight
    return out


def save_safetensors(path, tensors):
    """bf16 safetensors (the format: u64 header size, JSON header, raw little-endian data)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu", torch.bfloat16).contiguous()
        b = t.view(torch.int16).numpy().astype("<i2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """The inverse of save_safetensors for its own files (BF16 or F32 tensors) -> {name: fp32}."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, d in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = d["data_offsets"]
        if d["dtype"] == "BF16":
            raw = np.frombuffer(data[b0:b1], dtype="<i2").copy()
            t = torch.from_numpy(raw).view(torch.bfloat16).float()
        elif d["dtype"] == "F32":
            t = torch.from_numpy(np.frombuffer(data[b0:b1], dtype="<f4").copy())
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {d['dtype']}; --init reads BF16 or F32")
        out[name] = t.reshape(d["shape"])
    return out


def init_from(model, path):
    """--init: start from an exported checkpoint of the same shape (continued training). The
    embedding may have fewer rows than the model's vocabulary when the tokenizer extends the
    checkpoint's (make_tokenizer.py --extend: the old ids keep their pieces): the old rows are
    copied and the new ones keep their fresh initialisation."""
    src = load_safetensors(path)
    dst = hf_state_dict(model)
    missing = sorted(set(dst) - set(src))
    if missing:
        raise SystemExit(f"{path}: missing {missing[:3]}... for this model shape (--dim/--layers/--heads?)")
    grown = []
    with torch.no_grad():
        for name, p in dst.items():
            s_shape, d_shape = tuple(src[name].shape), tuple(p.shape)
            if s_shape == d_shape:
                p.copy_(src[name].to(p.device))
            elif name == "model.embed_tokens.weight" and len(s_shape) == 2 and s_shape[1] == d_shape[1] \
                    and s_shape[0] < d_shape[0]:
                p[:s_shape[0]].copy_(src[name].to(p.device))
                grown.append(f"{name} {s_shape[0]} -> {d_shape[0]} rows")
            else:
                raise SystemExit(f"{path}: {name} has shape {list(s_shape)}, the model wants {list(d_shape)}")
    print(f"initialised from {path} ({len(dst)} tensors{'; ' + ', '.join(grown) if grown else ''})", flush=True)


def hf_config(c):
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": c["dim"],
        "intermediate_size": c["hidden"],
        "num_attention_heads": c["n_heads"],
        "num_key_value_heads": c["n_kv_heads"],
        "num_hidden_layers": c["layers"],
        "head_dim": c["head_dim"],
        "hidden_act": "silu",
        "rms_norm_eps": c["eps"],
        "rope_theta": c["rope_theta"],
        "max_position_embeddings": c["max_pos"],
        "vocab_size": c["vocab"],
        "tie_word_embeddings": True,
        "attention_bias": False,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "torch_dtype": "bfloat16",
        "bos_token_id": 1,
        "eos_token_id": 2,
    }


# ------------------------------------------------------------------------------------ eval
@torch.no_grad()
def exact_match(model, batches, device, autocast):
    """Teacher-forced exact match per example; returns (#correct, #examples, mean prompt tokens)."""
    model.eval()
    ok = n = tokens = 0
    for bt in batches:
        inp = torch.from_numpy(bt["inp"]).to(device).long()
        tgt = torch.from_numpy(bt["tgt"]).to(device).long()
        ans = torch.from_numpy(bt["fin"]).to(device)
        with autocast():
            logits = model(inp)
        pred = logits.argmax(-1)
        wrong = ((pred != tgt) & ans).any(-1)
        ok += int((~wrong).sum())
        n += inp.shape[0]
        tokens += sum(bt["prompt_len"])
    model.train()
    return ok, n, tokens / max(n, 1)


def split_batches(examples, max_tokens):
    out, cur = [], []
    for e in sorted(examples, key=lambda e: len(e[0])):
        if cur and len(e[0]) * (len(cur) + 1) > max_tokens:
            out.append(pack(cur))
            cur = []
        cur.append(e)
    if cur:
        out.append(pack(cur))
    return out


# ------------------------------------------------------------------------------------ main
# Curriculum stages: (target prompt lengths in tokens, p_twohop, single-hop train exact match that
# moves on to the next stage, fraction of the time budget by which it moves on anyway[, questions
# per sequence: the real one plus practice turns, default 1]).
CURRICULA = {
    # Entity binding first, at exactly 2 documents (the probes of 2026-11-28, round 2: 4 heads of 64
    # at lr 5e-4 went from the 50 % relation-lookup plateau to 99 % train exact match in ~1,300
    # steps), then longer prompts with two-hop questions mixed in. No practice turns (K = 1).
    # Candidates for the next run (models/MODEL_CARD.md "Next"), not run yet. "mixed": after
    # binding, every length from 2 documents to 4.6k tokens in every stretch of batches (one length
    # per batch, drawn uniformly: equal tokens per length), two-hop questions at 15 %.
    "mixed": [([128, 134], 0.0, 0.97, 0.25, 1),
              ([128, 256, 512, 1024, 1536, 2048, 3072, 4096, 4608], 0.15, 2.0, 1.0, 1)],
    # "ladder": single-hop only until 1k holds, smaller steps, two-hop in the last stage only.
    "ladder": [([128, 134], 0.0, 0.97, 0.15, 1), ([128, 192, 256, 384], 0.0, 0.95, 0.3, 1),
               ([256, 384, 512, 768, 1024], 0.0, 0.93, 0.5, 1), ([512, 1024, 1536, 2048], 0.0, 0.9, 0.7, 1),
               ([256, 1024, 2048, 3072, 4096, 4608], 0.2, 2.0, 1.0, 1)],
    # "distance": after binding, the evidence documents go in the first half of the context
    # (lazyllm-make-task --answer-position 0:0.5) at growing lengths, so every answer is far from
    # the question (run 5 bound only near it: models/MODEL_CARD.md), then the evaluation format.
    # Stage tuple: (lengths, p_twohop, EM to pass, time fraction to end, K, answer position).
    "distance": [([128, 134], 0.0, 0.97, 0.15, 1), ([256, 384, 512, 768], 0.0, 0.9, 0.35, 1, (0.0, 0.5)),
                 ([768, 1024, 1536, 2048], 0.0, 0.85, 0.6, 1, (0.0, 0.5)),
                 ([256, 1024, 2048, 3072, 4096, 4608], 0.15, 2.0, 1.0, 1)],
    "bind": [([128, 134], 0.0, 0.97, 0.25, 1), ([128, 192, 256, 384, 512], 0.2, 0.95, 0.5, 1),
             ([256, 512, 1024, 1536, 2048], 0.25, 0.95, 0.7, 1),
             ([512, 1024, 2048, 3072, 4096, 4608], 0.25, 2.0, 1.0, 1)],
    # Many answered questions per context (each sequence gives K retrieval gradients instead of
    # one) at 2-6 documents until entities are told apart, then longer prompts.
    "practice": [([192, 256, 384, 512], 0.0, 0.85, 0.5, 8), ([512, 768, 1024, 1536], 0.3, 0.85, 0.7, 8),
                 ([1024, 2048, 3072, 4096, 4608], 0.5, 2.0, 1.0, 4)],
    # Runs 5, 7 and 8 in one curriculum, for a new shape from scratch (models/MODEL_CARD.md "Runs 7
    # and 8", Next 2: a 12-layer model); used for runs 9 (8-12 layers). Binding at 2 documents, then 8 answered
    # questions per sequence at growing lengths, then mostly two-hop questions (run 8's step).
    "run8": [([128, 134], 0.0, 0.97, 0.15, 1), ([128, 256, 384, 512], 0.0, 0.9, 0.3, 8),
             ([512, 1024, 1536, 2048, 3072, 4096], 0.2, 0.95, 0.7, 8),
             ([512, 1024, 1536, 2048, 3072, 4096], 0.8, 2.0, 1.0, 8)],
    # the second run's (v2), see models/MODEL_CARD.md
    "progressive": [([64, 96, 128], 0.0, 0.7, 0.25), ([128, 192, 256, 384], 0.2, 0.7, 0.4),
                    ([256, 512, 768, 1024], 0.4, 0.7, 0.55), ([512, 1024, 1536, 2048, 3072], 0.5, 0.7, 0.7),
                    ([768, 1536, 2048, 3072, 3584, 4096, 4608], 0.5, 2.0, 1.0)],
    # the first run's, by time alone (retrieval never emerged: see models/MODEL_CARD.md)
    "v1": [([192, 256, 384, 512], 0.3, 2.0, 0.22), ([512, 768, 1024, 1536, 2048], 0.5, 2.0, 0.45),
           ([768, 1536, 2048, 3072, 3584, 4096, 4608], 0.5, 2.0, 1.0)],
    "short": [([64, 96, 128, 192], 0.2, 2.0, 1.0)],
}


class Curriculum:
    def __init__(self, name, fixed=None):
        """`fixed` = (lengths, p_twohop, questions, answer position or None): one stage for the
        whole run (probes)."""
        self.stages = [(fixed[0], fixed[1], 2.0, 1.0, fixed[2], fixed[3])] if fixed else CURRICULA[name]
        self.stage = 0

    def update(self, f, single_em):
        """Moves on when the single-hop exact match of recent training batches reaches the
        stage's threshold or its time is up; True when it moved."""
        lengths, p2, em_to_pass, f_end = self.stages[self.stage][:4]
        if self.stage + 1 < len(self.stages) and (f >= f_end or (single_em is not None and single_em >= em_to_pass)):
            self.stage += 1
            return True
        return False

    def sample(self, rng):
        st = self.stages[self.stage]
        return int(rng.choice(st[0])), st[1], (st[4] if len(st) > 4 else 1), (st[5] if len(st) > 5 else None)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--make-task", required=True)
    ap.add_argument("--tokenizer", default=os.path.join(here, "..", "..", "models", "lazyqa", "tokenizer.bin"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--train-seconds", type=float, default=450)
    ap.add_argument("--deadline", type=float, default=1e9, help="stop training this many seconds after start")
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--max-pos", type=int, default=8192)
    ap.add_argument("--tokens-per-batch", type=int, default=65536)
    # 5e-4: in the probes of 2026-11-28 (models/MODEL_CARD.md) 2e-3 learned even the relation lookup
    # several times slower (2 documents, 150 s: answer loss 1.55 vs 0.49)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--min-lr-frac", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--ctx-weight", type=float, default=0.25)
    ap.add_argument("--workers", type=int, default=10)
    ap.add_argument("--eval-workers", type=int, default=4)
    ap.add_argument("--eval-count", type=int, default=200, help="held-out examples per (length, variant)")
    ap.add_argument("--eval-lengths", default="1024,2048,4096")
    ap.add_argument("--eval-at", default="0.3,0.5,0.75", help="fractions of the budget with a quick eval")
    ap.add_argument("--lookahead", type=int, default=24)
    ap.add_argument("--curriculum", default="bind", choices=sorted(CURRICULA))
    ap.add_argument("--smoke", action="store_true", help="tiny CPU-sized run for testing the script")
    ap.add_argument("--fixed-lengths", default="",
                    help="probe: train only at these prompt lengths in tokens (e.g. 96,128), no curriculum")
    ap.add_argument("--fixed-twohop", type=float, default=0.0, help="probe: share of two-hop questions")
    ap.add_argument("--fixed-questions", type=int, default=1, help="probe: questions per sequence (1 = no practice)")
    ap.add_argument("--fixed-position", default="",
                    help="probe: LO:HI, the evidence documents' place in the context (lazyllm-make-task --answer-position)")
    ap.add_argument("--no-export", action="store_true", help="probe: skip the export and the reference logits")
    ap.add_argument("--init", default="", help="continue from this exported model.safetensors (same shape; a "
                    "tokenizer made with make_tokenizer.py --extend may add vocabulary rows)")
    ap.add_argument("--start-stage", type=int, default=0, help="begin the curriculum at this stage (with --init)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the training forward (torch >= 2)")
    ap.add_argument("--filler", type=float, default=0.0,
                    help="lazyllm-make-task --filler for every training and held-out example: this fraction of "
                         "each context is notes that state no fact (build --tokenizer from such text too)")
    ap.add_argument("--filler-share", type=float, default=1.0,
                    help="with --filler: the share of training batches that have notes (the others have none); "
                         "held-out sets always have them")
    ap.add_argument("--token-drop", type=float, default=0.0,
                    help="share of training batches with random token dropout (drop_plan): from layer --drop-from "
                         "on, each layer keeps a random share in --drop-keep of the previous layer's rows; the "
                         "others run dense")
    ap.add_argument("--drop-from", type=int, default=3, help="with --token-drop: the first layer that loses rows")
    ap.add_argument("--drop-keep", default="0.3:0.9", help="with --token-drop: LO:HI, the share each layer keeps")
    a = ap.parse_args()
    try:
        drop_lo, drop_hi = (float(x) for x in a.drop_keep.split(":"))
    except ValueError:
        raise SystemExit(f"--drop-keep {a.drop_keep!r}: expected LO:HI, e.g. 0.3:0.9")
    if not (0.0 <= a.token_drop <= 1.0 and 0.0 < drop_lo <= drop_hi <= 1.0 and 1 <= a.drop_from < a.layers):
        raise SystemExit(f"--token-drop {a.token_drop} / --drop-keep {a.drop_keep} / --drop-from {a.drop_from}: "
                         f"need a share in [0, 1], 0 < LO <= HI <= 1 and 1 <= layer < --layers")
    if not 0.0 <= a.filler_share <= 1.0:
        raise SystemExit(f"--filler-share {a.filler_share}: need a fraction in [0, 1]")
    if not 0.0 <= a.filler <= 0.95:
        raise SystemExit(f"--filler {a.filler}: need a fraction in [0, 0.95]")

    os.makedirs(a.out, exist_ok=True)
    tok = Tokenizer.load(a.tokenizer)
    c = dict(vocab=tok.vocab_size, dim=a.dim, layers=a.layers, n_heads=a.heads, n_kv_heads=a.kv_heads,
             head_dim=a.dim // a.heads, hidden=a.hidden, eps=1e-5, rope_theta=a.rope_theta, max_pos=a.max_pos)
    assert c["head_dim"] * a.heads == a.dim and a.heads % a.kv_heads == 0
    eval_lengths = [int(x) for x in a.eval_lengths.split(",")]
    t_start = time.time()
    log = {"config": c, "args": vars(a), "curve": [], "evals": [], "stages": []}

    # Check the fast encoder against the exact one on a few prompts (they must agree).
    for r in (generate(a.make_task, 12345, 4, 600, "mixed") + generate(a.make_task, 12346, 2, 3000, "twohop") +
              generate(a.make_task, 12347, 3, 400, "mixed", questions=5) +
              (generate(a.make_task, 12348, 2, 600, "mixed", filler=a.filler) if a.filler else [])):
        t = "".join(s["text"] for s in r["training_segments"]) if "training_segments" in r else \
            r["prompt"] + " " + r["answers"][0]
        assert tok.encode(t, True) == tok.encode_fast(t, True), "fast encoder differs from the exact one"
        ids, roles = encode_example(tok, r)
        assert ids[:-1] == tok.encode(t, True), "the segments do not encode as the whole text"
        assert tok.decode([i for i, ro in zip(ids, roles) if ro == ANSWER][:-1]).strip() == r["answers"][0]
    print(f"tokenizer {a.tokenizer}: {tok.vocab_size} pieces; fast encoder == exact encoder", flush=True)

    ctx = mp.get_context("fork")
    pool = ctx.Pool(a.workers, initializer=_init_worker, initargs=(a.tokenizer, a.make_task, a.filler))
    epool = ctx.Pool(a.eval_workers, initializer=_init_worker, initargs=(a.tokenizer, a.make_task, a.filler))
    # Held-out sets, exact token lengths (-z), generated in the background: chunks of 25.
    eval_jobs = {}
    chunk = 25 if not a.smoke else a.eval_count
    for L in eval_lengths:
        for vi, variant in enumerate(("single", "twohop")):
            jobs = []
            for k in range(0, a.eval_count, chunk):
                seed = EVAL_SEED + L * 10 + vi * 100000 + k // chunk
                jobs.append(epool.apply_async(
                    _eval_chunk, ((seed, min(chunk, a.eval_count - k), L, variant, a.tokenizer),)))
            eval_jobs[(L, variant)] = (jobs, EVAL_SEED + L * 10 + vi * 100000)

    device = torch.device(a.device)
    if a.token_drop > 0 and device.type == "cuda" and hasattr(torch.backends.cuda, "enable_cudnn_sdp"):
        # Token dropout gives every step new sequence lengths, and cuDNN's attention builds a graph per
        # new shape: on an H200 a step took 384 ms instead of 34 (measured 2026-11-29); flash does not.
        torch.backends.cuda.enable_cudnn_sdp(False)
    torch.manual_seed(0)
    model = Llama(c).to(device)
    if a.init:
        init_from(model, a.init)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {json.dumps(c)}; {n_params} parameters ({n_params * 2 / 1e6:.2f} MB bf16)", flush=True)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt_kw = dict(lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    if device.type == "cuda":
        opt_kw["fused"] = True
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            **opt_kw)
    use_bf16 = device.type == "cuda"
    # --compile: the training step's forward through torch.compile (dynamic shapes: one length per
    # batch). Not yet tried on the GPU machine; evaluation and export use the plain module.
    fwd = torch.compile(model, dynamic=True) if a.compile else model

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16) if use_bf16 else torch.autocast("cpu", enabled=False)

    rng = np.random.default_rng(0)
    gen = torch.Generator(device=device)
    gen.manual_seed(0)
    fixed = None
    if a.fixed_lengths:
        position = None
        if a.fixed_position:
            lo, _, hi = a.fixed_position.partition(":")
            try:
                position = (float(lo), float(hi))
            except ValueError:
                raise SystemExit(f"--fixed-position {a.fixed_position!r}: expected LO:HI, e.g. 0:0.5")
            if not 0.0 <= position[0] < position[1] <= 1.0:
                raise SystemExit(f"--fixed-position {a.fixed_position!r}: need 0 <= LO < HI <= 1")
        fixed = ([int(x) for x in a.fixed_lengths.split(",")], a.fixed_twohop, a.fixed_questions, position)
    cur = Curriculum(a.curriculum, fixed)
    if not 0 <= a.start_stage < len(cur.stages):
        raise SystemExit(f"--start-stage {a.start_stage}: the curriculum has {len(cur.stages)} stages")
    cur.stage = a.start_stage
    pending = collections.deque()
    next_seed = [1]
    t0 = [None]

    def frac():
        return 0.0 if t0[0] is None else (time.time() - t0[0]) / a.train_seconds

    def submit():
        tokens, p2, questions, position = cur.sample(rng)
        variant = "twohop" if rng.random() < p2 else "single"
        count = max(1, a.tokens_per_batch // (tokens + 16 * (questions - 1)))
        filler = a.filler if a.filler_share >= 1.0 or rng.random() < a.filler_share else 0.0
        spec = (next_seed[0], max(16, int(tokens * WORDS_PER_TOKEN)), variant, count, None, questions, position,
                filler)
        next_seed[0] += 1
        pending.append((variant, pool.apply_async(make_batch, (spec,))))

    def collect(L, variant, limit=None):
        jobs, _ = eval_jobs[(L, variant)]
        if limit is not None:
            n_chunks = max(1, limit // chunk)
            jobs = jobs[:n_chunks]
        if not all(j.ready() for j in jobs) and limit is not None:
            return None
        ex = [e for j in jobs for e in j.get()]
        return split_batches(ex, 32768 if not a.smoke else 4096)

    def run_eval(tag, limit=None):
        res = {}
        for L in eval_lengths:
            for variant in ("single", "twohop"):
                bs = collect(L, variant, limit)
                if bs is None:
                    continue
                ok, n, mean_len = exact_match(model, bs, device, autocast)
                res[f"{L}/{variant}"] = {"correct": ok, "n": n, "acc": ok / n, "mean_prompt_tokens": mean_len}
        line = "  ".join(f"{k} {v['acc'] * 100:5.1f}% ({v['correct']}/{v['n']}, {v['mean_prompt_tokens']:.0f} tok)"
                         for k, v in res.items())
        print(f"[eval {tag}] {line}", flush=True)
        log["evals"].append({"tag": tag, "time": time.time() - t_start, "results": res})
        return res

    for _ in range(a.lookahead):
        submit()
    step, seen_tokens, last_print, dropped_steps = 0, 0, 0.0, 0
    eval_at = sorted(float(x) for x in a.eval_at.split(",") if x)
    acc_ans = collections.deque(maxlen=50)
    em_single = collections.deque(maxlen=20)
    loss_ans_hist, loss_ctx_hist = collections.deque(maxlen=50), collections.deque(maxlen=50)
    print(f"setup {time.time() - t_start:.1f}s; training for {a.train_seconds:.0f}s", flush=True)
    while True:
        variant, job = pending.popleft()
        bt = job.get()
        submit()
        if t0[0] is None:
            t0[0] = time.time()
        f = frac()
        if f >= 1.0 or time.time() - t_start > a.deadline:
            break
        if cur.update(f, float(np.mean(em_single)) if len(em_single) >= 10 else None):
            em_single.clear()
            print(f"curriculum stage {cur.stage} at step {step}, t {time.time() - t0[0]:.1f}s: lengths "
                  f"{cur.stages[cur.stage][0]}, p_twohop {cur.stages[cur.stage][1]}", flush=True)
            log["stages"].append({"stage": cur.stage, "step": step, "time": round(time.time() - t0[0], 1)})
        while eval_at and f >= eval_at[0]:
            eval_at.pop(0)
            run_eval(f"{f:.2f}", limit=64)
        lr = a.lr * min(1.0, (step + 1) / a.warmup)
        lr *= a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(f, 1.0)))
        for g in opt.param_groups:
            g["lr"] = lr
        inp = torch.from_numpy(bt["inp"]).to(device, non_blocking=True).long()
        tgt = torch.from_numpy(bt["tgt"]).to(device, non_blocking=True).long()
        ans = torch.from_numpy(bt["ans"]).to(device, non_blocking=True)
        plan = None
        if a.token_drop > 0 and rng.random() < a.token_drop:
            plan = drop_plan(ans, a.layers, a.drop_from, drop_lo, drop_hi, gen)
            dropped_steps += 1
            last = plan[max(plan)]
            tgt, ans = tgt.gather(1, last), ans.gather(1, last)
        with autocast():
            logits = fwd(inp, plan)
        ce = F.cross_entropy(logits.float().view(-1, logits.shape[-1]), tgt.view(-1).clamp_min(0),
                             reduction="none").view(tgt.shape)
        valid = tgt >= 0
        ctxm = valid & ~ans
        loss_ans = (ce * ans).sum() / ans.sum()
        loss_ctx = (ce * ctxm).sum() / ctxm.sum().clamp_min(1)
        loss = loss_ans + a.ctx_weight * loss_ctx
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen_tokens += int(valid.sum())
        if step % 10 == 0:
            with torch.no_grad():
                fin = torch.from_numpy(bt["fin"]).to(device)
                if plan is not None:
                    fin = fin.gather(1, plan[max(plan)])
                wrong = ((logits.argmax(-1) != tgt) & fin).any(-1)
                acc_ans.append(float((~wrong).float().mean()))
                if variant == "single":
                    em_single.append(acc_ans[-1])
            loss_ans_hist.append(float(loss_ans.detach()))
            loss_ctx_hist.append(float(loss_ctx.detach()))
        now = time.time()
        if now - last_print > 10 and acc_ans:
            last_print = now
            el = now - t0[0]
            rec = {"step": step, "time": round(el, 1), "frac": round(f, 3), "T": inp.shape[1], "B": inp.shape[0],
                   "loss_answer": round(float(np.mean(loss_ans_hist)), 4),
                   "loss_context": round(float(np.mean(loss_ctx_hist)), 4),
                   "train_em": round(float(np.mean(acc_ans)), 3), "stage": cur.stage, "lr": lr,
                   "tokens": seen_tokens, "dropout_steps": dropped_steps}
            log["curve"].append(rec)
            print(f"step {step:6d} t {el:6.1f}s T {inp.shape[1]:5d} B {inp.shape[0]:4d} "
                  f"loss_ans {rec['loss_answer']:.4f} loss_ctx {rec['loss_context']:.4f} "
                  f"train_em {rec['train_em']:.3f} stage {cur.stage} lr {lr:.2e} {seen_tokens / el / 1e6:.2f} Mtok/s "
                  f"queue {sum(j.ready() for _, j in pending)}/{len(pending)}"
                  + (f" dropout {dropped_steps}/{step}" if a.token_drop else ""), flush=True)
    train_time = time.time() - t0[0]
    pool.terminate()
    log["steps"], log["train_seconds"], log["train_tokens"] = step, train_time, seen_tokens
    print(f"trained {step} steps, {seen_tokens / 1e6:.1f}M tokens in {train_time:.1f}s", flush=True)

    # Round to bf16 (the exported weights) and evaluate that model.
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    final = run_eval("final (bf16 weights)")
    log["final"] = final
    epool.terminate()
    if a.no_export:
        log["total_seconds"] = time.time() - t_start
        with open(os.path.join(a.out, "train_log.json"), "w") as fh:
            json.dump(log, fh, indent=1)
        return

    out_dir = os.path.join(a.out, "lazyqa")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as fh:
        json.dump(hf_config(c), fh, indent=2)
        fh.write("\n")
    save_safetensors(os.path.join(out_dir, "model.safetensors"), hf_state_dict(model))
    with open(a.tokenizer, "rb") as src, open(os.path.join(out_dir, "tokenizer.bin"), "wb") as dst:
        dst.write(src.read())

    # Reference logits of one fixed short prompt, in fp32 from the bf16 weights.
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    model.eval()
    ref = generate(a.make_task, 424242, 1, 200, "single")[0]
    ids = tok.encode_fast(ref["prompt"], True)
    with torch.no_grad():
        x = torch.tensor([ids], device=device)
        logits = model(x)[0, -1].float().cpu()
        gen = []
        for _ in range(8):
            nxt = int(model(x)[0, -1].argmax())
            gen.append(nxt)
            if nxt == EOS:
                break
            x = torch.cat([x, torch.tensor([[nxt]], device=device)], 1)
    refj = {"make_task": "--seed 424242 --count 1 --length 200 --variant single --emit-prompt",
            "prompt": ref["prompt"], "answer": ref["answers"][0], "prompt_ids": ids,
            "last_logits": [round(float(v), 6) for v in logits], "greedy_ids": gen,
            "greedy_text": tok.decode(gen)}
    with open(os.path.join(a.out, "reference_logits.json"), "w") as fh:
        json.dump(refj, fh)
    print(f"reference prompt answer {ref['answers'][0]!r}, greedy {tok.decode(gen)!r}", flush=True)
    log["total_seconds"] = time.time() - t_start
    with open(os.path.join(a.out, "train_log.json"), "w") as fh:
        json.dump(log, fh, indent=1)
    print(f"exported to {out_dir} ({os.path.getsize(os.path.join(out_dir, 'model.safetensors'))} bytes); "
          f"total {log['total_seconds']:.0f}s", flush=True)


def _eval_chunk(spec):
    seed, count, L, variant, tok_path = spec
    tok = _W["tok"]
    recs = generate(_W["exe"], seed, count, L, variant, tok_path, filler=_W["filler"])
    return [encode_example(tok, r) for r in recs]


if __name__ == "__main__":
    main()
