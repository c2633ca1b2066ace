// SPDX-License-Identifier: MIT
#pragma once
#include <stdexcept>
#include <string>

namespace lazyllm {

/// Base of every error the library throws. what() is one line a user can act on.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A model configuration is inconsistent (e.g. dim not divisible by n_heads).
class ConfigError : public Error {
 public:
  using Error::Error;
};

/// A checkpoint, tokenizer or config file is missing, malformed or does not match the config.
/// The message always names the file and the problem.
class FormatError : public Error {
 public:
  FormatError(const std::string& file, const std::string& problem)
      : Error(file + ": " + problem), file_(file) {}
  const std::string& file() const noexcept { return file_; }

 private:
  std::string file_;
};

/// Bad arguments to a public API call (prompt longer than the context, bad schedule, ...).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

}  // namespace lazyllm
