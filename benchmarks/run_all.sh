#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One GPU session: builds lazyllm-bench (Release, sm_90a), runs ours (dense + LazyLLM schedules,
# with the GEMM floor and the per-op breakdown), the eager PyTorch peer and the HF transformers
# peer on the same prompt lengths, then writes docs/benchmarks.md and a PNG plot into OUT_DIR.
# Every step has its own time limit and the report is written from whatever finished.
#
#   LAZYLLM_COMMIT=<sha> OUT_DIR=$OUT bash benchmarks/run_all.sh
#
# Settings (environment):
#   OUT_DIR        where results go (default: $OUT, else ./bench-out)
#   LENGTHS        prompt lengths                      (default 1024,2048,4096,8192,16384)
#   REPS           timed repetitions after one warm-up (default 3)
#   GEN            decode steps per repetition in the main run and HF (default 8)
#   DECODE_LEN     context of the decode run           (default 4096)
#   DECODE_GEN     decode steps of the decode run      (default 128)
#   SCHEDULES      ';'-separated lazy schedules         (default: the issue's 4/8/16 @ 0.5, the presets, more
#                  points for the speedup curve)
#   BUDGET_S       total seconds for the whole script   (default 520)
#   SKIP_HF=1, SKIP_EAGER=1, SKIP_BUILD=1 (reuse build-bench), BREAKDOWN=0, MODEL (default llama2-7b)
#   BACKEND=cpu with MODEL=tiny, BIN=<lazyllm-bench>, SKIP_BUILD=1, SKIP_HF=1: a functional run of the
#                  whole flow on a machine without a GPU (no floor / breakdown, eager on the CPU)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT_DIR=${OUT_DIR:-${OUT:-$ROOT/bench-out}}
mkdir -p "$OUT_DIR"
LENGTHS=${LENGTHS:-1024,2048,4096,8192,16384}
REPS=${REPS:-3}
GEN=${GEN:-8}
DECODE_LEN=${DECODE_LEN:-4096}
DECODE_GEN=${DECODE_GEN:-128}
MODEL=${MODEL:-llama2-7b}
BUDGET_S=${BUDGET_S:-520}
BREAKDOWN=${BREAKDOWN:-1}
BACKEND=${BACKEND:-cuda}
SCHEDULES=${SCHEDULES:-"4:0.5,8:0.5,16:0.5;gentle;default;8:0.5;4:0.3,8:0.3,16:0.3;2:0.5,4:0.5,8:0.5,16:0.5;4:0.7,8:0.7,16:0.7"}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
LOG="$OUT_DIR/log.txt"
: >"$LOG"
START=$(date +%s)
left() { echo $((BUDGET_S - ($(date +%s) - START))); }
say() { echo "[run_all +$(($(date +%s) - START))s] $*" | tee -a "$LOG" >&2; }
# step NAME RESERVE_S CMD...: runs CMD with what is left of the budget minus RESERVE_S (the time
# kept for the steps after it); skipped when under 20 s remain for it.
step() {
  local name=$1 reserve=$2
  shift 2
  local t=$(($(left) - reserve))
  if ((t < 20)); then
    say "SKIP $name: only ${t}s left"
    return 1
  fi
  say "START $name (limit ${t}s): $*"
  echo "$name: $*" >>"$OUT_DIR/commands.txt"
  timeout --signal=TERM --kill-after=5 "$t" "$@" 2>>"$LOG"
  local rc=$?
  say "END $name rc=$rc"
  return $rc
}

if [ -z "${LAZYLLM_COMMIT:-}" ]; then
  LAZYLLM_COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
fi
export LAZYLLM_COMMIT
: >"$OUT_DIR/commands.txt"
say "commit $LAZYLLM_COMMIT, lengths $LENGTHS, reps $REPS, budget ${BUDGET_S}s"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit,pstate,temperature.gpu \
  --format=csv >>"$LOG" 2>&1 || true

