// Softmax cross-entropy, whole rows (softmax_cross_entropy) and vocab-parallel passes over a
// shard (cross_entropy_shard_*). One block per row; rows are read with 16-byte accesses when
// aligned (V elements), the tail past the last full vector element by element. Reductions run in
// a fixed tree, so results are deterministic; the argmax is the first index of the maximum, as on
// the CPU. Losses come back per row and are weighted and summed on the host in row order.
#include "core/cuda/model_common.cuh"

namespace lt::cuda::kern {
namespace {

constexpr long long kNoIndex = 0x7fffffffffffffffLL;

// Running maximum, its first index, and the sum of exp(x - max) over the elements seen.
template <class C>
struct SoftmaxState {
  C m;
  C s;
  long long arg;

  __device__ __forceinline__ void add(C x, long long j) {
    if (x > m) {
      s = (m == neg_inf(C(0)) ? C(0) : s * exp_c(m - x)) + C(1);
      m = x;
      arg = j;
    } else if (m != neg_inf(C(0))) {
      s += exp_c(x - m);
    }
  }
};

template <class C>
__device__ __forceinline__ SoftmaxState<C> combine(const SoftmaxState<C>& a,
                                                   const SoftmaxState<C>& b) {
  SoftmaxState<C> r;
  const C ninf = neg_inf(C(0));
  r.m = a.m > b.m ? a.m : b.m;
  r.s =
      (a.m == ninf ? C(0) : a.s * exp_c(a.m - r.m)) + (b.m == ninf ? C(0) : b.s * exp_c(b.m - r.m));
  r.arg = b.m > a.m ? b.arg : a.m > b.m ? a.arg : (a.arg < b.arg ? a.arg : b.arg);
  return r;
}

// Block-wide combine (symmetric at every step, so every lane agrees); every thread gets the
// result. scratch: 33 states in shared memory.
template <class C>
__device__ SoftmaxState<C> block_combine(SoftmaxState<C> st, SoftmaxState<C>* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    SoftmaxState<C> other;
    other.m = __shfl_xor_sync(0xffffffffu, st.m, o);
    other.s = __shfl_xor_sync(0xffffffffu, st.s, o);
    other.arg = __shfl_xor_sync(0xffffffffu, st.arg, o);
    st = combine(st, other);
  }
  __syncthreads();
  if (lane == 0) scratch[warp] = st;
  __syncthreads();
  if (warp == 0) {
    SoftmaxState<C> t;
    if (lane < warps) {
      t = scratch[lane];
    } else {
      t.m = neg_inf(C(0));
      t.s = C(0);
      t.arg = kNoIndex;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      SoftmaxState<C> other;
      other.m = __shfl_xor_sync(0xffffffffu, t.m, o);
      other.s = __shfl_xor_sync(0xffffffffu, t.s, o);
      other.arg = __shfl_xor_sync(0xffffffffu, t.arg, o);
      t = combine(t, other);
    }
    if (lane == 0) scratch[32] = t;
  }
  __syncthreads();
  return scratch[32];
}

// Calls f(j, x) for every column j < valid of a row this thread covers, in increasing j.
template <class T, int V, class F>
__device__ __forceinline__ void for_columns(const T* row, std::int64_t valid, F&& f) {
  const std::int64_t nv = valid / V;
  for (std::int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
    const Vec<T, V> a = load_vec<T, V>(row + i * V);
#pragma unroll
    for (int k = 0; k < V; ++k) f(i * V + k, a.v[k]);
  }
  for (std::int64_t j = nv * V + threadIdx.x; j < valid; j += blockDim.x) f(j, row[j]);
}

// row[j] = g * exp(row[j] - m) * inv for j < valid, minus g at `target` (a local column, or
// outside [0, valid) when the target is elsewhere), 0 for padding columns [valid, width).
template <class T, int V>
__device__ __forceinline__ void write_gradient(T* row, std::int64_t width, std::int64_t valid,
                                               std::int64_t target, T g, T m, T inv) {
  const std::int64_t nv = valid / V;
  for (std::int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
    Vec<T, V> a = load_vec<T, V>(row + i * V);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      T v = g * exp_c(a.v[k] - m) * inv;
      if (i * V + k == target) v -= g;
      a.v[k] = v;
    }
    store_vec<T, V>(row + i * V, a);
  }
  for (std::int64_t j = nv * V + threadIdx.x; j < valid; j += blockDim.x) {
    T v = g * exp_c(row[j] - m) * inv;
    if (j == target) v -= g;
    row[j] = v;
  }
  for (std::int64_t j = valid + threadIdx.x; j < width; j += blockDim.x) row[j] = T(0);
}

