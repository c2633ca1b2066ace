// SPDX-License-Identifier: MIT
// Checkpoint loaders (llama2.c legacy / ak42, safetensors, HF directories): every file is generated
// here; each malformed input must give a FormatError naming the file and the problem.
#include <bit>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <tuple>

#include <nlohmann/json.hpp>

#include "../../examples/llama2/memory.hpp"  // the driver's peek_weight_dtype (--precision auto)
#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/io/load.hpp"
#include "lazyllm/model/finite.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/dense.hpp"
#include "random_model.hpp"
#include "test_util.hpp"

using namespace lazyllm;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

template <class T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

fs::path write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  test::write_file(dir / name, bytes);
  return dir / name;
}

/// Runs `f`, requires a FormatError whose message contains `file` and `phrase`.
template <class F>
void expect_format_error(F&& f, const std::string& file, const std::string& phrase) {
  try {
    f();
    FAIL("expected a FormatError containing '" << phrase << "'");
  } catch (const FormatError& e) {
    const std::string m = e.what();
    CHECK_MESSAGE(m.find(file) != std::string::npos, "message does not name '" << file << "': " << m);
    CHECK_MESSAGE(m.find(phrase) != std::string::npos, "message lacks '" << phrase << "': " << m);
  }
}

// ---- llama2.c --------------------------------------------------------------------------------
// dim 4, hidden 6, 2 layers, 2 heads, 1 KV head (head_dim 2, kv_dim 2), vocab 5, seq 3.
constexpr int D = 4, H = 6, L = 2, NH = 2, NKV = 1, KV = 2, V = 5, S = 3, HD = D / NH;

/// Tensor sizes in file order; every float after the header is its own index (0, 1, 2, ...),
/// so a view is right iff view[k] == offset(name) + k.
std::vector<std::pair<std::string, int>> llama2c_layout(bool v1, bool tied) {
  std::vector<std::pair<std::string, int>> t;
  auto per_layer = [&](const std::string& n, int size) {
    for (int l = 0; l < L; ++l) t.emplace_back(n + std::to_string(l), size);
  };
  if (v1) {
    per_layer("attn_norm", D);
    per_layer("ffn_norm", D);
    t.emplace_back("final_norm", D);
    t.emplace_back("embedding", V * D);
  } else {
    t.emplace_back("embedding", V * D);
    per_layer("attn_norm", D);
  }
  per_layer("wq", D * D);
  per_layer("wk", KV * D);
  per_layer("wv", KV * D);
  per_layer("wo", D * D);
  if (!v1) per_layer("ffn_norm", D);
  per_layer("w1", H * D);
  per_layer("w2", D * H);
  per_layer("w3", H * D);
  if (!v1) {
    t.emplace_back("final_norm", D);
    t.emplace_back("freq_cis", S * HD);  // real + imag, S * HD/2 each
  }
  if (!tied) t.emplace_back("classifier", V * D);
  return t;
}

std::string llama2c_file(bool v1, bool tied, int version = 1) {
  std::string s;
  if (v1) {
    put<std::uint32_t>(s, 0x616b3432);
    put<std::int32_t>(s, version);
  }
  for (int x : {D, H, L, NH, NKV, (v1 || tied) ? V : -V, S}) put<std::int32_t>(s, x);
  if (v1) {
    put<std::uint8_t>(s, tied ? 1 : 0);
    s.resize(256, '\0');
  }
  int n = 0;
  for (const auto& [name, size] : llama2c_layout(v1, tied)) n += size;
  for (int i = 0; i < n; ++i) put<float>(s, float(i));
  return s;
}

void check_llama2c_views(const ModelWeights& w, bool v1, bool tied) {
  std::map<std::string, WeightView> view{{"embedding", w.token_embedding}, {"final_norm", w.final_norm}};
  for (int l = 0; l < L; ++l) {
    const auto& lw = w.layers[std::size_t(l)];
    const auto i = std::to_string(l);
    for (auto [n, p] : {std::pair{"attn_norm", lw.attn_norm},
                        {"ffn_norm", lw.ffn_norm},
                        {"wq", lw.wq},
                        {"wk", lw.wk},
                        {"wv", lw.wv},
                        {"wo", lw.wo},
                        {"w1", lw.w1},
                        {"w2", lw.w2},
                        {"w3", lw.w3}})
      view[n + i] = p;
  }
  if (!tied) view["classifier"] = w.classifier;
  int offset = 0;
  for (const auto& entry : llama2c_layout(v1, tied)) {
    const std::string& name = entry.first;
    const int size = entry.second;
    if (view.count(name)) {
      CAPTURE(name);
      bool all = true;
      for (int k = 0; k < size; ++k) all = all && view[name].f32()[k] == float(offset + k);
      CHECK(all);
    }
    offset += size;
  }
  if (tied)
    CHECK(w.classifier == w.token_embedding);
  else
    CHECK(w.classifier != w.token_embedding);
}

// ---- safetensors / HF --------------------------------------------------------------------------
std::uint16_t to_bf16(float f) { return std::uint16_t(std::bit_cast<std::uint32_t>(f) >> 16); }  // exact values only
std::uint16_t to_f16(float f) {  // exact, normal (or zero) values only
  const auto u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7FFFFFFFu) == 0) return std::uint16_t(u >> 16);
  return std::uint16_t(((u >> 16) & 0x8000u) | ((((u >> 23) & 0xFFu) - 112u) << 10) | ((u >> 13) & 0x3FFu));
}

struct Tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> values;  // small integers and halves: exact in f16 and bf16
};

std::string encode(const Tensor& t, const std::string& dtype) {
  std::string s;
  for (float v : t.values) {
    if (dtype == "F32")
      put<float>(s, v);
    else
      put<std::uint16_t>(s, dtype == "F16" ? to_f16(v) : to_bf16(v));
  }
  return s;
}

