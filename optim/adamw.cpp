#include "optim/adamw.h"

#include "core/ops.h"

namespace lt {

AdamW::AdamW(Model& model, const AdamWConfig& config, std::uint64_t seed) : config_(config) {
  const DType master_dtype = model.grad_dtype();
  for (auto& g : model.groups()) {
    GroupState s{&g, Tensor(), Tensor(), Tensor(), g.values().dtype() != master_dtype};
    if (s.separate_master) {
      s.master = Tensor::empty(g.values().shape(), master_dtype, MemCategory::optimizer);
      g.generate_initial_values(seed, s.master);
    } else {
      s.master = g.values();
    }
    s.m = Tensor::zeros(g.values().shape(), master_dtype, MemCategory::optimizer);
    s.v = Tensor::zeros(g.values().shape(), master_dtype, MemCategory::optimizer);
    state_.push_back(std::move(s));
  }
}

bool AdamW::decays(const ParamSpec& spec) const {
  if (spec.is_norm) return config_.decay_norms;
  if (spec.is_embedding) return config_.decay_embeddings;
  return spec.decay;
}

void AdamW::step(double lr, double grad_scale) {
  ++steps_;
  AdamWStep s;
  s.lr = lr;
  s.beta1 = config_.betas[0];
  s.beta2 = config_.betas[1];
  s.eps = config_.eps;
  s.step = steps_;
  s.grad_scale = grad_scale;
  for (auto& st : state_) {
    for (const auto& p : st.group->params()) {
      s.weight_decay = decays(p.spec) ? config_.weight_decay : 0.0;
      const Shape flat{p.spec.shape.numel()};
      const Tensor copy_to =
          st.separate_master ? st.group->values().flat_view(p.offset, flat) : Tensor();
      adamw_update(st.master.flat_view(p.offset, flat), st.group->grads().flat_view(p.offset, flat),
                   st.m.flat_view(p.offset, flat), st.v.flat_view(p.offset, flat), s, copy_to);
    }
  }
}

}  // namespace lt
