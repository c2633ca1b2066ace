// SPDX-License-Identifier: MIT
// What the example programs share on the command line: the usage-error type and the exit-code
// convention (0 success, 2 bad usage or invalid argument, 1 any other error), each message on
// stderr as "<program>: error: <what>".
#pragma once
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

#include "lazyllm/detail/error.hpp"

namespace lazyllm::cli {

/// A bad command line: reported with exit code 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// `v` as an integer >= `min`, else a UsageError naming `flag`.
inline long long parse_int(const std::string& flag, const std::string& v, long long min) {
  char* end = nullptr;
  errno = 0;
  const long long d = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno || d < min)
    throw UsageError(flag + ": '" + v + "' is not an integer >= " + std::to_string(min));
  return d;
}

/// Walks argv one flag at a time; value() takes the flag's argument (a UsageError when there is
/// none):  for (cli::Args args(argc, argv); args.next();) { if (args.flag() == "-o") out = args.value(); }
class Args {
 public:
  Args(int argc, char** argv) : argc_(argc), argv_(argv) {}
  bool next() {
    if (++i_ >= argc_) return false;
    flag_ = argv_[i_];
    return true;
  }
  const std::string& flag() const { return flag_; }
  std::string value() {
    if (i_ + 1 >= argc_) throw UsageError(flag_ + " needs a value");
    return argv_[++i_];
  }

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string flag_;
};

/// Runs `body()` (returning the exit code) and maps exceptions to the exit-code convention.
template <class Body>
int run_main(const char* program, Body&& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 2;
  } catch (const InvalidArgument& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 1;
  }
}

}  // namespace lazyllm::cli
