#!/usr/bin/env python3
"""Check lazyllm's CUDA (bf16) and CPU (fp32) forward against HF transformers on the same GPU.

For each config below: build a random-weight LlamaForCausalLM, save it in bf16 with
save_pretrained (safetensors), run HF on the GPU in fp32 and in bf16 (sdpa) on a fixed random
prompt, run lazyllm-hf-check on the same directory and prompt, and compare the logits at the last
position and at a few earlier ones (the C++ side gets those from a chunked prefill).

The family configs (--families, or --only NAME) do the same for LlamaForCausalLM with llama3
RoPE, Qwen2ForCausalLM with q/k/v biases and YaRN, Qwen3ForCausalLM (q/k norms, head_dim 128 with
hidden 512) and MistralForCausalLM (sliding window longer than the prompt), and also compare 16
greedy ids of HF generate with ours (CPU and CUDA). --write-fixtures rewrites the tiny CPU fixtures
of tests/data/families from transformers' own logits (see tests/data/families/README.md).

Needs torch, transformers and a CUDA GPU. Usage (see README.md; run.sh builds the binary):
    python3 tools/hf_check/run.py --bin BUILD/tools/hf_check/lazyllm-hf-check --out OUTDIR [--families]
Exit status 0 when every bound holds, 1 otherwise.
"""

import argparse
import inspect
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import families_ref  # noqa: E402  (our transcription of the rope formulas, and the tiny fixtures)

# Two shapes: head_dim 128 (Llama-2-like, theta 1e4) and head_dim 64 with Llama-3's theta 5e5.
# Both GQA (2 and 4 query heads per KV head), untied lm_head. The second uses an intermediate size
# that is not a multiple of 8 (the CUDA backend pads it) and an odd vocabulary and prompt length.
CONFIGS = [
    dict(name="hd128_gqa2_theta1e4", hidden_size=1024, num_attention_heads=8, num_key_value_heads=4,
         intermediate_size=2816, num_hidden_layers=4, vocab_size=32000, rope_theta=10000.0, n_ids=700),
    dict(name="hd64_gqa4_theta5e5", hidden_size=1024, num_attention_heads=16, num_key_value_heads=4,
         intermediate_size=2750, num_hidden_layers=4, vocab_size=32001, rope_theta=500000.0, n_ids=701),
]
# The families beyond Llama 2 (issue: Llama 3.x, Qwen2/2.5, Qwen3, Mistral). Same sizes as above;
# each exercises its family's additions. Biases are random (transformers initialises them to 0,
# which would hide a loader that drops them).
FAMILY_CONFIGS = [
    dict(name="llama31_rope_llama3", family="llama", hidden_size=1024, num_attention_heads=16,
         num_key_value_heads=4, intermediate_size=2816, num_hidden_layers=4, vocab_size=32000,
         rope_theta=500000.0, max_position_embeddings=131072, n_ids=700,
         rope={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}),
    dict(name="qwen2_bias_yarn", family="qwen2", hidden_size=1024, num_attention_heads=8,
         num_key_value_heads=2, intermediate_size=2816, num_hidden_layers=4, vocab_size=32000,
         rope_theta=1000000.0, max_position_embeddings=16384, n_ids=700,
         rope={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}),
    dict(name="qwen3_qknorm_hd128", family="qwen3", hidden_size=512, num_attention_heads=8, head_dim=128,
         num_key_value_heads=4, intermediate_size=1536, num_hidden_layers=4, vocab_size=32000,
         rope_theta=1000000.0, max_position_embeddings=4096, n_ids=700),
    dict(name="mistral_swa", family="mistral", hidden_size=1024, num_attention_heads=8,
         num_key_value_heads=2, intermediate_size=2816, num_hidden_layers=4, vocab_size=32768,
         rope_theta=1000000.0, max_position_embeddings=8192, sliding_window=4096, n_ids=700),
]
N_GREEDY = 16
SCHEDULE = "1:0.3,2:0.5"   # lazy run with pruning: reported, not bounded (pruning changes the output)
EXTRA_POSITIONS = [0, 1, 37, 255, 511]

