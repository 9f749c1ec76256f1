// Copies, fills, scaled adds and the deterministic sum of squares.
#include <cblas.h>

#include <vector>

#include "core/cpu/common.h"
#include "core/cpu/kernels.h"

namespace lt::cpu {

void set_num_threads(int threads) {
  omp_set_num_threads(std::max(1, threads));
  // Our kernels own the threads; BLAS runs single-threaded inside them.
  openblas_set_num_threads(1);
}

int num_threads() {
  return omp_get_max_threads();
}

namespace {

template <class Src, class Dst>
void copy_rows(const Tensor& src, const Tensor& dst, std::int64_t rows, std::int64_t cols) {
  const Src* s = src.data<Src>();
  Dst* d = dst.data<Dst>();
  const std::int64_t ls = src.row_stride(), ld = dst.row_stride();
  parallel_ranges(rows, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(1, cols)),
                  [&](std::int64_t r0, std::int64_t r1) {
                    for (std::int64_t r = r0; r < r1; ++r)
                      for (std::int64_t c = 0; c < cols; ++c)
                        store(d, r * ld + c, static_cast<compute_t<Dst>>(load(s, r * ls + c)));
                  });
}

// Views a tensor as rows x cols (2D as is; anything else as one contiguous row).
std::pair<std::int64_t, std::int64_t> as_matrix(const Tensor& t) {
  if (t.rank() == 2) return {t.dim(0), t.dim(1)};
  LT_CHECK(t.is_contiguous(), "strided tensor of rank " << t.rank());
  return {1, t.numel()};
}

}  // namespace

void copy(const Tensor& src, const Tensor& dst) {
  LT_CHECK(src.numel() == dst.numel(), "copy " << src.describe() << " -> " << dst.describe());
  auto [rows, cols] = as_matrix(src);
  auto [drows, dcols] = as_matrix(dst);
  if (rows != drows || cols != dcols) {
    LT_CHECK(src.is_contiguous() && dst.is_contiguous(), "copy between differently shaped views");
    rows = 1;
    cols = src.numel();
  }
  if (src.dtype() == DType::i32 || dst.dtype() == DType::i32) {
    LT_CHECK(src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous(),
             "copy of i32");
    std::copy_n(src.data<std::int32_t>(), src.numel(), dst.data<std::int32_t>());
    return;
  }
  dispatch_float(src.dtype(), [&]<class S>() {
    dispatch_float(dst.dtype(), [&]<class D>() { copy_rows<S, D>(src, dst, rows, cols); });
  });
}

void fill(const Tensor& t, double value) {
  auto [rows, cols] = as_matrix(t);
  if (t.dtype() == DType::i32) {
    std::fill_n(t.data<std::int32_t>(), t.numel(), static_cast<std::int32_t>(value));
    return;
  }
  dispatch_float(t.dtype(), [&]<class T>() {
    T* p = t.data<T>();
    const std::int64_t ld = t.rank() == 2 ? t.row_stride() : cols;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c)
        store(p, r * ld + c, static_cast<compute_t<T>>(value));
  });
}

namespace {

template <class D, class S>
void add_typed(const Tensor& dst, const Tensor& src, double alpha) {
  using C = compute_t<D>;
  D* d = dst.data<D>();
  const S* s = src.data<S>();
  const C a = static_cast<C>(alpha);
  parallel_ranges(dst.numel(), 1 << 15, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
    for (std::int64_t i = i0; i < i1; ++i) store(d, i, load(d, i) + a * static_cast<C>(load(s, i)));
  });
}

template <class T>
void scale_typed(const Tensor& t, double factor) {
  T* p = t.data<T>();
  const auto f = static_cast<compute_t<T>>(factor);
  parallel_ranges(t.numel(), 1 << 15, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
    for (std::int64_t i = i0; i < i1; ++i) store(p, i, load(p, i) * f);
  });
}

// Fixed-size chunks summed in order: the result does not depend on the thread count.
constexpr std::int64_t kSumChunk = 4096;

template <class T>
void chunk_sum_squares(const Tensor& t, std::span<double> partial) {
  const T* p = t.data<T>();
  const std::int64_t n = t.numel();
  parallel_ranges(static_cast<std::int64_t>(partial.size()), 16,
                  [&](std::int64_t c0, std::int64_t c1) {
                    for (std::int64_t c = c0; c < c1; ++c) {
                      double s = 0.0;
                      const std::int64_t end = std::min(n, (c + 1) * kSumChunk);
                      for (std::int64_t i = c * kSumChunk; i < end; ++i) {
                        const double v = static_cast<double>(load(p, i));
                        s += v * v;
                      }
                      partial[static_cast<std::size_t>(c)] = s;
                    }
                  });
}

}  // namespace

void add(const Tensor& dst, const Tensor& src, double alpha) {
  LT_CHECK(dst.numel() == src.numel() && dst.is_contiguous() && src.is_contiguous(),
           "add " << src.describe() << " into " << dst.describe());
  dispatch_float(dst.dtype(), [&]<class D>() {
    dispatch_float(src.dtype(), [&]<class S>() { add_typed<D, S>(dst, src, alpha); });
  });
}

void scale(const Tensor& t, double factor) {
  LT_CHECK(t.is_contiguous(), "scale of a strided tensor");
  dispatch_float(t.dtype(), [&]<class T>() { scale_typed<T>(t, factor); });
}

double sum_squares(const Tensor& t) {
  LT_CHECK(t.is_contiguous(), "sum_squares of a strided tensor");
  const std::int64_t chunks = (t.numel() + kSumChunk - 1) / kSumChunk;
  std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
  dispatch_float(t.dtype(), [&]<class T>() { chunk_sum_squares<T>(t, partial); });
  double total = 0.0;
  for (double s : partial) total += s;
  return total;
}

}  // namespace lt::cpu
