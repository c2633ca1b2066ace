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
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402
from lazy_reference import LazyRun, Model  # noqa: E402
from make_tokenizer import Tokenizer  # noqa: E402
from where_it_looks import locate_evidence  # noqa: E402


class ForcedRun(LazyRun):
    """A prefill under a schedule (LazyRun's parsing) whose sets, if `force` is given, always hold
    those positions: each cut keeps as many rows as LazyLLM's would, the forced ones and the last
    token first, then the best-scoring others. Records every layer's set in `sets`."""

    def __init__(self, model, schedule, force=None):
        super().__init__(model, schedule)
        self.force = set(force or ())
        self.sets = []

    def keep_mask(self, score, sel, p):
        n = score.numel()
        kth = min(int(math.floor(p * n)), n - 1)
        if not self.force:  # LazyLLM's rule: at or above the k-th smallest score, ties kept
            keep = score >= torch.sort(score).values[kth]
            keep[-1] = True
            return keep
        chosen = {j for j, pos in enumerate(sel) if pos in self.force} | {n - 1}
        for j in torch.argsort(score, descending=True).tolist():
            if len(chosen) >= n - kth:
                break
            chosen.add(j)
        keep = torch.zeros(n, dtype=torch.bool)
        keep[list(chosen)] = True
        return keep

    def step(self, ids):
        m = self.m
        self.n = len(ids)
        sel = list(range(self.n))
        x = m.emb[torch.tensor(ids)]
        for i in range(m.L):
            pos = torch.tensor(sel)
            q, k, v = m.qkv(i, x, pos)
            x, score = m.finish(i, x, q, pos, k, v, pos)
            self.sets.append(set(sel))
            if i + 1 in self.plan:
                keep = self.keep_mask(score, sel, self.plan[i + 1])
                sel = [p for j, p in enumerate(sel) if keep[j]]
                x = x[keep]
        return (m.rms(x[-1][None], m.final_norm) @ m.emb.T)[0]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make-task", required=True)
    ap.add_argument("--model", default=os.path.join(here, "..", "..", "models", "lazyqa-notes"))
    ap.add_argument("--length", type=int, default=2048)
    ap.add_argument("--count", type=int, default=60)
    ap.add_argument("--seed", type=int, default=None, help="default: the validation seed 8000000 + 10 * length")
    ap.add_argument("--filler", type=float, default=0.7, help="lazyllm-make-task --filler")
    ap.add_argument("--schedule", default="2:0.35,3:0.7,4:0.5,5:0.5")
    ap.add_argument("--json", default="", help="also write the per-question results here")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    tok_path = os.path.join(a.model, "tokenizer.bin")
    tok = Tokenizer.load(tok_path)
    model = Model(a.model)
    seed = a.seed if a.seed is not None else 8000000 + 10 * a.length
    rows = []
    for r in train.generate(a.make_task, seed, a.count, a.length, "single", tok_path, filler=a.filler):
        ids, t_value, (t0, t1), first = locate_evidence(tok, r)
        res = {"id": r["_id"], "tokens": len(ids)}
        for name, force in (("dense", None), ("lazy", None), ("oracle_doc", range(t0, t1)), ("oracle_val", [t_value])):
            run = ForcedRun(model, "" if name == "dense" else a.schedule, force)
            res[name] = int(run.step(ids).argmax()) == first
            if name == "lazy":
                res["value_in_set"] = [t_value in s for s in run.sets]
                res["doc_share_in_set"] = [sum(p in s for p in range(t0, t1)) / (t1 - t0) for s in run.sets]
        rows.append(res)
        print(res["id"], {k: res[k] for k in ("dense", "lazy", "oracle_doc", "oracle_val")}, "value token per layer",
              res["value_in_set"], "evidence share", [round(x, 2) for x in res["doc_share_in_set"]], flush=True)
    for k in ("dense", "lazy", "oracle_doc", "oracle_val"):
        print(f"{k}: {sum(x[k] for x in rows)} / {len(rows)} right")
    for what, sub in (("lost by lazy", [x for x in rows if x["dense"] and not x["lazy"]]),
                      ("right under lazy", [x for x in rows if x["lazy"]])):
        print(f"{what}: {len(sub)}; value token in the last layer's set in {sum(x['value_in_set'][-1] for x in sub)}, "
              f"in layer 2's in {sum(x['value_in_set'][2] for x in sub)}; oracle_doc right in "
              f"{sum(x['oracle_doc'] for x in sub)}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