# Bounds on the normalised error max|a-b| / max|b| over the compared rows (b = the HF reference).
#  * CPU fp32 vs HF fp32: same weights (the bf16 checkpoint, upcast), both fp32 with fp32
#    accumulation, only the summation order differs. fp32 rounding (6e-8) accumulated over sums of
#    up to 2816 terms and 4 layers gives ~1e-6..1e-5; 1e-4 leaves a 10x margin and is still far
#    below the effect of a real mistake (e.g. the wrong rope_theta, printed as a diagnostic).
#  * CUDA bf16 vs HF fp32 (and vs HF bf16): identical bf16 weights, but activations are rounded
#    to bf16 (unit roundoff 2^-8 = 3.9e-3, rounding error <= 2e-3) at every GEMM input and in
#    attention. About 6 roundings per layer x 4 layers, adding roughly in quadrature, give ~1e-2
#    relative error on the logits; HF's own bf16 run has the same size of error (printed as a
#    yardstick). 5e-2 is a ~5x margin over that estimate.
BOUND_CPU_F32 = 1e-4
BOUND_CUDA_BF16 = 5e-2
# top-1 may differ only at a near tie: when the reference's gap between its top-1 and our top-1
# is at most 2x the max abs error measured on that row.
TIE_FACTOR = 2.0


def log(*a):
    print(*a, flush=True)


def transformers_major():
    return int(transformers.__version__.split(".")[0])


def make_config(c):
    family = c.get("family", "llama")
    kw = dict(hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
              num_hidden_layers=c["num_hidden_layers"], num_attention_heads=c["num_attention_heads"],
              num_key_value_heads=c["num_key_value_heads"], vocab_size=c["vocab_size"],
              max_position_embeddings=c.get("max_position_embeddings", 2048), rms_norm_eps=1e-5,
              tie_word_embeddings=False, initializer_range=0.02, bos_token_id=1, eos_token_id=2)
    if "head_dim" in c:
        kw["head_dim"] = c["head_dim"]
    if family == "mistral":
        kw["sliding_window"] = c.get("sliding_window")
    if family in ("qwen2", "qwen3"):
        kw["use_sliding_window"] = False
    rope = dict(c.get("rope") or {"rope_type": "default"})
    theta = c["rope_theta"]
    if transformers_major() >= 5:
        kw["rope_parameters"] = dict(rope, rope_theta=theta)
    else:
        kw["rope_theta"] = theta
        if rope["rope_type"] != "default":
            kw["rope_scaling"] = rope
    if family == "llama":
        return LlamaConfig(**kw)
    return transformers.AutoConfig.for_model(family, **kw)


def config_dict(c):
    """The config as families_ref.inv_freq_and_scale reads it (config.json spelling)."""
    d = dict(hidden_size=c["hidden_size"], num_attention_heads=c["num_attention_heads"],
             rope_theta=c["rope_theta"], max_position_embeddings=c.get("max_position_embeddings", 2048))
    if "head_dim" in c:
        d["head_dim"] = c["head_dim"]
    if c.get("rope"):
        d["rope_scaling"] = c["rope"]
    return d


def inv_freq(theta, hd, device):
    return 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).to(device=device, dtype=torch.float32) / hd))


def build_checkpoint(c, folder, seed):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(make_config(c)).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):      # so that a loader that ignores norms is caught
                p.copy_(1.0 + 0.1 * torch.randn(p.shape))   # (q_norm / k_norm too)
            elif name.endswith(".bias"):          # Qwen2's q/k/v biases: transformers zeroes them
                p.copy_(0.5 * torch.randn(p.shape))
            elif name.endswith(("q_proj.weight", "k_proj.weight")):
                # std 0.02 gives attention scores of std ~0.4 (nearly uniform attention, which
                # hides RoPE / masking mistakes); std 0.04 gives ~1.6, closer to trained models.
                p.mul_(2.0)
    model = model.to(torch.bfloat16)
    kw = {"safe_serialization": True} if "safe_serialization" in inspect.signature(model.save_pretrained).parameters else {}
    model.save_pretrained(folder, **kw)
    for n in os.listdir(folder):
        if n not in ("config.json", "model.safetensors", "model.safetensors.index.json") and not n.startswith("model-"):
            os.remove(os.path.join(folder, n))
    del model


