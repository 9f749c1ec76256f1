// The ZeRO shard mapping: padded flat groups cut into equal shards that partition them, and
// `locate` (parameter name, global element index) -> (replica rank, offset) agreeing with where
// the element actually sits, with and without tensor parallelism.
#include <gtest/gtest.h>

#include "core/error.h"
#include "layers/model.h"
#include "optim/zero_shard.h"

namespace lt {
namespace {

ModelConfig tiny() {
  ModelConfig m;
  m.dim = 16;
  m.layers = 2;
  m.heads = 4;
  m.kv_heads = 2;
  m.ffn = 24;
  m.vocab = 37;  // odd: the embedding's padding for tp is exercised too
  return m;
}

TEST(ZeroShard, ShardsAreEqualAndPartitionEveryGroup) {
  for (int ranks : {1, 2, 3, 4}) {
    const Model model(tiny(), DType::f32, 1, 16, {}, ranks);
    for (const ParameterGroup& g : model.groups()) {
      ASSERT_EQ(g.padded_numel() % ranks, 0) << g.name();
      EXPECT_LT(g.padded_numel() - g.numel(), ranks) << g.name();
      std::int64_t next = 0;
      for (int r = 0; r < ranks; ++r) {
        const FlatRange s = shard_of(g, ranks, r);
        EXPECT_EQ(s.begin, next);
        EXPECT_EQ(s.size, g.padded_numel() / ranks);
        next = s.end();
      }
      EXPECT_EQ(next, g.padded_numel());
      for (const Parameter& p : g.params()) {
        std::int64_t covered = 0;
        for (int r = 0; r < ranks; ++r) covered += overlap(p, shard_of(g, ranks, r)).size;
        EXPECT_EQ(covered, p.spec.shape.numel()) << p.spec.name;
      }
    }
  }
}

// For every element this rank holds: locate(name, global index) names the shard and offset
// where the flat buffer keeps it.
void expect_locations_match(const Model& model, int ranks) {
  for (const ParameterGroup& g : model.groups()) {
    for (const Parameter& p : g.params()) {
      for (std::int64_t i = 0; i < p.spec.shape.numel(); ++i) {
        const std::int64_t global = p.spec.global_index(i);
        const Shape& whole = p.spec.global_shape.rank() > 0 ? p.spec.global_shape : p.spec.shape;
        if (global >= whole.numel()) continue;  // tp vocabulary padding: in no global tensor
        const ShardLocation at = locate(model, p.spec.name, global, ranks);
        ASSERT_GE(at.replica_rank, 0);
        ASSERT_LT(at.replica_rank, ranks);
        const FlatRange shard = shard_of(g, ranks, at.replica_rank);
        ASSERT_LT(at.offset, shard.size);
        EXPECT_EQ(shard.begin + at.offset, p.offset + i) << p.spec.name << "[" << global << "]";
      }
    }
  }
}

TEST(ZeroShard, LocateFindsEveryElement) {
  for (int ranks : {1, 3, 4}) {
    SCOPED_TRACE("replicas " + std::to_string(ranks));
    expect_locations_match(Model(tiny(), DType::f32, 1, 16, {}, ranks), ranks);
    // Tensor parallel rank 1 of 2: global indices map into its slice.
    expect_locations_match(Model(tiny(), DType::f32, 1, 16, {2, 1}, ranks), ranks);
  }
}

TEST(ZeroShard, LocateRejectsWhatThisRankDoesNotHold) {
  const Model tp1(tiny(), DType::f32, 1, 16, {2, 1}, 2);
  // Rank 1 of tp 2 holds q rows 8..15 (heads 2 and 3); row 0 is on rank 0.
  EXPECT_THROW(locate(tp1, "model.layers.0.self_attn.q_proj.weight", 0, 2), Error);
  EXPECT_NO_THROW(locate(tp1, "model.layers.0.self_attn.q_proj.weight", 8 * 16, 2));
  EXPECT_THROW(locate(tp1, "model.layers.0.self_attn.q_proj.weight", 16 * 16, 2), Error);
  EXPECT_THROW(locate(tp1, "no.such.weight", 0, 2), Error);
}

}  // namespace
}  // namespace lt
