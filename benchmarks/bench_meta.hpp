// SPDX-License-Identifier: MIT
// What a benchmark's JSON records about its run (commit, date), shared by lazyllm-bench and
// lazyllm-bench-tokenize.
#pragma once
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

namespace lazyllm::bench {

/// The first line a shell command prints ("" when it fails); for the commit and nvidia-smi.
inline std::string shell_first_line(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r")) {
    char buf[512];
    if (std::fgets(buf, sizeof buf, p)) out = buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' ')) out.pop_back();
  return out;
}

/// LAZYLLM_COMMIT from the environment, else `git rev-parse` in the source tree, else the commit
/// CMake saw at configure time, else "unknown".
inline std::string git_commit() {
  if (const char* e = std::getenv("LAZYLLM_COMMIT"); e && *e) return e;
#ifdef LAZYLLM_SOURCE_DIR
  std::string c = shell_first_line(std::string("git -C '") + LAZYLLM_SOURCE_DIR + "' rev-parse --short=12 HEAD");
  if (!c.empty()) {
    if (!shell_first_line(std::string("git -C '") + LAZYLLM_SOURCE_DIR + "' status --porcelain -uno").empty())
      c += "-dirty";
    return c;
  }
#endif
#ifdef LAZYLLM_GIT_COMMIT
  if (std::string(LAZYLLM_GIT_COMMIT).size()) return std::string(LAZYLLM_GIT_COMMIT) + " (configure time)";
#endif
  return "unknown";
}

inline std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return b;
}

}  // namespace lazyllm::bench
