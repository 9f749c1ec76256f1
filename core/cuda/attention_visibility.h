// Visibility of attention tiles from their order/doc ranges (attention_tiles.cuh summarizes a
// tile's tokens as a Range from its granules): shared by the simple and the flash CUDA kernels,
// free of CUDA headers so the host tests (tests/test_flash_layout.cpp) check the rules against
// every query/key pair.
#pragma once

#ifdef __CUDACC__
#define LT_ATTN_HD __host__ __device__ __forceinline__
#else
#define LT_ATTN_HD inline
#endif

namespace lt::cuda::kern {

// The smallest and largest causal order and document of a tile's tokens.
struct Range {
  int omin, omax, dmin, dmax;
};

// No query of q sees any key of k.
LT_ATTN_HD bool none_visible(const Range& q, const Range& k, bool causal) {
  return (causal && k.omin > q.omax) || k.dmax < q.dmin || k.dmin > q.dmax;
}

// Every query of q sees every key of k (one shared document, every key at or before every query).
LT_ATTN_HD bool all_visible(const Range& q, const Range& k, bool causal) {
  return (!causal || k.omax <= q.omin) && q.dmin == q.dmax && k.dmin == k.dmax && q.dmin == k.dmin;
}

LT_ATTN_HD bool visible(bool causal, int q_order, int q_doc, int k_order, int k_doc) {
  return (!causal || k_order <= q_order) && k_doc == q_doc;
}

}  // namespace lt::cuda::kern
