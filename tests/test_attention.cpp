// Blockwise attention against a naive S x S reference, and its memory behaviour.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/memory.h"
#include "tests/test_util.h"

namespace lt {
namespace {

struct Case {
  std::int64_t batch, seq, heads, kv_heads, head_dim;
  bool documents;
};

// Naive attention in double: full score matrix, masked softmax, weighted sum.
void naive_attention(const AttentionShape& a, const Tensor& q, const Tensor& k, const Tensor& v,
                     std::vector<double>& out, std::vector<double>& lse) {
  const Tensor Q = test::to_f64(q), K = test::to_f64(k), V = test::to_f64(v);
  const std::int64_t hd = a.head_dim, qw = a.heads * hd, kw = a.kv_heads * hd;
  out.assign(static_cast<std::size_t>(a.batch * a.q_len * qw), 0.0);
  lse.assign(static_cast<std::size_t>(a.batch * a.heads * a.q_len), 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  for (std::int64_t b = 0; b < a.batch; ++b) {
    for (std::int64_t h = 0; h < a.heads; ++h) {
      const std::int64_t g = h / (a.heads / a.kv_heads);
      for (std::int64_t i = 0; i < a.q_len; ++i) {
        const std::int64_t qi = b * a.q_len + i;
        std::vector<double> s(static_cast<std::size_t>(a.kv_len),
                              -std::numeric_limits<double>::infinity());
        double mx = -std::numeric_limits<double>::infinity();
        for (std::int64_t j = 0; j <= i; ++j) {
          const std::int64_t kj = b * a.kv_len + j;
          if (!a.q_doc.empty() &&
              a.q_doc[static_cast<std::size_t>(qi)] != a.k_doc[static_cast<std::size_t>(kj)])
            continue;
          double dot = 0.0;
          for (std::int64_t d = 0; d < hd; ++d)
            dot += Q.data<double>()[qi * qw + h * hd + d] * K.data<double>()[kj * kw + g * hd + d];
          s[static_cast<std::size_t>(j)] = dot * scale;
          mx = std::max(mx, dot * scale);
        }
        double sum = 0.0;
        for (double& x : s) {
          x = std::exp(x - mx);
          sum += x;
        }
        lse[static_cast<std::size_t>((b * a.heads + h) * a.q_len + i)] = mx + std::log(sum);
        for (std::int64_t j = 0; j < a.kv_len; ++j) {
          const double p = s[static_cast<std::size_t>(j)] / sum;
          if (p == 0.0) continue;
          for (std::int64_t d = 0; d < hd; ++d)
            out[static_cast<std::size_t>(qi * qw + h * hd + d)] +=
                p * V.data<double>()[(b * a.kv_len + j) * kw + g * hd + d];
        }
      }
    }
  }
}

// Document ids that change at irregular places (so some tiles are cut by boundaries).
std::vector<std::int32_t> make_docs(std::int64_t batch, std::int64_t seq) {
  std::vector<std::int32_t> docs;
  for (std::int64_t b = 0; b < batch; ++b) {
    std::int32_t doc = 0;
    for (std::int64_t t = 0; t < seq; ++t) {
      if (t > 0 && (t * 7 + b * 13) % 53 == 0) ++doc;
      docs.push_back(doc);
    }
  }
  return docs;
}

class AttentionVsNaive : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionVsNaive, ForwardAndBackwardMatchFp32) {
  const Case c = GetParam();
  AttentionShape a;
  a.batch = c.batch;
  a.q_len = a.kv_len = c.seq;
  a.heads = c.heads;
  a.kv_heads = c.kv_heads;
  a.head_dim = c.head_dim;
  const std::vector<std::int32_t> docs = make_docs(c.batch, c.seq);
  if (c.documents) {
    a.q_doc = docs;
    a.k_doc = docs;
  }
  const std::int64_t T = c.batch * c.seq;
  const Tensor q = test::random_tensor(Shape{T, c.heads * c.head_dim}, DType::f32, 1, "q");
  const Tensor k = test::random_tensor(Shape{T, c.kv_heads * c.head_dim}, DType::f32, 1, "k");
  const Tensor v = test::random_tensor(Shape{T, c.kv_heads * c.head_dim}, DType::f32, 1, "v");
  Tensor out = Tensor::empty(q.shape(), DType::f32, MemCategory::workspace);
  Tensor lse = Tensor::empty(Shape{c.batch, c.heads, c.seq}, DType::f32, MemCategory::workspace);
  attention_forward(a, q, k, v, out, lse);

  std::vector<double> ref_out, ref_lse;
  naive_attention(a, q, k, v, ref_out, ref_lse);
  const Tensor got = test::to_f64(out);
  double max_diff = 0.0, max_ref = 0.0;
  for (std::size_t i = 0; i < ref_out.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(got.data<double>()[i] - ref_out[i]));
    max_ref = std::max(max_ref, std::abs(ref_out[i]));
  }
  EXPECT_LE(max_diff / max_ref, 1e-5);
  for (std::size_t i = 0; i < ref_lse.size(); ++i) {
    EXPECT_NEAR(lse.data<float>()[i], ref_lse[i], 1e-5 * std::max(1.0, std::abs(ref_lse[i])));
  }

