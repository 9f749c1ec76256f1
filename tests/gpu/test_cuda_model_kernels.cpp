// The CUDA model kernels (core/cuda/model_*.cu) against the CPU backend on the same random
// inputs: embedding, RMSNorm, RoPE, SwiGLU, attention (causal, non-causal, documents, zigzag
// orders, GQA 1 and 4), attention merge, cross-entropy (whole rows and vocab shards). Row-strided
// views (aligned and unaligned, so both the 16-byte and the scalar paths run) and odd sizes.
//
// Tolerances: err = max |gpu - cpu| / max |cpu| over a tensor (test::max_rel_error).
//   exact (0)  embedding forward and backward (the same additions in the same order), argmax
//              and predictions, shard row max and target logits, the shard-finish loss (computed
//              on the host exactly as the CPU does)
//   f64        1e-12 (attention 1e-10)
//   f32        2e-5 row-wise kernels (expf against the CPU's exp_approx, ~2 ulp, and another
//              summation order), 1e-4 for sums over many rows (RMSNorm weight gradient) and
//              attention forward, 2e-4 attention backward
//   bf16       1e-2 for outputs rounded to bf16 (2^-8 relative: an fp32 difference may flip one
//              rounding), 2e-2 attention gradients, 3e-2 a bf16 weight gradient (rounded after
//              every chunk of rows, and the chunks differ from the CPU's)
//   LSE        |gpu - cpu| / max(1, |cpu|) with the f32 tolerance above; -inf (no visible key)
//              must match exactly
// Every test starts with LT_REQUIRE_CUDA(): skipped without a device.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/cuda/model_kernels.h"
#include "core/cuda/model_launch.h"
#include "core/ops.h"
#include "tests/gpu/attention_cases.h"
#include "tests/gpu/gpu_test_util.h"

