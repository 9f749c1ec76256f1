#include "parallel/routed_communicator.h"

#include <utility>

#include "core/error.h"

namespace lt {
namespace {

class RoutedCommunicator final : public Communicator {
 public:
  RoutedCommunicator(std::unique_ptr<Communicator> host, std::unique_ptr<Communicator> device)
      : host_(std::move(host)), device_(std::move(device)) {
    LT_CHECK(host_ && device_, "routed communicator: both communicators are needed");
    LT_CHECK(host_->world_ranks() == device_->world_ranks(),
             "routed communicator '" << host_->name() << "': the host and device communicators "
                                     << "cover different ranks");
  }

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  const std::string& name() const override { return host_->name(); }
  const std::vector<int>& world_ranks() const override { return host_->world_ranks(); }

  void all_reduce(const Tensor& t, ReduceOp op) override { route(t).all_reduce(t, op); }
  void reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) override {
    route(input, output, "reduce_scatter").reduce_scatter(input, output, op);
  }
  void all_gather(const Tensor& input, const Tensor& output) override {
    route(input, output, "all_gather").all_gather(input, output);
  }
  void broadcast(const Tensor& t, int root) override { route(t).broadcast(t, root); }
  void send(const Tensor& t, int peer, int tag) override { route(t).send(t, peer, tag); }
  void recv(const Tensor& t, int peer, int tag) override { route(t).recv(t, peer, tag); }
  void barrier() override { host_->barrier(); }
  std::unique_ptr<CommHandle> isend(const Tensor& t, int peer, int tag) override {
    return route(t).isend(t, peer, tag);
  }
  std::unique_ptr<CommHandle> irecv(const Tensor& t, int peer, int tag) override {
    return route(t).irecv(t, peer, tag);
  }
  std::unique_ptr<CommHandle> iall_reduce(const Tensor& t, ReduceOp op) override {
    return route(t).iall_reduce(t, op);
  }
  std::unique_ptr<CommHandle> ireduce_scatter(const Tensor& input, const Tensor& output,
                                              ReduceOp op) override {
    return route(input, output, "ireduce_scatter").ireduce_scatter(input, output, op);
  }
  std::unique_ptr<CommHandle> iall_gather(const Tensor& input, const Tensor& output) override {
    return route(input, output, "iall_gather").iall_gather(input, output);
  }

 private:
  Communicator& route(const Tensor& t) { return t.device() == Device::cpu ? *host_ : *device_; }
  Communicator& route(const Tensor& input, const Tensor& output, const char* what) {
    LT_CHECK(input.device() == output.device(),
             what << " on '" << name() << "': input " << input.describe() << " and output "
                  << output.describe() << " are on different devices");
    return route(input);
  }

  std::unique_ptr<Communicator> host_;
  std::unique_ptr<Communicator> device_;
};

}  // namespace

std::unique_ptr<Communicator> make_device_routed_communicator(
    std::unique_ptr<Communicator> host, std::unique_ptr<Communicator> device) {
  return std::make_unique<RoutedCommunicator>(std::move(host), std::move(device));
}

}  // namespace lt
