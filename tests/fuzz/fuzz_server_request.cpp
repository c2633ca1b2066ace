// Fuzz target: lazyllm-server's request validation (examples/server/api.hpp) on any bytes, as
// both endpoints receive them: parse_request, then make_job (chat formats, context, vocabulary,
// schedule) and TextStream with the request's stop strings. Bad input must end in ApiError (an
// HTTP 4xx for the client); anything else escaping, a crash or a sanitizer report is a bug.
//   clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address -DLAZYLLM_WITH_SENTENCEPIECE=0 -Iinclude \
//       tests/fuzz/fuzz_server_request.cpp -o fuzz_server_request
//   ./fuzz_server_request -max_total_time=20 tests/fuzz/corpus/server_request
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../../examples/server/api.hpp"

namespace {

using namespace lazyllm;
using namespace lazyllm::server;

/// Bytes as tokens (id = byte + 3; 0..2 are <unk>, BOS, EOS): every text has an encoding, so
/// the chat formats and stop strings see whatever the input holds.
struct ByteTokenizer {
  std::vector<std::int32_t> encode(std::string_view s, bool bos) const {
    std::vector<std::int32_t> ids;
    if (bos) ids.push_back(1);
    for (const char c : s) ids.push_back(3 + static_cast<unsigned char>(c));
    return ids;
  }
  std::string decode(std::int32_t, std::int32_t id) const { return id >= 3 ? std::string(1, char(id - 3)) : std::string(); }
  std::string decode(std::span<const std::int32_t> ids) const {
    std::string s;
    for (const auto id : ids) s += decode(0, id);
    return s;
  }
  std::int32_t vocab_size() const { return 259; }
  std::int32_t bos_id() const { return 1; }
  std::int32_t eos_id() const { return 2; }
};

const RuntimeConfig& config() {
  static const RuntimeConfig c = [] {
    RuntimeConfig r;
    r.dim = 32, r.hidden_dim = 48, r.n_layers = 6, r.n_heads = 4, r.n_kv_heads = 4, r.vocab_size = 259;
    r.max_seq_len = 512;
    return r;
  }();
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Tokenizer tok{ByteTokenizer{}};
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (const Endpoint ep : {Endpoint::Completions, Endpoint::ChatCompletions}) {
    try {
      const ApiRequest r = parse_request(body, ep);
      for (const char* format : {"llama2", "qa"}) {
        JobContext ctx;
        ctx.config = &config();
        ctx.n_ctx = 256;
        ctx.tokenizer = &tok;
        ctx.chat_format = &chat_format(format);
        ctx.default_schedule = "gentle";
        const JobSpec job = make_job(r, ctx);
        if (job.prompt.empty() || job.max_tokens < 1 || int(job.prompt.size()) + job.max_tokens > ctx.n_ctx) __builtin_trap();
        // The prompt's own bytes as generated tokens, through the stop strings.
        TextStream ts(&tok, job.prompt.back(), r.stop);
        std::string out;
        for (const auto id : job.prompt) out += ts.add(id);
        out += ts.flush();
        if (out.size() > ts.text().size()) __builtin_trap();
      }
    } catch (const ApiError&) {
    }
  }
  return 0;
}
