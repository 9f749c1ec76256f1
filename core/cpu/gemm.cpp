// GEMM through OpenBLAS. OpenBLAS runs single-threaded; we split C into fixed row or column tiles
// (for_each_block), each computed by one BLAS call over the whole K and spread over the threads,
// so every element of C is summed in the same order whatever the thread count.
#include <cblas.h>

#include "core/cpu/common.h"
#include "core/cpu/kernels.h"

namespace lt::cpu {
namespace {

struct GemmDims {
  std::int64_t m, n, k;
};

// A block of C: rows [r0, r1) x columns [c0, c1).
struct Block {
  std::int64_t r0, r1, c0, c1;
};

// Offsets of the A and B operands for a block of C.
template <class T>
const T* a_for_rows(const T* a, std::int64_t lda, bool ta, std::int64_t r0) {
  return ta ? a + r0 : a + r0 * lda;
}
template <class T>
const T* b_for_cols(const T* b, std::int64_t ldb, bool tb, std::int64_t c0) {
  return tb ? b + c0 * ldb : b + c0;
}

CBLAS_TRANSPOSE op(bool t) {
  return t ? CblasTrans : CblasNoTrans;
}

void sgemm(const float* a, std::int64_t lda, bool ta, const float* b, std::int64_t ldb, bool tb,
           float* c, std::int64_t ldc, GemmDims d, Block blk, double alpha, double beta) {
  cblas_sgemm(CblasRowMajor, op(ta), op(tb), static_cast<blasint>(blk.r1 - blk.r0),
              static_cast<blasint>(blk.c1 - blk.c0), static_cast<blasint>(d.k),
              static_cast<float>(alpha), a_for_rows(a, lda, ta, blk.r0), static_cast<blasint>(lda),
              b_for_cols(b, ldb, tb, blk.c0), static_cast<blasint>(ldb), static_cast<float>(beta),
              c + blk.r0 * ldc + blk.c0, static_cast<blasint>(ldc));
}

void dgemm(const double* a, std::int64_t lda, bool ta, const double* b, std::int64_t ldb, bool tb,
           double* c, std::int64_t ldc, GemmDims d, Block blk, double alpha, double beta) {
  cblas_dgemm(CblasRowMajor, op(ta), op(tb), static_cast<blasint>(blk.r1 - blk.r0),
              static_cast<blasint>(blk.c1 - blk.c0), static_cast<blasint>(d.k), alpha,
              a_for_rows(a, lda, ta, blk.r0), static_cast<blasint>(lda),
              b_for_cols(b, ldb, tb, blk.c0), static_cast<blasint>(ldb), beta,
              c + blk.r0 * ldc + blk.c0, static_cast<blasint>(ldc));
}

#ifdef LT_HAVE_SBGEMM
void sbgemm(const bf16* a, std::int64_t lda, bool ta, const bf16* b, std::int64_t ldb, bool tb,
            float* c, std::int64_t ldc, GemmDims d, Block blk, double alpha, double beta) {
  static_assert(sizeof(bf16) == sizeof(bfloat16));
  cblas_sbgemm(
      CblasRowMajor, op(ta), op(tb), static_cast<blasint>(blk.r1 - blk.r0),
      static_cast<blasint>(blk.c1 - blk.c0), static_cast<blasint>(d.k), static_cast<float>(alpha),
      reinterpret_cast<const bfloat16*>(a_for_rows(a, lda, ta, blk.r0)), static_cast<blasint>(lda),
      reinterpret_cast<const bfloat16*>(b_for_cols(b, ldb, tb, blk.c0)), static_cast<blasint>(ldb),
      static_cast<float>(beta), c + blk.r0 * ldc + blk.c0, static_cast<blasint>(ldc));
}
#endif

// Cuts C along its longer side into tiles of kTile rows (or columns) whatever the thread count,
// one single-threaded BLAS call each; threads take contiguous runs of tiles, small products one
// thread. Fixed tiles matter: OpenBLAS computes the rows of a call's last, partial micro-tile in
// another order than the rest (seen with its Haswell kernels on an AMD EPYC: rows 252-255 of a
// 256-row call differ from the same rows inside a 512-row call), so blocks sized by the thread
// count would make results depend on it. 128: the benchmark model's step (bench_train_cpu, 2
// threads) takes 3% longer than with per-thread blocks; 256 and 64 cost 6% (fewer tiles balance
// the weight-gradient GEMMs' 688 columns worse, more of them repack the shared operand more).
constexpr std::int64_t kTile = 128;

template <class Fn>
void for_each_block(GemmDims d, Fn&& fn) {
  constexpr std::int64_t kMinFlopsPerThread = 1 << 20;
  const std::int64_t work = d.m * d.n * d.k;
  const bool split_rows = d.m >= d.n;
  const std::int64_t extent = split_rows ? d.m : d.n;
  const std::int64_t tiles = (extent + kTile - 1) / kTile;
  const std::int64_t by_work = std::max<std::int64_t>(1, work / kMinFlopsPerThread);
  parallel_ranges(tiles, std::max<std::int64_t>(1, tiles / by_work),
                  [&](std::int64_t t0, std::int64_t t1) {
                    for (std::int64_t t = t0; t < t1; ++t) {
                      const std::int64_t lo = t * kTile, hi = std::min(extent, lo + kTile);
                      fn(split_rows ? Block{lo, hi, 0, d.n} : Block{0, d.m, lo, hi});
                    }
                  });
}

void check_operands(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c,
                    GemmDims& d) {
  LT_CHECK(
      a.rank() == 2 && b.rank() == 2 && c.rank() == 2,
      "matmul needs 2D tensors: " << a.describe() << " " << b.describe() << " " << c.describe());
  d.m = ta ? a.dim(1) : a.dim(0);
  d.k = ta ? a.dim(0) : a.dim(1);
  const std::int64_t kb = tb ? b.dim(1) : b.dim(0);
  d.n = tb ? b.dim(0) : b.dim(1);
  LT_CHECK(kb == d.k && c.dim(0) == d.m && c.dim(1) == d.n,
           "matmul shapes: op(A) " << d.m << "x" << d.k << ", op(B) " << kb << "x" << d.n << ", C "
                                   << c.shape().str());
  LT_CHECK(a.dtype() == b.dtype(),
           "matmul operands differ: " << a.describe() << " vs " << b.describe());
}

void matmul_f32(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, GemmDims d,
                double alpha, double beta) {
  const std::int64_t lda = a.row_stride(), ldb = b.row_stride(), ldc = c.row_stride();
  for_each_block(d, [&](Block blk) {
    sgemm(a.data<float>(), lda, ta, b.data<float>(), ldb, tb, c.data<float>(), ldc, d, blk, alpha,
          beta);
  });
}

// bf16 output: fp32 accumulation into a scratch matrix, rounded once.
template <class Compute>
void through_f32_output(const Tensor& c, double beta, Compute&& compute) {
  Tensor scratch = Tensor::empty(c.shape(), DType::f32, MemCategory::workspace, Device::cpu);
  if (beta != 0.0) cpu::copy(c, scratch);
  compute(scratch);
  cpu::copy(scratch, c);
}

#ifdef LT_HAVE_SBGEMM
void matmul_bf16_native(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c,
                        GemmDims d, double alpha, double beta) {
  auto run = [&](const Tensor& out) {
    const std::int64_t lda = a.row_stride(), ldb = b.row_stride(), ldc = out.row_stride();
    for_each_block(d, [&](Block blk) {
      sbgemm(a.data<bf16>(), lda, ta, b.data<bf16>(), ldb, tb, out.data<float>(), ldc, d, blk,
             alpha, beta);
    });
  };
  if (c.dtype() == DType::f32) {
    run(c);
  } else {
    LT_CHECK(c.dtype() == DType::bf16, "matmul bf16 inputs need a bf16 or f32 output");
    through_f32_output(c, beta, run);
  }
}
#else
// This BLAS has no bf16 GEMM: widen the operands to fp32 (exact) and use sgemm.
void matmul_bf16_widened(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c,
                         double alpha, double beta) {
  Tensor a32 = Tensor::empty(a.shape(), DType::f32, MemCategory::workspace, Device::cpu);
  Tensor b32 = Tensor::empty(b.shape(), DType::f32, MemCategory::workspace, Device::cpu);
  cpu::copy(a, a32);
  cpu::copy(b, b32);
  GemmDims d{};
  if (c.dtype() == DType::f32) {
    check_operands(a32, ta, b32, tb, c, d);
    matmul_f32(a32, ta, b32, tb, c, d, alpha, beta);
    return;
  }
  LT_CHECK(c.dtype() == DType::bf16, "matmul bf16 inputs need a bf16 or f32 output");
  through_f32_output(c, beta, [&](const Tensor& out) {
    check_operands(a32, ta, b32, tb, out, d);
    matmul_f32(a32, ta, b32, tb, out, d, alpha, beta);
  });
}
#endif

}  // namespace

void matmul(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, double alpha,
            double beta) {
  GemmDims d{};
  check_operands(a, ta, b, tb, c, d);
  if (d.m == 0 || d.n == 0) return;
  static const bool blas_single_threaded = (openblas_set_num_threads(1), true);
  (void)blas_single_threaded;
  switch (a.dtype()) {
    case DType::f32:
      LT_CHECK(c.dtype() == DType::f32, "matmul f32 inputs need an f32 output");
      matmul_f32(a, ta, b, tb, c, d, alpha, beta);
      return;
    case DType::f64: {
      LT_CHECK(c.dtype() == DType::f64, "matmul f64 inputs need an f64 output");
      const std::int64_t lda = a.row_stride(), ldb = b.row_stride(), ldc = c.row_stride();
      for_each_block(d, [&](Block blk) {
        dgemm(a.data<double>(), lda, ta, b.data<double>(), ldb, tb, c.data<double>(), ldc, d, blk,
              alpha, beta);
      });
      return;
    }
    case DType::bf16:
#ifdef LT_HAVE_SBGEMM
      matmul_bf16_native(a, ta, b, tb, c, d, alpha, beta);
#else
      matmul_bf16_widened(a, ta, b, tb, c, alpha, beta);
#endif
      return;
    default:
      throw Error("matmul: floating operands expected, got " + a.describe());
  }
}

}  // namespace lt::cpu
