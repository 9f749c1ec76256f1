// core/cuda/flash_support.cpp under the host emulation (tests/sim/backend_prelude.h), and the
// emulated backend's error hook (core/cuda/runtime.cpp, which is not emulated).
#include "tests/sim/backend_prelude.h"
// The backend source itself, after the prelude.
#include "core/cuda/check.h"
#include "core/cuda/flash_support.cpp"

namespace lt::cuda {

void throw_cuda_error(cudaError_t error, const char* call, const char* file, int line) {
  std::ostringstream message;
  message << file << ":" << line << ": " << call << " failed: " << cudaGetErrorName(error);
  throw Error(message.str());
}

}  // namespace lt::cuda
