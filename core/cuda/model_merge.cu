// attention_merge: log-sum-exp merge of a partial attention result into an accumulated one
// (ring attention). One block per query row: the per-head weights are computed once (in double,
// as on the CPU) into shared memory, then every element of the row is updated.
#include "core/cuda/model_common.cuh"

namespace lt::cuda::kern {
namespace {

template <class O, class P, class L>
__global__ void attention_merge_kernel(O* out, std::int64_t ldo, const P* part, std::int64_t ldp,
                                       L* lse, const L* part_lse, std::int64_t q_len,
                                       std::int64_t heads, std::int64_t hd) {
  using C = comp_t<O>;
  LT_DYNAMIC_SMEM(smem_raw);
  double* new_lse = reinterpret_cast<double*>(smem_raw);  // [heads]
  C* wa = reinterpret_cast<C*>(new_lse + heads);          // [heads]
  C* wc = wa + heads;                                     // [heads]
  int* skip = reinterpret_cast<int*>(wc + heads);         // [heads]
  const std::int64_t r = blockIdx.x, b = r / q_len, i = r % q_len;
  const double inf = CUDART_INF;
  for (std::int64_t h = threadIdx.x; h < heads; h += blockDim.x) {
    const std::int64_t li = (b * heads + h) * q_len + i;
    const double l1 = static_cast<double>(lse[li]), l2 = static_cast<double>(part_lse[li]);
    const double m = l1 > l2 ? l1 : l2;
    if (m == -inf || l2 == -inf) {  // nothing new for this row
      skip[h] = 1;
      continue;
    }
    const double w1 = l1 == -inf ? 0.0 : exp(l1 - m), w2 = exp(l2 - m);
    const double total = w1 + w2;
    skip[h] = 0;
    wa[h] = static_cast<C>(w1 / total);
    wc[h] = static_cast<C>(w2 / total);
    new_lse[h] = m + log(total);
  }
  __syncthreads();
  O* orow = out + r * ldo;
  const P* prow = part + r * ldp;
  const std::int64_t n = heads * hd;
  for (std::int64_t e = threadIdx.x; e < n; e += blockDim.x) {
    const std::int64_t h = e / hd;
    if (skip[h]) continue;
    orow[e] = from_c<O>(wa[h] * to_c(orow[e]) + wc[h] * static_cast<C>(to_c(prow[e])));
  }
  // Every read of lse happened before the barrier above.
  for (std::int64_t h = threadIdx.x; h < heads; h += blockDim.x) {
    if (!skip[h]) lse[(b * heads + h) * q_len + i] = static_cast<L>(new_lse[h]);
  }
}

}  // namespace
}  // namespace lt::cuda::kern

namespace lt::cuda::launch {

void attention_merge(Dt out_dt, void* out, std::int64_t ldo, Dt part_dt, const void* part,
                     std::int64_t ldp, Dt lse_dt, void* lse, const void* part_lse,
                     std::int64_t batch, std::int64_t q_len, std::int64_t heads,
                     std::int64_t head_dim) {
  using namespace kern;
  const std::int64_t rows = batch * q_len;
  if (rows == 0 || heads == 0) return;
  LT_CHECK(lse_dt == Dt::f32 || lse_dt == Dt::f64, "attention_merge: lse must be f32 or f64");
  const int threads = row_threads(heads * head_dim, 256);
  dispatch(out_dt, [&](auto to) {
    using O = LT_TAG_TYPE(to);
    using C = comp_t<O>;
    const std::size_t smem =
        static_cast<std::size_t>(heads) * (sizeof(double) + 2 * sizeof(C) + sizeof(int));
    LT_CHECK(smem <= 48 * 1024, "attention_merge: " << heads << " heads");
    dispatch(part_dt, [&](auto tp) {
      using P = LT_TAG_TYPE(tp);
      auto run = [&](auto lt) {
        using L = decltype(lt);
        LT_LAUNCH(static_cast<unsigned>(rows), threads, smem, attention_merge_kernel<O, P, L>)
        (static_cast<O*>(out), ldo, static_cast<const P*>(part), ldp, static_cast<L*>(lse),
         static_cast<const L*>(part_lse), q_len, heads, head_dim);
      };
      if (lse_dt == Dt::f64) {
        run(double{});
      } else {
        run(float{});
      }
    });
  });
  check_launch("attention_merge");
}

}  // namespace lt::cuda::launch
