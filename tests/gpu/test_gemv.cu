// The decode GEMV (gemv.cuh): every input and epilogue hook against the CPU reference at
// Llama-2-7B shapes, 1..kGemvMaxRows rows, plus shapes that exercise the unroll tail; and the
// fused RMSNorm input bit-identical to rmsnorm_kernel followed by a plain bf16 input.
#include <cmath>

#include "gpu_util.hpp"
#include "lazyllm/backend/cpu/ops.hpp"
#include "lazyllm/backend/cuda/gemv.cuh"
#include "lazyllm/backend/cuda/kernels.cuh"

using namespace lazyllm;
using namespace lazyllm::test;
namespace gv = lazyllm::gpu::gemv;

namespace {
// Bounds (normalised error max|a-b| / max|b|):
constexpr double kBf16Out = 1e-2;  // a bf16 output: one rounding (2^-9 relative) plus fp32 order
constexpr double kFp32Out = 1e-4;  // fp32 dot products of identical bf16 inputs, another order

struct Case {
  int k, items;
  const char* what;
};

/// xn = bf16(rmsnorm(x) * w), as the CPU reference computes it.
std::vector<float> cpu_norm_rows(const std::vector<float>& x, const std::vector<float>& w, int rows, int k) {
  std::vector<float> xn(std::size_t(rows) * k);
  for (int r = 0; r < rows; ++r)
    cpu::rmsnorm(xn.data() + std::size_t(r) * k, x.data() + std::size_t(r) * k, w.data(), k, 1e-5f);
  return round_bf16(xn);
}
}  // namespace

TEST_CASE("gemv: RmsNormRows -> StoreBf16 / StoreF32 (QKV, classifier) vs cpu::rmsnorm + cpu::matmul") {
  if (!have_gpu()) return;
  const Case cases[] = {{4096, 3 * 4096, "qkv 7B"}, {4096, 32000, "classifier 7B"}, {64, 37, "tiny"}, {72, 5, "tail"}};
  for (const auto& cs : cases)
    for (int rows = 1; rows <= gpu::kGemvMaxRows; ++rows) {
      CAPTURE(cs.what);
      CAPTURE(rows);
      const auto w = round_bf16(randn(std::size_t(cs.items) * cs.k, 11, 0.02f));
      const auto x = randn(std::size_t(rows) * cs.k, 12, 2.0f);
      auto nw = randn(std::size_t(cs.k), 13, 0.1f);
      for (auto& v : nw) v += 1.0f;
      auto dw = to_device_bf16(w);
      auto dx = to_device(x);
      auto dnw = to_device(nw);
      const auto xn = cpu_norm_rows(x, nw, rows, cs.k);
      std::vector<float> ref(std::size_t(rows) * cs.items);
      cpu::matmul(ref.data(), xn.data(), w.data(), rows, cs.k, cs.items);

      gpu::DeviceBuffer<gpu::bf16> yb(std::size_t(rows) * cs.items);
      gpu::DeviceBuffer<float> yf(std::size_t(rows) * cs.items);
      const gv::RmsNormRows in{dx.get(), cs.k, dnw.get(), 1e-5f};
      gpu::gemv::run(in, dw.get(), cs.k, cs.items, rows, gv::StoreBf16{yb.get(), cs.items}, nullptr);
      gpu::gemv::run(in, dw.get(), cs.k, cs.items, rows, gv::StoreF32{yf.get(), cs.items}, nullptr);
      LAZYLLM_CUDA_CHECK(cudaDeviceSynchronize());
      const auto gb = bf16_to_host(yb.get(), ref.size());
      const auto gf = to_host(yf.get(), ref.size());
      CHECK(norm_err(gb, ref) < kBf16Out);
      CHECK(norm_err(gf, ref) < kFp32Out * 10);  // xn may differ from the CPU's by one bf16 ulp

      // The fused norm is rmsnorm_kernel's: norm first, then Bf16Rows, gives the same bits.
      gpu::DeviceBuffer<gpu::bf16> dxn(std::size_t(rows) * cs.k);
      gpu::detail::launch_rmsnorm(dx.get(), dnw.get(), rows, cs.k, 1e-5f, dxn.get(), nullptr);
      gpu::DeviceBuffer<float> yf2(std::size_t(rows) * cs.items);
      gpu::gemv::run(gv::Bf16Rows{dxn.get(), cs.k}, dw.get(), cs.k, cs.items, rows, gv::StoreF32{yf2.get(), cs.items},
                     nullptr);
      CHECK(to_host(yf2.get(), ref.size()) == gf);
    }
}

