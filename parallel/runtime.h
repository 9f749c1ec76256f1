// The process runtime: MPI initialization and this process's place in the job. Only parallel/
// includes mpi.h; the rest of the framework sees ranks through this header.
#pragma once

namespace lt {

class DistributedRuntime {
 public:
  // Initializes MPI (a single process without mpirun is a world of one).
  DistributedRuntime(int* argc, char*** argv);
  ~DistributedRuntime();
  DistributedRuntime(const DistributedRuntime&) = delete;
  DistributedRuntime& operator=(const DistributedRuntime&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  // Processes of this job on this node (for sharing the cores between them).
  int local_size() const { return local_size_; }
  // This process's index among them (0 .. local_size() - 1, in world-rank order).
  int local_rank() const { return local_rank_; }
  // One rank per GPU: makes CUDA device local_rank() % (devices on this node) current for this
  // process and returns it. Call it before creating CUDA tensors or NCCL communicators (which
  // bind to the device current at their creation). Throws lt::Error without a CUDA device or in
  // a build without the CUDA backend.
  int select_local_gpu() const;
  // Ends the whole job with `code` (from any rank).
  [[noreturn]] void abort(int code) const;

 private:
  int rank_ = 0;
  int world_size_ = 1;
  int local_size_ = 1;
  int local_rank_ = 0;
};

}  // namespace lt
