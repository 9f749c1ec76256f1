// Every layer's backward against central finite differences, in f64, for its inputs and each of
// its parameters.
#include <numeric>
#include <vector>

#include "layers/attention.h"
#include "layers/decoder_block.h"
#include "layers/embedding.h"
#include "layers/linear.h"
#include "layers/lm_head_loss.h"
#include "layers/mlp.h"
#include "layers/model.h"
#include "layers/rmsnorm.h"
#include "layers/rope.h"
#include "tests/test_util.h"

namespace lt {
namespace {

using test::dot;
using test::expect_gradient_matches;
using test::random_tensor;

constexpr DType F64 = DType::f64;

ModelConfig tiny_config() {
  ModelConfig m;
  m.dim = 16;
  m.layers = 2;
  m.heads = 4;
  m.kv_heads = 2;
  m.ffn = 24;
  m.vocab = 32;
  m.init_std = 0.3;  // large enough that every path carries signal
  return m;
}

// Two sequences of 12 tokens; the second holds two documents with positions restarting.
struct TinyBatch {
  std::int64_t batch = 2, seq = 12;
  std::vector<std::int32_t> positions, docs, tokens, targets;
  std::vector<float> weights;

  TinyBatch() {
    for (std::int64_t b = 0; b < batch; ++b) {
      for (std::int64_t t = 0; t < seq; ++t) {
        const bool second_doc = b == 1 && t >= 5;
        docs.push_back(second_doc ? 1 : 0);
        positions.push_back(static_cast<std::int32_t>(second_doc ? t - 5 : t));
        tokens.push_back(static_cast<std::int32_t>((7 * t + 3 * b + 1) % 32));
        targets.push_back(static_cast<std::int32_t>((5 * t + b + 2) % 32));
        weights.push_back((t % 4 == 1) ? 0.0f : 1.0f);  // a loss mask with holes
      }
    }
  }

