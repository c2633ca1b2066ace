// Unit tests of the CPU reference operators against straightforward formulas.
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "lazyllm/backend/cpu/ops.hpp"
#include "test_util.hpp"

using namespace lazyllm;

TEST_CASE("dot and matmul equal the textbook sums") {
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> u(-1, 1);
  const int rows = 3, in = 37, out = 5;  // odd sizes exercise the tail loop
  std::vector<float> x(rows * in), w(out * in), y(rows * out);
  for (auto& v : x) v = u(rng);
  for (auto& v : w) v = u(rng);
  cpu::matmul(y.data(), x.data(), w.data(), rows, in, out);
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) {
      double s = 0;
      for (int i = 0; i < in; ++i) s += double(x[r * in + i]) * w[o * in + i];
      CHECK(y[r * out + o] == doctest::Approx(s).epsilon(1e-5));
    }
}

TEST_CASE("matmul splits work across threads without changing results") {
  const int rows = 2, in = 512, out = 1024;  // big enough for parallel_for to use threads
  std::vector<float> x(rows * in), w(std::size_t(out) * in), y(rows * out), y1(rows * out);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::cos(float(i) * 0.7f);
  cpu::matmul(y.data(), x.data(), w.data(), rows, in, out);
  for (int r = 0; r < rows; ++r)
    for (int o = 0; o < out; ++o) y1[r * out + o] = cpu::dot(x.data() + r * in, w.data() + std::size_t(o) * in, in);
  CHECK(y == y1);
}

TEST_CASE("rmsnorm") {
  const std::vector<float> x{1, -2, 3, 4}, w{1, 2, 0.5f, -1};
  std::vector<float> out(4);
  cpu::rmsnorm(out.data(), x.data(), w.data(), 4, 1e-5f);
  const double rms = std::sqrt((1 + 4 + 9 + 16) / 4.0 + 1e-5);
  for (int i = 0; i < 4; ++i) CHECK(out[i] == doctest::Approx(x[i] / rms * w[i]).epsilon(1e-6));
}

TEST_CASE("softmax sums to one and is shift invariant") {
  std::vector<float> a{1, 2, 3, 1000}, b{-999, -998, -997, 0};
  cpu::softmax(a.data(), 4);
  cpu::softmax(b.data(), 4);
  CHECK(std::accumulate(a.begin(), a.end(), 0.0) == doctest::Approx(1.0));
  for (int i = 0; i < 4; ++i) CHECK(a[i] == doctest::Approx(b[i]));
  CHECK(a[3] == doctest::Approx(1.0));
}

TEST_CASE("swiglu is silu(gate) * up") {
  std::vector<float> g{-2, 0, 1.5f}, u{3, 4, -1};
  cpu::swiglu(g.data(), u.data(), 3);
  CHECK(g[0] == doctest::Approx(-2 / (1 + std::exp(2.0)) * 3));
  CHECK(g[1] == 0.0f);
  CHECK(g[2] == doctest::Approx(1.5 / (1 + std::exp(-1.5)) * -1));
}

TEST_CASE("rope: both styles rotate each pair by pos * theta^(-2i/d) and preserve norms") {
  const int hd = 8;
  const float theta = 10000.0f;
  std::vector<float> v(hd);
  std::iota(v.begin(), v.end(), 1.0f);
  for (auto style : {RopeStyle::Interleaved, RopeStyle::RotateHalf}) {
    auto r = v;
    cpu::rope(r.data(), hd, 7, theta, style);
    for (int i = 0; i < hd / 2; ++i) {
      const int a = style == RopeStyle::Interleaved ? 2 * i : i;
      const int b = style == RopeStyle::Interleaved ? 2 * i + 1 : i + hd / 2;
      const double ang = 7.0 * std::pow(10000.0, -2.0 * i / hd);
      CHECK(r[a] == doctest::Approx(v[a] * std::cos(ang) - v[b] * std::sin(ang)).epsilon(1e-5));
      CHECK(r[b] == doctest::Approx(v[a] * std::sin(ang) + v[b] * std::cos(ang)).epsilon(1e-5));
    }
  }
  auto z = v;
  cpu::rope(z.data(), hd, 0, theta, RopeStyle::Interleaved);
  CHECK(z == v);  // position 0 is the identity
}

TEST_CASE("rope: a relative rotation (q at m, k at n) depends only on m - n") {
  const int hd = 16;
  std::vector<float> q(hd), k(hd);
  for (int i = 0; i < hd; ++i) q[i] = std::sin(i + 1.0f), k[i] = std::cos(i * 0.3f);
  auto at = [&](int m, int n) {
    auto a = q, b = k;
    cpu::rope(a.data(), hd, m, 10000.0f, RopeStyle::RotateHalf);
    cpu::rope(b.data(), hd, n, 10000.0f, RopeStyle::RotateHalf);
    return cpu::dot(a.data(), b.data(), hd);
  };
  CHECK(at(10, 3) == doctest::Approx(at(107, 100)).epsilon(1e-4));
}
