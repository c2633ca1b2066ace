#!/usr/bin/env bash
# One command for the engine on a GPU (docs/embedding.md, docs/benchmarks.md "Serving many
# requests"):
#   1. builds the GPU tests and lazyllm-bench-engine (Release, sm_90a unless CUDA_ARCH is set);
#   2. runs the engine's GPU tests (batch of one = the pipeline bit for bit; 32 sequences at
#      Llama-2-7B layer dims against each alone; GPU against the CPU; failure injection and
#      out-of-blocks; out-of-memory mid-run) and the K/V descriptor tests;
#   3. the serving scenario, Llama-2-7B shape, random bf16 weights: B = 1, 4, 16, 32 requests of
#      4096 prompt tokens and 128 output tokens, dense and LazyLLM 4:0.5,8:0.5,16:0.5
#      (lazyllm-bench-engine), and HF transformers' batched generate on the same shape as the peer
#      (benchmarks/peer/hf_batched.py), one after the other on the same GPU.
# Results go to OUT_DIR: summary.txt, ctest.txt, engine.md, engine.json, hf_batched.json.
#
#   bash tools/gpu/engine_check.sh OUT_DIR
# SKIP_TESTS=1, SKIP_BENCH=1 or SKIP_HF=1 leave a part out; BATCHES (default 1,4,16,32), PROMPT
# (4096) and GEN (128) change the scenario; ENGINE_ARGS go to lazyllm-bench-engine (e.g.
# --batched-attention on).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: engine_check.sh OUT_DIR}
BUILD=${BUILD:-build-engine-gpu}
B=${BATCHES:-1,4,16,32}
P=${PROMPT:-4096}
G=${GEN:-128}
mkdir -p "$OUT"
SUM="$OUT/summary.txt"
: >"$SUM"
say() { echo "$*" | tee -a "$SUM"; }
say "GPU: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)"
say "commit: $(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"

t0=$(date +%s)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90a}" \
  -DLAZYLLM_BUILD_TESTS=ON -DLAZYLLM_BUILD_BENCHMARKS=ON >"$OUT/configure.txt" 2>&1 ||
  { say "configure FAILED (see configure.txt)"; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" --target lazyllm-gpu-tests lazyllm-bench-engine >"$OUT/build.txt" 2>&1 ||
  { say "build FAILED (see build.txt)"; tail -20 "$OUT/build.txt"; exit 1; }
say "build: $(($(date +%s) - t0)) s"

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  "$BUILD/tests/gpu/lazyllm-gpu-tests" --no-intro=true "--test-case=*engine*,*kv store*,*arena*,*Aux*" \
    >"$OUT/ctest.txt" 2>&1
  say "engine GPU tests: rc $? | $(grep -E '^\[doctest\] (test cases|assertions)' "$OUT/ctest.txt" | tr '\n' ' ')"
fi

if [ "${SKIP_BENCH:-0}" != 1 ]; then
  "$BUILD/benchmarks/lazyllm-bench-engine" --backend cuda --synthetic llama2-7b -b "$B" -p "$P" -n "$G" \
    --policy dense,lazy --schedule 4:0.5,8:0.5,16:0.5 ${ENGINE_ARGS:-} --progress --out "$OUT/engine.md" \
    --json "$OUT/engine.json" 2>"$OUT/engine.err"
  say "lazyllm-bench-engine: rc $?"
  cat "$OUT/engine.md" | tee -a "$SUM"
fi
if [ "${SKIP_BENCH:-0}" != 1 ] && [ "${SKIP_HF:-0}" != 1 ]; then
  python3 benchmarks/peer/hf_batched.py --shape llama2-7b -b "$B" -p "$P" -n "$G" -o "$OUT/hf_batched.json" \
    >"$OUT/hf_batched.txt" 2>&1
  say "hf_batched: rc $? | $(tail -3 "$OUT/hf_batched.txt" | tr '\n' ' ')"
fi