namespace lt {
namespace {

using test::empty_on;
using test::lse_error;
using test::max_rel_error;
using test::on_cuda;
using test::random_tensor;
using test::stat_of;
using test::to_host_f64;
using namespace test::attention_cases;

constexpr DType kFloatTypes[] = {DType::f32, DType::bf16, DType::f64};

std::string name(DType d) {
  return std::string(dtype_name(d));
}

// Tolerance by dtype: f32, bf16, f64.
double tol(DType d, double f32, double bf16 = 1e-2, double f64 = 1e-12) {
  return d == DType::f32 ? f32 : d == DType::bf16 ? bf16 : f64;
}

std::vector<std::int32_t> random_ints(std::size_t n, std::int32_t lo, std::int32_t hi,
                                      std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<std::int32_t> dist(lo, hi - 1);
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

// A [rows, cols] view at column `off` of a random [rows, cols + pad] tensor (identical values
// on both devices for one seed). Returns the backing tensor too, to check nothing outside the
// view changed.
struct View {
  Tensor full, view;
};
View strided(std::int64_t rows, std::int64_t cols, std::int64_t pad, std::int64_t off, DType dt,
             std::uint64_t seed, Device device, double scale = 1.0) {
  View v;
  v.full = random_tensor(Shape{rows, cols + pad}, dt, seed, device, scale);
  v.view = v.full.columns(off, cols);
  return v;
}

// ------------------------------------------------------------------------------- embedding

TEST(CudaModelKernels, EmbeddingForwardMatchesCpu) {
  LT_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    for (std::int64_t dim : {64, 33, 8}) {
      SCOPED_TRACE(name(dt) + " dim " + std::to_string(dim));
      const std::int64_t vocab = 50;
      const auto tokens = random_ints(77, 0, static_cast<std::int32_t>(vocab), 3);
      const Tensor table_c = random_tensor(Shape{vocab, dim}, dt, 1, Device::cpu);
      const Tensor table_g = random_tensor(Shape{vocab, dim}, dt, 1, Device::cuda);
      const Tensor out_c = empty_on(Shape{77, dim}, dt, Device::cpu);
      const Tensor out_g = empty_on(Shape{77, dim}, dt, Device::cuda);
      embedding_forward(table_c, tokens, out_c);
      cuda::embedding_forward(table_g, tokens, out_g);
      EXPECT_EQ(max_rel_error(out_g, out_c), 0.0);

      // A shard holding token ids [20, 45): other tokens give zero rows.
      const Tensor shard_c = random_tensor(Shape{25, dim}, dt, 2, Device::cpu);
      const Tensor shard_g = random_tensor(Shape{25, dim}, dt, 2, Device::cuda);
      embedding_shard_forward(shard_c, 20, tokens, out_c);
      cuda::embedding_shard_forward(shard_g, 20, tokens, out_g);
      EXPECT_EQ(max_rel_error(out_g, out_c), 0.0);
    }
  }
}

TEST(CudaModelKernels, EmbeddingBackwardMatchesCpuExactly) {
  LT_REQUIRE_CUDA();
  const std::pair<DType, DType> combos[] = {{DType::f32, DType::f32},
                                            {DType::bf16, DType::f32},
                                            {DType::bf16, DType::bf16},
                                            {DType::f32, DType::bf16},
                                            {DType::f64, DType::f64}};
  for (const auto& [dt, gt] : combos) {
    for (std::int64_t dim : {96, 37}) {
      SCOPED_TRACE("dout " + name(dt) + " dtable " + name(gt) + " dim " + std::to_string(dim));
      const std::int64_t vocab = 13, n = 300;  // many repeats per row
      const auto tokens = random_ints(n, 0, static_cast<std::int32_t>(vocab), 5);
      const Tensor dout_c = random_tensor(Shape{n, dim}, dt, 6, Device::cpu);
      const Tensor dout_g = random_tensor(Shape{n, dim}, dt, 6, Device::cuda);
      const Tensor dtable_c = random_tensor(Shape{vocab, dim}, gt, 7, Device::cpu);
      const Tensor dtable_g = random_tensor(Shape{vocab, dim}, gt, 7, Device::cuda);
      embedding_backward(dout_c, tokens, dtable_c);
      cuda::embedding_backward(dout_g, tokens, dtable_g);
      EXPECT_EQ(max_rel_error(dtable_g, dtable_c), 0.0);

      // Shard [5, 11): only its rows change.
      const Tensor shard_c = random_tensor(Shape{6, dim}, gt, 8, Device::cpu);
      const Tensor shard_g = random_tensor(Shape{6, dim}, gt, 8, Device::cuda);
      embedding_shard_backward(dout_c, 5, tokens, shard_c);
      cuda::embedding_shard_backward(dout_g, 5, tokens, shard_g);
      EXPECT_EQ(max_rel_error(shard_g, shard_c), 0.0);
    }
  }
}

// ------------------------------------------------------------------------------- RMSNorm

struct RowCase {
  std::int64_t rows, dim, pad, off;
};
// Aligned contiguous, aligned strided (offset 8: 16 bytes for bf16 and 32 for f32), unaligned
// strided, and an odd width.
constexpr RowCase kRowCases[] = {{7, 64, 0, 0}, {33, 256, 16, 8}, {65, 100, 3, 1}, {5, 37, 0, 0}};

TEST(CudaModelKernels, RmsNormForwardMatchesCpu) {
  LT_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    for (const RowCase& c : kRowCases) {
      SCOPED_TRACE(name(dt) + " rows " + std::to_string(c.rows) + " dim " + std::to_string(c.dim) +
                   " off " + std::to_string(c.off));
      const View x_c = strided(c.rows, c.dim, c.pad, c.off, dt, 11, Device::cpu);
      const View x_g = strided(c.rows, c.dim, c.pad, c.off, dt, 11, Device::cuda);
      const View y_c = strided(c.rows, c.dim, c.pad, c.off, dt, 12, Device::cpu);
      const View y_g = strided(c.rows, c.dim, c.pad, c.off, dt, 12, Device::cuda);
      const Tensor w_c = random_tensor(Shape{c.dim}, dt, 13, Device::cpu);
      const Tensor w_g = random_tensor(Shape{c.dim}, dt, 13, Device::cuda);
      const Tensor r_c = empty_on(Shape{c.rows}, stat_of(dt), Device::cpu);
      const Tensor r_g = empty_on(Shape{c.rows}, stat_of(dt), Device::cuda);
      rmsnorm_forward(x_c.view, w_c, 1e-5, y_c.view, r_c);
      cuda::rmsnorm_forward(x_g.view, w_g, 1e-5, y_g.view, r_g);
      EXPECT_LE(max_rel_error(y_g.full, y_c.full), tol(dt, 2e-5));
      EXPECT_LE(max_rel_error(r_g, r_c), tol(dt, 2e-5, 2e-5));
    }
  }
}

TEST(CudaModelKernels, RmsNormBackwardMatchesCpu) {
  LT_REQUIRE_CUDA();
  for (DType dt : kFloatTypes) {
    const DType gt = dt == DType::f64 ? DType::f64 : DType::f32;
    for (RowCase c : kRowCases) {
      c.rows = c.rows * 31;  // several weight-gradient chunks
      for (bool accumulate : {false, true}) {
        SCOPED_TRACE(name(dt) + " rows " + std::to_string(c.rows) + " dim " +
                     std::to_string(c.dim) + " off " + std::to_string(c.off) +
                     (accumulate ? " accumulate" : ""));
        const View x_c = strided(c.rows, c.dim, c.pad, c.off, dt, 21, Device::cpu);
        const View x_g = strided(c.rows, c.dim, c.pad, c.off, dt, 21, Device::cuda);
        const View dy_c = strided(c.rows, c.dim, c.pad, c.off, dt, 22, Device::cpu);
        const View dy_g = strided(c.rows, c.dim, c.pad, c.off, dt, 22, Device::cuda);
        const View dx_c = strided(c.rows, c.dim, c.pad, c.off, dt, 23, Device::cpu);
        const View dx_g = strided(c.rows, c.dim, c.pad, c.off, dt, 23, Device::cuda);
        const Tensor w_c = random_tensor(Shape{c.dim}, dt, 24, Device::cpu);
        const Tensor w_g = random_tensor(Shape{c.dim}, dt, 24, Device::cuda);
        const Tensor dw_c = random_tensor(Shape{c.dim}, gt, 25, Device::cpu);
        const Tensor dw_g = random_tensor(Shape{c.dim}, gt, 25, Device::cuda);
        const Tensor y_c = empty_on(Shape{c.rows, c.dim}, dt, Device::cpu);
        const Tensor r_c = empty_on(Shape{c.rows}, stat_of(dt), Device::cpu);
        rmsnorm_forward(x_c.view, w_c, 1e-6, y_c, r_c);
        const Tensor r_g = on_cuda(r_c);
        rmsnorm_backward(dy_c.view, x_c.view, w_c, r_c, dx_c.view, dw_c, accumulate);
        cuda::rmsnorm_backward(dy_g.view, x_g.view, w_g, r_g, dx_g.view, dw_g, accumulate);
        EXPECT_LE(max_rel_error(dx_g.full, dx_c.full), tol(dt, 2e-5));
        EXPECT_LE(max_rel_error(dw_g, dw_c), tol(gt, 1e-4));
      }
    }
  }
  // A bf16 weight gradient (rounded after every chunk of rows).
  const std::int64_t rows = 40, dim = 64;
  const Tensor x_c = random_tensor(Shape{rows, dim}, DType::bf16, 31, Device::cpu);
  const Tensor dy_c = random_tensor(Shape{rows, dim}, DType::bf16, 32, Device::cpu);
  const Tensor w_c = random_tensor(Shape{dim}, DType::bf16, 33, Device::cpu);
  const Tensor dw_c = random_tensor(Shape{dim}, DType::bf16, 34, Device::cpu);
  const Tensor y_c = empty_on(Shape{rows, dim}, DType::bf16, Device::cpu);
  const Tensor r_c = empty_on(Shape{rows}, DType::f32, Device::cpu);
  rmsnorm_forward(x_c, w_c, 1e-6, y_c, r_c);
  const Tensor x_g = on_cuda(x_c), dy_g = on_cuda(dy_c), w_g = on_cuda(w_c), dw_g = on_cuda(dw_c),
               r_g = on_cuda(r_c);
  const Tensor dx_c = empty_on(Shape{rows, dim}, DType::bf16, Device::cpu);
  const Tensor dx_g = empty_on(Shape{rows, dim}, DType::bf16, Device::cuda);
  rmsnorm_backward(dy_c, x_c, w_c, r_c, dx_c, dw_c, false);
  cuda::rmsnorm_backward(dy_g, x_g, w_g, r_g, dx_g, dw_g, false);
  EXPECT_LE(max_rel_error(dx_g, dx_c), 1e-2);
  EXPECT_LE(max_rel_error(dw_g, dw_c), 3e-2);
}

// ------------------------------------------------------------------------------- RoPE

TEST(CudaModelKernels, RopeMatchesCpuBothDirections) {
  LT_REQUIRE_CUDA();
  const std::int64_t max_pos = 100;
  for (DType dt : kFloatTypes) {
    for (std::int64_t hd : {64, 6}) {
      for (std::int64_t off : {std::int64_t{0}, hd, std::int64_t{2}}) {
        SCOPED_TRACE(name(dt) + " head_dim " + std::to_string(hd) + " off " + std::to_string(off));
        const std::int64_t rows = 37, heads = 3, half = hd / 2;
        Tensor cos_c = empty_on(Shape{max_pos, half}, DType::f32, Device::cpu);
        Tensor sin_c = empty_on(Shape{max_pos, half}, DType::f32, Device::cpu);
        for (std::int64_t p = 0; p < max_pos; ++p) {
          for (std::int64_t i = 0; i < half; ++i) {
            const double a =
                static_cast<double>(p) *
                std::pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(hd));
            cos_c.data<float>()[p * half + i] = static_cast<float>(std::cos(a));
            sin_c.data<float>()[p * half + i] = static_cast<float>(std::sin(a));
          }
        }
        const Tensor cos_g = on_cuda(cos_c), sin_g = on_cuda(sin_c);
        const auto positions = random_ints(rows, 0, static_cast<std::int32_t>(max_pos), 41);
        const View x_c = strided(rows, heads * hd, 2 * hd, off, dt, 42, Device::cpu);
        const View x_g = strided(rows, heads * hd, 2 * hd, off, dt, 42, Device::cuda);
        for (bool inverse : {false, true}) {
          rope_apply(x_c.view, hd, positions, cos_c, sin_c, inverse);
          cuda::rope_apply(x_g.view, hd, positions, cos_g, sin_g, inverse);
          EXPECT_LE(max_rel_error(x_g.full, x_c.full), tol(dt, 2e-5))
              << (inverse ? "inverse" : "forward");
        }
      }
    }
  }
}

