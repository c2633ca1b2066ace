#!/usr/bin/env bash
# lazyllm-server on one GPU, in one command: builds lazyllm-server and lazyllm-bench-serving with
# the CUDA engine (-DLAZYLLM_SERVER_CUDA=ON), runs ctest server_cuda (the GPU server against the
# CPU one on the demo model; needs Node.js), then the serving benchmark on the Llama-2-7B shape
# (random bf16 weights, 4096-token prompts, 128 output tokens): dense and LazyLLM
# 4:0.5,8:0.5,16:0.5 at rising request rates, through the server and through the offline engine.
#   bash tools/server/gpu_bench.sh [BUILD_DIR] [OUT_DIR]
# Knobs (environment): RATES (default 1,2,4,8,16 requests/s), NUM_PROMPTS (32 per run),
# PARALLEL (16), POOL_MB (40000), SCHEDULES ("none;4:0.5,8:0.5,16:0.5"), SKIP_CHECK=1.
# Each run takes at least NUM_PROMPTS / rate seconds: with the defaults about 62 s per schedule
# and mode at the least, so 4-8 minutes in all.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build-gpu}
OUT=${2:-$BUILD/serving}
RATES=${RATES:-1,2,4,8,16}
NUM=${NUM_PROMPTS:-32}
NP=${PARALLEL:-16}
POOL_MB=${POOL_MB:-40000}
SCHEDULES=${SCHEDULES:-"none;4:0.5,8:0.5,16:0.5"}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLAZYLLM_SERVER_CUDA=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target lazyllm-server lazyllm-bench-serving lazyllm-llama2
if [ "${SKIP_CHECK:-0}" != 1 ]; then
  if command -v node >/dev/null 2>&1; then
    ctest --test-dir "$BUILD" -R '^server_cuda$' --output-on-failure --no-tests=error
  else
    echo "gpu_bench.sh: no Node.js here: the server_cuda check is skipped" >&2
  fi
fi
mkdir -p "$OUT"
sched_args=()
IFS=';' read -ra scheds <<<"$SCHEDULES"
for s in "${scheds[@]}"; do sched_args+=(--schedule "$s"); done
"$BUILD/benchmarks/serving/lazyllm-bench-serving" --server "$BUILD/examples/server/lazyllm-server" \
  --synthetic llama2-7b --backend cuda --precision bf16 --offline -np "$NP" --pool-mb "$POOL_MB" \
  --input-len 4096 --output-len 128 --num-prompts "$NUM" --request-rate "$RATES" "${sched_args[@]}" \
  --json "$OUT/serving-7b.json" | tee "$OUT/serving-7b.md"
echo "gpu_bench.sh: results in $OUT/serving-7b.md and $OUT/serving-7b.json" >&2
