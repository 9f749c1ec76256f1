// The NCCL communicator's groups and operations: initialization, launching on the
// communication stream, completion, deadlines and failures (see nccl_internal.h).
#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "core/error.h"
#include "parallel/nccl_internal.h"

namespace lt::nccl_detail {

namespace {

// Waiting polls (CUDA events and NCCL's state have no blocking wait with a deadline): yield for
// a few microseconds, then sleep with growing intervals so that ranks sharing a core leave it
// to each other. The same figures as the MPI communicator's progress thread.
class Backoff {
 public:
  void pause() {
    if (std::chrono::steady_clock::now() - start_ < std::chrono::microseconds(30)) {
      std::this_thread::yield();
      return;
    }
    sleep_ = std::min(sleep_.count() == 0 ? std::chrono::microseconds(10) : 2 * sleep_,
                      std::chrono::microseconds(200));
    std::this_thread::sleep_for(sleep_);
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::microseconds sleep_{0};
};

// Makes `device` current for the object's lifetime (the destructor may run with another one).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    if (previous_ != device) (void)cudaSetDevice(device);
  }
  ~DeviceGuard() {
    if (previous_ >= 0) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Group

Group::Group(comm_detail::GroupInfo info, double timeout_s, int device)
    : GroupInfo(std::move(info)), timeout_s_(timeout_s), device_(device) {}

void Group::init(const ncclUniqueId& id) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  // Non-blocking: initialization and every later call return at once and report progress
  // through ncclCommGetAsyncError, so every wait can have a deadline and be aborted.
  config.blocking = 0;
  config.commName = name.c_str();  // in NCCL's own logs (NCCL_DEBUG=INFO)
  check(ncclCommInitRankConfig(&comm_, size(), id, rank, &config), "ncclCommInitRankConfig",
        "make_nccl_communicator");
  settle("make_nccl_communicator",
         "waiting for every member to join the NCCL communicator (ncclCommInitRankConfig)");
}

Group::~Group() {
  if (comm_ == nullptr) return;
  DeviceGuard guard(device_);
  // Every Op has completed (they hold the group), so finalizing only tears the connections
  // down. A destructor must not end the job: past the deadline or on an error it reports and
  // aborts the NCCL communicator instead.
  ncclResult_t rc = ncclCommFinalize(comm_);
  if (rc == ncclInProgress) rc = ncclSuccess;
  ncclResult_t state = ncclInProgress;
  const auto deadline = comm_detail::deadline_after(timeout_s_);
  Backoff backoff;
  while (rc == ncclSuccess) {
    rc = ncclCommGetAsyncError(comm_, &state);
    if (rc != ncclSuccess || state != ncclInProgress) break;
    if (std::chrono::steady_clock::now() > deadline) break;
    backoff.pause();
  }
  const ncclResult_t outcome = rc != ncclSuccess ? rc : state;
  if (outcome == ncclSuccess) {
    (void)ncclCommDestroy(comm_);
  } else {
    comm_detail::report("destroying the NCCL communicator of " + describe() + ": " +
                        (outcome == ncclInProgress ? std::string("ncclCommFinalize timed out")
                                                   : std::string(ncclGetErrorString(outcome))) +
                        "; aborting it");
    (void)ncclCommAbort(comm_);
  }
  comm_ = nullptr;
}

void Group::fail(const std::string& message) const {
  comm_detail::report(message);
  // Stops this rank's NCCL kernels (they may spin waiting for a peer) before the job ends.
  if (comm_ != nullptr) (void)ncclCommAbort(comm_);
  comm_detail::abort_job();
}

void Group::check(ncclResult_t rc, const char* call, const std::string& what) const {
  if (rc == ncclSuccess || rc == ncclInProgress) return;
  std::string message = context(what.c_str()) + ": " + call + " failed: " + ncclGetErrorString(rc);
  const char* detail = ncclGetLastError(comm_);
  if (detail != nullptr && *detail != '\0') message += std::string(" (") + detail + ")";
  fail(message);
}

void Group::check_cuda(cudaError_t rc, const char* call, const std::string& what) const {
  if (rc == cudaSuccess) return;
  fail(context(what.c_str()) + ": " + call + " failed: " + cudaGetErrorName(rc) + " (" +
       cudaGetErrorString(rc) + ")");
}

bool Group::busy(const std::string& what) const {
  ncclResult_t state = ncclSuccess;
  check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", what);
  if (state == ncclInProgress) return true;
  check(state, "NCCL (asynchronous error)", what);
  return false;
}

void Group::settle(const std::string& what, const std::string& waiting_for) const {
  const auto deadline = comm_detail::deadline_after(timeout_s_);
  Backoff backoff;
  while (busy(what)) {
    if (std::chrono::steady_clock::now() > deadline) {
      fail(comm_detail::timeout_message(timeout_s_, what, *this, waiting_for));
    }
    backoff.pause();
  }
}

void Group::flush() {
  std::shared_ptr<Op> batch = batch_.lock();
  batch_.reset();
  if (batch && !batch->launched()) batch->launch();
}

// ---------------------------------------------------------------------------------------------
// Op

Op::Op(std::shared_ptr<Group> group, std::string what, bool point_to_point)
    : group_(std::move(group)), what_(std::move(what)), point_to_point_(point_to_point) {}

Op::~Op() {
  if (state_ != State::launched) return;
  try {
    wait();
  } catch (...) {
    // A failing `then` action: the transfers are complete, the scratch is released below.
  }
}

void Op::add(Call call, const char* what, std::string transfer) {
  if (calls_.empty()) {
    what_ = what;
  } else if (("/" + what_ + "/").find("/" + std::string(what) + "/") == std::string::npos) {
    what_ += "/" + std::string(what);  // a batch of several kinds: "isend/irecv"
  }
  calls_.push_back(std::move(call));
  transfers_.push_back(std::move(transfer));
}

void Op::mark_ready() {
  ready_.record(nullptr);
}

void Op::launch() {
  const cudaStream_t stream = group_->stream().handle();
  group_->check_cuda(cudaStreamWaitEvent(stream, ready_.handle(), 0), "cudaStreamWaitEvent", what_);
  group_->check(ncclGroupStart(), "ncclGroupStart", what_);
  for (const Call& call : calls_) group_->check(call(group_->comm(), stream), "enqueue", what_);
  group_->check(ncclGroupEnd(), "ncclGroupEnd", what_);
  // In non-blocking mode the calls are enqueued once NCCL's state leaves ncclInProgress; on
  // first use NCCL connects to the peers here, which needs them to issue the operation too.
  group_->settle(what_,
                 "waiting for NCCL to enqueue it (NCCL connects to the peers on first "
                 "use: does every member issue it?)");
  group_->check_cuda(cudaEventRecord(done_.handle(), stream), "cudaEventRecord", what_);
  calls_.clear();
  state_ = State::launched;
}

bool Op::poll() {
  if (state_ == State::finished) return true;
  if (state_ == State::collecting) {
    group_->flush();  // this Op is the group's open batch
    if (state_ == State::collecting) launch();
  }
  const cudaError_t status = cudaEventQuery(done_.handle());
  if (status == cudaSuccess) {
    finish();
    return true;
  }
  if (status != cudaErrorNotReady) group_->check_cuda(status, "cudaEventQuery", what_);
  (void)cudaGetLastError();   // "not ready" is no error for later calls
  (void)group_->busy(what_);  // fails the job on an asynchronous NCCL error
  return false;
}

void Op::wait() {
  if (poll()) return;
  const auto deadline = comm_detail::deadline_after(group_->timeout_s());
  Backoff backoff;
  while (!poll()) {
    if (std::chrono::steady_clock::now() > deadline) {
      group_->fail(
          comm_detail::timeout_message(group_->timeout_s(), what_, *group_, waiting_for()));
    }
    backoff.pause();
  }
}

void Op::finish() {
  state_ = State::finished;
  // The host saw the transfers complete; the default stream is also made to wait for them, so
  // the ordering holds on the device whatever the host does next.
  done_.wait(nullptr);
  std::vector<std::function<void()>> actions = std::move(then_);
  then_.clear();
  for (const auto& action : actions) action();
  // Scratch goes back to the allocator now: the default stream, on which its next user runs,
  // is ordered after the transfers and after the actions above.
  keep_.clear();
}

std::string Op::waiting_for() const {
  if (point_to_point_) return "waiting for " + join(transfers_);
  return "waiting for every member to complete the NCCL " + join(transfers_) +
         "; NCCL does not say which member is late";
}

}  // namespace lt::nccl_detail
