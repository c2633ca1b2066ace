// SPDX-License-Identifier: MIT
// The CUDA backend's dispatch thresholds and tuning numbers, in one place (in the manner of CUB's
// tuning policies: one small value type per decision). Each comment says what was measured, or
// that the number was chosen without a measurement. Changing a number changes which kernel runs or
// how a kernel is shaped, never what a kernel computes; the timings are in docs/benchmarks.md.
#pragma once
#include <cstddef>

namespace lazyllm::gpu::tuning {

/// Which attention kernel Attention::run takes (attention.cuh).
struct AttentionDispatch {
  // Chosen, not measured: from one mma.sync block's rows (64) up the tensor-core prefill kernels.
  static constexpr int kTensorCoreMinRows = 64;
  // The decode kernel's largest row template (1 or 4 rows); not measured against the CUDA-core kernel.
  static constexpr int kDecodeMaxRows = 4;
  // Waves of resident decode blocks: 1 took 11-14 % less time at 4k-8k keys than 1.3 or 2 waves (H200).
  static constexpr int kDecodeWaves = 1;
};

/// Split over keys of the CUDA-core kernel (5-63 rows, head dims other than 64/128): chosen, not
/// measured. It splits when its query blocks leave SMs idle and there are more than kMinTiles
/// key tiles, into at most tiles / kMinTilesPerSplit splits, aiming at kBlocksPerSm blocks per SM.
struct SimtSplit {
  static constexpr int kMinTiles = 4;
  static constexpr int kMinTilesPerSplit = 2;
  static constexpr int kBlocksPerSm = 2;
};

/// The sm80 mma.sync prefill kernel's tile (MmaAttnTraits' defaults).
struct Sm80MmaPrefill {
  static constexpr int kWarps = 4;
  // Two m16 row tiles per warp were 7-14 % faster at 4k-8k rows but slower at few rows (fewer blocks).
  static constexpr int kMTiles = 1;
  static constexpr int kKeys = 64;
};

/// The sm90 wgmma prefill kernel's occupancy (Sm90AttnTraits' default).
struct Sm90WgmmaPrefill {
  // 3 blocks per SM (168 registers a thread) beat 2 by 7-10 % at head_dim 128, 4k-8k keys (H200).
  static constexpr int kMinBlocks = 3;
};

/// The decode GEMV (gemv.cuh).
struct Gemv {
  // Rows staged in shared memory: 70B's 28672-wide FFN input fits 4 in an H100's 227 KiB (2 on an A100).
  static constexpr int kMaxRows = 4;
  // 16-byte weight loads in flight per lane: 8 and 16 were 2-6 % slower per 7B decode token (H200).
  static constexpr int kUnroll = 4;
  // Grid cap, blocks per SM: chosen, not measured.
  static constexpr int kBlocksPerSm = 4;
};

/// The memory-bound kernels (kernels.cuh).
struct Elementwise {
  // Threads per RMSNorm row; the GEMV's RMSNorm input hook must sum with the same block size.
  static constexpr int kNormThreads = 256;
  // 8-element chunks of a row kept in registers by RMSNorm: 33.5 vs 34.3 us read-twice (4096 x 4096, H200).
  static constexpr int kNormCachedChunks = 4;
  // Rotate-half RoPE, 8 elements per access: 96 us against 107 us one at a time (4096 rows of 7B, H200).
  static constexpr bool kRopeVector = true;
};

/// Decode steps as CUDA graphs (cuda_backend.cuh).
struct DecodeGraphs {
  // Layers per graph: 1 / 4 / 8 / 32 gave 5.05 / 4.75 / 4.78 / 4.82 ms per 7B token at 1k (H200).
  static constexpr int kChunkLayers = 4;
  // Smallest key capacity of a staged layer (it doubles from there): chosen, not measured.
  static constexpr int kMinKeyCapacity = 256;
};

/// cuBLASLt (gemm.cuh).
struct Gemm {
  // Workspace offered to cuBLASLt's heuristic: chosen, not measured.
  static constexpr std::size_t kWorkspaceBytes = std::size_t(32) << 20;
};

}  // namespace lazyllm::gpu::tuning
