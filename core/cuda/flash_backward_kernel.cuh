// Flash-attention backward on tensor cores (bf16 in, fp32 accumulation), deterministic: no
// atomics, every sum in a fixed order, so two runs give the same bits.
//
// Given the forward's output and LSE (the global ones under ring attention, so one call is one
// ring step) and delta = rowsum(dO * O) from the caller:
//  - dK/dV kernel: one block per 64 keys of one KV head, 4 warps of 16 keys. It walks the heads of
//    its GQA group and, in order, the 64-query tiles that can see its keys (double-buffered
//    cp.async): S^T = K Q^T, P^T = exp(S^T - lse), dP^T = V dO^T, dS^T = P^T (dP^T - delta),
//    dV += P^T dO, dK += dS^T Q, all as mma.m16n8k16 with the scores reused from registers.
//  - dQ kernel: one block per 64 queries of one head, 4 warps of 16 queries, walking the visible
//    key tiles: S = Q K^T, dP = dO V^T, dS = P (dP - delta), dQ += dS K.
// dQ therefore recomputes S and dP (7 tile products per tile pair instead of FA2's 5 with atomic
// dQ): the price of bit-reproducible gradients.
#pragma once

#include "core/cuda/flash_tiles.cuh"

namespace lt::cuda::flash {

constexpr int kTile = 64;  // queries or keys per tile

template <int D>
struct BackwardSmem {
  static constexpr int tile_elems = kTile * row_stride<D>();
  // dQ: Q, dO, K[2], V[2]; dK/dV: K, V, Q[2], dO[2]: six tiles either way, plus per-token data.
  static constexpr std::size_t bytes = static_cast<std::size_t>(6 * tile_elems) * sizeof(bf16_t) +
                                       (sizeof(int) * 2 + sizeof(float) * 2) * 3 * kTile;
  // The atomic-dQ variant also stages the tile's dS^T ([key][query], bf16) for dQ = dS K.
  static constexpr int ds_elems = kTile * row_stride<kTile>();
  static constexpr std::size_t bytes_atomic = bytes + ds_elems * sizeof(bf16_t);
};

struct Pointers {
  const bf16_t* q;
  const bf16_t* k;
  const bf16_t* v;
  const bf16_t* dout;
  std::int64_t ld_dout;
  const float* lse;
  const float* delta;
};

// Scaled scores of one 16-row warp tile against 64 columns, from the A rows at a_base (a row
// offset `a_row0`) and the B rows at b_base: acc[nt] += A B^T for the 8 column tiles.
template <int D>
__device__ __forceinline__ void tile_product_abt(float (&acc)[kTile / 8][4], std::uint32_t a_base,
                                                 int a_row0, std::uint32_t b_base, int lane) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    std::uint32_t fa[4];
    ldmatrix_x4(fa, at<D>(a_base, a_row0 + a_row(lane), kk * 16 + a_col(lane)));
#pragma unroll
    for (int np = 0; np < kTile / 16; ++np) {
      std::uint32_t fb[4];
      ldmatrix_x4(fb, at<D>(b_base, np * 16 + b_pair_row(lane), kk * 16 + b_pair_col(lane)));
      mma_bf16(acc[2 * np], fa, fb[0], fb[1]);
      mma_bf16(acc[2 * np + 1], fa, fb[2], fb[3]);
    }
  }
}

// acc[dt] += A B for one 16-deep slice: A the 16 x 16 operand fa, B rows [16 kk, 16 kk + 16) of
// the [inner][D] tile at b_base (a transposed load).
template <int D>
__device__ __forceinline__ void mma_rows_times_tile(float (&acc)[D / 8][4],
                                                    const std::uint32_t (&fa)[4],
                                                    std::uint32_t b_base, int kk, int lane) {
#pragma unroll
  for (int dp = 0; dp < D / 16; ++dp) {
    std::uint32_t fb[4];
    ldmatrix_x4_trans(fb, at<D>(b_base, kk * 16 + bt_pair_row(lane), dp * 16 + bt_pair_col(lane)));
    mma_bf16(acc[2 * dp], fa, fb[0], fb[1]);
    mma_bf16(acc[2 * dp + 1], fa, fb[2], fb[3]);
  }
}

