// The flash-attention kernels' tensor-core primitives on the host emulation of tests/sim/simt.h:
// cp.async copies at once; ldmatrix.x4 (plain and .trans) and mma.m16n8k16 follow the PTX ISA's
// fragment tables, written here independently of core/cuda/flash_layout.h; quad reductions are
// shuffles. With LT_CUDA_SIM_FULL (the whole backend under emulation, tests/sim/include) the
// framework's own bf16_t is used.
//
// Include this first, then the kernel headers; launch a kernel with cudasim::launch.
#pragma once

#define LT_FLASH_SIM 1

#include "core/cuda/flash_layout.h"
#include "core/dtype.h"
#include "tests/sim/simt.h"

#define LT_FLASH_SMEM(name) unsigned char* name = ::cudasim::block_smem()

namespace cudasim {
// The framework's own bf16 conversions (core/dtype.h: round to nearest even).
inline float bf16_to_float(std::uint16_t b) {
  lt::bf16 x;
  x.bits = b;
  return static_cast<float>(x);
}
inline std::uint16_t float_to_bf16(float f) {
  return lt::bf16::round_from_float(f);
}
}  // namespace cudasim

#ifndef LT_CUDA_SIM_FULL
#define CUDART_INF_F (std::numeric_limits<float>::infinity())
namespace lt::cuda::kern {
using std::max;
using std::min;
struct bf16_t {
  unsigned short bits;
};
}  // namespace lt::cuda::kern
#endif

namespace lt::cuda::flash {
using std::max;
using std::min;

inline std::uint32_t smem_address(const void* p) {
  return static_cast<std::uint32_t>(static_cast<const unsigned char*>(p) - cudasim::block_smem());
}
inline void cp_async_16(std::uint32_t dst, const void* src, bool valid) {
  unsigned char* d = cudasim::block_smem() + dst;
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
  const auto addr = cudasim::warp_exchange<1>({address});
  const int l = cudasim::lane_id(), g = l / 4, q = l % 4;
  auto element = [&](int m, int row, int col) {
    std::uint16_t v;
    std::memcpy(
        &v, cudasim::block_smem() + addr[static_cast<std::size_t>(8 * m + row)][0] + 2 * col, 2);
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
  const auto all = cudasim::warp_exchange<6>({a[0], a[1], a[2], a[3], b0, b1});
  float A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    const auto& v = all[static_cast<std::size_t>(l)];
    for (int e = 0; e < 2; ++e) {
      auto half = [&](std::uint32_t w) {
        return cudasim::bf16_to_float(static_cast<std::uint16_t>(w >> (16 * e)));
      };
      A[g][2 * t + e] = half(v[0]);
      A[g + 8][2 * t + e] = half(v[1]);
      A[g][2 * t + 8 + e] = half(v[2]);
      A[g + 8][2 * t + 8 + e] = half(v[3]);
      B[2 * t + e][g] = half(v[4]);
      B[2 * t + 8 + e][g] = half(v[5]);
    }
  }
  const int l = cudasim::lane_id(), g = l / 4, t = l % 4;
  for (int e = 0; e < 4; ++e) {
    const int row = g + 8 * (e / 2), col = 2 * t + e % 2;
    float sum = d[e];
    for (int k = 0; k < 16; ++k) sum += A[row][k] * B[k][col];
    d[e] = sum;
  }
}

inline std::uint32_t pack_bf16(float lo, float hi) {
  return static_cast<std::uint32_t>(cudasim::float_to_bf16(lo)) |
         (static_cast<std::uint32_t>(cudasim::float_to_bf16(hi)) << 16);
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
