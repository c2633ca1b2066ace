// SPDX-License-Identifier: MIT
// lazyllm-hf-check: prefill one prompt through an HF Llama directory with the CPU reference and/or
// the CUDA backend and write the logits as JSON, for tools/hf_check/run.py to compare with HF
// transformers. With --reference it also checks the CPU logits against a fixture itself.
// Usage: lazyllm-hf-check -h
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../../examples/common/gpu_probe.hpp"
#include "hf_check.hpp"
#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/cache/contiguous.hpp"
#include "lazyllm/io/load.hpp"
#include "lazyllm/pipeline.hpp"
#include "lazyllm/policy/dense.hpp"

namespace {

using namespace lazyllm;
using namespace lazyllm::hf_check;

const char* kUsage = R"(usage: lazyllm-hf-check --model DIR (--ids IDS | --ids-file FILE | --reference FILE) [options]

  --model DIR         Hugging Face Llama directory (config.json + safetensors)
  --ids IDS           prompt token ids, comma-separated
  --ids-file FILE     prompt token ids, separated by commas and/or whitespace
  --backend B         cpu, cuda or both (default: both)
  --positions P,...   also report the logits at these prompt positions, from a chunked prefill
                      whose chunks end at each of them (the last position is always added)
  --schedule S        also run the CUDA lazy pipeline with this schedule (preset or L:P,...)
  --repeats N         full prefills per CUDA pipeline, the last one timed (default 2)
  --greedy N          also report N greedy (argmax) ids after the prompt, dense and lazy runs
  --out FILE          write the logits as JSON (see tools/hf_check/README.md)
  --reference FILE    a JSON fixture with "prompt" (ids) and rows of logits per position
                      (tests/fixtures/hf_tiny.json); its prompt is used unless --ids is given,
                      and the CPU logits at the last and the --positions positions are
                      compared with its rows: exit 1 when max|a-b|/max|b| > --tol
  --reference-key K   the fixture's key with the logits rows (default: logits_f32)
  --tol X             bound for --reference (default 5e-5)
  -h, --help          this text

Exit status: 0 ok, 1 a --reference check failed, 2 bad usage or input.
)";

std::vector<std::int32_t> parse_ids(const std::string& text, const std::string& what) {
  std::vector<std::int32_t> ids;
  std::string tok;
  auto flush = [&] {
    if (tok.empty()) return;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(tok.c_str(), &end, 10);
    if (errno || *end || v < 0 || v > INT32_MAX) throw InvalidArgument(what + ": '" + tok + "' is not a token id");
    ids.push_back(std::int32_t(v));
    tok.clear();
  };
  for (const char ch : text) {
    if (ch == ',' || std::isspace(static_cast<unsigned char>(ch)))
      flush();
    else
      tok += ch;
  }
  flush();
  if (ids.empty()) throw InvalidArgument(what + ": no token ids");
  return ids;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw InvalidArgument("cannot open '" + path + "'");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_floats(std::ostream& os, std::span<const float> v) {
  char buf[32];
  os << '[';
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) os << ',';
    if (std::isfinite(v[i])) {
      std::snprintf(buf, sizeof buf, "%.9g", double(v[i]));  // round-trips float32
      os << buf;
    } else {
      os << "null";  // JSON has no NaN/inf; the checker treats null as a failure
    }
  }
  os << ']';
}

std::string json_number(double x) { return std::isfinite(x) ? nlohmann::json(x).dump() : std::string("null"); }

void write_run(std::ostream& os, const RunOutput& r, bool with_logits) {
  os << "{\"policy\":" << nlohmann::json(r.policy).dump() << ",\"full_ms\":" << r.full_ms
     << ",\"token_layer_fraction\":" << r.token_layer_fraction << ",\"kept\":" << nlohmann::json(r.lazy_kept).dump();
  if (!r.greedy.empty()) os << ",\"greedy\":" << nlohmann::json(r.greedy).dump();
  if (with_logits) {
    os << ",\n\"last\":";
    write_floats(os, r.last);
  }
  if (!r.at.empty()) {
    os << ",\"chunked_ms\":" << r.chunked_ms
       << ",\"chunked_last_vs_full_max_abs\":" << json_number(impl::max_abs_diff(r.at.back(), r.last)) << ",\n\"at\":[";
    for (std::size_t i = 0; i < r.at.size(); ++i) {
      os << (i ? ",\n" : "");
      write_floats(os, r.at[i]);
    }
    os << ']';
  }
  os << '}';
}

