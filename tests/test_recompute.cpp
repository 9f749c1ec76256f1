// Activation recomputation (train.recompute): every policy gives the losses and gradients of
// `none` bit for bit, and keeps exactly the activation bytes that docs/memory-model.md derives
// for it.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "core/memory.h"
#include "layers/model.h"
#include "trainer/trainer.h"

namespace lt {
namespace {

// Three blocks, GQA (4 query heads over 2 KV heads); untied models also take the q/k/v biases
// of Qwen2, so both paths of the attention input are covered.
ModelConfig small_config(bool tied) {
  ModelConfig m;
  m.dim = 32;
  m.layers = 3;
  m.heads = 4;
  m.kv_heads = 2;
  m.ffn = 48;
  m.vocab = 64;
  m.tie_embeddings = tied;
  m.qkv_bias = !tied;
  m.init_std = 0.2;  // large enough that every path carries signal
  return m;
}

// Two sequences of 32 tokens; the second packs three documents with positions restarting, and
// the loss mask has holes. `variant` changes the tokens, for a second micro-batch.
struct SmallBatch {
  static constexpr std::int64_t kBatch = 2, kSeq = 32;
  std::vector<std::int32_t> tokens, targets, positions, docs;
  std::vector<float> weights;

  explicit SmallBatch(int variant) {
    for (std::int64_t b = 0; b < kBatch; ++b) {
      for (std::int64_t t = 0; t < kSeq; ++t) {
        const std::int32_t doc = b == 1 ? (t >= 20 ? 2 : t >= 9 ? 1 : 0) : 0;
        const std::int64_t start = doc == 2 ? 20 : doc == 1 ? 9 : 0;
        docs.push_back(doc);
        positions.push_back(static_cast<std::int32_t>(t - start));
        tokens.push_back(static_cast<std::int32_t>((7 * t + 3 * b + 5 * variant + 1) % 64));
        targets.push_back(static_cast<std::int32_t>((5 * t + b + variant + 2) % 64));
        weights.push_back(t % 5 == 3 ? 0.0f : 1.0f);
      }
    }
  }

