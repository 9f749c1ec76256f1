// Row-wise model kernels: RMSNorm forward and backward, RoPE, SwiGLU forward and backward.
// Memory-bound: 16-byte accesses where the rows allow (V elements per access), fp32 arithmetic
// for bf16, one block per row (RMSNorm) or a 2D grid of rows x column vectors (the rest).
// No __restrict__: outputs may alias inputs row for row (in-place use), as on the CPU.
#include "core/cuda/model_common.cuh"

namespace lt::cuda::kern {
namespace {

// Elements per 16-byte access for T, or 1 when the rows are not aligned for it.
template <class T>
int vec_width(std::initializer_list<std::pair<const void*, std::int64_t>> rows, std::int64_t n) {
  const int v = static_cast<int>(16 / sizeof(T));
  for (const auto& r : rows) {
    if (!rows_aligned(r.first, r.second, n, sizeof(T), 16)) return 1;
  }
  return v;
}

// ---------------------------------------------------------------- RMSNorm forward
template <class T, int V>
__global__ void rmsnorm_forward_kernel(const T* x, std::int64_t ldx, const T* w, T* y,
                                       std::int64_t ldy, stat_t<T>* rstd, std::int64_t dim,
                                       double eps) {
  using C = comp_t<T>;
  LT_SHARED_ARRAY(C, scratch, 33);
  const std::int64_t r = blockIdx.x;
  const T* xr = x + r * ldx;
  T* yr = y + r * ldy;
  const std::int64_t nv = dim / V;
  C ss = 0;
  for (std::int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
    const Vec<T, V> a = load_vec<T, V>(xr + i * V);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const C v = to_c(a.v[k]);
      ss += v * v;
    }
  }
  ss = block_sum(ss, scratch);
  const C inv = C(1) / sqrt_c(ss / static_cast<C>(dim) + static_cast<C>(eps));
  if (threadIdx.x == 0) rstd[r] = static_cast<stat_t<T>>(inv);
  for (std::int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
    const Vec<T, V> a = load_vec<T, V>(xr + i * V);
    const Vec<T, V> b = load_vec<T, V>(w + i * V);
    Vec<T, V> o;
#pragma unroll
    for (int k = 0; k < V; ++k) o.v[k] = from_c<T>(to_c(a.v[k]) * inv * to_c(b.v[k]));
    store_vec<T, V>(yr + i * V, o);
  }
}

// ---------------------------------------------------------------- RMSNorm backward
// One block per chunk of rows. Each thread owns the same columns in every row, so its per-column
// partial sums of dy * xhat (in shared memory) accumulate in row order; the chunks' partials are
// then added into dweight in chunk order by rmsnorm_dweight_kernel. Shared partials are laid out
// [k][i] for column i * V + k, so a warp's accesses fall in distinct banks.
template <class T, int V>
__global__ void rmsnorm_backward_kernel(const T* dy, std::int64_t ldg, const T* x, std::int64_t ldx,
                                        const T* w, const stat_t<T>* rstd, T* dx, std::int64_t ldd,
                                        bool accumulate, comp_t<T>* partial, std::int64_t rows,
                                        std::int64_t dim, std::int64_t chunk_rows) {
  using C = comp_t<T>;
  LT_DYNAMIC_SMEM(smem_raw);
  C* pw = reinterpret_cast<C*>(smem_raw);
  LT_SHARED_ARRAY(C, scratch, 33);
  const std::int64_t nv = dim / V;
  for (std::int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
#pragma unroll
    for (int k = 0; k < V; ++k) pw[k * nv + i] = C(0);
  }
  const std::int64_t r0 = static_cast<std::int64_t>(blockIdx.x) * chunk_rows;
  const std::int64_t r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
  for (std::int64_t r = r0; r < r1; ++r) {
    const C inv = static_cast<C>(rstd[r]);
    const T* gr = dy + r * ldg;
    const T* xr = x + r * ldx;
    C dot = 0;
    for (std::int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
      const Vec<T, V> g = load_vec<T, V>(gr + i * V);
      const Vec<T, V> a = load_vec<T, V>(xr + i * V);
      const Vec<T, V> b = load_vec<T, V>(w + i * V);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const C xhat = to_c(a.v[k]) * inv;
        const C gv = to_c(g.v[k]);
        pw[k * nv + i] += gv * xhat;
        dot += gv * to_c(b.v[k]) * xhat;
      }
    }
    dot = block_sum(dot, scratch);
    const C mean_dot = dot / static_cast<C>(dim);
    T* dr = dx + r * ldd;
    for (std::int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
      const Vec<T, V> g = load_vec<T, V>(gr + i * V);
      const Vec<T, V> a = load_vec<T, V>(xr + i * V);
      const Vec<T, V> b = load_vec<T, V>(w + i * V);
      Vec<T, V> o;
      if (accumulate) o = load_vec<T, V>(dr + i * V);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const C xhat = to_c(a.v[k]) * inv;
        const C gw = to_c(g.v[k]) * to_c(b.v[k]);
        C v = inv * (gw - xhat * mean_dot);
        if (accumulate) v += to_c(o.v[k]);
        o.v[k] = from_c<T>(v);
      }
      store_vec<T, V>(dr + i * V, o);
    }
  }
  C* out = partial + static_cast<std::int64_t>(blockIdx.x) * dim;
  for (std::int64_t i = threadIdx.x; i < nv; i += blockDim.x) {
    Vec<C, V> o;
#pragma unroll
    for (int k = 0; k < V; ++k) o.v[k] = pw[k * nv + i];
    store_vec<C, V>(out + i * V, o);  // dim % V == 0 and the buffer is 256-byte aligned
  }
}

