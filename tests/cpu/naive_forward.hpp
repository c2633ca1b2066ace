// An independent, deliberately naive forward for tests: no KV cache, recomputes everything,
// attention with an explicit score matrix. Optionally prunes with the LazyLLM prefill rule
// (sort the scores, threshold at rank floor(p*n), keep >= threshold and the last token).
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "lazyllm/backend/cpu/ops.hpp"
#include "lazyllm/config/rope.hpp"
#include "lazyllm/model/weights.hpp"
#include "lazyllm/policy/schedule.hpp"

namespace lazyllm::test {

struct NaiveResult {
  std::vector<std::vector<float>> logits;  // per prompt position (dense) or last only (pruned)
  std::vector<std::vector<int>> kept;      // positions computed at each layer
};

inline NaiveResult naive_forward(const ModelWeights& w, const std::vector<int>& ids, const Schedule& sched = {},
                                 bool all_logits = true) {
  const auto& c = w.config;
  const int n = int(ids.size()), d = c.dim, hd = c.head_dim(), kvd = c.kv_dim(), qd = c.q_dim();
  const RopeFrequencies rf = rope_frequencies(c);
  std::vector<std::vector<float>> h(static_cast<std::size_t>(n), std::vector<float>(static_cast<std::size_t>(d)));
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < d; ++j) h[i][j] = w.token_embedding.f32()[std::size_t(ids[i]) * d + j];
  std::vector<int> S(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) S[i] = i;
  NaiveResult res;
  for (int l = 0; l < c.n_layers; ++l) {
    const auto& lw = w.layers[l];
    const int m = int(S.size());
    res.kept.push_back(S);
    std::vector<std::vector<float>> q(m, std::vector<float>(qd)), k(m, std::vector<float>(kvd)),
        v(m, std::vector<float>(kvd));
    std::vector<float> xn(d);
    for (int a = 0; a < m; ++a) {
      cpu::rmsnorm(xn.data(), h[S[a]].data(), lw.attn_norm.f32(), d, c.norm_eps);
      for (int o = 0; o < qd; ++o) {
        double s = c.attention_bias ? lw.bq.f32()[o] : 0.0;
        for (int i = 0; i < d; ++i) s += double(lw.wq.f32()[std::size_t(o) * d + i]) * xn[i];
        q[a][o] = float(s);
      }
      for (int o = 0; o < kvd; ++o) {
        double sk = c.attention_bias ? lw.bk.f32()[o] : 0.0, sv = c.attention_bias ? lw.bv.f32()[o] : 0.0;
        for (int i = 0; i < d; ++i)
          sk += double(lw.wk.f32()[std::size_t(o) * d + i]) * xn[i],
              sv += double(lw.wv.f32()[std::size_t(o) * d + i]) * xn[i];
        k[a][o] = float(sk), v[a][o] = float(sv);
      }
      if (c.qk_norm) {
        for (int hh = 0; hh < c.n_heads; ++hh)
          cpu::rmsnorm(q[a].data() + hh * hd, q[a].data() + hh * hd, lw.q_norm.f32(), hd, c.norm_eps);
        for (int hh = 0; hh < c.n_kv_heads; ++hh)
          cpu::rmsnorm(k[a].data() + hh * hd, k[a].data() + hh * hd, lw.k_norm.f32(), hd, c.norm_eps);
      }
      for (int hh = 0; hh < c.n_heads; ++hh)
        cpu::rope(q[a].data() + hh * hd, hd, S[a], rf.inv_freq.data(), rf.attention_factor, c.rope_style);
      for (int hh = 0; hh < c.n_kv_heads; ++hh)
        cpu::rope(k[a].data() + hh * hd, hd, S[a], rf.inv_freq.data(), rf.attention_factor, c.rope_style);
    }
    std::vector<double> last_scores(m, 0.0);
    std::vector<std::vector<float>> att(m, std::vector<float>(qd, 0.0f));
    for (int hh = 0; hh < c.n_heads; ++hh) {
      const int kh = hh / (c.n_heads / c.n_kv_heads);
      for (int a = 0; a < m; ++a) {
        std::vector<double> p(a + 1);
        double mx = -1e300, sum = 0;
        for (int b = 0; b <= a; ++b) {
          double s = 0;
          for (int i = 0; i < hd; ++i) s += double(q[a][hh * hd + i]) * k[b][kh * hd + i];
          p[b] = s / std::sqrt(double(hd));
          mx = std::max(mx, p[b]);
        }
        for (auto& x : p) sum += (x = std::exp(x - mx));
        for (auto& x : p) x /= sum;
        for (int b = 0; b <= a; ++b)
          for (int i = 0; i < hd; ++i) att[a][hh * hd + i] += float(p[b] * v[b][kh * hd + i]);
        if (a == m - 1)
          for (int b = 0; b < m; ++b) last_scores[b] += p[b] / c.n_heads;
      }
    }
    for (int a = 0; a < m; ++a) {
      auto& x = h[S[a]];
      for (int o = 0; o < d; ++o) {
        double s = 0;
        for (int i = 0; i < qd; ++i) s += double(lw.wo.f32()[std::size_t(o) * qd + i]) * att[a][i];
        x[o] += float(s);
      }
      cpu::rmsnorm(xn.data(), x.data(), lw.ffn_norm.f32(), d, c.norm_eps);
      std::vector<float> g(c.hidden_dim);
      for (int o = 0; o < c.hidden_dim; ++o) {
        double s1 = 0, s3 = 0;
        for (int i = 0; i < d; ++i)
          s1 += double(lw.w1.f32()[std::size_t(o) * d + i]) * xn[i],
              s3 += double(lw.w3.f32()[std::size_t(o) * d + i]) * xn[i];
        g[o] = float(s1 / (1.0 + std::exp(-s1)) * s3);
      }
      for (int o = 0; o < d; ++o) {
        double s = 0;
        for (int i = 0; i < c.hidden_dim; ++i) s += double(lw.w2.f32()[std::size_t(o) * c.hidden_dim + i]) * g[i];
        x[o] += float(s);
      }
    }
    const float p = sched.percentile_into(l + 1);
    if (l + 1 < c.n_layers && p >= 0.0f) {
      std::vector<double> sorted = last_scores;
      std::sort(sorted.begin(), sorted.end());
      const double thr = sorted[std::min<std::size_t>(std::size_t(std::floor(double(p) * m)), m - 1)];
      std::vector<int> next;
      for (int a = 0; a < m; ++a)
        if (last_scores[a] >= thr || a == m - 1) next.push_back(S[a]);
      S = next;
    }
  }
  auto logits_of = [&](int pos) {
    std::vector<float> xn(d), out(c.vocab_size);
    cpu::rmsnorm(xn.data(), h[pos].data(), w.final_norm.f32(), d, c.norm_eps);
    for (int o = 0; o < c.vocab_size; ++o) {
      double s = 0;
      for (int i = 0; i < d; ++i) s += double(w.classifier.f32()[std::size_t(o) * d + i]) * xn[i];
      out[o] = float(s);
    }
    return out;
  };
  if (all_logits)
    for (int i = 0; i < n; ++i) res.logits.push_back(logits_of(i));
  else
    res.logits.push_back(logits_of(n - 1));
  return res;
}

}  // namespace lazyllm::test
