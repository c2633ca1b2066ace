#!/usr/bin/env bash
# One command for tensor parallelism on a machine of several GPUs (docs/tensor_parallel.md):
#   1. builds the NCCL/TpCudaBackend tests and the two benchmarks (Release, sm_90a unless CUDA_ARCH
#      is set);
#   2. records the GPUs and how they are linked (nvidia-smi, nvidia-smi topo -m);
#   3. runs ctest -R nccl: NcclComm over groups of 1, 2, 4 and 8 GPUs (as many as are visible:
#      exact sums, the same bits on every rank, a failing rank aborts instead of hanging), and
#      TpCudaBackend at tp = 1, 2, 4 on small random models and at tp = 2, 4, 8 on the Llama 2 70B
#      layer shape with 2 layers, against the CPU (dense logits within 5e-2 normalised; scores,
#      selections and logits the same bits on every rank);
#   4. times the all-reduces a sharded step of the 70B shape sends (dim 8192, 80 layers) at
#      tp = 2, 4, 8, prompts of 1024 and 4096 tokens, dense and under LazyLLM 4:0.5,8:0.5,16:0.5
#      (lazyllm-bench-tp-comm, comm.md);
#   5. the 70B-shape benchmark: TTFT and decode ms/token at tp = 2, 4, 8, dense and LazyLLM, same
#      prompts and schedule (lazyllm-bench-tp-cuda, bench.md).
# NVLink multicast stays off: NCCL_NVLS_ENABLE=0 (and PyTorch's and NVSHMEM's equivalents) are
# exported here, and the communicator refuses any other value.
# Results go to OUT_DIR: summary.txt, topo.txt, ctest-nccl.txt, comm.md, bench.md.
#
#   bash tools/gpu/tp_check.sh OUT_DIR
# About 5-8 minutes on 8 H100s (estimated: not run yet). To stay within a 10-minute command, split
# it on one machine: first SKIP_BENCH=1, then SKIP_BUILD=1 SKIP_TESTS=1 (BUILD, default
# build-tp-gpu, is reused).
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${1:?usage: tp_check.sh OUT_DIR}
BUILD=${BUILD:-build-tp-gpu}
mkdir -p "$OUT"
SUM="$OUT/summary.txt"
: >"$SUM"
say() { echo "$*" | tee -a "$SUM"; }

GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
say "GPUs visible: ${GPUS:-0}"
{ nvidia-smi; nvidia-smi topo -m; } >"$OUT/topo.txt" 2>&1

# NCCL: the CUDA toolkit's (CUDA 13 ships it), else the one PyTorch brings (pip package nvidia-nccl).
if [ -z "${NCCL_ROOT:-}" ] && [ ! -e /usr/local/cuda/include/nccl.h ]; then
  p=$(python3 -c 'import nvidia.nccl, os; print(list(nvidia.nccl.__path__)[0])' 2>/dev/null || true)
  if [ -n "$p" ] && [ -e "$p/include/nccl.h" ]; then
    export NCCL_ROOT="$p"
    [ -e "$p/lib/libnccl.so" ] || ln -sf "$(ls "$p"/lib/libnccl.so.* | head -1)" "$p/lib/libnccl.so" 2>/dev/null || true
    export LD_LIBRARY_PATH="$p/lib:${LD_LIBRARY_PATH:-}"
  fi
fi
say "NCCL_ROOT: ${NCCL_ROOT:-unset, the CUDA toolkit}"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90a}" \
    -DLAZYLLM_SENTENCEPIECE=OFF >"$OUT/configure.txt" 2>&1 || { say "configure FAILED (see configure.txt)"; exit 1; }
  grep -q "lazyllm: NCCL ON" "$OUT/configure.txt" || { say "configure: NCCL not found (see configure.txt)"; exit 1; }
  t0=$(date +%s)
  cmake --build "$BUILD" -j "$(nproc)" --target lazyllm-nccl-tests lazyllm-bench-tp-comm lazyllm-bench-tp-cuda \
    >"$OUT/build.txt" 2>&1 || { say "build FAILED (see build.txt)"; tail -20 "$OUT/build.txt"; exit 1; }
  say "build: $(($(date +%s) - t0)) s"
fi

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  t0=$(date +%s)
  (cd "$BUILD" && ctest -R '^nccl$' -V) >"$OUT/ctest-nccl.txt" 2>&1
  say "ctest nccl: rc $? ($(($(date +%s) - t0)) s) | $(grep -E 'tests passed|tests failed' "$OUT/ctest-nccl.txt" | tail -1)"
  grep -E "MESSAGE|SKIPPED|ERROR" "$OUT/ctest-nccl.txt" | head -40 | tee -a "$SUM"
fi
[ "${SKIP_BENCH:-0}" = 1 ] && exit 0

TPS=""
for t in 2 4 8; do [ "${GPUS:-0}" -ge "$t" ] && TPS="${TPS:+$TPS,}$t"; done
if [ -z "$TPS" ]; then
  say "fewer than 2 GPUs: no tensor-parallel timing"
  exit 0
fi
t0=$(date +%s)
"$BUILD/benchmarks/lazyllm-bench-tp-comm" --tp "$TPS" --dim 8192 --layers 80 -p 1024,4096 \
  --schedule 4:0.5,8:0.5,16:0.5 -r 20 >"$OUT/comm.md" 2>&1
say "lazyllm-bench-tp-comm --tp $TPS: rc $? ($(($(date +%s) - t0)) s)"
cat "$OUT/comm.md" >>"$SUM"
t0=$(date +%s)
"$BUILD/benchmarks/lazyllm-bench-tp-cuda" --tp "$TPS" --shape llama2-70b -p 1024,4096 -n 16 -r 3 \
  --schedule 4:0.5,8:0.5,16:0.5 >"$OUT/bench.md" 2>&1
say "lazyllm-bench-tp-cuda --tp $TPS (70B shape): rc $? ($(($(date +%s) - t0)) s)"
cat "$OUT/bench.md" >>"$SUM"
