// Launchers of the CUDA kernels behind core/cuda/kernels.h (copy/cast, fill, scale, add, bias,
// sum of squares, AdamW): raw device pointers, element strides and sizes. Plain C++ with no CUDA
// and no project headers beyond model_launch.h (the shared dtype enum), so that nvcc
// (base_*.cu) and the C++20 host wrappers (base_ops.cpp) both include it. Every launcher runs on
// the default stream; launch errors throw lt::Error.
#pragma once

#include <cstdint>

#include "core/cuda/model_launch.h"

namespace lt::cuda::launch {

// A 2D view: rows x cols with a row stride of ld elements. n contiguous elements are {1, n, n}.
struct Matrix {
  void* data = nullptr;
  Dt dt = Dt::f32;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t ld = 0;
};

// dst = src converted (round to nearest even into bf16); same rows and cols.
void cast_copy(const Matrix& src, const Matrix& dst);
void fill(const Matrix& t, double value);
void fill_i32(std::int32_t* data, std::int64_t n, std::int32_t value);
// t *= factor (in the compute type).
void scale(const Matrix& t, double factor);
// dst[i] += alpha * src[i] over n contiguous elements (dtypes may differ).
void add(Dt dst_dt, void* dst, Dt src_dt, const void* src, std::int64_t n, double alpha);
// y[r, :] += bias (bias has y's dtype, cols contiguous elements).
void add_bias(const Matrix& y, const void* bias);

// bias_backward sums dy's rows in fixed chunks of bias_chunk_rows(rows) rows (in order within a
// chunk), then the chunks in order: partial holds bias_chunks(rows) * cols compute-type values
// (4 bytes for f32/bf16 dbias, 8 for f64) of device scratch.
inline std::int64_t bias_chunk_rows(std::int64_t rows) {
  const std::int64_t target_chunks = 256;
  const std::int64_t per = (rows + target_chunks - 1) / target_chunks;
  return per < 16 ? 16 : per;
}
inline std::int64_t bias_chunks(std::int64_t rows) {
  const std::int64_t c = bias_chunk_rows(rows);
  return (rows + c - 1) / c;
}
void bias_backward(const Matrix& dy, Dt dbias_dt, void* dbias, void* partial);

// Sum of squares of n contiguous elements in double: blocks of sum_squares_chunk() elements
// reduce in a fixed tree into partial[0, sum_squares_chunks(n)), which one block sums in a fixed
// order into partial[sum_squares_chunks(n)] (device scratch of chunks + 1 doubles). Returns the
// sum (synchronizes).
inline std::int64_t sum_squares_chunk() {
  return 8192;
}
inline std::int64_t sum_squares_chunks(std::int64_t n) {
  return (n + sum_squares_chunk() - 1) / sum_squares_chunk();
}
double sum_squares(Dt dt, const void* x, std::int64_t n, double* partial);

struct AdamWArgs {
  double lr = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double grad_scale = 1.0;
  std::int64_t step = 1;
};
// master, grad, m, v: n contiguous elements of master_dt (f32 or f64); out (nullptr: none)
// receives the updated weights in out_dt.
void adamw_update(Dt master_dt, void* master, const void* grad, void* m, void* v, std::int64_t n,
                  const AdamWArgs& args, Dt out_dt, void* out);

}  // namespace lt::cuda::launch