template <class T, int V>
__global__ void softmax_xent_kernel(T* logits, std::int64_t ld, std::int64_t width,
                                    std::int64_t valid, const std::int32_t* targets,
                                    const float* weights, double grad_scale, double* loss,
                                    std::int32_t* pred) {
  LT_SHARED_ARRAY(SoftmaxState<T>, scratch, 33);
  const std::int64_t r = blockIdx.x;
  T* row = logits + r * ld;
  const std::int64_t target = targets[r];
  // Read before any thread overwrites the row (the writes follow block barriers).
  const T target_logit = threadIdx.x == 0 ? row[target] : T(0);
  SoftmaxState<T> st{neg_inf(T(0)), T(0), kNoIndex};
  for_columns<T, V>(row, valid, [&](std::int64_t j, T x) { st.add(x, j); });
  st = block_combine(st, scratch);
  if (threadIdx.x == 0) {
    const T lse = st.m + log_c(st.s);
    loss[r] = static_cast<double>(lse - target_logit);
    if (pred) pred[r] = static_cast<std::int32_t>(st.arg == kNoIndex ? 0 : st.arg);
  }
  if (grad_scale != 0.0) {
    const T g = static_cast<T>(static_cast<double>(weights[r]) * grad_scale);
    write_gradient<T, V>(row, width, valid, target, g, st.m, T(1) / st.s);
  }
}

template <class T, int V>
__global__ void shard_max_kernel(const T* logits, std::int64_t ld, std::int64_t valid,
                                 std::int64_t vocab_offset, double* row_max,
                                 std::int32_t* row_argmax) {
  LT_SHARED_ARRAY(T, sm, 32);
  LT_SHARED_ARRAY(long long, sa, 32);
  const T* row = logits + static_cast<std::int64_t>(blockIdx.x) * ld;
  T m = neg_inf(T(0));
  long long arg = kNoIndex;
  for_columns<T, V>(row, valid, [&](std::int64_t j, T x) {
    if (x > m) {
      m = x;
      arg = j;
    }
  });
  auto pick = [](T& m1, long long& a1, T m2, long long a2) {
    if (m2 > m1 || (m2 == m1 && a2 < a1)) {
      m1 = m2;
      a1 = a2;
    }
  };
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    pick(m, arg, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, arg, o));
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sm[warp] = m;
    sa[warp] = arg;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w) pick(m, arg, sm[w], sa[w]);
    row_max[blockIdx.x] = static_cast<double>(m);
    if (row_argmax)
      row_argmax[blockIdx.x] =
          static_cast<std::int32_t>(vocab_offset + (arg == kNoIndex ? 0 : arg));
  }
}

template <class T, int V>
__global__ void shard_sums_kernel(const T* logits, std::int64_t ld, std::int64_t valid,
                                  std::int64_t vocab_offset, const double* row_max,
                                  const std::int32_t* targets, double* sum_exp,
                                  double* target_logit) {
  LT_SHARED_ARRAY(T, scratch, 33);
  const std::int64_t r = blockIdx.x;
  const T* row = logits + r * ld;
  const T m = static_cast<T>(row_max[r]);
  T s = 0;
  for_columns<T, V>(row, valid, [&](std::int64_t, T x) { s += exp_c(x - m); });
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) {
    sum_exp[r] = static_cast<double>(s);
    const std::int64_t local = targets[r] - vocab_offset;
    target_logit[r] = local >= 0 && local < valid ? static_cast<double>(row[local]) : 0.0;
  }
}

template <class T, int V>
__global__ void shard_grad_kernel(T* logits, std::int64_t ld, std::int64_t width,
                                  std::int64_t valid, std::int64_t vocab_offset,
                                  const double* row_max, const double* sum_exp,
                                  const std::int32_t* targets, const float* weights,
                                  double grad_scale) {
  const std::int64_t r = blockIdx.x;
  const T g = static_cast<T>(static_cast<double>(weights[r]) * grad_scale);
  const T inv = static_cast<T>(1.0 / sum_exp[r]);
  const T m = static_cast<T>(row_max[r]);
  write_gradient<T, V>(logits + r * ld, width, valid, targets[r] - vocab_offset, g, m, inv);
}