// acc[dt] += A B over the 64-wide inner dimension, A from the C fragments `c` (16 x 64, rounded
// to bf16) and B the tile at b_base stored [inner][D].
template <int D>
__device__ __forceinline__ void tile_product_cb(float (&acc)[D / 8][4],
                                                const float (&c)[kTile / 8][4],
                                                std::uint32_t b_base, int lane) {
#pragma unroll
  for (int kk = 0; kk < kTile / 16; ++kk) {
    std::uint32_t fa[4];
    c_to_a(fa, c[2 * kk], c[2 * kk + 1]);
    mma_rows_times_tile<D>(acc, fa, b_base, kk, lane);
  }
}

template <int N>
__device__ __forceinline__ void zero(float (&acc)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[i][e] = 0.f;
}

// Per-token data of a query tile: orders, documents, lse (exp2 domain; -inf past n) and delta.
__device__ __forceinline__ void load_query_stats(float* s_lse, float* s_delta, int n,
                                                 const Pointers& p, std::int64_t stat0) {
  for (int i = static_cast<int>(threadIdx.x); i < kTile; i += kThreads) {
    s_lse[i] = i < n ? p.lse[stat0 + i] * kLog2e : -CUDART_INF_F;
    s_delta[i] = i < n ? p.delta[stat0 + i] : 0.f;
  }
}

// scale * acc of one warp's 16 rows (C fragments, D columns) as bf16 rows of `base` (stride ld);
// only the first n rows exist.
template <int D>
__device__ __forceinline__ void store_warp_rows(const float (&acc)[D / 8][4], float scale, int lane,
                                                int n, bf16_t* base, std::int64_t ld) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int r = g + 8 * hh;
    if (r >= n) continue;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      store_pair(base + r * ld + dt * 8 + 2 * t, acc[dt][2 * hh] * scale,
                 acc[dt][2 * hh + 1] * scale);
    }
  }
}

