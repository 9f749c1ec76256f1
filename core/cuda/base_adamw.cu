// AdamW over a flat shard (launcher of base_launch.h), with the CPU kernel's expression order;
// compiled without FMA contraction, so each step rounds as the CPU's does.
#include <cmath>

#include "core/cuda/base_common.cuh"

namespace lt::cuda::launch {
namespace {

using kern::dispatch;
using kern::from_c;
using kern::load_vec;
using kern::store_vec;
using kern::Vec;
using kern::vec_aligned;
using kern::vec_width;

template <class M>
struct AdamWConsts {
  M b1, b2, c1, c2, lr, eps, decay, gs;
};

template <class M>
__device__ __forceinline__ M sqrt_m(M x) {
  return kern::sqrt_c(x);
}

// O is the compute copy's type; Out = false writes no copy.
template <class M, class O, bool Out>
struct AdamWFlat {
  M* w;
  const M* g;
  M* m;
  M* v;
  O* out;
  AdamWConsts<M> k;
  template <int V>
  __device__ void apply(std::int64_t i) const {
    Vec<M, V> wv = load_vec<M, V>(w + i);
    const Vec<M, V> gv = load_vec<M, V>(g + i);
    Vec<M, V> mv = load_vec<M, V>(m + i);
    Vec<M, V> vv = load_vec<M, V>(v + i);
    Vec<O, V> ov;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      const M gi = gv.v[j] * k.gs;
      mv.v[j] = k.b1 * mv.v[j] + (M(1) - k.b1) * gi;
      vv.v[j] = k.b2 * vv.v[j] + (M(1) - k.b2) * gi * gi;
      const M step = k.lr * (mv.v[j] * k.c1) / (sqrt_m(vv.v[j] * k.c2) + k.eps);
      wv.v[j] = wv.v[j] * k.decay - step;
      if constexpr (Out) ov.v[j] = from_c<O>(static_cast<kern::comp_t<O>>(wv.v[j]));
    }
    store_vec<M, V>(w + i, wv);
    store_vec<M, V>(m + i, mv);
    store_vec<M, V>(v + i, vv);
    if constexpr (Out) store_vec<O, V>(out + i, ov);
  }
};

template <class M>
AdamWConsts<M> consts(const AdamWArgs& s) {
  const auto step = static_cast<double>(s.step);
  return {static_cast<M>(s.beta1),
          static_cast<M>(s.beta2),
          static_cast<M>(1.0 / (1.0 - std::pow(s.beta1, step))),
          static_cast<M>(1.0 / (1.0 - std::pow(s.beta2, step))),
          static_cast<M>(s.lr),
          static_cast<M>(s.eps),
          static_cast<M>(1.0 - s.lr * s.weight_decay),
          static_cast<M>(s.grad_scale)};
}

template <class M, class O, bool Out>
void run(void* master, const void* grad, void* m, void* v, std::int64_t n, const AdamWArgs& args,
         void* out) {
  constexpr int V = vec_width<M, O>();
  const bool aligned = vec_aligned<M>(master, V) && vec_aligned<M>(grad, V) &&
                       vec_aligned<M>(m, V) && vec_aligned<M>(v, V) &&
                       (!Out || vec_aligned<O>(out, V));
  kern::launch_flat<V>(
      n, aligned,
      AdamWFlat<M, O, Out>{static_cast<M*>(master), static_cast<const M*>(grad), static_cast<M*>(m),
                           static_cast<M*>(v), static_cast<O*>(out), consts<M>(args)});
}

}  // namespace

void adamw_update(Dt master_dt, void* master, const void* grad, void* m, void* v, std::int64_t n,
                  const AdamWArgs& args, Dt out_dt, void* out) {
  LT_CHECK(master_dt == Dt::f32 || master_dt == Dt::f64, "adamw master weights must be f32 or f64");
  auto with_master = [&](auto mtag) {
    using M = LT_TAG_TYPE(mtag);
    if (out == nullptr) {
      run<M, M, false>(master, grad, m, v, n, args, nullptr);
      return;
    }
    dispatch(out_dt, [&](auto otag) {
      using O = LT_TAG_TYPE(otag);
      run<M, O, true>(master, grad, m, v, n, args, out);
    });
  };
  if (master_dt == Dt::f32) {
    with_master(kern::Tag<float>{});
  } else {
    with_master(kern::Tag<double>{});
  }
}

}  // namespace lt::cuda::launch
