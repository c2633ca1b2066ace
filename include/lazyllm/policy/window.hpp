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
/// keep the number of tokens the percentile nominally keeps (n - floor(p n), as RandomDrop),
/// taken by position alone: the first `sink` tokens of S_l (the prompt's start, where attention
/// sinks sit) and the most recent ones (the question, at the end of a prompt). No scores are
/// read. Re-decided every step like Lazy; as the context grows the window only slides forward
/// (its start never moves back), so no token is ever revived.
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
    const std::size_t first =
        std::min<std::size_t>(std::size_t(sink_), want > 0 ? want - 1 : 0);  // the last token counts
    for (std::size_t i = 0; i < n; ++i) keep[i] = (i < first || i + (want - first) >= n) ? 1 : 0;
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