  TokenBatch view() const {
    return TokenBatch{kBatch, kSeq, tokens, targets, weights, positions, docs};
  }
};

struct StepResult {
  std::vector<LossSums> losses;
  std::vector<std::vector<unsigned char>> grads;  // the bytes of every group's gradient buffer
};

// Two micro-batches accumulated into the gradients, as a training step does.
StepResult run(const ModelConfig& m, DType dtype, const std::vector<Recompute>& policies) {
  Model model(m, dtype, 5, 64);
  model.set_recompute(policies);
  model.zero_grads();
  StepResult r;
  for (int micro = 0; micro < 2; ++micro) {
    r.losses.push_back(model.forward_backward(SmallBatch(micro).view(), 1.0 / 100));
  }
  for (const ParameterGroup& g : model.groups()) {
    const auto* bytes = static_cast<const unsigned char*>(g.grads().raw());
    r.grads.emplace_back(bytes, bytes + g.grads().nbytes());
  }
  return r;
}

std::string describe(const std::vector<Recompute>& policies) {
  std::string s;
  for (Recompute r : policies) s += std::string(s.empty() ? "" : ", ") + recompute_name(r);
  return "[" + s + "]";
}

class RecomputeExactness : public ::testing::TestWithParam<std::tuple<DType, bool>> {};

TEST_P(RecomputeExactness, LossesAndGradientsAreBitIdenticalToNone) {
  const auto [dtype, tied] = GetParam();
  const ModelConfig m = small_config(tied);
  const StepResult reference = run(m, dtype, {Recompute::none});
  const std::vector<std::vector<Recompute>> cases = {
      {Recompute::selective},
      {Recompute::full},
      {Recompute::full, Recompute::selective, Recompute::none},
      {Recompute::none, Recompute::full, Recompute::full},
  };
  for (const auto& policies : cases) {
    SCOPED_TRACE("recompute " + describe(policies));
    const StepResult r = run(m, dtype, policies);
    for (std::size_t i = 0; i < r.losses.size(); ++i) {
      EXPECT_EQ(r.losses[i].loss, reference.losses[i].loss) << "micro-batch " << i;
      EXPECT_EQ(r.losses[i].correct, reference.losses[i].correct) << "micro-batch " << i;
    }
    ASSERT_EQ(r.grads.size(), reference.grads.size());
    for (std::size_t g = 0; g < r.grads.size(); ++g) {
      EXPECT_TRUE(r.grads[g] == reference.grads[g]) << "gradient group " << g << " differs";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DTypeAndTying, RecomputeExactness,
                         ::testing::Combine(::testing::Values(DType::f32, DType::bf16),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == DType::f32 ? "fp32"
                                                                                    : "bf16") +
                                  (std::get<1>(info.param) ? "_tied" : "_untied");
                         });

// The activation formulas of docs/memory-model.md, in bytes, for one micro-batch of T tokens
// without tensor or context parallelism.
struct ActivationFormulas {
  std::int64_t L, T, h, q, kv, f, a, e;

  explicit ActivationFormulas(const ModelConfig& m, std::int64_t tokens, DType dtype)
      : L(m.layers),
        T(tokens),
        h(m.dim),
        q(m.q_size()),
        kv(m.kv_size()),
        f(m.ffn),
        a(m.heads),
        e(static_cast<std::int64_t>(dtype_size(dtype))) {}

  // What `none` keeps per block: x, xn1, rstd1, qkv, out, lse, h, xn2, rstd2, gate_up, act.
  std::int64_t block_none() const { return T * (e * (4 * h + 2 * q + 2 * kv + 3 * f) + 8 + 4 * a); }
  // What `selective` keeps per block: x, qkv, out, lse, h, gate_up.
  std::int64_t block_selective() const {
    return T * (e * (2 * h + 2 * q + 2 * kv + 2 * f) + 4 * a);
  }
  // The final norm's input, output and rstd.
  std::int64_t final_norm() const { return T * (2 * h * e + 4); }

  std::int64_t peak_none() const { return L * block_none() + final_norm(); }
  // The last block's forward adds xn2, silu(gate)·up and its output to what is kept.
  std::int64_t peak_selective() const { return L * block_selective() + T * e * (2 * h + f); }
  // Every block input, plus one block's recomputed tensors (all of `none`'s but its input).
  std::int64_t peak_full() const { return L * T * h * e + block_none() - T * h * e; }
  std::int64_t kept_full() const { return L * T * h * e + final_norm(); }
};

struct Measured {
  std::int64_t kept = 0;  // activation bytes between forward and backward
  std::int64_t peak = 0;  // activation peak over forward and backward
};

Measured measure(const ModelConfig& m, DType dtype, Recompute policy) {
  Model model(m, dtype, 5, 64);
  model.set_recompute({policy});
  MemoryTracker& mem = MemoryTracker::for_device(Device::cpu);
  const std::int64_t base = mem.snapshot().current_of(MemCategory::activations);
  const SmallBatch batch(0);
  mem.reset_peaks();
  Measured out;
  {
    Model::Activations acts;
    model.forward(batch.view(), acts);
    out.kept = mem.snapshot().current_of(MemCategory::activations) - base;
    model.backward(batch.view(), acts, 1.0 / 100);
  }
  const MemorySnapshot after = mem.snapshot();
  out.peak = after.peak_of(MemCategory::activations) - base;
  EXPECT_EQ(after.current_of(MemCategory::activations), base) << "activations left after backward";
  return out;
}

class RecomputeMemory : public ::testing::TestWithParam<DType> {};

TEST_P(RecomputeMemory, ActivationPeaksMatchTheFormulas) {
  const DType dtype = GetParam();
  const ModelConfig m = small_config(false);
  const ActivationFormulas want(m, SmallBatch::kBatch * SmallBatch::kSeq, dtype);
  const Measured none = measure(m, dtype, Recompute::none);
  const Measured selective = measure(m, dtype, Recompute::selective);
  const Measured full = measure(m, dtype, Recompute::full);
  EXPECT_EQ(none.peak, want.peak_none());
  EXPECT_EQ(none.kept, want.peak_none());  // none peaks at the end of forward
  EXPECT_EQ(selective.peak, want.peak_selective());
  EXPECT_EQ(selective.kept, m.layers * want.block_selective() + want.final_norm());
  EXPECT_EQ(full.peak, want.peak_full());
  EXPECT_EQ(full.kept, want.kept_full()) << "full keeps one block input per layer";
  EXPECT_LT(full.peak, selective.peak);
  EXPECT_LT(selective.peak, none.peak);
}

INSTANTIATE_TEST_SUITE_P(DType, RecomputeMemory, ::testing::Values(DType::f32, DType::bf16),
                         [](const auto& info) {
                           return std::string(info.param == DType::f32 ? "fp32" : "bf16");
                         });

// Through the config and the trainer: a per-layer list trains exactly like `none`.
const char* kTinyConfig = R"(
model: {dim: 32, layers: 2, heads: 4, kv_heads: 2, ffn: 64, vocab: 192}
data: {source: synthetic, task: associative_recall, seq_len: 64, num_pairs: 4, num_queries: 8}
train: {steps: 3, global_batch: 8, micro_batch: 4, seed: 7, eval_every: 0, threads: 2}
optim: {lr: 3.0e-3, min_lr: 3.0e-4, warmup: 2}
precision: fp32
logging: {dir: "", every: 100, level: warn}
)";

struct TrainedRun {
  std::vector<double> losses;
  std::vector<std::vector<unsigned char>> weights;
};

TrainedRun train(const std::string& recompute) {
  Trainer trainer(parse_config(kTinyConfig, "tiny.yaml", {"train.recompute=" + recompute}),
                  ProcessInfo{});
  TrainedRun r;
  for (const auto& s : trainer.run()) r.losses.push_back(s.loss);
  for (const ParameterGroup& g : trainer.model().groups()) {
    const auto* bytes = static_cast<const unsigned char*>(g.values().raw());
    r.weights.emplace_back(bytes, bytes + g.values().nbytes());
  }
  return r;
}

TEST(RecomputeTraining, EveryPolicyTrainsLikeNone) {
  const TrainedRun none = train("none");
  for (const std::string policy : {"selective", "full", "[full, selective]"}) {
    SCOPED_TRACE("train.recompute=" + policy);
    const TrainedRun r = train(policy);
    ASSERT_EQ(r.losses.size(), none.losses.size());
    for (std::size_t i = 0; i < r.losses.size(); ++i) {
      EXPECT_EQ(r.losses[i], none.losses[i]) << "step " << i;
    }
    EXPECT_TRUE(r.weights == none.weights) << "weights after training differ";
  }
}

}  // namespace
}  // namespace lt
