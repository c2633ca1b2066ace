// SPDX-License-Identifier: MIT
#pragma once
#include <algorithm>
#include <cstddef>
#include <ostream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "lazyllm/detail/error.hpp"
#include "lazyllm/policy/lazy.hpp"

namespace lazyllm::policy {

/// Keep-first / keep-last window baseline (DESIGN.md 1, "baselines"): at every scheduled layer,
/// keep the first `sink` tokens of S_l (the prompt's start, where attention sinks sit) and the
/// most recent ones, by position alone (no scores are read): as many recent tokens as make the
/// number the percentile nominally keeps (n - floor(p n), as RandomDrop), and at least the newest.
/// The sinks are always kept, so a context shorter than about sink / (1 - p) keeps more than the
/// nominal count. Re-decided every step like Lazy, yet nothing is ever revived: the sinks are never
/// dropped, and the recent window's start only moves forward as the context grows (the kept
/// count grows by at most the tokens added).
class Window {
 public:
  Window() = default;
  explicit Window(Schedule s, int sink = 4) : schedule_(std::move(s)), sink_(sink) {
    if (sink < 0) throw InvalidArgument("window policy: sink " + std::to_string(sink) + " must be >= 0");
  }
  const Schedule& schedule() const { return schedule_; }
  int sink() const { return sink_; }
  bool prunes_into(int layer) const { return schedule_.percentile_into(layer) >= 0.0f; }
  static constexpr std::string_view name() { return "window"; }

  void select(const SelectArgs& a, std::span<std::uint8_t> keep) const {
    const std::size_t n = keep.size();
    const std::size_t want = detail::percentile_keep_count(n, schedule_.percentile_into(a.into_layer));
    const std::size_t sinks = std::min(std::size_t(sink_), n);
    const std::size_t recent = want > sinks ? want - sinks : 1;
    for (std::size_t i = 0; i < n; ++i) keep[i] = (i < sinks || i + recent >= n) ? 1 : 0;
  }

  friend bool operator==(const Window&, const Window&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Window& p) {
    return os << "window(" << p.schedule_ << ", sink=" << p.sink_ << ')';
  }

 private:
  Schedule schedule_;
  int sink_ = 4;
};

static_assert(PruningPolicy<Window>);

}  // namespace lazyllm::policy
