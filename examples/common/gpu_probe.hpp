// SPDX-License-Identifier: MIT
// Whether a GPU is there, and its memory, for the command-line programs (gpu_probe.cpp: the CUDA
// runtime when the build has the CUDA backend, else "no GPU").
#pragma once
#include <cstdint>
#include <string>

namespace lazyllm::cli {

/// True when this build has the CUDA backend and a CUDA device is visible.
bool gpu_available();
/// cudaMemGetInfo of the current device; false when there is no CUDA build or no GPU.
bool gpu_memory_info(std::uint64_t& free_bytes, std::uint64_t& total_bytes);
/// The current device's name ("" without a GPU).
std::string gpu_name();
/// Why the CUDA backend cannot run here, in one line ("" when it can): no CUDA build, no device,
/// or the runtime's own reason (e.g. the driver is older than the runtime).
const char* gpu_unavailable_reason();

}  // namespace lazyllm::cli
