// The NCCL communicator (dist/nccl_comm.cuh) on the visible GPUs, one thread per GPU: sums and
// broadcasts over groups of 1, 2, 4 and 8 GPUs (as many as there are), the same bits on every
// rank, host values broadcast from rank 0, and failures that abort the group instead of hanging.
#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "lazyllm/dist/nccl_comm.cuh"

using namespace lazyllm;

namespace {

int visible_gpus() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

template <class T>
struct DeviceArray {
  T* p = nullptr;
  std::size_t n = 0;
  explicit DeviceArray(const std::vector<T>& h) : n(h.size()) {
    LAZYLLM_CUDA_RT_CHECK(cudaMalloc(&p, std::max<std::size_t>(n, 1) * sizeof(T)));
    LAZYLLM_CUDA_RT_CHECK(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~DeviceArray() { cudaFree(p); }
  std::span<T> span() { return {p, n}; }
  std::vector<T> host() const {
    std::vector<T> h(n);
    LAZYLLM_CUDA_RT_CHECK(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
};

}  // namespace

TEST_CASE("nccl: NCCL_NVLS_ENABLE other than 0 is refused, before any device is touched") {
  const char* was = std::getenv("NCCL_NVLS_ENABLE");
  const std::string saved = was ? was : "";
  ::setenv("NCCL_NVLS_ENABLE", "1", 1);
  CHECK_THROWS_WITH_AS(
      NcclGroup({0}), "NCCL_NVLS_ENABLE=1: lazyllm runs NCCL with NVLink multicast (NVLS) off; unset it or set it to 0",
      InvalidArgument);
  if (was)
    ::setenv("NCCL_NVLS_ENABLE", saved.c_str(), 1);
  else
    ::unsetenv("NCCL_NVLS_ENABLE");
}

TEST_CASE("nccl: all_reduce_sum and broadcast over 1, 2, 4, 8 GPUs: exact sums, the same bits on every rank") {
  const int gpus = visible_gpus();
  if (gpus == 0) {
    MESSAGE("SKIPPED: no CUDA device");
    return;
  }
  int ran = 0;
  for (const int k : {1, 2, 4, 8}) {
    if (k > gpus) {
      MESSAGE("SKIPPED: a group of " << k << " needs " << k << " GPUs, " << gpus << " visible");
      continue;
    }
    CAPTURE(k);
    ++ran;
    const std::size_t n = 8192 * 3 + 5;  // 70B's hidden size, three rows, and a ragged end
    std::vector<std::vector<float>> ints(static_cast<std::size_t>(k)), rnd(static_cast<std::size_t>(k)),
        out_ints(static_cast<std::size_t>(k)), out_rnd(static_cast<std::size_t>(k)), bcast(static_cast<std::size_t>(k));
    std::vector<std::vector<double>> out_d(static_cast<std::size_t>(k));
    std::vector<std::int32_t> token(static_cast<std::size_t>(k));
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int r = 0; r < k; ++r)
      for (std::size_t i = 0; i < n; ++i) {
        ints[std::size_t(r)].push_back(float(int((i * 7 + std::size_t(r) * 13) % 101) - 50));  // exact in any order
        rnd[std::size_t(r)].push_back(nd(rng));
      }
    run_nccl_ranks(NcclGroup::first_devices(k), [&](NcclComm& c) {
      const auto r = std::size_t(c.rank());
      DeviceArray<float> a(ints[r]), b(rnd[r]), bc(rnd[r]);
      DeviceArray<double> d(std::vector<double>(n, 0.25 * double(c.rank() + 1)));
      c.all_reduce_sum(a.span());
      c.all_reduce_sum(b.span());
      c.all_reduce_sum(d.span());
      c.broadcast(std::as_writable_bytes(bc.span()), k - 1);
      c.synchronize();
      out_ints[r] = a.host();
      out_rnd[r] = b.host();
      out_d[r] = d.host();
      bcast[r] = bc.host();
      std::int32_t t = c.rank() == 0 ? 4242 : -1;  // rank 0 samples, every rank decodes its token
      broadcast_value(c, t, 0);
      token[r] = t;
    });
    double want_d = 0;
    for (int r = 0; r < k; ++r) want_d += 0.25 * (r + 1);
    for (int r = 0; r < k; ++r) {
      CAPTURE(r);
      std::size_t bad = 0;
      for (std::size_t i = 0; i < n; ++i) {
        float s = 0;
        for (int q = 0; q < k; ++q) s += ints[std::size_t(q)][i];
        bad += out_ints[std::size_t(r)][i] != s;
      }
      CHECK(bad == 0);
      CHECK(std::memcmp(out_rnd[std::size_t(r)].data(), out_rnd[0].data(), n * sizeof(float)) == 0);
      CHECK(out_d[std::size_t(r)] == std::vector<double>(n, want_d));
      CHECK(bcast[std::size_t(r)] == rnd[std::size_t(k - 1)]);
      CHECK(token[std::size_t(r)] == 4242);
    }
    // The random sums agree with a sequential sum to fp32 rounding (the order is NCCL's).
    double worst = 0;
    for (std::size_t i = 0; i < n; ++i) {
      double s = 0;
      for (int q = 0; q < k; ++q) s += rnd[std::size_t(q)][i];
      worst = std::max(worst, std::abs(double(out_rnd[0][i]) - s));
    }
    CHECK(worst < 1e-5);
  }
  CHECK(ran >= 1);
}

TEST_CASE("nccl: a rank that throws aborts the group: the others give up instead of hanging") {
  const int gpus = visible_gpus();
  if (gpus < 2) {
    MESSAGE("SKIPPED: needs 2 GPUs, " << gpus << " visible");
    return;
  }
  std::mutex m;
  std::vector<std::string> seen;
  try {
    run_nccl_ranks(NcclGroup::first_devices(2), [&](NcclComm& c) {
      DeviceArray<float> a(std::vector<float>(1024, 1.0f));
      if (c.rank() == 1) throw Error("rank one broke");
      try {
        c.all_reduce_sum(a.span());  // queued; waits on the GPU for rank 1, which never comes
        c.synchronize();
      } catch (const CommAborted& e) {
        std::lock_guard lk(m);
        seen.push_back(e.what());
        throw;
      }
    });
    FAIL("no error");
  } catch (const CommAborted&) {
    FAIL("the cause was not rethrown");
  } catch (const Error& e) {
    CHECK(std::string(e.what()) == "rank one broke");
  }
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == "rank 1 failed: rank one broke");

  // A rank that returns early: the other's synchronize gives up after the timeout.
  CHECK_THROWS_AS(run_nccl_ranks(
                      NcclGroup::first_devices(2),
                      [&](NcclComm& c) {
                        DeviceArray<float> a(std::vector<float>(1024, 1.0f));
                        if (c.rank() == 1) return;
                        c.all_reduce_sum(a.span());
                        c.synchronize();
                      },
                      5.0),
                  CommAborted);
}
