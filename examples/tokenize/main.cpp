// SPDX-License-Identifier: MIT
// lazyllm-tokenize: the token ids of a text with any tokenizer lazyllm reads.
// Usage: lazyllm-tokenize -h
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../common/cli.hpp"
#include "lazyllm/text/tokenizer.hpp"

namespace {

using namespace lazyllm;
using cli::UsageError;

const char* kUsage = R"(usage: lazyllm-tokenize -m MODEL (-p TEXT | -f FILE) [options]

  -m, --model PATH      a model directory (its tokenizer.model, tokenizer.json or tokenizer.bin,
                        in that order) or a tokenizer file: tokenizer.json (Hugging Face,
                        byte-level BPE: Llama 3, Qwen2/2.5/3), tokenizer.model (SentencePiece:
                        Llama 2, Mistral) or a llama2.c tokenizer.bin
  -p, --prompt TEXT     the text to tokenize
  -f, --file FILE       read the text from FILE ('-': standard input)
  --ids                 print only the ids, as a list: [128000, 9906, 1917]
  --no-bos              do not add the tokenizer's leading special tokens (BOS)
  --no-parse-special    encode special-token text such as <|eot_id|> as ordinary text
                        (tokenizer.json; by default it becomes the special token)
  --jsonl               batch: every line of the input is a JSON string; print the JSON array
                        of its ids on one line each
  --timing              on stderr: the number of tokens and how long loading the tokenizer and
                        encoding took
  -h, --help            this text
Without --ids or --jsonl: one line per token, its id and its text (quoted; \n, \t, \r, \\, \'
and bytes that are not UTF-8, as \xNN, escaped).
Exit codes: 0 success, 2 bad usage, 1 unreadable or malformed input.
)";

std::string read_input(const std::string& path) {
  if (path == "-") return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open file");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw Error(path + ": read error");
  return s;
}

/// `piece` for one display line: quotes, backslashes and control characters escaped, bytes that
/// are not part of a valid UTF-8 character as \xNN.
std::string escape(const std::string& piece) {
  std::string out;
  char buf[8];
  for (std::size_t i = 0; i < piece.size();) {
    const auto c = static_cast<unsigned char>(piece[i]);
    std::size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
    for (std::size_t k = 1; n && k < n; ++k)
      if (i + k >= piece.size() || (static_cast<unsigned char>(piece[i + k]) & 0xC0) != 0x80) n = 0;
    if (n == 1) {
      if (c == '\n')
        out += "\\n";
      else if (c == '\t')
        out += "\\t";
      else if (c == '\r')
        out += "\\r";
      else if (c == '\\')
        out += "\\\\";
      else if (c == '\'')
        out += "\\'";
      else if (c < 0x20 || c == 0x7F) {
        std::snprintf(buf, sizeof buf, "\\x%02X", c);
        out += buf;
      } else {
        out += static_cast<char>(c);
      }
      ++i;
    } else if (n > 1) {
      out.append(piece, i, n);
      i += n;
    } else {
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
      ++i;
    }
  }
  return out;
}

int run(int argc, char** argv) {
  std::string model, prompt, file;
  bool have_prompt = false, ids_only = false, jsonl = false, timing = false;
  EncodeOptions opt;
  for (cli::Args args(argc, argv); args.next();) {
    const std::string& a = args.flag();
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "-m" || a == "--model") {
      model = args.value();
    } else if (a == "-p" || a == "--prompt") {
      prompt = args.value();
      have_prompt = true;
    } else if (a == "-f" || a == "--file") {
      file = args.value();
    } else if (a == "--ids") {
      ids_only = true;
    } else if (a == "--no-bos") {
      opt.add_bos = false;
    } else if (a == "--no-parse-special") {
      opt.parse_special = false;
    } else if (a == "--jsonl") {
      jsonl = true;
    } else if (a == "--timing") {
      timing = true;
    } else {
      throw UsageError("unknown option '" + a + "' (see -h)");
    }
  }
  if (model.empty()) throw UsageError("-m MODEL is required (a model directory or a tokenizer file; see -h)");
  if (have_prompt == !file.empty()) throw UsageError("give the text with exactly one of -p TEXT and -f FILE");
  if (jsonl && have_prompt) throw UsageError("--jsonl reads its lines from -f FILE");
  if (jsonl && ids_only) throw UsageError("--jsonl prints ids already; drop --ids");

  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  const auto t_load = Clock::now();
  const Tokenizer tok = load_tokenizer(find_tokenizer(model));
  const auto t_loaded = Clock::now();
  const std::string text = have_prompt ? prompt : read_input(file);
  std::size_t n_tokens = 0;
  auto report = [&](double encode_ms) {
    if (timing)
      std::fprintf(stderr, "lazyllm-tokenize: %zu tokens; tokenizer loaded in %.1f ms, %zu bytes encoded in %.1f ms\n",
                   n_tokens, ms(t_load, t_loaded), text.size(), encode_ms);
  };

  if (jsonl) {
    std::size_t line_no = 0, begin = 0;
    std::string out;
    double encode_ms = 0;
    while (begin < text.size()) {
      std::size_t end = text.find('\n', begin);
      if (end == std::string::npos) end = text.size();
      ++line_no;
      const std::string_view line(text.data() + begin, end - begin);
      begin = end + 1;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception&) {
        throw Error((file == "-" ? std::string("standard input") : file) + ": line " + std::to_string(line_no) +
                    " is not JSON");
      }
      if (!j.is_string())
        throw Error((file == "-" ? std::string("standard input") : file) + ": line " + std::to_string(line_no) +
                    " is not a JSON string");
      const auto t0 = Clock::now();
      const auto ids = tok.encode(j.get_ref<const std::string&>(), opt);
      encode_ms += ms(t0, Clock::now());
      n_tokens += ids.size();
      out = nlohmann::json(ids).dump();
      out += '\n';
      std::fwrite(out.data(), 1, out.size(), stdout);
    }
    report(encode_ms);
    return 0;
  }

  const auto t_encode = Clock::now();
  const std::vector<std::int32_t> ids = tok.encode(text, opt);
  n_tokens = ids.size();
  report(ms(t_encode, Clock::now()));
  if (ids_only) {
    std::string out = "[";
    for (std::size_t i = 0; i < ids.size(); ++i) {
      if (i) out += ", ";
      out += std::to_string(ids[i]);
    }
    out += "]\n";
    std::fwrite(out.data(), 1, out.size(), stdout);
    return 0;
  }
  std::string out;
  char buf[32];
  for (std::int32_t id : ids) {
    std::snprintf(buf, sizeof buf, "%6d -> '", id);
    out += buf;
    out += escape(tok.piece(id));
    out += "'\n";
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return lazyllm::cli::run_main("lazyllm-tokenize", [&] { return run(argc, argv); });
}
