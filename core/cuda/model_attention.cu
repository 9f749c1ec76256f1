// A simple, correct attention on CUDA cores (flash attention on tensor cores comes later): the
// CPU backend's blockwise algorithm with per-token causal orders, document masks and GQA.
//
// Forward: one block per (64 queries, head, sequence). K/V tiles of BK keys go through shared
// memory; scores S = scale * Q K^T of one tile at a time (never S x S), online softmax per row,
// O = sum P V accumulated in registers; the row LSE is written for backward.
// Backward (deterministic, no atomics): a delta kernel (rowsum(dO * O)), a dQ kernel (one block
// per query tile, key tiles in order) and a dK/dV kernel (one block per key tile and KV head,
// looping over the group's heads and the query tiles in order). Both recompute P from the LSE.
//
// 256 threads. Micro-tiles: thread t covers rows (t / 16) + 16 a, a < 4, and columns (t % 16) +
// 16 b of the score tile, and head dims (t % 16) + 16 c, c < DC, of the accumulators
// (head_dim <= 16 * DC). Shared rows used with a varying row index across a warp are padded to
// an odd stride to spread the banks. Tiles that no query of the block can see (from the
// per-granule order/doc ranges) are skipped; inside a tile every element is masked exactly.
#include "core/cuda/attention_tiles.cuh"
#include "core/cuda/flash_attention.h"
#include "core/cuda/model_common.cuh"

namespace lt::cuda::kern {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 64;  // queries per block (forward, dQ), keys per block (dK/dV)

__host__ __device__ inline std::int64_t padded(std::int64_t d) {
  return d % 2 == 0 ? d + 1 : d;
}

// Loads rows [row0, row0 + n) (n <= rows) of columns [col0, col0 + D) of a strided matrix into
// shared memory as C with row stride ld_s; rows past n are zero.
template <class T, class C>
__device__ inline void load_tile(C* s, std::int64_t ld_s, int rows, int n, const T* src,
                                 std::int64_t ld, std::int64_t row0, std::int64_t col0,
                                 std::int64_t D) {
  const std::int64_t total = static_cast<std::int64_t>(rows) * D;
  for (std::int64_t e = threadIdx.x; e < total; e += kThreads) {
    const std::int64_t i = e / D, d = e - i * D;
    s[i * ld_s + d] = i < n ? static_cast<C>(to_c(src[(row0 + i) * ld + col0 + d])) : C(0);
  }
}

template <class C>
__host__ __device__ inline std::size_t forward_smem_bytes(std::int64_t D, int BK) {
  const std::int64_t dp = padded(D);
  const std::int64_t cs = kTile * dp + BK * dp + BK * D + kTile * (BK + 1) + 3 * kTile;
  return static_cast<std::size_t>(cs) * sizeof(C) + sizeof(int) * 2 * (kTile + BK);
}

template <class T, class O, int DC, int BK>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(launch::AttentionArgs a, O* out, std::int64_t ldo, stat_t<T>* lse) {
  using C = comp_t<T>;
  constexpr int NB = BK / 16;
  LT_DYNAMIC_SMEM(smem_raw);
  const std::int64_t D = a.head_dim, Dp = padded(D);
  C* sQ = reinterpret_cast<C*>(smem_raw);
  C* sK = sQ + kTile * Dp;
  C* sV = sK + BK * Dp;
  C* sS = sV + BK * D;
  C* sM = sS + kTile * (BK + 1);
  C* sL = sM + kTile;
  C* sA = sL + kTile;
  int* sQo = reinterpret_cast<int*>(sA + kTile);
  int* sQd = sQo + kTile;
  int* sKo = sQd + kTile;
  int* sKd = sKo + BK;

  const int tid = threadIdx.x, ti = tid >> 4, tj = tid & 15, warp = tid >> 5, lane = tid & 31;
  const std::int64_t b = blockIdx.z, h = blockIdx.y,
                     q0 = static_cast<std::int64_t>(blockIdx.x) * kTile;
  const std::int64_t g = h / (a.heads / a.kv_heads);
  const int bq = static_cast<int>(min(static_cast<std::int64_t>(kTile), a.q_len - q0));
  const C scale = static_cast<C>(a.scale);
  const C ninf = neg_inf(C(0));
  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);

