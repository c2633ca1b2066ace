// Each CUDA kernel against the CPU reference operator (lazyllm::cpu), at Llama-2-7B shapes.
// Inputs are rounded to bf16 on the host first, so the reference sees exactly what the GPU sees;
// what remains is accumulation order and the bf16 rounding of outputs.
#include <algorithm>
#include <numeric>
#include <string>

#include "gpu_util.hpp"
#include "lazyllm/backend/cpu/ops.hpp"
#include "lazyllm/backend/cuda/gemm.cuh"
#include "lazyllm/backend/cuda/kernels.cuh"

using namespace lazyllm;
using namespace lazyllm::test;
namespace cd = lazyllm::gpu::detail;

namespace {
// Bounds (normalised error max|a-b| / max|b|):
constexpr double kBf16Out = 1e-2;  // a bf16 output: one rounding (2^-9 relative) plus fp32 order
constexpr double kFp32Out = 1e-4;  // an fp32 output of fp32 arithmetic on identical inputs
}  // namespace

TEST_CASE("gemm: cuBLASLt bf16 (fp32 accumulate) vs cpu::matmul at Llama-2-7B shapes") {
  if (!have_gpu()) return;
  gpu::Gemm gemm;
  gemm.init();
  struct Shape {
    int in, out;
    const char* what;
  };
  // fused QKV, fused gate/up, down projection, a small classifier (fp32 output)
  const Shape shapes[] = {{4096, 3 * 4096, "qkv"}, {4096, 2 * 11008, "gate_up"}, {11008, 4096, "w2"}};
  for (const auto& s : shapes) {
    const auto w = round_bf16(randn(std::size_t(s.out) * s.in, 1, 0.02f));
    auto dw = to_device_bf16(w);
    for (int rows : {1, 7, 129, 1000, 4096}) {
      CAPTURE(s.what);
      CAPTURE(rows);
      const auto x = round_bf16(randn(std::size_t(rows) * s.in, unsigned(rows), 1.0f));
      auto dx = to_device_bf16(x);
      gpu::DeviceBuffer<gpu::bf16> dy(std::size_t(rows) * s.out);
      gemm.run(dx.get(), dw.get(), dy.get(), rows, s.in, s.out, nullptr);
      LAZYLLM_CUDA_CHECK(cudaDeviceSynchronize());
      const auto y = bf16_to_host(dy.get(), std::size_t(rows) * s.out);
      double err = 0;
      for (int r : sample_rows(rows, 6)) {
        std::vector<float> ref(std::size_t(s.out));
        cpu::matmul(ref.data(), x.data() + std::size_t(r) * s.in, w.data(), 1, s.in, s.out);
        err = std::max(err, norm_err(std::span(y).subspan(std::size_t(r) * s.out, std::size_t(s.out)), ref));
      }
      CHECK(err < kBf16Out);
    }
  }
  // fp32 output (the classifier path), 1 row.
  {
    const int in = 4096, out = 1024;
    const auto w = round_bf16(randn(std::size_t(out) * in, 3, 0.02f));
    const auto x = round_bf16(randn(std::size_t(in), 4));
    auto dw = to_device_bf16(w);
    auto dx = to_device_bf16(x);
    gpu::DeviceBuffer<float> dy(out);
    gemm.run(dx.get(), dw.get(), dy.get(), 1, in, out, nullptr);
    const auto y = to_host(dy.get(), out);
    std::vector<float> ref(out);
    cpu::matmul(ref.data(), x.data(), w.data(), 1, in, out);
    CHECK(norm_err(y, ref) < kFp32Out);
  }
  // fp32 accumulate (the residual adds): y = y0 + x W^T, 3 rows, the same plan as above for 1 row.
  {
    const int in = 4096, out = 1024, rows = 3;
    const auto w = round_bf16(randn(std::size_t(out) * in, 8, 0.02f));
    const auto x = round_bf16(randn(std::size_t(rows) * in, 9));
    const auto y0 = randn(std::size_t(rows) * out, 10, 4.0f);
    auto dw = to_device_bf16(w);
    auto dx = to_device_bf16(x);
    auto dy = to_device(y0);
    gemm.run(dx.get(), dw.get(), dy.get(), rows, in, out, nullptr, 0, /*accumulate=*/true);
    const auto y = to_host(dy.get(), y0.size());
    std::vector<float> ref(y0.size());
    cpu::matmul(ref.data(), x.data(), w.data(), rows, in, out);
    for (std::size_t i = 0; i < ref.size(); ++i) ref[i] += y0[i];
    CHECK(norm_err(y, ref) < kFp32Out);
  }
  CHECK(gemm.cached_plans() == 3 * 5 + 2);
}

