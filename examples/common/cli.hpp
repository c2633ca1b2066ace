// SPDX-License-Identifier: MIT
// What the command-line programs share: the usage-error type, range-checked number parsing, and
// the exit-code convention of every lazyllm program -- 0 success, 2 bad usage (a flag, its value,
// or an argument the library refuses as invalid), 1 anything else (a missing or corrupt input
// file, not enough memory, a runtime failure) -- each message on stderr as
// "<program>: error: <what>".
#pragma once
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "lazyllm/detail/error.hpp"

namespace lazyllm::cli {

/// A bad command line: reported with exit code 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// `v` as a whole decimal integer in [min, max], else a UsageError naming the flag and the range:
/// no silent truncation ("-n 4294967297" is refused, not read as 1).
inline long long parse_int(const std::string& flag, const std::string& v, long long min,
                           long long max = std::numeric_limits<int>::max()) {
  char* end = nullptr;
  errno = 0;
  const long long d =
      v.empty() || std::isspace(static_cast<unsigned char>(v[0])) ? 0 : std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || end == nullptr || *end || errno == ERANGE || d < min || d > max)
    throw UsageError(flag + ": '" + v + "' is not an integer in " + std::to_string(min) + ".." + std::to_string(max));
  return d;
}

/// A comma-separated list of integers ("1,2,4"), each in [min, max] as parse_int checks it.
inline std::vector<int> parse_int_list(const std::string& flag, const std::string& v, int min = 1, int max = 1 << 24) {
  std::vector<int> out;
  std::size_t at = 0;
  while (at <= v.size()) {
    const std::size_t comma = std::min(v.find(',', at), v.size());
    out.push_back(int(parse_int(flag, v.substr(at, comma - at), min, max)));
    at = comma + 1;
  }
  return out;
}

/// The median of some timings (0 when there are none).
inline double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
  return v[v.size() / 2];
}

/// `v` as an unsigned 64-bit integer (a seed), else a UsageError naming the flag.
inline std::uint64_t parse_u64(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const bool digits = !v.empty() && v.find_first_not_of("0123456789") == std::string::npos;
  const unsigned long long d = digits ? std::strtoull(v.c_str(), &end, 10) : 0;
  if (!digits || errno == ERANGE)
    throw UsageError(flag + ": '" + v + "' is not an integer in 0.." +
                     std::to_string(std::numeric_limits<std::uint64_t>::max()));
  return d;
}

/// `v` as a finite decimal number in [min, max], else a UsageError naming the flag and the range.
inline double parse_float(const std::string& flag, const std::string& v, double min, double max) {
  char* end = nullptr;
  errno = 0;
  // Decimal only: strtod also reads hex floats, "inf" and "nan", which no flag means.
  const bool decimal = !v.empty() && v.find_first_not_of("0123456789.eE+-") == std::string::npos;
  const double d = decimal ? std::strtod(v.c_str(), &end) : 0.0;
  if (!decimal || *end || errno == ERANGE || !(d >= min && d <= max)) {
    char range[96];
    std::snprintf(range, sizeof range, "%g..%g", min, max);
    throw UsageError(flag + ": '" + v + "' is not a number in " + range);
  }
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
