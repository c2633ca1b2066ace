#!/usr/bin/env bash
# The Hopper (wgmma) prefill attention, one device call (~6 min on an H200):
#   1. builds the GPU tests, the bench and the driver (Release, sm_90a);
#   2. the attention tests (every kernel and tile variant against the CPU reference, and the
#      informational timing of each variant);
#   3. tools/gpu/check.sh without its build (the whole `ctest -L gpu` and the driver's ids);
#   4. 7B-shape prefill, dense and LazyLLM 4:0.5,8:0.5,16:0.5, 1k-8k tokens, wgmma vs --no-wgmma
#      (the mma.sync kernel), and the 4k breakdown with wgmma.
#   bash tools/gpu/wgmma_ab.sh OUT_DIR
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: wgmma_ab.sh OUT_DIR}
B=${BUILD:-build-dev}
mkdir -p "$OUT"
t0=$(date +%s)
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a -DLAZYLLM_SHARED_MODELS="$(cd .carry && pwd)" \
  >"$OUT/configure.txt" 2>&1
cmake --build "$B" -j "$(nproc)" --target lazyllm-gpu-tests lazyllm-bench lazyllm-llama2 lazyllm-eval lazyllm-make-task \
  >"$OUT/build.txt" 2>&1 || { grep -E "error" "$OUT/build.txt" | head -20; exit 1; }
echo "build $(($(date +%s) - t0)) s"
T=$B/tests/gpu/lazyllm-gpu-tests
CUOBJ=$(command -v cuobjdump || echo /usr/local/cuda/bin/cuobjdump)
"$CUOBJ" -sass "$T" 2>/dev/null | awk '/Function : .*sm90_attention_kernel/{n=$3} /HGMMA/{c[n]++} END{for (k in c) print "HGMMA", c[k], k}' |
  sed 's/_ZN7lazyllm4cuda6detail21sm90_attention_kernelINS0_14Sm90AttnTraitsI//'
"$T" --no-intro=true "--test-case=attention:*" >"$OUT/attention.txt" 2>&1
rc=$?
echo "attention tests rc $rc"
grep -E "test cases|assertions" "$OUT/attention.txt"
grep -E "MESSAGE: variant .* ms," "$OUT/attention.txt" | grep -E "n=(4096|8192)" | sed 's/.*MESSAGE: variant //'
grep -E "MESSAGE: variant .*err=" "$OUT/attention.txt" | sed 's/.*MESSAGE: variant //' | sort -t= -k4 -g | tail -3
[ $rc = 0 ] || echo "attention tests FAILED: going on (check.sh and the bench show the rest)"
SKIP_BUILD=1 BUILD=$B bash tools/gpu/check.sh "$OUT/check" >/dev/null 2>&1
cat "$OUT/check/summary.txt"
BEN=$B/benchmarks/lazyllm-bench
for f in "" --no-wgmma; do
  "$BEN" --backend cuda --synthetic llama2-7b -p 1024,2048,4096,8192 -n 0 -r 3 --policy dense,lazy \
    --schedule 4:0.5,8:0.5,16:0.5 $f -o md >"$OUT/bench${f:+-mma}.md" 2>"$OUT/bench${f:+-mma}.err"
  echo "== ${f:-wgmma}"
  grep -E "^\| llama2-7b" "$OUT/bench${f:+-mma}.md"
done
"$BEN" --backend cuda --synthetic llama2-7b -p 4096 -n 0 -r 2 --policy dense,lazy --schedule 4:0.5,8:0.5,16:0.5 \
  --breakdown -o md >"$OUT/breakdown.md" 2>/dev/null
grep -E "^\| (dense|lazy) " "$OUT/breakdown.md" | head -2
echo "all done $(($(date +%s) - t0)) s"
(cd "$OUT" && tar czf details.tgz configure.txt build.txt *.err check 2>/dev/null && rm -rf configure.txt build.txt *.err check)