template <int D>
__global__ void __launch_bounds__(kThreads)
    flash_dq_kernel(launch::AttentionArgs a, Pointers p, bf16_t* dq, std::int64_t ld_dq) {
  constexpr int E = BackwardSmem<D>::tile_elems;
  LT_FLASH_SMEM(smem_raw);
  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem_raw);
  bf16_t* sO = sQ + E;      // dO
  bf16_t* sK = sO + E;      // [2]
  bf16_t* sV = sK + 2 * E;  // [2]
  int* sQo = reinterpret_cast<int*>(sV + 2 * E);
  int* sQd = sQo + kTile;
  int* sKo = sQd + kTile;  // [2]
  int* sKd = sKo + 2 * kTile;
  float* sL = reinterpret_cast<float*>(sKd + 2 * kTile);
  float* sDl = sL + kTile;

  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  const int g = lane >> 2, t = lane & 3;
  const std::int64_t b = blockIdx.z, h = blockIdx.y;
  const std::int64_t q0 = static_cast<std::int64_t>(gridDim.x - 1 - blockIdx.x) * kTile;
  const std::int64_t kvh = h / (a.heads / a.kv_heads);
  const int bq = static_cast<int>(min(static_cast<std::int64_t>(kTile), a.q_len - q0));
  const float scale_log2 = static_cast<float>(a.scale) * kLog2e;

  load_tile_async<kTile, D>(sQ, p.q, a.ldq, b * a.q_len + q0, bq, h * D);
  load_tile_async<kTile, D>(sO, p.dout, p.ld_dout, b * a.q_len + q0, bq, h * D);
  cp_async_commit();
  kern::load_tokens<kThreads>(sQo, sQd, kTile, bq, a.q_order, a.q_doc, b, a.q_len, q0);
  load_query_stats(sL, sDl, bq, p, (b * a.heads + h) * a.q_len + q0);

  const std::int64_t nqg = (a.q_len + kern::kGran - 1) / kern::kGran;
  const std::int64_t nkg = (a.kv_len + kern::kGran - 1) / kern::kGran;
  const Range qr = kern::tile_range(a.q_granules + 4 * b * nqg, q0, q0 + bq);
  const VisibleTiles<kTile> tiles{a.k_granules + 4 * b * nkg, a.kv_len, qr, a.causal, true};
  auto load_kv = [&](std::int64_t k0, int buf) {
    const int bk = static_cast<int>(min(static_cast<std::int64_t>(kTile), a.kv_len - k0));
    load_tile_async<kTile, D>(sK + buf * E, p.k, a.ldk, b * a.kv_len + k0, bk, kvh * D);
    load_tile_async<kTile, D>(sV + buf * E, p.v, a.ldv, b * a.kv_len + k0, bk, kvh * D);
    cp_async_commit();
    kern::load_tokens<kThreads>(sKo + buf * kTile, sKd + buf * kTile, kTile, bk, a.k_order, a.k_doc,
                                b, a.kv_len, k0);
  };

  float acc[D / 8][4];
  zero(acc);
  const std::uint32_t q_base = smem_address(sQ), o_base = smem_address(sO);
  std::int64_t k0 = tiles.next(0);
  int buf = 0;
  if (k0 < a.kv_len) load_kv(k0, 0);
  while (k0 < a.kv_len) {
    cp_async_wait<0>();
    __syncthreads();
    const std::int64_t next = tiles.next(k0 + kTile);
    if (next < a.kv_len) load_kv(next, buf ^ 1);
    const int bk = static_cast<int>(min(static_cast<std::int64_t>(kTile), a.kv_len - k0));
    const bool whole = tiles.whole(k0);
    const std::uint32_t k_base = smem_address(sK + buf * E), v_base = smem_address(sV + buf * E);
    const int* ko = sKo + buf * kTile;
    const int* kd = sKd + buf * kTile;

    float s[kTile / 8][4], dp[kTile / 8][4];
    zero(s);
    zero(dp);
    tile_product_abt<D>(s, q_base, warp * 16, k_base, lane);   // S = Q K^T
    tile_product_abt<D>(dp, o_base, warp * 16, v_base, lane);  // dP = dO V^T
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int r = warp * 16 + g + 8 * hh;
      const float L = sL[r], dl = sDl[r];
#pragma unroll
      for (int nt = 0; nt < kTile / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int c = nt * 8 + 2 * t + e;
          const bool vis =
              L != -CUDART_INF_F &&
              (whole || (c < bk && kern::visible(a.causal, sQo[r], sQd[r], ko[c], kd[c])));
          const int i = 2 * hh + e;
          const float pr = vis ? exp2f(s[nt][i] * scale_log2 - L) : 0.f;
          s[nt][i] = pr * (dp[nt][i] - dl);  // dS / scale
        }
      }
    }
    tile_product_cb<D>(acc, s, k_base, lane);  // dQ += dS K
    k0 = next;
    buf ^= 1;
  }
  cp_async_wait<0>();
  store_warp_rows<D>(acc, static_cast<float>(a.scale), lane, bq - warp * 16,
                     dq + (b * a.q_len + q0 + warp * 16) * ld_dq + h * D, ld_dq);
}

// dQ of one query tile from this block's keys, added into the fp32 accumulator with atomics
// (FA2's backward: no second pass over K/V, but the sums' order, and so the last bits, vary).
// ds holds the warp's dS^T fragments (keys x queries, already / scale); sDs is [key][query].
template <int D>
__device__ __forceinline__ void add_dq_atomically(const float (&ds)[kTile / 8][4], bf16_t* sDs,
                                                  std::uint32_t k_base, int warp, int lane, int nq,
                                                  float scale, float* dq_rows,
                                                  std::int64_t ld_acc) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
#pragma unroll
    for (int nt = 0; nt < kTile / 8; ++nt) {
      const int key = warp * 16 + g + 8 * hh, query = nt * 8 + 2 * t;
      store_pair(sDs + key * row_stride<kTile>() + query, ds[nt][2 * hh], ds[nt][2 * hh + 1]);
    }
  }
  __syncthreads();
  float acc[D / 8][4];
