// Internals of the MPI communicator (see mpi_communicator.h for the design). Included only by
// parallel/mpi_*.cpp: it is the one header that pulls in mpi.h.
//
// An operation (a send, a ring all-reduce, a barrier...) is a sequence of steps. A step posts
// some sends and receives, and once all of them have completed runs a local action (e.g. adds
// a received chunk into an accumulator). Step sources produce the steps one at a time, so a
// step may depend on the data of the previous ones. A single progress thread per process
// advances every operation in flight; callers only submit operations and wait for them.
#pragma once

#include <mpi.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/dtype.h"
#include "parallel/comm_common.h"
#include "parallel/communicator.h"

namespace lt::mpi_detail {

// The exit code of a job ended by a communication deadline or an MPI failure, and the call that
// prints "longtrain rank R: <message>" and ends the whole job with it (comm_common.h).
using comm_detail::fatal;
using comm_detail::kAbortCode;
// Tag of the creation handshake and of MPI_Comm_create_group on MPI_COMM_WORLD.
inline constexpr int kCreateTag = 7411;

// Ends the job naming `call` and MPI's error text when rc is not MPI_SUCCESS.
void check_mpi(int rc, const char* call);

// One process group: its description (for messages) and its MPI communicators. Shared by the
// Communicator and every operation in flight on it, so the MPI communicators outlive the last
// message sent on them.
struct Group : comm_detail::GroupInfo {
  Group(std::string name, std::vector<int> world_ranks, int rank, std::size_t max_message_bytes);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  std::size_t max_message_bytes;
  // Two communicators over the same members so user tags and collective tags never collide.
  MPI_Comm p2p = MPI_COMM_NULL;
  MPI_Comm coll = MPI_COMM_NULL;
  int tag_ub = 32767;  // the largest tag (MPI guarantees at least this)
};

// Peers are group ranks.
struct Send {
  const void* data;
  std::size_t bytes;
  int peer;
};
struct Recv {
  void* data;
  std::size_t bytes;
  int peer;
};
struct Step {
  std::vector<Send> sends;
  std::vector<Recv> recvs;
  std::function<void()> then;  // runs once every transfer of the step has completed
};

class StepSource {
 public:
  virtual ~StepSource() = default;
  // The next step, or nullopt when this source is exhausted. Called on the progress thread,
  // after the previous step (and its `then`) completed.
  virtual std::optional<Step> next() = 0;
};
using Sources = std::vector<std::unique_ptr<StepSource>>;

// Where an operation's messages go and how to name it.
struct OpContext {
  std::shared_ptr<const Group> group;
  MPI_Comm comm;               // the group's p2p or coll communicator, or MPI_COMM_WORLD
  bool peers_are_world_ranks;  // true on MPI_COMM_WORLD: peers map through group->world_ranks
  int tag;
  std::string what;  // the call, e.g. "all_reduce"
};

class Operation {
 public:
  Operation(OpContext context, Sources sources);
  ~Operation();
  Operation(const Operation&) = delete;
  Operation& operator=(const Operation&) = delete;

  // Progress thread only: posts and tests requests, runs completed steps. Never blocks.
  // Returns true when something moved (a step posted or completed, or the operation done);
  // the progress thread keeps polling closely while things move.
  bool advance();
  bool done() const { return done_.load(std::memory_order_acquire); }
  // Blocks until done; past timeout_s it prints what it waits for and aborts the job.
  void wait(double timeout_s);

 private:
  struct RequestInfo {
    int peer;           // group rank
    std::size_t bytes;  // of the whole transfer (for messages)
    std::size_t segment_bytes;
    bool receiving;
  };

  bool start_next_step();
  void post_recv(const Recv& r);
  void post_send(const Send& s);
  int comm_rank(int peer) const;
  bool step_complete();
  void check_received(std::size_t index, const MPI_Status& status) const;
  void finish();
  std::string waiting_for() const;
  [[noreturn]] void report_timeout(double timeout_s) const;

  OpContext context_;
  Sources sources_;
  std::size_t source_index_ = 0;
  std::optional<Step> step_;
  std::vector<MPI_Request> requests_;
  std::vector<RequestInfo> infos_;
  std::vector<int> completed_;        // scratch for MPI_Testsome
  std::vector<MPI_Status> statuses_;  // scratch for MPI_Testsome
  mutable std::mutex mutex_;          // between the progress thread and waiters
  std::condition_variable finished_;
  std::atomic<bool> done_{false};
};

// Queues `op` on the process's progress thread (started on first use).
void submit(std::shared_ptr<Operation> op);
// Joins the progress thread; DistributedRuntime calls it before MPI_Finalize.
void stop_progress_engine();

// How a tensor of `size` chunks is cut: element offset and length of each chunk.
struct ChunkLayout {
  std::vector<std::int64_t> offset;
  std::vector<std::int64_t> length;
  // `numel` elements in `parts` contiguous chunks whose lengths differ by at most one.
  static ChunkLayout balanced(std::int64_t numel, int parts);
  // `parts` chunks of `chunk` elements each.
  static ChunkLayout equal(std::int64_t chunk, int parts);
};

// Ring reduce-scatter: afterwards `own_out` (length layout.length[rank]) holds the reduction over
// all members of chunk `rank` of `in`. Chunks are cut in slices of at most max_message_bytes of
// accumulator so the scratch stays small; bf16 accumulates in fp32 and rounds once at the end.
std::unique_ptr<StepSource> ring_reduce_scatter(int rank, int size, DType dtype, const void* in,
                                                ChunkLayout layout, void* own_out, ReduceOp op,
                                                std::size_t max_message_bytes);
// Ring all-gather in place: chunk c of `base` (byte offsets/lengths) comes from member c.
std::unique_ptr<StepSource> ring_all_gather(int rank, int size, void* base,
                                            std::vector<std::size_t> offset,
                                            std::vector<std::size_t> bytes);
// Binomial tree from `root`.
std::unique_ptr<StepSource> binomial_broadcast(int rank, int size, int root, void* data,
                                               std::size_t bytes);
// Dissemination barrier: ceil(log2(size)) rounds of 8-byte messages carrying `value`; a member
// receiving a different value calls on_mismatch(peer group rank). Barriers pass 0 everywhere.
std::unique_ptr<StepSource> dissemination(int rank, int size, std::uint64_t value,
                                          std::function<void(int)> on_mismatch);
// One prebuilt step (point-to-point operations).
std::unique_ptr<StepSource> single_step(Step step);

}  // namespace lt::mpi_detail
