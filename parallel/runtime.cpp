#include "parallel/runtime.h"

#include <mpi.h>

#include <cstdlib>

#include "core/error.h"
#include "parallel/mpi_internal.h"
#ifdef LT_HAVE_CUDA
#include "core/cuda/runtime.h"
#endif

namespace lt {

DistributedRuntime::DistributedRuntime(int* argc, char*** argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    // The MPI communicator's progress thread calls MPI while the caller may too (creating a
    // communicator, aborting on a deadline): that takes MPI_THREAD_MULTIPLE. A library that
    // provides less still runs single-process code; make_mpi_communicator reports it.
    int provided = MPI_THREAD_SINGLE;
    MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size_);
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_free(&node);
}

DistributedRuntime::~DistributedRuntime() {
  // No MPI call may run on the progress thread once MPI_Finalize has begun.
  mpi_detail::stop_progress_engine();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

int DistributedRuntime::select_local_gpu() const {
#ifdef LT_HAVE_CUDA
  cuda::set_device_for_local_rank(local_rank_);
  return cuda::current_device();
#else
  throw Error("select_local_gpu: this build has no CUDA backend");
#endif
}

void DistributedRuntime::abort(int code) const {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace lt