int run(int argc, char** argv) {
  std::string model, ids_text, ids_file, backend = "both", positions_text, schedule, out_path, ref_path,
                                         ref_key = "logits_f32";
  double tol = 5e-5;
  int repeats = 2;
  int greedy = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (i + 1 >= argc) throw InvalidArgument("option " + a + " needs a value (or unknown option; see -h)");
    const std::string v = argv[++i];
    if (a == "--model")
      model = v;
    else if (a == "--ids")
      ids_text = v;
    else if (a == "--ids-file")
      ids_file = v;
    else if (a == "--backend")
      backend = v;
    else if (a == "--positions")
      positions_text = v;
    else if (a == "--schedule")
      schedule = v;
    else if (a == "--out")
      out_path = v;
    else if (a == "--reference")
      ref_path = v;
    else if (a == "--reference-key")
      ref_key = v;
    else if (a == "--tol")
      tol = std::stod(v);
    else if (a == "--repeats")
      repeats = std::stoi(v);
    else if (a == "--greedy")
      greedy = std::stoi(v);
    else
      throw InvalidArgument("unknown option " + a + " (see -h)");
  }
  if (model.empty()) throw InvalidArgument("--model is required (see -h)");
  if (backend != "cpu" && backend != "cuda" && backend != "both")
    throw InvalidArgument("--backend must be cpu, cuda or both (got '" + backend + "')");
  if (!ids_text.empty() && !ids_file.empty()) throw InvalidArgument("give --ids or --ids-file, not both");
  const bool want_cpu = backend != "cuda", want_cuda = backend != "cpu";
  if (!ref_path.empty() && !want_cpu)
    throw InvalidArgument("--reference checks the CPU logits: use --backend cpu or both");

  nlohmann::json ref;
  std::vector<std::int32_t> ids;
  if (!ref_path.empty()) {
    ref = detail::read_json_file(ref_path);
    if (!ref.contains(ref_key) || !ref[ref_key].is_array())
      throw FormatError(ref_path, "has no array '" + ref_key + "'");
    if (ids_text.empty() && ids_file.empty()) {
      if (!ref.contains("prompt")) throw FormatError(ref_path, "has no 'prompt'");
      ids = ref["prompt"].get<std::vector<std::int32_t>>();
    }
  }
  if (!ids_text.empty()) ids = parse_ids(ids_text, "--ids");
  if (!ids_file.empty()) ids = parse_ids(read_text(ids_file), ids_file);
  if (ids.empty()) throw InvalidArgument("no prompt: give --ids, --ids-file or --reference");

  std::set<int> pos_set;
  if (!positions_text.empty()) {
    for (const auto p : parse_ids(positions_text, "--positions")) {
      if (p >= std::int32_t(ids.size()))
        throw InvalidArgument("--positions: " + std::to_string(p) + " is past the prompt's last position " +
                              std::to_string(ids.size() - 1));
      pos_set.insert(p);
    }
    pos_set.insert(int(ids.size()) - 1);
  }
  const std::vector<int> positions(pos_set.begin(), pos_set.end());

  if (want_cuda && !cli::gpu_available())
    throw Error("--backend " + backend +
                ": no CUDA GPU is usable, or this build has no CUDA backend (use --backend cpu)");
  // With the CUDA backend, fp16/bf16 tensors stay as they are in the file (the upload path users
  // get); the CPU reference converts them to fp32 itself.
  const ModelWeights w = load_model(model, LoadOptions{.keep_source_dtype = want_cuda});
  const RuntimeConfig& c = w.config;
  std::cerr << "lazyllm-hf-check: " << model << " (" << w.source_dtype << "): " << c << "; " << ids.size() << " ids\n";
  if (int(ids.size()) > c.max_seq_len)
    throw InvalidArgument("the prompt (" + std::to_string(ids.size()) +
                          " ids) is longer than max_position_embeddings " + std::to_string(c.max_seq_len));

  RunOutput cpu;
  if (want_cpu) {
    Pipeline<RuntimeConfig, policy::Dense, ContiguousLayout, CpuBackend> p(CpuBackend(w), {}, {},
                                                                           int(ids.size()) + greedy);
    cpu.name = "cpu";
    impl::run_pipe(p, ids, positions, 1, cpu, greedy);
    std::cerr << "  cpu: full prefill " << cpu.full_ms << " ms";
    if (!positions.empty()) std::cerr << ", chunked " << cpu.chunked_ms << " ms";
    std::cerr << '\n';
  }
  CudaOutput gpu;
  if (want_cuda) {
    CudaRequest req{ids, positions, schedule, repeats, greedy};
    gpu = run_cuda(w, req);
    std::cerr << "  cuda (" << gpu.device << "): full prefill " << gpu.dense.full_ms << " ms";
    if (gpu.has_lazy)
      std::cerr << ", lazy " << gpu.lazy.policy << " " << gpu.lazy.full_ms << " ms (" << gpu.lazy.token_layer_fraction
                << " of dense token-layers)";
    std::cerr << '\n';
  }

  // Checks that need no reference: the empty lazy schedule and the paged layout are the dense
  // model exactly (same kernels, same order of operations).
  const double lazy_empty_diff = want_cuda ? impl::max_abs_diff(gpu.lazy_empty.last, gpu.dense.last) : 0.0;
  const double paged_diff = want_cuda ? impl::max_abs_diff(gpu.paged.last, gpu.dense.last) : 0.0;
  if (want_cuda)
    std::cerr << "  cuda lazy(empty) vs dense max|diff| " << lazy_empty_diff << ", paged vs contiguous " << paged_diff
              << '\n';

  int status = 0;
  if (!ref_path.empty()) {
    const auto& rows = ref[ref_key];
    auto check = [&](int pos, std::span<const float> got, const char* how) {
      if (pos >= int(rows.size())) throw FormatError(ref_path, ref_key + " has no row " + std::to_string(pos));
      const auto want = rows[std::size_t(pos)].get<std::vector<float>>();
      double max_b = 0;
      for (const float x : want) max_b = std::max(max_b, double(std::abs(x)));
      const double err = impl::max_abs_diff(got, want) / std::max(max_b, 1e-30);
      const bool ok = err <= tol;
      std::cerr << "  reference " << ref_key << " pos " << pos << " (" << how << "): max|a-b|/max|b| = " << err
                << (ok ? " <= " : " > ") << tol << (ok ? "" : "  FAIL") << '\n';
      if (!ok) status = 1;
    };
    check(int(ids.size()) - 1, cpu.last, "full prefill");
    for (std::size_t i = 0; i < positions.size(); ++i) check(positions[i], cpu.at[i], "chunked prefill");
  }

  if (!out_path.empty()) {
    std::ofstream os(out_path);
    if (!os) throw InvalidArgument("cannot write '" + out_path + "'");
    nlohmann::json meta = {{"dim", c.dim},
                           {"hidden_dim", c.hidden_dim},
                           {"n_layers", c.n_layers},
                           {"n_heads", c.n_heads},
                           {"n_kv_heads", c.n_kv_heads},
                           {"vocab_size", c.vocab_size},
                           {"max_seq_len", c.max_seq_len},
                           {"norm_eps", c.norm_eps},
                           {"rope_theta", c.rope_theta},
                           {"tied_embeddings", c.tied_embeddings},
                           {"head_dim", c.head_dim()},
                           {"rope_type", to_string(c.rope_scaling.type)},
                           {"rope_factor", c.rope_scaling.factor},
                           {"attention_bias", c.attention_bias},
                           {"qk_norm", c.qk_norm},
                           {"sliding_window", c.sliding_window}};
    os << "{\"tool\":\"lazyllm-hf-check\",\"model\":" << nlohmann::json(model).dump()
       << ",\"source_dtype\":" << nlohmann::json(w.source_dtype).dump() << ",\"config\":" << meta.dump()
       << ",\"n_ids\":" << ids.size() << ",\"positions\":" << nlohmann::json(positions).dump() << ",\n\"runs\":{";
    bool first = true;
    auto put = [&](const char* name, const RunOutput& r, bool with_logits) {
      os << (first ? "" : ",\n") << '"' << name << "\":";
      write_run(os, r, with_logits);
      first = false;
    };
    if (want_cpu) put("cpu", cpu, true);
    if (want_cuda) {
      put("cuda", gpu.dense, true);
      put("cuda_lazy_empty", gpu.lazy_empty, false);
      put("cuda_paged", gpu.paged, false);
      if (gpu.has_lazy) put("cuda_lazy", gpu.lazy, true);
    }
    os << "},\n\"checks\":{";
    if (want_cuda)
      os << "\"cuda_device\":" << nlohmann::json(gpu.device).dump()
         << ",\"cuda_lazy_empty_vs_dense_max_abs\":" << json_number(lazy_empty_diff)
         << ",\"cuda_paged_vs_contiguous_max_abs\":" << json_number(paged_diff);
    os << "}}\n";
    if (!os) throw Error("writing '" + out_path + "' failed");
  }
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const InvalidArgument& e) {
    std::cerr << "lazyllm-hf-check: " << e.what() << '\n';
    return 2;
  } catch (const FormatError& e) {
    std::cerr << "lazyllm-hf-check: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "lazyllm-hf-check: error: " << e.what() << '\n';
    return 2;
  }
}