// ------------------------------------------------------------------------------- SwiGLU

TEST(CudaModelKernels, SwigluMatchesCpu) {
  LT_REQUIRE_CUDA();
  struct Case {
    std::int64_t f, pad, off;
  };
  for (DType dt : kFloatTypes) {
    for (const Case& c : {Case{128, 0, 0}, Case{128, 16, 8}, Case{37, 3, 1}}) {
      SCOPED_TRACE(name(dt) + " f " + std::to_string(c.f) + " off " + std::to_string(c.off));
      const std::int64_t rows = 29;
      const View gu_c = strided(rows, 2 * c.f, c.pad, c.off, dt, 51, Device::cpu, 2.0);
      const View gu_g = strided(rows, 2 * c.f, c.pad, c.off, dt, 51, Device::cuda, 2.0);
      const View out_c = strided(rows, c.f, c.pad, c.off, dt, 52, Device::cpu);
      const View out_g = strided(rows, c.f, c.pad, c.off, dt, 52, Device::cuda);
      swiglu_forward(gu_c.view, out_c.view);
      cuda::swiglu_forward(gu_g.view, out_g.view);
      EXPECT_LE(max_rel_error(out_g.full, out_c.full), tol(dt, 2e-5));

      const View d_c = strided(rows, c.f, c.pad, c.off, dt, 53, Device::cpu);
      const View d_g = strided(rows, c.f, c.pad, c.off, dt, 53, Device::cuda);
      const View dgu_c = strided(rows, 2 * c.f, c.pad, c.off, dt, 54, Device::cpu);
      const View dgu_g = strided(rows, 2 * c.f, c.pad, c.off, dt, 54, Device::cuda);
      swiglu_backward(d_c.view, gu_c.view, dgu_c.view);
      cuda::swiglu_backward(d_g.view, gu_g.view, dgu_g.view);
      EXPECT_LE(max_rel_error(dgu_g.full, dgu_c.full), tol(dt, 2e-5));
    }
  }
}

