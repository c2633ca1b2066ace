// Attention over a (pruned) token set through cache slots, and the last-row scores pass, against
// a CPU reference written like CpuBackend::layer's attention (cpu::dot, cpu::softmax).
#include <numeric>

#include "gpu_util.hpp"
#include "lazyllm/backend/cpu/ops.hpp"
#include "lazyllm/backend/cuda/attention.cuh"

using namespace lazyllm;
using namespace lazyllm::test;

namespace {

// Bounds (normalised error):
constexpr double kOutBound = 2e-2;     // attention output: bf16 inputs (identical), bf16 output, exp2 vs exp
constexpr double kScoresBound = 1e-3;  // scores: fp32 throughout on identical bf16 inputs

struct Case {
  int hd, n_heads, n_kv_heads;
  int n_kv;   // |S_l|
  int rows;   // computed rows (C_l), the last always the newest token
  bool gaps;  // positions with gaps (a pruned set) rather than 0..n-1
  int force_splits = 0;
};

// Tile variants of the tensor-core kernel (MmaAttnTraits<HD, warps, m16 tiles per warp, keys>),
// each checked against the CPU reference like the kernels Attention::run chooses from, and timed
// side by side in the informational timing case.
using Params = gpu::AttnParams<gpu::bf16>;
using Store = gpu::KvStore<gpu::bf16>;

template <class T>
void launch_variant(const Params& a, cudaStream_t s) {
  gpu::detail::launch_mma_attention<T, gpu::bf16>(a, s);
}
template <class T>
void launch_sm90_variant(const Params& a, cudaStream_t s) {
  gpu::detail::launch_sm90_attention<T, gpu::bf16>(a, s);
}
struct Variant {
  std::string name;
  int hd;
  void (*launch)(const Params&, cudaStream_t);
  bool sm90 = false;
};
template <int HD, int W, int MT, int BK>
Variant variant(const char* name) {
  return {name, HD, &launch_variant<gpu::MmaAttnTraits<HD, W, MT, BK>>};
}
const std::vector<Variant>& variants() {
  static const std::vector<Variant> v{variant<128, 4, 1, 64>("mma 128 (default)"),
                                      variant<128, 4, 2, 64>("mma 128 w4 mt2"),
                                      variant<64, 4, 1, 64>("mma 64 (default)"),
                                      variant<64, 4, 2, 64>("mma 64 w4 mt2"),
                                      {"sm90 128", 128, &launch_sm90_variant<gpu::Sm90AttnTraits<128>>, true}};
  return v;
}

void run_case(const Case& cs, gpu::Attention& attn) {
  CAPTURE(cs.hd);
  CAPTURE(cs.n_heads);
  CAPTURE(cs.n_kv_heads);
  CAPTURE(cs.n_kv);
  CAPTURE(cs.rows);
  CAPTURE(cs.force_splits);
  const int hd = cs.hd, H = cs.n_heads, KH = cs.n_kv_heads, d = H * hd, kvd = KH * hd, group = H / KH;
  const int n = cs.n_kv, rows = cs.rows;
  std::mt19937 rng(unsigned(n * 31 + rows));
  // S_l positions (ascending) and C_l = a subset with the last entry.
  std::vector<std::int32_t> kv_pos(n);
  int p = 0;
  for (int j = 0; j < n; ++j) {
    kv_pos[j] = p;
    p += cs.gaps ? 1 + int(rng() % 3) : 1;
  }
  std::vector<int> pick(n);
  std::iota(pick.begin(), pick.end(), 0);
  std::shuffle(pick.begin(), pick.end() - 1, rng);
  std::vector<int> qi(pick.end() - rows, pick.end());
  std::sort(qi.begin(), qi.end());
  REQUIRE(qi.back() == n - 1);
  std::vector<std::int32_t> q_pos(rows);
  for (int r = 0; r < rows; ++r) q_pos[r] = kv_pos[qi[r]];
  // slots: a permutation of a larger pool
  const int n_slots = n + 64;
  std::vector<std::int64_t> perm(n_slots);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<std::int64_t> kv_slots(perm.begin(), perm.begin() + n);

  const int ldq = d + 2 * kvd;  // q inside a fused qkv row, as in the backend
  const auto q = round_bf16(randn(std::size_t(rows) * ldq, 1u + unsigned(n), 1.0f));
  const auto K = round_bf16(randn(std::size_t(n_slots) * kvd, 2u + unsigned(n), 1.0f));
  const auto V = round_bf16(randn(std::size_t(n_slots) * kvd, 3u + unsigned(n), 1.0f));
  // The same K/V twice: slot-indexed arrays (what CudaBackend allocates) and a block arena as a
  // paged pool keeps it (blocks of kB slots, a block's K rows then its V rows), laid out here by
  // hand. Every kernel must give the same bits from both.
  constexpr int kShift = 4, kB = 1 << kShift;
  std::vector<float> arena(std::size_t((n_slots + kB - 1) / kB) * 2 * kB * kvd, 0.0f);
  for (int s = 0; s < n_slots; ++s) {
    const std::size_t at = std::size_t(s / kB) * 2 * kB * kvd + std::size_t(s % kB) * kvd;
    std::copy_n(K.begin() + std::ptrdiff_t(s) * kvd, kvd, arena.begin() + std::ptrdiff_t(at));
    std::copy_n(V.begin() + std::ptrdiff_t(s) * kvd, kvd, arena.begin() + std::ptrdiff_t(at + std::size_t(kB) * kvd));
  }
  auto dq = to_device_bf16(q);
  auto dK = to_device_bf16(K);
  auto dV = to_device_bf16(V);
  auto darena = to_device_bf16(arena);
  auto dslots = to_device(kv_slots);
  auto dkvpos = to_device(kv_pos);
  auto dqpos = to_device(q_pos);
  gpu::DeviceBuffer<gpu::bf16> out(std::size_t(rows) * d);
  gpu::DeviceBuffer<float> scores{std::size_t(n)};
  auto params = [&](const Store& store) {
    return Params{.q = dq.get(),
                  .ldq = ldq,
                  .q_pos = dqpos.get(),
                  .rows = rows,
                  .n_heads = H,
                  .n_kv_heads = KH,
                  .kv = gpu::SlottedKv<gpu::bf16>::make(store, dslots.get(), dkvpos.get(), n),
                  .out = out.get(),
                  .ldo = d};
  };
  const Params a = params(Store::plain(dK.get(), dV.get(), kvd, hd));
  const Params a_arena = params(Store::arena(darena.get(), kvd, hd, kShift));
  // CPU reference for sampled rows (every row of a 64-row block of the tensor-core kernel has a
  // different warp / fragment position, so sample generously).
  const float scale = 1.0f / std::sqrt(float(hd));
  const std::vector<int> rows_checked = sample_rows(rows, 24);
  std::vector<std::vector<float>> refs;
  std::vector<double> mean(std::size_t(n), 0.0);
  for (int r : rows_checked) {
    const int n_vis = int(std::upper_bound(kv_pos.begin(), kv_pos.end(), q_pos[r]) - kv_pos.begin());
    std::vector<float> ref(std::size_t(d), 0.0f), pr(static_cast<std::size_t>(n_vis));
    for (int h = 0; h < H; ++h) {
      const int kh = h / group;
      const float* qh = q.data() + std::size_t(r) * ldq + std::size_t(h) * hd;
      for (int j = 0; j < n_vis; ++j) pr[j] = cpu::dot(qh, K.data() + kv_slots[j] * kvd + kh * hd, hd) * scale;
      cpu::softmax(pr.data(), n_vis);
      for (int j = 0; j < n_vis; ++j) {
        const float* vj = V.data() + kv_slots[j] * kvd + kh * hd;
        for (int i = 0; i < hd; ++i) ref[std::size_t(h) * hd + i] += pr[j] * vj[i];
        if (r == rows - 1) mean[std::size_t(j)] += pr[j] / H;
      }
    }
    refs.push_back(std::move(ref));
  }

  // Runs `launch` on `p`'s key set into `out` (NaN pattern first: unwritten rows fail).
  auto output = [&](auto&& launch, const Params& p) {
    LAZYLLM_CUDA_CHECK(cudaMemset(out.get(), 0xff, out.bytes()));
    launch(p);
    LAZYLLM_CUDA_CHECK(cudaDeviceSynchronize());
    return bf16_to_host(out.get(), std::size_t(rows) * d);
  };
  // The output of `launch` against the CPU reference; the arena's must be the same bits.
  auto check = [&](auto&& launch) {
    const auto got = output(launch, a);
    double err = 0;
    for (std::size_t i = 0; i < rows_checked.size(); ++i)
      err = std::max(err, norm_err(std::span(got).subspan(std::size_t(rows_checked[i]) * d, std::size_t(d)), refs[i]));
    bool finite = true;
    for (float v : got) finite = finite && std::isfinite(v);
    CHECK(finite);
    CHECK(err < kOutBound);
    CHECK(output(launch, a_arena) == got);
    return err;
  };

  // Every kernel that can take this case: the CUDA-core kernel (with the case's split), and, where
  // head_dim is 64/128 and no split is forced, the tensor-core kernel and (few rows) the decode one.
  using Kn = gpu::Attention::Kernel;
  std::vector<Kn> kernels{Kn::CudaCore};
  if ((hd == 64 || hd == 128) && cs.force_splits == 0) {
    kernels.push_back(Kn::TensorCore);
    if (rows <= gpu::Attention::kDecodeMaxRows) kernels.push_back(Kn::Decode);
  }
  for (const auto kernel : kernels) {
    const bool tc = kernel == Kn::TensorCore, dec = kernel == Kn::Decode;
    const char* kname = tc ? "tensor-core" : dec ? "decode" : "cuda-core";
    CAPTURE(kname);
    const double err = check([&](const Params& p) { attn.run(p, nullptr, cs.force_splits, kernel); });
    CHECK(attn.last_tensor_core() == tc);
    CHECK(attn.last_decode() == dec);
    if (tc) CHECK(attn.last_sm90() == (attn.sm90_available() && hd == 128));  // wgmma: Hopper, head_dim 128
    MESSAGE("n_kv=" << n << " rows=" << rows << " hd=" << hd << " heads=" << H << "/" << KH
                    << " kernel=" << std::string(kname) << " splits=" << attn.last_splits() << " err=" << err);
  }

  if (cs.force_splits == 0)
    for (const auto& v : variants()) {
      if (v.hd != hd || (v.sm90 && !attn.sm90_available())) continue;
      CAPTURE(v.name);
      const double err = check([&](const Params& p) { v.launch(p, nullptr); });
      MESSAGE("variant " << v.name << " n_kv=" << n << " rows=" << rows << " err=" << err);
    }

  const int n_vis_last = int(std::upper_bound(kv_pos.begin(), kv_pos.end(), q_pos.back()) - kv_pos.begin());
  auto scores_of = [&](const Params& p) {
    attn.last_row_scores(p, n_vis_last, scores.get(), nullptr);
    LAZYLLM_CUDA_CHECK(cudaDeviceSynchronize());
    return to_host(scores.get(), std::size_t(n));
  };
  const auto got_scores = scores_of(a);
  std::vector<float> ref_scores(mean.begin(), mean.end());
  CHECK(norm_err(got_scores, ref_scores) < kScoresBound);
  const double total = std::accumulate(got_scores.begin(), got_scores.end(), 0.0);
  CHECK(std::abs(total - 1.0) < 1e-4);
  CHECK(scores_of(a_arena) == got_scores);
}

}  // namespace