// dweight[c] += partial[k][c] for k = 0, 1, ... in order, rounding to G after each add (as the
// CPU backend does).
template <class C, class G>
__global__ void rmsnorm_dweight_kernel(const C* partial, std::int64_t chunks, std::int64_t dim,
                                       G* dweight) {
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= dim) return;
  using CG = comp_t<G>;
  CG acc = to_c(dweight[c]);
  for (std::int64_t k = 0; k < chunks; ++k)
    acc = round_to<G>(acc + static_cast<CG>(partial[k * dim + c]));
  dweight[c] = from_c<G>(acc);
}

// ---------------------------------------------------------------- RoPE
// One block row of threads per x row; thread items are V consecutive pair indices of one head.
template <class T, int V>
__global__ void rope_kernel(T* x, std::int64_t ldx, std::int64_t rows, std::int64_t heads,
                            std::int64_t half, const std::int32_t* positions, const float* cos_t,
                            const float* sin_t, std::int64_t table_ld, float sign) {
  using C = comp_t<T>;
  const std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  if (r >= rows) return;
  const std::int64_t per_head = half / V, items = heads * per_head;
  const std::int64_t pos = positions[r];
  const float* cr = cos_t + pos * table_ld;
  const float* sr = sin_t + pos * table_ld;
  T* xr = x + r * ldx;
  for (std::int64_t it = static_cast<std::int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
       it < items; it += static_cast<std::int64_t>(gridDim.y) * blockDim.x) {
    const std::int64_t h = it / per_head, i = (it % per_head) * V;
    T* v = xr + h * 2 * half + i;
    const Vec<T, V> a = load_vec<T, V>(v);
    const Vec<T, V> b = load_vec<T, V>(v + half);
    Vec<T, V> oa, ob;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const C x1 = to_c(a.v[k]), x2 = to_c(b.v[k]);
      const C ci = static_cast<C>(cr[i + k]), si = static_cast<C>(sign * sr[i + k]);
      oa.v[k] = from_c<T>(x1 * ci - x2 * si);
      ob.v[k] = from_c<T>(x2 * ci + x1 * si);
    }
    store_vec<T, V>(v, oa);
    store_vec<T, V>(v + half, ob);
  }
}

// ---------------------------------------------------------------- SwiGLU
template <class C>
__device__ __forceinline__ C sigmoid(C x) {
  return C(1) / (C(1) + exp_c(-x));
}

template <class T, int V>
__global__ void swiglu_forward_kernel(const T* gu, std::int64_t ldg, T* out, std::int64_t ldo,
                                      std::int64_t rows, std::int64_t f) {
  using C = comp_t<T>;
  const std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  if (r >= rows) return;
  const T* g = gu + r * ldg;
  const T* u = g + f;
  T* o = out + r * ldo;
  const std::int64_t nv = f / V;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; i < nv;
       i += static_cast<std::int64_t>(gridDim.y) * blockDim.x) {
    const Vec<T, V> a = load_vec<T, V>(g + i * V);
    const Vec<T, V> b = load_vec<T, V>(u + i * V);
    Vec<T, V> c;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const C gv = to_c(a.v[k]);
      c.v[k] = from_c<T>(gv * sigmoid(gv) * to_c(b.v[k]));
    }
    store_vec<T, V>(o + i * V, c);
  }
}

