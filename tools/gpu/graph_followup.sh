#!/usr/bin/env bash
# Follow-ups of the decode CUDA graphs (2026-11-28), one device call (~8 min on an H200):
#   1. the graph tests (test_graph.cu), then compute-sanitizer memcheck on the head_dim-64 graph
#      cases and racecheck on the decode attention cases (the in-kernel split merge);
#   2. the tiny model's prefill measured 0.1-0.2 ms slower after graph-launched decode steps
#      (docs/benchmarks.md "Decode steps as CUDA graphs"): models/lazyqa TTFT with -n 0 and
#      -n 32, graphs on / off, alternated twice;
#   3. layers per graph (--graph-chunk 1, 2, 4, 8, 32) on the 7B shape at 1k and 4k context.
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
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
timeout 240 "$CS" --tool memcheck --error-exitcode 9 "$T" --no-intro=true "--test-case=decode graph: head_dim 64*" \
  >"$OUT/memcheck.txt" 2>&1; echo "memcheck rc $?"; summary "$OUT/memcheck.txt"
timeout 180 "$CS" --tool racecheck --error-exitcode 9 --kernel-name kns=decode_attention "$T" --no-intro=true \
  "--test-case=attention: small*,attention: pruned*" >"$OUT/racecheck.txt" 2>&1; echo "racecheck rc $?"; summary "$OUT/racecheck.txt"
echo "tests done $(($(date +%s) - t0)) s"
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
for c in 1 2 4 8 32; do
  o="$OUT/c$c.json"
  "$BEN" --backend cuda --synthetic llama2-7b -p 1024,4096 -n 48 -r 2 --policy dense --graph-chunk $c -o json >"$o" 2>/dev/null &&
    row "$o" "7b chunk $c"
done
echo "all done $(($(date +%s) - t0)) s"
(cd "$OUT" && tar czf details.tgz *.json *.txt 2>/dev/null && rm -f *.json configure.txt build.txt)