/// A safetensors file holding `ts` back to back, header padded to 8 bytes like the reference writer.
std::string safetensors(const std::vector<Tensor>& ts, const std::string& dtype) {
  json h = {{"__metadata__", {{"format", "pt"}}}};
  std::string data;
  for (const auto& t : ts) {
    const auto bytes = encode(t, dtype);
    h[t.name] = {{"dtype", dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  std::string hs = h.dump();
  while (hs.size() % 8) hs += ' ';
  std::string s;
  put<std::uint64_t>(s, hs.size());
  return s + hs + data;
}

/// A safetensors file from a literal header and `data_bytes` zero bytes.
std::string raw_safetensors(const std::string& header, std::size_t data_bytes) {
  std::string s;
  put<std::uint64_t>(s, header.size());
  return s + header + std::string(data_bytes, '\0');
}

json hf_config() {
  return {{"model_type", "llama"},     {"hidden_size", D},
          {"intermediate_size", H},    {"num_hidden_layers", L},
          {"num_attention_heads", NH}, {"num_key_value_heads", NKV},
          {"vocab_size", V},           {"max_position_embeddings", 64},
          {"rms_norm_eps", 1e-6},      {"hidden_act", "silu"},
          {"rope_scaling", nullptr},   {"tie_word_embeddings", false}};
}

std::vector<Tensor> hf_tensors(bool with_lm_head = true) {
  std::vector<Tensor> ts;
  float next = -64.0f;  // consecutive halves from -64: exact in every dtype
  auto add = [&](const std::string& name, std::vector<std::int64_t> shape) {
    std::int64_t n = 1;
    for (auto x : shape) n *= x;
    Tensor t{name, shape, {}};
    for (std::int64_t i = 0; i < n; ++i, next += 0.5f) t.values.push_back(next);
    ts.push_back(std::move(t));
  };
  add("model.embed_tokens.weight", {V, D});
  for (int l = 0; l < L; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {D});
    add(p + "self_attn.q_proj.weight", {D, D});
    add(p + "self_attn.k_proj.weight", {KV, D});
    add(p + "self_attn.v_proj.weight", {KV, D});
    add(p + "self_attn.o_proj.weight", {D, D});
    add(p + "post_attention_layernorm.weight", {D});
    add(p + "mlp.gate_proj.weight", {H, D});
    add(p + "mlp.up_proj.weight", {H, D});
    add(p + "mlp.down_proj.weight", {D, H});
    add(p + "self_attn.rotary_emb.inv_freq", {HD / 2});  // ignored extra
  }
  add("model.norm.weight", {D});
  if (with_lm_head) add("lm_head.weight", {V, D});
  return ts;
}

fs::path hf_dir(const std::string& name, const std::vector<Tensor>& ts, const std::string& dtype = "F32",
                const json& cfg = hf_config()) {
  const auto dir = test::scratch(name);
  test::write_file(dir / "config.json", cfg.dump());
  test::write_file(dir / "model.safetensors", safetensors(ts, dtype));
  return dir;
}

void check_hf_views(const ModelWeights& w, const std::vector<Tensor>& ts) {
  std::map<std::string, WeightView> view{{"model.embed_tokens.weight", w.token_embedding},
                                         {"model.norm.weight", w.final_norm}};
  if (!w.config.tied_embeddings) view["lm_head.weight"] = w.classifier;
  for (int l = 0; l < L; ++l) {
    const auto& lw = w.layers[std::size_t(l)];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    view[p + "input_layernorm.weight"] = lw.attn_norm;
    view[p + "self_attn.q_proj.weight"] = lw.wq;
    view[p + "self_attn.k_proj.weight"] = lw.wk;
    view[p + "self_attn.v_proj.weight"] = lw.wv;
    view[p + "self_attn.o_proj.weight"] = lw.wo;
    view[p + "post_attention_layernorm.weight"] = lw.ffn_norm;
    view[p + "mlp.gate_proj.weight"] = lw.w1;
    view[p + "mlp.up_proj.weight"] = lw.w3;
    view[p + "mlp.down_proj.weight"] = lw.w2;
  }
  for (const auto& t : ts) {
    if (!view.count(t.name)) continue;
    CAPTURE(t.name);
    bool all = true;
    for (std::size_t k = 0; k < t.values.size(); ++k) all = all && view[t.name].at(std::int64_t(k)) == t.values[k];
    CHECK(all);
  }
}

}  // namespace

TEST_CASE("MappedFile: maps whole files, empty ones too; missing file names strerror") {
  const auto dir = test::scratch("ld_mapped");
  const auto m = MappedFile::open(write(dir, "abc.bin", "abc"));
  REQUIRE(m->size() == 3);
  CHECK(char(m->bytes()[2]) == 'c');
  CHECK(MappedFile::open(write(dir, "empty.bin", ""))->size() == 0);
  expect_format_error([&] { MappedFile::open(dir / "nope.bin"); }, "nope.bin", "No such file or directory");
  expect_format_error([&] { MappedFile::open(dir); }, "ld_mapped", "not a regular file");
}

TEST_CASE("llama2.c legacy: every view holds its values, tied and untied") {
  const auto dir = test::scratch("ld_legacy");
  for (bool tied : {true, false}) {
    CAPTURE(tied);
    const auto w = load_llama2c(write(dir, "m.bin", llama2c_file(false, tied)));
    const RuntimeConfig& c = w.config;
    CHECK(c.dim == D);
    CHECK(c.hidden_dim == H);
    CHECK(c.n_layers == L);
    CHECK(c.n_heads == NH);
    CHECK(c.n_kv_heads == NKV);
    CHECK(c.vocab_size == V);
    CHECK(c.max_seq_len == S);
    CHECK(c.tied_embeddings == tied);
    CHECK(c.rope_style == RopeStyle::Interleaved);
    CHECK(c.norm_eps == 1e-5f);
    CHECK(c.rope_theta == 10000.0f);
    CHECK(w.source_dtype == "f32");
    CHECK(w.layers[1].wq.f32()[0] == float(V * D + L * D + D * D));  // after embedding, 2 norms, layer 0's wq
    check_llama2c_views(w, false, tied);
  }
}

TEST_CASE("llama2.c ak42 version 1: every view holds its values, tied and untied") {
  const auto dir = test::scratch("ld_v1");
  for (bool tied : {true, false}) {
    CAPTURE(tied);
    const auto w = load_model(write(dir, "m.bin", llama2c_file(true, tied)));
    CHECK(w.config.tied_embeddings == tied);
    CHECK(w.config.vocab_size == V);
    CHECK(w.config.rope_style == RopeStyle::Interleaved);
    CHECK(w.layers[1].wq.f32()[0] == float(2 * L * D + D + V * D + D * D));  // norms, final norm, embedding, wq0
    check_llama2c_views(w, true, tied);
  }
}

TEST_CASE("llama2.c: malformed files give FormatErrors naming the file") {
  const auto dir = test::scratch("ld_l2c_bad");
  auto load = [&](const std::string& name, const std::string& bytes) {
    return [&dir, name, bytes] { load_llama2c(write(dir, name, bytes)); };
  };
  expect_format_error(load("empty.bin", ""), "empty.bin", "too short for a llama2.c header");
  expect_format_error(load("short.bin", std::string(20, '\1')), "short.bin", "too short for a llama2.c header");

  const auto legacy = llama2c_file(false, false), v1 = llama2c_file(true, true);
  const auto legacy_size = std::to_string(legacy.size());
  expect_format_error(
      load("trunc.bin", legacy.substr(0, legacy.size() - 4)), "trunc.bin",
      "truncated: expected at least " + legacy_size + " bytes, file has " + std::to_string(legacy.size() - 4));
  expect_format_error(load("header_only.bin", legacy.substr(0, 28)), "header_only.bin", "truncated");
  expect_format_error(load("long.bin", legacy + "junk"), "long.bin", "4 bytes beyond");
  // A legacy file without its RoPE tables is not accepted (only the exact size is).
  const auto no_rope = llama2c_file(false, true);
  expect_format_error(load("norope.bin", no_rope.substr(0, no_rope.size() - 4 * S * HD)), "norope.bin", "truncated");

  expect_format_error(load("trunc_v1.bin", v1.substr(0, v1.size() - 1)), "trunc_v1.bin", "truncated");
  expect_format_error(load("v1_short.bin", v1.substr(0, 100)), "v1_short.bin", "too short for a llama2.c v1 header");
  expect_format_error(load("v2.bin", llama2c_file(true, true, 2)), "v2.bin", "version 2 is not supported");
  expect_format_error(load("v0.bin", llama2c_file(true, true, 0)), "v0.bin", "version 0 is not supported");

  // Not a llama2.c file at all (a GGUF-like magic): read as a legacy header, which is invalid.
  std::string gguf = "GGUF";
  for (int x : {3, 0, 0, 0, 0, 0}) put<std::int32_t>(gguf, x);
  expect_format_error(load("model.gguf", gguf + std::string(64, '\0')), "model.gguf", "bad header");

  auto with_header = [&](int index, std::int32_t value, bool ak42 = false) {
    std::string s = ak42 ? v1 : legacy;
    std::memcpy(s.data() + (ak42 ? 8 : 0) + 4 * index, &value, 4);
    return s;
  };
  expect_format_error(load("zero_dim.bin", with_header(0, 0)), "zero_dim.bin", "dim must be positive (got 0)");
  expect_format_error(load("neg_layers.bin", with_header(2, -2)), "neg_layers.bin", "n_layers must be positive");
  expect_format_error(load("heads.bin", with_header(3, 3)), "heads.bin", "not divisible by n_heads 3");
  expect_format_error(load("kv.bin", with_header(4, 3)), "kv.bin", "not divisible by n_kv_heads 3");
  expect_format_error(load("vocab_v1.bin", with_header(5, -V, true)), "vocab_v1.bin", "vocab_size must be positive");
  expect_format_error(load("intmin.bin", with_header(5, INT_MIN)), "intmin.bin", "bad header");
  // Absurd sizes are refused by name at parse time, before any size is computed from them.
  std::string huge;
  for (int x : {1 << 30, INT_MAX, INT_MAX, 1 << 29, 1 << 29, -INT_MAX, INT_MAX}) put<std::int32_t>(huge, x);
  expect_format_error(load("huge.bin", huge + std::string(4096, '\0')), "huge.bin",
                      "bad header: invalid model config: dim 1073741824 is above the supported maximum 65536");

  expect_format_error([&] { load_model(dir / "absent.bin"); }, "absent.bin", "no such file or directory");
}

TEST_CASE("stories260K from ../shared loads with its published shape") {
  if (!test::have_shared("stories260K.bin")) return;
  const auto w = load_model(test::shared_models() / "stories260K.bin");
  CHECK(driver::peek_weight_dtype(test::shared_models() / "stories260K.bin") == "f32");  // llama2.c: fp32
  const RuntimeConfig& c = w.config;
  CHECK(c.dim == 64);
  CHECK(c.hidden_dim == 172);
  CHECK(c.n_layers == 5);
  CHECK(c.n_heads == 8);
  CHECK(c.n_kv_heads == 4);
  CHECK(c.vocab_size == 512);
  CHECK(c.max_seq_len == 512);
  CHECK(c.tied_embeddings);
  CHECK(w.classifier == w.token_embedding);
  REQUIRE(w.layers.size() == 5);
  CHECK(std::isfinite(w.layers[4].w3.f32()[172 * 64 - 1]));
  CHECK(std::isfinite(w.final_norm.f32()[63]));
}

TEST_CASE("fp16 and bf16 special values convert exactly") {
  using detail::bf16_to_f32;
  using detail::f16_to_f32;
  CHECK(f16_to_f32(0x0000) == 0.0f);
  CHECK(!std::signbit(f16_to_f32(0x0000)));
  CHECK(std::signbit(f16_to_f32(0x8000)));
  CHECK(f16_to_f32(0x8000) == 0.0f);
  CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(f16_to_f32(0x8001) == -std::ldexp(1.0f, -24));
  CHECK(f16_to_f32(0x03FF) == std::ldexp(1023.0f, -24));  // largest subnormal
  CHECK(f16_to_f32(0x0400) == std::ldexp(1.0f, -14));     // smallest normal
  CHECK(f16_to_f32(0x3C00) == 1.0f);
  CHECK(f16_to_f32(0x3555) == std::ldexp(1365.0f, -12));  // ~1/3
  CHECK(f16_to_f32(0xC000) == -2.0f);
  CHECK(f16_to_f32(0x7BFF) == 65504.0f);
  CHECK(f16_to_f32(0x7C00) == std::numeric_limits<float>::infinity());
  CHECK(f16_to_f32(0xFC00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(f16_to_f32(0x7E00)));
  CHECK(std::isnan(f16_to_f32(0x7C01)));  // signalling-style payload is still a nan
  CHECK(std::isnan(f16_to_f32(0xFE00)));

  CHECK(bf16_to_f32(0x3F80) == 1.0f);
  CHECK(bf16_to_f32(0xC0A0) == -5.0f);
  CHECK(std::signbit(bf16_to_f32(0x8000)));
  CHECK(bf16_to_f32(0x0001) == std::ldexp(1.0f, -133));  // smallest bf16 subnormal
  CHECK(bf16_to_f32(0x0080) == std::numeric_limits<float>::min());
  CHECK(bf16_to_f32(0x7F7F) == std::bit_cast<float>(0x7F7F0000u));  // largest finite
  CHECK(bf16_to_f32(0x7F80) == std::numeric_limits<float>::infinity());
  CHECK(bf16_to_f32(0xFF80) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(bf16_to_f32(0x7FC0)));
  CHECK(std::isnan(bf16_to_f32(0xFF81)));
}

TEST_CASE("safetensors: tensors, to_f32 and zero-copy F32 views") {
  const auto dir = test::scratch("ld_st");
  const std::vector<Tensor> ts = {{"a", {2, 3}, {1, -2, 3.5f, 0, -0.5f, 100}}, {"b", {3}, {7, 8, 9}}};
  for (const std::string dt : {"F32", "F16", "BF16"}) {
    CAPTURE(dt);
    const auto f = SafetensorsFile::open(write(dir, dt + ".safetensors", safetensors(ts, dt)));
    CHECK(f->has("a"));
    CHECK(!f->has("__metadata__"));
    CHECK(f->info("a").shape == std::vector<std::int64_t>{2, 3});
    CHECK(f->info("a").numel() == 6);
    CHECK(to_string(f->info("b").dtype) == dt);
    CHECK(f->to_f32("a") == ts[0].values);
    std::vector<std::shared_ptr<const void>> storage;
    const float* b = f->as_f32("b", storage);
    CHECK(std::vector<float>(b, b + 3) == ts[1].values);
    CHECK(storage.size() == (dt == "F32" ? 0u : 1u));  // F32 at an aligned offset: a view, no copy
  }
  // An F32 tensor at an odd offset is copied, not viewed misaligned.
  std::string hdr =
      R"({"pad":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"x":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}})";
  while ((8 + hdr.size()) % 4) hdr += ' ';
  std::string bytes = raw_safetensors(hdr, 0);
  put<std::uint16_t>(bytes, 0x3C00);
  put<float>(bytes, 1.5f);
  put<float>(bytes, -2.5f);
  const auto f = SafetensorsFile::open(write(dir, "odd.safetensors", bytes));
  std::vector<std::shared_ptr<const void>> storage;
  const float* x = f->as_f32("x", storage);
  CHECK(storage.size() == 1);
  CHECK(reinterpret_cast<std::uintptr_t>(x) % alignof(float) == 0);
  CHECK(x[0] == 1.5f);
  CHECK(x[1] == -2.5f);
  CHECK(f->to_f32("pad") == std::vector<float>{1.0f});
}

TEST_CASE("safetensors: malformed files give FormatErrors naming the file") {
  const auto dir = test::scratch("ld_st_bad");
  auto open = [&](const std::string& name, const std::string& bytes) {
    return [&dir, name, bytes] { SafetensorsFile::open(write(dir, name, bytes)); };
  };
  expect_format_error(open("short.safetensors", "abcd"), "short.safetensors", "too short for a safetensors header");
  std::string past;
  put<std::uint64_t>(past, 1000);
  expect_format_error(open("past.safetensors", past + "{}"), "past.safetensors",
                      "header length 1000 runs past the end of the file (10 bytes)");
  std::string max_len;
  put<std::uint64_t>(max_len, ~std::uint64_t(0));
  expect_format_error(open("max.safetensors", max_len + "{}"), "max.safetensors", "runs past the end");
  expect_format_error(open("json.safetensors", raw_safetensors("{\"a\": [1, 2", 0)), "json.safetensors",
                      "header is not valid JSON");
  expect_format_error(open("zero.safetensors", raw_safetensors("", 0)), "zero.safetensors", "not valid JSON");
  expect_format_error(open("array.safetensors", raw_safetensors("[1,2]", 0)), "array.safetensors",
                      "header is not a JSON object");
  expect_format_error(open("nodtype.safetensors", raw_safetensors(R"({"x":{"shape":[1],"data_offsets":[0,4]}})", 4)),
                      "nodtype.safetensors", "tensor 'x' is missing a key");
  expect_format_error(open("nooff.safetensors", raw_safetensors(R"({"x":{"dtype":"F32","shape":[1]}})", 4)),
                      "nooff.safetensors", "dtype, shape and data_offsets");
  expect_format_error(
      open("i8.safetensors", raw_safetensors(R"({"x":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}})", 4)),
      "i8.safetensors", "tensor 'x' has unsupported dtype I8 (supported: F32, F16, BF16)");
  expect_format_error(
      open("range.safetensors", raw_safetensors(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4)),
      "range.safetensors", "tensor 'x' has data_offsets [0, 8] out of range (4 data bytes)");
  expect_format_error(
      open("back.safetensors", raw_safetensors(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8)),
      "back.safetensors", "out of range");
  expect_format_error(
      open("neg.safetensors", raw_safetensors(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 8)),
      "neg.safetensors", "malformed data_offsets");
  expect_format_error(
      open("size.safetensors", raw_safetensors(R"({"x":{"dtype":"F16","shape":[2,3],"data_offsets":[0,8]}})", 8)),
      "size.safetensors", "holds 8 bytes, but shape [2,3] x F16 needs 12");
  expect_format_error(
      open("bigshape.safetensors",
           raw_safetensors(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0)),
      "bigshape.safetensors", "needs more than 2^64");
  expect_format_error(
      open("badshape.safetensors", raw_safetensors(R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4)),
      "badshape.safetensors", "malformed shape");
  expect_format_error(
      open(
          "overlap.safetensors",
          raw_safetensors(
              R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
              12)),
      "overlap.safetensors", "tensors 'a' and 'b' overlap");
  // Empty tensors overlap nothing; unknown names ask for a FormatError too.
  const auto ok = SafetensorsFile::open(write(
      dir, "empty_ok.safetensors",
      raw_safetensors(
          R"({"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
          8)));
  CHECK(ok->to_f32("e").empty());
  expect_format_error([&] { ok->info("zz"); }, "empty_ok.safetensors", "missing tensor 'zz'");
}

TEST_CASE("HF directory: fp32 (mapped), f16 and bf16 (converted) load with exact values") {
  const auto ts = hf_tensors();
  for (const std::string dt : {"F32", "F16", "BF16"}) {
    CAPTURE(dt);
    const auto dir = hf_dir("ld_hf_" + dt, ts, dt);
    const auto w = load_hf(dir);
    const RuntimeConfig& c = w.config;
    CHECK(c.dim == D);
    CHECK(c.hidden_dim == H);
    CHECK(c.n_layers == L);
    CHECK(c.n_heads == NH);
    CHECK(c.n_kv_heads == NKV);
    CHECK(c.vocab_size == V);
    CHECK(c.max_seq_len == 64);
    CHECK(c.norm_eps == 1e-6f);
    CHECK(c.rope_theta == 10000.0f);  // default
    CHECK(c.rope_style == RopeStyle::RotateHalf);
    CHECK(!c.tied_embeddings);
    CHECK(w.source_dtype == (dt == "F32" ? "f32" : dt == "F16" ? "f16" : "bf16"));
    // The driver's --precision auto reads the same dtype from the header alone.
    CHECK(driver::peek_weight_dtype(dir) == w.source_dtype);
    CHECK(driver::peek_weight_dtype(dir / "model.safetensors") == w.source_dtype);
    check_hf_views(w, ts);
    // load_model: the directory, or a .safetensors file inside it.
    CHECK(load_model(dir / "model.safetensors").layers[1].w2.f32()[5] == w.layers[1].w2.f32()[5]);
    CHECK(w.all_f32());

    // keep_source_dtype: fp16/bf16 tensors stay views into the mapped file, in their dtype, with
    // the same values; fp32 stays fp32. f32() refuses them; to_f32_weights() converts them.
    const auto k = load_model(dir, LoadOptions{.keep_source_dtype = true});
    const TensorDType want = dt == "F32" ? TensorDType::F32 : dt == "F16" ? TensorDType::F16 : TensorDType::BF16;
    CHECK(k.layers[1].wq.dtype() == want);
    CHECK(k.token_embedding.dtype() == want);
    CHECK(k.all_f32() == (dt == "F32"));
    CHECK(k.source_dtype == w.source_dtype);
    check_hf_views(k, ts);
    if (dt != "F32") {
      CHECK(k.storage.size() == 1);  // the mapping only: no converted copies
      CHECK_THROWS_WITH_AS(k.layers[0].w1.f32(), doctest::Contains(("held as " + dt + " where fp32 is needed").c_str()),
                           Error);
      const auto f = to_f32_weights(k);
      CHECK(f.all_f32());
      CHECK(f.classifier != f.token_embedding);  // untied here
      check_hf_views(f, ts);
      CHECK(std::equal(f.layers[1].w2.f32(), f.layers[1].w2.f32() + H * D, w.layers[1].w2.f32()));
      const CpuBackend cpu(k);  // the CPU reference converts kept weights itself
      CHECK(cpu.weights().all_f32());
      check_hf_views(cpu.weights(), ts);
    }
  }
}

TEST_CASE("HF directory: tied embeddings, absent lm_head, sharded index over two files") {
  auto cfg = hf_config();
  cfg["tie_word_embeddings"] = true;
  cfg.erase("num_key_value_heads");  // defaults to num_attention_heads
  cfg["rope_theta"] = 500000.0;
  cfg["head_dim"] = D / NH;
  auto mha = hf_tensors(false);
  for (auto& t : mha)
    if (t.name.find("k_proj") != std::string::npos || t.name.find("v_proj") != std::string::npos) {
      t.shape = {D, D};
      t.values.resize(D * D, 1.0f);
    }
  auto w = load_model(hf_dir("ld_hf_tied", mha, "BF16", cfg));
  CHECK(w.config.tied_embeddings);
  CHECK(w.config.n_kv_heads == NH);
  CHECK(w.config.rope_theta == 500000.0f);
  CHECK(w.classifier == w.token_embedding);
  check_hf_views(w, mha);
  {  // kept as bf16, then converted: the classifier stays the embedding (one copy, not two)
    const auto k = load_model(hf_dir("ld_hf_tied", mha, "BF16", cfg), LoadOptions{.keep_source_dtype = true});
    CHECK(k.classifier == k.token_embedding);
    CHECK(k.classifier.dtype() == TensorDType::BF16);
    const auto f = to_f32_weights(k);
    CHECK(f.classifier == f.token_embedding);
    CHECK(f.token_embedding.dtype() == TensorDType::F32);
    check_hf_views(f, mha);
  }

  // Untied in config.json but no lm_head.weight: the classifier is the embedding.
  w = load_hf(hf_dir("ld_hf_nohead", hf_tensors(false)));
  CHECK(w.classifier == w.token_embedding);
  CHECK(w.config.tied_embeddings);

  // Sharded: index.json over two shards, each opened once.
  const auto ts = hf_tensors();
  const auto dir = test::scratch("ld_hf_sharded");
  test::write_file(dir / "config.json", hf_config().dump());
  const std::vector<Tensor> first(ts.begin(), ts.begin() + 12), second(ts.begin() + 12, ts.end());
  test::write_file(dir / "model-00001-of-00002.safetensors", safetensors(first, "F16"));
  test::write_file(dir / "model-00002-of-00002.safetensors", safetensors(second, "F16"));
  json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
  for (const auto& t : first) index["weight_map"][t.name] = "model-00001-of-00002.safetensors";
  for (const auto& t : second) index["weight_map"][t.name] = "model-00002-of-00002.safetensors";
  test::write_file(dir / "model.safetensors.index.json", index.dump());
  w = load_model(dir);
  CHECK(w.source_dtype == "f16");
  CHECK(driver::peek_weight_dtype(dir) == "f16");  // through the index
  CHECK(!driver::peek_weight_dtype(dir / "no-such-dir").has_value());
  check_hf_views(w, ts);
  w = load_model(dir, LoadOptions{.keep_source_dtype = true});  // views into both mappings
  CHECK(w.storage.size() == 2);
  check_hf_views(w, ts);

  // A shard that lacks a tensor the index puts there is named.
  index["weight_map"]["model.norm.weight"] = "model-00001-of-00002.safetensors";
  test::write_file(dir / "model.safetensors.index.json", index.dump());
  expect_format_error([&] { load_model(dir); }, "model-00001-of-00002.safetensors",
                      "missing tensor 'model.norm.weight'");
  index["weight_map"]["model.norm.weight"] = "model-00003-of-00002.safetensors";
  test::write_file(dir / "model.safetensors.index.json", index.dump());
  expect_format_error([&] { load_model(dir); }, "model-00003-of-00002.safetensors", "No such file");
  // A tensor missing from the index altogether.
  index["weight_map"].erase("model.norm.weight");
  test::write_file(dir / "model.safetensors.index.json", index.dump());
  expect_format_error([&] { load_model(dir); }, "model.safetensors.index.json", "missing tensor 'model.norm.weight'");
  test::write_file(dir / "model.safetensors.index.json", "{\"weight_map\": ");
  expect_format_error([&] { load_model(dir); }, "model.safetensors.index.json", "not valid JSON");
}

TEST_CASE("HF directory: missing or mis-shaped tensors and bad config.json give FormatErrors") {
  const auto ts = hf_tensors();
  auto drop = [&](const std::string& name) {
    auto out = ts;
    std::erase_if(out, [&](const Tensor& t) { return t.name == name; });
    return out;
  };
  auto load = [](const fs::path& dir) { return [dir] { load_hf(dir); }; };
  expect_format_error(load(hf_dir("ld_hf_missing", drop("model.layers.1.mlp.up_proj.weight"))), "model.safetensors",
                      "missing tensor 'model.layers.1.mlp.up_proj.weight'");
  expect_format_error(load(hf_dir("ld_hf_nonorm", drop("model.norm.weight"))), "ld_hf_nonorm",
                      "missing tensor 'model.norm.weight'");

  auto reshaped = ts;
  for (auto& t : reshaped)
    if (t.name == "model.layers.0.mlp.down_proj.weight") t.shape = {H, D};  // transposed
  expect_format_error(load(hf_dir("ld_hf_shape", reshaped)), "model.safetensors",
                      "tensor 'model.layers.0.mlp.down_proj.weight' has shape [6,4], the config implies [4,6]");

  auto bad_config = [&](const std::string& name, auto edit) {
    auto cfg = hf_config();
    edit(cfg);
    return load(hf_dir(name, ts, "F32", cfg));
  };
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size",
                          "max_position_embeddings", "rms_norm_eps"})
    expect_format_error(bad_config(std::string("ld_hf_no_") + key, [&](json& c) { c.erase(key); }), "config.json",
                        std::string("config.json: missing key '") + key + "'");
  // Unsupported RoPE types, architectures and biases stay one-line refusals.
  expect_format_error(bad_config("ld_hf_scaling",
                                 [](json& c) {
                                   c["rope_scaling"] = {{"rope_type", "dynamic"}, {"factor", 8.0}};
                                 }),
                      "config.json", "rope_type \"dynamic\" is not supported (default, linear, llama3 or yarn)");
  expect_format_error(bad_config("ld_hf_scaling5",
                                 [](json& c) {
                                   c["rope_parameters"] = {{"rope_type", "longrope"}};
                                 }),
                      "config.json", "rope_type \"longrope\" is not supported");
  expect_format_error(bad_config("ld_hf_llama3",
                                 [](json& c) {
                                   c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
                                 }),
                      "config.json", "rope llama3 needs 'low_freq_factor'");
  expect_format_error(bad_config("ld_hf_partial",
                                 [](json& c) {
                                   c["rope_parameters"] = {{"partial_rotary_factor", 0.5}};
                                 }),
                      "config.json", "partial_rotary_factor 0.5 is not supported");
  expect_format_error(bad_config("ld_hf_partial4", [](json& c) { c["partial_rotary_factor"] = 0.25; }), "config.json",
                      "partial_rotary_factor 0.25 is not supported");
  expect_format_error(bad_config("ld_hf_type", [](json& c) { c["model_type"] = "gemma"; }), "config.json",
                      "model_type \"gemma\" is not supported");
  expect_format_error(bad_config("ld_hf_act", [](json& c) { c["hidden_act"] = "gelu"; }), "config.json",
                      "hidden_act \"gelu\" is not supported");
  expect_format_error(bad_config("ld_hf_abias", [](json& c) { c["attention_bias"] = true; }), "config.json",
                      "attention_bias true is not supported for llama");
  expect_format_error(bad_config("ld_hf_mbias", [](json& c) { c["mlp_bias"] = true; }), "config.json",
                      "mlp_bias true is not supported");
  expect_format_error(bad_config("ld_hf_swa",
                                 [](json& c) {
                                   c["model_type"] = "qwen2";
                                   c["use_sliding_window"] = true;
                                 }),
                      "config.json", "use_sliding_window true is not supported for qwen2");
  // An explicit head_dim is read; the tensors must then have its shapes.
  expect_format_error(bad_config("ld_hf_headdim", [](json& c) { c["head_dim"] = 4; }), "model.safetensors",
                      "tensor 'model.layers.0.self_attn.q_proj.weight' has shape [4,4], the config implies [8,4]");
  {
    auto with_obias = ts;
    with_obias.push_back({"model.layers.0.self_attn.o_proj.bias", {D}, std::vector<float>(D, 0.5f)});
    expect_format_error(load(hf_dir("ld_hf_obias", with_obias)), "model.safetensors",
                        "tensor 'model.layers.0.self_attn.o_proj.bias' is not supported");
  }
  expect_format_error(bad_config("ld_hf_heads", [](json& c) { c["num_attention_heads"] = 3; }), "config.json",
                      "not divisible by n_heads 3");
  expect_format_error(bad_config("ld_hf_str", [](json& c) { c["hidden_size"] = "4"; }), "config.json",
                      "key 'hidden_size' is not an int");
  expect_format_error(bad_config("ld_hf_eps", [](json& c) { c["rms_norm_eps"] = "tiny"; }), "config.json",
                      "key 'rms_norm_eps' is not a number");
  expect_format_error(bad_config("ld_hf_tie", [](json& c) { c["tie_word_embeddings"] = 1; }), "config.json",
                      "'tie_word_embeddings' is not a boolean");

  const auto nojson = test::scratch("ld_hf_badjson");
  test::write_file(nojson / "config.json", "{\"hidden_size\": 4,");
  expect_format_error(load(nojson), "config.json", "not valid JSON");
  const auto nocfg = test::scratch("ld_hf_nocfg");
  expect_format_error(load(nocfg), "config.json", "cannot open");
  const auto noweights = test::scratch("ld_hf_noweights");
  test::write_file(noweights / "config.json", hf_config().dump());
  expect_format_error(load(noweights), "ld_hf_noweights", "neither model.safetensors nor model.safetensors.index.json");
}

