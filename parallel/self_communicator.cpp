#include "parallel/self_communicator.h"

#include "core/error.h"
#include "core/ops.h"

namespace lt {
namespace {

class DoneHandle : public CommHandle {
 public:
  void wait() override {}
  bool test() override { return true; }
};

class SelfCommunicator : public Communicator {
 public:
  SelfCommunicator(std::string name, int world_rank) : name_(std::move(name)), ranks_{world_rank} {}

  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::string& name() const override { return name_; }
  const std::vector<int>& world_ranks() const override { return ranks_; }

  void all_reduce(const Tensor&, ReduceOp) override {}
  void reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp) override {
    copy_same(input, output, "reduce_scatter");
  }
  void all_gather(const Tensor& input, const Tensor& output) override {
    copy_same(input, output, "all_gather");
  }
  void broadcast(const Tensor&, int root) override {
    LT_CHECK(root == 0, "broadcast root " << root << " in a group of one");
  }
  void send(const Tensor&, int peer, int) override { no_peer("send", peer); }
  void recv(const Tensor&, int peer, int) override { no_peer("recv", peer); }
  void barrier() override {}

  std::unique_ptr<CommHandle> isend(const Tensor&, int peer, int) override {
    no_peer("isend", peer);
    return nullptr;
  }
  std::unique_ptr<CommHandle> irecv(const Tensor&, int peer, int) override {
    no_peer("irecv", peer);
    return nullptr;
  }
  std::unique_ptr<CommHandle> iall_reduce(const Tensor&, ReduceOp) override {
    return std::make_unique<DoneHandle>();
  }
  std::unique_ptr<CommHandle> ireduce_scatter(const Tensor& input, const Tensor& output,
                                              ReduceOp op) override {
    reduce_scatter(input, output, op);
    return std::make_unique<DoneHandle>();
  }
  std::unique_ptr<CommHandle> iall_gather(const Tensor& input, const Tensor& output) override {
    all_gather(input, output);
    return std::make_unique<DoneHandle>();
  }

 private:
  static void copy_same(const Tensor& input, const Tensor& output, const char* op) {
    LT_CHECK(input.numel() == output.numel() && input.dtype() == output.dtype(),
             op << " in a group of one: " << input.describe() << " -> " << output.describe());
    if (input.raw() != output.raw()) copy(input, output);
  }
  void no_peer(const char* op, int peer) const {
    throw Error(std::string(op) + " to rank " + std::to_string(peer) + " in group '" + name_ +
                "', which has one member");
  }

  std::string name_;
  std::vector<int> ranks_;
};

}  // namespace

std::unique_ptr<Communicator> make_self_communicator(std::string name, int world_rank) {
  return std::make_unique<SelfCommunicator>(std::move(name), world_rank);
}

}  // namespace lt
