// A deliberately simple oracle of the LazyLLM method, independent of the pipeline: no KV cache, no
// Aux Cache, no compaction. Every step recomputes every layer of every token from the embeddings,
// in double precision, with an attention *mask*: token i at layer l attends to the tokens selected
// at layer l in the step where i was first computed at layer l (and to none at later positions).
// Because a token's layer-l output is defined once — by the step that first selected it there —
// this full recompute reproduces exactly what the pipeline caches, parks and revives.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "lazyllm/model/weights.hpp"

namespace lazyllm::test {

class Oracle {
 public:
  /// rule(step, into_layer, positions, scores) -> keep mask; nullptr-like (empty) = never prune.
  using Rule = std::function<std::vector<bool>(int step, int into_layer, const std::vector<int>& positions,
                                               const std::vector<double>& scores)>;
  Oracle(const ModelWeights& w, Rule rule, std::function<bool(int)> prunes_into)
      : w_(w), rule_(std::move(rule)), prunes_(std::move(prunes_into)) {}

  /// Appends tokens; returns the logits after the last one.
  std::vector<double> step(const std::vector<int>& new_tokens) {
    const auto& c = w_.config;
    const int L = c.n_layers, d = c.dim, hd = c.head_dim(), kvd = c.kv_dim(), t = int(sets_.size());
    tokens_.insert(tokens_.end(), new_tokens.begin(), new_tokens.end());
    const int N = int(tokens_.size());
    first_.resize(std::size_t(L));
    for (auto& f : first_) f.resize(std::size_t(N), -1);
    sets_.emplace_back(std::size_t(L));

    std::vector<std::vector<double>> h(static_cast<std::size_t>(N), std::vector<double>(static_cast<std::size_t>(d)));
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < d; ++j) h[i][j] = w_.token_embedding.f32()[std::size_t(tokens_[i]) * d + j];
    std::vector<int> S(static_cast<std::size_t>(N));
    for (int i = 0; i < N; ++i) S[i] = i;
    for (int l = 0; l < L; ++l) {
      sets_[t][l] = S;
      for (int i : S)
        if (first_[l][i] < 0) first_[l][i] = t;
      const auto& lw = w_.layers[l];
      std::vector<std::vector<double>> q(N), k(N), v(N);
      for (int i = 0; i < N; ++i) {
        if (first_[l][i] < 0) continue;
        const auto xn = norm(h[i], lw.attn_norm.f32());
        q[i] = rope(mat(lw.wq.f32(), xn, d), i, c.n_heads);
        k[i] = rope(mat(lw.wk.f32(), xn, kvd), i, c.n_kv_heads);
        v[i] = mat(lw.wv.f32(), xn, kvd);
      }
      std::vector<double> last_scores(S.size(), 0.0);
      for (int i = 0; i < N; ++i) {
        if (first_[l][i] < 0) continue;
        const auto& mask_set = sets_[first_[l][i]][l];
        std::vector<int> keys;
        for (int j : mask_set)
          if (j <= i) keys.push_back(j);
        std::vector<double> att(std::size_t(d), 0.0);
        for (int hh = 0; hh < c.n_heads; ++hh) {
          const int kh = hh / c.group_size();
          std::vector<double> p(keys.size());
          double mx = -1e300, sum = 0;
          for (std::size_t a = 0; a < keys.size(); ++a) {
            double s = 0;
            for (int x = 0; x < hd; ++x) s += q[i][hh * hd + x] * k[keys[a]][kh * hd + x];
            p[a] = s / std::sqrt(double(hd));
            mx = std::max(mx, p[a]);
          }
          for (auto& x : p) sum += (x = std::exp(x - mx));
          for (std::size_t a = 0; a < keys.size(); ++a) {
            p[a] /= sum;
            for (int x = 0; x < hd; ++x) att[hh * hd + x] += p[a] * v[keys[a]][kh * hd + x];
            if (i == N - 1) last_scores[a] += p[a] / c.n_heads;  // keys == S for the newest token
          }
        }
        auto& x = h[i];
        const auto o = mat(lw.wo.f32(), att, d);
        for (int j = 0; j < d; ++j) x[j] += o[j];
        const auto xn = norm(x, lw.ffn_norm.f32());
        auto g = mat(lw.w1.f32(), xn, c.hidden_dim);
        const auto u = mat(lw.w3.f32(), xn, c.hidden_dim);
        for (int j = 0; j < c.hidden_dim; ++j) g[j] = g[j] / (1.0 + std::exp(-g[j])) * u[j];
        const auto f = mat(lw.w2.f32(), g, d, c.hidden_dim);
        for (int j = 0; j < d; ++j) x[j] += f[j];
      }
      if (l + 1 < L && prunes_(l + 1)) {
        const auto keep = rule_(t, l + 1, S, last_scores);
        std::vector<int> next;
        for (std::size_t a = 0; a < S.size(); ++a)
          if (keep[a] || a + 1 == S.size()) next.push_back(S[a]);
        S = next;
      }
    }
    const auto xn = norm(h[N - 1], w_.final_norm.f32());
    return mat(w_.classifier.f32(), xn, c.vocab_size);
  }

  /// The set layer l attended over in step t.
  const std::vector<int>& set(int t, int l) const { return sets_[t][l]; }

 private:
  std::vector<double> norm(const std::vector<double>& x, const float* wt) const {
    double ss = 0;
    for (double v : x) ss += v * v;
    const double s = 1.0 / std::sqrt(ss / double(x.size()) + double(w_.config.norm_eps));
    std::vector<double> out(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) out[i] = x[i] * s * wt[i];
    return out;
  }
  static std::vector<double> mat(const float* W, const std::vector<double>& x, int out, int in = -1) {
    if (in < 0) in = int(x.size());
    std::vector<double> y(std::size_t(out), 0.0);
    for (int o = 0; o < out; ++o)
      for (int i = 0; i < in; ++i) y[o] += double(W[std::size_t(o) * in + i]) * x[i];
    return y;
  }
  std::vector<double> rope(std::vector<double> v, int pos, int heads) const {
    const auto& c = w_.config;
    const int hd = c.head_dim(), half = hd / 2;
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < half; ++i) {
        const double ang = pos * std::pow(double(c.rope_theta), -2.0 * i / hd);
        const int a = h * hd + (c.rope_style == RopeStyle::Interleaved ? 2 * i : i);
        const int b = h * hd + (c.rope_style == RopeStyle::Interleaved ? 2 * i + 1 : i + half);
        const double x0 = v[a], x1 = v[b];
        v[a] = x0 * std::cos(ang) - x1 * std::sin(ang);
        v[b] = x0 * std::sin(ang) + x1 * std::cos(ang);
      }
    return v;
  }

  const ModelWeights& w_;
  Rule rule_;
  std::function<bool(int)> prunes_;
  std::vector<int> tokens_;
  std::vector<std::vector<std::vector<int>>> sets_;  // [step][layer] -> positions
  std::vector<std::vector<int>> first_;              // [layer][position] -> step first computed, -1
};

}  // namespace lazyllm::test
