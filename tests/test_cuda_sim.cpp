// The CUDA backend's model kernels and their launchers (core/cuda/model_*.cu, flash_*.cu), compiled
// for the host emulation of tests/sim (one std::thread per CUDA thread, barriers, shuffles,
// shared memory; the launchers' runtime calls on host memory), against the CPU backend on the same
// inputs. This runs the kernels' own source on a machine without a GPU: launch geometry, indexing,
// shared-memory tiling, reductions and masks are all exercised; timing, real memory ordering and
// device limits are not (tests/gpu covers those on a GPU). Tolerances as in
// tests/gpu/test_cuda_model_kernels.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/ops.h"
#include "tests/gpu/attention_cases.h"
#include "tests/test_util.h"
// After the framework's headers: the emulated launchers, in namespace lt_sim.
#include "tests/sim/sim_backend.h"

namespace lt {
namespace {

using namespace test::attention_cases;
namespace sl = lt_sim::cuda::launch;

Tensor host(const Shape& s, DType d) {
  return Tensor::empty(s, d, MemCategory::workspace, Device::cpu);
}

sl::Dt dt_of(DType d) {
  return d == DType::f32 ? sl::Dt::f32 : d == DType::bf16 ? sl::Dt::bf16 : sl::Dt::f64;
}

struct AttnRun {
  AttnInputs masks;
  std::vector<std::int32_t> q_gran, k_gran;
  Qkv x;
  sl::AttentionArgs args;
};

AttnRun attention_run(const AttnCase& c, DType dt, bool allow_flash) {
  AttnRun r{attention_inputs(c), {}, {}, make_qkv(c, dt, 61, Device::cpu), {}};
  AttentionShape& s = r.masks.shape;
  s.q_order = r.masks.q_order;
  s.k_order = r.masks.k_order;
  s.q_doc = r.masks.q_doc;
  s.k_doc = r.masks.k_doc;
  r.q_gran =
      cuda::attention_granules(r.masks.q_order, r.masks.q_doc, c.batch, c.q_len, sl::kAttnGranule);
  r.k_gran =
      cuda::attention_granules(r.masks.k_order, r.masks.k_doc, c.batch, c.kv_len, sl::kAttnGranule);
  sl::AttentionArgs& a = r.args;
  a.dt = dt_of(dt);
  a.out_dt = a.dt;
  fill_attention_args(a, c, r.masks, r.q_gran, r.k_gran);
  a.q = r.x.q.raw();
  a.k = r.x.k.raw();
  a.v = r.x.v.raw();
  a.ldq = r.x.q.row_stride();
  a.ldk = r.x.k.row_stride();
  a.ldv = r.x.v.row_stride();
  a.allow_flash = allow_flash;
  return r;
}

DType stat_dtype(DType d) {
  return d == DType::f64 ? DType::f64 : DType::f32;
}

double tol(DType d, double f32, double bf16, double f64) {
  return d == DType::f32 ? f32 : d == DType::bf16 ? bf16 : f64;
}

void check_attention(const AttnCase& c, DType dt, bool allow_flash) {
  SCOPED_TRACE(std::string(c.name) + " " + std::string(dtype_name(dt)) +
               (allow_flash ? " (flash allowed)" : " (simple kernels)"));
  AttnRun r = attention_run(c, dt, allow_flash);
  const Shape oshape{c.batch * c.q_len, c.heads * c.head_dim}, lshape{c.batch, c.heads, c.q_len};
  const Tensor ref_out = host(oshape, dt), ref_lse = host(lshape, stat_dtype(dt));
  attention_forward(r.masks.shape, r.x.q, r.x.k, r.x.v, ref_out, ref_lse);
  const Tensor out = host(oshape, dt), lse = host(lshape, stat_dtype(dt));
  sl::attention_forward(r.args, out.raw(), out.row_stride(), lse.raw());
  EXPECT_LE(test::relative_error(out, ref_out), tol(dt, 1e-4, 1e-2, 1e-10)) << "forward";
  EXPECT_LE(test::lse_error(lse, ref_lse), tol(dt, 1e-5, 1e-5, 1e-10)) << "lse";

  const Tensor dout = test::random_tensor(oshape, dt, 72, "dout");
  const Qkv ref_d = make_qkv(c, dt, 73, Device::cpu), d = make_qkv(c, dt, 73, Device::cpu);
  attention_backward(r.masks.shape, r.x.q, r.x.k, r.x.v, ref_out, ref_lse, dout, ref_d.q, ref_d.k,
                     ref_d.v);
  std::vector<double> delta_scratch(static_cast<std::size_t>(c.batch * c.heads * c.q_len));
  sl::attention_backward(r.args, ref_out.raw(), ref_out.row_stride(), ref_lse.raw(), dout.raw(),
                         dout.row_stride(), d.q.raw(), d.q.row_stride(), d.k.raw(),
                         d.k.row_stride(), d.v.raw(), d.v.row_stride(), delta_scratch.data());
  const double t = tol(dt, 2e-4, 2e-2, 1e-10);
  EXPECT_LE(test::relative_error(d.q, ref_d.q), t) << "dq";
  EXPECT_LE(test::relative_error(d.k, ref_d.k), t) << "dk";
  EXPECT_LE(test::relative_error(d.v, ref_d.v), t) << "dv";
  EXPECT_LE(test::relative_error(d.q_full, ref_d.q_full), t) << "outside the gradient views";
}

constexpr AttnCase kCases[] = {
    {"causal_gqa2", 1, 70, 70, 4, 2, 64, true, Masks::plain},
    {"noncausal_cross_hd40", 1, 33, 90, 2, 1, 40, false, Masks::plain},
    {"docs_hd128", 1, 80, 80, 2, 1, 128, true, Masks::docs},
    {"zigzag_cross_ranks", 1, 64, 64, 2, 1, 32, true, Masks::zigzag},
};

TEST(CudaSim, SimpleAttentionKernelsMatchTheCpuBackend) {
  for (const AttnCase& c : kCases)
    for (DType dt : {DType::f32, DType::bf16, DType::f64}) check_attention(c, dt, false);
}

TEST(CudaSim, AttentionLaunchersDispatchBf16HeadDims64And128ToFlash) {
  const std::int64_t before = lt_sim::cuda::flash::calls();
  for (const AttnCase& c : kCases) check_attention(c, DType::bf16, true);
  // causal_gqa2 (64) and docs_hd128 (128), forward and backward each.
  EXPECT_EQ(lt_sim::cuda::flash::calls() - before, 4);
}

// ------------------------------------------------------------------- row-wise kernels

Tensor rnd(const Shape& s, DType d, std::uint64_t seed, double scale = 1.0) {
  return test::random_tensor(s, d, seed, "sim", scale);
}

constexpr DType kTypes[] = {DType::f32, DType::bf16, DType::f64};

TEST(CudaSim, RmsNormForwardAndBackwardMatchTheCpuBackend) {
  const std::int64_t rows = 37, dim = 96;  // rows not a multiple of the 8-row chunks
  for (DType dt : kTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    const DType grad_dt = dt == DType::f64 ? DType::f64 : DType::f32;
    const Tensor x = rnd(Shape{rows, dim}, dt, 1), w = rnd(Shape{dim}, dt, 2);
    const Tensor y_ref = host(Shape{rows, dim}, dt), r_ref = host(Shape{rows}, stat_dtype(dt));
    rmsnorm_forward(x, w, 1e-5, y_ref, r_ref);
    const Tensor y = host(Shape{rows, dim}, dt), r = host(Shape{rows}, stat_dtype(dt));
    sl::rmsnorm_forward(dt_of(dt), x.raw(), dim, w.raw(), y.raw(), dim, r.raw(), rows, dim, 1e-5);
    EXPECT_LE(test::relative_error(y, y_ref), tol(dt, 1e-6, 1e-2, 1e-12)) << "y";
    EXPECT_LE(test::relative_error(r, r_ref), tol(dt, 1e-6, 1e-6, 1e-12)) << "rstd";

    const Tensor dy = rnd(Shape{rows, dim}, dt, 3);
    const Tensor dx_ref = host(Shape{rows, dim}, dt),
                 dw_ref = Tensor::zeros(Shape{dim}, grad_dt, MemCategory::workspace, Device::cpu);
    rmsnorm_backward(dy, x, w, r_ref, dx_ref, dw_ref, false);
    const Tensor dx = host(Shape{rows, dim}, dt),
                 dw = Tensor::zeros(Shape{dim}, grad_dt, MemCategory::workspace, Device::cpu);
    // The launcher's scratch contract: 256-byte aligned, like the device allocator's blocks (the
    // kernel stores the partial sums as 32-byte vectors: unaligned, they fault).
    std::vector<double> partial(static_cast<std::size_t>(sl::rmsnorm_chunks(rows) * dim) + 32);
    void* aligned = partial.data();
    std::size_t space = partial.size() * sizeof(double);
    ASSERT_NE(std::align(256, sizeof(double), aligned, space), nullptr);
    sl::rmsnorm_backward(dt_of(dt), dy.raw(), dim, x.raw(), dim, w.raw(), r_ref.raw(), dx.raw(),
                         dim, false, dt_of(grad_dt), dw.raw(), rows, dim, aligned);
    EXPECT_LE(test::relative_error(dx, dx_ref), tol(dt, 1e-5, 1e-2, 1e-12)) << "dx";
    EXPECT_LE(test::relative_error(dw, dw_ref), tol(dt, 1e-5, 1e-4, 1e-12)) << "dweight";
  }
}

TEST(CudaSim, SwiGluAndRopeMatchTheCpuBackend) {
  const std::int64_t rows = 19, f = 40, heads = 3, hd = 16, max_pos = 64;
  for (DType dt : kTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    const Tensor gu = rnd(Shape{rows, 2 * f}, dt, 4);
    const Tensor out_ref = host(Shape{rows, f}, dt), out = host(Shape{rows, f}, dt);
    swiglu_forward(gu, out_ref);
    sl::swiglu_forward(dt_of(dt), gu.raw(), 2 * f, out.raw(), f, rows, f);
    EXPECT_LE(test::relative_error(out, out_ref), tol(dt, 1e-6, 1e-2, 1e-12)) << "swiglu";
    const Tensor dout = rnd(Shape{rows, f}, dt, 5);
    const Tensor dgu_ref = host(Shape{rows, 2 * f}, dt), dgu = host(Shape{rows, 2 * f}, dt);
    swiglu_backward(dout, gu, dgu_ref);
    sl::swiglu_backward(dt_of(dt), dout.raw(), f, gu.raw(), 2 * f, dgu.raw(), 2 * f, rows, f);
    EXPECT_LE(test::relative_error(dgu, dgu_ref), tol(dt, 1e-6, 1e-2, 1e-12)) << "swiglu backward";

    const Tensor cos_t = rnd(Shape{max_pos, hd / 2}, DType::f32, 6),
                 sin_t = rnd(Shape{max_pos, hd / 2}, DType::f32, 7);
    std::vector<std::int32_t> positions;
    for (std::int64_t r = 0; r < rows; ++r)
      positions.push_back(static_cast<std::int32_t>((r * 7) % max_pos));
    for (bool inverse : {false, true}) {
      const Tensor x_ref = rnd(Shape{rows, heads * hd}, dt, 8),
                   x = rnd(Shape{rows, heads * hd}, dt, 8);
      rope_apply(x_ref, hd, positions, cos_t, sin_t, inverse);
      sl::rope_apply(dt_of(dt), x.raw(), heads * hd, rows, heads * hd, hd, positions.data(),
                     cos_t.data<float>(), sin_t.data<float>(), hd / 2, inverse);
      EXPECT_LE(test::relative_error(x, x_ref), tol(dt, 1e-6, 1e-2, 1e-12)) << "rope " << inverse;
    }
  }
}

TEST(CudaSim, CrossEntropyWholeRowsAndShardsMatchTheCpuBackend) {
  const std::int64_t rows = 9, width = 300, valid = 290;
  for (DType dt : {DType::f32, DType::f64}) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    std::vector<std::int32_t> targets;
    std::vector<float> weights;
    for (std::int64_t r = 0; r < rows; ++r) {
      targets.push_back(static_cast<std::int32_t>((r * 37) % valid));
      weights.push_back(r % 4 == 3 ? 0.f : 1.f);
    }
    const Tensor logits_ref = rnd(Shape{rows, width}, dt, 9, 3.0),
                 logits = rnd(Shape{rows, width}, dt, 9, 3.0);
    std::vector<std::int32_t> pred_ref(static_cast<std::size_t>(rows)),
        pred(static_cast<std::size_t>(rows));
    const double ref = softmax_cross_entropy(logits_ref, targets, weights, 0.5, pred_ref, valid);
    std::vector<double> loss(static_cast<std::size_t>(rows));
    sl::softmax_cross_entropy(dt_of(dt), logits.raw(), width, rows, width, valid, targets.data(),
                              weights.data(), 0.5, loss.data(), pred.data());
    double total = 0;
    for (std::int64_t r = 0; r < rows; ++r)
      total += weights[static_cast<std::size_t>(r)] * loss[static_cast<std::size_t>(r)];
    EXPECT_NEAR(total, ref, tol(dt, 1e-5, 0, 1e-12) * std::abs(ref)) << "loss";
    EXPECT_EQ(pred, pred_ref) << "argmax";
    EXPECT_LE(test::relative_error(logits, logits_ref), tol(dt, 1e-5, 0, 1e-12)) << "gradient";

    // The vocab-parallel passes over a shard of columns [100, 300) against the whole-row result.
    const std::int64_t offset = 100, shard = width - offset;
    const Tensor full = rnd(Shape{rows, width}, dt, 10, 3.0);
    const Tensor part = host(Shape{rows, shard}, dt);
    copy(full.columns(offset, shard), part);
    std::vector<double> row_max(static_cast<std::size_t>(rows)),
        sum_exp(static_cast<std::size_t>(rows)), target_logit(static_cast<std::size_t>(rows));
    std::vector<std::int32_t> argmax(static_cast<std::size_t>(rows));
    sl::cross_entropy_shard_max(dt_of(dt), part.raw(), shard, rows, valid - offset, offset,
                                row_max.data(), argmax.data());
    sl::cross_entropy_shard_sums(dt_of(dt), part.raw(), shard, rows, valid - offset, offset,
                                 row_max.data(), targets.data(), sum_exp.data(),
                                 target_logit.data());
    const Tensor f64 = test::to_f64(full);
    for (std::int64_t r = 0; r < rows; ++r) {
      double m = -INFINITY, se = 0, tl = 0;
      for (std::int64_t c = offset; c < valid; ++c)
        m = std::max(m, f64.data<double>()[r * width + c]);
      for (std::int64_t c = offset; c < valid; ++c)
        se += std::exp(f64.data<double>()[r * width + c] - m);
      const std::int32_t t = targets[static_cast<std::size_t>(r)];
      if (t >= offset) tl = f64.data<double>()[r * width + t];
      const auto i = static_cast<std::size_t>(r);
      EXPECT_NEAR(row_max[i], m, 1e-6 * std::abs(m)) << "row " << r;
      EXPECT_NEAR(sum_exp[i], se, 1e-5 * se) << "row " << r;
      EXPECT_NEAR(target_logit[i], tl, 1e-6 * std::abs(tl) + 1e-12) << "row " << r;
    }
  }
}

TEST(CudaSim, AttentionMergeMatchesTheCpuBackend) {
  const std::int64_t batch = 2, q_len = 13, heads = 3, hd = 24, rows = batch * q_len;
  for (DType dt : kTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    const DType acc = dt == DType::f64 ? DType::f64 : DType::f32;
    const Tensor part = rnd(Shape{rows, heads * hd}, acc, 11),
                 part_lse = rnd(Shape{batch, heads, q_len}, acc, 12);
    const Tensor out_ref = rnd(Shape{rows, heads * hd}, acc, 13),
                 lse_ref = rnd(Shape{batch, heads, q_len}, acc, 14);
    const Tensor out = rnd(Shape{rows, heads * hd}, acc, 13),
                 lse = rnd(Shape{batch, heads, q_len}, acc, 14);
    attention_merge(out_ref, lse_ref, part, part_lse, heads, hd);
    sl::attention_merge(dt_of(acc), out.raw(), heads * hd, dt_of(acc), part.raw(), heads * hd,
                        dt_of(acc), lse.raw(), part_lse.raw(), batch, q_len, heads, hd);
    EXPECT_LE(test::relative_error(out, out_ref), tol(acc, 2e-6, 0, 1e-12));
    EXPECT_LE(test::relative_error(lse, lse_ref), tol(acc, 1e-6, 0, 1e-12));
  }
}

TEST(CudaSim, EmbeddingForwardAndBackwardMatchTheCpuBackend) {
  const std::int64_t vocab = 50, dim = 40;
  const std::vector<std::int32_t> tokens = {3, 7, 3, 49, 0, 7, 7, 12, 3, 25, 49};
  const auto n = static_cast<std::int64_t>(tokens.size());
  for (DType dt : kTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    const Tensor table = rnd(Shape{vocab, dim}, dt, 15);
    const Tensor out_ref = host(Shape{n, dim}, dt), out = host(Shape{n, dim}, dt);
    embedding_forward(table, tokens, out_ref);
    sl::embedding_forward(dtype_size(dt), table.raw(), vocab, dim, dim, tokens.data(), n, 0,
                          out.raw(), dim);
    EXPECT_EQ(test::relative_error(out, out_ref), 0.0) << "forward";

    const DType grad_dt = dt == DType::f64 ? DType::f64 : DType::f32;
    const Tensor dout = rnd(Shape{n, dim}, dt, 16);
    const Tensor dt_ref = rnd(Shape{vocab, dim}, grad_dt, 17),
                 dtab = rnd(Shape{vocab, dim}, grad_dt, 17);
    embedding_backward(dout, tokens, dt_ref);
    // Occurrences grouped by row, token order within a row (as model_ops.cpp stages them).
    std::vector<std::pair<std::int32_t, std::int32_t>> occ;
    for (std::int32_t t = 0; t < n; ++t) occ.emplace_back(tokens[static_cast<std::size_t>(t)], t);
    std::sort(occ.begin(), occ.end());
    std::vector<std::int32_t> positions, seg_start, seg_row;
    for (std::size_t i = 0; i < occ.size(); ++i) {
      if (i == 0 || occ[i].first != occ[i - 1].first) {
        seg_start.push_back(static_cast<std::int32_t>(i));
        seg_row.push_back(occ[i].first);
      }
      positions.push_back(occ[i].second);
    }
    seg_start.push_back(static_cast<std::int32_t>(occ.size()));
    sl::embedding_backward(dt_of(dt), dout.raw(), dim, dt_of(grad_dt), dtab.raw(), dim, dim,
                           positions.data(), seg_start.data(), seg_row.data(),
                           static_cast<std::int64_t>(seg_row.size()));
    EXPECT_EQ(test::relative_error(dtab, dt_ref), 0.0) << "backward, in token order";
  }
}

// ------------------------------------------------------------------- base (element-wise) kernels

sl::Matrix matrix(const Tensor& t) {
  sl::Matrix m;
  m.data = t.raw();
  m.dt = dt_of(t.dtype());
  m.rows = t.rank() == 1 ? 1 : t.dim(0);
  m.cols = t.rank() == 1 ? t.dim(0) : t.dim(1);
  m.ld = t.rank() == 1 ? t.dim(0) : t.row_stride();
  return m;
}

TEST(CudaSim, CastsFillScaleAndAddMatchTheCpuBackend) {
  for (DType from : kTypes)
    for (DType to : kTypes) {
      SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + std::string(dtype_name(to)));
      // A strided view (columns 3..3+50 of 70) into a contiguous tensor and back.
      const Tensor wide = rnd(Shape{21, 70}, from, 20, 3.0);
      const Tensor src = wide.columns(3, 50);
      const Tensor ref = host(Shape{21, 50}, to), out = host(Shape{21, 50}, to);
      copy(src, ref);
      sl::cast_copy(matrix(src), matrix(out));
      EXPECT_EQ(test::relative_error(out, ref), 0.0) << "cast (round to nearest even)";
    }
  for (DType dt : kTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    const Tensor a_ref = rnd(Shape{1000}, dt, 21), a = rnd(Shape{1000}, dt, 21);
    scale(a_ref, 0.37);
    sl::scale(matrix(a), 0.37);
    EXPECT_LE(test::relative_error(a, a_ref), tol(dt, 1e-7, 1e-2, 1e-15)) << "scale";
    fill(a_ref, -2.5);
    sl::fill(matrix(a), -2.5);
    EXPECT_EQ(test::relative_error(a, a_ref), 0.0) << "fill";
    for (DType src_dt : kTypes) {
      const Tensor d_ref = rnd(Shape{1001}, dt, 22), d = rnd(Shape{1001}, dt, 22);
      const Tensor src = rnd(Shape{1001}, src_dt, 23);
      add(d_ref, src, 0.75);
      sl::add(dt_of(dt), d.raw(), dt_of(src_dt), src.raw(), 1001, 0.75);
      EXPECT_LE(test::relative_error(d, d_ref), tol(dt, 1e-7, 1e-2, 1e-15))
          << "add from " << dtype_name(src_dt);
    }
  }
}

