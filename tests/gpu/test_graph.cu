// Decode steps replayed as one CUDA graph (BasicCudaBackend as a GraphStepBackend) against the
// same steps launched one by one (set_decode_graphs(false)): the same logits, bit for bit, at
// every step, through capacity growth (a new capture), a reset to a shorter prompt (the graph
// reused with fewer keys), the paged layout, head_dim 64 and 128, GQA, bf16 and fp16; and the
// steps that must not take a graph (pruning policies, an attached profiler) do not.
#include <vector>

#include "gpu_util.hpp"
#include "lazyllm/backend/cuda/cuda_backend.cuh"
#include "lazyllm/cache/paged.hpp"
#include "lazyllm/model/sampler.hpp"
#include "lazyllm/policy/lazy.hpp"
#include "pipeline_compare.hpp"
#include "random_model.hpp"

using namespace lazyllm;
using namespace lazyllm::test;

namespace {

template <class Backend, class Policy = policy::Dense, class Layout = ContiguousLayout>
using GPipe = Pipeline<RuntimeConfig, Policy, Layout, Backend>;

RuntimeConfig hd64_gqa() {  // 8 heads of 64, 2 K/V heads
  RuntimeConfig c;
  c.dim = 512;
  c.hidden_dim = 1368;
  c.n_layers = 3;
  c.n_heads = 8;
  c.n_kv_heads = 2;
  c.vocab_size = 512;
  c.max_seq_len = 2048;
  c.rope_style = RopeStyle::Interleaved;
  return c;
}

/// Greedy decode of `steps` tokens after `prompt` tokens, graphs on (g) and off (s), prompt after
/// prompt on the same two pipelines (a reset between them); every step's logits must be equal.
template <class Backend, class Layout = ContiguousLayout>
void graph_matches_stream(const ModelWeights& w, const std::vector<std::pair<int, int>>& runs, int n_ctx,
                          std::int64_t want_captures, int chunk_layers = 0) {
  GPipe<Backend, policy::Dense, Layout> g(Backend{w}, {}, {}, n_ctx), s(Backend{w}, {}, {}, n_ctx);
  if (chunk_layers > 0) g.backend().set_graph_chunk_layers(chunk_layers);
  s.backend().set_decode_graphs(false);
  REQUIRE(g.backend().decode_graphs());
  std::int64_t steps_total = 0;
  for (auto [prompt, steps] : runs) {
    CAPTURE(prompt);
    g.reset();
    s.reset();
    const auto ids = prompt_of(prompt, unsigned(prompt), w.config.vocab_size);
    auto lg = logits_copy(g.prefill(ids));
    auto ls = logits_copy(s.prefill(ids));
    REQUIRE(lg == ls);
    for (int i = 0; i < steps; ++i) {
      CAPTURE(i);
      const std::int32_t next = argmax(ls);
      lg = logits_copy(g.decode(next));
      ls = logits_copy(s.decode(next));
      REQUIRE(lg == ls);  // the same kernels, splits and merge order: bit for bit
    }
    steps_total += steps;
  }
  CHECK(g.backend().graph_steps() == steps_total);
  const int chunk = g.backend().graph_chunk_layers();
  CHECK(g.backend().graph_launches() == steps_total * ((w.config.n_layers + chunk - 1) / chunk));  // graphs per step
  CHECK(g.backend().graph_captures() == want_captures);
  CHECK(s.backend().graph_steps() == 0);
}

}  // namespace

TEST_CASE("decode graph: Llama-2-7B layer shape (MHA and GQA), bf16: bit-identical to stream launches") {
  if (!have_gpu()) return;
  for (int kvh : {32, 8}) {
    CAPTURE(kvh);
    const auto w = random_model(llama7b_like(2, kvh, 1024, 2048), 17u + unsigned(kvh), 0.02f);
    // 300-token prompt: keys 301.. (capacity 512), then past 512 (capacity 1024: a second
    // capture); the split count changes on the way (2 -> 3 -> ... passes of 128 keys). Then a
    // 40-token prompt on the same pipelines: the 1024-key graph again, with 41.. keys.
    graph_matches_stream<CudaBackend>(w, {{300, 230}, {40, 30}}, 2048, 2);
  }
}