// ------------------------------------------------------------------------------- attention

constexpr AttnCase kAttnCases[] = {
    {"causal_mha", 2, 100, 100, 4, 4, 64, true, Masks::plain},
    {"causal_gqa4", 2, 100, 100, 8, 2, 64, true, Masks::plain},
    {"noncausal_gqa4_hd40_cross", 1, 77, 130, 4, 1, 40, false, Masks::plain},
    {"docs_causal_hd128", 2, 150, 150, 2, 1, 128, true, Masks::docs},
    {"docs_noncausal_hd24", 1, 33, 33, 3, 3, 24, false, Masks::docs},
    {"zigzag_cross_ranks", 2, 96, 96, 4, 2, 32, true, Masks::zigzag},
    {"zigzag_docs_gqa4", 1, 96, 96, 4, 1, 64, true, Masks::zigzag_docs},
    {"causal_hd256", 1, 70, 70, 2, 2, 256, true, Masks::plain},
};

TEST(CudaModelKernels, AttentionForwardMatchesCpu) {
  LT_REQUIRE_CUDA();
  for (const AttnCase& c : kAttnCases) {
    for (DType dt : kFloatTypes) {
      if (dt == DType::f64 && c.head_dim > 128) continue;  // f64 stops at head_dim 128
      for (bool f32_out : {false, true}) {
        if (f32_out && dt != DType::bf16) continue;
        SCOPED_TRACE(std::string(c.name) + " " + name(dt) + (f32_out ? " f32 out" : ""));
        const AttnInputs in = attention_inputs(c);
        const Qkv c_in = make_qkv(c, dt, 61, Device::cpu);
        const Qkv g_in = make_qkv(c, dt, 61, Device::cuda);
        const DType ot = f32_out ? DType::f32 : dt;
        const Shape oshape{c.batch * c.q_len, c.heads * c.head_dim};
        const Shape lshape{c.batch, c.heads, c.q_len};
        const Tensor out_c = empty_on(oshape, ot, Device::cpu);
        const Tensor out_g = empty_on(oshape, ot, Device::cuda);
        const Tensor lse_c = empty_on(lshape, stat_of(dt), Device::cpu);
        const Tensor lse_g = empty_on(lshape, stat_of(dt), Device::cuda);
        attention_forward(in.shape, c_in.q, c_in.k, c_in.v, out_c, lse_c);
        cuda::attention_forward(in.shape, g_in.q, g_in.k, g_in.v, out_g, lse_g);
        EXPECT_LE(max_rel_error(out_g, out_c), tol(ot, 1e-4, 1e-2, 1e-10));
        EXPECT_LE(lse_error(lse_g, lse_c), tol(dt, 1e-5, 1e-5, 1e-10));
      }
    }
  }
}