  load_tile<T, C>(sQ, Dp, kTile, bq, q, a.ldq, b * a.q_len + q0, h * D, D);
  load_tokens<kThreads>(sQo, sQd, kTile, bq, a.q_order, a.q_doc, b, a.q_len, q0);
  if (tid < kTile) {
    sM[tid] = ninf;
    sL[tid] = C(0);
  }
  const std::int64_t nqg = (a.q_len + kGran - 1) / kGran, nkg = (a.kv_len + kGran - 1) / kGran;
  const Range qr = tile_range(a.q_granules + 4 * b * nqg, q0, q0 + bq);
  C acc[4][DC];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int c = 0; c < DC; ++c) acc[i][c] = C(0);
  __syncthreads();

  for (std::int64_t k0 = 0; k0 < a.kv_len; k0 += BK) {
    const int bk = static_cast<int>(min(static_cast<std::int64_t>(BK), a.kv_len - k0));
    const Range kr = tile_range(a.k_granules + 4 * b * nkg, k0, k0 + bk);
    if (none_visible(qr, kr, a.causal)) continue;  // uniform over the block
    __syncthreads();                               // the previous tile's readers are done
    load_tile<T, C>(sK, Dp, BK, bk, k, a.ldk, b * a.kv_len + k0, g * D, D);
    load_tile<T, C>(sV, D, BK, bk, v, a.ldv, b * a.kv_len + k0, g * D, D);
    load_tokens<kThreads>(sKo, sKd, BK, bk, a.k_order, a.k_doc, b, a.kv_len, k0);
    __syncthreads();

    // S = scale * Q K^T, masked.
    C s[4][NB];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < NB; ++j) s[i][j] = C(0);
    for (std::int64_t d = 0; d < D; ++d) {
      C qa[4], kb[NB];
#pragma unroll
      for (int i = 0; i < 4; ++i) qa[i] = sQ[(ti + 16 * i) * Dp + d];
#pragma unroll
      for (int j = 0; j < NB; ++j) kb[j] = sK[(tj + 16 * j) * Dp + d];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < NB; ++j) s[i][j] += qa[i] * kb[j];
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = ti + 16 * i;
#pragma unroll
      for (int j = 0; j < NB; ++j) {
        const int c = tj + 16 * j;
        const bool vis = r < bq && c < bk && visible(a.causal, sQo[r], sQd[r], sKo[c], sKd[c]);
        sS[r * (BK + 1) + c] = vis ? scale * s[i][j] : ninf;
      }
    }
    __syncthreads();

    // Online softmax: warp w updates rows 8w .. 8w + 7.
    for (int rr = 0; rr < kTile / 8; ++rr) {
      const int r = warp * (kTile / 8) + rr;
      C* row = sS + r * (BK + 1);
      const C x0 = lane < BK ? row[lane] : ninf;
      const C x1 = lane + 32 < BK ? row[lane + 32] : ninf;
      const C m_old = sM[r];
      C mx = max_c(m_old, warp_max(max_c(x0, x1)));
      C alpha = C(1);
      if (mx == ninf) {  // nothing visible in this row yet
        if (lane < BK) row[lane] = C(0);
        if (lane + 32 < BK) row[lane + 32] = C(0);
      } else {
        alpha = exp_c(m_old - mx);
        const C p0 = exp_c(x0 - mx), p1 = exp_c(x1 - mx);
        if (lane < BK) row[lane] = p0;
        if (lane + 32 < BK) row[lane + 32] = p1;
        const C sum = warp_sum(p0 + p1);
        __syncwarp();
        if (lane == 0) {
          sL[r] = sL[r] * alpha + sum;
          sM[r] = mx;
        }
      }
      if (lane == 0) sA[r] = alpha;
    }
    __syncthreads();

    // acc = acc * alpha + P V
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const C al = sA[ti + 16 * i];
#pragma unroll
      for (int c = 0; c < DC; ++c) acc[i][c] *= al;
    }
    for (int j = 0; j < BK; ++j) {
      C vv[DC], p[4];
#pragma unroll
      for (int c = 0; c < DC; ++c) {
        const int d = tj + 16 * c;
        vv[c] = d < D ? sV[j * D + d] : C(0);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) p[i] = sS[(ti + 16 * i) * (BK + 1) + j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int c = 0; c < DC; ++c) acc[i][c] += p[i] * vv[c];
    }
  }
  __syncthreads();

  using CO = comp_t<O>;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ti + 16 * i;
    if (r >= bq) continue;
    const C l = sL[r];
    const C inv = l > C(0) ? C(1) / l : C(0);
    O* orow = out + (b * a.q_len + q0 + r) * ldo + h * D;
