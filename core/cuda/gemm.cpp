// matmul on CUDA: bf16 and f32 through cuBLASLt (fp32 accumulation; f32 without TF32, for
// parity with the CPU), f64 through cuBLAS DGEMM. Row-major C = alpha op(A) op(B) + beta C is the
// column-major C^T = alpha op(B)^T op(A)^T, so the operands are passed swapped and each row-major
// matrix is read as its column-major transpose with the same leading dimension.
#include <cublasLt.h>
#include <cublas_v2.h>

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "core/cuda/base_launch.h"
#include "core/cuda/check.h"
#include "core/cuda/kernels.h"
#include "core/cuda/runtime.h"
#include "core/cuda/tensor_args.h"

namespace lt::cuda {
namespace {

[[noreturn]] void throw_cublas_error(cublasStatus_t status, const char* call, const char* file,
                                     int line) {
  std::ostringstream message;
  message << file << ":" << line << ": " << call << " failed: " << cublasGetStatusName(status)
          << " (" << cublasGetStatusString(status) << ")";
  throw Error(message.str());
}

#define LT_CUBLAS_CHECK(call)                                           \
  do {                                                                  \
    const cublasStatus_t lt_cublas_status_ = (call);                    \
    if (lt_cublas_status_ != CUBLAS_STATUS_SUCCESS)                     \
      throw_cublas_error(lt_cublas_status_, #call, __FILE__, __LINE__); \
  } while (0)

// 32 MiB, NVIDIA's recommendation for Hopper (more than Ampere needs).
constexpr std::size_t kWorkspaceBytes = std::size_t{32} << 20;

// Everything about one (dtypes, transposes, sizes, strides, alignments) problem that the
// heuristic's choice depends on.
using AlgoKey = std::array<std::int64_t, 13>;

// The handles of one device, its workspace (a tracked Storage, category workspace) and the
// algorithm chosen for each problem seen so far.
struct GemmContext {
  std::mutex mutex;
  cublasLtHandle_t lt = nullptr;
  cublasHandle_t blas = nullptr;  // f64, created on first use
  Tensor workspace;
  std::map<AlgoKey, cublasLtMatmulAlgo_t> algos;
};

// Never destroyed (handles outlive static destruction safely: the driver reclaims them at exit).
GemmContext& context() {
  static std::mutex mutex;
  static auto* contexts = new std::map<int, std::unique_ptr<GemmContext>>;
  const int device = current_device();
  std::lock_guard lock(mutex);
  std::unique_ptr<GemmContext>& ctx = (*contexts)[device];
  if (!ctx) {
    auto fresh = std::make_unique<GemmContext>();
    LT_CUBLAS_CHECK(cublasLtCreate(&fresh->lt));
    fresh->workspace = Tensor::empty(Shape{static_cast<std::int64_t>(kWorkspaceBytes / 4)},
                                     DType::f32, MemCategory::workspace, Device::cuda);
    ctx = std::move(fresh);
  }
  return *ctx;
}

template <class T, void (*Destroy)(T)>
struct Owned {
  T handle = nullptr;
  Owned() = default;
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() {
    if (handle != nullptr) Destroy(handle);
  }
};

void destroy_desc(cublasLtMatmulDesc_t d) {
  (void)cublasLtMatmulDescDestroy(d);
}
void destroy_layout(cublasLtMatrixLayout_t l) {
  (void)cublasLtMatrixLayoutDestroy(l);
}
void destroy_pref(cublasLtMatmulPreference_t p) {
  (void)cublasLtMatmulPreferenceDestroy(p);
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32:
      return CUDA_R_32F;
    case DType::bf16:
      return CUDA_R_16BF;
    case DType::f64:
      return CUDA_R_64F;
    default:
      throw Error("matmul: floating operands expected, got " + std::string(dtype_name(t)));
  }
}

// Largest power of two (up to 256) dividing the address: what cuBLASLt may assume.
std::uint32_t alignment_of(const void* p) {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t a = 256;
  while (a > 1 && addr % a != 0) a /= 2;
  return a;
}

struct GemmDims {
  std::int64_t m, n, k;
};

GemmDims check_operands(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c) {
  LT_CHECK(
      a.rank() == 2 && b.rank() == 2 && c.rank() == 2,
      "matmul needs 2D tensors: " << a.describe() << " " << b.describe() << " " << c.describe());
  GemmDims d{ta ? a.dim(1) : a.dim(0), tb ? b.dim(0) : b.dim(1), ta ? a.dim(0) : a.dim(1)};
  const std::int64_t kb = tb ? b.dim(1) : b.dim(0);
  LT_CHECK(kb == d.k && c.dim(0) == d.m && c.dim(1) == d.n,
           "matmul shapes: op(A) " << d.m << "x" << d.k << ", op(B) " << kb << "x" << d.n << ", C "
                                   << c.shape().str());
  LT_CHECK(a.dtype() == b.dtype(),
           "matmul operands differ: " << a.describe() << " vs " << b.describe());
  switch (a.dtype()) {
    case DType::f32:
      LT_CHECK(c.dtype() == DType::f32, "matmul f32 inputs need an f32 output");
      break;
    case DType::f64:
      LT_CHECK(c.dtype() == DType::f64, "matmul f64 inputs need an f64 output");
      break;
    case DType::bf16:
      LT_CHECK(c.dtype() == DType::bf16 || c.dtype() == DType::f32,
               "matmul bf16 inputs need a bf16 or f32 output");
      break;
    default:
      throw Error("matmul: floating operands expected, got " + a.describe());
  }
  return d;
}

launch::Matrix matrix_of(const Tensor& c) {
  return {c.raw(), launch_dt(c), c.dim(0), c.dim(1), c.row_stride()};
}

void dgemm(GemmContext& ctx, const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c,
           GemmDims d, double alpha, double beta) {
  if (ctx.blas == nullptr) LT_CUBLAS_CHECK(cublasCreate(&ctx.blas));
  LT_CUBLAS_CHECK(cublasDgemm(
      ctx.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(d.n), static_cast<int>(d.m), static_cast<int>(d.k), &alpha, b.data<double>(),
      static_cast<int>(b.row_stride()), a.data<double>(), static_cast<int>(a.row_stride()), &beta,
      c.data<double>(), static_cast<int>(c.row_stride())));
}

void lt_gemm(GemmContext& ctx, const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c,
             GemmDims d, double alpha, double beta) {
  const cudaDataType_t in_type = cuda_type(a.dtype());
  const cudaDataType_t out_type = cuda_type(c.dtype());
  Owned<cublasLtMatmulDesc_t, destroy_desc> op;
  LT_CUBLAS_CHECK(cublasLtMatmulDescCreate(&op.handle, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_a = tb ? CUBLAS_OP_T : CUBLAS_OP_N;  // column-major A is our B
  const cublasOperation_t op_b = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  LT_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(op.handle, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  LT_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(op.handle, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  // Stored column-major shapes: a row-major [r, c] matrix with row stride ld is [c, r], ld.
  Owned<cublasLtMatrixLayout_t, destroy_layout> la, lb, lc;
  LT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la.handle, in_type,
                                             static_cast<std::uint64_t>(b.dim(1)),
                                             static_cast<std::uint64_t>(b.dim(0)), b.row_stride()));
  LT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb.handle, in_type,
                                             static_cast<std::uint64_t>(a.dim(1)),
                                             static_cast<std::uint64_t>(a.dim(0)), a.row_stride()));
  LT_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lc.handle, out_type, static_cast<std::uint64_t>(d.n),
                                             static_cast<std::uint64_t>(d.m), c.row_stride()));

