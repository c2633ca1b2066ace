# Sourced by demo.sh and test.sh (they share build/). On a machine without a GPU (no nvidia-smi)
# the CUDA translation units are only compiled, as a check: for sm_90a alone (whose build also
# compiles the mma.sync kernels, used there with --no-wgmma) instead of the default "90a;80",
# which halves the device compilation. A CMAKE_CUDA_ARCHITECTURES in LAZYLLM_CMAKE_ARGS wins.
if ! command -v nvidia-smi >/dev/null 2>&1 && [[ "${LAZYLLM_CMAKE_ARGS:-}" != *CMAKE_CUDA_ARCHITECTURES* ]]; then
  LAZYLLM_CMAKE_ARGS="${LAZYLLM_CMAKE_ARGS:-} -DCMAKE_CUDA_ARCHITECTURES=90a"
fi
