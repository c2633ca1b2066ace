#!/usr/bin/env bash
# Runs compute-sanitizer on each GPU test case separately (a few at a time, each with its own
# time limit; informational timing cases skipped) and prints one line per case: its result, the sanitizer's error count and seconds.
# Use it when the whole binary under a slow tool (racecheck) does not fit the time at hand; ctest's
# gpu-racecheck runs it (tests/gpu/CMakeLists.txt). Exit status 0 only when every case passed with
# no report (a time-out, a report or a failed case gives 1).
#   bash tests/gpu/sanitize_each.sh BINARY [TOOL=racecheck] [SECONDS_PER_CASE=120] [PARALLEL=4]
set -uo pipefail
BIN=${1:?usage: sanitize_each.sh BINARY [TOOL] [SECONDS] [PARALLEL]}
TOOL=${2:-racecheck}
SECS=${3:-120}
PAR=${4:-4}
SAN=${SAN:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}  # SAN: the tool to use
# doctest filters split at commas, so each case is named by its text up to the first comma, and
# a '*' (a prefix shared by several cases runs them together). Timing-bound cases are skipped.
mapfile -t PATTERNS < <("$BIN" --list-test-cases --no-intro=true 2>/dev/null | grep -v '^\[doctest\]' | grep -v '^=*$' |
  grep -v '^Profiler: intervals' | grep -v 'timing' | grep -E -e "${ONLY:-.}" | sed 's/,.*//; s/$/*/' | sort -u)
# FILTER: extra sanitizer options, e.g. FILTER="--kernel-name kns=lazyllm" to check only our
# kernels (racecheck reports hazards inside cuBLASLt's TMA/mbarrier nvjet kernels that it cannot
# see through; --kernel-name-exclude kns=nvjet made the tool fail with an internal error).
# ONLY: run only the cases whose names match this extended regular expression (grep -E).
# LAZYLLM_GPU_TESTS_QUICK=1: the slow cases run fewer sizes, seeds and draws (tests/gpu/gpu_util.hpp).
one() {
  local EXCLUDE
  read -r -a EXCLUDE <<<"${FILTER:-}"
  local pat=$1 t0=$SECONDS out
  out=$(timeout "$SECS" "$SAN" --tool "$TOOL" --error-exitcode 9 "${EXCLUDE[@]}" "$BIN" --no-intro=true "--test-case=$pat" 2>&1)
  local rc=$?
  local errs cases
  errs=$(grep -o 'ERROR SUMMARY: [0-9]*\|RACECHECK SUMMARY: [0-9]*' <<<"$out" | tail -1 | grep -o '[0-9]*$' || true)
  cases=$(grep -o 'test cases: *[0-9]*' <<<"$out" | grep -o '[0-9]*$' || true)
  local what=pass
  ((rc == 124)) && what=timeout
  ((rc == 9)) && what=REPORTED
  ((rc != 0 && rc != 9 && rc != 124)) && what="fail rc=$rc"
  printf '%-10s errors=%-4s cases=%-3s %4ss  %s\n' "$what" "${errs:--}" "${cases:--}" $((SECONDS - t0)) "$pat"
  ((rc == 9)) && grep -m 20 '=========' <<<"$out" | sed 's/^/    /'
  return 0
}
export -f one
export SAN TOOL SECS BIN FILTER
((${#PATTERNS[@]})) || { echo "sanitize_each: no test case matches"; exit 1; }
results=$(printf '%s\n' "${PATTERNS[@]}" | xargs -d '\n' -P "$PAR" -I{} bash -c 'one "$@"' _ {} | tee /dev/stderr)
bad=$(grep -cv '^\(pass \|    \)' <<<"$results")
echo "sanitize_each: $TOOL over ${#PATTERNS[@]} cases: $((${#PATTERNS[@]} - bad)) clean, $bad not"
((bad == 0))
