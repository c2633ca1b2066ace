#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Is LazyLLM's loss at a schedule a selection problem or the model's? For single-hop questions
(validation seeds 8000000 + 10 L by default), runs an exported model's prefill (PyTorch fp32 on
the CPU, lazy_reference.Model's layers) four ways and checks the first answer token:

  dense       every row at every layer
  lazy        the schedule, rows kept by LazyLLM's score (last token's attention, mean over heads)
  oracle_doc  the same set sizes, but the evidence document's rows are always kept, the rest by score
  oracle_val  the same, keeping only the answer's value token

It also prints, per question, whether the value token is in each layer's set under `lazy` and
what share of the evidence document is. If forcing the evidence in does not rescue the lost
questions, the late layers are not missing the evidence but are sensitive to which other rows
are gone (docs/accuracy.md, "Random token dropout").

  python3 tools/train/keep_oracle.py --make-task build/examples/eval/lazyllm-make-task \
      --model models/lazyqa-notes --length 2048 --count 50 [--json out.json]
"""
import argparse, json, os, sys, math
import numpy as np, torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train
from lazy_reference import LazyRun, Model
from make_tokenizer import Tokenizer
from where_it_looks import doc_span

class ForcedRun(LazyRun):
    """A prefill under a schedule whose sets optionally always hold the rows in `force`."""

    def __init__(self, model, schedule, force):
        super().__init__(model, schedule); self.force = set(force) if force is not None else None
    def step(self, ids):
        m = self.m
        self.n += len(ids)
        sel = list(range(self.n))
        hid = {p: m.emb[t] for p, t in enumerate(ids)}
        self.sets = []
        for i in range(m.L):
            comp = sel
            x = torch.stack([hid[p] for p in comp]); cpos = torch.tensor(comp)
            q, k, v = m.qkv(i, x, cpos)
            out, score = m.finish(i, x, q, cpos, k, v, cpos)
            self.sets.append(set(sel))
            hid = {p: out[j] for j, p in enumerate(comp)}
            if i + 1 in self.plan:
                n = score.numel()
                if self.force is not None and self.force:
                    # keep the forced tokens, then fill the same count by score
                    kth = min(int(math.floor(self.plan[i + 1] * n)), n - 1)
                    nkeep = n - kth
                    order = torch.argsort(score, descending=True).tolist()
                    keepset = [j for j, p in enumerate(sel) if p in self.force] + [n - 1]
                    ks = set(keepset)
                    for j in order:
                        if len(ks) >= nkeep: break
                        ks.add(j)
                    keep = torch.zeros(n, dtype=torch.bool); keep[list(ks)] = True
                else:
                    kth = min(int(math.floor(self.plan[i + 1] * n)), n - 1)
                    thr = torch.sort(score).values[kth]
                    keep = score >= thr; keep[-1] = True
                sel = [p for j, p in enumerate(sel) if keep[j]]
                hid = {p: hid[p] for p in sel}
        logits = m.rms(hid[self.n - 1][None], m.final_norm) @ m.emb.T
        return logits[0]

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--make-task", required=True)
ap.add_argument("--model", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "lazyqa-notes"))
ap.add_argument("--length", type=int, default=2048)
ap.add_argument("--count", type=int, default=60)
ap.add_argument("--seed", type=int, default=None)
ap.add_argument("--filler", type=float, default=0.7)
ap.add_argument("--schedule", default="2:0.35,3:0.7,4:0.5,5:0.5")
ap.add_argument("--json", default="")
a = ap.parse_args()
torch.set_grad_enabled(False)
tok_path = os.path.join(a.model, "tokenizer.bin"); tok = Tokenizer.load(tok_path)
model = Model(a.model)
seed = a.seed if a.seed is not None else 8000000 + 10 * a.length
recs = train.generate(a.make_task, seed, a.count, a.length, "single", tok_path, filler=a.filler)
rows = []
for r in recs:
    prompt = r["prompt"]; ids = tok.encode_fast(prompt, True); answer = r["answers"][0]
    ctx_at = prompt.index(r["context"]); da, db = doc_span(r["context"], r["answer_doc"])
    at = r["context"].index(" " + answer, da)
    t_value = len(tok.encode_fast(prompt[:ctx_at + at], True))
    t0, t1 = len(tok.encode_fast(prompt[:ctx_at + da], True)), len(tok.encode_fast(prompt[:ctx_at + db], True))
    first = tok.encode_words(" " + answer)[0]
    res = {"id": r["_id"], "T": len(ids), "pos": t_value / len(ids)}
    for name, force in (("dense", None), ("lazy", None), ("oracle_doc", list(range(t0, t1))), ("oracle_val", [t_value])):
        sch = "" if name == "dense" else a.schedule
        run = ForcedRun(model, sch, force)
        lg = run.step(ids)
        res[name] = int(lg.argmax()) == first
        if name == "lazy":
            res["val_in"] = [t_value in s for s in run.sets]
            res["doc_frac"] = [sum(p in s for p in range(t0, t1)) / (t1 - t0) for s in run.sets]
    rows.append(res)
    print(res["id"], res["dense"], res["lazy"], res["oracle_doc"], res["oracle_val"], res["val_in"], [round(x, 2) for x in res["doc_frac"]], flush=True)
n = len(rows)
for k in ("dense", "lazy", "oracle_doc", "oracle_val"):
    print(k, sum(x[k] for x in rows), "/", n)
lost = [x for x in rows if x["dense"] and not x["lazy"]]
print("lost:", len(lost), "value token survived to last layer in", sum(x["val_in"][-1] for x in lost))
won = [x for x in rows if x["lazy"]]
print("won:", len(won), "value token survived to last layer in", sum(x["val_in"][-1] for x in won))
if a.json: json.dump(rows, open(a.json, "w"))
