// Stand-in for the CUDA runtime header when the CUDA backend's sources are compiled for the host
// emulation (tests/sim, test_cuda_sim only; its include path puts this directory first). It
// brings the execution model (tests/sim/simt.h), the tensor-core primitives (flash_sim.h) and the
// few runtime calls the kernels' launchers make, on host memory.
#pragma once

#define LT_CUDA_SIM 1
#define LT_CUDA_SIM_FULL 1

#include <cstddef>
#include <cstring>

#include "tests/sim/flash_sim.h"

using std::max;
using std::min;

enum cudaError_t { cudaSuccess = 0 };
inline cudaError_t cudaGetLastError() {
  return cudaSuccess;
}
inline const char* cudaGetErrorString(cudaError_t) {
  return "no error (emulated)";
}
inline const char* cudaGetErrorName(cudaError_t) {
  return "cudaSuccess";
}

struct CUstream_st;
using cudaStream_t = CUstream_st*;
#define cudaStreamLegacy (static_cast<cudaStream_t>(nullptr))

enum cudaMemcpyKind {
  cudaMemcpyHostToHost,
  cudaMemcpyHostToDevice,
  cudaMemcpyDeviceToHost,
  cudaMemcpyDeviceToDevice,
  cudaMemcpyDefault
};
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind,
                                   cudaStream_t) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy2DAsync(void* dst, std::size_t dpitch, const void* src,
                                     std::size_t spitch, std::size_t width, std::size_t height,
                                     cudaMemcpyKind, cudaStream_t) {
  for (std::size_t r = 0; r < height; ++r) {
    std::memcpy(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch,
                width);
  }
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t) {
  if (bytes > 0) std::memset(dst, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) {
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr, int) {
  *value = 232448;  // an H100's opt-in shared memory per block
  return cudaSuccess;
}
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
template <class F>
cudaError_t cudaFuncSetAttribute(F, cudaFuncAttribute, int) {
  return cudaSuccess;
}
