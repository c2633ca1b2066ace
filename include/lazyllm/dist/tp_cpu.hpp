// SPDX-License-Identifier: MIT
// Tensor parallelism on the CPU: one thread per rank, each with its shard of the model and a
// ThreadComm, running its own Pipeline or Engine with the same calls as the others.
#pragma once
#include <memory>
#include <utility>

#include "lazyllm/backend/cpu/cpu_backend.hpp"
#include "lazyllm/dist/shard.hpp"
#include "lazyllm/dist/thread_comm.hpp"
#include "lazyllm/model/weights.hpp"

namespace lazyllm {

/// One rank of a CPU tensor-parallel run: its communicator and its shard of the model.
struct CpuRank {
  ThreadComm comm;
  std::shared_ptr<const CpuModel> model;  // this rank's shard (share it with Engine<CpuBackend>)

  int rank() const { return comm.rank(); }
  int size() const { return comm.size(); }
  bool leader() const { return comm.rank() == 0; }  // the rank that prints and samples
  /// A backend over the shard (for a Pipeline; an Engine takes `model` and `comm`).
  CpuBackend backend() const { return CpuBackend(model, comm); }
};

/// Runs fn(CpuRank&) on `tp` threads, rank r's with shard {r, tp} of `w` (built on that thread:
/// the slices of the ranks are cut in parallel). Every rank must make the same calls into its
/// backend -- the same prompts, policies, steps and decode tokens: draw the next token on rank 0
/// and broadcast_value() it, or sample from the logits, which are the same bits on every rank.
/// Throws ConfigError before starting any thread when the model does not split over `tp` ranks;
/// otherwise as run_ranks: a failing rank aborts the group and its error is rethrown once every
/// thread has finished. tp = 1 is the unsharded model on the calling thread.
template <class Fn>
void run_tp(const ModelWeights& w, int tp, Fn&& fn) {
  (void)shard_ranges(w.config, Shard{0, tp});  // one clear error before any thread starts
  run_ranks(tp, [&](ThreadComm comm) {
    CpuRank r{comm, std::make_shared<const CpuModel>(w, Shard{comm.rank(), comm.size()})};
    fn(r);
  });
}

}  // namespace lazyllm
