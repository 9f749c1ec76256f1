// Shared-memory tiles of the flash-attention kernels (flash_forward.cu, flash_backward.cu):
// padded bf16 tiles filled by cp.async, the walk over the key (or query) tiles a block can see,
// and fragment-pair stores. Included by nvcc, and by the host emulation of the kernels
// (tests/sim/flash_sim.h, which defines LT_FLASH_SIM).
#pragma once

#include <cstdint>

#include "core/cuda/attention_tiles.cuh"
#ifdef LT_FLASH_SIM
// tests/sim/flash_sim.h, included first, emulates the primitives on the host (and, with the whole
// backend under emulation, the CUDA runtime too).
#ifdef LT_CUDA_SIM_FULL
#include "core/cuda/model_common.cuh"
#endif
#else
#include "core/cuda/flash_mma.cuh"
#include "core/cuda/model_common.cuh"
// The block's dynamic shared memory (the host emulation gives each simulated block its own).
#define LT_FLASH_SMEM(name) LT_DYNAMIC_SMEM(name)
#endif

namespace lt::cuda::flash {

using kern::bf16_t;
using kern::Range;

// Threads of a block unless a kernel says otherwise (4 warps).
constexpr int kThreads = 128;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Byte address of element (row, col) of a padded tile starting at `base` (a shared address).
template <int D>
__device__ __forceinline__ std::uint32_t at(std::uint32_t base, int row, int col) {
  return base + static_cast<std::uint32_t>((row * row_stride<D>() + col) * 2);
}

// Starts copying rows [0, ROWS) of a tile into shared memory (padded rows of D bf16): tile row i
// is global row row0 + i of `src` (row stride ld, columns [col0, col0 + D)) when i < n, else
// zeros. The caller commits the group. src, ld and col0 keep every row 16-byte aligned.
template <int ROWS, int D, int THREADS = kThreads>
__device__ __forceinline__ void load_tile_async(bf16_t* tile, const bf16_t* src, std::int64_t ld,
                                                std::int64_t row0, int n, std::int64_t col0) {
  constexpr int kChunks = D / 8;  // 16-byte chunks per row
  constexpr int kTotal = ROWS * kChunks;
  static_assert(kTotal % THREADS == 0, "tile not a whole number of chunks per thread");
  const std::uint32_t base = smem_address(tile);
#pragma unroll
  for (int i = 0; i < kTotal / THREADS; ++i) {
    const int e = i * THREADS + static_cast<int>(threadIdx.x);
    const int r = e / kChunks, c = (e % kChunks) * 8;
    const bool valid = r < n;
    const bf16_t* from = valid ? src + (row0 + r) * ld + col0 + c : src;
    cp_async_16(at<D>(base, r, c), from, valid);
  }
}

// The tiles of TILE tokens of one sequence (granules `gran`, `len` tokens) that the tokens
// summarized by `other` can see, in order: next(from) is the first visible tile start >= from,
// or len when none is left. Uniform over the block.
template <int TILE>
struct VisibleTiles {
  const std::int32_t* gran;
  std::int64_t len;
  Range other;
  bool causal;
  bool other_is_query;  // other holds the queries (walking keys) or the keys (walking queries)

  __device__ Range range(std::int64_t t0) const {
    return kern::tile_range(gran, t0, min(t0 + TILE, len));
  }
  __device__ std::int64_t next(std::int64_t from) const {
    for (std::int64_t t0 = from; t0 < len; t0 += TILE) {
      const Range r = range(t0);
      const bool none = other_is_query ? kern::none_visible(other, r, causal)
                                       : kern::none_visible(r, other, causal);
      if (!none) return t0;
    }
    return len;
  }
  // Every token of the tile at t0 (TILE of them) sees, or is seen by, every token of `other`.
  __device__ bool whole(std::int64_t t0) const {
    if (t0 + TILE > len) return false;
    const Range r = range(t0);
    return other_is_query ? kern::all_visible(other, r, causal)
                          : kern::all_visible(r, other, causal);
  }
};

// Two adjacent row elements of a C fragment to global memory (f32 or bf16, 8- or 4-byte aligned).
__device__ __forceinline__ void store_pair(float* p, float x, float y) {
  *reinterpret_cast<float2*>(p) = make_float2(x, y);
}
__device__ __forceinline__ void store_pair(bf16_t* p, float x, float y) {
  *reinterpret_cast<std::uint32_t*>(p) = pack_bf16(x, y);
}

// A operand of a 16 x 16 block from two adjacent 16 x 8 C fragments (FA2's register reuse: the
// scores of one MMA are the left operand of the next). c0 holds columns 0-7, c1 columns 8-15.
__device__ __forceinline__ void c_to_a(std::uint32_t (&a)[4], const float (&c0)[4],
                                       const float (&c1)[4]) {
#pragma unroll
  for (int r = 0; r < 4; ++r) {
    const float* c = c_to_a_fragment(r) == 0 ? c0 : c1;
    a[r] = pack_bf16(c[c_to_a_element(r)], c[c_to_a_element(r) + 1]);
  }
}

}  // namespace lt::cuda::flash