TEST(CudaModelKernels, AttentionBackwardMatchesCpu) {
  LT_REQUIRE_CUDA();
  for (const AttnCase& c : kAttnCases) {
    for (DType dt : kFloatTypes) {
      if (dt == DType::f64 && c.head_dim > 128) continue;
      // head_dim 256 backward needs Hopper's shared memory (about 210 KB per block).
      if (c.head_dim > 128 && cuda::launch::max_shared_memory_per_block() < 215 * 1024) continue;
      SCOPED_TRACE(std::string(c.name) + " " + name(dt));
      const AttnInputs in = attention_inputs(c);
      const Qkv c_in = make_qkv(c, dt, 71, Device::cpu);
      const Qkv g_in = make_qkv(c, dt, 71, Device::cuda);
      const Shape oshape{c.batch * c.q_len, c.heads * c.head_dim};
      const Tensor out_c = empty_on(oshape, dt, Device::cpu);
      const Tensor lse_c = empty_on(Shape{c.batch, c.heads, c.q_len}, stat_of(dt), Device::cpu);
      attention_forward(in.shape, c_in.q, c_in.k, c_in.v, out_c, lse_c);
      // Both backwards start from the CPU's forward results.
      const Tensor out_g = on_cuda(out_c), lse_g = on_cuda(lse_c);
      const Tensor dout_c = random_tensor(oshape, dt, 72, Device::cpu);
      const Tensor dout_g = random_tensor(oshape, dt, 72, Device::cuda);
      // Gradients as column blocks of one fused tensor, like the inputs (random contents:
      // everything inside the views must be overwritten, everything outside kept).
      const Qkv dc = make_qkv(c, dt, 73, Device::cpu);
      const Qkv dg = make_qkv(c, dt, 73, Device::cuda);
      attention_backward(in.shape, c_in.q, c_in.k, c_in.v, out_c, lse_c, dout_c, dc.q, dc.k, dc.v);
      cuda::attention_backward(in.shape, g_in.q, g_in.k, g_in.v, out_g, lse_g, dout_g, dg.q, dg.k,
                               dg.v);
      const double t = tol(dt, 2e-4, 2e-2, 1e-10);
      EXPECT_LE(max_rel_error(dg.q, dc.q), t) << "dq";
      EXPECT_LE(max_rel_error(dg.k, dc.k), t) << "dk";
      EXPECT_LE(max_rel_error(dg.v, dc.v), t) << "dv";
      EXPECT_LE(max_rel_error(dg.q_full, dc.q_full), t) << "fused gradient buffer";
      if (dc.kv_full.defined()) {
        EXPECT_LE(max_rel_error(dg.kv_full, dc.kv_full), t);
      }
    }
  }
}

