// The memory model against the allocator: for each config, one training step's measured peak
// of every category, and of their sum, equals the prediction exactly (one process, one thread;
// the multi-rank layouts are checked in tests/mpi/test_parallel_training.cpp).
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
  MemoryTracker& mem = MemoryTracker::for_device(Device::cpu);
  const MemorySnapshot before = mem.snapshot();
  Trainer trainer(config, ProcessInfo{});
  mem.reset_peaks();
  trainer.train_step(0);
  const MemorySnapshot after = mem.snapshot();
  for (std::size_t i = 0; i < kNumMemCategories; ++i) {
    const auto c = static_cast<MemCategory>(i);
    EXPECT_EQ(after.peak_of(c) - before.current_of(c), predicted.of(c)) << category_name(c);
  }
  EXPECT_EQ(after.peak_total - before.current_total, predicted.total);
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

}  // namespace
}  // namespace lt
