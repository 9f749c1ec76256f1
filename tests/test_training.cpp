// End-to-end training on CPU: determinism, gradient accumulation, precision, learning.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/memory.h"
#include "tests/test_util.h"
#include "trainer/trainer.h"

namespace lt {
namespace {

const char* kTinyConfig = R"(
model: {dim: 32, layers: 2, heads: 4, kv_heads: 2, ffn: 64, vocab: 192}
data: {source: synthetic, task: associative_recall, seq_len: 64, num_pairs: 4, num_queries: 8}
train: {steps: 6, global_batch: 8, micro_batch: 4, seed: 7, eval_every: 0, threads: 2}
optim: {lr: 3.0e-3, min_lr: 3.0e-4, warmup: 2}
precision: fp32
logging: {dir: "", every: 100, level: warn}
)";

std::vector<double> losses(const std::vector<std::string>& overrides) {
  Trainer trainer(parse_config(kTinyConfig, "tiny.yaml", overrides), ProcessInfo{});
  std::vector<double> out;
  for (const auto& r : trainer.run()) out.push_back(r.loss);
  return out;
}

TEST(Training, TwoRunsGiveBitIdenticalLosses) {
  const auto a = losses({});
  const auto b = losses({});
  ASSERT_EQ(a.size(), 6u);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "step " << i;
}

TEST(Training, ThreadCountDoesNotChangeTheResult) {
  const auto a = losses({"train.threads=1"});
  const auto b = losses({"train.threads=2"});
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "step " << i;
}

TEST(Training, MicroBatchSplitDoesNotChangeTheMath) {
  const auto whole = losses({"train.micro_batch=8"});
  const auto split = losses({"train.micro_batch=2"});
  for (std::size_t i = 0; i < whole.size(); ++i) {
    EXPECT_NEAR(whole[i], split[i], 1e-5 * std::abs(whole[i])) << "step " << i;
  }
}

TEST(Training, Bf16TracksFp32) {
  const auto fp32 = losses({"train.steps=12"});
  const auto bf16 = losses({"train.steps=12", "precision=bf16"});
  for (std::size_t i = 0; i < fp32.size(); ++i) {
    EXPECT_NEAR(bf16[i], fp32[i], 0.03 * fp32[i]) << "step " << i;
  }
  EXPECT_NE(bf16.back(), fp32.back()) << "bf16 should really run in bf16";
}

TEST(Training, LossFallsAndEvalAccuracyIsReported) {
  Config c = parse_config(kTinyConfig, "tiny.yaml", {"train.steps=40", "train.eval_samples=16"});
  Trainer trainer(c, ProcessInfo{});
  const EvalResult before = trainer.evaluate();
  const auto steps = trainer.run();
  const EvalResult after = trainer.evaluate();
  EXPECT_LT(steps.back().loss, steps.front().loss - 0.5);
  EXPECT_LT(after.loss, before.loss);
  EXPECT_GE(after.accuracy, 0.0);
  EXPECT_LE(after.accuracy, 1.0);
}

TEST(Training, MemoryCategoriesAreAllAccounted) {
  MemoryTracker& mem = MemoryTracker::for_device(Device::cpu);
  const MemorySnapshot base = mem.snapshot();
  Trainer trainer(parse_config(kTinyConfig, "tiny.yaml", {"precision=bf16"}), ProcessInfo{});
  const MemorySnapshot built = mem.snapshot();
  const std::int64_t params = trainer.model().parameter_count();
  // bf16 weights, fp32 gradients, fp32 master + two moments: 2 + 4 + 12 bytes per parameter.
  EXPECT_EQ(built.current_of(MemCategory::weights) - base.current_of(MemCategory::weights),
            2 * params);
  EXPECT_EQ(built.current_of(MemCategory::grads) - base.current_of(MemCategory::grads), 4 * params);
  EXPECT_EQ(built.current_of(MemCategory::optimizer) - base.current_of(MemCategory::optimizer),
            12 * params);
  mem.reset_peaks();
  trainer.train_step(0);
  const MemorySnapshot after = mem.snapshot();
  EXPECT_GT(after.peak_of(MemCategory::activations), 0);
  EXPECT_GT(after.peak_of(MemCategory::workspace), 0);
  EXPECT_EQ(after.current_of(MemCategory::activations), base.current_of(MemCategory::activations))
      << "activations must be freed after the step";
}

TEST(Training, LogitsNeverExistForAllTokensAtOnce) {
  // A 4096-token vocabulary with 4 x 64 tokens per micro-batch: full fp32 logits would be 4 MiB.
  Config c = parse_config(kTinyConfig, "tiny.yaml", {"model.vocab=4096", "train.micro_batch=4"});
  Trainer trainer(c, ProcessInfo{});
  MemoryTracker& mem = MemoryTracker::for_device(Device::cpu);
  const std::int64_t before = mem.snapshot().current_of(MemCategory::workspace);
  mem.reset_peaks();
  trainer.train_step(0);
  const std::int64_t peak = mem.snapshot().peak_of(MemCategory::workspace) - before;
  const std::int64_t full_logits = 4 * 64 * 4096 * 4;
  EXPECT_LT(peak, full_logits / 2) << "peak workspace " << peak << " bytes";
}

TEST(Training, MetricsFileHasOneJsonObjectPerStepAndEval) {
  const auto dir = std::filesystem::path(testing::TempDir()) / "lt_metrics_test";
  std::filesystem::remove_all(dir);
  Trainer trainer(
      parse_config(kTinyConfig, "tiny.yaml",
                   {"logging.dir=" + dir.string(), "train.eval_every=3", "train.eval_samples=8"}),
      ProcessInfo{});
  trainer.run();
  std::ifstream in(dir / "metrics.jsonl");
  std::string line;
  int train_lines = 0, eval_lines = 0;
  while (std::getline(in, line)) {
    ASSERT_EQ(line.front(), '{');
    ASSERT_EQ(line.back(), '}');
    if (line.find("\"split\": \"train\"") != std::string::npos) {
      ++train_lines;
      EXPECT_NE(line.find("\"tokens_per_s\""), std::string::npos);
      EXPECT_NE(line.find("\"mem_peak_activations\""), std::string::npos);
    }
    if (line.find("\"split\": \"eval\"") != std::string::npos) {
      ++eval_lines;
      EXPECT_NE(line.find("\"accuracy\""), std::string::npos);
    }
  }
  EXPECT_EQ(train_lines, 6);
  EXPECT_EQ(eval_lines, 3);  // before training, after step 3 and after step 6
  EXPECT_TRUE(std::filesystem::exists(dir / "rank_0.log"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lt

namespace lt {
namespace {

// Each step reports the FLOPs of the documents it trained on: whole sequences, or during a
// sequence-length warmup the short packed documents; full recompute adds hardware FLOPs.
TEST(Training, StepsReportTheFlopsOfTheirDocuments) {
  Trainer trainer(parse_config(kTinyConfig, "tiny.yaml",
                               {"data.length_warmup_steps=1", "data.length_warmup_start=16",
                                "train.recompute=full"}),
                  ProcessInfo{});
  const ModelConfig& m = trainer.model().config();
  const std::vector<Recompute> full{Recompute::full};
  const StepFlops packed = step_flops(m, std::vector<std::int64_t>(8 * 4, 16), full);
  const StepFlops whole = step_flops(m, std::vector<std::int64_t>(8, 64), full);
  const StepResult first = trainer.train_step(0), second = trainer.train_step(1);
  EXPECT_DOUBLE_EQ(first.flops.model, packed.model);
  EXPECT_DOUBLE_EQ(first.flops.hardware, packed.hardware);
  EXPECT_DOUBLE_EQ(second.flops.model, whole.model);
  EXPECT_GT(second.flops.hardware, second.flops.model);
}

}  // namespace
}  // namespace lt
