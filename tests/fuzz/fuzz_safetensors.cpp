// SPDX-License-Identifier: MIT
// The safetensors reader: header parsing and validation, then every tensor read back (as stored,
// converted to fp32, and as the loaders hand it over).
#include <memory>
#include <string_view>
#include <vector>

#include "fuzz_util.hpp"
#include "lazyllm/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lazyllm;
  const auto path = fuzz::write_file("x.safetensors", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_only_library_errors([&] {
    const auto f = SafetensorsFile::open(path);
    for (const auto& [name, info] : f->tensors()) {
      fuzz::check(info.begin <= info.end && info.end <= f->file()->size());
      fuzz::check(info.numel() * std::int64_t(dtype_size(info.dtype)) == std::int64_t(info.nbytes()));
      const WeightView v = f->view(name);
      fuzz::check(v.size() == info.numel());
      if (info.numel() > 0) (void)v.at(info.numel() - 1);
      std::vector<std::shared_ptr<const void>> storage;
      const float* p = f->as_f32(name, storage);
      const auto all = f->to_f32(name);
      for (std::size_t i = 0; i < all.size(); ++i)
        fuzz::check(std::memcmp(&all[i], p + i, 4) == 0);  // bitwise: NaN payloads too
    }
  });
  return 0;
}
