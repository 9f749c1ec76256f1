// make_device_routed_communicator: host tensors go to the host communicator, device tensors to
// the device one, and the group's identity is the host communicator's. Recording stand-ins play
// both sides (the device side needs a GPU for real tensors: that half runs only with one).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/storage.h"
#include "core/tensor.h"
#include "parallel/routed_communicator.h"

namespace lt {
namespace {

class NullHandle final : public CommHandle {
 public:
  void wait() override {}
  bool test() override { return true; }
};

// Records the operations it receives.
class Recorder final : public Communicator {
 public:
  Recorder(std::string name, std::vector<int> ranks, std::vector<std::string>& log)
      : name_(std::move(name)), ranks_(std::move(ranks)), log_(log) {}
  int rank() const override { return 0; }
  int size() const override { return static_cast<int>(ranks_.size()); }
  const std::string& name() const override { return name_; }
  const std::vector<int>& world_ranks() const override { return ranks_; }
  void all_reduce(const Tensor&, ReduceOp) override { note("all_reduce"); }
  void reduce_scatter(const Tensor&, const Tensor&, ReduceOp) override { note("reduce_scatter"); }
  void all_gather(const Tensor&, const Tensor&) override { note("all_gather"); }
  void broadcast(const Tensor&, int) override { note("broadcast"); }
  void send(const Tensor&, int, int) override { note("send"); }
  void recv(const Tensor&, int, int) override { note("recv"); }
  void barrier() override { note("barrier"); }
  std::unique_ptr<CommHandle> isend(const Tensor&, int, int) override { return handle("isend"); }
  std::unique_ptr<CommHandle> irecv(const Tensor&, int, int) override { return handle("irecv"); }
  std::unique_ptr<CommHandle> iall_reduce(const Tensor&, ReduceOp) override {
    return handle("iall_reduce");
  }
  std::unique_ptr<CommHandle> ireduce_scatter(const Tensor&, const Tensor&, ReduceOp) override {
    return handle("ireduce_scatter");
  }
  std::unique_ptr<CommHandle> iall_gather(const Tensor&, const Tensor&) override {
    return handle("iall_gather");
  }

 private:
  void note(const std::string& op) { log_.push_back(name_ + ":" + op); }
  std::unique_ptr<CommHandle> handle(const std::string& op) {
    note(op);
    return std::make_unique<NullHandle>();
  }
  std::string name_;
  std::vector<int> ranks_;
  std::vector<std::string>& log_;
};

struct Routed {
  std::vector<std::string> log;
  std::unique_ptr<Communicator> comm;
  Routed(std::vector<int> host_ranks = {3, 5}, std::vector<int> device_ranks = {3, 5}) {
    comm = make_device_routed_communicator(std::make_unique<Recorder>("host", host_ranks, log),
                                           std::make_unique<Recorder>("nccl", device_ranks, log));
  }
};

void exercise(Communicator& c, const Tensor& a, const Tensor& b) {
  c.all_reduce(a, ReduceOp::sum);
  c.reduce_scatter(a, b, ReduceOp::sum);
  c.all_gather(b, a);
  c.broadcast(a, 1);
  c.send(a, 1, 7);
  c.recv(a, 1, 7);
  c.isend(a, 1, 8)->wait();
  c.irecv(a, 1, 8)->wait();
  c.iall_reduce(a, ReduceOp::max)->wait();
  c.ireduce_scatter(a, b, ReduceOp::sum)->wait();
  c.iall_gather(b, a)->wait();
}

std::vector<std::string> expected_ops(const std::string& side) {
  std::vector<std::string> out;
  for (const char* op : {"all_reduce", "reduce_scatter", "all_gather", "broadcast", "send", "recv",
                         "isend", "irecv", "iall_reduce", "ireduce_scatter", "iall_gather"}) {
    out.push_back(side + ":" + op);
  }
  return out;
}

TEST(RoutedCommunicator, HostTensorsGoToTheHostCommunicator) {
  Routed r;
  EXPECT_EQ(r.comm->name(), "host");
  EXPECT_EQ(r.comm->size(), 2);
  EXPECT_EQ(r.comm->world_ranks(), (std::vector<int>{3, 5}));
  const Tensor a = Tensor::zeros(Shape{4}, DType::f32, MemCategory::communication, Device::cpu);
  const Tensor b = Tensor::zeros(Shape{2}, DType::f32, MemCategory::communication, Device::cpu);
  exercise(*r.comm, a, b);
  EXPECT_EQ(r.log, expected_ops("host"));
  r.log.clear();
  r.comm->barrier();
  EXPECT_EQ(r.log, (std::vector<std::string>{"host:barrier"}));
}

TEST(RoutedCommunicator, RefusesCommunicatorsOverDifferentRanks) {
  try {
    Routed r({0, 1}, {0, 2});
    FAIL() << "communicators over different ranks were accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("different ranks"), std::string::npos) << e.what();
  }
}

TEST(RoutedCommunicator, DeviceTensorsGoToTheDeviceCommunicator) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device";
  Routed r;
  const Tensor a = Tensor::zeros(Shape{4}, DType::f32, MemCategory::communication, Device::cuda);
  const Tensor b = Tensor::zeros(Shape{2}, DType::f32, MemCategory::communication, Device::cuda);
  exercise(*r.comm, a, b);
  EXPECT_EQ(r.log, expected_ops("nccl"));
  const Tensor host = Tensor::zeros(Shape{2}, DType::f32, MemCategory::communication, Device::cpu);
  EXPECT_THROW(r.comm->all_gather(host, a), Error) << "mixed devices";
}

}  // namespace
}  // namespace lt
