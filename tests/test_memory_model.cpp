// The memory model against the allocator: for each config, one training step's measured peak
// of every predicted category equals the prediction exactly.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/memory.h"
#include "trainer/memory_model.h"
#include "trainer/trainer.h"

namespace lt {
namespace {

const char* kConfig = R"(
model: {dim: 64, layers: 3, heads: 4, kv_heads: 2, ffn: 160, vocab: 192}
data: {source: synthetic, task: associative_recall, seq_len: 96, num_pairs: 4, num_queries: 8}
train: {steps: 1, global_batch: 4, micro_batch: 2, eval_every: 0, threads: 1}
precision: fp32
logging: {dir: "", level: warn}
)";

void expect_prediction_matches(const std::vector<std::string>& overrides) {
  const Config config = parse_config(kConfig, "memory_model_test.yaml", overrides);
  const MemoryPrediction predicted = predict_memory(config);
  ASSERT_TRUE(predicted.activations_predicted);
  MemoryTracker& mem = MemoryTracker::for_device(Device::cpu);
  const MemorySnapshot before = mem.snapshot();
  Trainer trainer(config, ProcessInfo{});
  mem.reset_peaks();
  trainer.train_step(0);
  const MemorySnapshot after = mem.snapshot();
  for (MemCategory c : {MemCategory::weights, MemCategory::grads, MemCategory::optimizer,
                        MemCategory::activations}) {
    EXPECT_EQ(after.peak_of(c) - before.current_of(c), predicted.of(c)) << category_name(c);
  }
}

TEST(MemoryModel, PredictsEveryCategoryExactlyForOneProcess) {
  const std::vector<std::vector<std::string>> grid = {
      {},
      {"precision=bf16"},
      {"model.tie_embeddings=true"},
      {"train.recompute=selective"},
      {"train.recompute=full"},
      {"train.recompute=full", "precision=bf16"},
      {"train.recompute=[full,full,none]"},
      {"train.recompute=[none,none,full]"},
      {"train.recompute=[selective,full,none]"},
      {"train.micro_batch=4", "data.seq_len=64"},
      {"model.kv_heads=4", "train.recompute=selective", "precision=bf16"},
      {"model.layers=1", "train.recompute=full"},
  };
  for (const auto& overrides : grid) {
    std::string name;
    for (const auto& o : overrides) name += o + " ";
    SCOPED_TRACE(name.empty() ? "defaults" : name);
    expect_prediction_matches(overrides);
  }
}

TEST(MemoryModel, TensorParallelActivationsAreNotPredictedYet) {
  const Config config = parse_config(kConfig, "memory_model_test.yaml", {"parallel.tp=2"});
  EXPECT_FALSE(predict_memory(config).activations_predicted);
}

}  // namespace
}  // namespace lt
