// Copies between host spans and device scratch for the model kernels, on their stream.
#include "core/cuda/model_common.cuh"

namespace lt::cuda::launch {

void copy_to_device(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  LT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, kern::stream()));
}

void copy_to_host(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  LT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, kern::stream()));
  LT_CUDA_CHECK(cudaStreamSynchronize(kern::stream()));
}

void zero_device(void* dst, std::size_t bytes) {
  if (bytes == 0) return;
  LT_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, kern::stream()));
}

std::size_t max_shared_memory_per_block() {
  int device = 0;
  LT_CUDA_CHECK(cudaGetDevice(&device));
  int bytes = 0;
  LT_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return static_cast<std::size_t>(bytes);
}

}  // namespace lt::cuda::launch