// ---- numeric limits, extents, finiteness, shard paths (docs/reliability.md) --------------------

TEST_CASE("every dimension is bounded at parse time, and size arithmetic is overflow-checked") {
  const auto dir = test::scratch("ld_limits");
  // A 40-byte llama2.c file whose header is otherwise consistent: dim 2^30 is named, not sized.
  std::string h;
  for (int x : {1 << 30, 4, 1, 1 << 29, 1 << 29, 5, 3}) put<std::int32_t>(h, x);
  h += std::string(12, '\0');
  const auto bin = write(dir, "dim30.bin", h);
  expect_format_error([&] { load_model(bin); }, "dim30.bin", "dim 1073741824 is above the supported maximum 65536");
  // The driver validates the file before its memory estimate (which computed n_params() from the
  // header), so the file is reported, not the memory it would need.
  CHECK_THROWS_AS(driver::validated_config(bin), FormatError);
  for (auto [index, value, what] : {std::tuple{1, 1 << 19, "hidden_dim 524288"},
                                    {2, 5000, "n_layers 5000"},
                                    {5, 1 << 23, "vocab_size 8388608"},
                                    {6, 1 << 25, "max_seq_len 33554432"}}) {
    std::string b = llama2c_file(false, false);
    std::memcpy(b.data() + 4 * index, &value, 4);
    expect_format_error([&] { load_model(write(dir, "big.bin", b)); }, "big.bin",
                        std::string(what) + " is above the supported maximum");
  }
  // config.json: the key is named.
  auto cfg = hf_config();
  cfg["hidden_size"] = 1 << 30;
  expect_format_error([&] { load_hf(hf_dir("ld_limits_hf", hf_tensors(), "F32", cfg)); }, "config.json",
                      "key 'hidden_size' 1073741824 is above the supported maximum 65536");
  cfg = hf_config();
  cfg["vocab_size"] = 18446744073709551615ull;  // once read as -1
  expect_format_error([&] { load_hf(hf_dir("ld_limits_hf", hf_tensors(), "F32", cfg)); }, "config.json",
                      "key 'vocab_size' is not an int (got 18446744073709551615)");
  cfg = hf_config();
  cfg["rms_norm_eps"] = 1e300;  // no float holds it
  expect_format_error([&] { load_hf(hf_dir("ld_limits_hf", hf_tensors(), "F32", cfg)); }, "config.json",
                      "key 'rms_norm_eps' is out of range (got 1e+300)");
  cfg = hf_config();
  cfg["rope_theta"] = 0;
  expect_format_error([&] { load_hf(hf_dir("ld_limits_hf", hf_tensors(), "F32", cfg)); }, "config.json",
                      "rope_theta 0.000000 is not a positive finite number");

  // n_params() is checked arithmetic: a shape past the limits (never validated) throws instead of
  // overflowing; the largest valid shape fits.
  RuntimeConfig c;
  c.dim = 1 << 30, c.hidden_dim = 1 << 30, c.n_layers = 1 << 20, c.n_heads = 1, c.n_kv_heads = 1;
  c.vocab_size = 1 << 30, c.max_seq_len = 1;
  CHECK_THROWS_WITH_AS(c.n_params(), "invalid model config: the parameter count overflows a 64-bit integer",
                       ConfigError);
  c.dim = ConfigLimits::max_dim, c.hidden_dim = ConfigLimits::max_hidden_dim, c.n_layers = ConfigLimits::max_layers;
  c.n_heads = c.n_kv_heads = 512, c.vocab_size = ConfigLimits::max_vocab_size,
  c.max_seq_len = ConfigLimits::max_seq_len;
  c.validate();
  CHECK(c.n_params() > (std::int64_t(1) << 45));
  CHECK(cpu_memory_need(c, c.max_seq_len, c.n_layers).weights == std::uint64_t(c.n_params()) * 4);
}

