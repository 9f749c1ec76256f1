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
  // Ends the whole job with `code` (from any rank).
  [[noreturn]] void abort(int code) const;

 private:
  int rank_ = 0;
  int world_size_ = 1;
  int local_size_ = 1;
};

}  // namespace lt
