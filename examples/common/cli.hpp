// SPDX-License-Identifier: MIT
// What the example programs share on the command line: the usage-error type and the exit-code
// convention (0 success, 2 bad usage or invalid argument, 1 any other error), each message on
// stderr as "<program>: error: <what>".
#pragma once
#include <cstdio>
#include <exception>
#include <stdexcept>

#include "lazyllm/detail/error.hpp"

namespace lazyllm::cli {

/// A bad command line: reported with exit code 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
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