TEST_CASE("attention: prefill lengths 1..8192, head_dim 64/128, MHA and GQA, vs CPU") {
  if (!have_gpu()) return;
  gpu::Attention attn;
  attn.init(132);
  // Quick (sanitizer) runs stop at 1000 tokens: 16 key tiles and 16 row blocks already cover the
  // kernels' pipelining and every block shape; the 4k and 8k cases only repeat them.
  const std::vector<int> lengths =
      quick_mode() ? std::vector<int>{1, 7, 129, 1000} : std::vector<int>{1, 7, 129, 1000, 4096, 8192};
  for (int n : lengths) {
    run_case({128, 32, 32, n, n, false}, attn);  // Llama-2-7B heads
    run_case({64, 16, 4, n, n, true}, attn);     // GQA, head_dim 64, positions with gaps
  }
}

TEST_CASE("attention: pruned sets (C_l a strict subset of S_l), decode, split over keys") {
  if (!have_gpu()) return;
  gpu::Attention attn;
  attn.init(132);
  run_case({128, 32, 8, 1000, 300, true}, attn);  // revived + new rows among cached keys
  run_case({64, 32, 32, 4096, 129, true}, attn);
  run_case({128, 32, 32, 8192, 1, false}, attn);  // decode: automatic split over keys
  run_case({64, 16, 4, 8192, 1, true}, attn);
  run_case({128, 32, 8, 4096, 3, true}, attn);        // few rows: split
  run_case({128, 32, 32, 4097, 2, false}, attn);      // decode kernel, 2 rows, odd length
  run_case({128, 32, 32, 200, 4, true}, attn);        // decode kernel at its row limit
  run_case({64, 8, 8, 5, 2, true}, attn);             // fewer keys than one pass
  run_case({128, 32, 32, 1000, 129, true, 4}, attn);  // forced split with full blocks of rows
  run_case({64, 8, 2, 129, 129, false, 3}, attn);
}

