#!/usr/bin/env bash
# Device entry point: configure + build lazyllm-hf-check for sm_90a only, then run run.py, which
# compares it with HF transformers on the GPU. Writes build.log, log.txt and summary.json to $OUT.
# Needs nlohmann/json.hpp (installed, or the repo's .deps/ carried along) and torch + transformers.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/build-hfcheck/out}
BUILD=${BUILD:-build-hfcheck}
mkdir -p "$OUT"
t0=$(date +%s)
if ! { cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLAZYLLM_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a \
         -DLAZYLLM_BUILD_TESTS=OFF -DLAZYLLM_BUILD_BENCHMARKS=OFF -DLAZYLLM_BUILD_EXAMPLES=ON &&
       cmake --build "$BUILD" -j "$(nproc)" --target lazyllm-hf-check; } > "$OUT/build.log" 2>&1; then
  tail -n 60 "$OUT/build.log"
  echo "hf_check: build failed (see build.log)"
  exit 1
fi
echo "hf_check: build took $(( $(date +%s) - t0 )) s"
set +e
python3 tools/hf_check/run.py --bin "$BUILD/tools/hf_check/lazyllm-hf-check" --out "$OUT" "$@" 2>&1 | tee "$OUT/log.txt"
rc=${PIPESTATUS[0]}
echo "hf_check: total $(( $(date +%s) - t0 )) s, exit $rc"
exit "$rc"
