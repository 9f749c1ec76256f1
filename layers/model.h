// The Llama-family decoder: embedding, blocks, final RMSNorm, LM head with chunked cross-entropy.
// Parameters live in flat groups: "embed", one per block, and "head" (final norm, LM head).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "layers/decoder_block.h"
#include "layers/embedding.h"
#include "layers/lm_head_loss.h"
#include "layers/model_config.h"
#include "layers/rope.h"

namespace lt {

// The tokens of one micro-batch, [batch, seq_len] row-major.
struct TokenBatch {
  std::int64_t batch = 0;
  std::int64_t seq_len = 0;
  std::span<const std::int32_t> tokens;
  std::span<const std::int32_t> targets;
  std::span<const float> loss_weights;
  std::span<const std::int32_t> positions;
  std::span<const std::int32_t> doc_ids;  // empty: one document per sequence
  // Context parallel: this rank holds only its zigzag chunks of each sequence (seq_len is the
  // local length); attention runs as a ring over `cp`.
  Communicator* cp = nullptr;
  const RingLayout* ring = nullptr;
  // Tensor parallel: this rank holds the model slice of Model's TensorParallelShard.
  Communicator* tp = nullptr;
  bool sequence_parallel = false;
};

class Model {
 public:
  // dtype: activations and compute weights (f32, bf16, or f64 for reference runs).
  // `tp`: the slice of heads, FFN and vocabulary this rank holds (the whole model by default).
  // `pad_to`: each group's flat buffers are padded to a multiple of it (the ZeRO replica count).
  Model(const ModelConfig& config, DType dtype, std::uint64_t seed, std::int64_t max_positions,
        const TensorParallelShard& tp = {}, std::int64_t pad_to = 1);
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  struct Activations {
    std::vector<Tensor> block_inputs;
    std::vector<DecoderBlock::Saved> blocks;
    Tensor final_input;
    Tensor normed;
    RMSNorm::Saved final_norm;
  };

  // Forward and backward of one micro-batch: parameter gradients accumulate, scaled by
  // grad_scale (1 / tokens counted in the loss over the whole step). Returns the loss sums.
  LossSums forward_backward(const TokenBatch& batch, double grad_scale);
  // Forward only; predictions (optional) receive the argmax per token.
  LossSums evaluate(const TokenBatch& batch, std::span<std::int32_t> predictions);

  // The pieces, for tests and for the parallel runtime.
  void forward(const TokenBatch& batch, Activations& acts) const;
  LossSums backward(const TokenBatch& batch, Activations& acts, double grad_scale) const;

  // The recompute policy of each block: one entry per layer, or one for every layer (empty:
  // none). Takes effect from the next forward; a forward's Activations remember their policy.
  void set_recompute(std::vector<Recompute> policies);
  Recompute recompute(std::int64_t layer) const {
    return recompute_[static_cast<std::size_t>(layer)];
  }

  const ModelConfig& config() const { return config_; }
  const TensorParallelShard& tensor_parallel() const { return tp_; }
  DType dtype() const { return dtype_; }
  DType grad_dtype() const { return grad_dtype_; }
  std::vector<ParameterGroup>& groups() { return groups_; }
  const std::vector<ParameterGroup>& groups() const { return groups_; }
  Parameter* find(const std::string& name);
  const Parameter* find(const std::string& name) const;
  void zero_grads();
  std::int64_t parameter_count() const;

  // Called with a group's index around its part of backward: `needed` before the first write
  // into its gradients, `ready` once they are final for the micro-batch (groups: embed, the
  // blocks, head). ZeRO stage 2 holds a group's full gradient buffer only in between.
  struct GradientHooks {
    std::function<void(std::size_t group)> needed;
    std::function<void(std::size_t group)> ready;
  };
  void set_gradient_hooks(GradientHooks hooks) { hooks_ = std::move(hooks); }

  // Called around each group's use of its weights in forward, backward and evaluate: `needed`
  // before (with the group the model will need next, or kNoGroup, so that its gather can start
  // early), `done` after. ZeRO stage 3 gathers a group's weights only in between.
  static constexpr std::size_t kNoGroup = static_cast<std::size_t>(-1);
  struct WeightHooks {
    std::function<void(std::size_t group, std::size_t next)> needed;
    std::function<void(std::size_t group)> done;
  };
  void set_weight_hooks(WeightHooks hooks) { weight_hooks_ = std::move(hooks); }

 private:
  StepContext context(const TokenBatch& batch) const;

  ModelConfig config_;
  ModelConfig local_;  // this rank's slice
  TensorParallelShard tp_;
  DType dtype_;
  DType grad_dtype_;
  std::vector<ParameterGroup> groups_;
  std::unique_ptr<Rope> rope_;
  std::unique_ptr<Embedding> embedding_;
  std::vector<std::unique_ptr<DecoderBlock>> blocks_;
  std::vector<Recompute> recompute_;  // one per block
  std::unique_ptr<RMSNorm> final_norm_;
  std::unique_ptr<LmHeadLoss> head_;
  GradientHooks hooks_;
  WeightHooks weight_hooks_;
  void weights_needed(std::size_t group, std::size_t next) const;
  void weights_done(std::size_t group) const;
  // The LM head's weights (the head group, and the embedding when tied) around its use.
  void head_weights_needed() const;
  void head_weights_done() const;
};

}  // namespace lt