def load_hf(folder, dtype):
    kw = {"dtype": dtype} if int(transformers.__version__.split(".")[0]) >= 5 else {"torch_dtype": dtype}
    m = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="sdpa", **kw).to("cuda").eval()
    assert next(m.parameters()).dtype == dtype
    return m


@torch.no_grad()
def hf_greedy(model, ids, n):
    """n greedy ids from HF generate (no sampling, no eos stop) and the logits each was chosen from."""
    out = model.generate(torch.tensor([ids], dtype=torch.long, device="cuda"), max_new_tokens=n, do_sample=False,
                         min_new_tokens=n, pad_token_id=0, return_dict_in_generate=True, output_logits=True)
    return out.sequences[0, len(ids):].tolist(), [l[0].float().cpu() for l in out.logits]


@torch.no_grad()
def hf_logits(model, ids, rows):
    out = model(torch.tensor([ids], dtype=torch.long, device="cuda")).logits[0]
    return out[rows].float().cpu()          # [len(rows), vocab] fp32


def compare(name, ours, ref, bound):
    """ours, ref: [R, V] fp32 tensors. Returns a dict; 'ok' says whether the bounds hold."""
    if not torch.isfinite(ours).all():
        return {"name": name, "ok": False, "why": "non-finite values in our logits"}
    scale = float(ref.abs().max())
    err = float((ours - ref).abs().max()) / scale
    top1 = 0
    unexplained = []
    top5 = []
    for r in range(ref.shape[0]):
        a, b = ours[r], ref[r]
        ia, ib = int(a.argmax()), int(b.argmax())
        row_err = float((a - b).abs().max())
        if ia == ib:
            top1 += 1
        elif float(b[ib] - b[ia]) > TIE_FACTOR * row_err:
            unexplained.append({"row": r, "ours": ia, "ref": ib, "ref_gap": float(b[ib] - b[ia]), "row_err": row_err})
        ta = set(torch.topk(a, 5).indices.tolist())
        tb = set(torch.topk(b, 5).indices.tolist())
        top5.append(len(ta & tb) / 5.0)
    ok = err <= bound and not unexplained
    res = {"name": name, "norm_err": err, "bound": bound, "ref_max_abs": scale, "rows": int(ref.shape[0]),
           "top1_agree": top1, "top1_unexplained": unexplained, "top5_overlap_mean": sum(top5) / len(top5),
           "ok": ok}
    log("  %-34s norm_err %.3e (bound %.0e)  top1 %d/%d  top5 %.2f  %s"
        % (name, err, bound, top1, ref.shape[0], res["top5_overlap_mean"], "ok" if ok else "FAIL"))
    for u in unexplained:
        log("    top-1 differs beyond a near tie:", u)
    return res


