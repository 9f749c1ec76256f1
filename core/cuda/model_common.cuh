// Device helpers shared by the model kernels (model_*.cu): element types and conversions that
// round exactly as the CPU backend does, vector access, deterministic warp and block reductions,
// dtype dispatch and error checks. Included only by nvcc.
#pragma once

#include <cuda_runtime.h>
#include <math_constants.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>

#include "core/cuda/check.h"
#include "core/cuda/model_launch.h"
#include "core/error.h"

// Kernel launches, dynamic and static shared memory, written so that the same source also runs
// under the host emulation of tests/sim (whose stand-in cuda_runtime.h defines LT_CUDA_SIM):
//   LT_LAUNCH(grid, block, smem, kernel)(args...)   kernel<<<grid, block, smem, stream()>>>(args)
//   LT_DYNAMIC_SMEM(name);                          extern __shared__ unsigned char name[]
//   LT_SHARED_ARRAY(T, name, n);                    __shared__ T name[n]
#ifdef LT_CUDA_SIM
#define LT_LAUNCH(grid, block, smem, ...) ::cudasim::launcher(__VA_ARGS__, grid, block, smem)
#define LT_DYNAMIC_SMEM(name) unsigned char* name = ::cudasim::block_smem()
#define LT_SHARED_ARRAY(T, name, n) \
  static char name##_tag_;          \
  T* name = ::cudasim::block_static<T>(&name##_tag_, n)
#else
#define LT_LAUNCH(grid, block, smem, ...) \
  __VA_ARGS__<<<grid, block, smem, ::lt::cuda::kern::stream()>>>
#define LT_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#define LT_SHARED_ARRAY(T, name, n) __shared__ T name[n]
#endif

namespace lt::cuda::kern {

// bf16 storage: the top half of an fp32 (same layout as lt::bf16).
struct bf16_t {
  unsigned short bits;
};

template <class T>
struct Compute {
  using type = T;
};
template <>
struct Compute<bf16_t> {
  using type = float;
};
template <class T>
using comp_t = typename Compute<T>::type;
// Statistics type (rstd, LSE): f64 for f64 data, else f32.
template <class T>
using stat_t = typename std::conditional<std::is_same<T, double>::value, double, float>::type;

__device__ __forceinline__ float to_c(bf16_t x) {
  return __uint_as_float(static_cast<unsigned>(x.bits) << 16);
}
__device__ __forceinline__ float to_c(float x) {
  return x;
}
__device__ __forceinline__ double to_c(double x) {
  return x;
}

// Round to nearest even; NaN stays a (quiet) NaN: the same bits as lt::bf16.
__device__ __forceinline__ bf16_t float_to_bf16(float f) {
  const unsigned u = __float_as_uint(f);
  bf16_t r;
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    r.bits = static_cast<unsigned short>((u >> 16) | 0x40u);
  } else {
    r.bits = static_cast<unsigned short>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  return r;
}

template <class T>
struct FromCompute;
template <>
struct FromCompute<float> {
  __device__ __forceinline__ static float apply(float v) { return v; }
};
template <>
struct FromCompute<double> {
  __device__ __forceinline__ static double apply(double v) { return v; }
};
template <>
struct FromCompute<bf16_t> {
  __device__ __forceinline__ static bf16_t apply(float v) { return float_to_bf16(v); }
};

template <class T>
__device__ __forceinline__ T from_c(comp_t<T> v) {
  return FromCompute<T>::apply(v);
}
// v rounded to T and widened back (identity for f32 and f64).
template <class T>
__device__ __forceinline__ comp_t<T> round_to(comp_t<T> v) {
  return to_c(from_c<T>(v));
}

// V consecutive elements moved as one access (16 bytes for the widths the host picks).
template <class T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

template <class T, int V>
__device__ __forceinline__ Vec<T, V> load_vec(const T* p) {
  return *reinterpret_cast<const Vec<T, V>*>(p);
}
template <class T, int V>
__device__ __forceinline__ void store_vec(T* p, const Vec<T, V>& x) {
  *reinterpret_cast<Vec<T, V>*>(p) = x;
}

__device__ __forceinline__ float neg_inf(float) {
  return -CUDART_INF_F;
}
__device__ __forceinline__ double neg_inf(double) {
  return -CUDART_INF;
}

__device__ __forceinline__ float exp_c(float x) {
  return expf(x);
}
__device__ __forceinline__ double exp_c(double x) {
  return exp(x);
}
__device__ __forceinline__ float log_c(float x) {
  return logf(x);
}
__device__ __forceinline__ double log_c(double x) {
  return log(x);
}
__device__ __forceinline__ float sqrt_c(float x) {
  return sqrtf(x);
}
__device__ __forceinline__ double sqrt_c(double x) {
  return sqrt(x);
}

// Butterfly sum over the warp: every lane gets the same value, in a fixed order.
template <class C>
__device__ __forceinline__ C warp_sum(C v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float max_c(float a, float b) {
  return fmaxf(a, b);
}
__device__ __forceinline__ double max_c(double a, double b) {
  return fmax(a, b);
}
template <class C>
__device__ __forceinline__ C warp_max(C v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = max_c(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block whose size is a multiple of 32 (at most 1024), in a fixed order; every thread
// gets the result. `scratch` holds 33 values of C in shared memory and may be reused right after.
template <class C>
__device__ __forceinline__ C block_sum(C v, C* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // earlier readers of scratch are done
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    C t = lane < warps ? scratch[lane] : C(0);
    t = warp_sum(t);
    if (lane == 0) scratch[32] = t;
  }
  __syncthreads();
  return scratch[32];
}

// After a launch: a bad configuration surfaces here, named after the op.
inline void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  LT_CHECK(e == cudaSuccess, what << ": CUDA launch failed: " << cudaGetErrorString(e));
}

// The stream every model kernel runs on: the legacy default stream, like every op of the CUDA
// backend (core/cuda/runtime.h), so work is ordered as issued and scratch may be freed at once.
inline cudaStream_t stream() {
  return cudaStreamLegacy;
}

template <class T>
struct Tag {
  using type = T;
};

// Calls f(Tag<T>{}) with T the device type of a floating dtype (C++17: generic lambdas take
// `auto tag` and use `typename decltype(tag)::type`).
template <class F>
void dispatch(launch::Dt dt, F&& f) {
  switch (dt) {
    case launch::Dt::f32:
      f(Tag<float>{});
      return;
    case launch::Dt::bf16:
      f(Tag<bf16_t>{});
      return;
    case launch::Dt::f64:
      f(Tag<double>{});
      return;
  }
  LT_CHECK(false, "unknown dtype " << static_cast<int>(dt));
}

#define LT_TAG_TYPE(tag) typename decltype(tag)::type

// True when p (bytes) and every row start (stride ld elements of size elem) are aligned to
// `bytes` and the row length `n` elements is a multiple of bytes / elem.
inline bool rows_aligned(const void* p, std::int64_t ld, std::int64_t n, std::size_t elem,
                         std::size_t bytes) {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  const std::int64_t per = static_cast<std::int64_t>(bytes / elem);
  return per >= 1 && addr % bytes == 0 && (ld * static_cast<std::int64_t>(elem)) % bytes == 0 &&
         n % per == 0;
}

// Opts a kernel into more than the default 48 KiB of dynamic shared memory.
template <class K>
void set_smem(K kernel, std::size_t bytes) {
  if (bytes > 48 * 1024) {
    LT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(bytes)));
  }
}

inline unsigned ceil_div(std::int64_t a, std::int64_t b) {
  return static_cast<unsigned>((a + b - 1) / b);
}

// Threads for a per-row loop over n items: a multiple of 32 in [32, cap].
inline int row_threads(std::int64_t n, int cap) {
  int t = 32;
  while (t < cap && t < n) t *= 2;
  return t;
}

}  // namespace lt::cuda::kern
