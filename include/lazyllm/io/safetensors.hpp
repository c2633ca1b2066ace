// SPDX-License-Identifier: MIT
// The safetensors format: u64 header length N, N bytes of JSON {name: {dtype, shape,
// data_offsets: [begin, end]}} (offsets relative to the end of the header), then the data.
#pragma once
#include <algorithm>
#include <bit>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lazyllm/io/mapped_file.hpp"
#include "lazyllm/model/dtype.hpp"
#include "lazyllm/model/weights.hpp"

namespace lazyllm {

/// One tensor of a safetensors file.
struct TensorInfo {
  TensorDType dtype = TensorDType::F32;
  std::vector<std::int64_t> shape;
  std::size_t begin = 0, end = 0;  // absolute byte offsets in the file
  std::size_t nbytes() const { return end - begin; }
  std::int64_t numel() const { return std::int64_t(nbytes() / dtype_size(dtype)); }  // validated == product(shape)
};

inline std::string shape_string(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(s[i]);
  }
  return out + "]";
}

/// A mapped .safetensors file with its validated tensor table. Construction checks the whole
/// header (see the FormatErrors below); tensors are read lazily from the mapping.
class SafetensorsFile {
 public:
  static std::shared_ptr<const SafetensorsFile> open(const std::filesystem::path& path) {
    return std::make_shared<const SafetensorsFile>(path);
  }
  explicit SafetensorsFile(const std::filesystem::path& path) : file_(MappedFile::open(path)) {
    const std::string& p = file_->path();
    const auto b = file_->bytes();
    if (b.size() < 8) throw FormatError(p, "too short for a safetensors header (" + std::to_string(b.size()) + " bytes)");
    const auto n = detail::read_pod<std::uint64_t>(b, 0);
    if (n > b.size() - 8)
      throw FormatError(p, "header length " + std::to_string(n) + " runs past the end of the file (" +
                               std::to_string(b.size()) + " bytes)");
    nlohmann::json h;
    try {
      h = nlohmann::json::parse(reinterpret_cast<const char*>(b.data()) + 8, reinterpret_cast<const char*>(b.data()) + 8 + n);
    } catch (const nlohmann::json::exception& e) {
      throw FormatError(p, std::string("header is not valid JSON: ") + e.what());
    }
    if (!h.is_object()) throw FormatError(p, "header is not a JSON object");
    const std::size_t data0 = 8 + std::size_t(n);
    std::vector<std::pair<std::size_t, std::string>> order;
    for (const auto& item : h.items()) {
      const std::string& name = item.key();
      const nlohmann::json& t = item.value();
      if (name == "__metadata__") continue;
      auto bad = [&](const std::string& m) { return FormatError(p, "tensor '" + name + "' " + m); };
      if (!t.is_object() || !t.contains("dtype") || !t.contains("shape") || !t.contains("data_offsets"))
        throw bad("is missing a key (an entry needs dtype, shape and data_offsets)");
      TensorInfo info;
      const auto dt = t["dtype"].is_string() ? t["dtype"].get<std::string>() : t["dtype"].dump();
      if (dt == "F32") info.dtype = TensorDType::F32;
      else if (dt == "F16") info.dtype = TensorDType::F16;
      else if (dt == "BF16") info.dtype = TensorDType::BF16;
      else throw bad("has unsupported dtype " + dt + " (supported: F32, F16, BF16)");
      const auto& sh = t["shape"];
      const auto& off = t["data_offsets"];
      if (!sh.is_array()) throw bad("has a malformed shape " + sh.dump());
      std::uint64_t need = dtype_size(info.dtype);  // product(shape) * sizeof(dtype), saturating
      for (const auto& s : sh) {
        if (!s.is_number_unsigned()) throw bad("has a malformed shape " + sh.dump());
        const auto e = s.get<std::uint64_t>();
        if (e > std::uint64_t(INT64_MAX)) throw bad("has a malformed shape " + sh.dump());
        info.shape.push_back(std::int64_t(e));
        need = e != 0 && need > UINT64_MAX / e ? UINT64_MAX : need * e;
      }
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        throw bad("has malformed data_offsets " + off.dump());
      const auto o0 = off[0].get<std::uint64_t>(), o1 = off[1].get<std::uint64_t>();
      const std::uint64_t data_bytes = b.size() - data0;
      if (o0 > o1 || o1 > data_bytes)
        throw bad("has data_offsets [" + std::to_string(o0) + ", " + std::to_string(o1) + "] out of range (" +
                  std::to_string(data_bytes) + " data bytes)");
      if (need != o1 - o0)
        throw bad("holds " + std::to_string(o1 - o0) + " bytes, but shape " + shape_string(info.shape) + " x " +
                  dt + " needs " + (need == UINT64_MAX ? std::string("more than 2^64") : std::to_string(need)));
      info.begin = data0 + std::size_t(o0);
      info.end = data0 + std::size_t(o1);
      if (info.end > info.begin) order.emplace_back(info.begin, name);  // empty tensors overlap nothing
      tensors_.emplace(name, std::move(info));
    }
    std::sort(order.begin(), order.end());
    for (std::size_t i = 1; i < order.size(); ++i) {
      const auto& prev = tensors_.at(order[i - 1].second);
      if (order[i].first < prev.end)
        throw FormatError(p, "tensors '" + order[i - 1].second + "' and '" + order[i].second + "' overlap");
    }
  }

  const std::string& path() const { return file_->path(); }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const {
    auto it = tensors_.find(name);
    if (it == tensors_.end()) throw FormatError(path(), "missing tensor '" + name + "'");
    return it->second;
  }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::shared_ptr<const MappedFile>& file() const { return file_; }

  /// The tensor as stored: a view into the mapping in its own dtype (no copy, no alignment
  /// promise; WeightView reads 2-byte values with memcpy).
  WeightView view(const std::string& name) const {
    const TensorInfo& t = info(name);
    return WeightView(file_->bytes().data() + t.begin, t.dtype, t.numel());
  }

  /// The tensor converted to fp32 (a copy, whatever its dtype).
  std::vector<float> to_f32(const std::string& name) const {
    const TensorInfo& t = info(name);
    std::vector<float> out(t.nbytes() / dtype_size(t.dtype));
    if (!out.empty()) view(name).to_f32(0, std::int64_t(out.size()), out.data());
    return out;
  }

  /// The tensor as fp32: a view into the mapping when it is F32 and 4-byte aligned (zero copy),
  /// otherwise a converted copy whose owner is appended to `storage`.
  const float* as_f32(const std::string& name, std::vector<std::shared_ptr<const void>>& storage) const {
    const TensorInfo& t = info(name);
    const std::byte* src = file_->bytes().data() + t.begin;
    if (t.dtype == TensorDType::F32 && reinterpret_cast<std::uintptr_t>(src) % alignof(float) == 0)
      return reinterpret_cast<const float*>(src);
    auto buf = std::make_shared<const std::vector<float>>(to_f32(name));
    storage.push_back(buf);
    return buf->data();
  }

 private:
  std::shared_ptr<const MappedFile> file_;
  std::map<std::string, TensorInfo> tensors_;
};

}  // namespace lazyllm