TEST(CudaModelKernels, AttentionMergeMatchesCpu) {
  LT_REQUIRE_CUDA();
  const std::int64_t batch = 2, q_len = 50, heads = 4, hd = 32, rows = batch * q_len;
  for (DType ot : kFloatTypes) {
    for (DType pt : {DType::f32, DType::bf16}) {
      SCOPED_TRACE("out " + name(ot) + " part " + name(pt));
      const DType lse_type = stat_of(ot);
      const View out_c = strided(rows, heads * hd, 8, 8, ot, 81, Device::cpu);
      const View out_g = strided(rows, heads * hd, 8, 8, ot, 81, Device::cuda);
      const Tensor part_c = random_tensor(Shape{rows, heads * hd}, pt, 82, Device::cpu);
      const Tensor part_g = random_tensor(Shape{rows, heads * hd}, pt, 82, Device::cuda);
      // LSEs with some rows that saw nothing (-inf) in either part.
      Tensor lse_c = random_tensor(Shape{batch, heads, q_len}, DType::f64, 83, Device::cpu, 3.0);
      Tensor plse_c = random_tensor(Shape{batch, heads, q_len}, DType::f64, 84, Device::cpu, 3.0);
      for (std::int64_t i = 0; i < lse_c.numel(); ++i) {
        if (i % 3 == 0) lse_c.data<double>()[i] = -INFINITY;
        if (i % 4 == 0) plse_c.data<double>()[i] = -INFINITY;
      }
      Tensor l_c = empty_on(lse_c.shape(), lse_type, Device::cpu);
      Tensor pl_c = empty_on(lse_c.shape(), lse_type, Device::cpu);
      copy(lse_c, l_c);
      copy(plse_c, pl_c);
      const Tensor l_g = on_cuda(l_c), pl_g = on_cuda(pl_c);
      attention_merge(out_c.view, l_c, part_c, pl_c, heads, hd);
      cuda::attention_merge(out_g.view, l_g, part_g, pl_g, heads, hd);
      EXPECT_LE(max_rel_error(out_g.full, out_c.full), tol(ot, 2e-6));
      EXPECT_LE(lse_error(l_g, l_c), tol(ot, 1e-6, 1e-6));
    }
  }
}

// ------------------------------------------------------------------------------- cross-entropy