template <class T, int V>
__global__ void swiglu_backward_kernel(const T* dout, std::int64_t ldd, const T* gu,
                                       std::int64_t ldg, T* dgu, std::int64_t ldr,
                                       std::int64_t rows, std::int64_t f) {
  using C = comp_t<T>;
  const std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  if (r >= rows) return;
  const T* g = gu + r * ldg;
  const T* u = g + f;
  const T* d = dout + r * ldd;
  T* dg = dgu + r * ldr;
  T* du = dg + f;
  const std::int64_t nv = f / V;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; i < nv;
       i += static_cast<std::int64_t>(gridDim.y) * blockDim.x) {
    const Vec<T, V> ga = load_vec<T, V>(g + i * V);
    const Vec<T, V> ua = load_vec<T, V>(u + i * V);
    const Vec<T, V> da = load_vec<T, V>(d + i * V);
    Vec<T, V> og, ou;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      const C gv = to_c(ga.v[k]), uv = to_c(ua.v[k]), dv = to_c(da.v[k]);
      const C sg = sigmoid(gv);
      const C silu = gv * sg;
      ou.v[k] = from_c<T>(dv * silu);
      og.v[k] = from_c<T>(dv * uv * sg * (C(1) + gv * (C(1) - sg)));
    }
    store_vec<T, V>(du + i * V, ou);
    store_vec<T, V>(dg + i * V, og);
  }
}

// 2D launch over rows x column items: blockDim (tx, ty), grid (row blocks, column blocks).
struct RowGrid {
  dim3 grid, block;
};
inline RowGrid row_grid(std::int64_t rows, std::int64_t items) {
  const int tx = row_threads(items, 256);
  const int ty = 256 / tx;
  RowGrid g;
  g.block = dim3(static_cast<unsigned>(tx), static_cast<unsigned>(ty));
  const unsigned cols = ceil_div(items, tx);
  g.grid = dim3(ceil_div(rows, ty), cols < 65535u ? cols : 65535u);
  return g;
}

}  // namespace
}  // namespace lt::cuda::kern

namespace lt::cuda::launch {

void rmsnorm_forward(Dt dt, const void* x, std::int64_t ldx, const void* weight, void* y,
                     std::int64_t ldy, void* rstd, std::int64_t rows, std::int64_t dim,
                     double eps) {
  using namespace kern;
  if (rows == 0) return;
  dispatch(dt, [&](auto tag) {
    using T = LT_TAG_TYPE(tag);
    const int v = vec_width<T>({{x, ldx}, {weight, 0}, {y, ldy}}, dim);
    const int threads = row_threads(dim / v, 256);
    auto run = [&](auto kernel) {
      LT_LAUNCH(static_cast<unsigned>(rows), threads, 0, kernel)
      (static_cast<const T*>(x), ldx, static_cast<const T*>(weight), static_cast<T*>(y), ldy,
       static_cast<stat_t<T>*>(rstd), dim, eps);
    };
    if (v == 1) {
      run(rmsnorm_forward_kernel<T, 1>);
    } else {
      run(rmsnorm_forward_kernel<T, 16 / sizeof(T)>);
    }
  });
  check_launch("rmsnorm_forward");
}

void rmsnorm_backward(Dt dt, const void* dy, std::int64_t ldg, const void* x, std::int64_t ldx,
                      const void* weight, const void* rstd, void* dx, std::int64_t ldd,
                      bool accumulate_dx, Dt dweight_dt, void* dweight, std::int64_t rows,
                      std::int64_t dim, void* partial) {
  using namespace kern;
  if (rows == 0 || dim == 0) return;
  const std::int64_t chunk_rows = rmsnorm_chunk_rows(rows), chunks = rmsnorm_chunks(rows);
  dispatch(dt, [&](auto tag) {
    using T = LT_TAG_TYPE(tag);
    using C = comp_t<T>;
    const int v = vec_width<T>({{dy, ldg}, {x, ldx}, {weight, 0}, {dx, ldd}}, dim);
    const int threads = row_threads(dim / v, 256);
    const std::size_t smem = static_cast<std::size_t>(dim) * sizeof(C);
    LT_CHECK(smem <= max_shared_memory_per_block(), "rmsnorm_backward: dim "
                                                        << dim << " needs " << smem
                                                        << " bytes of shared memory per block");
    auto run = [&](auto kernel) {
      if (smem > 48 * 1024) {
        LT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           static_cast<int>(smem)));
      }
      LT_LAUNCH(static_cast<unsigned>(chunks), threads, smem, kernel)
      (static_cast<const T*>(dy), ldg, static_cast<const T*>(x), ldx, static_cast<const T*>(weight),
       static_cast<const stat_t<T>*>(rstd), static_cast<T*>(dx), ldd, accumulate_dx,
       static_cast<C*>(partial), rows, dim, chunk_rows);
    };
    if (v == 1) {
      run(rmsnorm_backward_kernel<T, 1>);
    } else {
      run(rmsnorm_backward_kernel<T, 16 / sizeof(T)>);
    }
    check_launch("rmsnorm_backward");
    dispatch(dweight_dt, [&](auto gtag) {
      using G = LT_TAG_TYPE(gtag);
      LT_LAUNCH(ceil_div(dim, 256), 256, 0, rmsnorm_dweight_kernel<C, G>)
      (static_cast<const C*>(partial), chunks, dim, static_cast<G*>(dweight));
    });
    check_launch("rmsnorm_backward (weight gradient)");
  });
}

