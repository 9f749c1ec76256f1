// Copies with dtype conversion, fill, scale, add and bias add (launchers of base_launch.h).
// Arithmetic is written as the CPU kernels write it and this file is compiled without FMA
// contraction (core/CMakeLists.txt), so results round as the CPU's do.
#include <algorithm>

#include "core/cuda/base_common.cuh"

namespace lt::cuda::launch {
namespace {

using kern::comp_t;
using kern::contiguous;
using kern::dispatch;
using kern::from_c;
using kern::launch_flat;
using kern::launch_rows;
using kern::load_vec;
using kern::store_vec;
using kern::to_c;
using kern::Vec;
using kern::vec_aligned;
using kern::vec_width;

template <class S, class D>
__device__ __forceinline__ D convert(S x) {
  return from_c<D>(static_cast<comp_t<D>>(to_c(x)));
}

template <class S, class D>
struct CastFlat {
  const S* s;
  D* d;
  template <int V>
  __device__ void apply(std::int64_t i) const {
    const Vec<S, V> a = load_vec<S, V>(s + i);
    Vec<D, V> b;
#pragma unroll
    for (int k = 0; k < V; ++k) b.v[k] = convert<S, D>(a.v[k]);
    store_vec<D, V>(d + i, b);
  }
};

template <class S, class D>
struct CastRows {
  const S* s;
  std::int64_t ls;
  D* d;
  std::int64_t ld;
  __device__ void operator()(std::int64_t r, std::int64_t c) const {
    d[r * ld + c] = convert<S, D>(s[r * ls + c]);
  }
};

template <class T>
struct FillFlat {
  T* p;
  comp_t<T> value;
  template <int V>
  __device__ void apply(std::int64_t i) const {
    Vec<T, V> b;
#pragma unroll
    for (int k = 0; k < V; ++k) b.v[k] = from_c<T>(value);
    store_vec<T, V>(p + i, b);
  }
};

template <class T>
struct FillRows {
  T* p;
  std::int64_t ld;
  comp_t<T> value;
  __device__ void operator()(std::int64_t r, std::int64_t c) const {
    p[r * ld + c] = from_c<T>(value);
  }
};

template <class T>
struct ScaleFlat {
  T* p;
  comp_t<T> factor;
  template <int V>
  __device__ void apply(std::int64_t i) const {
    Vec<T, V> a = load_vec<T, V>(p + i);
#pragma unroll
    for (int k = 0; k < V; ++k) a.v[k] = from_c<T>(to_c(a.v[k]) * factor);
    store_vec<T, V>(p + i, a);
  }
};

template <class T>
struct ScaleRows {
  T* p;
  std::int64_t ld;
  comp_t<T> factor;
  __device__ void operator()(std::int64_t r, std::int64_t c) const {
    p[r * ld + c] = from_c<T>(to_c(p[r * ld + c]) * factor);
  }
};

// dst += alpha * src, in dst's compute type (as the CPU's add).
template <class D, class S>
struct AddFlat {
  D* d;
  const S* s;
  comp_t<D> alpha;
  template <int V>
  __device__ void apply(std::int64_t i) const {
    Vec<D, V> a = load_vec<D, V>(d + i);
    const Vec<S, V> b = load_vec<S, V>(s + i);
#pragma unroll
    for (int k = 0; k < V; ++k)
      a.v[k] = from_c<D>(to_c(a.v[k]) + alpha * static_cast<comp_t<D>>(to_c(b.v[k])));
    store_vec<D, V>(d + i, a);
  }
};

template <class T>
struct AddBiasRows {
  T* y;
  std::int64_t ld;
  const T* bias;
  __device__ void operator()(std::int64_t r, std::int64_t c) const {
    y[r * ld + c] = from_c<T>(to_c(y[r * ld + c]) + to_c(bias[c]));
  }
};

struct FillI32 {
  std::int32_t* p;
  std::int32_t value;
  template <int V>
  __device__ void apply(std::int64_t i) const {
    Vec<std::int32_t, V> b;
#pragma unroll
    for (int k = 0; k < V; ++k) b.v[k] = value;
    store_vec<std::int32_t, V>(p + i, b);
  }
};

}  // namespace

void cast_copy(const Matrix& src, const Matrix& dst) {
  if (src.rows == 0 || src.cols == 0) return;
  if (src.dt == dst.dt) {
    const std::size_t elem = dt_size(src.dt);
    if (contiguous(src) && contiguous(dst)) {
      LT_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data,
                                    static_cast<std::size_t>(src.rows * src.cols) * elem,
                                    cudaMemcpyDeviceToDevice, kern::stream()));
      return;
    }
    // Row pitches must stay below the runtime's limit (2^31 bytes); wider rows take the kernel.
    const std::int64_t max_pitch = (std::int64_t{1} << 31) - 1;
    if (std::max(src.ld, dst.ld) * static_cast<std::int64_t>(elem) <= max_pitch) {
      LT_CUDA_CHECK(cudaMemcpy2DAsync(
          dst.data, static_cast<std::size_t>(dst.ld) * elem, src.data,
          static_cast<std::size_t>(src.ld) * elem, static_cast<std::size_t>(src.cols) * elem,
          static_cast<std::size_t>(src.rows), cudaMemcpyDeviceToDevice, kern::stream()));
      return;
    }
  }
  dispatch(src.dt, [&](auto stag) {
    using S = LT_TAG_TYPE(stag);
    dispatch(dst.dt, [&](auto dtag) {
      using D = LT_TAG_TYPE(dtag);
      const auto* s = static_cast<const S*>(src.data);
      auto* d = static_cast<D*>(dst.data);
      if (contiguous(src) && contiguous(dst)) {
        constexpr int V = vec_width<S, D>();
        launch_flat<V>(src.rows * src.cols, vec_aligned<S>(s, V) && vec_aligned<D>(d, V),
                       CastFlat<S, D>{s, d});
      } else {
        launch_rows(src.rows, src.cols, CastRows<S, D>{s, src.ld, d, dst.ld});
      }
    });
  });
}

