#include "core/cpu/common.h"
#include "core/cpu/kernels.h"

namespace lt::cpu {
namespace {

template <class M, class O>
void update(const Tensor& master, const Tensor& grad, const Tensor& m, const Tensor& v,
            const AdamWStep& s, O* out) {
  const std::int64_t n = master.numel();
  M* w = master.data<M>();
  const M* g = grad.data<M>();
  M* mp = m.data<M>();
  M* vp = v.data<M>();
  const M b1 = static_cast<M>(s.beta1), b2 = static_cast<M>(s.beta2);
  const M c1 = static_cast<M>(1.0 / (1.0 - std::pow(s.beta1, static_cast<double>(s.step))));
  const M c2 = static_cast<M>(1.0 / (1.0 - std::pow(s.beta2, static_cast<double>(s.step))));
  const M lr = static_cast<M>(s.lr), eps = static_cast<M>(s.eps);
  const M decay = static_cast<M>(1.0 - s.lr * s.weight_decay);
  const M gs = static_cast<M>(s.grad_scale);
  parallel_ranges(n, 1 << 14, [&](std::int64_t i0, std::int64_t i1) {
#pragma omp simd
    for (std::int64_t i = i0; i < i1; ++i) {
      const M gi = g[i] * gs;
      mp[i] = b1 * mp[i] + (M(1) - b1) * gi;
      vp[i] = b2 * vp[i] + (M(1) - b2) * gi * gi;
      const M step = lr * (mp[i] * c1) / (std::sqrt(vp[i] * c2) + eps);
      w[i] = w[i] * decay - step;
      if (out) store(out, i, static_cast<compute_t<O>>(w[i]));
    }
  });
}

}  // namespace

void adamw_update(const Tensor& master, const Tensor& grad, const Tensor& m, const Tensor& v,
                  const AdamWStep& step, const Tensor& compute_copy) {
  const std::int64_t n = master.numel();
  LT_CHECK(grad.numel() == n && m.numel() == n && v.numel() == n &&
               grad.dtype() == master.dtype() && m.dtype() == master.dtype() &&
               v.dtype() == master.dtype(),
           "adamw_update " << master.describe() << " " << grad.describe());
  LT_CHECK(!compute_copy.defined() || compute_copy.numel() == n,
           "adamw compute copy " << compute_copy.describe());
  auto run = [&]<class M>() {
    if (!compute_copy.defined()) {
      update<M, M>(master, grad, m, v, step, static_cast<M*>(nullptr));
      return;
    }
    dispatch_float(compute_copy.dtype(), [&]<class O>() {
      update<M, O>(master, grad, m, v, step, compute_copy.template data<O>());
    });
  };
  if (master.dtype() == DType::f32) {
    run.template operator()<float>();
  } else {
    LT_CHECK(master.dtype() == DType::f64, "adamw master weights must be f32 or f64");
    run.template operator()<double>();
  }
}

}  // namespace lt::cpu