TEST(CudaSim, BiasForwardBackwardAndSumOfSquaresMatchTheCpuBackend) {
  const std::int64_t rows = 70, cols = 33;
  for (DType dt : kTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    const Tensor bias = rnd(Shape{cols}, dt, 24);
    const Tensor y_ref = rnd(Shape{rows, cols}, dt, 25), y = rnd(Shape{rows, cols}, dt, 25);
    add_bias(y_ref, bias);
    sl::add_bias(matrix(y), bias.raw());
    EXPECT_LE(test::relative_error(y, y_ref), tol(dt, 1e-7, 1e-2, 1e-15)) << "add_bias";

    const DType grad_dt = dt == DType::f64 ? DType::f64 : DType::f32;
    const Tensor dy = rnd(Shape{rows, cols}, dt, 26);
    const Tensor db_ref = rnd(Shape{cols}, grad_dt, 27), db = rnd(Shape{cols}, grad_dt, 27);
    bias_backward(dy, db_ref);
    std::vector<double> partial(static_cast<std::size_t>(sl::bias_chunks(rows) * cols));
    sl::bias_backward(matrix(dy), dt_of(grad_dt), db.raw(), partial.data());
    EXPECT_LE(test::relative_error(db, db_ref), tol(dt, 1e-6, 1e-6, 1e-13)) << "bias_backward";

    const Tensor x = rnd(Shape{20000}, dt, 28);  // three 8192-element chunks
    std::vector<double> chunks(static_cast<std::size_t>(sl::sum_squares_chunks(20000) + 1));
    const double ref = sum_squares(x);
    EXPECT_NEAR(sl::sum_squares(dt_of(dt), x.raw(), 20000, chunks.data()), ref, 1e-12 * ref);
  }
}