void fill(const Matrix& t, double value) {
  dispatch(t.dt, [&](auto tag) {
    using T = LT_TAG_TYPE(tag);
    auto* p = static_cast<T*>(t.data);
    const auto v = static_cast<comp_t<T>>(value);
    if (contiguous(t)) {
      constexpr int V = vec_width<T>();
      launch_flat<V>(t.rows * t.cols, vec_aligned<T>(p, V), FillFlat<T>{p, v});
    } else {
      launch_rows(t.rows, t.cols, FillRows<T>{p, t.ld, v});
    }
  });
}

void fill_i32(std::int32_t* data, std::int64_t n, std::int32_t value) {
  constexpr int V = vec_width<std::int32_t>();
  launch_flat<V>(n, vec_aligned<std::int32_t>(data, V), FillI32{data, value});
}

void scale(const Matrix& t, double factor) {
  dispatch(t.dt, [&](auto tag) {
    using T = LT_TAG_TYPE(tag);
    auto* p = static_cast<T*>(t.data);
    const auto f = static_cast<comp_t<T>>(factor);
    if (contiguous(t)) {
      constexpr int V = vec_width<T>();
      launch_flat<V>(t.rows * t.cols, vec_aligned<T>(p, V), ScaleFlat<T>{p, f});
    } else {
      launch_rows(t.rows, t.cols, ScaleRows<T>{p, t.ld, f});
    }
  });
}

void add(Dt dst_dt, void* dst, Dt src_dt, const void* src, std::int64_t n, double alpha) {
  dispatch(dst_dt, [&](auto dtag) {
    using D = LT_TAG_TYPE(dtag);
    dispatch(src_dt, [&](auto stag) {
      using S = LT_TAG_TYPE(stag);
      constexpr int V = vec_width<D, S>();
      launch_flat<V>(n, vec_aligned<D>(dst, V) && vec_aligned<S>(src, V),
                     AddFlat<D, S>{static_cast<D*>(dst), static_cast<const S*>(src),
                                   static_cast<comp_t<D>>(alpha)});
    });
  });
}

void add_bias(const Matrix& y, const void* bias) {
  dispatch(y.dt, [&](auto tag) {
    using T = LT_TAG_TYPE(tag);
    launch_rows(y.rows, y.cols,
                AddBiasRows<T>{static_cast<T*>(y.data), y.ld, static_cast<const T*>(bias)});
  });
}

}  // namespace lt::cuda::launch