namespace {

// The decode kernel over several sequences in one launch (Attention::run_decode_batch, what
// CudaBackend::layer_batch uses for decode-shaped sequences) against run() on each alone: the
// same bits, with key counts that take one split, several, and different numbers of them.
void run_decode_batch_case(int hd, int H, int KH, const std::vector<int>& n_kvs, const std::vector<int>& rows_of) {
  CAPTURE(hd);
  CAPTURE(H);
  CAPTURE(KH);
  gpu::Attention attn;
  attn.init(132);
  const int d = H * hd, kvd = KH * hd, ldq = d + 2 * kvd, B = int(n_kvs.size());
  std::vector<gpu::VarlenSeq> seqs;
  std::vector<std::int32_t> q_pos, kv_pos;
  std::vector<std::int64_t> kv_slots;
  std::mt19937 rng(unsigned(hd * 7 + B));
  std::int64_t next_slot = 0;
  int total_rows = 0;
  for (int b = 0; b < B; ++b) {
    const int n = n_kvs[std::size_t(b)], rows = rows_of[std::size_t(b)];
    seqs.push_back({total_rows, rows, int(kv_pos.size()), n});
    int p = 0;
    std::vector<std::int32_t> pos(static_cast<std::size_t>(n));
    for (auto& x : pos) x = p, p += 1 + int(rng() % 2);
    kv_pos.insert(kv_pos.end(), pos.begin(), pos.end());
    for (int r = 0; r < rows; ++r) q_pos.push_back(pos[std::size_t(n - rows + r)]);
    for (int j = 0; j < n; ++j) kv_slots.push_back(next_slot + ((j * 7) % n));  // a permutation of its slots
    next_slot += n;
    total_rows += rows;
  }
  const auto q = round_bf16(randn(std::size_t(total_rows) * ldq, 11u, 1.0f));
  const auto K = round_bf16(randn(std::size_t(next_slot) * kvd, 12u, 1.0f));
  const auto V = round_bf16(randn(std::size_t(next_slot) * kvd, 13u, 1.0f));
  auto dq = to_device_bf16(q);
  auto dK = to_device_bf16(K);
  auto dV = to_device_bf16(V);
  auto dslots = to_device(kv_slots);
  auto dkvpos = to_device(kv_pos);
  auto dqpos = to_device(q_pos);
  auto dseqs = to_device(seqs);
  gpu::DeviceBuffer<gpu::bf16> out(std::size_t(total_rows) * d);
  const Store store = Store::plain(dK.get(), dV.get(), kvd, hd);
  const Params all{.q = dq.get(),
                   .ldq = ldq,
                   .q_pos = dqpos.get(),
                   .rows = total_rows,
                   .n_heads = H,
                   .n_kv_heads = KH,
                   .kv = gpu::SlottedKv<gpu::bf16>::make(store, dslots.get(), dkvpos.get(), int(kv_pos.size())),
                   .out = out.get(),
                   .ldo = d};
  // Twice: the second launch finds the split counters the first one left (they must be zero).
  std::vector<float> batched;
  for (int rep = 0; rep < 2; ++rep) {
    LAZYLLM_CUDA_CHECK(cudaMemset(out.get(), 0xff, out.bytes()));
    attn.run_decode_batch(all, dseqs.get(), std::span<const gpu::VarlenSeq>(seqs), nullptr);
    LAZYLLM_CUDA_CHECK(cudaDeviceSynchronize());
    const auto got = bf16_to_host(out.get(), std::size_t(total_rows) * d);
    if (rep == 1) CHECK(got == batched);
    batched = got;
  }
  CHECK(attn.last_decode());
  int multi_split = 0;
  for (int b = 0; b < B; ++b) {
    const gpu::VarlenSeq& s = seqs[std::size_t(b)];
    CAPTURE(b);
    CAPTURE(s.n_kv);
    CAPTURE(s.rows);
    Params a = all;
    a.q = dq.get() + std::size_t(s.row_begin) * ldq;
    a.q_pos = dqpos.get() + s.row_begin;
    a.rows = s.rows;
    a.kv = gpu::SlottedKv<gpu::bf16>::make(store, dslots.get() + s.kv_begin, dkvpos.get() + s.kv_begin, s.n_kv);
    gpu::DeviceBuffer<gpu::bf16> one(std::size_t(s.rows) * d);
    a.out = one.get();
    attn.run(a, nullptr);
    LAZYLLM_CUDA_CHECK(cudaDeviceSynchronize());
    REQUIRE(attn.last_decode());
    multi_split += attn.last_splits() > 1;
    const auto alone = bf16_to_host(one.get(), std::size_t(s.rows) * d);
    const std::vector<float> mine(batched.begin() + std::ptrdiff_t(s.row_begin) * d,
                                  batched.begin() + std::ptrdiff_t(s.row_begin + s.rows) * d);
    if (mine != alone) {  // what differs, against the CPU reference (diagnostics)
      const int group = H / KH;
      const float scale = 1.0f / std::sqrt(float(hd));
      std::vector<float> ref(std::size_t(s.rows) * d, 0.0f);
      for (int r = 0; r < s.rows; ++r)
        for (int h = 0; h < H; ++h) {
          const float* qh = q.data() + std::size_t(s.row_begin + r) * ldq + std::size_t(h) * hd;
          std::vector<float> pr;
          std::vector<std::int64_t> sl;
          for (int j = 0; j < s.n_kv; ++j)
            if (kv_pos[std::size_t(s.kv_begin + j)] <= q_pos[std::size_t(s.row_begin + r)]) {
              sl.push_back(kv_slots[std::size_t(s.kv_begin + j)]);
              pr.push_back(cpu::dot(qh, K.data() + sl.back() * kvd + (h / group) * hd, hd) * scale);
            }
          cpu::softmax(pr.data(), int(pr.size()));
          for (std::size_t j = 0; j < pr.size(); ++j)
            for (int i = 0; i < hd; ++i)
              ref[std::size_t(r) * d + std::size_t(h) * hd + std::size_t(i)] +=
                  pr[j] * V[std::size_t(sl[j] * kvd + (h / group) * hd + i)];
        }
      int differ = 0;
      float worst = 0;
      for (std::size_t i = 0; i < mine.size(); ++i)
        if (mine[i] != alone[i]) ++differ, worst = std::max(worst, std::abs(mine[i] - alone[i]));
      // The same sequence as a batch of one (grid z = 1, its own offsets).
      const std::vector<gpu::VarlenSeq> just{s};
      auto djust = to_device(just);
      LAZYLLM_CUDA_CHECK(cudaMemset(out.get(), 0xff, out.bytes()));
      attn.run_decode_batch(all, djust.get(), std::span<const gpu::VarlenSeq>(just), nullptr);
      LAZYLLM_CUDA_CHECK(cudaDeviceSynchronize());
      const auto solo_all = bf16_to_host(out.get(), std::size_t(total_rows) * d);
      const std::vector<float> solo(solo_all.begin() + std::ptrdiff_t(s.row_begin) * d,
                                    solo_all.begin() + std::ptrdiff_t(s.row_begin + s.rows) * d);
      int nan = 0;
      for (float v : mine) nan += std::isnan(v);
      MESSAGE("seq " << b << " (row " << s.row_begin << ", kv " << s.kv_begin << "): " << differ << " of "
                     << mine.size() << " differ, max " << worst << ", " << nan << " NaN; error vs CPU: batched "
                     << norm_err(mine, ref) << ", alone " << norm_err(alone, ref) << ", batch of one "
                     << norm_err(solo, ref) << (solo == alone ? " (= alone)" : " (!= alone)"));
    }
    CHECK(mine == alone);
  }
  MESSAGE("decode batch hd=" << hd << " B=" << B << ": " << multi_split << " sequences split over keys alone");
  CHECK(multi_split > 0);
  CHECK(multi_split < B);
}

}  // namespace

