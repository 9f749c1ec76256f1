#include "parallel/comm_timing.h"

#include <chrono>

#include "core/error.h"

namespace lt {
namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// Books one non-blocking operation when it is waited for (or destroyed unwaited).
class TimedHandle final : public CommHandle {
 public:
  TimedHandle(std::unique_ptr<CommHandle> inner, std::shared_ptr<CommClock> clock,
              std::string group, std::string op, std::int64_t bytes)
      : inner_(std::move(inner)),
        clock_(std::move(clock)),
        group_(std::move(group)),
        op_(std::move(op)),
        bytes_(bytes),
        issued_(Clock::now()) {}
  ~TimedHandle() override {
    if (!finished_) {
      try {
        wait();
      } catch (...) {  // the inner handle reports its own failure (deadline: the job aborts)
      }
    }
  }
  TimedHandle(const TimedHandle&) = delete;
  TimedHandle& operator=(const TimedHandle&) = delete;

  void wait() override {
    if (finished_) return;
    const auto begin = Clock::now();
    const bool done = inner_->test();
    inner_->wait();
    finish(begin, done);
  }
  bool test() override {
    if (finished_) return true;
    const auto now = Clock::now();
    if (!inner_->test()) return false;
    finish(now, true);
    return true;
  }

 private:
  void finish(Clock::time_point wait_begin, bool done_at_wait) {
    finished_ = true;
    CommOpTimes t;
    t.calls = 1;
    t.async_calls = 1;
    t.hidden_calls = done_at_wait ? 1 : 0;
    t.bytes = bytes_;
    t.window_s = seconds(issued_, wait_begin);
    t.exposed_s = seconds(wait_begin, Clock::now());
    clock_->record(group_, op_, t);
  }

  std::unique_ptr<CommHandle> inner_;
  std::shared_ptr<CommClock> clock_;
  std::string group_, op_;
  std::int64_t bytes_;
  Clock::time_point issued_;
  bool finished_ = false;
};

class TimedCommunicator final : public Communicator {
 public:
  TimedCommunicator(std::unique_ptr<Communicator> inner, std::shared_ptr<CommClock> clock)
      : inner_(std::move(inner)), clock_(std::move(clock)) {
    LT_CHECK(inner_ && clock_, "timed communicator: needs a communicator and a clock");
  }

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  const std::string& name() const override { return inner_->name(); }
  const std::vector<int>& world_ranks() const override { return inner_->world_ranks(); }

  void all_reduce(const Tensor& t, ReduceOp op) override {
    blocking("all_reduce", t, [&] { inner_->all_reduce(t, op); });
  }
  void reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) override {
    blocking("reduce_scatter", input, [&] { inner_->reduce_scatter(input, output, op); });
  }
  void all_gather(const Tensor& input, const Tensor& output) override {
    blocking("all_gather", output, [&] { inner_->all_gather(input, output); });
  }
  void broadcast(const Tensor& t, int root) override {
    blocking("broadcast", t, [&] { inner_->broadcast(t, root); });
  }
  void send(const Tensor& t, int peer, int tag) override {
    blocking("send", t, [&] { inner_->send(t, peer, tag); });
  }
  void recv(const Tensor& t, int peer, int tag) override {
    blocking("recv", t, [&] { inner_->recv(t, peer, tag); });
  }
  void barrier() override {
    const auto begin = Clock::now();
    inner_->barrier();
    book("barrier", 0, begin);
  }
  std::unique_ptr<CommHandle> isend(const Tensor& t, int peer, int tag) override {
    return timed("isend", t, inner_->isend(t, peer, tag));
  }
  std::unique_ptr<CommHandle> irecv(const Tensor& t, int peer, int tag) override {
    return timed("irecv", t, inner_->irecv(t, peer, tag));
  }
  std::unique_ptr<CommHandle> iall_reduce(const Tensor& t, ReduceOp op) override {
    return timed("iall_reduce", t, inner_->iall_reduce(t, op));
  }
  std::unique_ptr<CommHandle> ireduce_scatter(const Tensor& input, const Tensor& output,
                                              ReduceOp op) override {
    return timed("ireduce_scatter", input, inner_->ireduce_scatter(input, output, op));
  }
  std::unique_ptr<CommHandle> iall_gather(const Tensor& input, const Tensor& output) override {
    return timed("iall_gather", output, inner_->iall_gather(input, output));
  }

 private:
  template <class Call>
  void blocking(const char* op, const Tensor& t, Call&& call) {
    const auto begin = Clock::now();
    call();
    book(op, static_cast<std::int64_t>(t.nbytes()), begin);
  }
  void book(const char* op, std::int64_t bytes, Clock::time_point begin) {
    CommOpTimes times;
    times.calls = 1;
    times.bytes = bytes;
    times.exposed_s = seconds(begin, Clock::now());
    clock_->record(inner_->name(), op, times);
  }
  std::unique_ptr<CommHandle> timed(const char* op, const Tensor& t,
                                    std::unique_ptr<CommHandle> handle) {
    return std::make_unique<TimedHandle>(std::move(handle), clock_, inner_->name(), op,
                                         static_cast<std::int64_t>(t.nbytes()));
  }

  std::unique_ptr<Communicator> inner_;
  std::shared_ptr<CommClock> clock_;
};

}  // namespace

CommOpTimes& CommOpTimes::operator+=(const CommOpTimes& o) {
  calls += o.calls;
  async_calls += o.async_calls;
  hidden_calls += o.hidden_calls;
  bytes += o.bytes;
  exposed_s += o.exposed_s;
  window_s += o.window_s;
  return *this;
}

CommOpTimes total_of(const CommTimes& times) {
  CommOpTimes total;
  for (const auto& [key, t] : times) total += t;
  return total;
}

void CommClock::record(const std::string& group, const std::string& op, const CommOpTimes& t) {
  const std::lock_guard<std::mutex> lock(mutex_);
  times_[{group, op}] += t;
}

CommTimes CommClock::take() {
  const std::lock_guard<std::mutex> lock(mutex_);
  CommTimes out;
  out.swap(times_);
  return out;
}

std::unique_ptr<Communicator> make_timed_communicator(std::unique_ptr<Communicator> inner,
                                                      std::shared_ptr<CommClock> clock) {
  return std::make_unique<TimedCommunicator>(std::move(inner), std::move(clock));
}

}  // namespace lt
