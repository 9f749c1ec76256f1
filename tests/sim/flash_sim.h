// A host emulation of the CUDA features the flash-attention kernels use, so that their own source
// (core/cuda/flash_*_kernel.cuh) runs on a machine without a GPU: every thread of a block is a
// std::thread; __syncthreads is a barrier over the block; warp-collective operations (shuffles,
// ldmatrix, mma) exchange values through per-warp slots between two barriers; cp.async copies at
// once; shared memory is one buffer per block, and "shared addresses" are offsets into it.
// ldmatrix.x4 (plain and .trans) and mma.m16n8k16 follow the PTX ISA's fragment tables, written
// here independently of core/cuda/flash_layout.h. Slow (thousands of thread switches per tile):
// for small shapes only.
//
// Include this first, then the kernel headers; launch a kernel with sim::launch.
#pragma once

#define LT_FLASH_SIM 1

#include <algorithm>
#include <array>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "core/cuda/flash_layout.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define CUDART_INF_F (std::numeric_limits<float>::infinity())
#define LT_FLASH_SMEM(name) unsigned char* name = ::lt::sim::block_smem()

struct SimDim3 {
  unsigned x = 0, y = 0, z = 0;
};
inline thread_local SimDim3 threadIdx;
inline SimDim3 blockIdx;
inline SimDim3 gridDim;

struct float2 {
  float x, y;
};
inline float2 make_float2(float x, float y) {
  return {x, y};
}