#pragma unroll
  for (int i = 0; i < D / 8; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[i][e] = 0.f;
  const std::uint32_t ds_base = smem_address(sDs);
#pragma unroll
  for (int kk = 0; kk < kTile / 16; ++kk) {
    std::uint32_t fa[4];  // dS rows (queries) from the [key][query] tile: a transposed load
    ldmatrix_x4_trans(fa, at<kTile>(ds_base, kk * 16 + at_row(lane), warp * 16 + at_col(lane)));
    mma_rows_times_tile<D>(acc, fa, k_base, kk, lane);
  }
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int q = warp * 16 + g + 8 * hh;
    if (q >= nq) continue;
    float* row = dq_rows + q * ld_acc;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      atomicAdd(row + dt * 8 + 2 * t, acc[dt][2 * hh] * scale);
      atomicAdd(row + dt * 8 + 2 * t + 1, acc[dt][2 * hh + 1] * scale);
    }
  }
}

// kAtomicDq: also adds this block's share of dQ into dq_accum (fp32 [rows, heads * D], ld_acc)
// with atomics; the dQ kernel is then not needed.
template <int D, bool kAtomicDq = false>
__global__ void __launch_bounds__(kThreads)
    flash_dkv_kernel(launch::AttentionArgs a, Pointers p, bf16_t* dk, std::int64_t ld_dk,
                     bf16_t* dv, std::int64_t ld_dv, float* dq_accum = nullptr,
                     std::int64_t ld_acc = 0) {
  constexpr int E = BackwardSmem<D>::tile_elems;
  LT_FLASH_SMEM(smem_raw);
  bf16_t* sK = reinterpret_cast<bf16_t*>(smem_raw);
  bf16_t* sV = sK + E;
  bf16_t* sQ = sV + E;      // [2]
  bf16_t* sO = sQ + 2 * E;  // dO [2]
  int* sKo = reinterpret_cast<int*>(sO + 2 * E);
  int* sKd = sKo + kTile;
  int* sQo = sKd + kTile;  // [2]
  int* sQd = sQo + 2 * kTile;
  float* sL = reinterpret_cast<float*>(sQd + 2 * kTile);  // [2]
  float* sDl = sL + 2 * kTile;                            // [2]

  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  const int g = lane >> 2, t = lane & 3;
  const std::int64_t b = blockIdx.z, kvh = blockIdx.y;
  const std::int64_t k0 = static_cast<std::int64_t>(blockIdx.x) * kTile;
  const std::int64_t group = a.heads / a.kv_heads;
  const int bk = static_cast<int>(min(static_cast<std::int64_t>(kTile), a.kv_len - k0));
  const float scale_log2 = static_cast<float>(a.scale) * kLog2e;

  load_tile_async<kTile, D>(sK, p.k, a.ldk, b * a.kv_len + k0, bk, kvh * D);
  load_tile_async<kTile, D>(sV, p.v, a.ldv, b * a.kv_len + k0, bk, kvh * D);
  cp_async_commit();
  kern::load_tokens<kThreads>(sKo, sKd, kTile, bk, a.k_order, a.k_doc, b, a.kv_len, k0);

  const std::int64_t nqg = (a.q_len + kern::kGran - 1) / kern::kGran;
  const std::int64_t nkg = (a.kv_len + kern::kGran - 1) / kern::kGran;
  const Range kr = kern::tile_range(a.k_granules + 4 * b * nkg, k0, k0 + bk);
  const VisibleTiles<kTile> tiles{a.q_granules + 4 * b * nqg, a.q_len, kr, a.causal, false};
  // Work items: (head of the group, visible query tile) in order; item i is the query tile at
  // q0 of head kvh * group + hi.
  struct Item {
    std::int64_t hi, q0;
  };
  auto next_item = [&](Item from) -> Item {
    for (std::int64_t hi = from.hi; hi < group; ++hi) {
      const std::int64_t q0 = tiles.next(hi == from.hi ? from.q0 : 0);
      if (q0 < a.q_len) return {hi, q0};
    }
    return {group, 0};
  };
  auto load_q = [&](Item it, int buf) {
    const std::int64_t h = kvh * group + it.hi;
    const int n = static_cast<int>(min(static_cast<std::int64_t>(kTile), a.q_len - it.q0));
    load_tile_async<kTile, D>(sQ + buf * E, p.q, a.ldq, b * a.q_len + it.q0, n, h * D);
    load_tile_async<kTile, D>(sO + buf * E, p.dout, p.ld_dout, b * a.q_len + it.q0, n, h * D);
    cp_async_commit();
    kern::load_tokens<kThreads>(sQo + buf * kTile, sQd + buf * kTile, kTile, n, a.q_order, a.q_doc,
                                b, a.q_len, it.q0);
    load_query_stats(sL + buf * kTile, sDl + buf * kTile, n, p,
                     (b * a.heads + h) * a.q_len + it.q0);
  };

  float dk_acc[D / 8][4], dv_acc[D / 8][4];
  zero(dk_acc);
  zero(dv_acc);
  const std::uint32_t k_base = smem_address(sK), v_base = smem_address(sV);
  Item it = next_item({0, 0});
  int buf = 0;
  if (it.hi < group) load_q(it, 0);
  while (it.hi < group) {
    cp_async_wait<0>();
    __syncthreads();
    const Item next = next_item({it.hi, it.q0 + kTile});
    if (next.hi < group) load_q(next, buf ^ 1);
    const int nq = static_cast<int>(min(static_cast<std::int64_t>(kTile), a.q_len - it.q0));
    const bool whole = bk == kTile && tiles.whole(it.q0);
    const std::uint32_t q_base = smem_address(sQ + buf * E), o_base = smem_address(sO + buf * E);
    const int* qo = sQo + buf * kTile;
    const int* qd = sQd + buf * kTile;
    const float* L = sL + buf * kTile;
    const float* dl = sDl + buf * kTile;

    float st[kTile / 8][4], dpt[kTile / 8][4];
    zero(st);
    zero(dpt);
    tile_product_abt<D>(st, k_base, warp * 16, q_base, lane);   // S^T = K Q^T
    tile_product_abt<D>(dpt, v_base, warp * 16, o_base, lane);  // dP^T = V dO^T
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const int r = warp * 16 + g + 8 * hh;  // key
#pragma unroll
      for (int nt = 0; nt < kTile / 8; ++nt) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int c = nt * 8 + 2 * t + e;  // query
          const bool vis =
              L[c] != -CUDART_INF_F &&
              (whole || (c < nq && kern::visible(a.causal, qo[c], qd[c], sKo[r], sKd[r])));
          const int i = 2 * hh + e;
          const float pr = vis ? exp2f(st[nt][i] * scale_log2 - L[c]) : 0.f;
          st[nt][i] = pr;                          // P^T
          dpt[nt][i] = pr * (dpt[nt][i] - dl[c]);  // dS^T / scale
        }
      }
    }
    tile_product_cb<D>(dv_acc, st, o_base, lane);   // dV += P^T dO
    tile_product_cb<D>(dk_acc, dpt, q_base, lane);  // dK += dS^T Q
    if constexpr (kAtomicDq) {
      const std::int64_t h = kvh * group + it.hi;
      add_dq_atomically<D>(dpt, reinterpret_cast<bf16_t*>(sDl + 2 * kTile), k_base, warp, lane, nq,
                           static_cast<float>(a.scale),
                           dq_accum + (b * a.q_len + it.q0) * ld_acc + h * D, ld_acc);
    }
    it = next;
    buf ^= 1;
  }
  cp_async_wait<0>();
  const std::int64_t row0 = b * a.kv_len + k0 + warp * 16;
  store_warp_rows<D>(dk_acc, static_cast<float>(a.scale), lane, bk - warp * 16,
                     dk + row0 * ld_dk + kvh * D, ld_dk);
  store_warp_rows<D>(dv_acc, 1.f, lane, bk - warp * 16, dv + row0 * ld_dv + kvh * D, ld_dv);
}

// dq = dq_accum rounded to bf16 (rows x width, row strides in elements). A template (of the
// output type, bf16_t) so that every file including this header may instantiate it.
template <class Out>
__global__ void __launch_bounds__(kThreads)
    flash_dq_convert_kernel(const float* acc, std::int64_t ld_acc, Out* dq, std::int64_t ld_dq,
                            std::int64_t rows, std::int64_t width) {
  const std::int64_t n = rows * width;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t r = i / width, c = i - r * width;
    const std::uint32_t packed = pack_bf16(acc[r * ld_acc + c], 0.f);
    dq[r * ld_dq + c].bits = static_cast<unsigned short>(packed & 0xffffu);
  }
}

}  // namespace lt::cuda::flash