void rope_apply(Dt dt, void* x, std::int64_t ldx, std::int64_t rows, std::int64_t width,
                std::int64_t head_dim, const std::int32_t* positions, const float* cos_table,
                const float* sin_table, std::int64_t table_ld, bool inverse) {
  using namespace kern;
  const std::int64_t half = head_dim / 2, heads = width / head_dim;
  if (rows == 0 || half == 0 || heads == 0) return;
  const float sign = inverse ? -1.0f : 1.0f;
  dispatch(dt, [&](auto tag) {
    using T = LT_TAG_TYPE(tag);
    // Both halves of every head must be 16-byte aligned: half a multiple of the vector width.
    const int v = vec_width<T>({{x, ldx}}, width) > 1 && half % (16 / sizeof(T)) == 0
                      ? static_cast<int>(16 / sizeof(T))
                      : 1;
    const RowGrid g = row_grid(rows, heads * (half / v));
    auto run = [&](auto kernel) {
      LT_LAUNCH(g.grid, g.block, 0, kernel)
      (static_cast<T*>(x), ldx, rows, heads, half, positions, cos_table, sin_table, table_ld, sign);
    };
    if (v == 1) {
      run(rope_kernel<T, 1>);
    } else {
      run(rope_kernel<T, 16 / sizeof(T)>);
    }
  });
  check_launch("rope_apply");
}

void swiglu_forward(Dt dt, const void* gate_up, std::int64_t ldg, void* out, std::int64_t ldo,
                    std::int64_t rows, std::int64_t f) {
  using namespace kern;
  if (rows == 0 || f == 0) return;
  dispatch(dt, [&](auto tag) {
    using T = LT_TAG_TYPE(tag);
    // The up half starts f elements after the gate half: f must keep the alignment too.
    const int v = vec_width<T>({{gate_up, ldg}, {out, ldo}}, f);
    const RowGrid g = row_grid(rows, f / v);
    auto run = [&](auto kernel) {
      LT_LAUNCH(g.grid, g.block, 0, kernel)
      (static_cast<const T*>(gate_up), ldg, static_cast<T*>(out), ldo, rows, f);
    };
    if (v == 1) {
      run(swiglu_forward_kernel<T, 1>);
    } else {
      run(swiglu_forward_kernel<T, 16 / sizeof(T)>);
    }
  });
  check_launch("swiglu_forward");
}

void swiglu_backward(Dt dt, const void* dout, std::int64_t ldd, const void* gate_up,
                     std::int64_t ldg, void* dgate_up, std::int64_t ldr, std::int64_t rows,
                     std::int64_t f) {
  using namespace kern;
  if (rows == 0 || f == 0) return;
  dispatch(dt, [&](auto tag) {
    using T = LT_TAG_TYPE(tag);
    const int v = vec_width<T>({{dout, ldd}, {gate_up, ldg}, {dgate_up, ldr}}, f);
    const RowGrid g = row_grid(rows, f / v);
    auto run = [&](auto kernel) {
      LT_LAUNCH(g.grid, g.block, 0, kernel)
      (static_cast<const T*>(dout), ldd, static_cast<const T*>(gate_up), ldg,
       static_cast<T*>(dgate_up), ldr, rows, f);
    };
    if (v == 1) {
      run(swiglu_backward_kernel<T, 1>);
    } else {
      run(swiglu_backward_kernel<T, 16 / sizeof(T)>);
    }
  });
  check_launch("swiglu_backward");
}

}  // namespace lt::cuda::launch