  const std::uint32_t align_a = alignment_of(b.raw()), align_b = alignment_of(a.raw()),
                      align_c = alignment_of(c.raw());
  const AlgoKey key{static_cast<std::int64_t>(in_type),
                    static_cast<std::int64_t>(out_type),
                    op_a,
                    op_b,
                    d.m,
                    d.n,
                    d.k,
                    a.row_stride(),
                    b.row_stride(),
                    c.row_stride(),
                    align_a,
                    align_b,
                    align_c};
  auto found = ctx.algos.find(key);
  if (found == ctx.algos.end()) {
    Owned<cublasLtMatmulPreference_t, destroy_pref> pref;
    LT_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref.handle));
    const std::uint64_t workspace = kWorkspaceBytes;
    LT_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.handle, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof(workspace)));
    const std::pair<cublasLtMatmulPreferenceAttributes_t, std::uint32_t> alignments[] = {
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, align_a},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, align_b},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, align_c},
        {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, align_c}};
    for (const auto& [attribute, value] : alignments)
      LT_CUBLAS_CHECK(
          cublasLtMatmulPreferenceSetAttribute(pref.handle, attribute, &value, sizeof(value)));
    cublasLtMatmulHeuristicResult_t result{};
    int count = 0;
    LT_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(ctx.lt, op.handle, la.handle, lb.handle,
                                                   lc.handle, lc.handle, pref.handle, 1, &result,
                                                   &count));
    LT_CHECK(count > 0, "matmul: cuBLASLt has no algorithm for "
                            << a.describe() << (ta ? "^T" : "") << " x " << b.describe()
                            << (tb ? "^T" : "") << " -> " << c.describe());
    found = ctx.algos.emplace(key, result.algo).first;
  }
  const float alpha_f = static_cast<float>(alpha), beta_f = static_cast<float>(beta);
  LT_CUBLAS_CHECK(cublasLtMatmul(ctx.lt, op.handle, &alpha_f, b.raw(), la.handle, a.raw(),
                                 lb.handle, &beta_f, c.raw(), lc.handle, c.raw(), lc.handle,
                                 &found->second, ctx.workspace.raw(), kWorkspaceBytes,
                                 cudaStream_t{}));
}

}  // namespace

std::size_t gemm_workspace_bytes() {
  return kWorkspaceBytes;
}

void matmul(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, double alpha,
            double beta) {
  const GemmDims d = check_operands(a, ta, b, tb, c);
  if (d.m == 0 || d.n == 0) return;
  if (d.k == 0) {  // no products: C = beta C
    if (beta == 0.0) {
      launch::fill(matrix_of(c), 0.0);
    } else {
      launch::scale(matrix_of(c), beta);
    }
    return;
  }
  GemmContext& ctx = context();
  std::lock_guard lock(ctx.mutex);
  if (a.dtype() == DType::f64) {
    dgemm(ctx, a, ta, b, tb, c, d, alpha, beta);
  } else {
    lt_gemm(ctx, a, ta, b, tb, c, d, alpha, beta);
  }
}

}  // namespace lt::cuda
