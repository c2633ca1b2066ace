// SPDX-License-Identifier: MIT
// config.json of a Hugging Face checkpoint: the shape reader, then every size computed from an
// accepted shape (which must not overflow: the limits in config/model_config.hpp).
#include "fuzz_util.hpp"
#include "lazyllm/io/hf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lazyllm;
  const auto path = fuzz::write_file("config.json", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_only_library_errors([&] {
    const RuntimeConfig c = detail::hf_config(path);
    c.validate();  // accepted shapes are valid ones
    fuzz::check(c.dim <= ConfigLimits::max_dim && c.vocab_size <= ConfigLimits::max_vocab_size);
    fuzz::check(c.n_params() > 0);
    fuzz::check(c.head_dim() > 0 && c.kv_dim() > 0 && c.group_size() > 0);
  });
  return 0;
}