namespace lt::sim {

struct Block {
  int threads = 0;
  std::vector<unsigned char> smem;
  std::unique_ptr<std::barrier<>> all;
  std::vector<std::unique_ptr<std::barrier<>>> warp;
  std::vector<std::array<std::array<std::uint32_t, 8>, 32>> slots;  // per warp, per lane
};
inline Block* g_block = nullptr;

inline unsigned char* block_smem() {
  return g_block->smem.data();
}
inline int lane_id() {
  return static_cast<int>(threadIdx.x) & 31;
}
inline int warp_id() {
  return static_cast<int>(threadIdx.x) >> 5;
}

// Every lane of the warp puts `words` values in its slot; returns all 32 lanes' (after a barrier;
// a second barrier keeps the slots until every lane has read them).
template <std::size_t N>
std::array<std::array<std::uint32_t, N>, 32> warp_exchange(const std::array<std::uint32_t, N>& v) {
  auto& slots = g_block->slots[static_cast<std::size_t>(warp_id())];
  for (std::size_t i = 0; i < N; ++i) slots[static_cast<std::size_t>(lane_id())][i] = v[i];
  g_block->warp[static_cast<std::size_t>(warp_id())]->arrive_and_wait();
  std::array<std::array<std::uint32_t, N>, 32> all{};
  for (std::size_t l = 0; l < 32; ++l)
    for (std::size_t i = 0; i < N; ++i) all[l][i] = slots[l][i];
  g_block->warp[static_cast<std::size_t>(warp_id())]->arrive_and_wait();
  return all;
}

inline std::uint32_t bits_of(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float float_of(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float bf16_to_float(std::uint16_t b) {
  return float_of(static_cast<std::uint32_t>(b) << 16);
}
inline std::uint16_t float_to_bf16(float f) {  // round to nearest even (finite inputs)
  const std::uint32_t u = bits_of(f);
  return static_cast<std::uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// Runs kernel() on every thread of every block of the grid (blocks one after another).
inline void launch(SimDim3 grid, int threads, std::size_t smem_bytes,
                   const std::function<void()>& kernel) {
  gridDim = grid;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        Block block;
        block.threads = threads;
        block.smem.assign(smem_bytes, 0xCD);  // garbage, as on a GPU
        block.all = std::make_unique<std::barrier<>>(threads);
        for (int w = 0; w < threads / 32; ++w)
          block.warp.push_back(std::make_unique<std::barrier<>>(32));
        block.slots.resize(static_cast<std::size_t>(threads / 32));
        g_block = &block;
        blockIdx = {x, y, z};
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) {
          pool.emplace_back([t, &kernel] {
            threadIdx = {static_cast<unsigned>(t), 0, 0};
            kernel();
          });
        }
        for (auto& th : pool) th.join();
        g_block = nullptr;
      }
}

}  // namespace lt::sim

inline void __syncthreads() {
  lt::sim::g_block->all->arrive_and_wait();
}

inline float __shfl_xor_sync(unsigned, float v, int mask) {
  const auto all = lt::sim::warp_exchange<1>({lt::sim::bits_of(v)});
  return lt::sim::float_of(all[static_cast<std::size_t>(lt::sim::lane_id() ^ mask)][0]);
}

namespace lt::cuda::kern {
using std::max;
using std::min;
struct bf16_t {
  unsigned short bits;
};
}  // namespace lt::cuda::kern

namespace lt::cuda::flash {
using std::max;
using std::min;

inline std::uint32_t smem_address(const void* p) {
  return static_cast<std::uint32_t>(static_cast<const unsigned char*>(p) - sim::block_smem());
}
inline void cp_async_16(std::uint32_t dst, const void* src, bool valid) {
  unsigned char* d = sim::block_smem() + dst;
  if (valid) {
    std::memcpy(d, src, 16);
  } else {
    std::memset(d, 0, 16);
  }
}
inline void cp_async_commit() {}
template <int pending>
inline void cp_async_wait() {}

// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16: lanes 8i..8i+7 hold the row addresses of
// matrix i; lane l receives, of each matrix, row l/4 and columns 2(l%4), 2(l%4)+1 (.trans: the
// transpose's), low half first.
inline void ldmatrix_any(std::uint32_t (&r)[4], std::uint32_t address, bool trans) {
  const auto addr = sim::warp_exchange<1>({address});
  const int l = sim::lane_id(), g = l / 4, q = l % 4;
  auto element = [&](int m, int row, int col) {
    std::uint16_t v;
    std::memcpy(&v, sim::block_smem() + addr[static_cast<std::size_t>(8 * m + row)][0] + 2 * col,
                2);
    return static_cast<std::uint32_t>(v);
  };
  for (int m = 0; m < 4; ++m) {
    const std::uint32_t lo = trans ? element(m, 2 * q, g) : element(m, g, 2 * q);
    const std::uint32_t hi = trans ? element(m, 2 * q + 1, g) : element(m, g, 2 * q + 1);
    r[m] = lo | (hi << 16);
  }
}
inline void ldmatrix_x4(std::uint32_t (&r)[4], std::uint32_t address) {
  ldmatrix_any(r, address, false);
}
inline void ldmatrix_x4_trans(std::uint32_t (&r)[4], std::uint32_t address) {
  ldmatrix_any(r, address, true);
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, from the ISA's fragment tables.
inline void mma_bf16(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                     std::uint32_t b1) {
  const auto all = sim::warp_exchange<6>({a[0], a[1], a[2], a[3], b0, b1});
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    const auto& v = all[static_cast<std::size_t>(l)];
    for (int e = 0; e < 2; ++e) {
      auto half = [&](std::uint32_t w) {
        return sim::bf16_to_float(static_cast<std::uint16_t>(w >> (16 * e)));
      };
      A[g][2 * t + e] = half(v[0]);
      A[g + 8][2 * t + e] = half(v[1]);
      A[g][2 * t + 8 + e] = half(v[2]);
      A[g + 8][2 * t + 8 + e] = half(v[3]);
      B[2 * t + e][g] = half(v[4]);
      B[2 * t + 8 + e][g] = half(v[5]);
    }
  }
  const int l = sim::lane_id(), g = l / 4, t = l % 4;
  for (int e = 0; e < 4; ++e) {
    const int row = g + 8 * (e / 2), col = 2 * t + e % 2;
    float sum = d[e];
    for (int k = 0; k < 16; ++k) sum += A[row][k] * B[k][col];
    d[e] = sum;
  }
}

inline std::uint32_t pack_bf16(float lo, float hi) {
  return static_cast<std::uint32_t>(sim::float_to_bf16(lo)) |
         (static_cast<std::uint32_t>(sim::float_to_bf16(hi)) << 16);
}

inline float quad_max(float v) {
  v = std::fmax(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return std::fmax(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
inline float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

}  // namespace lt::cuda::flash