#pragma unroll
    for (int c = 0; c < DC; ++c) {
      const int d = tj + 16 * c;
      if (d < D) orow[d] = from_c<O>(static_cast<CO>(acc[i][c] * inv));
    }
  }
  if (tid < bq) {
    const C l = sL[tid];
    lse[(b * a.heads + h) * a.q_len + q0 + tid] =
        static_cast<stat_t<T>>(l > C(0) ? sM[tid] + log_c(l) : ninf);
  }
}

// delta[b, h, i] = sum_d dO * O (one warp per row and head).
template <class T>
__global__ void attention_delta_kernel(const T* out, std::int64_t ldo, const T* dout,
                                       std::int64_t ldd, comp_t<T>* delta, std::int64_t rows,
                                       std::int64_t q_len, std::int64_t heads, std::int64_t D) {
  using C = comp_t<T>;
  const std::int64_t w =
      static_cast<std::int64_t>(blockIdx.x) * (kThreads / 32) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (w >= rows * heads) return;
  const std::int64_t r = w / heads, h = w % heads;
  const T* o = out + r * ldo + h * D;
  const T* g = dout + r * ldd + h * D;
  C sum = 0;
  for (std::int64_t d = lane; d < D; d += 32) sum += to_c(g[d]) * to_c(o[d]);
  sum = warp_sum(sum);
  if (lane == 0) {
    const std::int64_t b = r / q_len, i = r % q_len;
    delta[(b * heads + h) * q_len + i] = sum;
  }
}

template <class C>
__host__ __device__ inline std::size_t dq_smem_bytes(std::int64_t D, int BK) {
  const std::int64_t dp = padded(D);
  const std::int64_t cs = 2 * kTile * dp + 2 * BK * dp + kTile * (BK + 1) + 2 * kTile;
  return static_cast<std::size_t>(cs) * sizeof(C) + sizeof(int) * 2 * (kTile + BK);
}

