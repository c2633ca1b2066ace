// SPDX-License-Identifier: MIT
// Byte counts for messages.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace lazyllm::detail {

/// "512 B", "512.0 KiB", "1.5 MiB", "13.48 GiB": binary units.
inline std::string format_bytes(std::uint64_t b) {
  char buf[64];
  const double d = double(b);
  if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", d / double(1ull << 30));
  else if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", d / double(1ull << 20));
  else if (b >= (1ull << 10)) std::snprintf(buf, sizeof buf, "%.1f KiB", d / double(1ull << 10));
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return buf;
}

}  // namespace lazyllm::detail
