// Error checks for CUDA runtime calls: a failure throws lt::Error naming the call, the CUDA
// error and the call site. For core/cuda's implementation files only (includes cuda_runtime.h).
#pragma once

#include <cuda_runtime.h>

#include "core/error.h"

namespace lt::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t error, const char* call, const char* file, int line);

}  // namespace lt::cuda

#define LT_CUDA_CHECK(call)                                                    \
  do {                                                                         \
    const cudaError_t lt_cuda_error_ = (call);                                 \
    if (lt_cuda_error_ != cudaSuccess)                                         \
      ::lt::cuda::throw_cuda_error(lt_cuda_error_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: a bad configuration surfaces here, not at the next call.
#define LT_CUDA_CHECK_LAUNCH() LT_CUDA_CHECK(cudaGetLastError())