TEST_CASE("weight views carry extents, checked where weights are bound") {
  auto w = test::random_model(test::small_config());
  check_weights(w);
  // A short buffer for layers[1].wq: refused by name before anything reads it.
  std::vector<float> short_buf(100, 0.0f);
  w.layers[1].wq = std::span<const float>(short_buf);
  CHECK_THROWS_WITH_AS(check_weights(w), "weights: layers[1].wq holds 100 elements, the config needs 1024",
                       ConfigError);
  CHECK_THROWS_WITH_AS(CpuBackend{w}, "weights: layers[1].wq holds 100 elements, the config needs 1024", ConfigError);
  w = test::random_model(test::small_config());
  w.layers.pop_back();
  CHECK_THROWS_WITH_AS(check_weights(w), "weights: 3 layers of weights for a config of 4 layers", ConfigError);
  w = test::random_model(test::small_config());
  w.final_norm = WeightView();
  CHECK_THROWS_WITH_AS(CpuBackend{w}, "weights: final_norm is missing (a null view)", ConfigError);
  // A view never reads past its extent, whatever the caller asks.
  const std::vector<float> four{1, 2, 3, 4};
  const WeightView v = std::span<const float>(four);
  CHECK(v.size() == 4);
  float out[4];
  v.to_f32(1, 3, out);
  CHECK(out[2] == 4.0f);
  CHECK_THROWS_WITH_AS(v.to_f32(2, 3, out), "weight read of elements [2, 5) is outside the tensor's 4 elements", Error);
  CHECK_THROWS_AS(v.at(-1), Error);
  CHECK(WeightView(four.data()).size() == WeightView::kUnknownSize);  // a bare pointer: trusted, unchecked
  // The loaders set every extent.
  const auto dir = test::scratch("ld_extents");
  for (const auto& m :
       {load_model(write(dir, "m.bin", llama2c_file(false, false))), load_hf(hf_dir("ld_ext_hf", hf_tensors(), "BF16")),
        load_hf(hf_dir("ld_ext_hf", hf_tensors(), "BF16"), LoadOptions{.keep_source_dtype = true})})
    for_each_named_weight(m, [&](const std::string& name, const WeightView& t, std::int64_t n) {
      CAPTURE(name);
      CHECK(t.size() == n);
    });
}

