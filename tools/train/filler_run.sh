#!/usr/bin/env bash
# One device call for docs/accuracy.md "Filler" (issue: accuracy, LazyLLM at <= 50 % of the
# token-layers): extends the shipped tokenizer with the notes' words, continues training
# models/lazyqa on contexts that are about FILLER irrelevant notes, then evaluates the export on
# held-out sets with notes: dense, LazyLLM, Static, RandomDrop and the window at schedules down to
# 44 % of the token-layers (tools/eval/accuracy_gpu.sh).
#
#   bash tools/train/filler_run.sh OUT_DIR [TRAIN_SECONDS=300] [FILLER=0.7]
#
# Time on one H200 (2026-11-28, models/MODEL_CARD.md "Run 10"): with binaries built beforehand and
# carried (BUILD=build-filler REBUILD=0; configure with -DLAZYLLM_SENTENCEPIECE=OFF), 270 s of
# training + 2.3 min of evaluation (21 runs x 100 questions x 3 lengths) = 414 s; with
# KEEP_RECENT=16 and five schedules, 320 s + 3 min = 502 s. Building on the device adds ~1.5 min.
# Those evaluation times were mostly tokenization; since commit aa22c24's encoder they are a
# fraction of that (300 questions at 4k, dense + LazyLLM: 104.8 s -> 3.7 s).
# Keep the sum under the device tool's 600 s per call: the export (lazyqa.tgz) is written before
# the evaluation starts, so a time-out there still returns the model.
#
# Environment: DEVICE (training, default cuda), BACKEND (evaluation, default cuda), LENGTHS
# (default "1024 2048 4096"), COUNT (held-out questions per length, default 100), LR (default 2e-4),
# FILLER_SHARE (share of training batches with notes, default 1; the others have none), TWOHOP
# (share of two-hop training questions, default 0), KEEP_RECENT (default 0: no lazy+recent runs),
# BUILD (default build-filler; REBUILD=0 reuses its binaries), INIT (default
# models/lazyqa/model.safetensors; empty = a fresh model, which needs a fresh tokenizer too, see
# models/MODEL_CARD.md). Leaves OUT_DIR/train.log, OUT_DIR/lazyqa.tgz (the export) and
# accuracy_gpu.sh's summary.md / details.tgz / accuracy.png under OUT_DIR/acc.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: filler_run.sh OUT_DIR [TRAIN_SECONDS] [FILLER]}
SECS=${2:-300}
FILLER=${3:-0.7}
BUILD=${BUILD:-build-filler}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
T0=$(date +%s)
if [ "${REBUILD:-1}" = 1 ] || [ ! -x "$BUILD/examples/eval/lazyllm-eval" ]; then
  cuda=$([ "${BACKEND:-cuda}" = cuda ] && echo AUTO || echo OFF)
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DLAZYLLM_BUILD_TESTS=OFF -DLAZYLLM_BUILD_BENCHMARKS=OFF \
    -DLAZYLLM_CUDA=$cuda -DLAZYLLM_SENTENCEPIECE=OFF -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90a}" >/dev/null &&
    cmake --build "$BUILD" -j "$(nproc)" --target lazyllm-make-task lazyllm-eval >/dev/null ||
    { echo "filler_run: build failed"; exit 1; }
fi
MT=$BUILD/examples/eval/lazyllm-make-task
echo "== built at $(($(date +%s) - T0)) s"

# The tokenizer: the shipped one plus pieces for the notes' words (old ids unchanged).
for s in 1 2 3 4; do "$MT" --seed 700000$s --count 4 --length 2048 --filler 0.8 --emit-prompt 2>/dev/null; done \
  >"$OUT/filler-text.jsonl" || exit 1
python3 tools/train/make_tokenizer.py --extend models/lazyqa/tokenizer.bin --jsonl "$OUT/filler-text.jsonl" \
  -o "$OUT/tok-filler.bin" || exit 1
rm -f "$OUT/filler-text.jsonl"

INIT=${INIT-models/lazyqa/model.safetensors}
python3 tools/train/train.py --make-task "$MT" --tokenizer "$OUT/tok-filler.bin" --filler "$FILLER" \
  --filler-share "${FILLER_SHARE:-1}" --fixed-twohop "${TWOHOP:-0}" \
  ${INIT:+--init "$INIT"} --lr "${LR:-2e-4}" --fixed-lengths "${TRAIN_LENGTHS:-512,1024,2048,4096}" \
  --fixed-questions 8 --device "${DEVICE:-cuda}" --out "$OUT/train" --train-seconds "$SECS" \
  --deadline $((SECS + 15)) --eval-count "${TRAIN_EVAL_COUNT:-100}" --eval-lengths "${TRAIN_EVAL_LENGTHS:-1024,2048,4096}" \
  --eval-at "" >"$OUT/train.log" 2>&1 || { echo "filler_run: training failed"; tail -5 "$OUT/train.log"; exit 1; }
grep -E "initialised|eval final|exported" "$OUT/train.log" | cut -c1-300
(cd "$OUT/train" && tar czf "$OUT/lazyqa.tgz" lazyqa)
echo "== trained at $(($(date +%s) - T0)) s"

MODEL="$OUT/train/lazyqa" FILLER=$FILLER BUILD=$BUILD REBUILD=0 BACKEND=${BACKEND:-cuda} \
  LENGTHS="${LENGTHS:-1024 2048 4096}" SCHEDULES="${SCHEDULES:-default;2:0.5,4:0.5;1:0.5,3:0.5;2:0.7,4:0.7;1:0.5,3:0.5,5:0.5}" \
  KEEP_RECENT=${KEEP_RECENT:-0} bash tools/eval/accuracy_gpu.sh "$OUT/acc" "${COUNT:-100}"
rm -rf "$OUT/train"
echo "== done at $(($(date +%s) - T0)) s"
