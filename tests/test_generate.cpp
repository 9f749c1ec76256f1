// KV-cached decoding: the Decoder's logits equal a full forward over the whole sequence at every
// step; generation is reproducible from its seed.
#include <gtest/gtest.h>

#include <vector>

#include "core/ops.h"
#include "layers/decode.h"
#include "tests/model_logits.h"
#include "tests/test_util.h"
#include "trainer/generate.h"

namespace lt {
namespace {

ModelConfig small_model(bool tied) {
  ModelConfig m;
  m.dim = 32;
  m.layers = 2;
  m.heads = 4;
  m.kv_heads = 2;
  m.ffn = 64;
  m.vocab = 300;
  m.init_std = 0.2;
  m.tie_embeddings = tied;
  m.qkv_bias = !tied;
  return m;
}

std::vector<std::int32_t> tokens_of(std::int64_t n, std::int64_t vocab) {
  std::vector<std::int32_t> out;
  for (std::int64_t i = 0; i < n; ++i)
    out.push_back(static_cast<std::int32_t>((i * 37 + 11) % vocab));
  return out;
}

TEST(Decoder, CachedLogitsEqualFullForwardAtEveryStep) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied, biases");
    const Model model(small_model(tied), DType::f32, 3, 64);
    const std::vector<std::int32_t> seq = tokens_of(24, 300);
    const Tensor want = test::full_forward_logits(model, seq);
    Decoder dec(model, 24);
    const Tensor prefill = dec.append(std::span(seq).first(5), Decoder::Logits::all);
    EXPECT_LE(test::relative_error(prefill, want.rows(0, 5)), 1e-5);
    const Tensor chunk = dec.append(std::span(seq).subspan(5, 3), Decoder::Logits::all);
    EXPECT_LE(test::relative_error(chunk, want.rows(5, 3)), 1e-5);
    for (std::int64_t i = 8; i < 24; ++i) {
      const Tensor row = dec.append(std::span(seq).subspan(static_cast<std::size_t>(i), 1));
      EXPECT_LE(test::relative_error(row, want.rows(i, 1)), 1e-5) << "step " << i;
    }
    EXPECT_THROW(dec.append(std::span(seq).first(1)), Error);
  }
}

TEST(Generate, GreedyFollowsTheFullForwardArgmax) {
  const Model model(small_model(false), DType::f32, 3, 64);
  std::vector<std::int32_t> seq = tokens_of(6, 300);
  GenerateOptions o;
  o.sampling.temperature = 0.0;
  o.max_new_tokens = 10;
  const Generation g = generate(model, seq, o);
  ASSERT_EQ(g.tokens.size(), 10u);
  for (std::int32_t t : g.tokens) {
    const Tensor logits = test::full_forward_logits(model, seq);
    EXPECT_EQ(t, greedy_token(logits.rows(logits.dim(0) - 1, 1).span<float>()));
    seq.push_back(t);
  }
}

TEST(Generate, SeedMakesItDeterministicAndStopTokenEndsIt) {
  const Model model(small_model(true), DType::f32, 3, 64);
  const std::vector<std::int32_t> prompt = tokens_of(4, 300);
  GenerateOptions o;
  o.max_new_tokens = 24;
  o.sampling.seed = 11;
  const Generation a = generate(model, prompt, o), b = generate(model, prompt, o);
  EXPECT_EQ(a.tokens, b.tokens);
  o.sampling.seed = 12;
  EXPECT_NE(generate(model, prompt, o).tokens, a.tokens);
  o.sampling.seed = 11;
  o.stop_token = a.tokens[3];
  const Generation stopped = generate(model, prompt, o);
  EXPECT_TRUE(stopped.stopped);
  EXPECT_LE(stopped.tokens.size(), 4u);
  EXPECT_EQ(stopped.tokens.back(), a.tokens[3]);
}

TEST(Generate, BytesRoundTripAndRefuseSmallVocabularies) {
  EXPECT_EQ(encode_bytes("Hi\n", 256), (std::vector<std::int32_t>{72, 105, 10}));
  EXPECT_EQ(decode_bytes(std::vector<std::int32_t>{72, 105, 10, 200, 300}), "Hi\\n\\xc8<300>");
  EXPECT_THROW(encode_bytes("Hi", 192), std::invalid_argument);
}

}  // namespace
}  // namespace lt
