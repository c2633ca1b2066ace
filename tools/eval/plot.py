#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Plot score vs TTFT speedup (or vs token-layers computed) from lazyllm-eval's --json output.

    python3 tools/eval/plot.py eval.json [more.json ...] -o accuracy.png [--x speedup|fraction]
        [--title TEXT] [--cols N]

`lazyllm-eval --png FILE` calls this script itself. One panel per JSON file, titled with the
model, the dataset(s), the label (lazyllm-eval --label: e.g. the task variant), the prompt
length and the backend. One point per configuration: colour = policy (LazyLLM, Static, RandomDrop, Window,
LazyLLM+recentN), marker = schedule, no lines between schedules (they are unrelated); dense is
a black star and a dashed line at its score. Legends sit below the panels, never over the data.
Needs matplotlib (Debian: python3-matplotlib, installed by scripts/deps.sh).
"""
import argparse
import json
import os
import sys

POLICY_STYLE = {
    "lazy": ("tab:blue", "LazyLLM"),
    "static": ("tab:orange", "Static"),
    "random": ("tab:green", "RandomDrop"),
    "window": ("tab:purple", "Window (first 4 + recent)"),
}
RECENT_COLOR = "tab:cyan"
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "*"]


def load(path):
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    if "runs" not in j:
        sys.exit(f"{path}: not a lazyllm-eval --json file (no 'runs')")
    return j


def tokens_label(n):
    """~1001 -> '1k', ~2041 -> '2k', 481 -> '481'."""
    if n >= 900:
        return f"{round(n / 1024)}k"
    return f"{n:.0f}"


def x_of(run, axis):
    if axis == "fraction":
        return 100.0 * run["token_layers_fraction"]
    return run.get("ttft_speedup")


def policy_style(policy):
    if policy.startswith("lazy+recent"):
        return RECENT_COLOR, "LazyLLM + last " + policy[len("lazy+recent"):] + " kept"
    return POLICY_STYLE.get(policy, ("tab:gray", policy))


def panel_title(j):
    model = os.path.basename(os.path.normpath(j.get("model", "?")))
    datasets = sorted({e.get("dataset", "?") for e in j.get("examples", [])}) or [j.get("dataset", "?")]
    lengths = [e["prompt_tokens"] for e in j.get("examples", []) if "prompt_tokens" in e]
    tokens = sum(lengths) / len(lengths) if lengths else j.get("prompt_tokens_mean", 0)
    parts = [model, ", ".join(datasets)]
    if j.get("label"):
        parts.append(j["label"])
    parts.append(f"~{tokens_label(tokens)} tokens" if tokens else "")
    parts.append(f"{j.get('backend', '?')}, {j.get('n_examples', '?')} examples")
    return ", ".join(p for p in parts if p)


def panel(ax, j, axis, marker_of):
    runs = j["runs"]
    dense = [r for r in runs if r["policy"] == "dense"]
    for r in runs:
        if r["policy"] == "dense":
            continue
        x = x_of(r, axis)
        if x is None:
            continue
        color, _ = policy_style(r["policy"])
        ax.scatter([x], [r["score"]], color=color, marker=marker_of[r["schedule"]], s=45, zorder=3,
                   edgecolors="black", linewidths=0.4)
    if dense:
        d = dense[0]
        ax.axhline(d["score"], color="black", linestyle="--", linewidth=1)
        dx = x_of(d, axis)
        if dx is not None:
            ax.scatter([dx], [d["score"]], color="black", marker="*", s=140, zorder=4)
    ax.set_xlabel("TTFT speedup vs dense (x)" if axis == "speedup" else "token-layers computed in the prefill (% of dense)")
    ax.set_ylabel("score (LongBench metric, x100)")
    ax.set_ylim(-3, 105)
    ax.set_title(panel_title(j), fontsize=9)
    ax.grid(True, alpha=0.3)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="+", help="lazyllm-eval --json output(s)")
    ap.add_argument("-o", "--output", required=True, help="PNG to write")
    ap.add_argument("--title", default=None, help="figure title (default: none; each panel has its own)")
    ap.add_argument("--x", choices=["speedup", "fraction"], default="speedup", help="x axis (default speedup)")
    ap.add_argument("--cols", type=int, default=0, help="panels per row (default: all in one row, at most 3)")
    args = ap.parse_args()

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch
    except ImportError:
        sys.exit("plot.py needs matplotlib: apt-get install python3-matplotlib (scripts/deps.sh installs it)")

    files = [load(p) for p in args.json]
    if args.x == "speedup":
        for p, j in zip(args.json, files):
            if not any(r["policy"] == "dense" for r in j["runs"]):
                sys.exit(f"{p}: no dense run: the speedup needs dense in lazyllm-eval's --policy (or use --x fraction)")
    schedules = []
    policies = []
    for j in files:
        for r in j["runs"]:
            if r["policy"] != "dense" and r["schedule"] not in schedules:
                schedules.append(r["schedule"])
            if r["policy"] != "dense" and r["policy"] not in policies:
                policies.append(r["policy"])
    marker_of = {s: MARKERS[i % len(MARKERS)] for i, s in enumerate(schedules)}
    cols = args.cols if args.cols > 0 else min(3, len(files))
    rows = (len(files) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.0 * cols, 4.6 * rows + 1.2), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[len(files):]:
        ax.set_visible(False)
    for ax, j in zip(flat, files):
        panel(ax, j, args.x, marker_of)
    handles = [Patch(color=policy_style(p)[0], label=policy_style(p)[1]) for p in policies]
    handles.append(Line2D([], [], ls="--", marker="*", ms=10, color="black", label="dense (its score: dashed)"))
    handles += [Line2D([], [], ls="", marker=marker_of[s], color="gray", label=f"schedule {s}") for s in schedules]
    ncol = min(len(handles), 2 if cols == 1 else 4)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    if args.title:
        fig.suptitle(args.title)
    legend_rows = (len(handles) + ncol - 1) // ncol
    height = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, (0.25 * legend_rows + 0.15) / height, 1, 1 - 0.45 / height if args.title else 1))
    fig.savefig(args.output, dpi=130, bbox_inches="tight")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