# ---- build (Release, sm_90a only: faster, and the target GPU's own code)
BIN=${BIN:-$ROOT/build-bench/benchmarks/lazyllm-bench}
if [ "${SKIP_BUILD:-0}" != 1 ] || [ ! -x "$BIN" ]; then
  GEN_ARGS=()
  command -v ninja >/dev/null && GEN_ARGS=(-G Ninja)
  step configure 400 cmake -S "$ROOT" -B "$ROOT/build-bench" "${GEN_ARGS[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES=90a -DLAZYLLM_CUDA=ON -DLAZYLLM_BUILD_TESTS=OFF -DLAZYLLM_BUILD_EXAMPLES=OFF >>"$LOG"
  step build 380 cmake --build "$ROOT/build-bench" --target lazyllm-bench -j "$(nproc)" >>"$LOG"
fi

# ---- ours: dense + every schedule, GEMM floor, breakdown (one process: weights uploaded once)
SCHED_ARGS=()
IFS=';' read -r -a SCHED_LIST <<<"$SCHEDULES"
for s in "${SCHED_LIST[@]}"; do SCHED_ARGS+=(--schedule "$s"); done
EXTRA=()
if [ "$BACKEND" = cuda ]; then
  EXTRA+=(--floor)
  [ "$BREAKDOWN" = 1 ] && EXTRA+=(--breakdown)
fi
# The longest length runs in a second process, so that a time-out there keeps the rest.
IFS=',' read -r -a LEN_LIST <<<"$LENGTHS"
if [ -x "$BIN" ]; then
  if ((${#LEN_LIST[@]} > 1)); then
    SHORT=$(IFS=','; echo "${LEN_LIST[*]:0:${#LEN_LIST[@]}-1}")
    step lazyllm 260 "$BIN" --backend "$BACKEND" --synthetic "$MODEL" -p "$SHORT" -n "$GEN" -r "$REPS" --policy dense,lazy \
      "${SCHED_ARGS[@]}" "${EXTRA[@]}" --progress -o json >"$OUT_DIR/lazyllm.json"
  fi
  step lazyllm-long 200 "$BIN" --backend "$BACKEND" --synthetic "$MODEL" -p "${LEN_LIST[-1]}" -n "$GEN" -r "$REPS" \
    --policy dense,lazy "${SCHED_ARGS[@]}" "${EXTRA[@]}" --progress -o json >"$OUT_DIR/lazyllm_long.json"
  step lazyllm-decode 150 "$BIN" --backend "$BACKEND" --synthetic "$MODEL" -p "$DECODE_LEN" -n "$DECODE_GEN" -r "$REPS" \
    --policy dense,lazy --schedule "${SCHED_LIST[0]}" --progress -o json >"$OUT_DIR/lazyllm_decode.json"
else
  say "no lazyllm-bench binary: ours not run"
fi

# ---- peers (same lengths; eager with the same schedules)
EAGER_SCHED=()
for s in "${SCHED_LIST[@]}"; do EAGER_SCHED+=(--schedule "$s"); done
[ "${SKIP_EAGER:-0}" = 1 ] || step eager 90 python3 benchmarks/peer/eager_lazyllm.py --shape "$MODEL" --lengths "$LENGTHS" \
  --reps "$REPS" "${EAGER_SCHED[@]}" --device "$BACKEND" -o "$OUT_DIR/eager.json"
[ "${SKIP_HF:-0}" = 1 ] || step hf 25 python3 benchmarks/peer/hf_llama.py --shape "$MODEL" --lengths "$LENGTHS" \
  --reps "$REPS" --gen "$GEN" -o "$OUT_DIR/hf.json"

# ---- report
step report 0 python3 benchmarks/peer/report.py --dir "$OUT_DIR" --md "$OUT_DIR/benchmarks.md" \
  --png "$OUT_DIR/benchmarks.png" --commands "$OUT_DIR/commands.txt"
rm -f "$OUT_DIR/commands.txt"  # embedded in benchmarks.md (OUT_DIR holds at most 8 files)
say "done; files in $OUT_DIR: $(ls "$OUT_DIR" | tr '\n' ' ')"
