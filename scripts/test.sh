#!/usr/bin/env bash
# Builds everything (CUDA translation units too when nvcc is found: compile only, no GPU needed)
# and runs every CPU test, then checks that an out-of-tree project can consume the installed
# package. GPU tests: `ctest --test-dir build -L gpu` on a machine with a GPU.
set -euo pipefail
# LAZYLLM_CMAKE_ARGS: more configure options, e.g. "-DLAZYLLM_CUDA=OFF" (no CUDA translation units).
cd "$(dirname "$0")/.."
bash scripts/deps.sh
source scripts/cuda_arch.sh
BUILD=${BUILD:-build}
JOBS=${JOBS:-$(nproc)}
t0=$(date +%s)
# Everything on, explicitly: a build folder configured otherwise before (by hand) is reconfigured.
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$PWD/$BUILD/install" \
      -DLAZYLLM_BUILD_TESTS=ON -DLAZYLLM_BUILD_EXAMPLES=ON -DLAZYLLM_BUILD_BENCHMARKS=ON ${LAZYLLM_CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD" -j "$JOBS"
echo "lazyllm: build took $(( $(date +%s) - t0 )) s" >&2
# --no-tests=error: a build without tests fails here instead of "passing".
ctest --test-dir "$BUILD" -LE gpu --output-on-failure --no-tests=error -j "$JOBS"
# The installed package, consumed three ways: find_package, add_subdirectory, FetchContent.
cmake --install "$BUILD" >/dev/null
for mode in find_package add_subdirectory fetchcontent; do
  cmake -S tests/consumer -B "$BUILD/consumer-$mode" -DMODE=$mode -DLAZYLLM_SOURCE="$PWD" \
        -DCMAKE_PREFIX_PATH="$PWD/$BUILD/install" -DLAZYLLM_CUDA=OFF --no-warn-unused-cli >/dev/null
  cmake --build "$BUILD/consumer-$mode" -j "$JOBS" >/dev/null
  "$BUILD/consumer-$mode/consumer"
done
# With the CUDA toolkit and a CUDA build: the installed lazyllm::cuda target, built (and run where a GPU is).
if { [ -x /usr/local/cuda/bin/nvcc ] || command -v nvcc >/dev/null 2>&1; } &&
   ls "$BUILD"/install/lib*/cmake/lazyllm/lazyllmCudaTargets.cmake >/dev/null 2>&1; then
  cmake -S tests/consumer -B "$BUILD/consumer-cuda" -DMODE=find_package -DCUDA_CONSUMER=ON \
        -DCMAKE_PREFIX_PATH="$PWD/$BUILD/install" >/dev/null
  cmake --build "$BUILD/consumer-cuda" -j "$JOBS" >/dev/null
  "$BUILD/consumer-cuda/consumer_cuda"
fi
echo "lazyllm: all CPU tests and package checks passed" >&2

# ---- Sanitizers and fuzzing (docs/reliability.md) -------------------------------------------------
# The CPU test suite again, built with AddressSanitizer + UndefinedBehaviorSanitizer (tests only,
# no CUDA, in its own build folder); any report fails the run.
ASAN_BUILD=${ASAN_BUILD:-$BUILD-asan}
t0=$(date +%s)
cmake -S . -B "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
      -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
      -DLAZYLLM_CUDA=OFF -DLAZYLLM_BUILD_EXAMPLES=OFF -DLAZYLLM_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$ASAN_BUILD" -j "$JOBS" --target lazyllm-tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir "$ASAN_BUILD" -L cpu -R '^cpu:' --output-on-failure -j "$JOBS"
echo "lazyllm: sanitizer build and CPU tests took $(( $(date +%s) - t0 )) s" >&2
# The fuzz targets (tests/fuzz): with clang's libFuzzer each runs for LAZYLLM_FUZZ_SECONDS (20)
# from its seed corpus; without clang they replay the corpus under the sanitizers.
bash scripts/deps.sh fuzz
t0=$(date +%s)
FUZZ_CXX=$(command -v clang++ || command -v c++)
cmake -S tests/fuzz -B "$BUILD-fuzz" -DCMAKE_CXX_COMPILER="$FUZZ_CXX" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD-fuzz" -j "$JOBS"
ctest --test-dir "$BUILD-fuzz" -L fuzz --output-on-failure -j "$JOBS"
echo "lazyllm: fuzz build and runs took $(( $(date +%s) - t0 )) s; sanitizers and fuzzers clean" >&2
