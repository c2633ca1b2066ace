// SPDX-License-Identifier: MIT
// A sharded Hugging Face checkpoint's model.safetensors.index.json, next to a valid tiny model:
// the index may name shards only inside the model directory (a shard outside it, planted here,
// must never be opened), and whatever it says, the load ends in a model or a FormatError.
#include <cstring>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "fuzz_util.hpp"
#include "lazyllm/io/hf.hpp"

namespace {

// dim 4, hidden 8, 1 layer, 2 heads, 1 KV head, vocab 6: one shard with every tensor, each value
// `fill`.
std::string tiny_shard(float fill) {
  nlohmann::json h = nlohmann::json::object();
  std::size_t at = 0;
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape) {
    std::size_t n = 4;
    for (auto x : shape) n *= std::size_t(x);
    h[name] = {{"dtype", "F32"}, {"shape", shape}, {"data_offsets", {at, at + n}}};
    at += n;
  };
  add("model.embed_tokens.weight", {6, 4});
  add("model.layers.0.input_layernorm.weight", {4});
  add("model.layers.0.self_attn.q_proj.weight", {4, 4});
  add("model.layers.0.self_attn.k_proj.weight", {2, 4});
  add("model.layers.0.self_attn.v_proj.weight", {2, 4});
  add("model.layers.0.self_attn.o_proj.weight", {4, 4});
  add("model.layers.0.post_attention_layernorm.weight", {4});
  add("model.layers.0.mlp.gate_proj.weight", {8, 4});
  add("model.layers.0.mlp.up_proj.weight", {8, 4});
  add("model.layers.0.mlp.down_proj.weight", {4, 8});
  add("model.norm.weight", {4});
  std::string hs = h.dump();
  std::string out(8, '\0');
  const std::uint64_t n = hs.size();
  std::memcpy(out.data(), &n, 8);
  std::string values(at, '\0');
  for (std::size_t i = 0; i + 4 <= at; i += 4) std::memcpy(values.data() + i, &fill, 4);
  return out + hs + values;
}

const std::filesystem::path& model_dir() {
  static const std::filesystem::path dir = [] {
    namespace fs = std::filesystem;
    const auto root = lazyllm::fuzz::scratch_dir() / "index";
    fs::create_directories(root / "model" / "sub");
    const std::string shard = tiny_shard(0.0f);
    lazyllm::fuzz::write_file("index/model/config.json",
                              R"({"hidden_size": 4, "intermediate_size": 8, "num_hidden_layers": 1,
                                  "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 6,
                                  "max_position_embeddings": 8, "rms_norm_eps": 1e-5, "tie_word_embeddings": true})");
    lazyllm::fuzz::write_file("index/model/model-1.safetensors", shard);
    lazyllm::fuzz::write_file("index/model/sub/model-2.safetensors", shard);
    lazyllm::fuzz::write_file("index/outside.safetensors", tiny_shard(1.0f));  // the index must never reach it
    std::error_code ec;
    fs::create_symlink(root / "outside.safetensors", root / "model" / "escape.safetensors", ec);
    return root / "model";
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace lazyllm;
  const auto& dir = model_dir();
  fuzz::write_file("index/model/model.safetensors.index.json", {reinterpret_cast<const char*>(data), size});
  fuzz::expect_only_library_errors([&] {
    const ModelWeights w = load_hf(dir);
    check_weights(w);
    // Every tensor came from inside the model directory (its shards hold 0, the one outside 1).
    for_each_weight(w, [](const WeightView& t, std::int64_t n) {
      for (std::int64_t i = 0; i < n; ++i) fuzz::check(t.at(i) == 0.0f);
    });
  });
  return 0;
}