def check_config(c, args, work):
    log("== %s: %s" % (c["name"], {k: v for k, v in c.items() if k != "name"}))
    t0 = time.time()
    folder = os.path.join(work, c["name"])
    build_checkpoint(c, folder, args.seed)
    log("  checkpoint: %s (%.0f MB) in %.1f s" % (sorted(os.listdir(folder)),
        sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)) / 2**20, time.time() - t0))

    rng = random.Random(args.seed + c["n_ids"])
    ids = [1] + [rng.randint(3, c["vocab_size"] - 1) for _ in range(c["n_ids"] - 1)]
    n = len(ids)
    positions = sorted(set(p for p in EXTRA_POSITIONS if p < n) | {n - 1})
    ids_file = os.path.join(work, c["name"] + ".ids")
    with open(ids_file, "w") as f:
        f.write(",".join(map(str, ids)))

    # HF, fp32 and bf16, from the saved directory
    t0 = time.time()
    hd = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    family = c.get("family", "llama")
    m32 = load_hf(folder, torch.float32)
    got_inv = m32.model.rotary_emb.inv_freq.float()
    want_inv, want_scale = families_ref.inv_freq_and_scale(config_dict(c))
    assert torch.allclose(got_inv, want_inv.to(got_inv.device), rtol=1e-5), \
        "HF's RoPE frequencies differ from our transcription of its formula"
    got_scale = float(getattr(m32.model.rotary_emb, "attention_scaling", 1.0))
    assert abs(got_scale - want_scale) <= 1e-6, ("attention scaling", got_scale, want_scale)
    ref32 = hf_logits(m32, ids, positions)
    greedy32, greedy32_logits = hf_greedy(m32, ids, N_GREEDY) if family != "llama" or c.get("rope") else (None, None)
    # diagnostic: how far a wrong RoPE would move the logits (what the bounds must catch): a wrong
    # theta for default RoPE, the unscaled table for the scaled types
    wrong = 10000.0 if c["rope_theta"] != 10000.0 else 500000.0
    if c.get("rope"):
        wrong = c["rope_theta"]  # same theta, default (unscaled) frequencies
    saved = m32.model.rotary_emb.inv_freq.clone()
    m32.model.rotary_emb.inv_freq.copy_(inv_freq(wrong, hd, saved.device))
    wrong32 = hf_logits(m32, ids, positions)
    m32.model.rotary_emb.inv_freq.copy_(saved)
    again = hf_logits(m32, ids, positions[-1:])
    assert float((again - ref32[-1:]).abs().max()) <= 1e-6 * float(ref32.abs().max()), "inv_freq not restored"
    del m32
    m16 = load_hf(folder, torch.bfloat16)
    ref16 = hf_logits(m16, ids, positions)
    del m16
    torch.cuda.empty_cache()
    log("  HF fp32 + bf16 forwards: %.1f s" % (time.time() - t0))

    # lazyllm
    t0 = time.time()
    out_json = os.path.join(work, c["name"] + ".json")
    cmd = [args.bin, "--model", folder, "--ids-file", ids_file, "--backend", "both",
           "--positions", ",".join(map(str, positions[:-1])), "--schedule", SCHEDULE, "--out", out_json]
    if greedy32 is not None:
        cmd += ["--greedy", str(N_GREEDY)]
    log("  $", " ".join(cmd))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log("    " + proc.stdout.strip().replace("\n", "\n    "))
    if proc.returncode != 0:
        return {"name": c["name"], "ok": False, "why": "lazyllm-hf-check exited %d" % proc.returncode}
    with open(out_json) as f:
        res = json.load(f)
    log("  lazyllm-hf-check: %.1f s" % (time.time() - t0))
    assert res["positions"] == positions, (res["positions"], positions)
    cfg = res["config"]
    assert abs(cfg["rope_theta"] - c["rope_theta"]) <= 1e-6 * c["rope_theta"], cfg
    assert not cfg["tied_embeddings"] and cfg["n_kv_heads"] == c["num_key_value_heads"], cfg
    if "head_dim" in cfg:
        assert cfg["head_dim"] == hd, cfg
        assert cfg["rope_type"] == (c.get("rope") or {}).get("rope_type", "default"), cfg
        assert cfg["attention_bias"] == (family == "qwen2") and cfg["qk_norm"] == (family == "qwen3"), cfg
        assert cfg["sliding_window"] == (c.get("sliding_window") or 0), cfg

    def t(rows):
        if any(v is None for r in rows for v in r):
            return torch.full((len(rows), 1), float("nan"))
        return torch.tensor(rows, dtype=torch.float32)

    runs = res["runs"]
    cpu_full, cpu_at = t([runs["cpu"]["last"]]), t(runs["cpu"]["at"])
    gpu_full, gpu_at = t([runs["cuda"]["last"]]), t(runs["cuda"]["at"])
    results = [
        compare("cpu f32 vs HF f32 (last, full)", cpu_full, ref32[-1:], BOUND_CPU_F32),
        compare("cpu f32 vs HF f32 (chunked rows)", cpu_at, ref32, BOUND_CPU_F32),
        compare("cuda bf16 vs HF f32 (last, full)", gpu_full, ref32[-1:], BOUND_CUDA_BF16),
        compare("cuda bf16 vs HF f32 (chunked rows)", gpu_at, ref32, BOUND_CUDA_BF16),
        compare("cuda bf16 vs HF bf16 (last, full)", gpu_full, ref16[-1:], BOUND_CUDA_BF16),
        compare("cuda bf16 vs HF bf16 (chunked rows)", gpu_at, ref16, BOUND_CUDA_BF16),
    ]
    # greedy ids of HF generate (fp32) against ours. They must agree up to the first difference, and
    # that one must be a near tie in HF's own logits at that step: a gap between HF's pick and ours
    # within 2x the side's logits bound (x the row's max |logit|). After it the sequences differ
    # legitimately, so nothing later is compared.
    if greedy32 is not None:
        for side, bound in (("cpu", BOUND_CPU_F32), ("cuda", BOUND_CUDA_BF16)):
            ours = runs[side].get("greedy") or []
            first = next((i for i in range(min(len(ours), len(greedy32))) if ours[i] != greedy32[i]), None)
            if len(ours) != len(greedy32):
                ok, why = False, "length %d, HF %d" % (len(ours), len(greedy32))
            elif first is None:
                ok, why = True, "same %d ids" % len(ours)
            else:
                row = greedy32_logits[first]
                gap = float(row[greedy32[first]] - row[ours[first]])
                ok = gap <= TIE_FACTOR * bound * float(row.abs().max())
                why = "first difference at %d, HF gap %.3e (%s)" % (first, gap, "near tie" if ok else "not a tie")
            log("  %-34s %s: %s (HF %s, ours %s)" % ("greedy ids %s vs HF f32" % side, "ok" if ok else "FAIL", why,
                                                    greedy32, ours))
            results.append({"name": "greedy_%s" % side, "hf": greedy32, "ours": ours, "ok": ok, "why": why})
        lz = runs.get("cuda_lazy", {})
        log("  cuda lazy %s: kept per layer %s, greedy %s" % (lz.get("policy"), lz.get("kept"), lz.get("greedy")))

    # exactness checks done by the C++ side (same kernels, same order: must be bit-identical)
    chk = res["checks"]
    for key in ("cuda_lazy_empty_vs_dense_max_abs", "cuda_paged_vs_contiguous_max_abs"):
        ok = chk.get(key) == 0.0
        log("  %-34s %s  %s" % (key, chk.get(key), "ok" if ok else "FAIL (must be exactly 0)"))
        results.append({"name": key, "value": chk.get(key), "ok": ok})

    # diagnostics (not bounded)
    def nerr(a, b):
        return float((a - b).abs().max()) / float(b.abs().max())
    diag = {
        "hf_bf16_vs_hf_f32": nerr(ref16, ref32),
        "cuda_vs_hf_f32_over_hf_bf16_vs_hf_f32": nerr(gpu_at, ref32) / max(nerr(ref16, ref32), 1e-30),
        "hf_wrong_theta_%g_vs_right" % wrong: nerr(wrong32, ref32),
        "cpu_chunked_last_vs_full_max_abs": runs["cpu"]["chunked_last_vs_full_max_abs"],
        "cuda_chunked_last_vs_full_max_abs": runs["cuda"]["chunked_last_vs_full_max_abs"],
        "cpu_full_prefill_ms": runs["cpu"]["full_ms"],
        "cuda_full_prefill_ms": runs["cuda"]["full_ms"],
        "cuda_device": chk.get("cuda_device"),
    }
    if "cuda_lazy" in runs:
        lz = t([runs["cuda_lazy"]["last"]])
        diag["cuda_lazy_schedule"] = runs["cuda_lazy"]["policy"]
        diag["cuda_lazy_token_layer_fraction"] = runs["cuda_lazy"]["token_layer_fraction"]
        diag["cuda_lazy_full_prefill_ms"] = runs["cuda_lazy"]["full_ms"]
        diag["cuda_lazy_vs_hf_f32_norm_err"] = nerr(lz, ref32[-1:])
        diag["cuda_lazy_top1_equals_hf_f32"] = int(lz[0].argmax()) == int(ref32[-1].argmax())
    for k, v in diag.items():
        log("  diag %-44s %s" % (k, ("%.3e" % v) if isinstance(v, float) else v))
    if diag["hf_wrong_theta_%g_vs_right" % wrong] <= BOUND_CPU_F32:
        log("  WARNING: a wrong rope_theta moves the logits less than the CPU bound; the check is too weak")
        results.append({"name": "theta sensitivity", "ok": False})
    return {"name": c["name"], "ok": all(r["ok"] for r in results), "n_ids": n, "positions": positions,
            "results": results, "diagnostics": diag}


