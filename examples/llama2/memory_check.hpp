// SPDX-License-Identifier: MIT
// The driver's memory check before the model loads (memory_check.cpp): what the run needs for the
// requested context on its backend, against what is available.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "lazyllm/backend/memory_need.hpp"
#include "options.hpp"

namespace lazyllm::driver {

/// What was checked (for --json). `known` is false when the model's shape could not be read (the
/// loader then reports the file's problem).
struct MemoryCheck {
  bool known = false;
  int n_ctx = 0, aux_layers = 0;
  bool enforced = true;
  MemoryNeed host;
  std::optional<std::uint64_t> host_available;
  std::string host_source;
  std::optional<MemoryNeed> gpu;  // --backend cuda
  std::optional<std::uint64_t> gpu_free;
  std::string gpu_source;
};

/// Before loading: the model's header is validated (a FormatError for a corrupt file), then the
/// weights, KV cache, Aux Cache and activations for the requested context
/// must fit in available RAM (and, for CUDA, in free GPU memory). Throws Error with the numbers.
/// Also settles `--precision auto` (o.precision becomes fp32, fp16 or bf16; see --help): the
/// checkpoint's dtype, or bf16 when that is fp32 and only bf16 fits in GPU memory.
MemoryCheck check_memory(Options& o, const std::string& chosen);

}  // namespace lazyllm::driver
