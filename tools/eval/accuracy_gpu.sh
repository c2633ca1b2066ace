#!/usr/bin/env bash
# The long-prompt half of docs/accuracy.md, on the GPU machine: held-out lazyllm_mdqa questions at
# 1k / 2k / 4k tokens, answered by models/lazyqa with dense, LazyLLM, Static, RandomDrop and Window at the
# same schedules as the CPU table, then the score-vs-speedup plot of every JSON in OUT_DIR (put
# the CPU results there too to get them in the same figure).
#
#   bash tools/eval/accuracy_gpu.sh OUT_DIR [COUNT]        (COUNT examples per length, default 100)
#
# Builds lazyllm-eval and lazyllm-make-task with CUDA in $BUILD (default build-dev, the folder
# tools/gpu/check.sh uses). Leaves summary.md (every table), accuracy.png and details.tgz (the
# gpu-L.md / .json / .log per length L): the device tool returns at most 8 files.
# MODEL=DIR evaluates another export (e.g. a fresh train.py run's OUT/lazyqa) instead of models/lazyqa.
# VARIANT=twohop asks two-hop questions (same seeds; files gpu-L-twohop.*) instead of single-hop.
# FILLER=F makes about F of each context irrelevant notes (lazyllm-make-task --filler; files
# gpu-L[-twohop]-fillerF.*): give MODEL a model trained with notes (models/MODEL_CARD.md).
# POLICIES (default dense,lazy,static,random,window); KEEP_RECENT (default 16, 0 = skip) adds a
# LazyLLM run that also keeps the last N tokens (gpu-L-recent.*). BACKEND=cpu for a smoke test.
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
VARIANT=${VARIANT:-single}
FILLER=${FILLER:-0}
SFX=$([ "$VARIANT" = single ] || echo "-$VARIANT")$([ "$FILLER" = 0 ] || echo "-filler$FILLER")
for L in ${LENGTHS:-1024 2048 4096}; do
  # Held-out seeds (models/MODEL_CARD.md): 9000000 + 10 L, either variant.
  "$E/lazyllm-make-task" --seed $((9000000 + 10 * L)) --count "$COUNT" --length "$L" --variant "$VARIANT" -z "$TOK" --filler "$FILLER" \
    -o "$OUT/heldout-$L.jsonl" 2>/dev/null || exit 1
  t0=$(date +%s)
  "$E/lazyllm-eval" -m "$MODEL" --data "$OUT/heldout-$L.jsonl" --backend "${BACKEND:-cuda}" \
    --policy "${POLICIES:-dense,lazy,static,random,window}" --schedule "$SCHEDULES" -o "$OUT/gpu-$L$SFX.md" \
    --json "$OUT/gpu-$L$SFX.json" >"$OUT/gpu-$L$SFX.log" 2>&1 || { echo "eval at $L failed:"; tail -5 "$OUT/gpu-$L$SFX.log"; exit 1; }
  echo "== $L tokens, $VARIANT, filler $FILLER ($COUNT examples, $(($(date +%s) - t0)) s)"
  grep "^|" "$OUT/gpu-$L$SFX.md"
  # LazyLLM that also keeps the question (docs/accuracy.md): KEEP_RECENT=0 skips it.
  if [ "${KEEP_RECENT:-16}" != 0 ]; then
    "$E/lazyllm-eval" -m "$MODEL" --data "$OUT/heldout-$L.jsonl" --backend "${BACKEND:-cuda}" --policy lazy \
      --keep-recent "${KEEP_RECENT:-16}" --schedule "$SCHEDULES" -o "$OUT/gpu-$L$SFX-recent.md" \
      --json "$OUT/gpu-$L$SFX-recent.json" >"$OUT/gpu-$L$SFX-recent.log" 2>&1 || { echo "eval --keep-recent at $L failed"; exit 1; }
    grep "^| lazy+recent" "$OUT/gpu-$L$SFX-recent.md" | head -"$(echo "$SCHEDULES" | tr ';' '\n' | wc -l)"
  fi
  rm -f "$OUT/heldout-$L.jsonl"
done
jsons=$(ls "$OUT"/*.json 2>/dev/null | grep -v -- "-recent.json" | sort -V)  # the plot needs a dense run per file
python3 tools/eval/plot.py $jsons -o "$OUT/accuracy.png" || echo "plot failed"
# The device tool brings back at most 8 files: one summary, the plot, everything else packed.
(cd "$OUT" && for f in $(ls gpu-*.md | sort -V); do echo "## $f"; cat "$f"; echo; done >summary.md &&
  tar czf details.tgz ./*.json ./*.log gpu-*.md && rm -f ./*.log gpu-*.md ./*.json)