// dQ = sum over key tiles of dS K, dS = P * (dP - delta) * scale, P = exp(S - lse), dP = dO V^T.
template <class T, int DC, int BK>
__global__ void __launch_bounds__(kThreads)
    attention_dq_kernel(launch::AttentionArgs a, const T* dout, std::int64_t ldd,
                        const stat_t<T>* lse, const comp_t<T>* delta, T* dq, std::int64_t ld_dq) {
  using C = comp_t<T>;
  constexpr int NB = BK / 16;
  LT_DYNAMIC_SMEM(smem_raw);
  const std::int64_t D = a.head_dim, Dp = padded(D);
  C* sQ = reinterpret_cast<C*>(smem_raw);
  C* sO = sQ + kTile * Dp;  // dO
  C* sK = sO + kTile * Dp;
  C* sV = sK + BK * Dp;
  C* sS = sV + BK * Dp;  // dS
  C* sL = sS + kTile * (BK + 1);
  C* sD = sL + kTile;
  int* sQo = reinterpret_cast<int*>(sD + kTile);
  int* sQd = sQo + kTile;
  int* sKo = sQd + kTile;
  int* sKd = sKo + BK;

  const int tid = threadIdx.x, ti = tid >> 4, tj = tid & 15;
  const std::int64_t b = blockIdx.z, h = blockIdx.y,
                     q0 = static_cast<std::int64_t>(blockIdx.x) * kTile;
  const std::int64_t g = h / (a.heads / a.kv_heads);
  const int bq = static_cast<int>(min(static_cast<std::int64_t>(kTile), a.q_len - q0));
  const C scale = static_cast<C>(a.scale);
  const C ninf = neg_inf(C(0));
  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);

  load_tile<T, C>(sQ, Dp, kTile, bq, q, a.ldq, b * a.q_len + q0, h * D, D);
  load_tile<T, C>(sO, Dp, kTile, bq, dout, ldd, b * a.q_len + q0, h * D, D);
  load_tokens<kThreads>(sQo, sQd, kTile, bq, a.q_order, a.q_doc, b, a.q_len, q0);
  if (tid < kTile) {
    const std::int64_t li = (b * a.heads + h) * a.q_len + q0 + tid;
    sL[tid] = tid < bq ? static_cast<C>(lse[li]) : ninf;
    sD[tid] = tid < bq ? delta[li] : C(0);
  }
  const std::int64_t nqg = (a.q_len + kGran - 1) / kGran, nkg = (a.kv_len + kGran - 1) / kGran;
  const Range qr = tile_range(a.q_granules + 4 * b * nqg, q0, q0 + bq);
  C acc[4][DC];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int c = 0; c < DC; ++c) acc[i][c] = C(0);
  __syncthreads();

  for (std::int64_t k0 = 0; k0 < a.kv_len; k0 += BK) {
    const int bk = static_cast<int>(min(static_cast<std::int64_t>(BK), a.kv_len - k0));
    const Range kr = tile_range(a.k_granules + 4 * b * nkg, k0, k0 + bk);
    if (none_visible(qr, kr, a.causal)) continue;
    __syncthreads();
    load_tile<T, C>(sK, Dp, BK, bk, k, a.ldk, b * a.kv_len + k0, g * D, D);
    load_tile<T, C>(sV, Dp, BK, bk, v, a.ldv, b * a.kv_len + k0, g * D, D);
    load_tokens<kThreads>(sKo, sKd, BK, bk, a.k_order, a.k_doc, b, a.kv_len, k0);
    __syncthreads();

    C s[4][NB], dp[4][NB];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < NB; ++j) s[i][j] = dp[i][j] = C(0);
    for (std::int64_t d = 0; d < D; ++d) {
      C qa[4], oa[4], kb[NB], vb[NB];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        qa[i] = sQ[(ti + 16 * i) * Dp + d];
        oa[i] = sO[(ti + 16 * i) * Dp + d];
      }
#pragma unroll
      for (int j = 0; j < NB; ++j) {
        kb[j] = sK[(tj + 16 * j) * Dp + d];
        vb[j] = sV[(tj + 16 * j) * Dp + d];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < NB; ++j) {
          s[i][j] += qa[i] * kb[j];
          dp[i][j] += oa[i] * vb[j];
        }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = ti + 16 * i;
      const C L = sL[r], dl = sD[r];
#pragma unroll
      for (int j = 0; j < NB; ++j) {
        const int c = tj + 16 * j;
        const bool vis =
            r < bq && c < bk && L != ninf && visible(a.causal, sQo[r], sQd[r], sKo[c], sKd[c]);
        const C p = vis ? exp_c(scale * s[i][j] - L) : C(0);
        sS[r * (BK + 1) + c] = p * (dp[i][j] - dl) * scale;
      }
    }
    __syncthreads();

    for (int j = 0; j < BK; ++j) {
      C kv[DC], ds[4];
#pragma unroll
      for (int c = 0; c < DC; ++c) {
        const int d = tj + 16 * c;
        kv[c] = d < D ? sK[j * Dp + d] : C(0);
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) ds[i] = sS[(ti + 16 * i) * (BK + 1) + j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int c = 0; c < DC; ++c) acc[i][c] += ds[i] * kv[c];
    }
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = ti + 16 * i;
    if (r >= bq) continue;
    T* row = dq + (b * a.q_len + q0 + r) * ld_dq + h * D;
