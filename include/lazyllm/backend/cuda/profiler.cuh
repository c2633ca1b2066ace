// SPDX-License-Identifier: MIT
// An optional per-op-class, per-layer timer for the CUDA backend (lazyllm-bench --breakdown).
//
// The backend calls `prof_.mark(OpClass::X, layer)` at each op boundary: "from here on, the
// work on the stream belongs to (X, layer)". With a Profiler attached, a mark records a timing
// cudaEvent on the stream into a preallocated pool; the time between two consecutive marks is
// charged to the first one's class and layer. So the per-class totals add up exactly to the
// time from begin() to end(), host gaps included (a gap after a mark is charged to its class:
// the mark after a layer that read scores back is OpClass::Select, so the part of the host's
// selection and compaction that the layer's FFN does not hide shows up there). Without a
// Profiler a mark is one null-pointer test.
#pragma once
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "lazyllm/backend/cuda/runtime.cuh"
#include "lazyllm/detail/error.hpp"

namespace lazyllm::gpu {

/// What a stretch of stream time is spent on.
enum class OpClass : std::uint8_t {
  Gemm,       // linear layers (QKV, O, gate/up, down, classifier): cuBLASLt, or GEMV in decode
  Attention,  // causal attention of the computed rows over the kept set
  Scores,     // last-row attention probabilities for the next layer's selection (+ read-back)
  Select,     // selection / compaction (host percentile, device select, index building)
  Gather,     // gathers / scatters of hidden states, Aux Cache stores, the embedding lookup
  Norm,       // RMSNorm, RoPE + KV store, SwiGLU (decode folds norm and SwiGLU into the Gemm GEMVs)
  Other,      // index uploads, logits read-back, anything not marked
};
inline constexpr int kOpClasses = 7;
inline constexpr std::array<std::string_view, kOpClasses> kOpClassNames{"gemm",   "attention", "scores", "select",
                                                                        "gather", "norm",      "other"};
inline constexpr std::string_view op_class_name(OpClass c) { return kOpClassNames[std::size_t(c)]; }

/// Owns the event pool and the accumulated times. One pass = begin() ... end() (e.g. one
/// prefill); times accumulate over passes. Layers are 0..n_layers-1; layer -1 (or any value
/// outside) is the "outside layers" bucket (embedding, final norm, classifier).
class Profiler {
 public:
  explicit Profiler(int n_layers, int capacity = 4096) : n_layers_(n_layers), capacity_(capacity < 2 ? 2 : capacity) {
    if (n_layers < 0) throw InvalidArgument("Profiler: n_layers must be >= 0");
    ms_.assign(std::size_t(n_layers + 1), {});
  }
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;
  ~Profiler() {
    for (auto e : events_) (void)cudaEventDestroy(e);
  }

  /// Starts a pass on `stream` (charged to Other, outside layers, until the first mark).
  void begin(cudaStream_t stream) {
    if (active_) throw Error("Profiler::begin: a pass is already running");
    active_ = true;
    n_marks_ = 0;
    record(OpClass::Other, -1, stream);
  }
  /// Records a boundary (called through ProfileHook::mark). Flushes (synchronously) when the
  /// pool is full, so a long pass stays correct, only less undisturbed.
  void record(OpClass c, int layer, cudaStream_t stream) {
    if (!active_) return;
    if (n_marks_ == capacity_) flush();
    if (std::size_t(n_marks_) == events_.size()) {
      cudaEvent_t e = nullptr;
      LAZYLLM_CUDA_CHECK(cudaEventCreate(&e));
      events_.push_back(e);
      tags_.push_back({});
    }
    LAZYLLM_CUDA_CHECK(cudaEventRecord(events_[std::size_t(n_marks_)], stream));
    tags_[std::size_t(n_marks_)] = {c, layer};
    ++n_marks_;
  }
  /// Ends the pass: records the final event, waits for it and accumulates.
  void end(cudaStream_t stream) {
    if (!active_) throw Error("Profiler::end: no pass is running");
    record(OpClass::Other, -1, stream);  // the closing boundary (its own tag is never charged)
    flush();
    active_ = false;
    n_marks_ = 0;
    ++passes_;
  }

  int n_layers() const { return n_layers_; }
  int passes() const { return passes_; }
  /// Accumulated ms of class `c` in `layer` (-1 = outside layers), over all passes.
  double ms(int layer, OpClass c) const { return ms_[bucket(layer)][std::size_t(c)]; }
  double total(OpClass c) const {
    double s = 0;
    for (const auto& row : ms_) s += row[std::size_t(c)];
    return s;
  }
  double total() const {
    double s = 0;
    for (int c = 0; c < kOpClasses; ++c) s += total(OpClass(c));
    return s;
  }
  /// Forgets the accumulated times (the event pool is kept).
  void clear() {
    if (active_) throw Error("Profiler::clear: a pass is running");
    for (auto& row : ms_) row = {};
    passes_ = 0;
  }

 private:
  struct Tag {
    OpClass cls = OpClass::Other;
    int layer = -1;
  };
  std::size_t bucket(int layer) const {
    return layer >= 0 && layer < n_layers_ ? std::size_t(layer) + 1 : 0;  // row 0 = outside layers
  }
  // Waits for the recorded events, charges each interval to its opening mark, and keeps the
  // last event as the first of the next batch.
  void flush() {
    if (n_marks_ == 0) return;
    LAZYLLM_CUDA_CHECK(cudaEventSynchronize(events_[std::size_t(n_marks_ - 1)]));
    for (int i = 0; i + 1 < n_marks_; ++i) {
      float t = 0;
      LAZYLLM_CUDA_CHECK(cudaEventElapsedTime(&t, events_[std::size_t(i)], events_[std::size_t(i + 1)]));
      const Tag& g = tags_[std::size_t(i)];
      ms_[bucket(g.layer)][std::size_t(g.cls)] += double(t);
    }
    std::swap(events_[0], events_[std::size_t(n_marks_ - 1)]);
    tags_[0] = tags_[std::size_t(n_marks_ - 1)];
    n_marks_ = 1;
  }

  int n_layers_ = 0;
  int capacity_ = 0;
  bool active_ = false;
  int n_marks_ = 0;
  int passes_ = 0;
  std::vector<cudaEvent_t> events_;
  std::vector<Tag> tags_;
  std::vector<std::array<double, kOpClasses>> ms_;
};

/// What the backend holds: a possibly-null Profiler, the stream to mark and the layer of the
/// last mark. Trivially copyable; mark() is a null-pointer test when no Profiler is attached.
struct ProfileHook {
  Profiler* prof = nullptr;
  cudaStream_t stream = nullptr;
  int layer = -1;
  void mark(OpClass c, int l) {
    if (prof) prof->record(c, layer = l, stream);
  }
  /// Same layer as the last mark (gathers and Aux stores between layers belong to the layer
  /// whose output they move).
  void mark(OpClass c) {
    if (prof) prof->record(c, layer, stream);
  }
};

}  // namespace lazyllm::gpu