TEST_CASE("rmsnorm vs cpu::rmsnorm") {
  if (!have_gpu()) return;
  // 12288: wider than the 4 chunks x 256 threads rmsnorm_kernel keeps in registers (tail path)
  for (int dim : {64, 4096, 12288}) {
    for (int rows : {1, 7, 129, 1000, 4096}) {
      if (dim == 12288 && rows > 129) continue;
      CAPTURE(dim);
      CAPTURE(rows);
      const auto x = randn(std::size_t(rows) * dim, 5, 2.0f);
      const auto w = randn(std::size_t(dim), 7, 0.1f);
      std::vector<float> wn(w);
      for (auto& v : wn) v += 1.0f;
      auto dx = to_device(x);
      auto dw = to_device(wn);
      gpu::DeviceBuffer<gpu::bf16> out(std::size_t(rows) * dim);
      cd::launch_rmsnorm(dx.get(), dw.get(), rows, dim, 1e-5f, out.get(), nullptr);
      auto got = bf16_to_host(out.get(), std::size_t(rows) * dim);
      std::vector<float> ref(std::size_t(rows) * dim);
      for (int r = 0; r < rows; ++r)
        cpu::rmsnorm(ref.data() + std::size_t(r) * dim, x.data() + std::size_t(r) * dim, wn.data(), dim, 1e-5f);
      CHECK(norm_err(got, ref) < kBf16Out);
      CHECK(to_host(dx.get(), x.size()) == x);  // the input is only read
      // Rows kept in registers or read twice: the same arithmetic, the same bits.
      gpu::DeviceBuffer<gpu::bf16> out0(std::size_t(rows) * dim);
      cd::launch_rmsnorm<gpu::bf16, 0>(dx.get(), dw.get(), rows, dim, 1e-5f, out0.get(), nullptr);
      CHECK(bf16_to_host(out0.get(), std::size_t(rows) * dim) == got);
    }
  }
}

