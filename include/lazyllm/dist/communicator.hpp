// SPDX-License-Identifier: MIT
// The Communicator customisation point: the collectives tensor parallelism needs (all-reduce sum,
// broadcast) between the ranks of one group, each rank a thread or a process of its own.
#pragma once
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "lazyllm/detail/error.hpp"

namespace lazyllm {

/// A collective could not complete because the group was aborted: a rank failed (its error is
/// the reason), finished while others waited, or the ranks made different calls. Every pending
/// and later collective of the group throws it; the group must be made again.
class CommAborted : public Error {
 public:
  using Error::Error;
};

/// A communicator is one rank's handle on a group of `size()` ranks. Every rank makes the same
/// collective calls in the same order with the same sizes (Megatron-style tensor parallelism
/// does: every rank runs the same step on its own slice of the model). It provides
///  - `rank()`, `size()`;
///  - `all_reduce_sum(std::span<float>)` and `(std::span<double>)`: in place, every rank ends with
///    the element-wise sum over the ranks, the same bits on every rank;
///  - `broadcast(std::span<std::byte>, int root)`: in place, every rank ends with root's bytes;
///  - `abort(std::string_view why)`: a rank that fails tells the group; every pending and later
///    collective of every rank throws CommAborted (why) instead of waiting for it. noexcept.
/// The spans are in the memory the communicator works on: host memory for ThreadComm
/// (dist/thread_comm.hpp), the rank's GPU memory for NcclComm (dist/nccl_comm.cuh).
template <class C>
concept Communicator = requires(C& c, const C& cc, std::span<float> f, std::span<double> d, std::span<std::byte> b,
                                int root, std::string_view why) {
  { cc.rank() } -> std::convertible_to<int>;
  { cc.size() } -> std::convertible_to<int>;
  c.all_reduce_sum(f);
  c.all_reduce_sum(d);
  c.broadcast(b, root);
  c.abort(why);
};

/// One rank alone: every collective leaves its data as it is (the sum over one rank is itself).
struct SingleRank {
  static constexpr int rank() { return 0; }
  static constexpr int size() { return 1; }
  void all_reduce_sum(std::span<float>) {}
  void all_reduce_sum(std::span<double>) {}
  void broadcast(std::span<std::byte>, int root) {
    if (root != 0) throw InvalidArgument("broadcast: root " + std::to_string(root) + " is outside 0..0");
  }
  void abort(std::string_view) noexcept {}
};

/// `v` on every rank becomes root's `v` (a trivially copyable value in host memory: a sampled
/// token id, a flag). Communicators that work on device memory stage it through their
/// `broadcast_host` (NcclComm has one).
template <class C, class T>
void broadcast_value(C& comm, T& v, int root = 0) {
  static_assert(std::is_trivially_copyable_v<T>, "lazyllm: broadcast_value needs a trivially copyable value");
  const std::span<std::byte> bytes(reinterpret_cast<std::byte*>(&v), sizeof(T));
  if constexpr (requires { comm.broadcast_host(bytes, root); })
    comm.broadcast_host(bytes, root);
  else
    comm.broadcast(bytes, root);
}

namespace detail {
template <class C>
constexpr bool check_communicator() {
  static_assert(Communicator<C>,
                "lazyllm: a Communicator must provide `int rank() const`, `int size() const`, "
                "`all_reduce_sum(std::span<float>)`, `all_reduce_sum(std::span<double>)`, "
                "`broadcast(std::span<std::byte>, int root)` and `abort(std::string_view)` "
                "(see include/lazyllm/dist/communicator.hpp)");
  return true;
}
}  // namespace detail

static_assert(Communicator<SingleRank>);

}  // namespace lazyllm
