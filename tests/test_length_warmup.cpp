// Sequence-length warmup: the schedule of document lengths, packed samples that are exactly the
// shorter samples side by side (attention-separated, positions restarting), purity, errors, and
// that the trainer really trains on the packed sequences during the warmup.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "trainer/config.h"
#include "trainer/data.h"
#include "trainer/length_warmup.h"
#include "trainer/trainer.h"

namespace lt {
namespace {

constexpr std::uint64_t kSeed = 77;

DataConfig recall(std::int64_t seq_len, std::int64_t queries, std::int64_t warmup_steps,
                  std::int64_t start) {
  DataConfig c;
  c.source = "synthetic";
  c.task = "associative_recall";
  c.seq_len = seq_len;
  c.num_pairs = 8;
  c.num_queries = queries;
  c.length_warmup_steps = warmup_steps;
  c.length_warmup_start = start;
  return c;
}

void expect_start_error(const DataConfig& c, const std::vector<std::string>& parts) {
  try {
    LengthWarmup warmup(c, kSeed, "");
    ADD_FAILURE() << "no ConfigError for length_warmup_start " << c.length_warmup_start;
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    for (const std::string& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
    }
  }
}

TEST(LengthWarmup, LengthsDoubleInEqualStepIntervals) {
  const LengthWarmup warmup(recall(256, 64, 600, 64), kSeed, "");
  ASSERT_TRUE(warmup.enabled());
  EXPECT_EQ(warmup.document_length(0), 64);
  EXPECT_EQ(warmup.document_length(299), 64);
  EXPECT_EQ(warmup.document_length(300), 128);
  EXPECT_EQ(warmup.document_length(599), 128);
  EXPECT_EQ(warmup.document_length(600), 256);
  EXPECT_EQ(warmup.document_length(10'000), 256);
  EXPECT_EQ(warmup.source_for(0)->seq_len(), 256);
  EXPECT_EQ(warmup.source_for(300)->seq_len(), 256);
  EXPECT_EQ(warmup.source_for(600), nullptr);

  const LengthWarmup three(recall(512, 64, 90, 64), kSeed, "");
  EXPECT_EQ(three.document_length(29), 64);
  EXPECT_EQ(three.document_length(30), 128);
  EXPECT_EQ(three.document_length(60), 256);
  EXPECT_EQ(three.document_length(90), 512);

  const LengthWarmup off(recall(256, 64, 0, 64), kSeed, "");
  EXPECT_FALSE(off.enabled());
  EXPECT_EQ(off.document_length(0), 256);
  EXPECT_EQ(off.source_for(0), nullptr);
}

// A packed sample is the short samples [i * k, (i + 1) * k) of a source of the short length,
// side by side, each its own document with positions from 0, queries scaled to the length.
TEST(LengthWarmup, PackedSamplesAreTheShortSamplesSideBySide) {
  const LengthWarmup warmup(recall(256, 64, 600, 64), kSeed, "");
  const auto short_source = make_data_source(recall(64, 16, 0, 64), kSeed, "");
  for (std::uint64_t index : {0u, 5u, 123u}) {
    const Sample packed = warmup.source_for(0)->sample(Split::train, index);
    ASSERT_EQ(packed.tokens.size(), 256u);
    EXPECT_EQ(std::count(packed.loss_mask.begin(), packed.loss_mask.end(), 1.0f), 64);
    for (std::uint64_t j = 0; j < 4; ++j) {
      const Sample part = short_source->sample(Split::train, index * 4 + j);
      const auto at = static_cast<std::ptrdiff_t>(j * 64);
      EXPECT_TRUE(std::equal(part.tokens.begin(), part.tokens.end(), packed.tokens.begin() + at));
      EXPECT_TRUE(
          std::equal(part.targets.begin(), part.targets.end(), packed.targets.begin() + at));
      EXPECT_TRUE(
          std::equal(part.loss_mask.begin(), part.loss_mask.end(), packed.loss_mask.begin() + at));
      for (std::int64_t t = 0; t < 64; ++t) {
        EXPECT_EQ(packed.doc_ids[static_cast<std::size_t>(at + t)], static_cast<std::int32_t>(j));
        EXPECT_EQ(packed.positions[static_cast<std::size_t>(at + t)], t);
      }
    }
  }
  // Halfway through, two documents of 128 with 32 queries each.
  const Sample half = warmup.source_for(300)->sample(Split::train, 9);
  EXPECT_EQ(half.doc_ids[127], 0);
  EXPECT_EQ(half.doc_ids[128], 1);
  EXPECT_EQ(half.positions[128], 0);
  EXPECT_EQ(std::count(half.loss_mask.begin(), half.loss_mask.end(), 1.0f), 64);
}

TEST(LengthWarmup, PackedSamplesArePure) {
  const LengthWarmup a(recall(128, 16, 10, 32), kSeed, "");
  const LengthWarmup b(recall(128, 16, 10, 32), kSeed, "");
  b.source_for(0)->sample(Split::train, 50);
  const Sample x = a.source_for(0)->sample(Split::train, 3);
  const Sample y = b.source_for(0)->sample(Split::train, 3);
  EXPECT_EQ(x.tokens, y.tokens);
  EXPECT_EQ(x.loss_mask, y.loss_mask);
  EXPECT_NE(x.tokens, a.source_for(0)->sample(Split::train, 4).tokens);
}

TEST(LengthWarmup, ErrorsNameTheKeyAndTheReason) {
  expect_start_error(recall(256, 64, 100, 96), {"data.length_warmup_start: 96", "power of two"});
  expect_start_error(recall(256, 64, 100, 256), {"data.length_warmup_start: 256", "256"});
  expect_start_error(recall(256, 64, 100, 512), {"data.length_warmup_start: 512"});
  expect_start_error(recall(256, 64, 100, 8),
                     {"data.length_warmup_start: 8", "data.num_pairs 8", "17 tokens"});
  DataConfig passkey = recall(512, 64, 100, 32);
  passkey.task = "passkey";
  expect_start_error(passkey,
                     {"data.length_warmup_start: 32", "documents of 32 tokens", "data.seq_len"});
  // Off: the start length is not checked.
  EXPECT_NO_THROW(LengthWarmup(recall(256, 64, 0, 96), kSeed, ""));
}

Config tiny_training(std::int64_t warmup_steps) {
  return parse_config(R"(
model: {dim: 32, layers: 1, heads: 2, kv_heads: 2, ffn: 48, vocab: 192}
data: {seq_len: 64, num_pairs: 4, num_queries: 8, length_warmup_start: 16}
train: {steps: 4, global_batch: 4, micro_batch: 2, eval_every: 0, threads: 1}
logging: {dir: "", level: warn}
)",
                      "warmup_test.yaml",
                      {"data.length_warmup_steps=" + std::to_string(warmup_steps)});
}

// The loss of one step at the step's starting weights, over the samples `source` gives it.
double loss_on(Trainer& trainer, const DataSource& source, std::int64_t step, std::int64_t batch) {
  const Batch b = make_batch(source, Split::train, static_cast<std::uint64_t>(step * batch), batch);
  const TokenBatch t{b.batch, b.seq_len, b.tokens, b.targets, b.loss_mask, b.positions, b.doc_ids};
  return trainer.model().evaluate(t, {}).loss / static_cast<double>(b.loss_tokens());
}

// During the warmup the trainer trains on the packed sequences of its step; after it, on the
// full-length samples.
TEST(LengthWarmup, TrainerTrainsOnPackedSequencesOnlyDuringTheWarmup) {
  const Config config = tiny_training(2);
  const LengthWarmup warmup(config.data, config.train.seed, "");
  const auto full = make_data_source(config.data, config.train.seed, "");
  Trainer trainer(config, ProcessInfo{});
  for (std::int64_t step = 0; step < 4; ++step) {
    const DataSource& source = step < 2 ? *warmup.source_for(step) : *full;
    const double expected = loss_on(trainer, source, step, 4);
    EXPECT_NEAR(trainer.train_step(step).loss, expected, 1e-6 * expected) << "step " << step;
  }
  // And the packed step-0 batch is not the full-length one.
  Trainer fresh(config, ProcessInfo{});
  EXPECT_GT(std::abs(loss_on(fresh, *warmup.source_for(0), 0, 4) - loss_on(fresh, *full, 0, 4)),
            1e-3);
}

}  // namespace
}  // namespace lt
