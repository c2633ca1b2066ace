// SPDX-License-Identifier: MIT
// Shared by the fuzz targets (tests/fuzz/fuzz_*.cpp): a scratch file per process for the loaders
// that read paths, and the rule every target checks: bad input may only raise lazyllm::Error (or
// the CLI's UsageError); anything else escapes to libFuzzer and is reported as a crash.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "lazyllm/detail/error.hpp"

namespace lazyllm::fuzz {

/// A folder of this process's own under $TMPDIR (or /tmp), made once, removed at exit.
inline const std::filesystem::path& scratch_dir() {
  struct Dir {
    std::filesystem::path path;
    Dir() {
      const char* t = std::getenv("TMPDIR");
      path = std::filesystem::path(t && *t ? t : "/tmp") / ("lazyllm-fuzz-" + std::to_string(::getpid()));
      std::filesystem::create_directories(path);
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Dir dir;
  return dir.path;
}

/// Writes `bytes` to scratch_dir()/name (replacing it) and returns the path.
inline std::filesystem::path write_file(const std::string& name, std::string_view bytes) {
  const auto p = scratch_dir() / name;
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  return p;
}

/// Runs f(); a lazyllm::Error is the expected answer to bad input and is swallowed.
template <class F>
void expect_only_library_errors(F&& f) {
  try {
    f();
  } catch (const lazyllm::Error&) {
  }
}

/// Aborts (a crash libFuzzer reports, with the input) when `ok` is false: a broken invariant.
inline void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace lazyllm::fuzz