TEST_CASE("attention: decode over several sequences in one launch equals each sequence alone") {
  if (!have_gpu()) return;
  // One row each (a plain decode step per sequence), Llama-2-7B heads and GQA head_dim 64.
  run_decode_batch_case(128, 32, 32, {1, 5, 130, 700, 4096, 9000, 2, 300}, std::vector<int>(8, 1));
  run_decode_batch_case(64, 16, 4, {3, 8192, 129, 1000}, std::vector<int>(4, 1));
  // 2..4 rows each (a decode step with revivals): the kernel's 4-row instance.
  run_decode_batch_case(128, 32, 8, {4, 4097, 200, 60}, {4, 2, 3, 2});
  // Mixed row counts are refused (one kernel instance per launch).
  gpu::Attention attn;
  attn.init(132);
  const std::vector<gpu::VarlenSeq> mixed{{0, 1, 0, 10}, {1, 2, 10, 10}};
  const Params shape{
      .n_heads = 8,
      .n_kv_heads = 8,
      .kv = gpu::SlottedKv<gpu::bf16>::make(Store::plain(nullptr, nullptr, 512, 64), nullptr, nullptr, 20)};
  CHECK_THROWS_AS(attn.run_decode_batch(shape, nullptr, std::span<const gpu::VarlenSeq>(mixed), nullptr),
                  InvalidArgument);
}

