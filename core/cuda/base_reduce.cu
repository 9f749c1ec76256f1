// Deterministic reductions (launchers of base_launch.h): the bias gradient (column sums in fixed
// row chunks, then the chunks in order) and the sum of squares in double (fixed-size chunks
// reduced by a fixed tree, then the chunk sums by one block). No atomics: the order depends on
// the shapes only, never on the device or the scheduling.
#include "core/cuda/base_common.cuh"

namespace lt::cuda::launch {
namespace {

using kern::comp_t;
using kern::dispatch;
using kern::from_c;
using kern::kThreads;
using kern::to_c;

// partial[k, c] = sum of dy[r, c] for r in chunk k, rows in order.
template <class T, class G>
__global__ void __launch_bounds__(kThreads)
    bias_partial_kernel(const T* dy, std::int64_t ld, std::int64_t rows, std::int64_t cols,
                        std::int64_t per_chunk, comp_t<G>* partial) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const std::int64_t k = blockIdx.y;
  if (c >= cols) return;
  const std::int64_t r0 = k * per_chunk;
  const std::int64_t r1 = r0 + per_chunk < rows ? r0 + per_chunk : rows;
  comp_t<G> sum = 0;
  for (std::int64_t r = r0; r < r1; ++r) sum += static_cast<comp_t<G>>(to_c(dy[r * ld + c]));
  partial[k * cols + c] = sum;
}

// dbias[c] += the chunk sums, chunks in order.
template <class G>
__global__ void __launch_bounds__(kThreads)
    bias_finish_kernel(const comp_t<G>* partial, std::int64_t chunks, std::int64_t cols, G* dbias) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  comp_t<G> sum = to_c(dbias[c]);
  for (std::int64_t k = 0; k < chunks; ++k) sum += partial[k * cols + c];
  dbias[c] = from_c<G>(sum);
}

// partial[b] = sum of squares of chunk b (sum_squares_chunk() elements): each thread sums a
// strided subsequence in order, then the block adds the threads' sums by a fixed tree.
template <class T>
__global__ void __launch_bounds__(kThreads)
    sum_squares_chunk_kernel(const T* x, std::int64_t n, std::int64_t chunk, double* partial) {
  LT_SHARED_ARRAY(double, scratch, 33);
  const std::int64_t begin = static_cast<std::int64_t>(blockIdx.x) * chunk;
  const std::int64_t end = begin + chunk < n ? begin + chunk : n;
  double s = 0.0;
  for (std::int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double v = static_cast<double>(to_c(x[i]));
    s += v * v;
  }
  s = kern::block_sum(s, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

constexpr int kFinishThreads = 1024;

// *out = the sum of partial[0, count) in the same fixed order.
__global__ void __launch_bounds__(kFinishThreads)
    sum_partials_kernel(const double* partial, std::int64_t count, double* out) {
  LT_SHARED_ARRAY(double, scratch, 33);
  double s = 0.0;
  for (std::int64_t i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = kern::block_sum(s, scratch);
  if (threadIdx.x == 0) *out = s;
}

}  // namespace

void bias_backward(const Matrix& dy, Dt dbias_dt, void* dbias, void* partial) {
  if (dy.cols == 0) return;
  const std::int64_t per = bias_chunk_rows(dy.rows);
  const std::int64_t chunks = bias_chunks(dy.rows);
  const unsigned col_blocks = kern::ceil_div(dy.cols, kThreads);
  dispatch(dy.dt, [&](auto ttag) {
    using T = LT_TAG_TYPE(ttag);
    dispatch(dbias_dt, [&](auto gtag) {
      using G = LT_TAG_TYPE(gtag);
      auto* part = static_cast<comp_t<G>*>(partial);
      if (chunks > 0) {
        LT_LAUNCH(dim3(col_blocks, static_cast<unsigned>(chunks)), kThreads, 0,
                  bias_partial_kernel<T, G>)
        (static_cast<const T*>(dy.data), dy.ld, dy.rows, dy.cols, per, part);
        LT_CUDA_CHECK_LAUNCH();
      }
      LT_LAUNCH(col_blocks, kThreads, 0, bias_finish_kernel<G>)
      (part, chunks, dy.cols, static_cast<G*>(dbias));
      LT_CUDA_CHECK_LAUNCH();
    });
  });
}

double sum_squares(Dt dt, const void* x, std::int64_t n, double* partial) {
  if (n == 0) return 0.0;
  const std::int64_t chunks = sum_squares_chunks(n);
  dispatch(dt, [&](auto tag) {
    using T = LT_TAG_TYPE(tag);
    LT_LAUNCH(static_cast<unsigned>(chunks), kThreads, 0, sum_squares_chunk_kernel<T>)
    (static_cast<const T*>(x), n, sum_squares_chunk(), partial);
    LT_CUDA_CHECK_LAUNCH();
  });
  // The total goes after the chunk sums, in the same scratch.
  LT_LAUNCH(1, kFinishThreads, 0, sum_partials_kernel)(partial, chunks, partial + chunks);
  LT_CUDA_CHECK_LAUNCH();
  double total = 0.0;
  LT_CUDA_CHECK(cudaMemcpyAsync(&total, partial + chunks, sizeof(double), cudaMemcpyDeviceToHost,
                                kern::stream()));
  LT_CUDA_CHECK(cudaStreamSynchronize(kern::stream()));
  return total;
}

}  // namespace lt::cuda::launch
