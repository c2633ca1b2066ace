#!/usr/bin/env bash
# Where does retrieval learning break? Several short train.py runs side by side on one GPU, each
# with one fixed stage (no curriculum, no export), then one table of how far each got.
#
# ROUND=2: from scratch at 2 documents (where finding the asked relation's value without binding
# it to the entity gives 50 % exact match), lr bracketed, 8 heads of 32 and once 4 of 64. Its
# result (models/MODEL_CARD.md, "Probes, round 2"): binding appears, fastest with 4 heads of 64
# at lr 5e-4; run 5 (the shipped weights) followed from it.
# ROUND=3 (default; run on 2026-11-28, result in models/MODEL_CARD.md "Probes, round 3": 8
# practice questions per sequence made 1-2k binding learnable, 92 % / 66 % at 1k / 2k single-hop):
# from the shipped weights (--init), which bind only near the
# question. Run 6 (MODEL_CARD) stretched binding to 768 tokens with the answer in the first half
# and collapsed at 768-2048, where one question per 1-2k-token sequence gives one retrieval
# gradient per sequence. Round 3 asks whether K = 8 answered questions per sequence (practice
# turns about random facts of the context, so most are far from their question) make 1-2k
# learnable, against the one-question control at the lengths where run 6 still learned, and a
# fourth run mixes 128-2048-token prompts in one stage.
#
# usage, on the GPU machine (see models/MODEL_CARD.md for the device command):
#   [ROUND=2|3] bash tools/train/probe.sh OUT_DIR [SECONDS_PER_RUN]
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: probe.sh OUT_DIR [SECONDS]}
SECS=${2:-400}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
cmake -S . -B build-train -DLAZYLLM_BUILD_TESTS=OFF -DLAZYLLM_BUILD_BENCHMARKS=OFF -DLAZYLLM_CUDA=OFF \
  -DLAZYLLM_SENTENCEPIECE=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null || exit 1
cmake --build build-train -j "$(nproc)" --target lazyllm-make-task >/dev/null || exit 1
MT=build-train/examples/eval/lazyllm-make-task

# Prompt lengths in tokens: 64-72 = 1 document, 128-134 = 2, 256-262 = 4 (the generator counts
# words; train.py converts at 0.745 words per token).
names=()
run() {
  local name=$1
  shift
  names+=("$name")
  python3 tools/train/train.py --make-task "$MT" --out "$OUT/$name" --train-seconds "$SECS" \
    --deadline $((SECS + 30)) --workers 3 --eval-workers 1 --eval-count 50 --eval-lengths 134,512 --eval-at "" \
    --no-export "$@" >"$OUT/$name.log" 2>&1 &
}
if [ "${ROUND:-3}" = 2 ]; then
  run docs2_lr2.5e-4 --fixed-lengths 128,134 --lr 2.5e-4
  run docs2_lr5e-4 --fixed-lengths 128,134 --lr 5e-4
  run docs2_lr1e-3 --fixed-lengths 128,134 --lr 1e-3
  run docs2_lr5e-4_h4 --fixed-lengths 128,134 --lr 5e-4 --heads 4 --kv-heads 4
else
  INIT=(--init models/lazyqa/model.safetensors --heads 4 --kv-heads 4 --warmup 50 --eval-lengths 1024,2048)
  run far_1q_768-1024 "${INIT[@]}" --fixed-lengths 768,1024 --fixed-position 0:0.5 --lr 3e-4
  run far_8q_768-1024 "${INIT[@]}" --fixed-lengths 768,1024 --fixed-position 0:0.5 --fixed-questions 8 --lr 3e-4
  run any_8q_512-2048 "${INIT[@]}" --fixed-lengths 512,1024,1536,2048 --fixed-questions 8 --lr 3e-4
  # MODEL_CARD "Next" 1: one mixed-length stage (short prompts keep the skill, long ones stretch it).
  run mix_8q_128-2048 "${INIT[@]}" --fixed-lengths 128,256,512,1024,1536,2048 --fixed-questions 8 --lr 3e-4
fi
wait

if [ "${ROUND:-3}" = 2 ]; then L1=134 L2=512; else L1=1024 L2=2048; fi
printf '| run | steps | answer loss | train EM (final answer) | held-out %s single | held-out %s single | %s twohop |\n|---|---:|---:|---:|---:|---:|---:|\n' $L1 $L2 $L2
for n in "${names[@]}"; do
  python3 - "$OUT/$n/train_log.json" "$n" $L1 $L2 <<'EOF'
import json, sys
try:
    log = json.load(open(sys.argv[1]))
except Exception as e:  # a run that crashed: say so in the table
    print(f"| {sys.argv[2]} | failed: {e} | | | | | |")
    sys.exit(0)
c = log["curve"][-1] if log["curve"] else {}
f = log.get("final", {})
acc = lambda k: f"{f[k]['acc'] * 100:.0f} %" if k in f else "-"
l1, l2 = sys.argv[3], sys.argv[4]
print(f"| {sys.argv[2]} | {log.get('steps', '-')} | {c.get('loss_answer', '-')} | {c.get('train_em', '-')} | "
      f"{acc(l1 + '/single')} | {acc(l2 + '/single')} | {acc(l2 + '/twohop')} |")
EOF
done