@torch.no_grad()
def write_fixtures(root):
    """tests/data/families/<name>/reference.json from transformers (fp64 on the CPU, eager attention):
    the same prompt, greedy ids and step logits as families_ref.py computes independently; the
    largest difference between the two is printed (they must agree to ~1e-6)."""
    out = {}
    for name in families_ref.FAMILIES:
        d = os.path.join(root, name)
        with open(os.path.join(d, "reference.json")) as f:
            old = json.load(f)
        kw = {"dtype": torch.float64} if transformers_major() >= 5 else {"torch_dtype": torch.float64}
        m = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", **kw).eval()
        ids, steps, greedy = list(old["prompt"]), [], []
        for i in range(len(old["greedy"]) + 1):
            last = m(torch.tensor([ids])).logits[0, -1]
            steps.append([round(float(x), 6) for x in last])
            if i == len(old["greedy"]):
                break
            greedy.append(int(last.argmax()))
            ids.append(greedy[-1])
        diff = max(abs(a - b) for s1, s2 in zip(steps, old["step_logits"]) for a, b in zip(s1, s2))
        log("fixture %s: transformers vs families_ref.py max|diff| %.2e, greedy %s (was %s)"
            % (name, diff, greedy, old["greedy"]))
        new = {"prompt": old["prompt"], "greedy": greedy, "step_logits": steps,
               "source": "transformers %s, float64, eager attention (tools/hf_check/run.py --write-fixtures)"
               % transformers.__version__}
        with open(os.path.join(d, "reference.json"), "w") as f:
            json.dump(new, f, separators=(",", ":"))
            f.write("\n")
        out[name] = {"max_diff_vs_independent": diff, "greedy_same": greedy == old["greedy"]}
        del m
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="the lazyllm-hf-check executable")
    ap.add_argument("--out", required=True, help="folder for summary.json")
    ap.add_argument("--work", default=None, help="folder for the checkpoints (default: a temporary one)")
    ap.add_argument("--seed", type=int, default=20250101)
    ap.add_argument("--only", default=None, help="run only the config with this name")
    ap.add_argument("--families", action="store_true",
                    help="also run the Llama 3 / Qwen2 / Qwen3 / Mistral configs (FAMILY_CONFIGS)")
    ap.add_argument("--write-fixtures", default=None, metavar="DIR",
                    help="rewrite DIR/<family>/reference.json (tests/data/families) from transformers' logits")
    args = ap.parse_args()

    if not torch.cuda.is_available():
        log("run.py: no CUDA GPU visible to torch")
        return 1
    # HF fp32 must really be fp32: no TF32 in matmuls (torch's default, made explicit).
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):   # torch >= 2.9
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
    log("torch %s, transformers %s, GPU %s" % (torch.__version__, transformers.__version__,
                                              torch.cuda.get_device_name(0)))
    os.makedirs(args.out, exist_ok=True)
    work = args.work or tempfile.mkdtemp(prefix="hf_check_")
    os.makedirs(work, exist_ok=True)
    t0 = time.time()
    summary = {"torch": torch.__version__, "transformers": transformers.__version__,
               "gpu": torch.cuda.get_device_name(0), "bounds": {"cpu_f32": BOUND_CPU_F32, "cuda_bf16": BOUND_CUDA_BF16,
               "tie_factor": TIE_FACTOR}, "configs": []}
    try:
        if args.write_fixtures:
            summary["fixtures"] = write_fixtures(args.write_fixtures)
        for c in CONFIGS + FAMILY_CONFIGS:
            if args.only and c["name"] != args.only:
                continue
            if not args.only and c in FAMILY_CONFIGS and not args.families:
                continue
            try:
                summary["configs"].append(check_config(c, args, work))
            except Exception as e:      # report, go on with the next config
                log("  ERROR:", repr(e))
                summary["configs"].append({"name": c["name"], "ok": False, "why": repr(e)})
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    summary["ok"] = bool(summary["configs"]) and all(c["ok"] for c in summary["configs"])
    summary["seconds"] = time.time() - t0
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log("hf_check: %s in %.0f s (summary: %s)" % ("PASS" if summary["ok"] else "FAIL", summary["seconds"],
                                                   os.path.join(args.out, "summary.json")))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
