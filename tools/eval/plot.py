#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Plot score vs TTFT speedup from lazyllm-eval's --json output.

    python3 tools/eval/plot.py eval.json -o accuracy.png [--title TEXT] [--x speedup|fraction]

One line per pruning policy (lazy, static, random, window) through its schedules, ordered by speedup;
dense is the reference point (speedup 1) and a dashed horizontal line at its score. With
--x fraction the x axis is the token-layers computed (% of dense) instead of the speedup.
Several JSON files may be given (e.g. one per prompt length); each gets its own panel.
Needs matplotlib (it runs on the GPU machine, not in CI).
"""
import argparse
import json
import sys

STYLE = {
    "lazy": dict(color="tab:blue", marker="o", label="LazyLLM"),
    "static": dict(color="tab:orange", marker="s", label="Static"),
    "random": dict(color="tab:green", marker="^", label="RandomDrop"),
    "window": dict(color="tab:purple", marker="D", label="Window (keep first 4 + last)"),
}


def load(path):
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    if "runs" not in j:
        sys.exit(f"{path}: not a lazyllm-eval --json file (no 'runs')")
    return j


def x_of(run, axis):
    if axis == "fraction":
        return 100.0 * run["token_layers_fraction"]
    return run.get("ttft_speedup")


def panel(ax, j, axis, title):
    dense = [r for r in j["runs"] if r["policy"] == "dense"]
    if axis == "speedup" and not dense:
        sys.exit("the JSON has no dense run: the speedup needs --policy dense in lazyllm-eval")
    for policy, style in STYLE.items():
        pts = sorted((x_of(r, axis), r["score"], r["schedule"]) for r in j["runs"] if r["policy"] == policy)
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], linestyle="-", **style)
        for x, y, sched in pts:
            ax.annotate(sched, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=6, alpha=0.7)
    if dense:
        d = dense[0]
        ax.axhline(d["score"], color="black", linestyle="--", linewidth=1, label=f"dense ({d['score']:.1f})")
        ax.plot([x_of(d, axis)], [d["score"]], "k*", markersize=10)
    ax.set_xlabel("TTFT speedup vs dense (x)" if axis == "speedup" else "token-layers computed (% of dense)")
    ax.set_ylabel("score (LongBench metric, x100)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="lazyllm-eval --json output(s)")
    ap.add_argument("-o", "--output", default="accuracy.png", help="PNG to write (default accuracy.png)")
    ap.add_argument("--title", default=None, help="figure title")
    ap.add_argument("--x", choices=["speedup", "fraction"], default="speedup", help="x axis (default speedup)")
    ap.add_argument("--cols", type=int, default=0, help="panels per row (default: all in one row)")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = [load(p) for p in args.json]
    cols = args.cols if args.cols > 0 else len(files)
    rows = (len(files) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.2 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(files):]:
        ax.set_visible(False)
    for ax, path, j in zip(flat, args.json, files):
        lengths = [e["prompt_tokens"] for e in j.get("examples", [])]
        mean_len = sum(lengths) / len(lengths) if lengths else 0
        title = f"{j['n_examples']} examples, ~{mean_len:.0f} tokens, {j['backend']}"
        panel(ax, j, args.x, title)
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.output, dpi=150)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