TEST(CudaModelKernels, SoftmaxCrossEntropyMatchesCpu) {
  LT_REQUIRE_CUDA();
  struct Case {
    std::int64_t width, valid, pad, off;
  };
  const std::int64_t rows = 37;
  for (DType dt : {DType::f32, DType::f64}) {
    for (const Case& c : {Case{1024, 1024, 0, 0}, Case{1003, 1000, 8, 8}, Case{517, 515, 3, 1}}) {
      for (double grad_scale : {0.0, 0.25}) {
        SCOPED_TRACE(name(dt) + " width " + std::to_string(c.width) + " valid " +
                     std::to_string(c.valid) + " off " + std::to_string(c.off) + " grad " +
                     std::to_string(grad_scale));
        const View lg_c = strided(rows, c.width, c.pad, c.off, dt, 91, Device::cpu, 3.0);
        const View lg_g = strided(rows, c.width, c.pad, c.off, dt, 91, Device::cuda, 3.0);
        const auto targets = random_ints(rows, 0, static_cast<std::int32_t>(c.valid), 92);
        std::vector<float> weights(rows);
        for (std::int64_t r = 0; r < rows; ++r) weights[r] = r % 5 == 0 ? 0.0f : 0.5f + r * 0.1f;
        std::vector<std::int32_t> pred_c(rows), pred_g(rows);
        const double loss_c =
            softmax_cross_entropy(lg_c.view, targets, weights, grad_scale, pred_c, c.valid);
        const double loss_g =
            cuda::softmax_cross_entropy(lg_g.view, targets, weights, grad_scale, pred_g, c.valid);
        EXPECT_NEAR(loss_g, loss_c, tol(dt, 1e-6) * std::abs(loss_c));
        EXPECT_EQ(pred_g, pred_c);
        EXPECT_LE(max_rel_error(lg_g.full, lg_c.full), tol(dt, 2e-5));
      }
    }
  }
}

TEST(CudaModelKernels, VocabParallelCrossEntropyMatchesCpu) {
  LT_REQUIRE_CUDA();
  const std::int64_t rows = 29, width = 512;
  const std::int64_t valid[2] = {512, 490}, offset[2] = {0, 512};  // shard 1 has padding
  for (DType dt : {DType::f32, DType::f64}) {
    SCOPED_TRACE(name(dt));
    const auto targets = random_ints(rows, 0, 512 + 490, 101);
    std::vector<float> weights(rows, 1.0f);
    weights[3] = 0.0f;
    Tensor lg_c[2], lg_g[2];
    std::vector<double> gmax(rows, -INFINITY), gsum(rows, 0.0), gtarget(rows, 0.0);
    for (int s = 0; s < 2; ++s) {
      lg_c[s] = random_tensor(Shape{rows, width}, dt, 102 + s, Device::cpu, 3.0);
      lg_g[s] = random_tensor(Shape{rows, width}, dt, 102 + s, Device::cuda, 3.0);
      std::vector<double> max_c(rows), max_g(rows);
      std::vector<std::int32_t> arg_c(rows), arg_g(rows);
      cross_entropy_shard_max(lg_c[s], valid[s], offset[s], max_c, arg_c);
      cuda::cross_entropy_shard_max(lg_g[s], valid[s], offset[s], max_g, arg_g);
      EXPECT_EQ(max_g, max_c) << "shard " << s;
      EXPECT_EQ(arg_g, arg_c) << "shard " << s;
      for (std::int64_t r = 0; r < rows; ++r) gmax[r] = std::max(gmax[r], max_c[r]);
    }
    for (int s = 0; s < 2; ++s) {
      std::vector<double> sum_c(rows), sum_g(rows), tl_c(rows), tl_g(rows);
      cross_entropy_shard_sums(lg_c[s], valid[s], offset[s], gmax, targets, sum_c, tl_c);
      cuda::cross_entropy_shard_sums(lg_g[s], valid[s], offset[s], gmax, targets, sum_g, tl_g);
      for (std::int64_t r = 0; r < rows; ++r) {
        EXPECT_NEAR(sum_g[r], sum_c[r], tol(dt, 1e-6) * sum_c[r]) << "shard " << s << " row " << r;
        gsum[r] += sum_c[r];
        gtarget[r] += tl_c[r];
      }
      EXPECT_EQ(tl_g, tl_c) << "shard " << s;
    }
    for (int s = 0; s < 2; ++s) {
      const double loss_c = cross_entropy_shard_finish(lg_c[s], valid[s], offset[s], gmax, gsum,
                                                       gtarget, targets, weights, 0.5);
      const double loss_g = cuda::cross_entropy_shard_finish(lg_g[s], valid[s], offset[s], gmax,
                                                             gsum, gtarget, targets, weights, 0.5);
      EXPECT_EQ(loss_g, loss_c) << "shard " << s;
      EXPECT_LE(max_rel_error(lg_g[s], lg_c[s]), tol(dt, 2e-5)) << "shard " << s;
    }
  }
}