  StepContext context(const Rope& rope) const {
    StepContext ctx;
    ctx.batch = batch;
    ctx.seq_len = seq;
    ctx.positions = positions;
    ctx.doc_ids = docs;
    ctx.rope = &rope;
    ctx.dtype = F64;
    ctx.grad_dtype = F64;
    return ctx;
  }
  std::int64_t tokens_count() const { return batch * seq; }
};

TEST(LayerGradients, Linear) {
  const Tensor x = random_tensor(Shape{6, 5}, F64, 1, "x");
  const Tensor w = random_tensor(Shape{4, 5}, F64, 1, "w");
  const Tensor b = random_tensor(Shape{4}, F64, 1, "b");
  const Tensor r = random_tensor(Shape{6, 4}, F64, 1, "r");
  auto loss = [&] {
    Tensor y = Tensor::empty(Shape{6, 4}, F64, MemCategory::workspace);
    linear_forward(x, w, b, y);
    return dot(y, r);
  };
  Tensor dx = Tensor::zeros(x.shape(), F64, MemCategory::workspace);
  Tensor dw = Tensor::zeros(w.shape(), F64, MemCategory::workspace);
  Tensor db = Tensor::zeros(b.shape(), F64, MemCategory::workspace);
  linear_backward(r, x, w, dx, dw, db);
  expect_gradient_matches("linear dx", loss, x, dx);
  expect_gradient_matches("linear dW", loss, w, dw);
  expect_gradient_matches("linear db", loss, b, db);
}

TEST(LayerGradients, RMSNorm) {
  ParameterGroup group("g", {{"w", Shape{8}, Init::normal, 1.0, false}}, F64, F64);
  group.initialize(3);
  RMSNorm norm(group.get("w"), 1e-5);
  const Tensor x = random_tensor(Shape{5, 8}, F64, 2, "x");
  const Tensor r = random_tensor(Shape{5, 8}, F64, 2, "r");
  auto loss = [&] {
    Tensor y = Tensor::empty(x.shape(), F64, MemCategory::workspace);
    RMSNorm::Saved s;
    norm.forward(x, y, s);
    return dot(y, r);
  };
  Tensor y = Tensor::empty(x.shape(), F64, MemCategory::workspace);
  RMSNorm::Saved s;
  norm.forward(x, y, s);
  Tensor dx = Tensor::zeros(x.shape(), F64, MemCategory::workspace);
  norm.backward(r, x, s, dx, false);
  expect_gradient_matches("rmsnorm dx", loss, x, dx);
  expect_gradient_matches("rmsnorm dw", loss, group.get("w").value, group.get("w").grad);
}

TEST(LayerGradients, RopeAllScalings) {
  for (const char* type : {"none", "linear", "llama3"}) {
    ModelConfig m = tiny_config();
    m.rope_scaling.type = type;
    m.rope_scaling.factor = 4.0;
    m.rope_scaling.original_max_position = 8;
    const Rope rope(m, 64);
    const std::vector<std::int32_t> positions = {0, 3, 17, 63, 5};
    const Tensor x = random_tensor(Shape{5, m.q_size()}, F64, 4, "x");
    const Tensor r = random_tensor(Shape{5, m.q_size()}, F64, 4, "r");
    auto loss = [&] {
      Tensor y = test::to_f64(x);
      rope.forward(y, positions);
      return dot(y, r);
    };
    Tensor dx = test::to_f64(r);
    rope.backward(dx, positions);
    expect_gradient_matches(std::string("rope dx ") + type, loss, x, dx);
  }
}

TEST(LayerGradients, SwiGLU) {
  const Tensor gu = random_tensor(Shape{6, 10}, F64, 5, "gu");
  const Tensor r = random_tensor(Shape{6, 5}, F64, 5, "r");
  auto loss = [&] {
    Tensor y = Tensor::empty(Shape{6, 5}, F64, MemCategory::workspace);
    swiglu_forward(gu, y);
    return dot(y, r);
  };
  Tensor dgu = Tensor::empty(gu.shape(), F64, MemCategory::workspace);
  swiglu_backward(r, gu, dgu);
  expect_gradient_matches("swiglu", loss, gu, dgu, 60);
}

TEST(LayerGradients, AttentionKernelCausalGqaDocuments) {
  const TinyBatch tb;
  AttentionShape a;
  a.batch = tb.batch;
  a.q_len = a.kv_len = tb.seq;
  a.heads = 4;
  a.kv_heads = 2;
  a.head_dim = 6;
  a.q_doc = tb.docs;
  a.k_doc = tb.docs;
  const std::int64_t T = tb.tokens_count();
  const Tensor q = random_tensor(Shape{T, 24}, F64, 6, "q");
  const Tensor k = random_tensor(Shape{T, 12}, F64, 6, "k");
  const Tensor v = random_tensor(Shape{T, 12}, F64, 6, "v");
  const Tensor r = random_tensor(Shape{T, 24}, F64, 6, "r");
  Tensor out = Tensor::empty(Shape{T, 24}, F64, MemCategory::workspace);
  Tensor lse = Tensor::empty(Shape{a.batch, a.heads, a.q_len}, F64, MemCategory::workspace);
  auto loss = [&] {
    attention_forward(a, q, k, v, out, lse);
    return dot(out, r);
  };
  loss();
  Tensor dq = Tensor::empty(q.shape(), F64, MemCategory::workspace);
  Tensor dk = Tensor::empty(k.shape(), F64, MemCategory::workspace);
  Tensor dv = Tensor::empty(v.shape(), F64, MemCategory::workspace);
  attention_backward(a, q, k, v, out, lse, r, dq, dk, dv);
  expect_gradient_matches("attention dq", loss, q, dq, 60);
  expect_gradient_matches("attention dk", loss, k, dk, 60);
  expect_gradient_matches("attention dv", loss, v, dv, 60);
}

TEST(LayerGradients, AttentionLayerWithBias) {
  ModelConfig m = tiny_config();
  m.qkv_bias = true;
  const TinyBatch tb;
  const Rope rope(m, 64);
  const StepContext ctx = tb.context(rope);
  ParameterGroup group("g", Attention::param_specs(m, "p."), F64, F64);
  group.initialize(7);
  for (const char* b :
       {"p.self_attn.q_proj.bias", "p.self_attn.k_proj.bias", "p.self_attn.v_proj.bias"}) {
    copy(random_tensor(group.get(b).value.shape(), F64, 7, b, 0.3), group.get(b).value);
  }
  const Attention attn(m, group, "p.");
  const std::int64_t T = tb.tokens_count();
  const Tensor xn = random_tensor(Shape{T, m.dim}, F64, 8, "xn");
  const Tensor r = random_tensor(Shape{T, m.dim}, F64, 8, "r");
  auto loss = [&] {
    Tensor res = Tensor::zeros(Shape{T, m.dim}, F64, MemCategory::workspace);
    Attention::Saved s;
    attn.forward(xn, ctx, s, res);
    return dot(res, r);
  };
  Tensor res = Tensor::zeros(Shape{T, m.dim}, F64, MemCategory::workspace);
  Attention::Saved s;
  attn.forward(xn, ctx, s, res);
  Tensor dxn = Tensor::empty(xn.shape(), F64, MemCategory::workspace);
  attn.backward(r, xn, ctx, s, dxn);
  expect_gradient_matches("attention layer dxn", loss, xn, dxn);
  for (auto& p : group.params()) expect_gradient_matches(p.spec.name, loss, p.value, p.grad);
}

TEST(LayerGradients, Mlp) {
  const ModelConfig m = tiny_config();
  ParameterGroup group("g", Mlp::param_specs(m, "p."), F64, F64);
  group.initialize(9);
  const Mlp mlp(m, group, "p.");
  const TinyBatch tb;
  const Rope rope(m, 64);
  const StepContext ctx = tb.context(rope);
  const std::int64_t T = tb.tokens_count();
  const Tensor xn = random_tensor(Shape{T, m.dim}, F64, 10, "xn");
  const Tensor r = random_tensor(Shape{T, m.dim}, F64, 10, "r");
  auto loss = [&] {
    Tensor res = Tensor::zeros(Shape{T, m.dim}, F64, MemCategory::workspace);
    Mlp::Saved s;
    mlp.forward(xn, ctx, s, res);
    return dot(res, r);
  };
  Tensor res = Tensor::zeros(Shape{T, m.dim}, F64, MemCategory::workspace);
  Mlp::Saved s;
  mlp.forward(xn, ctx, s, res);
  Tensor dxn = Tensor::empty(xn.shape(), F64, MemCategory::workspace);
  mlp.backward(r, xn, ctx, s, dxn);
  expect_gradient_matches("mlp dxn", loss, xn, dxn);
  for (auto& p : group.params()) expect_gradient_matches(p.spec.name, loss, p.value, p.grad);
}

TEST(LayerGradients, Embedding) {
  ParameterGroup group("g", {{"e", Shape{10, 4}, Init::normal, 1.0, false}}, F64, F64);
  group.initialize(11);
  const Embedding emb(group.get("e"));
  const std::vector<std::int32_t> tokens = {3, 1, 3, 9, 0, 3};
  const Tensor r = random_tensor(Shape{6, 4}, F64, 11, "r");
  StepContext ctx;
  ctx.dtype = F64;
  auto loss = [&] { return dot(emb.forward(tokens, ctx), r); };
  emb.backward(r, tokens, ctx);
  expect_gradient_matches("embedding", loss, group.get("e").value, group.get("e").grad, 40);
}

TEST(LayerGradients, LmHeadCrossEntropyWithMaskInChunks) {
  ParameterGroup group("g", {{"w", Shape{32, 8}, Init::normal, 0.5}}, F64, F64);
  group.initialize(12);
  const LmHeadLoss head(group.get("w"), /*chunk_rows=*/5);  // 13 rows: chunks of 5, 5, 3
  const Tensor h = random_tensor(Shape{13, 8}, F64, 13, "h");
  std::vector<std::int32_t> targets(13);
  std::vector<float> weights(13);
  for (int i = 0; i < 13; ++i) {
    targets[static_cast<std::size_t>(i)] = (i * 11 + 3) % 32;
    weights[static_cast<std::size_t>(i)] = i % 3 == 0 ? 0.0f : 1.0f;
  }
  const double scale = 1.0 / 8.0;
  auto loss = [&] { return scale * head.run(h, targets, weights, 0.0, Tensor(), {}).loss; };
  Tensor dh = Tensor::empty(h.shape(), F64, MemCategory::workspace);
  head.run(h, targets, weights, scale, dh, {});
  expect_gradient_matches("head dh", loss, h, dh, 60);
  expect_gradient_matches("head dW", loss, group.get("w").value, group.get("w").grad, 60);
}

TEST(LayerGradients, DecoderBlock) {
  const ModelConfig m = tiny_config();
  ParameterGroup group("g", DecoderBlock::param_specs(m, 0), F64, F64);
  group.initialize(14);
  for (const char* n : {"model.layers.0.input_layernorm.weight",
                        "model.layers.0.post_attention_layernorm.weight"}) {
    copy(random_tensor(Shape{m.dim}, F64, 14, n, 0.5), group.get(n).value);  // not all ones
  }
  const DecoderBlock block(m, group, 0);
  const TinyBatch tb;
  const Rope rope(m, 64);
  const StepContext ctx = tb.context(rope);
  const Tensor x = random_tensor(Shape{tb.tokens_count(), m.dim}, F64, 15, "x");
  const Tensor r = random_tensor(Shape{tb.tokens_count(), m.dim}, F64, 15, "r");
  auto loss = [&] {
    DecoderBlock::Saved s;
    return dot(block.forward(x, ctx, s), r);
  };
  DecoderBlock::Saved s;
  block.forward(x, ctx, s);
  const Tensor dx = block.backward(test::to_f64(r), x, ctx, s);
  expect_gradient_matches("block dx", loss, x, dx);
  for (auto& p : group.params()) expect_gradient_matches(p.spec.name, loss, p.value, p.grad);
}

class ModelGradients : public ::testing::TestWithParam<bool> {};

TEST_P(ModelGradients, EveryParameterTiedOrNot) {
  ModelConfig m = tiny_config();
  m.tie_embeddings = GetParam();
  Model model(m, F64, 21, 64);
  const TinyBatch tb;
  TokenBatch batch{tb.batch, tb.seq, tb.tokens, tb.targets, tb.weights, tb.positions, tb.docs};
  const double count = std::accumulate(tb.weights.begin(), tb.weights.end(), 0.0);
  auto loss = [&] { return model.evaluate(batch, {}).loss / count; };
  model.zero_grads();
  model.forward_backward(batch, 1.0 / count);
  for (auto& g : model.groups()) {
    for (auto& p : g.params()) expect_gradient_matches(p.spec.name, loss, p.value, p.grad, 12);
  }
}

INSTANTIATE_TEST_SUITE_P(TiedEmbeddings, ModelGradients, ::testing::Bool());

}  // namespace
}  // namespace lt

