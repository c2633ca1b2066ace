#!/usr/bin/env bash
# Where does retrieval learning break? Several short train.py runs side by side on one GPU, each
# at a fixed number of documents (no curriculum, no export), then one table of how far each got.
# At 2 documents, finding the asked relation's value without binding it to the entity gives 50 %
# exact match; above that the model binds. Round 1 (150 s, models/MODEL_CARD.md) found lr 5e-4
# far ahead of 2e-3 (which also left 1 document at 47 %) and no binding anywhere yet; round 2
# (this one) runs longer at 2 documents to see whether and when binding appears, with the lr
# bracketed, all with the default 8 heads of 32 (as round 1) and once with 4 heads of 64.
#
# usage, on the GPU machine (see models/MODEL_CARD.md for the device command):
#   bash tools/train/probe.sh OUT_DIR [SECONDS_PER_RUN]
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
run docs2_lr2.5e-4 --fixed-lengths 128,134 --lr 2.5e-4
run docs2_lr5e-4 --fixed-lengths 128,134 --lr 5e-4
run docs2_lr1e-3 --fixed-lengths 128,134 --lr 1e-3
run docs2_lr5e-4_h4 --fixed-lengths 128,134 --lr 5e-4 --heads 4 --kv-heads 4
wait

printf '| run | steps | answer loss | train EM (final answer) | held-out 134 (2 docs) single | held-out 512 single | twohop |\n|---|---:|---:|---:|---:|---:|---:|\n'
for n in "${names[@]}"; do
  python3 - "$OUT/$n/train_log.json" "$n" <<'EOF'
import json, sys
try:
    log = json.load(open(sys.argv[1]))
except Exception as e:  # a run that crashed: say so in the table
    print(f"| {sys.argv[2]} | failed: {e} | | | | | |")
    sys.exit(0)
c = log["curve"][-1] if log["curve"] else {}
f = log.get("final", {})
acc = lambda k: f"{f[k]['acc'] * 100:.0f} %" if k in f else "-"
print(f"| {sys.argv[2]} | {log.get('steps', '-')} | {c.get('loss_answer', '-')} | {c.get('train_em', '-')} | "
      f"{acc('134/single')} | {acc('512/single')} | {acc('512/twohop')} |")
EOF
done
