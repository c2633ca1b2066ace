#!/usr/bin/env bash
# The long-prompt half of docs/accuracy.md, on the GPU machine: held-out lazyllm_mdqa questions at
# 1k / 2k / 4k tokens, answered by models/lazyqa with dense, LazyLLM, Static and RandomDrop at the
# same schedules as the CPU table, then the score-vs-speedup plot of every JSON in OUT_DIR (put
# the CPU results there too to get them in the same figure).
#
#   bash tools/eval/accuracy_gpu.sh OUT_DIR [COUNT]        (COUNT examples per length, default 100)
#
# Builds lazyllm-eval and lazyllm-make-task with CUDA in $BUILD (default build-dev, the folder
# tools/gpu/check.sh uses). Writes gpu-L.md / gpu-L.json per length L and accuracy.png.
# MODEL=DIR evaluates another export (e.g. a fresh train.py run's OUT/lazyqa) instead of models/lazyqa.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: accuracy_gpu.sh OUT_DIR [COUNT]}
COUNT=${2:-100}
BUILD=${BUILD:-build-dev}
SCHEDULES=${SCHEDULES:-"gentle;default;2:0.5,4:0.5;1:0.5,3:0.5,5:0.5"}
mkdir -p "$OUT"
if [ ! -x "$BUILD/examples/eval/lazyllm-eval" ] || [ "${REBUILD:-1}" = 1 ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90a}" >/dev/null &&
    cmake --build "$BUILD" -j "$(nproc)" --target lazyllm-eval lazyllm-make-task >/dev/null || exit 1
fi
E=$BUILD/examples/eval
MODEL=${MODEL:-models/lazyqa}
TOK=$MODEL/tokenizer.bin
for L in ${LENGTHS:-1024 2048 4096}; do
  # Held-out seeds (models/MODEL_CARD.md): 9000000 + 10 L for single-hop questions.
  "$E/lazyllm-make-task" --seed $((9000000 + 10 * L)) --count "$COUNT" --length "$L" --variant single -z "$TOK" \
    -o "$OUT/heldout-$L.jsonl" 2>/dev/null || exit 1
  t0=$(date +%s)
  "$E/lazyllm-eval" -m "$MODEL" --data "$OUT/heldout-$L.jsonl" --backend cuda \
    --policy dense,lazy,static,random --schedule "$SCHEDULES" -o "$OUT/gpu-$L.md" --json "$OUT/gpu-$L.json" \
    >"$OUT/gpu-$L.log" 2>&1 || { echo "eval at $L failed:"; tail -5 "$OUT/gpu-$L.log"; exit 1; }
  echo "== $L tokens ($COUNT examples, $(($(date +%s) - t0)) s)"
  grep "^|" "$OUT/gpu-$L.md"
  rm -f "$OUT/heldout-$L.jsonl"
done
jsons=$(ls "$OUT"/*.json 2>/dev/null | sort -V)
python3 tools/eval/plot.py $jsons -o "$OUT/accuracy.png" || echo "plot failed"