// ------------------------------------------------------------------------------- determinism

TEST(CudaModelKernels, BackwardKernelsAreDeterministic) {
  LT_REQUIRE_CUDA();
  // Embedding backward with heavy repetition.
  {
    const std::int64_t n = 4096, dim = 256, vocab = 7;
    const auto tokens = random_ints(n, 0, vocab, 111);
    const Tensor dout = random_tensor(Shape{n, dim}, DType::bf16, 112, Device::cuda);
    Tensor first;
    for (int run = 0; run < 2; ++run) {
      const Tensor dtable =
          on_cuda(Tensor::zeros(Shape{vocab, dim}, DType::f32, MemCategory::workspace));
      cuda::embedding_backward(dout, tokens, dtable);
      if (run == 0) {
        first = dtable;
      } else {
        EXPECT_EQ(max_rel_error(dtable, first), 0.0) << "embedding";
      }
    }
  }
  // RMSNorm weight gradient over many chunks.
  {
    const std::int64_t rows = 5000, dim = 512;
    const Tensor x = random_tensor(Shape{rows, dim}, DType::bf16, 113, Device::cuda);
    const Tensor dy = random_tensor(Shape{rows, dim}, DType::bf16, 114, Device::cuda);
    const Tensor w = random_tensor(Shape{dim}, DType::bf16, 115, Device::cuda);
    const Tensor y = empty_on(Shape{rows, dim}, DType::bf16, Device::cuda);
    const Tensor r = empty_on(Shape{rows}, DType::f32, Device::cuda);
    cuda::rmsnorm_forward(x, w, 1e-5, y, r);
    Tensor first;
    for (int run = 0; run < 2; ++run) {
      const Tensor dx = empty_on(Shape{rows, dim}, DType::bf16, Device::cuda);
      const Tensor dw = on_cuda(Tensor::zeros(Shape{dim}, DType::f32, MemCategory::workspace));
      cuda::rmsnorm_backward(dy, x, w, r, dx, dw, false);
      if (run == 0) {
        first = dw;
      } else {
        EXPECT_EQ(max_rel_error(dw, first), 0.0) << "rmsnorm dweight";
      }
    }
  }
  // Attention gradients.
  {
    const AttnCase c{"det", 1, 300, 300, 8, 2, 64, true, Masks::plain};
    const AttnInputs in = attention_inputs(c);
    const Qkv g = make_qkv(c, DType::bf16, 116, Device::cuda);
    const Shape oshape{c.q_len, c.heads * c.head_dim};
    const Tensor out = empty_on(oshape, DType::bf16, Device::cuda);
    const Tensor lse = empty_on(Shape{1, c.heads, c.q_len}, DType::f32, Device::cuda);
    cuda::attention_forward(in.shape, g.q, g.k, g.v, out, lse);
    const Tensor dout = random_tensor(oshape, DType::bf16, 117, Device::cuda);
    Qkv first;
    for (int run = 0; run < 2; ++run) {
      const Qkv d = make_qkv(c, DType::bf16, 118, Device::cuda);
      cuda::attention_backward(in.shape, g.q, g.k, g.v, out, lse, dout, d.q, d.k, d.v);
      if (run == 0) {
        first = d;
      } else {
        EXPECT_EQ(max_rel_error(d.q_full, first.q_full), 0.0) << "attention gradients";
      }
    }
  }
}

}  // namespace
}  // namespace lt
