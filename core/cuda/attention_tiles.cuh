// Which query/key tiles of attention can see each other, shared by the simple CUDA-core kernels
// (model_attention.cu) and the tensor-core flash kernels (flash_*.cu). Tiles are summarized by
// the order/doc ranges of their granules (model_launch.h: kAttnGranule tokens each), so a block
// skips a tile no query can see and drops the per-element mask on a tile every query sees whole.
#pragma once

#include <climits>
#include <cstdint>

#include "core/cuda/attention_visibility.h"
#include "core/cuda/model_launch.h"

namespace lt::cuda::kern {

constexpr int kGran = static_cast<int>(launch::kAttnGranule);

// Order/doc range of tokens [t0, t1) of one sequence from its granules ({omin, omax, dmin,
// dmax} per kGran tokens). t0 is a multiple of kGran.
__device__ inline Range tile_range(const std::int32_t* gran, std::int64_t t0, std::int64_t t1) {
  Range r{INT_MAX, INT_MIN, INT_MAX, INT_MIN};
  for (std::int64_t g = t0 / kGran; g <= (t1 - 1) / kGran; ++g) {
    const std::int32_t* q = gran + 4 * g;
    r.omin = min(r.omin, q[0]);
    r.omax = max(r.omax, q[1]);
    r.dmin = min(r.dmin, q[2]);
    r.dmax = max(r.dmax, q[3]);
  }
  return r;
}

// Order and document of tokens [t0, t0 + n) of sequence b into shared memory (rows past n get
// 0); a null order means the index within the sequence, a null doc one document.
template <int THREADS>
__device__ inline void load_tokens(int* s_order, int* s_doc, int rows, int n,
                                   const std::int32_t* order, const std::int32_t* doc,
                                   std::int64_t b, std::int64_t len, std::int64_t t0) {
  for (int i = threadIdx.x; i < rows; i += THREADS) {
    const std::int64_t t = b * len + t0 + i;
    s_order[i] = i < n ? (order ? order[t] : static_cast<int>(t0 + i)) : 0;
    s_doc[i] = i < n ? (doc ? doc[t] : 0) : 0;
  }
}

}  // namespace lt::cuda::kern
