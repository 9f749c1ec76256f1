// Loop skeletons shared by the kernels of base_*.cu: a flat loop that moves V elements per
// access when every pointer allows it, and a loop over a row-strided 2D view. Included only by
// nvcc; element types, conversions and reductions come from model_common.cuh.
#pragma once

#include <cstdint>

#include "core/cuda/base_launch.h"
#include "core/cuda/check.h"
#include "core/cuda/model_common.cuh"

namespace lt::cuda::kern {

constexpr int kThreads = 256;

// Elements one access moves for element types of the given byte sizes: 16 bytes of the widest.
template <class... T>
constexpr int vec_width() {
  std::size_t w = 1;
  ((w = sizeof(T) > w ? sizeof(T) : w), ...);
  return static_cast<int>(16 / w);
}

// True when p is aligned for a V-element access of T.
template <class T>
bool vec_aligned(const void* p, int v) {
  return reinterpret_cast<std::uintptr_t>(p) % (sizeof(T) * static_cast<std::size_t>(v)) == 0;
}

// Calls op.template apply<V>(i) for every V-element group i in [0, n / V), then
// op.template apply<1>(j) for each of the n % V trailing elements j (grid-stride loops).
template <int V, class Op>
__global__ void __launch_bounds__(kThreads) flat_kernel(std::int64_t n, Op op) {
  const std::int64_t groups = n / V;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  const std::int64_t first = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (std::int64_t i = first; i < groups; i += stride) op.template apply<V>(i * V);
  for (std::int64_t j = groups * V + first; j < n; j += stride) op.template apply<1>(j);
}

inline unsigned flat_blocks(std::int64_t work) {
  const std::int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > (1 << 20) ? (1 << 20) : blocks));
}

// Runs op over n elements: V-wide when `aligned`, element by element otherwise.
template <int V, class Op>
void launch_flat(std::int64_t n, bool aligned, const Op& op) {
  if (n <= 0) return;
  if (aligned && V > 1) {
    LT_LAUNCH(flat_blocks(n / V), kThreads, 0, flat_kernel<V, Op>)(n, op);
  } else {
    LT_LAUNCH(flat_blocks(n), kThreads, 0, flat_kernel<1, Op>)(n, op);
  }
  LT_CUDA_CHECK_LAUNCH();
}

// Calls op(r, c) for every element of a rows x cols view: blockIdx.y walks rows, x columns.
template <class Op>
__global__ void __launch_bounds__(kThreads)
    rows_kernel(std::int64_t rows, std::int64_t cols, Op op) {
  for (std::int64_t r = blockIdx.y; r < rows; r += gridDim.y)
    for (std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
         c < cols; c += static_cast<std::int64_t>(gridDim.x) * blockDim.x)
      op(r, c);
}

template <class Op>
void launch_rows(std::int64_t rows, std::int64_t cols, const Op& op) {
  if (rows <= 0 || cols <= 0) return;
  const std::int64_t x = (cols + kThreads - 1) / kThreads;
  const dim3 grid(static_cast<unsigned>(x > 1024 ? 1024 : x),
                  static_cast<unsigned>(rows > 65535 ? 65535 : rows));
  LT_LAUNCH(grid, kThreads, 0, rows_kernel<Op>)(rows, cols, op);
  LT_CUDA_CHECK_LAUNCH();
}

// A view is one contiguous run of rows * cols elements.
inline bool contiguous(const launch::Matrix& m) {
  return m.rows <= 1 || m.ld == m.cols;
}

}  // namespace lt::cuda::kern