#pragma unroll
    for (int c = 0; c < DC; ++c) {
      const int d = tj + 16 * c;
      if (d < D) row[d] = from_c<T>(acc[i][c]);
    }
  }
}

template <class C>
__host__ __device__ inline std::size_t dkv_smem_bytes(std::int64_t D, int BQ) {
  const std::int64_t dp = padded(D);
  const std::int64_t cs = 2 * kTile * dp + 2 * BQ * dp + 2 * kTile * (BQ + 1) + 2 * BQ;
  return static_cast<std::size_t>(cs) * sizeof(C) + sizeof(int) * 2 * (kTile + BQ);
}

// dV = sum P^T dO, dK = sum dS^T Q over the heads of KV head g and all query tiles, in order.
template <class T, int DC, int BQ>
__global__ void __launch_bounds__(kThreads)
    attention_dkv_kernel(launch::AttentionArgs a, const T* dout, std::int64_t ldd,
                         const stat_t<T>* lse, const comp_t<T>* delta, T* dk, std::int64_t ld_dk,
                         T* dv, std::int64_t ld_dv) {
  using C = comp_t<T>;
  constexpr int NB = BQ / 16;
  LT_DYNAMIC_SMEM(smem_raw);
  const std::int64_t D = a.head_dim, Dp = padded(D);
  C* sK = reinterpret_cast<C*>(smem_raw);
  C* sV = sK + kTile * Dp;
  C* sQ = sV + kTile * Dp;
  C* sO = sQ + BQ * Dp;           // dO
  C* sP = sO + BQ * Dp;           // P^T [key][query]
  C* sS = sP + kTile * (BQ + 1);  // dS^T
  C* sL = sS + kTile * (BQ + 1);
  C* sD = sL + BQ;
  int* sKo = reinterpret_cast<int*>(sD + BQ);
  int* sKd = sKo + kTile;
  int* sQo = sKd + kTile;
  int* sQd = sQo + BQ;

  const int tid = threadIdx.x, tr = tid >> 4, tc = tid & 15;
  const std::int64_t b = blockIdx.z, g = blockIdx.y,
                     k0 = static_cast<std::int64_t>(blockIdx.x) * kTile;
  const std::int64_t group = a.heads / a.kv_heads;
  const int bk = static_cast<int>(min(static_cast<std::int64_t>(kTile), a.kv_len - k0));
  const C scale = static_cast<C>(a.scale);
  const C ninf = neg_inf(C(0));
  const T* q = static_cast<const T*>(a.q);
  const T* k = static_cast<const T*>(a.k);
  const T* v = static_cast<const T*>(a.v);

  load_tile<T, C>(sK, Dp, kTile, bk, k, a.ldk, b * a.kv_len + k0, g * D, D);
  load_tile<T, C>(sV, Dp, kTile, bk, v, a.ldv, b * a.kv_len + k0, g * D, D);
  load_tokens<kThreads>(sKo, sKd, kTile, bk, a.k_order, a.k_doc, b, a.kv_len, k0);
  const std::int64_t nqg = (a.q_len + kGran - 1) / kGran, nkg = (a.kv_len + kGran - 1) / kGran;
  const Range kr = tile_range(a.k_granules + 4 * b * nkg, k0, k0 + bk);
  C dK[4][DC], dV[4][DC];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int c = 0; c < DC; ++c) dK[i][c] = dV[i][c] = C(0);

  for (std::int64_t h = g * group; h < (g + 1) * group; ++h) {
    for (std::int64_t q0 = 0; q0 < a.q_len; q0 += BQ) {
      const int bq = static_cast<int>(min(static_cast<std::int64_t>(BQ), a.q_len - q0));
      const Range qr = tile_range(a.q_granules + 4 * b * nqg, q0, q0 + bq);
      if (none_visible(qr, kr, a.causal)) continue;
      __syncthreads();  // previous readers of the query tile are done (and the K/V loads)
      load_tile<T, C>(sQ, Dp, BQ, bq, q, a.ldq, b * a.q_len + q0, h * D, D);
      load_tile<T, C>(sO, Dp, BQ, bq, dout, ldd, b * a.q_len + q0, h * D, D);
      load_tokens<kThreads>(sQo, sQd, BQ, bq, a.q_order, a.q_doc, b, a.q_len, q0);
      for (int i = tid; i < BQ; i += kThreads) {
        const std::int64_t li = (b * a.heads + h) * a.q_len + q0 + i;
        sL[i] = i < bq ? static_cast<C>(lse[li]) : ninf;
        sD[i] = i < bq ? delta[li] : C(0);
      }
      __syncthreads();

      C s[4][NB], dp[4][NB];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < NB; ++j) s[i][j] = dp[i][j] = C(0);
      for (std::int64_t d = 0; d < D; ++d) {
        C ka[4], va[4], qb[NB], ob[NB];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          ka[i] = sK[(tr + 16 * i) * Dp + d];
          va[i] = sV[(tr + 16 * i) * Dp + d];
        }
#pragma unroll
        for (int j = 0; j < NB; ++j) {
          qb[j] = sQ[(tc + 16 * j) * Dp + d];
          ob[j] = sO[(tc + 16 * j) * Dp + d];
        }
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int j = 0; j < NB; ++j) {
            s[i][j] += ka[i] * qb[j];
            dp[i][j] += va[i] * ob[j];
          }
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int kj = tr + 16 * i;  // key
#pragma unroll
        for (int j = 0; j < NB; ++j) {
          const int qi = tc + 16 * j;  // query
          const C L = sL[qi];
          const bool vis = kj < bk && qi < bq && L != ninf &&
                           visible(a.causal, sQo[qi], sQd[qi], sKo[kj], sKd[kj]);
          const C p = vis ? exp_c(scale * s[i][j] - L) : C(0);
          sP[kj * (BQ + 1) + qi] = p;
          sS[kj * (BQ + 1) + qi] = p * (dp[i][j] - sD[qi]) * scale;
        }
      }
      __syncthreads();

      for (int qi = 0; qi < BQ; ++qi) {
        C qv[DC], ov[DC], p[4], ds[4];
#pragma unroll
        for (int c = 0; c < DC; ++c) {
          const int d = tc + 16 * c;
          qv[c] = d < D ? sQ[qi * Dp + d] : C(0);
          ov[c] = d < D ? sO[qi * Dp + d] : C(0);
        }
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          p[i] = sP[(tr + 16 * i) * (BQ + 1) + qi];
          ds[i] = sS[(tr + 16 * i) * (BQ + 1) + qi];
        }
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
          for (int c = 0; c < DC; ++c) {
            dV[i][c] += p[i] * ov[c];
            dK[i][c] += ds[i] * qv[c];
          }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int kj = tr + 16 * i;
    if (kj >= bk) continue;
    T* krow = dk + (b * a.kv_len + k0 + kj) * ld_dk + g * D;
    T* vrow = dv + (b * a.kv_len + k0 + kj) * ld_dv + g * D;
