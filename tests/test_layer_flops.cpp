// The FLOP model: projections are 6 FLOPs per matmul weight per token (forward 2, backward 4),
// checked against the exact parameter count; causal attention counts each document by its own
// length; recomputation adds hardware FLOPs only.
#include <gtest/gtest.h>

#include <vector>

#include "layers/flops.h"

namespace lt {
namespace {

ModelConfig shape() {
  ModelConfig m;
  m.dim = 128;
  m.layers = 3;
  m.heads = 4;
  m.kv_heads = 2;
  m.ffn = 352;
  m.vocab = 256;
  return m;
}

TEST(Flops, ProjectionsAreSixFlopsPerWeightPerToken) {
  const ModelConfig m = shape();
  // Matmul weights: every block parameter but its two norm vectors, plus the LM head.
  const double block_matmul = static_cast<double>(count_block_parameters(m) - 2 * m.dim);
  const double head = static_cast<double>(m.vocab * m.dim);
  EXPECT_DOUBLE_EQ(block_projection_flops_per_token(m), 2.0 * block_matmul);
  const std::vector<std::int64_t> one_token_documents(1000, 1);  // attention: 1 key each
  const StepFlops f = step_flops(m, one_token_documents);
  const double attention = 3.0 * m.layers * 1000 * 4.0 * m.q_size();
  EXPECT_DOUBLE_EQ(f.model, 6.0 * 1000 * (m.layers * block_matmul + head) + attention);
}

TEST(Flops, CausalAttentionCountsEachDocumentByItsOwnLength) {
  const ModelConfig m = shape();
  const double q = static_cast<double>(m.q_size());
  EXPECT_DOUBLE_EQ(attention_flops(m, 1), 4.0 * q);
  EXPECT_DOUBLE_EQ(attention_flops(m, 256), 4.0 * q * 256 * 257 / 2);  // half the square + diagonal
  const std::vector<std::int64_t> whole{256}, packed{64, 64, 128};
  const StepFlops a = step_flops(m, whole), b = step_flops(m, packed);
  const double saved =
      attention_flops(m, 256) - 2 * attention_flops(m, 64) - attention_flops(m, 128);
  EXPECT_GT(saved, 0.0);
  EXPECT_DOUBLE_EQ(a.model - b.model, 3.0 * m.layers * saved);
}

TEST(Flops, RecomputeAddsHardwareFlopsOnly) {
  const ModelConfig m = shape();
  const std::vector<std::int64_t> docs{512, 512};
  const StepFlops none = step_flops(m, docs);
  const double attention = 2 * attention_flops(m, 512);
  // The blockwise attention's backward recomputes the scores (half its forward) in every layer.
  EXPECT_DOUBLE_EQ(none.hardware - none.model, m.layers * attention / 2);
  const std::vector<Recompute> selective{Recompute::selective};
  EXPECT_DOUBLE_EQ(step_flops(m, docs, selective).hardware, none.hardware);
  const std::vector<Recompute> mixed{Recompute::full, Recompute::none, Recompute::full};
  const StepFlops f = step_flops(m, docs, mixed);
  EXPECT_DOUBLE_EQ(f.model, none.model);
  const double rerun =
      1024 * (block_projection_flops_per_token(m) - 2.0 * m.ffn * m.dim) + attention;
  EXPECT_DOUBLE_EQ(f.hardware - none.hardware, 2 * rerun);
}

}  // namespace
}  // namespace lt
