# SPDX-License-Identifier: MIT
"""What the peer scripts share with lazyllm-bench: model shapes, schedule presets and parsing (the
same rules as include/lazyllm/policy/{schedule,lazy}.hpp), the environment record and the common
JSON schema ("lazyllm-bench/1"):

    {"schema": "lazyllm-bench/1", "peer": ..., "model": ..., "params": ..., "backend": ...,
     "command": ..., "env": {...},
     "measurements": [{"policy", "schedule", "n_prompt", "n_gen", "ttft_ms": [per rep],
                       "ttft_ms_mean", "ttft_ms_sd", "decode_ms_per_token": [per rep],
                       "decode_ms_per_token_mean", "prefill_token_layer_fraction",
                       "computed_per_layer": [...]}, ...]}

Importing this module does not import torch (py_compile / CPU checks work without it).
"""
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import struct
import subprocess
import sys
import time

SHAPES = {
    "llama2-7b": dict(dim=4096, hidden=11008, layers=32, heads=32, kv_heads=32, vocab=32000),
    "llama2-13b": dict(dim=5120, hidden=13824, layers=40, heads=40, kv_heads=40, vocab=32000),
    "tiny": dict(dim=256, hidden=688, layers=8, heads=4, kv_heads=4, vocab=1024),
    # lazyllm-bench --synthetic llama3.1-8b (config/families.hpp): GQA, 128k vocabulary
    "llama3.1-8b": dict(dim=4096, hidden=14336, layers=32, heads=32, kv_heads=8, vocab=128256),
}


def n_params(s):
    d, h, kv = s["dim"], s["hidden"], s["dim"] // s["heads"] * s["kv_heads"]
    per_layer = d * d * 2 + 2 * kv * d + 3 * h * d + 2 * d
    return s["vocab"] * d * 2 + s["layers"] * per_layer + d


def preset_schedule(name, n_layers):
    """The presets of lazy.hpp: fractions of the depth, percentiles relative to the set entering."""
    pts = {"gentle": [(1, 2, 0.3), (3, 4, 0.5)],
           "default": [(1, 4, 0.3), (1, 2, 0.5), (3, 4, 0.5)],
           "aggressive": [(1, 8, 0.5), (1, 4, 0.5), (1, 2, 0.5)]}
    if name in ("none", "dense", ""):
        return []
    if name not in pts:
        raise ValueError(f"unknown schedule preset '{name}' (known: none, gentle, default, aggressive)")
    out = []
    for num, den, p in pts[name]:
        l = max(1, int(math.floor(n_layers * num / den + 0.5)))
        if l >= n_layers or (out and l <= out[-1][0]):
            continue
        out.append((l, p))
    return out


def parse_schedule(text, n_layers):
    """'L:P,L:P' or a preset name -> [(layer, percentile)], validated like Schedule::validate_for."""
    if ":" not in text:
        return preset_schedule(text, n_layers)
    out = []
    for item in text.split(","):
        l, p = item.split(":")
        l, p = int(l), float(p)
        if not (1 <= l < n_layers) or not (0.0 <= p < 1.0) or (out and l <= out[-1][0]):
            raise ValueError(f"bad schedule entry '{item}' for {n_layers} layers")
        out.append((l, p))
    return out


def schedule_str(sched):
    return ",".join(f"{l}:{p:g}" for l, p in sched) if sched else "none"


def as_float32(p):
    """The value p has as a C++ float (schedules store float percentiles)."""
    return struct.unpack("f", struct.pack("f", p))[0]


def keep_count(n, p):
    """Tokens kept out of n at percentile p, ignoring ties (percentile_keep_count)."""
    return n - min(int(math.floor(as_float32(p) * n)), n - 1)


class HostEvent:
    """torch.cuda.Event's record/elapsed_time on the host clock (CPU functional runs)."""

    def record(self):
        self.t = time.perf_counter()

    def elapsed_time(self, end):
        return (end.t - self.t) * 1000.0


def nominal_computed(n, sched, n_layers):
    """|C_l| per layer of a prefill of n tokens, ignoring ties."""
    into = dict(sched)
    out, cur = [], n
    for l in range(n_layers):
        if l in into:
            cur = keep_count(cur, into[l])
        out.append(cur)
    return out


def _first_line(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout.strip() else ""
    except Exception:
        return ""


def git_commit():
    c = os.environ.get("LAZYLLM_COMMIT", "")
    if c:
        return c
    here = os.path.dirname(os.path.abspath(__file__))
    c = _first_line(["git", "-C", here, "rev-parse", "--short=12", "HEAD"])
    return c or "unknown"


def sm_clock_mhz():
    r = _first_line(["nvidia-smi", "--query-gpu=clocks.sm", "--format=csv,noheader,nounits"])
    try:
        return float(r)
    except ValueError:
        return 0.0


def env_info(torch=None, extra=None):
    e = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
         "commit": git_commit(), "python": platform.python_version(), "host": platform.node()}
    smi = _first_line(["nvidia-smi", "--query-gpu=driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit,pstate",
                       "--format=csv,noheader,nounits"])
    e["nvidia_smi"] = smi
    e["driver_version"] = smi.split(",")[0].strip() if smi else "unknown"
    if torch is not None:
        e["torch"] = torch.__version__
        e["cuda_runtime"] = torch.version.cuda
        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            e["gpu"] = {"gpu": p.name, "sms": p.multi_processor_count,
                        "memory_gib": p.total_memory / 2**30, "driver_version": e["driver_version"],
                        "cuda_runtime": torch.version.cuda}
    if extra:
        e.update(extra)
    return e


def measurement(policy, schedule, n_prompt, n_gen, ttft, decode=(), computed=None, n_layers=0, **more):
    m = {"policy": policy, "schedule": schedule, "n_prompt": n_prompt, "n_gen": n_gen,
         "ttft_ms": list(ttft), "ttft_ms_mean": statistics.mean(ttft) if ttft else 0.0,
         "ttft_ms_sd": statistics.stdev(ttft) if len(ttft) > 1 else 0.0,
         "decode_ms_per_token": list(decode),
         "decode_ms_per_token_mean": statistics.mean(decode) if decode else 0.0}
    if computed is not None and n_layers:
        m["computed_per_layer"] = list(computed)
        m["prefill_token_layer_fraction"] = sum(computed) / (n_prompt * n_layers)
    else:
        m["prefill_token_layer_fraction"] = 1.0
    m.update(more)
    return m


def write_report(peer, model, backend, env, measurements, out_path=None):
    doc = {"schema": "lazyllm-bench/1", "peer": peer, "model": model, "params": n_params(SHAPES[model]),
           "backend": backend, "command": " ".join(shlex.quote(a) for a in [sys.executable] + sys.argv),
           "env": env, "measurements": measurements}
    text = json.dumps(doc, indent=2)
    if out_path:
        with open(out_path, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return doc