TEST_CASE("rope (both styles, original positions) + K/V scatter into slots vs cpu::rope") {
  if (!have_gpu()) return;
  // rotate-half with head_dim 16+ takes 8-wide accesses, head_dim 8 (half = 4) and the interleaved
  // form one element per access
  for (auto style : {RopeStyle::Interleaved, RopeStyle::RotateHalf})
    for (int hd : {8, 16, 64, 128})
      for (int rows : {1, 7, 129, 1000, 4096}) {
        if (hd < 64 && rows > 129) continue;
        CAPTURE(hd);
        CAPTURE(rows);
        CAPTURE(int(style));
        const int n_heads = 4096 / hd, n_kv = n_heads / 4, d = n_heads * hd, kvd = n_kv * hd, ld = d + 2 * kvd;
        const int max_pos = 4096, n_slots = 5000;
        const auto qkv = round_bf16(randn(std::size_t(rows) * ld, 11, 1.0f));
        // ascending positions with gaps (a pruned set), slots a permutation
        std::vector<std::int32_t> pos(rows);
        std::vector<std::int64_t> slots(rows);
        std::mt19937 rng{unsigned(rows)};
        std::vector<std::int64_t> perm(n_slots);
        std::iota(perm.begin(), perm.end(), 0);
        std::shuffle(perm.begin(), perm.end(), rng);
        for (int r = 0; r < rows; ++r) {
          pos[r] = std::int32_t(std::int64_t(r) * (max_pos - 1) / std::max(rows - 1, 1));
          slots[r] = perm[std::size_t(r)];
        }
        auto dqkv = to_device_bf16(qkv);
        auto dqkv1 = to_device_bf16(qkv);  // for the one-element path
        auto dpos = to_device(pos);
        auto dslots = to_device(slots);
        const auto table = cd::rope_table(max_pos, hd, 10000.0f);
        auto dtable = to_device(table);
        gpu::DeviceBuffer<gpu::bf16> K(std::size_t(n_slots) * kvd), V(std::size_t(n_slots) * kvd);
        cd::RopeArgs a;
        a.qkv = dqkv.get();
        a.ld = ld;
        a.rows = rows;
        a.n_heads = n_heads;
        a.n_kv_heads = n_kv;
        a.pos = dpos.get();
        a.slots = dslots.get();
        a.table = dtable.get();
        a.max_pos = max_pos;
        a.style = style;
        a.kv = gpu::KvStore<gpu::bf16>::plain(K.get(), V.get(), kvd, hd);
        cd::launch_rope_store(a, nullptr);
        const auto got_qkv = bf16_to_host(dqkv.get(), std::size_t(rows) * ld);
        const auto got_k = bf16_to_host(K.get(), std::size_t(n_slots) * kvd);
        const auto got_v = bf16_to_host(V.get(), std::size_t(n_slots) * kvd);
        {  // the one-element path gives the same bits
          gpu::DeviceBuffer<gpu::bf16> K1(std::size_t(n_slots) * kvd), V1(std::size_t(n_slots) * kvd);
          LAZYLLM_CUDA_CHECK(cudaMemset(K1.get(), 0, K1.bytes()));
          LAZYLLM_CUDA_CHECK(cudaMemset(V1.get(), 0, V1.bytes()));
          cd::RopeArgs a1 = a;
          a1.qkv = dqkv1.get();
          a1.kv = gpu::KvStore<gpu::bf16>::plain(K1.get(), V1.get(), kvd, hd);
          cd::launch_rope_store<gpu::bf16, false>(a1, nullptr);
          CHECK(bf16_to_host(dqkv1.get(), std::size_t(rows) * ld) == got_qkv);
          const auto k1 = bf16_to_host(K1.get(), std::size_t(n_slots) * kvd);
          bool same_k = true;
          for (int r = 0; r < rows; ++r)
            same_k = same_k && std::equal(k1.begin() + std::ptrdiff_t(slots[r] * kvd),
                                          k1.begin() + std::ptrdiff_t((slots[r] + 1) * kvd),
                                          got_k.begin() + std::ptrdiff_t(slots[r] * kvd));
          CHECK(same_k);
        }
        {  // a block arena (8 slots per block, a block's K rows then its V rows, laid out by hand
           // here): the same rows at the arena's addresses, the same q
          constexpr int kShift = 3, kB = 1 << kShift;
          gpu::DeviceBuffer<gpu::bf16> arena(std::size_t((n_slots + kB - 1) / kB) * 2 * kB * kvd);
          LAZYLLM_CUDA_CHECK(cudaMemset(arena.get(), 0, arena.bytes()));
          auto dqkv2 = to_device_bf16(qkv);
          cd::RopeArgs a2 = a;
          a2.qkv = dqkv2.get();
          a2.kv = gpu::KvStore<gpu::bf16>::arena(arena.get(), kvd, hd, kShift);
          cd::launch_rope_store(a2, nullptr);
          CHECK(bf16_to_host(dqkv2.get(), std::size_t(rows) * ld) == got_qkv);
          const auto ga = bf16_to_host(arena.get(), arena.size());
          bool same_kv = true;
          for (int r = 0; r < rows; ++r) {
            const auto at = std::ptrdiff_t(slots[r] / kB * 2 * kB * kvd + slots[r] % kB * kvd);
            const auto plain = std::ptrdiff_t(slots[r] * kvd);
            same_kv = same_kv && std::equal(ga.begin() + at, ga.begin() + at + kvd, got_k.begin() + plain) &&
                      std::equal(ga.begin() + at + kB * kvd, ga.begin() + at + (kB + 1) * kvd, got_v.begin() + plain);
          }
          CHECK(same_kv);
        }
        double eq = 0, ek = 0, ev = 0;
        for (int r : sample_rows(rows, 16)) {
          std::vector<float> q(qkv.begin() + std::ptrdiff_t(r) * ld, qkv.begin() + std::ptrdiff_t(r) * ld + d);
          std::vector<float> k(qkv.begin() + std::ptrdiff_t(r) * ld + d,
                               qkv.begin() + std::ptrdiff_t(r) * ld + d + kvd);
          std::vector<float> v(qkv.begin() + std::ptrdiff_t(r) * ld + d + kvd,
                               qkv.begin() + std::ptrdiff_t(r + 1) * ld);
          for (int h = 0; h < n_heads; ++h) cpu::rope(q.data() + h * hd, hd, pos[r], 10000.0f, style);
          for (int h = 0; h < n_kv; ++h) cpu::rope(k.data() + h * hd, hd, pos[r], 10000.0f, style);
          eq = std::max(eq, norm_err(std::span(got_qkv).subspan(std::size_t(r) * ld, std::size_t(d)), q));
          ek = std::max(ek, norm_err(std::span(got_k).subspan(std::size_t(slots[r]) * kvd, std::size_t(kvd)), k));
          ev = std::max(ev, norm_err(std::span(got_v).subspan(std::size_t(slots[r]) * kvd, std::size_t(kvd)), v));
        }
        CHECK(eq < kBf16Out);
        CHECK(ek < kBf16Out);
        CHECK(ev == 0.0);  // V is copied
      }
}