  // Backward against the f64 kernel, whose gradients are checked by finite differences in
  // test_layer_gradients: the fp32 kernel must agree within fp32 accuracy.
  const Tensor dout = test::random_tensor(q.shape(), DType::f32, 2, "dout");
  auto grads = [&](DType t) {
    Tensor qq = Tensor::empty(q.shape(), t, MemCategory::workspace),
           kk = Tensor::empty(k.shape(), t, MemCategory::workspace);
    Tensor vv = Tensor::empty(v.shape(), t, MemCategory::workspace),
           dd = Tensor::empty(q.shape(), t, MemCategory::workspace);
    copy(q, qq);
    copy(k, kk);
    copy(v, vv);
    copy(dout, dd);
    Tensor o = Tensor::empty(q.shape(), t, MemCategory::workspace);
    Tensor l = Tensor::empty(lse.shape(), t == DType::f64 ? DType::f64 : DType::f32,
                             MemCategory::workspace);
    attention_forward(a, qq, kk, vv, o, l);
    std::vector<Tensor> g = {Tensor::empty(q.shape(), t, MemCategory::workspace),
                             Tensor::empty(k.shape(), t, MemCategory::workspace),
                             Tensor::empty(v.shape(), t, MemCategory::workspace)};
    attention_backward(a, qq, kk, vv, o, l, dd, g[0], g[1], g[2]);
    return g;
  };
  const auto g32 = grads(DType::f32);
  const auto g64 = grads(DType::f64);
  for (int i = 0; i < 3; ++i)
    EXPECT_LE(
        test::relative_error(g32[static_cast<std::size_t>(i)], g64[static_cast<std::size_t>(i)]),
        1e-5)
        << "gradient " << i;
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionVsNaive,
                         ::testing::Values(Case{1, 1, 1, 1, 8, false}, Case{2, 37, 4, 4, 16, false},
                                           Case{2, 130, 8, 2, 32, false},
                                           Case{1, 200, 4, 1, 64, true},
                                           Case{3, 97, 6, 3, 16, true},
                                           Case{1, 256, 2, 2, 128, true}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           const Case& c = info.param;
                           return "b" + std::to_string(c.batch) + "_s" + std::to_string(c.seq) +
                                  "_h" + std::to_string(c.heads) + "_kv" +
                                  std::to_string(c.kv_heads) + "_d" + std::to_string(c.head_dim) +
                                  (c.documents ? "_docs" : "");
                         });

// Peak workspace while attention runs, for one sequence of length seq.
std::int64_t attention_workspace_peak(std::int64_t seq, bool backward) {
  AttentionShape a;
  a.batch = 1;
  a.q_len = a.kv_len = seq;
  a.heads = 2;
  a.kv_heads = 1;
  a.head_dim = 32;
  const Tensor q =
      test::random_tensor(Shape{seq, 64}, DType::f32, 3, "q", 1.0, MemCategory::activations);
  const Tensor k =
      test::random_tensor(Shape{seq, 32}, DType::f32, 3, "k", 1.0, MemCategory::activations);
  const Tensor v =
      test::random_tensor(Shape{seq, 32}, DType::f32, 3, "v", 1.0, MemCategory::activations);
  Tensor out = Tensor::empty(q.shape(), DType::f32, MemCategory::activations);
  Tensor lse = Tensor::empty(Shape{1, 2, seq}, DType::f32, MemCategory::activations);
  Tensor dq = Tensor::empty(q.shape(), DType::f32, MemCategory::activations);
  Tensor dk = Tensor::empty(k.shape(), DType::f32, MemCategory::activations);
  Tensor dv = Tensor::empty(v.shape(), DType::f32, MemCategory::activations);
  MemoryTracker& mem = MemoryTracker::for_device(Device::cpu);
  attention_forward(a, q, k, v, out, lse);
  mem.reset_peaks();
  const std::int64_t before = mem.snapshot().current_of(MemCategory::workspace);
  if (backward) {
    attention_backward(a, q, k, v, out, lse, out, dq, dk, dv);
  } else {
    attention_forward(a, q, k, v, out, lse);
  }
  return mem.snapshot().peak_of(MemCategory::workspace) - before;
}

TEST(AttentionMemory, WorkspaceDoesNotGrowWithSequenceSquared) {
  for (bool backward : {false, true}) {
    const std::int64_t small = attention_workspace_peak(512, backward);
    const std::int64_t large = attention_workspace_peak(4096, backward);
    // 8x the sequence: an S x S score matrix would need 64x the memory; tiles need at most 8x.
    EXPECT_GT(small, 0) << "the kernel's workspace should be accounted";
    EXPECT_LE(large, 8 * small + 4096) << (backward ? "backward" : "forward");
    // And far below one fp32 score matrix for one head.
    EXPECT_LT(large, 4096LL * 4096 * 4 / 16) << (backward ? "backward" : "forward");
  }
}

}  // namespace
}  // namespace lt
