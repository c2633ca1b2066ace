#!/usr/bin/env bash
# Builds the driver and runs the built-in default: the demo model answers with dense and with
# LazyLLM pruning, printing both outputs, their time-to-first-token and the compute saved.
# Configures build/ with everything on (as scripts/test.sh does), so the two scripts can share it
# in either order, and builds only the driver.
set -euo pipefail
# LAZYLLM_CMAKE_ARGS: more configure options, e.g. "-DLAZYLLM_CUDA=OFF" (no CUDA translation units).
cd "$(dirname "$0")/.."
bash scripts/deps.sh
source scripts/cuda_arch.sh
BUILD=${BUILD:-build}
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLAZYLLM_BUILD_EXAMPLES=ON -DLAZYLLM_BUILD_TESTS=ON \
      -DLAZYLLM_BUILD_BENCHMARKS=ON ${LAZYLLM_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target lazyllm-llama2
"$BUILD/examples/llama2/lazyllm-llama2" "$@"