#pragma unroll
    for (int c = 0; c < DC; ++c) {
      const int d = tc + 16 * c;
      if (d < D) {
        krow[d] = from_c<T>(dK[i][c]);
        vrow[d] = from_c<T>(dV[i][c]);
      }
    }
  }
}

// Calls f(std::integral_constant<int, DC>) for the head-dim class of D. f64 (reference runs)
// stops at 128: its tiles for larger heads do not fit in shared memory.
template <class T, class F>
void dispatch_dc(std::int64_t D, F&& f) {
  if (D <= 64) {
    f(std::integral_constant<int, 4>{});
  } else if (D <= 128) {
    f(std::integral_constant<int, 8>{});
  } else {
    if constexpr (std::is_same<T, double>::value) {
      LT_CHECK(false, "CUDA attention in f64 supports head_dim up to 128, got " << D);
    } else {
      f(std::integral_constant<int, 16>{});
    }
  }
}

// The larger of 64 / 32 whose shared memory fits; 0 when neither does.
template <class Bytes>
int pick_tile(Bytes&& bytes, std::size_t limit, int smallest = 32) {
  for (int t = 64; t >= smallest; t /= 2) {
    if (bytes(t) <= limit) return t;
  }
  return 0;
}

void check_args(const launch::AttentionArgs& a) {
  LT_CHECK(a.head_dim > 0 && a.head_dim <= launch::kAttnMaxHeadDim,
           "CUDA attention supports head_dim up to " << launch::kAttnMaxHeadDim << ", got "
                                                     << a.head_dim);
  LT_CHECK(a.heads <= 65535 && a.kv_heads <= 65535 && a.batch <= 65535,
           "CUDA attention: too many heads or sequences");
  LT_CHECK(a.q_granules != nullptr || a.q_len == 0, "attention: missing query granules");
  LT_CHECK(a.k_granules != nullptr || a.kv_len == 0, "attention: missing key granules");
}

}  // namespace
}  // namespace lt::cuda::kern

