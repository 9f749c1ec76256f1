#include "optim/adamw.h"

#include "core/error.h"
#include "core/ops.h"

namespace lt {

AdamW::AdamW(Model& model, const AdamWConfig& config, std::uint64_t seed, const ZeroSharding& zero)
    : config_(config) {
  const DType master_dtype = model.grad_dtype();
  for (auto& g : model.groups()) {
    const FlatRange owned =
        zero.sharded() ? shard_of(g, zero.ranks, zero.rank) : FlatRange{0, g.padded_numel()};
    GroupState s{&g, owned, Tensor(), Tensor(), Tensor()};
    if (g.values().dtype() != master_dtype) {
      // The master copy rounds the same initial values as the compute weights; a sharded rank
      // generates the whole group once and keeps its slice.
      Tensor full = Tensor::empty(g.values().shape(), master_dtype, MemCategory::workspace);
      g.generate_initial_values(seed, full);
      s.master = Tensor::empty(Shape{owned.size}, master_dtype, MemCategory::optimizer);
      copy(full.flat_view(owned.begin, Shape{owned.size}), s.master);
    }
    s.m = Tensor::zeros(Shape{owned.size}, master_dtype, MemCategory::optimizer);
    s.v = Tensor::zeros(Shape{owned.size}, master_dtype, MemCategory::optimizer);
    state_.push_back(std::move(s));
  }
}

bool AdamW::decays(const ParamSpec& spec) const {
  if (spec.is_norm) return config_.decay_norms;
  if (spec.is_embedding) return config_.decay_embeddings;
  return spec.decay;
}

void AdamW::step(double lr, double grad_scale, std::span<const Tensor> grad_shards,
                 std::span<const Tensor> value_shards) {
  LT_CHECK(grad_shards.empty() || grad_shards.size() == state_.size(),
           grad_shards.size() << " gradient shards for " << state_.size() << " groups");
  LT_CHECK(value_shards.empty() || value_shards.size() == state_.size(),
           value_shards.size() << " weight shards for " << state_.size() << " groups");
  ++steps_;
  AdamWStep s;
  s.lr = lr;
  s.beta1 = config_.betas[0];
  s.beta2 = config_.betas[1];
  s.eps = config_.eps;
  s.step = steps_;
  s.grad_scale = grad_scale;
  for (std::size_t gi = 0; gi < state_.size(); ++gi) {
    GroupState& st = state_[gi];
    const Tensor& values = st.group->values();
    for (const auto& p : st.group->params()) {
      const FlatRange part = overlap(p, st.owned);
      if (part.size == 0) continue;
      s.weight_decay = decays(p.spec) ? config_.weight_decay : 0.0;
      const Shape flat{part.size};
      const std::int64_t at = part.begin - st.owned.begin;  // offset in the state tensors
      const bool separate = st.master.defined();
      // This rank's compute weights for `part`: in the group buffer, or in its stage-3 shard.
      const Tensor compute = value_shards.empty() ? values.flat_view(part.begin, flat)
                                                  : value_shards[gi].flat_view(at, flat);
      const Tensor master = separate ? st.master.flat_view(at, flat) : compute;
      const Tensor copy_to = separate ? compute : Tensor();
      const Tensor grad = grad_shards.empty() ? st.group->grads().flat_view(part.begin, flat)
                                              : grad_shards[gi].flat_view(at, flat);
      adamw_update(master, grad, st.m.flat_view(at, flat), st.v.flat_view(at, flat), s, copy_to);
    }
  }
}

}  // namespace lt
