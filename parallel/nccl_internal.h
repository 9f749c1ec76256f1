// Internals of the NCCL communicator (see nccl_communicator.h for the design). Included only by
// parallel/nccl_*.cpp: it is the one header that pulls in nccl.h (and, through it, the CUDA
// runtime's).
//
// A Group is one NCCL communicator with its stream. An Op is one launch on that stream: a
// collective, or a batch of point-to-point transfers issued together. Handles and blocking
// calls wait for Ops; waiting polls the Op's completion event and NCCL's asynchronous error
// state under the group's deadline, and ends the job when either goes wrong.
#pragma once

#include <cuda_runtime.h>
#include <nccl.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cuda/runtime.h"
#include "core/tensor.h"
#include "parallel/comm_common.h"

namespace lt::nccl_detail {

class Op;

// One NCCL communicator over a group and the stream its operations run on. Shared by the
// Communicator and every Op in flight on it, so the NCCL communicator outlives the last
// operation issued on it.
class Group : public comm_detail::GroupInfo {
 public:
  // Binds to `device` (which must be current) and creates the stream; init() joins NCCL.
  Group(comm_detail::GroupInfo info, double timeout_s, int device);
  // Finalizes and destroys the NCCL communicator (under the deadline; aborts it past that).
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  // ncclCommInitRankConfig (non-blocking) with the id every member received, under the deadline.
  // Collective over the members.
  void init(const ncclUniqueId& id);

  double timeout_s() const { return timeout_s_; }
  int device() const { return device_; }
  ncclComm_t comm() const { return comm_; }
  const cuda::Stream& stream() const { return stream_; }

  // Prints `message` as one line, aborts the NCCL communicator so this rank's kernels stop, and
  // ends the job with the communicators' exit code.
  [[noreturn]] void fail(const std::string& message) const;
  // Fails naming the operation, `call` and NCCL's explanation unless rc is ncclSuccess or
  // ncclInProgress (the non-blocking mode's "not finished yet").
  void check(ncclResult_t rc, const char* call, const std::string& what) const;
  // Fails naming the operation and `call` unless rc is cudaSuccess.
  void check_cuda(cudaError_t rc, const char* call, const std::string& what) const;
  // True while NCCL still works on the last call (non-blocking mode); fails on an asynchronous
  // error (a peer gone, a network error...).
  bool busy(const std::string& what) const;
  // Waits until !busy(), failing with a timeout message past the deadline.
  void settle(const std::string& what, const std::string& waiting_for) const;

  // The batch collecting isend / irecv until the next flush (null when none is open).
  std::shared_ptr<Op> open_batch() const { return batch_.lock(); }
  void set_open_batch(const std::shared_ptr<Op>& op) { batch_ = op; }
  // Launches the open batch, if any.
  void flush();

 private:
  double timeout_s_;
  int device_;
  cuda::Stream stream_;
  ncclComm_t comm_ = nullptr;
  // Weak: the handles own the batch (a destroyed handle waits, which flushes it first).
  std::weak_ptr<Op> batch_;
};

// One launch on a group's stream. Built on the caller's thread: NCCL calls are added, then
// launch() issues them together after the default stream's work recorded by mark_ready().
class Op {
 public:
  // An NCCL call to issue on the group's communicator and stream.
  using Call = std::function<ncclResult_t(ncclComm_t, cudaStream_t)>;

  Op(std::shared_ptr<Group> group, std::string what, bool point_to_point);
  // An unfinished Op waits (see CommHandle); one never launched has nothing to wait for.
  ~Op();
  Op(const Op&) = delete;
  Op& operator=(const Op&) = delete;

  // `what` names the call for messages ("isend"; a batch joins the names of its calls);
  // `transfer` is what a timeout message says this call waits for.
  void add(Call call, const char* what, std::string transfer);
  // Keeps a scratch tensor alive until the Op has completed.
  void keep(Tensor scratch) { keep_.push_back(std::move(scratch)); }
  // Runs on completion, after the default stream was made to wait for the Op (e.g. casting a
  // bf16 result back from its fp32 scratch: that copy runs on the default stream).
  void then(std::function<void()> action) { then_.push_back(std::move(action)); }
  // Records the default stream's work so far as what the Op's transfers wait for. Called when
  // the operation is requested; a batch records it again for each call added.
  void mark_ready();
  // Issues the calls (one ncclGroupStart / ncclGroupEnd) on the group's stream after the ready
  // event, waits (under the deadline) until NCCL has enqueued them, and records completion.
  void launch();
  bool point_to_point() const { return point_to_point_; }
  bool launched() const { return state_ != State::collecting; }

  // True once complete (launching an unlaunched batch first); never waits for the transfers.
  bool poll();
  // Until complete, under the deadline; a timeout or an NCCL/CUDA error ends the job.
  void wait();

 private:
  enum class State { collecting, launched, finished };

  void finish();
  std::string waiting_for() const;

  std::shared_ptr<Group> group_;
  std::string what_;
  bool point_to_point_;
  std::vector<Call> calls_;
  std::vector<std::string> transfers_;
  std::vector<Tensor> keep_;
  std::vector<std::function<void()>> then_;
  cuda::Event ready_{false};
  cuda::Event done_{false};
  State state_ = State::collecting;
};

}  // namespace lt::nccl_detail