// Runs f(Tag<T>{}, vectorized) for f32/f64 logits.
template <class F>
void dispatch_logits(launch::Dt dt, const void* p, std::int64_t ld, F&& f) {
  LT_CHECK(dt == launch::Dt::f32 || dt == launch::Dt::f64,
           "cross-entropy logits must be f32 or f64");
  const std::size_t es = launch::dt_size(dt);
  const bool vec = rows_aligned(p, ld, static_cast<std::int64_t>(16 / es), es, 16);
  if (dt == launch::Dt::f32) {
    f(Tag<float>{}, vec);
  } else {
    f(Tag<double>{}, vec);
  }
}

inline int xent_threads(std::int64_t valid) {
  return row_threads(valid / 4, 512);
}

}  // namespace
}  // namespace lt::cuda::kern

namespace lt::cuda::launch {

void softmax_cross_entropy(Dt dt, void* logits, std::int64_t ld, std::int64_t rows,
                           std::int64_t width, std::int64_t valid, const std::int32_t* targets,
                           const float* weights, double grad_scale, double* loss,
                           std::int32_t* pred) {
  using namespace kern;
  if (rows == 0) return;
  dispatch_logits(dt, logits, ld, [&](auto tag, bool vec) {
    using T = LT_TAG_TYPE(tag);
    auto run = [&](auto kernel) {
      LT_LAUNCH(static_cast<unsigned>(rows), xent_threads(valid), 0, kernel)
      (static_cast<T*>(logits), ld, width, valid, targets, weights, grad_scale, loss, pred);
    };
    if (vec) {
      run(softmax_xent_kernel<T, 16 / sizeof(T)>);
    } else {
      run(softmax_xent_kernel<T, 1>);
    }
  });
  check_launch("softmax_cross_entropy");
}

void cross_entropy_shard_max(Dt dt, const void* logits, std::int64_t ld, std::int64_t rows,
                             std::int64_t valid, std::int64_t vocab_offset, double* row_max,
                             std::int32_t* row_argmax) {
  using namespace kern;
  if (rows == 0) return;
  dispatch_logits(dt, logits, ld, [&](auto tag, bool vec) {
    using T = LT_TAG_TYPE(tag);
    auto run = [&](auto kernel) {
      LT_LAUNCH(static_cast<unsigned>(rows), xent_threads(valid), 0, kernel)
      (static_cast<const T*>(logits), ld, valid, vocab_offset, row_max, row_argmax);
    };
    if (vec) {
      run(shard_max_kernel<T, 16 / sizeof(T)>);
    } else {
      run(shard_max_kernel<T, 1>);
    }
  });
  check_launch("cross_entropy_shard_max");
}

void cross_entropy_shard_sums(Dt dt, const void* logits, std::int64_t ld, std::int64_t rows,
                              std::int64_t valid, std::int64_t vocab_offset, const double* row_max,
                              const std::int32_t* targets, double* sum_exp, double* target_logit) {
  using namespace kern;
  if (rows == 0) return;
  dispatch_logits(dt, logits, ld, [&](auto tag, bool vec) {
    using T = LT_TAG_TYPE(tag);
    auto run = [&](auto kernel) {
      LT_LAUNCH(static_cast<unsigned>(rows), xent_threads(valid), 0, kernel)
      (static_cast<const T*>(logits), ld, valid, vocab_offset, row_max, targets, sum_exp,
       target_logit);
    };
    if (vec) {
      run(shard_sums_kernel<T, 16 / sizeof(T)>);
    } else {
      run(shard_sums_kernel<T, 1>);
    }
  });
  check_launch("cross_entropy_shard_sums");
}

void cross_entropy_shard_grad(Dt dt, void* logits, std::int64_t ld, std::int64_t rows,
                              std::int64_t width, std::int64_t valid, std::int64_t vocab_offset,
                              const double* row_max, const double* sum_exp,
                              const std::int32_t* targets, const float* weights,
                              double grad_scale) {
  using namespace kern;
  if (rows == 0 || grad_scale == 0.0) return;
  dispatch_logits(dt, logits, ld, [&](auto tag, bool vec) {
    using T = LT_TAG_TYPE(tag);
    auto run = [&](auto kernel) {
      LT_LAUNCH(static_cast<unsigned>(rows), xent_threads(width), 0, kernel)
      (static_cast<T*>(logits), ld, width, valid, vocab_offset, row_max, sum_exp, targets, weights,
       grad_scale);
    };
    if (vec) {
      run(shard_grad_kernel<T, 16 / sizeof(T)>);
    } else {
      run(shard_grad_kernel<T, 1>);
    }
  });
  check_launch("cross_entropy_shard_grad");
}

}  // namespace lt::cuda::launch
