// SPDX-License-Identifier: MIT
// SelectingCudaBackend: the CUDA backend that applies LazyLLM's percentile rule on the device (a
// SelectingBackend, attention_backend.hpp). Where the policy's selection is the bare rule
// (PercentileRulePolicy: Lazy without keep_recent, Static's prefill, AnyPolicy holding either),
// the pipeline calls layer_select: the layer runs as in CudaBackend, then
// gpu::PercentileSelect::flags (CUB radix sort for the threshold, ties kept, the last key kept)
// turns the scores into keep flags in device memory, and only the n flags come back (n bytes
// instead of n floats; the host does no selection work). The round trip per pruning layer stays:
// the pipeline keeps the sets on the host and the GEMMs take their row counts from it
// (docs/cuda_backend.md, "Known limits").
//
// A header of its own because of CUB's compile time (its radix sort adds 8-10 s to each
// translation unit that includes it, docs/cuda_backend.md): cuda_backend.cuh stays free of CUB;
// include this header where you want device selection.
#pragma once
#include <cstdint>
#include <span>

#include "lazyllm/backend/cuda/cuda_backend.cuh"
#include "lazyllm/backend/cuda/select.cuh"

namespace lazyllm {

template <class ST>
class BasicSelectingCudaBackend : public BasicCudaBackend<ST> {
 public:
  using Base = BasicCudaBackend<ST>;
  using Base::Base;
  using typename Base::Activations;

  /// SelectingBackend: whether the pipeline lets this backend select (on unless switched off,
  /// e.g. for A/B runs against the host selection).
  bool device_select() const { return on_; }
  void set_device_select(bool on) { on_ = on; }

  /// BasicCudaBackend::warm_up, and the selection's scratch sized for sets of up to `rows`
  /// tokens, so that a timed prefill of that length allocates nothing.
  void warm_up(int rows) {
    Base::warm_up(rows);
    select_.reserve(rows);
  }

  /// One layer (call.want_scores must be set), then keep[i] = 1 where the layer's scores over
  /// call.kv_pos are >= the p-quantile threshold, and for the last key.
  void layer_select(const LayerCall& call, Activations& x, float p, std::span<std::uint8_t> keep) {
    if (!call.want_scores) throw InvalidArgument("SelectingCudaBackend::layer_select: the call must want scores");
    this->run_layer(call, x, keep, [&](const float* scores, int n, cudaStream_t stream) {
      return select_.flags(scores, n, p, true, stream);
    });
  }

  /// BatchSelectingBackend: layer_batch, then, for each sequence i with percentiles[i] >= 0 (it
  /// must want scores), the rule's keep flags over its set into `keep`; the other sequences that
  /// want scores get them in `scores`.
  void layer_select_batch(const BatchLayerCall& call, Activations& x, std::span<const float> percentiles,
                          std::span<float> scores, std::span<std::uint8_t> keep) {
    if (percentiles.size() != call.seqs.size())
      throw InvalidArgument("SelectingCudaBackend::layer_select_batch: one percentile per sequence");
    this->run_layer_batch(call, x, scores, keep,
                          [&](std::size_t i, const float* sc, int n, cudaStream_t stream) -> const std::uint8_t* {
                            if (!(percentiles[i] >= 0.0f)) return nullptr;
                            return select_.flags(sc, n, percentiles[i], true, stream);
                          });
  }

 private:
  gpu::PercentileSelect select_;  // owns the keep flags it returns
  bool on_ = true;
};

/// bf16 storage, as CudaBackend, with the percentile rule on the device.
using SelectingCudaBackend = BasicSelectingCudaBackend<gpu::bf16>;

static_assert(AttentionBackend<SelectingCudaBackend> && SelectingBackend<SelectingCudaBackend> &&
              BatchSelectingBackend<SelectingCudaBackend>);

}  // namespace lazyllm