namespace lt::cuda::launch {

void attention_forward(const AttentionArgs& a, void* out, std::int64_t ldo, void* lse) {
  using namespace kern;
  check_args(a);
  if (a.batch == 0 || a.q_len == 0 || a.heads == 0) return;
  if (flash::supports_forward(a, out, ldo)) {
    flash::forward(a, out, ldo, lse);
    return;
  }
  const std::size_t limit = max_shared_memory_per_block();
  const dim3 grid(ceil_div(a.q_len, kTile), static_cast<unsigned>(a.heads),
                  static_cast<unsigned>(a.batch));
  dispatch(a.dt, [&](auto tag) {
    using T = LT_TAG_TYPE(tag);
    using C = comp_t<T>;
    const int bk = pick_tile([&](int t) { return forward_smem_bytes<C>(a.head_dim, t); }, limit);
    LT_CHECK(bk > 0, "attention_forward: head_dim "
                         << a.head_dim << " needs more shared memory than the " << limit
                         << " bytes a block may use");
    const std::size_t smem = forward_smem_bytes<C>(a.head_dim, bk);
    auto run_o = [&](auto otag) {
      using O = LT_TAG_TYPE(otag);
      dispatch_dc<T>(a.head_dim, [&](auto dc) {
        constexpr int DC = decltype(dc)::value;
        auto run = [&](auto kernel) {
          set_smem(kernel, smem);
          LT_LAUNCH(grid, kThreads, smem, kernel)
          (a, static_cast<O*>(out), ldo, static_cast<stat_t<T>*>(lse));
        };
        if (bk == 64) {
          run(attention_forward_kernel<T, O, DC, 64>);
        } else {
          run(attention_forward_kernel<T, O, DC, 32>);
        }
      });
    };
    if (a.out_dt == a.dt) {
      run_o(Tag<T>{});
    } else {
      LT_CHECK(a.dt == Dt::bf16 && a.out_dt == Dt::f32,
               "attention_forward: output dtype must match the inputs or be f32 for bf16");
      run_o(Tag<float>{});
    }
  });
  check_launch("attention_forward");
}

void attention_backward(const AttentionArgs& a, const void* out, std::int64_t ldo, const void* lse,
                        const void* dout, std::int64_t ld_dout, void* dq, std::int64_t ld_dq,
                        void* dk, std::int64_t ld_dk, void* dv, std::int64_t ld_dv,
                        void* delta_scratch, void* dq_accum_scratch) {
  using namespace kern;
  check_args(a);
  if (a.batch == 0 || a.heads == 0) return;
  const std::size_t limit = max_shared_memory_per_block();
  dispatch(a.dt, [&](auto tag) {
    using T = LT_TAG_TYPE(tag);
    using C = comp_t<T>;
    C* delta = static_cast<C*>(delta_scratch);
    const T* o = static_cast<const T*>(out);
    const T* g = static_cast<const T*>(dout);
    const stat_t<T>* L = static_cast<const stat_t<T>*>(lse);
    const std::int64_t rows = a.batch * a.q_len;
    if (rows > 0) {
      LT_LAUNCH(ceil_div(rows * a.heads, kThreads / 32), kThreads, 0, attention_delta_kernel<T>)
      (o, ldo, g, ld_dout, delta, rows, a.q_len, a.heads, a.head_dim);
      check_launch("attention_backward (delta)");
    }
    if constexpr (std::is_same<T, bf16_t>::value) {
      if (flash::supports_backward(a, dout, ld_dout, dq, ld_dq, dk, ld_dk, dv, ld_dv)) {
        flash::backward(a, lse, delta, dout, ld_dout, dq, ld_dq, dk, ld_dk, dv, ld_dv,
                        dq_accum_scratch);
        return;
      }
    }
    dispatch_dc<T>(a.head_dim, [&](auto dc) {
      constexpr int DC = decltype(dc)::value;
      if (a.q_len > 0) {
        const int bk = pick_tile([&](int t) { return dq_smem_bytes<C>(a.head_dim, t); }, limit);
        LT_CHECK(bk > 0, "attention_backward: head_dim "
                             << a.head_dim << " needs more shared memory than the " << limit
                             << " bytes a block may use");
        const std::size_t smem = dq_smem_bytes<C>(a.head_dim, bk);
        const dim3 grid(ceil_div(a.q_len, kTile), static_cast<unsigned>(a.heads),
                        static_cast<unsigned>(a.batch));
        auto run = [&](auto kernel) {
          set_smem(kernel, smem);
          LT_LAUNCH(grid, kThreads, smem, kernel)
          (a, g, ld_dout, L, delta, static_cast<T*>(dq), ld_dq);
        };
        if (bk == 64) {
          run(attention_dq_kernel<T, DC, 64>);
        } else {
          run(attention_dq_kernel<T, DC, 32>);
        }
        check_launch("attention_backward (dq)");
      }
      if (a.kv_len > 0) {
        // f64 with head_dim 128 needs 16-query tiles to fit an H100's 227 KiB (found by the
        // host emulation, tests/test_cuda_sim.cpp); the other types never go below 32.
        constexpr int smallest = std::is_same<T, double>::value ? 16 : 32;
        const int bq =
            pick_tile([&](int t) { return dkv_smem_bytes<C>(a.head_dim, t); }, limit, smallest);
        LT_CHECK(bq > 0, "attention_backward: head_dim "
                             << a.head_dim << " needs more shared memory than the " << limit
                             << " bytes a block may use");
        const std::size_t smem = dkv_smem_bytes<C>(a.head_dim, bq);
        const dim3 grid(ceil_div(a.kv_len, kTile), static_cast<unsigned>(a.kv_heads),
                        static_cast<unsigned>(a.batch));
        auto run = [&](auto kernel) {
          set_smem(kernel, smem);
          LT_LAUNCH(grid, kThreads, smem, kernel)
          (a, g, ld_dout, L, delta, static_cast<T*>(dk), ld_dk, static_cast<T*>(dv), ld_dv);
        };
        if (bq == 64) {
          run(attention_dkv_kernel<T, DC, 64>);
        } else if (bq == 32) {
          run(attention_dkv_kernel<T, DC, 32>);
        } else if constexpr (smallest == 16) {
          run(attention_dkv_kernel<T, DC, 16>);
        }
        check_launch("attention_backward (dk, dv)");
      }
    });
  });
}

}  // namespace lt::cuda::launch
