#include "layers/model.h"

#include <algorithm>
#include <utility>

#include "core/error.h"
#include "core/ops.h"
#include "layers/linear.h"
#include "parallel/communicator.h"

namespace lt {
namespace {

std::vector<ParamSpec> embed_specs(const ModelConfig& m) {
  ParamSpec s{"model.embed_tokens.weight", Shape{m.vocab, m.dim}, Init::normal, m.init_std, false};
  s.is_embedding = true;
  return {s};
}

std::vector<ParamSpec> head_specs(const ModelConfig& m) {
  ParamSpec norm{"model.norm.weight", Shape{m.dim}, Init::ones, 0.0, false};
  norm.is_norm = true;
  std::vector<ParamSpec> specs = {norm};
  if (!m.tie_embeddings)
    specs.push_back({"lm_head.weight", Shape{m.vocab, m.dim}, Init::normal, m.init_std});
  return specs;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Marks the parameters a tensor-parallel rank holds a slice of: column-parallel weights (q, k,
// v, gate, up) and the vocabulary tables by rows, row-parallel weights (o, down) by columns.
// Norm weights stay whole (replicated).
void annotate_shards(std::vector<ParamSpec>& specs, const ModelConfig& global,
                     const TensorParallelShard& tp) {
  if (tp.size == 1) return;
  const std::int64_t hd = global.resolved_head_dim();
  for (ParamSpec& s : specs) {
    auto by_rows = [&](std::int64_t global_rows) {
      const std::int64_t local = s.shape[0];
      s.global_shape = s.shape.rank() == 1 ? Shape{global_rows} : Shape{global_rows, s.shape[1]};
      s.row_offset = tp.rank * local;
    };
    auto by_cols = [&](std::int64_t global_cols) {
      s.global_shape = Shape{s.shape[0], global_cols};
      s.col_offset = tp.rank * s.shape[1];
    };
    const std::string& n = s.name;
    if (ends_with(n, "q_proj.weight") || ends_with(n, "q_proj.bias")) by_rows(global.heads * hd);
    if (ends_with(n, "k_proj.weight") || ends_with(n, "k_proj.bias") ||
        ends_with(n, "v_proj.weight") || ends_with(n, "v_proj.bias")) {
      by_rows(global.kv_heads * hd);
      if (global.kv_heads < tp.size) {  // rank r uses KV head r / (tp / kv_heads)
        s.tp_replicas = tp.size / global.kv_heads;
        s.row_offset = tp.rank / s.tp_replicas * s.shape[0];
      }
    }
    if (ends_with(n, "gate_proj.weight") || ends_with(n, "up_proj.weight")) by_rows(global.ffn);
    if (ends_with(n, "o_proj.weight")) by_cols(global.heads * hd);
    if (ends_with(n, "down_proj.weight")) by_cols(global.ffn);
    if (n == "model.embed_tokens.weight" || n == "lm_head.weight") by_rows(global.vocab);
  }
}

std::vector<ParamSpec> sharded(std::vector<ParamSpec> specs, const ModelConfig& global,
                               const TensorParallelShard& tp) {
  annotate_shards(specs, global, tp);
  return specs;
}

}  // namespace

Model::Model(const ModelConfig& config, DType dtype, std::uint64_t seed, std::int64_t max_positions,
             const TensorParallelShard& tp, std::int64_t pad_to)
    : config_(config),
      local_(local_model_config(config, tp)),
      tp_(tp),
      dtype_(dtype),
      grad_dtype_(dtype == DType::f64 ? DType::f64 : DType::f32) {
  groups_.reserve(static_cast<std::size_t>(config.layers + 2));
  groups_.emplace_back("embed", sharded(embed_specs(local_), config, tp), dtype_, grad_dtype_,
                       pad_to);
  for (std::int64_t i = 0; i < config.layers; ++i) {
    groups_.emplace_back("layers." + std::to_string(i),
                         sharded(DecoderBlock::param_specs(local_, i), config, tp), dtype_,
                         grad_dtype_, pad_to);
  }
  groups_.emplace_back("head", sharded(head_specs(local_), config, tp), dtype_, grad_dtype_,
                       pad_to);
  for (auto& g : groups_) g.initialize(seed);

  rope_ = std::make_unique<Rope>(local_, max_positions);
  const std::int64_t vocab_offset = tp.rank * local_.vocab;
  embedding_ =
      std::make_unique<Embedding>(groups_.front().get("model.embed_tokens.weight"), vocab_offset);
  for (std::int64_t i = 0; i < config.layers; ++i) {
    blocks_.push_back(
        std::make_unique<DecoderBlock>(local_, groups_[static_cast<std::size_t>(i + 1)], i));
  }
  ParameterGroup& head = groups_.back();
  final_norm_ = std::make_unique<RMSNorm>(head.get("model.norm.weight"), config_.norm_eps);
  Parameter& head_weight = config_.tie_embeddings ? groups_.front().get("model.embed_tokens.weight")
                                                  : head.get("lm_head.weight");
  const std::int64_t valid = std::clamp<std::int64_t>(config.vocab - vocab_offset, 0, local_.vocab);
  head_ = std::make_unique<LmHeadLoss>(head_weight, 0, vocab_offset, valid);
  set_recompute({});
}

void Model::set_recompute(std::vector<Recompute> policies) {
  const auto layers = static_cast<std::size_t>(config_.layers);
  if (policies.empty()) policies.push_back(Recompute::none);
  if (policies.size() == 1) policies.resize(layers, policies.front());
  const std::size_t given = policies.size();
  LT_CHECK(given == layers, given << " recompute policies for " << layers << " layers");
  recompute_ = std::move(policies);
}

StepContext Model::context(const TokenBatch& batch) const {
  LT_CHECK(static_cast<std::int64_t>(batch.tokens.size()) == batch.batch * batch.seq_len &&
               batch.positions.size() == batch.tokens.size(),
           "token batch of " << batch.tokens.size() << " tokens for " << batch.batch << " x "
                             << batch.seq_len);
  StepContext ctx;
  ctx.batch = batch.batch;
  ctx.seq_len = batch.seq_len;
  ctx.positions = batch.positions;
  ctx.doc_ids = batch.doc_ids;
  ctx.rope = rope_.get();
  ctx.cp = batch.cp;
  ctx.tp = batch.tp;
  ctx.sequence_parallel = batch.sequence_parallel;
  ctx.ring = batch.ring;
  ctx.dtype = dtype_;
  ctx.grad_dtype = grad_dtype_;
  return ctx;
}

void Model::weights_needed(std::size_t group, std::size_t next) const {
  if (weight_hooks_.needed) weight_hooks_.needed(group, next);
}

void Model::weights_done(std::size_t group) const {
  if (weight_hooks_.done) weight_hooks_.done(group);
}

void Model::head_weights_needed() const {
  if (config_.tie_embeddings) weights_needed(0, groups_.size() - 1);
  weights_needed(groups_.size() - 1, kNoGroup);
}

void Model::head_weights_done() const {
  weights_done(groups_.size() - 1);
  if (config_.tie_embeddings) weights_done(0);
}

void Model::forward(const TokenBatch& batch, Activations& acts) const {
  const StepContext ctx = context(batch);
  weights_needed(0, 1);
  Tensor x = embedding_->forward(batch.tokens, ctx);
  weights_done(0);
  acts.blocks.resize(blocks_.size());
  acts.block_inputs.clear();
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    acts.block_inputs.push_back(x);
    weights_needed(i + 1, i + 2);  // the last block's next is the head group
    x = blocks_[i]->forward(x, ctx, acts.blocks[i], recompute_[i]);
    weights_done(i + 1);
  }
  // The head's weights stay gathered from the final norm to the LM head in backward/evaluate.
  head_weights_needed();
  acts.final_input = x;
  acts.normed = Tensor::empty(x.shape(), dtype_, MemCategory::activations);
  final_norm_->forward(x, acts.normed, acts.final_norm);
  // The vocab-parallel head needs every token on every rank.
  if (ctx.sp_active()) acts.normed = gather_tokens(acts.normed, *ctx.tp, MemCategory::activations);
}

LossSums Model::backward(const TokenBatch& batch, Activations& acts, double grad_scale) const {
  const StepContext ctx = context(batch);
  const std::size_t embed_group = 0, head_group = groups_.size() - 1;
  auto needed = [&](std::size_t g) {
    if (hooks_.needed) hooks_.needed(g);
  };
  auto ready = [&](std::size_t g) {
    if (hooks_.ready) hooks_.ready(g);
  };
  needed(head_group);
  if (config_.tie_embeddings) needed(embed_group);  // the LM head writes the embedding's grads
  Tensor d_normed = Tensor::empty(acts.normed.shape(), dtype_, MemCategory::workspace);
  const LossSums sums =
      head_->run(acts.normed, batch.targets, batch.loss_weights, grad_scale, d_normed, {}, ctx.tp);
  acts.normed = Tensor();
  Tensor dx = Tensor::empty(acts.final_input.shape(), dtype_, MemCategory::workspace);
  if (ctx.sp_active()) {  // the head's gradient is whole on every rank: keep this rank's rows
    const std::int64_t rows = ctx.residual_tokens();
    d_normed = d_normed.rows(ctx.tp->rank() * rows, rows);
  }
  final_norm_->backward(d_normed, acts.final_input, acts.final_norm, dx, false);
  d_normed = Tensor();
  acts.final_input = Tensor();
  acts.final_norm = RMSNorm::Saved{};
  ready(head_group);
  head_weights_done();
  for (std::size_t i = blocks_.size(); i-- > 0;) {
    needed(i + 1);
    weights_needed(i + 1, i > 0 ? i : kNoGroup);  // backward walks the blocks downwards
    dx = blocks_[i]->backward(std::move(dx), acts.block_inputs[i], ctx, acts.blocks[i]);
    weights_done(i + 1);
    ready(i + 1);
    acts.blocks[i] = DecoderBlock::Saved{};  // backward has emptied it; drops the policy too
    acts.block_inputs[i] = Tensor();
  }
  if (!config_.tie_embeddings) needed(embed_group);
  embedding_->backward(dx, batch.tokens, ctx);
  ready(embed_group);
  return sums;
}

LossSums Model::forward_backward(const TokenBatch& batch, double grad_scale) {
  Activations acts;
  forward(batch, acts);
  return backward(batch, acts, grad_scale);
}

LossSums Model::evaluate(const TokenBatch& batch, std::span<std::int32_t> predictions) {
  Activations acts;
  forward(batch, acts);
  acts.blocks.clear();
  acts.block_inputs.clear();
  const LossSums sums = head_->run(acts.normed, batch.targets, batch.loss_weights, 0.0, Tensor(),
                                   predictions, batch.tp);
  head_weights_done();
  return sums;
}

Parameter* Model::find(const std::string& name) {
  return const_cast<Parameter*>(std::as_const(*this).find(name));
}

const Parameter* Model::find(const std::string& name) const {
  for (const auto& g : groups_) {
    for (const auto& p : g.params()) {
      if (p.spec.name == name) return &p;
    }
  }
  return nullptr;
}

void Model::zero_grads() {
  for (auto& g : groups_) g.zero_grads();
}

std::int64_t Model::parameter_count() const {
  std::int64_t n = 0;
  for (const auto& g : groups_) n += g.numel();
  return n;
}

}  // namespace lt
