// make_timed_communicator and logging.comm_timing: blocking calls are exposed for their whole
// duration; non-blocking ones are hidden when complete before their wait, with the issue-to-wait
// window and the time inside wait() booked apart; the trainer's step figures come from it and
// timing changes no result. Stand-in communicators with handles that finish when told to and
// calls that take a known time make the figures checkable.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "parallel/comm_timing.h"
#include "trainer/config.h"
#include "trainer/trainer.h"

namespace lt {
namespace {

using namespace std::chrono_literals;

// Completes when `done` is set, or after `wait_time` in wait().
class SlowHandle final : public CommHandle {
 public:
  SlowHandle(std::shared_ptr<bool> done, std::chrono::milliseconds wait_time)
      : done_(std::move(done)), wait_time_(wait_time) {}
  void wait() override {
    if (!*done_) std::this_thread::sleep_for(wait_time_);
    *done_ = true;
  }
  bool test() override { return *done_; }

 private:
  std::shared_ptr<bool> done_;
  std::chrono::milliseconds wait_time_;
};

// Blocking calls take `call_time`; non-blocking ones return SlowHandles over `done`.
class SlowCommunicator final : public Communicator {
 public:
  SlowCommunicator(std::chrono::milliseconds call_time, std::shared_ptr<bool> done)
      : call_time_(call_time), done_(std::move(done)) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  const std::string& name() const override { return name_; }
  const std::vector<int>& world_ranks() const override { return ranks_; }
  void all_reduce(const Tensor&, ReduceOp) override { std::this_thread::sleep_for(call_time_); }
  void reduce_scatter(const Tensor&, const Tensor&, ReduceOp) override {}
  void all_gather(const Tensor&, const Tensor&) override {}
  void broadcast(const Tensor&, int) override {}
  void send(const Tensor&, int, int) override {}
  void recv(const Tensor&, int, int) override {}
  void barrier() override {}
  std::unique_ptr<CommHandle> isend(const Tensor&, int, int) override { return handle(); }
  std::unique_ptr<CommHandle> irecv(const Tensor&, int, int) override { return handle(); }
  std::unique_ptr<CommHandle> iall_reduce(const Tensor&, ReduceOp) override { return handle(); }
  std::unique_ptr<CommHandle> ireduce_scatter(const Tensor&, const Tensor&, ReduceOp) override {
    return handle();
  }
  std::unique_ptr<CommHandle> iall_gather(const Tensor&, const Tensor&) override {
    return handle();
  }

 private:
  std::unique_ptr<CommHandle> handle() { return std::make_unique<SlowHandle>(done_, 30ms); }
  std::chrono::milliseconds call_time_;
  std::shared_ptr<bool> done_;
  std::string name_ = "cp";
  std::vector<int> ranks_ = {0, 1};
};

struct Timed {
  std::shared_ptr<CommClock> clock = std::make_shared<CommClock>();
  std::shared_ptr<bool> done = std::make_shared<bool>(false);
  std::unique_ptr<Communicator> comm =
      make_timed_communicator(std::make_unique<SlowCommunicator>(20ms, done), clock);
  Tensor t = Tensor::zeros(Shape{256}, DType::f32, MemCategory::communication, Device::cpu);
};

TEST(CommTiming, ABlockingCallIsExposedForItsWholeDuration) {
  Timed x;
  x.comm->all_reduce(x.t, ReduceOp::sum);
  const CommTimes times = x.clock->take();
  ASSERT_EQ(times.size(), 1u);
  const auto& [key, t] = *times.begin();
  EXPECT_EQ(key, (std::pair<std::string, std::string>{"cp", "all_reduce"}));
  EXPECT_EQ(t.calls, 1);
  EXPECT_EQ(t.async_calls, 0);
  EXPECT_EQ(t.bytes, 1024);
  EXPECT_GE(t.exposed_s, 0.020);
  EXPECT_EQ(t.window_s, 0.0);
  EXPECT_TRUE(x.clock->take().empty()) << "take() starts over";
}

TEST(CommTiming, ACallCompleteBeforeItsWaitIsHidden) {
  Timed x;
  auto h = x.comm->isend(x.t, 1, 0);
  std::this_thread::sleep_for(15ms);  // "compute"
  *x.done = true;                     // the transfer finished meanwhile
  h->wait();
  const CommOpTimes t = total_of(x.clock->take());
  EXPECT_EQ(t.calls, 1);
  EXPECT_EQ(t.async_calls, 1);
  EXPECT_EQ(t.hidden_calls, 1);
  EXPECT_GE(t.window_s, 0.015);
  EXPECT_LT(t.exposed_s, 0.015);
}

TEST(CommTiming, TheWaitOfAnUnfinishedCallIsExposed) {
  Timed x;
  auto h = x.comm->iall_gather(x.t, x.t);
  std::this_thread::sleep_for(5ms);
  h->wait();  // not done: waits 30 ms
  const CommOpTimes t = total_of(x.clock->take());
  EXPECT_EQ(t.hidden_calls, 0);
  EXPECT_GE(t.window_s, 0.005);
  EXPECT_GE(t.exposed_s, 0.030);
}

TEST(CommTiming, ADestroyedHandleIsBookedOnceAndTestCompletesIt) {
  Timed x;
  { auto h = x.comm->irecv(x.t, 1, 0); }
  *x.done = true;
  auto h = x.comm->iall_reduce(x.t, ReduceOp::sum);
  EXPECT_TRUE(h->test());
  h->wait();  // already booked by test(): not again
  const CommTimes times = x.clock->take();
  EXPECT_EQ(times.at({"cp", "irecv"}).calls, 1);
  EXPECT_EQ(times.at({"cp", "iall_reduce"}).calls, 1);
  EXPECT_EQ(times.at({"cp", "iall_reduce"}).hidden_calls, 1);
  EXPECT_EQ(total_of(times).calls, 2);
}

const char* kConfig = R"(
model: {dim: 32, layers: 1, heads: 2, kv_heads: 1, ffn: 64, vocab: 192}
data: {seq_len: 64, num_pairs: 4, num_queries: 4}
train: {steps: 3, global_batch: 2, micro_batch: 1, eval_every: 0, threads: 1}
logging: {dir: "", level: warn}
)";

// One process has nothing to communicate (single-member groups short-circuit): timing on
// changes no result and books nothing. tests/mpi/test_parallel_training checks the figures of
// real layouts.
TEST(CommTiming, OneProcessBooksNothingAndTimingChangesNoResult) {
  Trainer plain(parse_config(kConfig, "timing.yaml", {}), ProcessInfo{});
  Trainer timed(parse_config(kConfig, "timing.yaml", {"logging.comm_timing=true"}), ProcessInfo{});
  for (int step = 0; step < 3; ++step) {
    const StepResult a = plain.train_step(step), b = timed.train_step(step);
    EXPECT_EQ(a.loss, b.loss) << "step " << step;
    EXPECT_EQ(a.grad_norm, b.grad_norm) << "step " << step;
    EXPECT_EQ(a.comm.calls, 0);
    EXPECT_EQ(b.comm.calls, 0);
  }
}

}  // namespace
}  // namespace lt
