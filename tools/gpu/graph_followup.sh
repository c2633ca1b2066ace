#!/usr/bin/env bash
# Follow-ups of the decode CUDA graphs (2026-11-28), one device call (~8 min on an H200):
#   1. the graph tests (test_graph.cu); at the end, in the time left, compute-sanitizer memcheck on
#      the head_dim-64 graph cases and racecheck on the decode attention cases (in-kernel merge);
#   2. the tiny model's prefill measured 0.1-0.2 ms slower after graph-launched decode steps
#      (docs/benchmarks.md "Decode steps as CUDA graphs"): models/lazyqa TTFT with -n 0 and
#      -n 32, graphs on / off, alternated twice;
#   3. the LazyLLM prefill breakdown at 4k (host selection now overlaps the FFN: "select" ~ 0?);
#   4. layers per graph (--graph-chunk 1, 4, 8, 32) on the 7B shape at 1k and 4k context.
#   bash tools/gpu/graph_followup.sh OUT_DIR
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: graph_followup.sh OUT_DIR}
B=${BUILD:-build-dev}
mkdir -p "$OUT"
t0=$(date +%s)
cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a >"$OUT/configure.txt" 2>&1
cmake --build "$B" -j "$(nproc)" --target lazyllm-gpu-tests lazyllm-bench >"$OUT/build.txt" 2>&1 || { tail -30 "$OUT/build.txt"; exit 1; }
echo "build $(($(date +%s) - t0)) s"
T=$B/tests/gpu/lazyllm-gpu-tests
BEN=$B/benchmarks/lazyllm-bench
summary() { grep -E "test cases|assertions|ERROR SUMMARY|Error|RACECHECK SUMMARY" "$1" | head -8; }
"$T" --no-intro=true "--test-case=decode graph*" >"$OUT/graph.txt" 2>&1; echo "graph tests rc $?"; summary "$OUT/graph.txt"
row() { python3 -c "
import json, sys
j = json.load(open(sys.argv[1]))
for m in j['measurements']:
    print(sys.argv[2], m['n_prompt'], 'ttft', ' '.join('%.3f' % x for x in m['ttft_ms']), '| ms/token', ' '.join('%.4f' % x for x in m['decode_ms_per_token']))" "$1" "$2"; }
for r in 1 2; do
  for n in 0 32; do
    for f in "" --no-graphs; do
      o="$OUT/q-n$n${f:+-off}-$r.json"
      "$BEN" --backend cuda -m models/lazyqa -p 1024 -n $n -r 5 --policy dense $f -o json >"$o" 2>/dev/null && row "$o" "lazyqa n$n ${f:-graphs}"
    done
  done
done
# fed1ec1: the host now waits for the scores only, so its selection overlaps the FFN: the
# breakdown's "select" column (host time not hidden) should be near 0 at the pruning layers.
"$BEN" --backend cuda --synthetic llama2-7b -p 4096 -n 0 -r 2 --policy dense,lazy --schedule 4:0.5,8:0.5,16:0.5 \
  --breakdown -o md >"$OUT/lazy-breakdown.md" 2>/dev/null && grep -E "^\| (dense|lazy) " "$OUT/lazy-breakdown.md" | head -12
for c in 1 4 8 32; do
  o="$OUT/c$c.json"
  "$BEN" --backend cuda --synthetic llama2-7b -p 1024,4096 -n 32 -r 2 --policy dense --graph-chunk $c -o json >"$o" 2>/dev/null &&
    row "$o" "7b chunk $c"
done
echo "benches done $(($(date +%s) - t0)) s"
# Sanitizers last, in the time the device call has left (10 minutes in all).
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
left=$((570 - ($(date +%s) - t0)))
timeout $((left > 20 ? left * 6 / 10 : 10)) "$CS" --tool memcheck --error-exitcode 9 "$T" --no-intro=true "--test-case=decode graph: head_dim 64*" \
  >"$OUT/memcheck.txt" 2>&1; echo "memcheck rc $? (124 = out of time)"; summary "$OUT/memcheck.txt"
left=$((570 - ($(date +%s) - t0)))
timeout $((left > 10 ? left : 10)) "$CS" --tool racecheck --error-exitcode 9 --kernel-name kns=decode_attention "$T" --no-intro=true \
  "--test-case=attention: small*,attention: pruned*" >"$OUT/racecheck.txt" 2>&1; echo "racecheck rc $? (124 = out of time)"; summary "$OUT/racecheck.txt"
echo "all done $(($(date +%s) - t0)) s"
(cd "$OUT" && tar czf details.tgz *.json *.txt *.md 2>/dev/null && rm -f *.json configure.txt build.txt)