TEST_CASE(
    "decode graph: head_dim 64 GQA, bf16 and fp16, contiguous and paged, several graphs per step: bit-identical") {
  if (!have_gpu()) return;
  const auto w = random_model(hd64_gqa(), 5u, 0.05f);
  // 1 token: keys 2..61 (capacity 256); the 200-token prefill moves the scratch (a capture); keys
  // past 256 (capacity 512, a capture).
  graph_matches_stream<CudaBackend>(w, {{1, 60}, {200, 70}}, 2048, 3);
  graph_matches_stream<CudaBackendFp16>(w, {{130, 40}}, 2048, 1);
  graph_matches_stream<CudaBackend, PagedLayout<16>>(w, {{97, 50}}, 2048, 1);
  // 9 layers: three graphs per step (4 + 4 + 1 layers), each captured once; then 1 and 16 layers
  // per graph.
  auto c9 = hd64_gqa();
  c9.n_layers = 9;
  const auto w9 = random_model(c9, 8u, 0.05f);
  graph_matches_stream<CudaBackend>(w9, {{50, 20}}, 2048, 3);
  graph_matches_stream<CudaBackend>(w9, {{50, 20}}, 2048, 9, 1);   // a graph per layer
  graph_matches_stream<CudaBackend>(w9, {{50, 20}}, 2048, 1, 16);  // one graph per step
}

TEST_CASE("decode graph: only for steps that prune nothing, and not while profiling") {
  if (!have_gpu()) return;
  const auto w = random_model(hd64_gqa(), 6u, 0.05f);
  const auto ids = prompt_of(120, 3, w.config.vocab_size);
  {  // LazyLLM prunes in every step (scores from the GPU each time): no graph
    GPipe<CudaBackend, policy::Lazy> p(CudaBackend{w}, policy::Lazy(Schedule::parse("1:0.5,2:0.5")));
    auto l = p.prefill(ids);
    for (int i = 0; i < 5; ++i) l = p.decode(argmax(l));
    CHECK(p.backend().graph_steps() == 0);
  }
  {  // LazyLLM with an empty schedule is the dense model: graphs, and the dense logits
    GPipe<CudaBackend, policy::Lazy> p(CudaBackend{w}, policy::Lazy{});
    GPipe<CudaBackend> d(CudaBackend{w});
    d.backend().set_decode_graphs(false);
    auto l = logits_copy(p.prefill(ids));
    auto ld = logits_copy(d.prefill(ids));
    for (int i = 0; i < 5; ++i) {
      l = logits_copy(p.decode(argmax(ld)));
      ld = logits_copy(d.decode(argmax(ld)));
      CHECK(l == ld);
    }
    CHECK(p.backend().graph_steps() == 5);
  }
  {  // a profiler times single launches: no graph while it is attached
    GPipe<CudaBackend> p(CudaBackend{w});
    gpu::Profiler prof(w.config.n_layers);
    auto l = p.prefill(ids);
    p.backend().set_profiler(&prof);
    prof.begin(p.backend().stream());
    l = p.decode(argmax(l));
    prof.end(p.backend().stream());
    p.backend().set_profiler(nullptr);
    CHECK(p.backend().graph_steps() == 0);
    l = p.decode(argmax(l));
    CHECK(p.backend().graph_steps() == 1);
    CHECK_THROWS_AS(p.backend().set_graph_chunk_layers(0), InvalidArgument);
  }
  {  // an on_layer callback may wait for each layer: no graph while one is set
    GPipe<CudaBackend> p(CudaBackend{w});
    int calls = 0;
    p.on_layer([&](const LayerProgress&) { ++calls; });
    auto l = p.prefill(ids);
    l = p.decode(argmax(l));
    CHECK(calls == 2 * w.config.n_layers);
    CHECK(p.backend().graph_steps() == 0);
  }
}

TEST_CASE("decode graph: a refused step, then reset: graphs again, still the stream's logits") {
  if (!have_gpu()) return;
  const auto w = random_model(hd64_gqa(), 7u, 0.05f);
  GPipe<CudaBackend> p(CudaBackend{w}, {}, {}, 130);
  auto l = logits_copy(p.prefill(prompt_of(128, 4, w.config.vocab_size)));
  l = logits_copy(p.decode(argmax(l)));
  l = logits_copy(p.decode(argmax(l)));
  CHECK(p.backend().graph_steps() == 2);
  CHECK_THROWS_AS(p.decode(argmax(l)), InvalidArgument);  // the context (130) is full
  // The backend is not left recording: a fresh prefill on the same pipeline works, dense vs stream.
  p.reset();
  GPipe<CudaBackend> s(CudaBackend{w}, {}, {}, 130);
  s.backend().set_decode_graphs(false);
  const auto ids = prompt_of(20, 9, w.config.vocab_size);
  auto a = logits_copy(p.prefill(ids));
  auto b = logits_copy(s.prefill(ids));
  CHECK(a == b);
  a = logits_copy(p.decode(argmax(b)));
  b = logits_copy(s.decode(argmax(b)));
  CHECK(a == b);
}
