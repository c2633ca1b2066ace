// Helpers shared by the CPU tests.
#pragma once
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace lazyllm::test {

inline std::filesystem::path shared_models() { return LAZYLLM_SHARED_MODELS; }
inline std::filesystem::path test_data() { return LAZYLLM_TEST_DATA; }

/// A fresh scratch directory for one test (under the build tree).
inline std::filesystem::path scratch(const std::string& name) {
  auto p = std::filesystem::path(LAZYLLM_TEST_TMP) / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

inline void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// True when ../shared/models/<file> exists; otherwise prints why the caller skips.
inline bool have_shared(const std::string& file) {
  if (std::filesystem::exists(shared_models() / file)) return true;
  MESSAGE("SKIPPED: " << (shared_models() / file).string() << " not found (../shared absent)");
  return false;
}

}  // namespace lazyllm::test