TEST_CASE("non-finite weights are found at load, named; non-finite logits fail in one line") {
  const auto dir = test::scratch("ld_finite");
  // A llama2.c file whose embedding is all NaN: loads (the bytes are well-formed), then
  // check_finite names the tensor and element.
  std::string b = llama2c_file(false, false);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (int i = 0; i < V * D; ++i) std::memcpy(b.data() + 28 + 4 * i, &nan, 4);
  const auto w = load_model(write(dir, "nan.bin", b));
  CHECK(find_non_finite(w).has_value());
  expect_format_error([&] { check_finite(w); }, "nan.bin",
                      "weight token_embedding[0] is nan: the checkpoint is corrupt (no output could be trusted)");
  // An Inf deep inside a layer of a bf16 checkpoint, in its own dtype and converted.
  auto ts = hf_tensors();
  for (auto& t : ts)
    if (t.name == "model.layers.1.mlp.down_proj.weight") t.values[17] = -inf;
  const auto bad = hf_dir("ld_finite_hf", ts, "BF16");
  for (bool keep : {false, true}) {
    const auto m = load_hf(bad, LoadOptions{.keep_source_dtype = keep});
    const auto f = find_non_finite(m);
    REQUIRE(f.has_value());
    CHECK(f->tensor == "layers[1].w2");
    CHECK(f->index == 17);
    expect_format_error([&] { check_finite(m); }, "ld_finite_hf", "weight layers[1].w2[17] is -inf");
  }
  ts = hf_tensors();
  for (auto& t : ts)
    if (t.name == "lm_head.weight") t.values.back() = inf;
  CHECK(find_non_finite(load_hf(hf_dir("ld_finite_cls", ts, "BF16")))->tensor == "classifier");
  // fp16 bits: exponent 0x1F is Inf or NaN, 0x7BFF (65504) is finite.
  std::vector<std::uint16_t> half(9000, 0x7BFF);
  CHECK(detail::first_non_finite(WeightView(half.data(), TensorDType::F16, 9000), 9000) == -1);
  half[8191] = 0xFE00;
  CHECK(detail::first_non_finite(WeightView(half.data(), TensorDType::F16, 9000), 9000) == 8191);
  // Finite models pass, large ones on every thread (the scan is chunked).
  CHECK_NOTHROW(check_finite(load_hf(hf_dir("ld_finite_ok", hf_tensors(), "F16"))));
  auto big = test::random_model(test::small_config());
  RuntimeConfig bc = big.config;
  bc.vocab_size = 1 << 16;
  std::vector<float> huge(std::size_t(bc.vocab_size) * bc.dim, 0.25f);
  huge[huge.size() - 3] = nan;
  big.config = bc;
  big.token_embedding = big.classifier = std::span<const float>(huge);
  const auto hit = find_non_finite(big);
  REQUIRE(hit.has_value());
  CHECK(hit->tensor == "token_embedding");
  CHECK(hit->index == std::int64_t(huge.size()) - 3);

  std::vector<float> logits{0.5f, 1.0f, -2.0f};
  CHECK_NOTHROW(check_finite_logits(logits));
  logits[1] = nan;
  CHECK_THROWS_WITH_AS(check_finite_logits(logits),
                       "the logits are not finite (nan at token id 1 of 3): the weights hold NaN/Inf or the "
                       "activations overflowed (check the weights with check_finite(), or use fp32)",
                       Error);
  logits[1] = 1.0f, logits[2] = -inf;
  CHECK_THROWS_WITH_AS(check_finite_logits(logits), doctest::Contains("(-inf at token id 2 of 3)"), Error);
  // Through a pipeline: an all-NaN embedding gives NaN logits, which the check names.
  const auto model = load_model(write(dir, "nan2.bin", b));
  Pipeline<RuntimeConfig, policy::Dense, ContiguousLayout, CpuBackend> pipe{CpuBackend{model}};
  const std::vector<std::int32_t> ids{1, 2, 3};
  CHECK_THROWS_WITH_AS(check_finite_logits(pipe.prefill(ids)), doctest::Contains("the logits are not finite (nan"),
                       Error);
}