TEST_CASE("attention: small head dims (padded to 64) as in stories260K") {
  if (!have_gpu()) return;
  gpu::Attention attn;
  attn.init(132);
  run_case({8, 8, 4, 129, 129, false}, attn);
  run_case({8, 4, 1, 60, 20, true}, attn);
  run_case({8, 8, 4, 500, 1, true}, attn);
  run_case({96, 4, 2, 300, 300, false}, attn);  // an odd size in the 128 variant
}

TEST_CASE("attention: timing at Llama-2-7B heads (informational, no bound)") {
  if (!have_gpu()) return;
  gpu::Attention attn;
  attn.init(132);
  for (int n : {1024, 4096, 8192}) {
    const int H = 32, hd = 128, d = H * hd;
    gpu::DeviceBuffer<gpu::bf16> q(std::size_t(n) * d), K(std::size_t(n) * d), V(std::size_t(n) * d),
        out(std::size_t(n) * d);
    LAZYLLM_CUDA_CHECK(cudaMemset(q.get(), 0, q.bytes()));
    LAZYLLM_CUDA_CHECK(cudaMemset(K.get(), 0, K.bytes()));
    LAZYLLM_CUDA_CHECK(cudaMemset(V.get(), 0, V.bytes()));
    auto dpos = iota_device<std::int32_t>(n);
    auto dslots = iota_device<std::int64_t>(n);
    // The last `rows` query rows of n, as heads of head_dim `hd_` (the same d: 32 x 128 or 64 x 64).
    auto params = [&](int hd_, int rows) {
      const int heads = d / hd_;
      return Params{
          .q = q.get(),
          .ldq = d,
          .q_pos = dpos.get() + (n - rows),
          .rows = rows,
          .n_heads = heads,
          .n_kv_heads = heads,
          .kv = gpu::SlottedKv<gpu::bf16>::make(Store::plain(K.get(), V.get(), d, hd_), dslots.get(), dpos.get(), n),
          .out = out.get(),
          .ldo = d};
    };
    Params a = params(hd, n);
    auto time_it = [&](int reps, gpu::Attention::Kernel k = gpu::Attention::Kernel::Auto) {
      attn.run(a, nullptr, 0, k);
      return gpu_ms(reps, [&] { attn.run(a, nullptr, 0, k); });
    };
    for (const auto& v : variants()) {
      if (v.sm90 && !attn.sm90_available()) continue;
      for (const int rows : {n, n / 4}) {  // a dense layer; a pruned one (the last quarter of the rows)
        a = params(v.hd, rows);
        v.launch(a, nullptr);
        const float ms = gpu_ms(5, [&] { v.launch(a, nullptr); });
        const double fl = 4.0 * d * (double(rows) * (2.0 * n - rows + 1) / 2);
        MESSAGE("variant " << v.name << " n=" << n << " rows=" << rows << ": " << ms << " ms, " << fl / ms / 1e9
                           << " TFLOP/s");
      }
    }
    a = params(hd, n);
    const float prefill = time_it(5);
    const bool tc = attn.last_tensor_core();
    const double flops = 4.0 * H * hd * (double(n) * n / 2);
    a = params(hd, 1);
    const float decode_cc = time_it(20, gpu::Attention::Kernel::CudaCore);
    const float decode = time_it(20);
    MESSAGE("attention 32x128 n=" << n << ": causal prefill " << prefill << " ms (" << flops / prefill / 1e9
                                  << " TFLOP/s, " << std::string(tc ? "tensor-core" : "cuda-core") << "), decode row "
                                  << decode << " ms (splits " << attn.last_splits() << ", "
                                  << std::string(attn.last_decode() ? "decode kernel" : "cuda-core")
                                  << "; cuda-core kernel " << decode_cc << " ms)");
  }
}
