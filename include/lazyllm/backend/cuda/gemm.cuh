// SPDX-License-Identifier: MIT
// cuBLASLt GEMM for the linear layers: y[rows, out] = x[rows, in] * W^T with W row-major
// [out, in] (the checkpoint layout), x and W bf16 or fp16, fp32 accumulation
// (CUBLAS_COMPUTE_32F), output of the input type or fp32. The heuristic's algorithm and the
// descriptors are cached per (rows, in, out, ldy, input type, output type).
#pragma once
#include <cublasLt.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "lazyllm/backend/cuda/numeric.cuh"
#include "lazyllm/backend/cuda/runtime.cuh"
#include "lazyllm/backend/cuda/tuning.cuh"

namespace lazyllm::gpu {

namespace detail {

template <class T>
struct CudaType;
template <>
struct CudaType<bf16> {
  static constexpr cudaDataType_t value = CUDA_R_16BF;
};
template <>
struct CudaType<fp16> {
  static constexpr cudaDataType_t value = CUDA_R_16F;
};
template <>
struct CudaType<float> {
  static constexpr cudaDataType_t value = CUDA_R_32F;
};

/// One cached problem shape: descriptors plus the algorithm the heuristic chose.
struct GemmPlan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  GemmPlan() = default;
  GemmPlan(const GemmPlan&) = delete;
  GemmPlan& operator=(const GemmPlan&) = delete;
  ~GemmPlan() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

}  // namespace detail

/// Owns the cuBLASLt handle, the workspace and the plan cache. Move-only.
class Gemm {
 public:
  static constexpr std::size_t kWorkspaceBytes = tuning::Gemm::kWorkspaceBytes;

  Gemm() = default;
  /// Creates the handle and the workspace (call with a device present).
  void init() {
    if (handle_) return;
    cublasLtHandle_t h = nullptr;
    LAZYLLM_CUBLAS_CHECK(cublasLtCreate(&h));
    handle_.reset(h);
    workspace_.reset(kWorkspaceBytes, "cuBLASLt workspace");
  }

  /// y[rows, out] = x[rows, in] * w[out, in]^T on `stream` (with `accumulate`: y += ...). x, w
  /// S (bf16 or fp16) row-major; y is OutT (S or float) row-major with leading dimension `ldy`
  /// (0 = out). The fp32 accumulate form is the residual add: x += W h without a 2-byte round trip.
  template <class S, class OutT>
  void run(const S* x, const S* w, OutT* y, int rows, int in, int out, cudaStream_t stream, int ldy = 0,
           bool accumulate = false) {
    if (rows <= 0) return;
    if (ldy == 0) ldy = out;
    const detail::GemmPlan& p = plan(rows, in, out, ldy, detail::CudaType<S>::value, detail::CudaType<OutT>::value);
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    // Column-major view: D[out, rows] = op(A)[out, in] * B[in, rows], A = W^T stored [in, out].
    LAZYLLM_CUBLAS_CHECK(cublasLtMatmul(handle_.get(), p.op, &alpha, w, p.a, x, p.b, &beta, y, p.d, y, p.d, &p.algo,
                                        workspace_.get(), workspace_.bytes(), stream));
  }

  std::size_t cached_plans() const { return plans_.size(); }

 private:
  struct HandleDeleter {
    void operator()(cublasLtHandle_t h) const { cublasLtDestroy(h); }
  };
  using Key = std::tuple<int, int, int, int, int, int>;

  const detail::GemmPlan& plan(int rows, int in, int out, int ldy, cudaDataType_t itype, cudaDataType_t dtype) {
    const Key key{rows, in, out, ldy, int(itype), int(dtype)};
    if (auto it = plans_.find(key); it != plans_.end()) return *it->second;
    auto p = std::make_unique<detail::GemmPlan>();
    LAZYLLM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LAZYLLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LAZYLLM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    LAZYLLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, itype, in, out, in));
    LAZYLLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, itype, in, rows, in));
    LAZYLLM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->d, dtype, out, rows, ldy));

    cublasLtMatmulPreference_t pref = nullptr;
    LAZYLLM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>, decltype(&cublasLtMatmulPreferenceDestroy)>
        pref_guard(pref, &cublasLtMatmulPreferenceDestroy);
    const std::uint64_t ws = workspace_.bytes();
    LAZYLLM_CUBLAS_CHECK(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    LAZYLLM_CUBLAS_CHECK(
        cublasLtMatmulAlgoGetHeuristic(handle_.get(), p->op, p->a, p->b, p->d, p->d, pref, 1, &result, &found));
    if (found == 0)
      throw Error(std::string("CudaBackend: cuBLASLt found no ") + (itype == CUDA_R_16F ? "fp16" : "bf16") +
                  " GEMM algorithm for rows=" + std::to_string(rows) + " in=" + std::to_string(in) +
                  " out=" + std::to_string(out));
    p->algo = result.algo;
    return *plans_.emplace(key, std::move(p)).first->second;
  }

  std::unique_ptr<std::remove_pointer_t<cublasLtHandle_t>, HandleDeleter> handle_;
  DeviceBuffer<std::uint8_t> workspace_;
  std::map<Key, std::unique_ptr<detail::GemmPlan>> plans_;
};

}  // namespace lazyllm::gpu
