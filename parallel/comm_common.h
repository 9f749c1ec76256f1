// What the MPI and NCCL communicators share: how a group is named in messages, the argument
// checks of the Communicator calls, the timeout message, and the end of the job on a deadline
// or a library failure. Private to parallel/ (included only by parallel/*.cpp); free of MPI and
// CUDA types.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"
#include "parallel/communicator.h"

namespace lt::comm_detail {

// The exit code of a job ended by a communication deadline or a communication library failure.
inline constexpr int kAbortCode = 3;

// A process group as messages name it.
struct GroupInfo {
  std::string name;
  std::vector<int> world_ranks;  // by group rank
  int rank = 0;                  // this process's group rank

  int size() const { return static_cast<int>(world_ranks.size()); }
  int world_rank_of(int group_rank) const {
    return world_ranks[static_cast<std::size_t>(group_rank)];
  }
  // "group 'dp' (ranks [1, 3])"
  std::string describe() const;
  // "all_reduce on group 'dp' (ranks [1, 3])": the prefix of every argument error.
  std::string context(const char* what) const;
};

// The calls of the Communicator interface as both implementations build them: each starts an
// operation (start_*: checks the arguments on the caller's thread, throwing lt::Error before
// anything is sent, then starts the operation) and returns a handle to it, or null when there is
// nothing to wait for. A blocking call waits for that handle; a non-blocking call returns it.
class GroupCommunicator : public Communicator {
 public:
  // `group` belongs to the implementation and outlives this object.
  explicit GroupCommunicator(const GroupInfo& group) : group_info_(group) {}

  int rank() const final { return group_info_.rank; }
  int size() const final { return group_info_.size(); }
  const std::string& name() const final { return group_info_.name; }
  const std::vector<int>& world_ranks() const final { return group_info_.world_ranks; }

  void all_reduce(const Tensor& t, ReduceOp op) final {
    complete(start_all_reduce(t, op, "all_reduce"));
  }
  void reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) final {
    complete(start_reduce_scatter(input, output, op, "reduce_scatter"));
  }
  void all_gather(const Tensor& input, const Tensor& output) final {
    complete(start_all_gather(input, output, "all_gather"));
  }
  void broadcast(const Tensor& t, int root) final { complete(start_broadcast(t, root)); }
  void send(const Tensor& t, int peer, int tag) final {
    complete(start_p2p(t, peer, tag, true, "send"));
  }
  void recv(const Tensor& t, int peer, int tag) final {
    complete(start_p2p(t, peer, tag, false, "recv"));
  }
  void barrier() final { complete(start_barrier()); }

  std::unique_ptr<CommHandle> isend(const Tensor& t, int peer, int tag) final {
    return handle(start_p2p(t, peer, tag, true, "isend"));
  }
  std::unique_ptr<CommHandle> irecv(const Tensor& t, int peer, int tag) final {
    return handle(start_p2p(t, peer, tag, false, "irecv"));
  }
  std::unique_ptr<CommHandle> iall_reduce(const Tensor& t, ReduceOp op) final {
    return handle(start_all_reduce(t, op, "iall_reduce"));
  }
  std::unique_ptr<CommHandle> ireduce_scatter(const Tensor& input, const Tensor& output,
                                              ReduceOp op) final {
    return handle(start_reduce_scatter(input, output, op, "ireduce_scatter"));
  }
  std::unique_ptr<CommHandle> iall_gather(const Tensor& input, const Tensor& output) final {
    return handle(start_all_gather(input, output, "iall_gather"));
  }

 protected:
  // The started operation; null: nothing to wait for. `what` names the call in messages.
  using Started = std::unique_ptr<CommHandle>;
  virtual Started start_all_reduce(const Tensor& t, ReduceOp op, const char* what) = 0;
  virtual Started start_reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op,
                                       const char* what) = 0;
  virtual Started start_all_gather(const Tensor& input, const Tensor& output, const char* what) = 0;
  virtual Started start_broadcast(const Tensor& t, int root) = 0;
  virtual Started start_barrier() = 0;
  virtual Started start_p2p(const Tensor& t, int peer, int tag, bool sending, const char* what) = 0;

 private:
  static void complete(const Started& started) {
    if (started) started->wait();
  }
  // A completed handle for "nothing to wait for".
  static std::unique_ptr<CommHandle> handle(Started started);

  const GroupInfo& group_info_;
};

// Prints "longtrain rank R: <message>" (R: the world rank) to stderr as one line.
void report(const std::string& message);
// Ends the whole job (MPI_Abort) with kAbortCode.
[[noreturn]] void abort_job();
// report, then abort_job.
[[noreturn]] void fatal(const std::string& message);

// "timeout after 2.0 s in all_reduce on group 'dp' (ranks [0, 1]) <waiting_for>"
std::string timeout_message(double timeout_s, const std::string& what, const GroupInfo& group,
                            const std::string& waiting_for);
// now + timeout_s, bounded so that a huge timeout cannot overflow the clock arithmetic.
std::chrono::steady_clock::time_point deadline_after(double timeout_s);

// --- creation checks: throw lt::Error naming `factory` (e.g. "make_mpi_communicator") ---------

void check_timeout(const char* factory, const std::string& name, double timeout_s);
// This process's group rank in `ranks` (world rank `me` in a world of `world` ranks); throws on
// an empty list, a rank outside the world, a duplicate, or `me` not being a member.
int check_members(const char* factory, const std::string& name, const std::vector<int>& ranks,
                  int me, int world);

// --- argument checks of the Communicator calls: throw lt::Error starting with
// group.context(what), before anything is sent, so no member is left waiting --------------------

// Defined, on `device` (`kind` names the communicator in the message, e.g. "MPI") and contiguous.
void check_tensor(const GroupInfo& group, const Tensor& t, Device device, const char* kind,
                  const char* what, const char* role);
// reduce_scatter (whole: the input, part: the output) and all_gather (whole: the output, part:
// the input): `whole` holds group.size() chunks, each the size of `part`, of the same dtype;
// `part` is either exactly this member's chunk of `whole` (in place) or disjoint from it
// (partial overlaps would be read after being overwritten).
void check_chunks(const GroupInfo& group, const Tensor& whole, const Tensor& part,
                  const char* whole_role, const char* part_role, const char* what);
// A group rank: `role` is "peer" or "root".
void check_group_rank(const GroupInfo& group, int r, const char* role, const char* what);
void check_tag(const GroupInfo& group, int tag, int tag_ub, const char* what);

}  // namespace lt::comm_detail
