// SPDX-License-Identifier: MIT
// LAZYLLM_HOST_DEVICE: marks a function that host code and CUDA device code both call (the
// percentile rank, the K/V and Aux address computations); empty outside nvcc.
#pragma once

#if defined(__CUDACC__)
#define LAZYLLM_HOST_DEVICE __host__ __device__
#else
#define LAZYLLM_HOST_DEVICE
#endif