TEST_CASE("gemv: Bf16Rows -> AddF32 (Wo, W2 with the residual add) vs cpu::matmul, strided input rows") {
  if (!have_gpu()) return;
  const Case cases[] = {
      {4096, 4096, "wo 7B"}, {11008, 4096, "w2 7B (48+ KiB of staged rows at 4 rows)"}, {72, 9, "tail"}};
  for (const auto& cs : cases)
    for (int rows = 1; rows <= gpu::kGemvMaxRows; ++rows) {
      CAPTURE(cs.what);
      CAPTURE(rows);
      const int ld = cs.k + 8;  // input rows with padding between them
      const auto w = round_bf16(randn(std::size_t(cs.items) * cs.k, 21, 0.02f));
      const auto a = round_bf16(randn(std::size_t(rows) * ld, 22, 1.0f));
      const auto x0 = randn(std::size_t(rows) * cs.items, 23, 3.0f);
      auto dw = to_device_bf16(w);
      auto da = to_device_bf16(a);
      auto dx = to_device(x0);
      gpu::gemv::run(gv::Bf16Rows{da.get(), ld}, dw.get(), cs.k, cs.items, rows, gv::AddF32{dx.get(), cs.items},
                     nullptr);
      const auto got = to_host(dx.get(), x0.size());
      std::vector<float> ref(x0.size()), ar(std::size_t(rows) * cs.k);
      for (int r = 0; r < rows; ++r)
        std::copy_n(a.data() + std::size_t(r) * ld, cs.k, ar.data() + std::size_t(r) * cs.k);
      cpu::matmul(ref.data(), ar.data(), w.data(), rows, cs.k, cs.items);
      std::vector<float> delta(ref.size());
      for (std::size_t i = 0; i < ref.size(); ++i) delta[i] = got[i] - x0[i];
      CHECK(norm_err(delta, ref) < kFp32Out);  // the product, added in fp32 without rounding to bf16
    }
}

TEST_CASE("gemv: RmsNormRows -> SwiGlu (fused gate/up, padded hidden) vs cpu::matmul + cpu::swiglu") {
  if (!have_gpu()) return;
  const Case cases[] = {{4096, 11008, "gate/up 7B"}, {64, 176, "tiny"}, {72, 24, "tail"}};
  for (const auto& cs : cases)
    for (int rows = 1; rows <= gpu::kGemvMaxRows; ++rows) {
      CAPTURE(cs.what);
      CAPTURE(rows);
      const int hid = cs.items;
      const auto w = round_bf16(randn(std::size_t(2 * hid) * cs.k, 31, 0.03f));
      const auto x = randn(std::size_t(rows) * cs.k, 32, 2.0f);
      std::vector<float> nw(std::size_t(cs.k), 1.0f);
      auto dw = to_device_bf16(w);
      auto dx = to_device(x);
      auto dnw = to_device(nw);
      gpu::DeviceBuffer<gpu::bf16> h(std::size_t(rows) * hid);
      gpu::gemv::run(gv::RmsNormRows{dx.get(), cs.k, dnw.get(), 1e-5f}, dw.get(), cs.k, hid, rows,
                     gv::SwiGlu{h.get(), hid, hid}, nullptr);
      const auto got = bf16_to_host(h.get(), std::size_t(rows) * hid);
      const auto xn = cpu_norm_rows(x, nw, rows, cs.k);
      std::vector<float> gu(std::size_t(rows) * 2 * hid), ref(std::size_t(rows) * hid);
      cpu::matmul(gu.data(), xn.data(), w.data(), rows, cs.k, 2 * hid);
      gu = round_bf16(gu);  // the GEMM path rounds gate and up to bf16 before SwiGLU
      for (int r = 0; r < rows; ++r) {
        std::copy_n(gu.data() + std::size_t(r) * 2 * hid, hid, ref.data() + std::size_t(r) * hid);
        cpu::swiglu(ref.data() + std::size_t(r) * hid, gu.data() + std::size_t(r) * 2 * hid + hid, hid);
      }
      CHECK(norm_err(got, ref) < kBf16Out);
    }
}

TEST_CASE("gemv: bad arguments throw") {
  if (!have_gpu()) return;
  gpu::DeviceBuffer<gpu::bf16> w(64), y(64);
  gpu::DeviceBuffer<float> x(64);
  CHECK_THROWS_AS(gpu::gemv::run(gv::Bf16Rows{w.get(), 64}, w.get(), 64, 1, gpu::kGemvMaxRows + 1,
                                 gv::StoreBf16{y.get(), 1}, nullptr),
                  InvalidArgument);
  CHECK_THROWS_AS(gpu::gemv::run(gv::Bf16Rows{w.get(), 12}, w.get(), 12, 1, 1, gv::StoreBf16{y.get(), 1}, nullptr),
                  InvalidArgument);
}