TEST(CudaSim, AdamWMatchesTheCpuBackend) {
  const std::int64_t n = 777;
  for (DType master_dt : {DType::f32, DType::f64}) {
    SCOPED_TRACE(std::string(dtype_name(master_dt)));
    const AdamWStep step{.lr = 1e-2,
                         .beta1 = 0.9,
                         .beta2 = 0.95,
                         .eps = 1e-8,
                         .weight_decay = 0.1,
                         .step = 3,
                         .grad_scale = 0.5};
    const sl::AdamWArgs args{.lr = 1e-2,
                             .beta1 = 0.9,
                             .beta2 = 0.95,
                             .eps = 1e-8,
                             .weight_decay = 0.1,
                             .grad_scale = 0.5,
                             .step = 3};
    const Tensor w_ref = rnd(Shape{n}, master_dt, 29), w = rnd(Shape{n}, master_dt, 29);
    const Tensor g = rnd(Shape{n}, master_dt, 30);
    const Tensor m_ref = rnd(Shape{n}, master_dt, 31, 0.1), m = rnd(Shape{n}, master_dt, 31, 0.1);
    Tensor v_ref = rnd(Shape{n}, master_dt, 32, 0.1), v = rnd(Shape{n}, master_dt, 32, 0.1);
    // Second moments are squares: non-negative.
    for (const Tensor* t : {&v_ref, &v}) {
      const Tensor sq = host(Shape{n}, master_dt);
      copy(*t, sq);
      const Tensor abs64 = test::to_f64(sq);
      for (std::int64_t i = 0; i < n; ++i)
        abs64.data<double>()[i] = std::abs(abs64.data<double>()[i]);
      copy(abs64, *t);
    }
    const Tensor copy_ref = host(Shape{n}, DType::bf16), copy_out = host(Shape{n}, DType::bf16);
    adamw_update(w_ref, g, m_ref, v_ref, step, copy_ref);
    sl::adamw_update(dt_of(master_dt), w.raw(), g.raw(), m.raw(), v.raw(), n, args, sl::Dt::bf16,
                     copy_out.raw());
    const double t = tol(master_dt, 1e-6, 0, 1e-14);
    EXPECT_LE(test::relative_error(w, w_ref), t) << "weights";
    EXPECT_LE(test::relative_error(m, m_ref), t) << "first moment";
    EXPECT_LE(test::relative_error(v, v_ref), t) << "second moment";
    EXPECT_LE(test::relative_error(copy_out, copy_ref), 1e-2) << "bf16 compute copy";
  }
}

}  // namespace
}  // namespace lt
