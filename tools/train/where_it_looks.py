#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Where does the last prompt token look? For held-out lazyllm_mdqa questions, runs an exported
model (PyTorch fp32 on the CPU, from its bf16 safetensors, through lazy_reference.py's forward
with no schedule) and, for every layer, takes LazyLLM's
importance score: the last prompt token's attention probabilities, mean over heads. It reports
where the answer's value token (e.g. " Chicago" in "Rudolf Weber lives in Chicago.", in the
evidence document) ranks among all prompt tokens, and how much of the attention the evidence
document gets, split by whether the model answers right (greedy first answer token).

The rank is LazyLLM's question: a schedule entry L:p keeps, from layer L on, the tokens whose
layer-(L-1) score is at or above the p-th percentile. A value token ranked below p there is
pruned at L (it may be revived in decode, but the first answer token comes from the prefill).

  python3 tools/train/where_it_looks.py --make-task build/examples/eval/lazyllm-make-task \
      [--model models/lazyqa] [--length 1024] [--count 100] [--filler 0.7] [--json out.json]

Held-out seeds as in docs/accuracy.md (9000000 + 10 L). Single-hop questions only.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train  # noqa: E402  (generate, EVAL_SEED)
from lazy_reference import LazyRun, Model  # noqa: E402  (the same fp32 forward as the LazyLLM check)
from make_tokenizer import Tokenizer  # noqa: E402


def doc_span(context, doc_index):
    """Character span [a, b) of document doc_index (0-based) in the context."""
    a = context.index(f"Document {doc_index + 1}:")
    b = context.find("\n\nDocument ", a)
    return a, (len(context) if b < 0 else b)


def locate_evidence(tok, r):
    """For a single-hop record: its prompt's ids (BOS first), the token index of the answer's value
    in the evidence document, that document's token span [t0, t1) and the value's first token id."""
    prompt, answer = r["prompt"], r["answers"][0]
    ids = tok.encode_fast(prompt, True)
    ctx_at = prompt.index(r["context"])
    da, db = doc_span(r["context"], r["answer_doc"])
    at = r["context"].index(" " + answer, da)
    if at >= db:
        raise SystemExit(f"{r['_id']}: the answer {answer!r} is not in its evidence document")

    def token_at(char):  # index of the token that starts at prompt character `char`
        return len(tok.encode_fast(prompt[:char], True))

    t_value = token_at(ctx_at + at)
    first = tok.encode_words(" " + answer)[0]
    if ids[t_value] != first:
        raise SystemExit(f"{r['_id']}: token {t_value} is {ids[t_value]}, expected the value's first token {first}")
    return ids, t_value, (token_at(ctx_at + da), token_at(ctx_at + db)), first


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--make-task", required=True)
    ap.add_argument("--model", default=os.path.join(here, "..", "..", "models", "lazyqa"))
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--seed", type=int, default=None, help="default: the held-out seed 9000000 + 10 * length")
    ap.add_argument("--filler", type=float, default=0.0, help="lazyllm-make-task --filler: this share of notes")
    ap.add_argument("--json", default="", help="also write the per-example numbers here")
    a = ap.parse_args()

    tok_path = os.path.join(a.model, "tokenizer.bin")
    tok = Tokenizer.load(tok_path)
    torch.set_grad_enabled(False)
    model = Model(a.model)
    seed = a.seed if a.seed is not None else train.EVAL_SEED + 10 * a.length
    recs = train.generate(a.make_task, seed, a.count, a.length, "single", tok_path, filler=a.filler)
    L = model.L
    out = []
    for r in recs:
        ids, t_value, t_doc, first = locate_evidence(tok, r)
        run = LazyRun(model, "")  # dense: every layer's set is the whole prompt
        logits = run.step(ids)[0]
        right = int(logits.argmax()) == first
        T = len(ids)
        rank, mass = [], []
        for layer in range(L):
            score = run.scores[layer].numpy()  # LazyLLM's importance from this layer
            # percentile of the value token: share of prompt tokens scoring below it
            rank.append(float((score < score[t_value]).sum()) / T)
            mass.append(float(score[t_doc[0]:t_doc[1]].sum()))
        out.append({"id": r["_id"], "right": right, "tokens": T, "answer_doc": r["answer_doc"],
                    "n_docs": r["n_docs"], "distance": T - t_value, "rank": rank, "doc_mass": mass})

    def table(rows, title):
        if not rows:
            return
        print(f"\n{title}: {len(rows)} examples")
        print("| layer | value token percentile, median | in top 50 % | in top 30 % | evidence document's attention share, median |")
        print("|---:|---:|---:|---:|---:|")
        for layer in range(L):
            ranks = np.array([x["rank"][layer] for x in rows])
            masses = np.array([x["doc_mass"][layer] for x in rows])
            print(f"| {layer} | {np.median(ranks) * 100:.0f} | {(ranks >= 0.5).mean() * 100:.0f} % | "
                  f"{(ranks >= 0.7).mean() * 100:.0f} % | {np.median(masses) * 100:.1f} % |")

    n_right = sum(x["right"] for x in out)
    print(f"{a.model}: {len(out)} held-out single-hop questions at {a.length} tokens (seed {seed}); "
          f"first answer token right: {n_right}/{len(out)}")
    print("(an evidence document is ~1/n_docs of the prompt; a uniform score puts the value token at the 50th percentile)")
    table([x for x in out if x["right"]], "answered right")
    table([x for x in out if not x["right"]], "answered wrong")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.model, "length": a.length, "seed": seed, "examples": out}, f, indent=1)


if __name__ == "__main__":
    main()
