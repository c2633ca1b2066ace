// The K/V and Aux Cache descriptors (backend/cuda/kv_store.cuh) on the host: the addresses every
// kernel computes, against the layouts written out here (slot-indexed arrays; a block arena with
// each block's K rows then its V rows; Aux blocks with gaps), and the softmax scales of a key
// set. Host arithmetic only: runs without a GPU. The kernels' use of them is checked on the GPU
// by test_attention.cu and test_kernels.cu (the same results from an arena as from plain arrays).
#include <cmath>
#include <numbers>
#include <set>

#include "gpu_util.hpp"
#include "lazyllm/backend/cuda/kv_store.cuh"

using namespace lazyllm;

TEST_CASE("kv store: plain arrays are slot * kv_dim, heads head_dim apart") {
  std::vector<float> k(1), v(1);
  const auto s = gpu::KvStore<float>::plain(k.data(), v.data(), 24, 8);
  for (std::int64_t slot : {0, 1, 2, 7, 1000, 123456789}) {
    CAPTURE(slot);
    CHECK(s.offset(slot) == slot * 24);
    for (int kh = 0; kh < 3; ++kh) {
      CHECK(s.k_ptr(slot, kh) == k.data() + slot * 24 + kh * 8);
      CHECK(s.v_ptr(slot, kh) == v.data() + slot * 24 + kh * 8);
      CHECK(s.k_at(s.offset(slot), kh) == s.k_ptr(slot, kh));
    }
  }
}

TEST_CASE("kv store: a block arena holds every slot's K and V rows once, inside the arena") {
  const int kv_dim = 24, head_dim = 8, shift = 2, per_block = 1 << shift, n_blocks = 5;
  const std::size_t size = std::size_t(n_blocks) * 2 * per_block * kv_dim;
  std::vector<float> arena(size);
  const auto s = gpu::KvStore<float>::arena(arena.data(), kv_dim, head_dim, shift);
  CHECK(s.v == s.k + per_block * kv_dim);
  CHECK(s.block_stride == 2 * per_block * kv_dim);
  std::set<std::ptrdiff_t> rows;
  for (int slot = 0; slot < n_blocks * per_block; ++slot) {
    CAPTURE(slot);
    const std::ptrdiff_t k_row = (slot / per_block) * 2 * per_block * kv_dim + (slot % per_block) * kv_dim;
    CHECK(s.k_ptr(slot, 0) - arena.data() == k_row);
    CHECK(s.v_ptr(slot, 0) - arena.data() == k_row + per_block * kv_dim);
    CHECK(s.k_ptr(slot, 2) - s.k_ptr(slot, 0) == 2 * head_dim);
    rows.insert(s.k_ptr(slot, 0) - arena.data());
    rows.insert(s.v_ptr(slot, 0) - arena.data());
  }
  // 2 rows per slot, all distinct, kv_dim apart: they tile the arena exactly.
  CHECK(rows.size() == std::size_t(2 * n_blocks * per_block));
  std::ptrdiff_t expect = 0;
  for (std::ptrdiff_t r : rows) {
    CHECK(r == expect);
    expect += kv_dim;
  }
  CHECK(std::size_t(expect) == size);
}

TEST_CASE("kv store: Aux rows, slot-indexed and in blocks with gaps") {
  std::vector<float> aux(1);
  const auto plain = gpu::AuxStore::plain(aux.data(), 16);
  const gpu::AuxStore blocked{aux.data(), 16, 5, 7 * 16};
  for (std::int64_t s : {0, 1, 4, 5, 9, 10, 99}) {
    CAPTURE(s);
    CHECK(plain.ptr(s) == aux.data() + s * 16);
    CHECK(blocked.ptr(s) == aux.data() + (s / 5) * 7 * 16 + (s % 5) * 16);
  }
}

TEST_CASE("kv store: a key set's softmax scales are 1/sqrt(head_dim) in fp32 and log2(e)/sqrt(head_dim)") {
  for (int hd : {8, 64, 96, 128}) {
    CAPTURE(hd);
    const auto kv =
        gpu::SlottedKv<float>::make(gpu::KvStore<float>::plain(nullptr, nullptr, 4 * hd, hd), nullptr, nullptr, 0);
    CHECK(kv.scale == 1.0f / std::sqrt(float(hd)));  // CpuBackend's scale, as the fp32 kernel and the scores pass use
    CHECK(kv.scale_log2 == float(std::numbers::log2e / std::sqrt(double(hd))));  // the base-2 kernels'
  }
}