TEST_CASE("swiglu vs cpu::swiglu (hidden 11008)") {
  if (!have_gpu()) return;
  const int hid = 11008;
  for (int rows : {1, 7, 129, 1000}) {
    CAPTURE(rows);
    const auto gu = round_bf16(randn(std::size_t(rows) * 2 * hid, 21, 2.0f));
    auto dgu = to_device_bf16(gu);
    gpu::DeviceBuffer<gpu::bf16> h(std::size_t(rows) * hid);
    cd::launch_swiglu(dgu.get(), rows, hid, h.get(), nullptr);
    const auto got = bf16_to_host(h.get(), std::size_t(rows) * hid);
    std::vector<float> ref(std::size_t(rows) * hid);
    for (int r = 0; r < rows; ++r) {
      std::copy_n(gu.data() + std::size_t(r) * 2 * hid, hid, ref.data() + std::size_t(r) * hid);
      cpu::swiglu(ref.data() + std::size_t(r) * hid, gu.data() + std::size_t(r) * 2 * hid + hid, hid);
    }
    CHECK(norm_err(got, ref) < kBf16Out);
  }
}

TEST_CASE("embedding gather, row gather with Aux Cache entries (-1), store_aux are exact") {
  if (!have_gpu()) return;
  const int vocab = 1024, dim = 4096;
  const auto table = round_bf16(randn(std::size_t(vocab) * dim, 31));
  auto dtable = to_device_bf16(table);
  const std::vector<std::int32_t> ids{1, 1023, 5, 0, 77, 5, 512};
  auto dids = to_device(ids);
  gpu::DeviceBuffer<float> x(ids.size() * dim);
  cd::launch_embed(dtable.get(), dids.get(), int(ids.size()), dim, x.get(), nullptr);
  const auto got = to_host(x.get(), ids.size() * dim);
  for (std::size_t i = 0; i < ids.size(); ++i)
    CHECK(std::equal(got.begin() + std::ptrdiff_t(i * dim), got.begin() + std::ptrdiff_t((i + 1) * dim),
                     table.begin() + std::ptrdiff_t(ids[i]) * dim));

  // store rows 2 and 5 into aux slots 9 and 3, then gather [row 6, aux 9, row 0, aux 3]: with
  // slot-indexed rows, and with blocks of 5 rows 7 rows apart (a paged pool's Aux blocks)
  const int aux_slots = 12;
  gpu::DeviceBuffer<float> aux(std::size_t(aux_slots) * dim), aux_blocks(std::size_t(3) * 7 * dim);
  const gpu::AuxStore blocked{aux_blocks.get(), dim, 5, std::int64_t(7) * dim};
  const std::vector<std::int32_t> rows{2, 5};
  const std::vector<std::int64_t> slots{9, 3};
  auto drows = to_device(rows);
  auto dslots = to_device(slots);
  const std::vector<std::int32_t> src{6, -1, 0, -1};
  const std::vector<std::int64_t> from_aux{-1, 9, -1, 3};
  auto dsrc = to_device(src);
  auto dfrom = to_device(from_aux);
  const int expect_row[] = {6, 2, 0, 5};
  for (const gpu::AuxStore& store : {gpu::AuxStore::plain(aux.get(), dim), blocked}) {
    CAPTURE(store.per_block);
    cd::launch_store_aux(x.get(), drows.get(), dslots.get(), 2, store, nullptr);
    gpu::DeviceBuffer<float> y(src.size() * dim);
    cd::launch_gather_rows(x.get(), dsrc.get(), dfrom.get(), store, int(src.size()), y.get(), nullptr);
    const auto gy = to_host(y.get(), src.size() * dim);
    for (int i = 0; i < 4; ++i)
      CHECK(std::equal(gy.begin() + std::ptrdiff_t(i) * dim, gy.begin() + std::ptrdiff_t(i + 1) * dim,
                       got.begin() + std::ptrdiff_t(expect_row[i]) * dim));
  }
  // where the blocked store put them: slot 9 = block 1, row 4; slot 3 = block 0, row 3
  const auto gb = to_host(aux_blocks.get(), std::size_t(3) * 7 * dim);
  CHECK(std::equal(gb.begin() + std::ptrdiff_t(7 + 4) * dim, gb.begin() + std::ptrdiff_t(7 + 5) * dim,
                   got.begin() + std::ptrdiff_t(2) * dim));
  CHECK(std::equal(gb.begin() + std::ptrdiff_t(3) * dim, gb.begin() + std::ptrdiff_t(4) * dim,
                   got.begin() + std::ptrdiff_t(5) * dim));
}

