// Core pieces: RNG, bf16, tensors and memory accounting, GEMM, reductions, AdamW, schedules.
#include <cmath>
#include <cstring>
#include <vector>

#include "core/cpu/common.h"
#include "core/memory.h"
#include "optim/lr_schedule.h"
#include "tests/test_util.h"

namespace lt {
namespace {

TEST(Philox, KnownAnswerVectors) {
  // Random123's philox4x32-10 known-answer tests.
  EXPECT_EQ(philox4x32(0, 0, 0), (Philox4{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  EXPECT_EQ(philox4x32(~0ull, ~0ull, ~0ull),
            (Philox4{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
}

TEST(Philox, NormalHasUnitMomentsAndDependsOnKeyAndIndexOnly) {
  const std::uint64_t key = rng_key(1234, "model.layers.0.mlp.up_proj.weight");
  double sum = 0.0, sq = 0.0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double x = normal_at(key, static_cast<std::uint64_t>(i));
    sum += x;
    sq += x * x;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sq / n, 1.0, 0.01);
  EXPECT_EQ(normal_at(key, 777), normal_at(key, 777));
  EXPECT_NE(normal_at(key, 777), normal_at(rng_key(1234, "other"), 777));
  EXPECT_NE(normal_at(key, 777),
            normal_at(rng_key(1235, "model.layers.0.mlp.up_proj.weight"), 777));
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(bf16(1.0f).bits, 0x3f80);
  // 1 + 2^-8 is exactly halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
  EXPECT_EQ(bf16(1.0f + 0x1.0p-8f).bits, 0x3f80);
  EXPECT_EQ(bf16(1.0f + 0x1.8p-8f).bits, 0x3f81);
  EXPECT_EQ(static_cast<float>(bf16(-2.5f)), -2.5f);
  EXPECT_TRUE(std::isnan(static_cast<float>(bf16(std::nanf("")))));
}

TEST(ExpApprox, AccurateAndZeroForMinusInfinity) {
  double worst = 0.0;
  for (float x = -87.0f; x < 88.0f; x += 0.001f) {
    const double ref = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(cpu::exp_approx(x) - ref) / ref);
  }
  EXPECT_LT(worst, 5e-7);
  EXPECT_EQ(cpu::exp_approx(-std::numeric_limits<float>::infinity()), 0.0f);
  EXPECT_EQ(cpu::exp_approx(-100.0f), 0.0f);
}

TEST(Memory, EveryAllocationIsCountedInItsCategory) {
  MemoryTracker& mem = MemoryTracker::for_device(Device::cpu);
  const MemorySnapshot before = mem.snapshot();
  mem.reset_peaks();
  {
    Tensor a = Tensor::empty(Shape{100, 10}, DType::f32, MemCategory::optimizer);
    Tensor b = Tensor::empty(Shape{50}, DType::bf16, MemCategory::communication);
    const MemorySnapshot during = mem.snapshot();
    EXPECT_EQ(during.current_of(MemCategory::optimizer) - before.current_of(MemCategory::optimizer),
              4000);
    EXPECT_EQ(during.current_of(MemCategory::communication) -
                  before.current_of(MemCategory::communication),
              100);
    Tensor view = a.columns(2, 3);  // views allocate nothing
    EXPECT_EQ(mem.snapshot().current_total, during.current_total);
  }
  const MemorySnapshot after = mem.snapshot();
  EXPECT_EQ(after.current_total, before.current_total);
  EXPECT_EQ(after.peak_of(MemCategory::optimizer) - before.current_of(MemCategory::optimizer),
            4000);
}

TEST(TensorViews, ColumnsRowsAndErrors) {
  Tensor t = Tensor::zeros(Shape{4, 6}, DType::f32, MemCategory::workspace);
  for (int i = 0; i < 24; ++i) t.data<float>()[i] = static_cast<float>(i);
  const Tensor c = t.columns(2, 3);
  EXPECT_EQ(c.row_stride(), 6);
  EXPECT_FALSE(c.is_contiguous());
  EXPECT_EQ(c.data<float>()[6], 8.0f);
  const Tensor r = t.rows(1, 2);
  EXPECT_EQ(r.data<float>()[0], 6.0f);
  EXPECT_EQ(r.shape(), (Shape{2, 6}));
  EXPECT_THROW(t.columns(5, 2), Error);
  EXPECT_THROW(c.reshape(Shape{12}), Error);
  EXPECT_THROW((void)t.data<double>(), Error);
}

// C = op(A) op(B) in double, the reference for every GEMM case.
Tensor naive_matmul(const Tensor& a, bool ta, const Tensor& b, bool tb) {
  const Tensor A = test::to_f64(a), B = test::to_f64(b);
  const std::int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1);
  const std::int64_t n = tb ? b.dim(0) : b.dim(1);
  Tensor c = Tensor::zeros(Shape{m, n}, DType::f64, MemCategory::workspace);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (std::int64_t p = 0; p < k; ++p) {
        const double x =
            ta ? A.data<double>()[p * a.dim(1) + i] : A.data<double>()[i * a.dim(1) + p];
        const double y =
            tb ? B.data<double>()[j * b.dim(1) + p] : B.data<double>()[p * b.dim(1) + j];
        s += x * y;
      }
      c.data<double>()[i * n + j] = s;
    }
  return c;
}

TEST(Gemm, AllTransposesAndDtypesMatchNaive) {
  const std::int64_t m = 67, n = 45, k = 33;
  for (DType dt : {DType::f32, DType::f64, DType::bf16}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        const Tensor a = test::random_tensor(ta ? Shape{k, m} : Shape{m, k}, dt, 1, "a");
        const Tensor b = test::random_tensor(tb ? Shape{n, k} : Shape{k, n}, dt, 1, "b");
        const DType out = dt == DType::bf16 ? DType::f32 : dt;
        Tensor c = Tensor::empty(Shape{m, n}, out, MemCategory::workspace);
        matmul(a, ta, b, tb, c);
        // bf16 inputs are exact in fp32, so only the fp32 accumulation differs.
        const double tol = dt == DType::f64 ? 1e-13 : 1e-6;
        EXPECT_LE(test::relative_error(c, naive_matmul(a, ta, b, tb)), tol)
            << dtype_name(dt) << " ta " << ta << " tb " << tb;
      }
    }
  }
}

TEST(Gemm, StridedViewsAlphaBetaAndBf16Output) {
  const Tensor wide = test::random_tensor(Shape{40, 30}, DType::f32, 2, "wide");
  const Tensor a = wide.columns(5, 12);  // [40, 12] with row stride 30
  const Tensor b = test::random_tensor(Shape{20, 12}, DType::f32, 2, "b");
  Tensor c_wide = test::random_tensor(Shape{40, 50}, DType::f32, 2, "c");
  Tensor c = c_wide.columns(10, 20);
  const Tensor c0 = test::to_f64(c);
  matmul(a, false, b, true, c, 2.0, 0.5);
  const Tensor ref = naive_matmul(a, false, b, true);
  const Tensor got = test::to_f64(c);
  for (std::int64_t i = 0; i < got.numel(); ++i) {
    EXPECT_NEAR(got.data<double>()[i], 2.0 * ref.data<double>()[i] + 0.5 * c0.data<double>()[i],
                1e-4);
  }
  EXPECT_EQ(c_wide.data<float>()[0],
            test::random_tensor(Shape{40, 50}, DType::f32, 2, "c").data<float>()[0])
      << "columns outside the view must be untouched";

  const Tensor ab = test::random_tensor(Shape{16, 24}, DType::bf16, 3, "ab");
  const Tensor bb = test::random_tensor(Shape{24, 8}, DType::bf16, 3, "bb");
  Tensor cb = Tensor::empty(Shape{16, 8}, DType::bf16, MemCategory::workspace);
  matmul(ab, false, bb, false, cb);
  EXPECT_LE(test::relative_error(cb, naive_matmul(ab, false, bb, false)), 1.0 / 128);
}

TEST(Determinism, ResultsDoNotDependOnTheThreadCount) {
  const Tensor a = test::random_tensor(Shape{512, 256}, DType::f32, 4, "a");
  const Tensor b = test::random_tensor(Shape{256, 384}, DType::f32, 4, "b");
  const Tensor x = test::random_tensor(Shape{300, 128}, DType::f32, 4, "x");
  const Tensor w = test::random_tensor(Shape{128}, DType::f32, 4, "w");
  auto run = [&](int threads) {
    set_num_threads(threads);
    Tensor c = Tensor::empty(Shape{512, 384}, DType::f32, MemCategory::workspace);
    matmul(a, false, b, false, c);
    Tensor dw = Tensor::zeros(Shape{128}, DType::f32, MemCategory::workspace);
    Tensor y = Tensor::empty(x.shape(), DType::f32, MemCategory::workspace);
    Tensor rstd = Tensor::empty(Shape{300}, DType::f32, MemCategory::workspace);
    rmsnorm_forward(x, w, 1e-5, y, rstd);
    Tensor dx = Tensor::empty(x.shape(), DType::f32, MemCategory::workspace);
    rmsnorm_backward(x, x, w, rstd, dx, dw, false);
    return std::vector<Tensor>{c, dw, dx};
  };
  const auto one = run(1);
  const auto two = run(2);
  const auto three = run(3);
  for (std::size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(std::memcmp(one[i].raw(), two[i].raw(), one[i].nbytes()), 0) << "output " << i;
    EXPECT_EQ(std::memcmp(one[i].raw(), three[i].raw(), one[i].nbytes()), 0) << "output " << i;
  }
  EXPECT_EQ(sum_squares(a), [&] {
    set_num_threads(1);
    return sum_squares(a);
  }());
  set_num_threads(2);
}

TEST(CrossEntropy, MatchesDirectFormulaWithPaddingAndWeights) {
  const Tensor logits = test::random_tensor(Shape{5, 12}, DType::f64, 5, "logits", 3.0);
  const Tensor ref = test::to_f64(logits);
  const std::vector<std::int32_t> targets = {0, 9, 3, 9, 1};
  const std::vector<float> weights = {1, 0, 1, 1, 0.5f};
  std::vector<std::int32_t> pred(5);
  const double got =
      softmax_cross_entropy(logits, targets, weights, 0.0, pred, 10);  // 2 padding columns
  double want = 0.0;
  for (int r = 0; r < 5; ++r) {
    const double* row = ref.data<double>() + r * 12;
    double mx = row[0], sum = 0.0;
    int arg = 0;
    for (int j = 1; j < 10; ++j) {
      if (row[j] > mx) {
        mx = row[j];
        arg = j;
      }
    }
    for (int j = 0; j < 10; ++j) sum += std::exp(row[j] - mx);
    want += weights[static_cast<std::size_t>(r)] *
            (mx + std::log(sum) - row[targets[static_cast<std::size_t>(r)]]);
    EXPECT_EQ(pred[static_cast<std::size_t>(r)], arg);
  }
  EXPECT_NEAR(got, want, 1e-12);
}

// Three vocabulary shards (14 + 14 + 12 valid columns of width 14) with the row statistics
// combined by hand, as the tensor-parallel group's all-reduces will: the same loss, gradient and
// argmax as the full-vocabulary kernel.
TEST(CrossEntropy, VocabShardsCombineToTheFullResult) {
  const std::int64_t rows = 6, vocab = 40, width = 14, shards = 3;
  const Tensor full = test::random_tensor(Shape{rows, vocab}, DType::f64, 8, "logits", 3.0);
  const std::vector<std::int32_t> targets = {0, 13, 14, 27, 28, 39};
  const std::vector<float> weights = {1, 1, 0.5f, 1, 0, 1};
  Tensor full_grad = test::to_f64(full);
  std::vector<std::int32_t> full_pred(rows);
  const double want = softmax_cross_entropy(full_grad, targets, weights, 0.25, full_pred, vocab);

  std::vector<Tensor> parts;
  std::vector<double> mx(rows, -1e300), sum(rows, 0.0), tgt(rows, 0.0);
  std::vector<std::int32_t> best(rows, 0);
  for (std::int64_t s = 0; s < shards; ++s) {
    const std::int64_t off = s * width, valid = std::min(width, vocab - off);
    Tensor p = Tensor::zeros(Shape{rows, width}, DType::f64, MemCategory::workspace);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t j = 0; j < valid; ++j)
        p.data<double>()[r * width + j] = full.data<double>()[r * vocab + off + j];
    std::vector<double> m(rows);
    std::vector<std::int32_t> a(rows);
    cross_entropy_shard_max(p, valid, off, m, a);
    for (std::int64_t r = 0; r < rows; ++r) {
      if (m[static_cast<std::size_t>(r)] > mx[static_cast<std::size_t>(r)]) {
        mx[static_cast<std::size_t>(r)] = m[static_cast<std::size_t>(r)];
        best[static_cast<std::size_t>(r)] = a[static_cast<std::size_t>(r)];
      }
    }
    parts.push_back(p);
  }
  for (std::int64_t s = 0; s < shards; ++s) {
    const std::int64_t off = s * width, valid = std::min(width, vocab - off);
    std::vector<double> se(rows), tl(rows);
    cross_entropy_shard_sums(parts[static_cast<std::size_t>(s)], valid, off, mx, targets, se, tl);
    for (std::size_t r = 0; r < static_cast<std::size_t>(rows); ++r) {
      sum[r] += se[r];
      tgt[r] += tl[r];
    }
  }
  for (std::int64_t s = 0; s < shards; ++s) {
    const std::int64_t off = s * width, valid = std::min(width, vocab - off);
    const double got = cross_entropy_shard_finish(parts[static_cast<std::size_t>(s)], valid, off,
                                                  mx, sum, tgt, targets, weights, 0.25);
    EXPECT_NEAR(got, want, 1e-12);
    for (std::int64_t r = 0; r < rows; ++r) {
      for (std::int64_t j = 0; j < valid; ++j) {
        EXPECT_NEAR(parts[static_cast<std::size_t>(s)].data<double>()[r * width + j],
                    full_grad.data<double>()[r * vocab + off + j], 1e-14);
      }
      for (std::int64_t j = valid; j < width; ++j)
        EXPECT_EQ(parts[static_cast<std::size_t>(s)].data<double>()[r * width + j], 0.0);
    }
  }
  EXPECT_EQ(best, full_pred);
}

// Two vocabulary shards of an embedding: their forward outputs sum to the full lookup and their
// gradients are the full gradient's rows.
TEST(Embedding, VocabShardsSumToTheFullLookup) {
  const Tensor table = test::random_tensor(Shape{10, 4}, DType::f64, 9, "table");
  const std::vector<std::int32_t> tokens = {0, 9, 4, 5, 4, 7};
  Tensor want = Tensor::empty(Shape{6, 4}, DType::f64, MemCategory::workspace);
  embedding_forward(table, tokens, want);
  const Tensor dout = test::random_tensor(Shape{6, 4}, DType::f64, 9, "dout");
  Tensor full_grad = Tensor::zeros(Shape{10, 4}, DType::f64, MemCategory::workspace);
  embedding_backward(dout, tokens, full_grad);
  Tensor sum = Tensor::zeros(Shape{6, 4}, DType::f64, MemCategory::workspace);
  for (std::int64_t off : {0, 5}) {
    Tensor shard = Tensor::empty(Shape{5, 4}, DType::f64, MemCategory::workspace);
    copy(table.reshape(Shape{40}).flat_view(off * 4, Shape{20}), shard.reshape(Shape{20}));
    Tensor part = Tensor::empty(Shape{6, 4}, DType::f64, MemCategory::workspace);
    embedding_shard_forward(shard, off, tokens, part);
    add(sum, part);
    Tensor grad = Tensor::zeros(Shape{5, 4}, DType::f64, MemCategory::workspace);
    embedding_shard_backward(dout, off, tokens, grad);
    for (int i = 0; i < 20; ++i)
      EXPECT_EQ(grad.data<double>()[i], full_grad.data<double>()[off * 4 + i]);
  }
  for (int i = 0; i < 24; ++i) EXPECT_EQ(sum.data<double>()[i], want.data<double>()[i]);
}

TEST(AdamW, MatchesTheReferenceUpdate) {
  Tensor w = Tensor::empty(Shape{3}, DType::f64, MemCategory::optimizer);
  Tensor g = Tensor::empty(Shape{3}, DType::f64, MemCategory::grads);
  Tensor m = Tensor::zeros(Shape{3}, DType::f64, MemCategory::optimizer);
  Tensor v = Tensor::zeros(Shape{3}, DType::f64, MemCategory::optimizer);
  Tensor copy_bf16 = Tensor::empty(Shape{3}, DType::bf16, MemCategory::weights);
  double ref_w[3] = {0.5, -1.0, 2.0}, ref_m[3] = {}, ref_v[3] = {};
  for (int i = 0; i < 3; ++i) w.data<double>()[i] = ref_w[i];
  AdamWStep s{1e-2, 0.9, 0.95, 1e-8, 0.1, 0, 0.5};
  for (int t = 1; t <= 3; ++t) {
    s.step = t;
    for (int i = 0; i < 3; ++i) g.data<double>()[i] = 0.3 * (i + 1) * (t % 2 ? 1 : -1);
    adamw_update(w, g, m, v, s, copy_bf16);
    for (int i = 0; i < 3; ++i) {
      const double gi = g.data<double>()[i] * s.grad_scale;
      ref_m[i] = 0.9 * ref_m[i] + 0.1 * gi;
      ref_v[i] = 0.95 * ref_v[i] + 0.05 * gi * gi;
      const double mh = ref_m[i] / (1 - std::pow(0.9, t)), vh = ref_v[i] / (1 - std::pow(0.95, t));
      ref_w[i] = ref_w[i] - 1e-2 * 0.1 * ref_w[i] - 1e-2 * mh / (std::sqrt(vh) + 1e-8);
      EXPECT_NEAR(w.data<double>()[i], ref_w[i], 1e-14);
      EXPECT_EQ(copy_bf16.data<bf16>()[i].bits, bf16(static_cast<float>(ref_w[i])).bits);
    }
  }
}

TEST(LrSchedule, WarmupThenCosineToMinimum) {
  const LrSchedule s{"cosine", 1e-3, 1e-4, 10, 110};
  EXPECT_DOUBLE_EQ(s.at(0), 1e-4);
  EXPECT_DOUBLE_EQ(s.at(9), 1e-3);
  EXPECT_DOUBLE_EQ(s.at(10), 1e-3);
  EXPECT_NEAR(s.at(60), 0.5 * (1e-3 + 1e-4), 1e-12);
  EXPECT_NEAR(s.at(110), 1e-4, 1e-12);
  const LrSchedule constant{"constant", 1e-3, 1e-4, 0, 100};
  EXPECT_DOUBLE_EQ(constant.at(50), 1e-3);
  const LrSchedule linear{"linear", 1e-3, 0.0, 0, 100};
  EXPECT_NEAR(linear.at(50), 5e-4, 1e-12);
}

}  // namespace
}  // namespace lt