namespace lt {
namespace {

// RoPE's point: the score between a rotated query and key depends only on their distance.
TEST(Rope, ScoresDependOnlyOnRelativePosition) {
  ModelConfig m = tiny_config();
  const Rope rope(m, 512);
  const std::int64_t hd = m.resolved_head_dim();
  const Tensor q = random_tensor(Shape{1, hd}, F64, 30, "q");
  const Tensor k = random_tensor(Shape{1, hd}, F64, 30, "k");
  auto score = [&](std::int32_t pq, std::int32_t pk) {
    Tensor a = test::to_f64(q), b = test::to_f64(k);
    const std::vector<std::int32_t> p1 = {pq}, p2 = {pk};
    rope.forward(a, p1);
    rope.forward(b, p2);
    return dot(a, b);
  };
  EXPECT_NEAR(score(5, 3), score(105, 103), 1e-5);
  EXPECT_NEAR(score(300, 0), score(400, 100), 1e-5);
  EXPECT_GT(std::abs(score(5, 3) - score(5, 4)), 1e-3);
  // Position 0 is the identity.
  Tensor a = test::to_f64(q);
  const std::vector<std::int32_t> zero = {0};
  rope.forward(a, zero);
  EXPECT_LT(test::relative_error(a, q), 1e-7);
}

TEST(Rope, MatchesTheRotateHalfFormula) {
  ModelConfig m = tiny_config();
  const Rope rope(m, 64);
  const std::int64_t hd = m.resolved_head_dim(), half = hd / 2;
  const Tensor x = random_tensor(Shape{1, hd}, F64, 31, "x");
  Tensor y = test::to_f64(x);
  const std::vector<std::int32_t> pos = {7};
  rope.forward(y, pos);
  for (std::int64_t i = 0; i < half; ++i) {
    const double f =
        1.0 / std::pow(m.rope_theta, 2.0 * static_cast<double>(i) / static_cast<double>(hd));
    const double c = std::cos(7 * f), s = std::sin(7 * f);
    const double x1 = x.data<double>()[i], x2 = x.data<double>()[i + half];
    EXPECT_NEAR(y.data<double>()[i], x1 * c - x2 * s, 1e-6);
    EXPECT_NEAR(y.data<double>()[i + half], x2 * c + x1 * s, 1e-6);
  }
}

}  // namespace
}  // namespace lt
