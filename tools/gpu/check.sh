#!/usr/bin/env bash
# One device call that verifies the CUDA backend end to end (about 4 minutes on an H100):
#   1. builds the GPU tests and the driver (Release, sm_90a unless CUDA_ARCH is set),
#   2. runs `ctest -L gpu` (every kernel and backend test, bf16 / fp16 / fp32),
#   3. runs the driver on stories260K with --backend cpu and with --backend cuda at each
#      --precision, greedy 64 ids from BOS, and says whether each matches the CPU's ids
#      (issue "CUDA backend": fp32 and auto, the driver's default, which is fp32 for a llama2.c
#      file, must; bf16 and fp16 may differ at near-ties).
# Results go to OUT_DIR (summary.txt, ctest.txt, ids-*.txt).
# Optional, each adding minutes: RACECHECK=1 also runs `ctest -R gpu-racecheck` (quick mode, one
# process per case, ~210 s on an H200; tests/gpu/CMakeLists.txt) to racecheck.txt; SELECT_AB=1 also times lazyllm-bench on a
# Llama-2-7B-shaped synthetic model with the policy selecting on the host and with
# --device-select (SelectingCudaBackend) to select-ab.txt.
#
#   bash tools/gpu/check.sh OUT_DIR [MODELS_DIR]     (MODELS_DIR holds stories260K.bin and Llama 2's
#   tokenizer.model, which a docs/driver.md command refuses; default .carry)
# SKIP_BUILD=1 reuses BUILD from an earlier call on the same (still held) machine. Binaries built
# on the 2-core CPU machine can instead be carried and run directly (tests/gpu/sanitize_each.sh,
# lazyllm-bench, lazyllm-eval; saves ~2 minutes of device time per call): configure that build
# with -DLAZYLLM_SENTENCEPIECE=OFF (a driver linked against the CPU machine's libsentencepiece
# crashed on the device on a .model tokenizer) and -DLAZYLLM_SHARED_MODELS=/some/path that you
# link to the models there (the tests read them from the path compiled in).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: check.sh OUT_DIR [MODELS_DIR]}
MODELS=$(cd "${2:-.carry}" && pwd)
BUILD=${BUILD:-build-dev}
mkdir -p "$OUT"
SUM="$OUT/summary.txt"
: >"$SUM"
say() { echo "$*" | tee -a "$SUM"; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90a}" \
    -DLAZYLLM_SHARED_MODELS="$MODELS" >"$OUT/configure.txt" 2>&1 || { say "configure FAILED (see configure.txt)"; exit 1; }
  t0=$(date +%s)
  cmake --build "$BUILD" -j "$(nproc)" --target lazyllm-gpu-tests lazyllm-llama2 lazyllm-eval lazyllm-make-task \
    $([ "${SELECT_AB:-0}" = 1 ] && echo lazyllm-bench) >"$OUT/build.txt" 2>&1 ||
    { say "build FAILED (see build.txt)"; tail -20 "$OUT/build.txt"; exit 1; }
  say "build: $(($(date +%s) - t0)) s"
fi

(cd "$BUILD" && ctest -L gpu --output-on-failure) >"$OUT/ctest.txt" 2>&1
say "ctest -L gpu: rc $? | $(grep -E 'tests passed|tests failed' "$OUT/ctest.txt" | tail -1)"
grep -E "^\s*[0-9]+/[0-9]+ Test" "$OUT/ctest.txt" | tee -a "$SUM"
grep -hE "MESSAGE: .*(err|flips)" "$OUT/ctest.txt" >"$OUT/errors.txt" 2>/dev/null || true

D="$BUILD/examples/llama2/lazyllm-llama2"
ids() {  # NAME ARGS...: greedy ids to ids-NAME.txt; prints them
  local name=$1
  shift
  "$D" -m "$MODELS/stories260K.bin" --prompt-ids 1 -n 64 --print-ids "$@" >"$OUT/ids-$name.txt" 2>"$OUT/ids-$name.err"
  echo $?
}
rc=$(ids cpu --backend cpu)
say "driver cpu: rc $rc"
for p in auto bf16 fp16 fp32; do
  rc=$(ids "cuda-$p" --backend cuda --precision "$p")
  if [ "$rc" != 0 ]; then
    say "driver cuda --precision $p: rc $rc: $(tail -1 "$OUT/ids-cuda-$p.err")"
  elif cmp -s "$OUT/ids-cpu.txt" "$OUT/ids-cuda-$p.txt"; then
    say "driver cuda --precision $p: the CPU's 64 ids, identical"
  else
    first=$(paste -d' ' <(tr ' ' '\n' <"$OUT/ids-cpu.txt") <(tr ' ' '\n' <"$OUT/ids-cuda-$p.txt") |
      awk '$1 != $2 {print NR - 1; exit}')
    say "driver cuda --precision $p: differs from the CPU's ids from step ${first:-?}"
  fi
done

if [ "${RACECHECK:-0}" = 1 ]; then
  t0=$(date +%s)
  (cd "$BUILD" && ctest -R gpu-racecheck --output-on-failure) >"$OUT/racecheck.txt" 2>&1
  say "ctest -R gpu-racecheck: rc $? ($(($(date +%s) - t0)) s) | $(grep -E 'sanitize_each:' "$OUT/racecheck.txt" | tail -1)"
fi
if [ "${SELECT_AB:-0}" = 1 ]; then
  B="$BUILD/benchmarks/lazyllm-bench"
  for sel in "" --device-select; do
    "$B" --backend cuda --synthetic llama2-7b -p 1024,4096 -n 8 -r 3 --policy dense,lazy --schedule aggressive $sel \
      >>"$OUT/select-ab.txt" 2>&1
    say "bench ${sel:-host selection}: rc $?"
  done
fi

# The device tool brings back at most 8 files: keep summary.txt and ctest.txt, pack the rest.
(cd "$OUT" && tar czf check-details.tgz configure.txt build.txt errors.txt ids-*.txt ids-*.err 2>/dev/null &&
  rm -f configure.txt build.txt errors.txt ids-*.txt ids-*.err)