TEST_CASE("memory-bound kernels at 4096 rows of Llama-2-7B: time and bandwidth (informational, no bound)") {
  if (!have_gpu()) return;
  const int rows = 4096, d = 4096, kvd = 4096, ld = d + 2 * kvd, hid = 11008, hd = 128;
  // Median of 9 timed launches after one warm-up; bytes = what the kernel must read and write.
  auto report = [&](const std::string& what, double bytes, auto&& fn) {
    fn();
    std::vector<float> ms;
    for (int i = 0; i < 9; ++i) ms.push_back(gpu_ms(1, fn));
    std::sort(ms.begin(), ms.end());
    MESSAGE(what << ": " << ms[4] * 1e3 << " us, " << bytes / (ms[4] * 1e-3) / 1e9 << " GB/s");
  };
  gpu::DeviceBuffer<float> x(std::size_t(rows) * d), w{std::size_t(d)};
  LAZYLLM_CUDA_CHECK(cudaMemset(x.get(), 0, x.bytes()));
  LAZYLLM_CUDA_CHECK(cudaMemset(w.get(), 0, w.bytes()));
  gpu::DeviceBuffer<gpu::bf16> xn(std::size_t(rows) * d);
  const double norm_bytes = double(rows) * d * (4 + 2);
  report("rmsnorm 4096 x 4096, row kept in registers", norm_bytes,
         [&] { cd::launch_rmsnorm<gpu::bf16, 4>(x.get(), w.get(), rows, d, 1e-5f, xn.get(), nullptr); });
  report("rmsnorm 4096 x 4096, row read twice", norm_bytes,
         [&] { cd::launch_rmsnorm<gpu::bf16, 0>(x.get(), w.get(), rows, d, 1e-5f, xn.get(), nullptr); });

  gpu::DeviceBuffer<gpu::bf16> qkv(std::size_t(rows) * ld), K(std::size_t(rows) * kvd), V(std::size_t(rows) * kvd);
  LAZYLLM_CUDA_CHECK(cudaMemset(qkv.get(), 0, qkv.bytes()));
  auto dpos = iota_device<std::int32_t>(rows);
  auto dslots = iota_device<std::int64_t>(rows);
  auto dtable = to_device(cd::rope_table(rows, hd, 10000.0f));
  cd::RopeArgs a;
  a.qkv = qkv.get();
  a.ld = ld;
  a.rows = rows;
  a.n_heads = d / hd;
  a.n_kv_heads = kvd / hd;
  a.pos = dpos.get();
  a.slots = dslots.get();
  a.table = dtable.get();
  a.max_pos = rows;
  a.kv = gpu::KvStore<gpu::bf16>::plain(K.get(), V.get(), kvd, hd);
  // read q, k, v; write q in place, k and v into the cache (the (cos, sin) table stays in L2)
  const double rope_bytes = double(rows) * 2 * (ld + d + 2 * kvd);
  for (auto style : {RopeStyle::RotateHalf, RopeStyle::Interleaved}) {
    a.style = style;
    const char* name = style == RopeStyle::RotateHalf ? "rotate-half" : "interleaved";
    report(std::string("rope + K/V store, ") + name + ", 8-wide where it applies", rope_bytes,
           [&] { cd::launch_rope_store<gpu::bf16, true>(a, nullptr); });
    report(std::string("rope + K/V store, ") + name + ", one element", rope_bytes,
           [&] { cd::launch_rope_store<gpu::bf16, false>(a, nullptr); });
  }

  gpu::DeviceBuffer<gpu::bf16> gu(std::size_t(rows) * 2 * hid), h(std::size_t(rows) * hid);
  LAZYLLM_CUDA_CHECK(cudaMemset(gu.get(), 0, gu.bytes()));
  report("swiglu 4096 x 11008", double(rows) * hid * 2 * 3,
         [&] { cd::launch_swiglu(gu.get(), rows, hid, h.get(), nullptr); });
}
