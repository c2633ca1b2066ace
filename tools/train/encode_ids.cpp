// SPDX-License-Identifier: MIT
// Prints the ids that lazyllm::Llama2cTokenizer gives each input line (BOS included), one line of
// comma-separated ids per input line; "\n" inside a line is written as the two characters \n.
// Used by tools/train/check_tokenizer.sh to check make_tokenizer.py's Python encoder.
// Build: g++ -std=c++20 -O2 -Iinclude tools/train/encode_ids.cpp -o build/encode_ids
#include <cstdio>
#include <iostream>
#include <string>

#include "lazyllm/text/llama2c_tokenizer.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: encode_ids tokenizer.bin < lines\n");
    return 2;
  }
  try {
    const lazyllm::Llama2cTokenizer tok(argv[1]);
    std::string line;
    while (std::getline(std::cin, line)) {
      std::string text;
      for (std::size_t i = 0; i < line.size(); ++i) {
        if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == 'n') {
          text += '\n';
          ++i;
        } else if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == '\\') {
          text += '\\';
          ++i;
        } else {
          text += line[i];
        }
      }
      const auto ids = tok.encode(text, true);
      std::string out;
      for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i) out += ',';
        out += std::to_string(ids[i]);
      }
      std::puts(out.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "encode_ids: %s\n", e.what());
    return 1;
  }
  return 0;
}
