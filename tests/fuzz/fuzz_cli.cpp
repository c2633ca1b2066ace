// SPDX-License-Identifier: MIT
// The command-line helpers the example programs share (examples/common/cli.hpp): the argv walk
// and the integer parser. Input: NUL-separated arguments.
#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include "../../examples/common/cli.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lazyllm;
  std::vector<std::string> args{"prog"};
  std::string cur;
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(char(data[i]));
    }
  }
  args.push_back(cur);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  try {
    for (cli::Args a(int(args.size()), argv.data()); a.next();) {
      if (a.flag().empty() || a.flag()[0] != '-') continue;
      const std::string v = a.value();
      for (long long min : {LLONG_MIN, -1LL, 0LL, 1LL}) {
        try {
          const long long x = cli::parse_int(a.flag(), v, min);
          fuzz::check(x >= min);
        } catch (const cli::UsageError&) {
        }
      }
    }
  } catch (const cli::UsageError&) {
  }
  return 0;
}
