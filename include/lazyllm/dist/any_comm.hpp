// SPDX-License-Identifier: MIT
// AnyComm: any Communicator behind one type, so a backend (CpuBackend) takes a communicator as a
// run-time value and Pipeline / Engine are instantiated once whether the model is sharded or not.
#pragma once
#include <concepts>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

#include "lazyllm/dist/communicator.hpp"

namespace lazyllm {

/// Holds any Communicator (copies share it); default: one rank alone (SingleRank), whose
/// collectives do nothing. The collectives cost one virtual call each, next to a layer's work.
class AnyComm {
 public:
  AnyComm() = default;
  template <class C>
  requires(!std::same_as<std::decay_t<C>, AnyComm> && Communicator<std::decay_t<C>>) AnyComm(C&& c)
      : impl_(std::make_shared<Impl<std::decay_t<C>>>(std::forward<C>(c))) {}  // NOLINT: implicit

  int rank() const { return impl_ ? impl_->rank() : 0; }
  int size() const { return impl_ ? impl_->size() : 1; }
  void all_reduce_sum(std::span<float> x) {
    if (impl_) impl_->all_reduce_sum(x);
  }
  void all_reduce_sum(std::span<double> x) {
    if (impl_) impl_->all_reduce_sum(x);
  }
  void broadcast(std::span<std::byte> x, int root) {
    if (impl_)
      impl_->broadcast(x, root);
    else
      SingleRank{}.broadcast(x, root);
  }
  void abort(std::string_view why) noexcept {
    if (impl_) impl_->abort(why);
  }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    virtual void all_reduce_sum(std::span<float>) = 0;
    virtual void all_reduce_sum(std::span<double>) = 0;
    virtual void broadcast(std::span<std::byte>, int) = 0;
    virtual void abort(std::string_view) noexcept = 0;
  };
  template <class C>
  struct Impl final : Base {
    explicit Impl(C c) : comm(std::move(c)) {}
    int rank() const override { return comm.rank(); }
    int size() const override { return comm.size(); }
    void all_reduce_sum(std::span<float> x) override { comm.all_reduce_sum(x); }
    void all_reduce_sum(std::span<double> x) override { comm.all_reduce_sum(x); }
    void broadcast(std::span<std::byte> x, int root) override { comm.broadcast(x, root); }
    void abort(std::string_view why) noexcept override { comm.abort(why); }
    C comm;
  };
  std::shared_ptr<Base> impl_;
};

static_assert(Communicator<AnyComm>);

}  // namespace lazyllm