TEST_CASE("a sharded index names files inside the model directory only") {
  namespace fs = std::filesystem;
  const auto ts = hf_tensors();
  const auto root = test::scratch("ld_shards");
  const auto dir = root / "model";
  fs::create_directories(dir);
  test::write_file(dir / "config.json", hf_config().dump());
  test::write_file(dir / "model-1.safetensors", safetensors(ts, "F32"));
  // A complete, valid checkpoint outside the directory: the index must not reach it.
  test::write_file(root / "outside.safetensors", safetensors(ts, "F32"));
  auto index_to = [&](const std::string& file) {
    json index = {{"weight_map", json::object()}};
    for (const auto& t : ts) index["weight_map"][t.name] = file;
    test::write_file(dir / "model.safetensors.index.json", index.dump());
  };
  index_to("model-1.safetensors");
  CHECK_NOTHROW(load_model(dir));
  index_to("../outside.safetensors");
  expect_format_error(
      [&] { load_model(dir); }, "model.safetensors.index.json",
      "shard '../outside.safetensors' has a '..' component (shards must lie inside the model directory)");
  index_to((root / "outside.safetensors").string());
  expect_format_error([&] { load_model(dir); }, "model.safetensors.index.json", "is an absolute path");
  index_to("sub/../../outside.safetensors");
  expect_format_error([&] { load_model(dir); }, "model.safetensors.index.json", "has a '..' component");
  index_to("");
  expect_format_error([&] { load_model(dir); }, "model.safetensors.index.json", "shard '' is not a file name");
  // A symlink inside the directory that leads out of it.
  fs::create_symlink(root / "outside.safetensors", dir / "link.safetensors");
  index_to("link.safetensors");
  expect_format_error([&] { load_model(dir); }, "model.safetensors.index.json", "outside the model directory");
  fs::create_directory_symlink(root, dir / "up");
  index_to("up/outside.safetensors");
  expect_format_error([&] { load_model(dir); }, "model.safetensors.index.json", "outside the model directory");
  // Links that stay inside, and a subfolder, are fine.
  fs::create_directories(dir / "shards");
  test::write_file(dir / "shards" / "a.safetensors", safetensors(ts, "F32"));
  fs::create_symlink("shards/a.safetensors", dir / "inner.safetensors");
  index_to("inner.safetensors");
  CHECK_NOTHROW(load_model(dir));
  index_to("shards/a.safetensors");
  CHECK_NOTHROW(load_model(dir));
  // The Hugging Face cache: every file of a snapshot links into one blobs folder, the index too.
  const auto hub = root / "hub", blobs = hub / "blobs", snap = hub / "snapshots" / "abc";
  fs::create_directories(blobs);
  fs::create_directories(snap);
  test::write_file(blobs / "cfg", hf_config().dump());
  test::write_file(blobs / "s1", safetensors(ts, "F32"));
  json index = {{"weight_map", json::object()}};
  for (const auto& t : ts) index["weight_map"][t.name] = "model-1.safetensors";
  test::write_file(blobs / "idx", index.dump());
  fs::create_symlink("../../blobs/cfg", snap / "config.json");
  fs::create_symlink("../../blobs/s1", snap / "model-1.safetensors");
  fs::create_symlink("../../blobs/idx", snap / "model.safetensors.index.json");
  CHECK_NOTHROW(load_model(snap));
}
