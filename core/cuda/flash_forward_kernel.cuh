// Flash-attention forward on tensor cores (bf16 in, fp32 accumulation), FlashAttention-2's
// scheme: one block per 128 queries of one head (head_dim 64: 4 warps of 32 query rows; 128:
// 8 warps of 16 rows, which keeps the O accumulators in registers without spills); K/V tiles of 64
// keys stream through double-buffered shared memory (cp.async, the next tile loads while this
// one computes); S = Q K^T and O += P V run as mma.m16n8k16 with the scores kept in registers
// between the two (FA2 register reuse); online softmax in the exp2 domain per row.
//
// Masks are the framework's general ones (core/ops.h AttentionShape): per-token causal orders
// (zigzag ring blocks pass their global positions, so one call is one ring step) and documents.
// Tiles no query of the block can see are never loaded; tiles every query sees whole skip the
// per-element mask. GQA reads the shared K/V head directly. Rows that see no key get out = 0 and
// lse = -inf, like the CPU backend.
#pragma once

#include "core/cuda/flash_tiles.cuh"

namespace lt::cuda::flash {

constexpr int kBr = 128;  // queries per block
constexpr int kBc = 64;   // keys per tile

template <int D>
struct ForwardWarps {
  static constexpr int mt = D == 128 ? 1 : 2;  // 16-row MMA tiles per warp
  static constexpr int rows = 16 * mt;         // query rows per warp
  static constexpr int warps = kBr / rows;
  static constexpr int threads = 32 * warps;
};

template <int D>
struct ForwardSmem {
  static constexpr int q_elems = kBr * row_stride<D>();
  static constexpr int kv_elems = kBc * row_stride<D>();
  static constexpr std::size_t bytes =
      static_cast<std::size_t>(q_elems + 4 * kv_elems) * sizeof(bf16_t) +
      sizeof(int) * (2 * kBr + 4 * kBc);
};

template <int D, class O>
__global__ void __launch_bounds__(ForwardWarps<D>::threads)
    flash_forward_kernel(launch::AttentionArgs a, O* out, std::int64_t ldo, float* lse) {
  using Smem = ForwardSmem<D>;
  constexpr int kMt = ForwardWarps<D>::mt, kRows = ForwardWarps<D>::rows;
  constexpr int kThreadsHere = ForwardWarps<D>::threads;
  constexpr int kDt = D / 8;  // 8-wide output column tiles
  LT_FLASH_SMEM(smem_raw);
  bf16_t* sQ = reinterpret_cast<bf16_t*>(smem_raw);
  bf16_t* sK = sQ + Smem::q_elems;       // [2][kBc] rows
  bf16_t* sV = sK + 2 * Smem::kv_elems;  // [2][kBc] rows
  int* sQo = reinterpret_cast<int*>(sV + 2 * Smem::kv_elems);
  int* sQd = sQo + kBr;
  int* sKo = sQd + kBr;  // [2][kBc]
  int* sKd = sKo + 2 * kBc;

  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  const int g = lane >> 2, t = lane & 3;
  const std::int64_t b = blockIdx.z, h = blockIdx.y;
  // The last query tiles first: under a causal mask they see the most keys, so the longest
  // blocks start earliest.
  const std::int64_t q0 = static_cast<std::int64_t>(gridDim.x - 1 - blockIdx.x) * kBr;
  const std::int64_t kvh = h / (a.heads / a.kv_heads);
  const int bq = static_cast<int>(min(static_cast<std::int64_t>(kBr), a.q_len - q0));
  const auto* q = static_cast<const bf16_t*>(a.q);
  const auto* k = static_cast<const bf16_t*>(a.k);
  const auto* v = static_cast<const bf16_t*>(a.v);
  const float scale_log2 = static_cast<float>(a.scale) * kLog2e;

  load_tile_async<kBr, D, kThreadsHere>(sQ, q, a.ldq, b * a.q_len + q0, bq, h * D);
  cp_async_commit();
  kern::load_tokens<kThreadsHere>(sQo, sQd, kBr, bq, a.q_order, a.q_doc, b, a.q_len, q0);

  const std::int64_t nqg = (a.q_len + kern::kGran - 1) / kern::kGran;
  const std::int64_t nkg = (a.kv_len + kern::kGran - 1) / kern::kGran;
  const Range qr = kern::tile_range(a.q_granules + 4 * b * nqg, q0, q0 + bq);
  const VisibleTiles<kBc> tiles{a.k_granules + 4 * b * nkg, a.kv_len, qr, a.causal, true};

  auto load_kv = [&](std::int64_t k0, int buf) {
    const int bk = static_cast<int>(min(static_cast<std::int64_t>(kBc), a.kv_len - k0));
    load_tile_async<kBc, D, kThreadsHere>(sK + buf * Smem::kv_elems, k, a.ldk, b * a.kv_len + k0,
                                          bk, kvh * D);
    load_tile_async<kBc, D, kThreadsHere>(sV + buf * Smem::kv_elems, v, a.ldv, b * a.kv_len + k0,
                                          bk, kvh * D);
    cp_async_commit();
    kern::load_tokens<kThreadsHere>(sKo + buf * kBc, sKd + buf * kBc, kBc, bk, a.k_order, a.k_doc,
                                    b, a.kv_len, k0);
  };

  float o[kMt][kDt][4];
  float row_max[kMt][2], row_sum[kMt][2];  // exp2 domain; row_sum is this lane's partial sum
#pragma unroll
  for (int mt = 0; mt < kMt; ++mt) {
#pragma unroll
    for (int dt = 0; dt < kDt; ++dt)
#pragma unroll
      for (int e = 0; e < 4; ++e) o[mt][dt][e] = 0.f;
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      row_max[mt][hh] = -CUDART_INF_F;
      row_sum[mt][hh] = 0.f;
    }
  }

  const std::uint32_t q_base = smem_address(sQ);
  std::int64_t k0 = tiles.next(0);
  int buf = 0;
  if (k0 < a.kv_len) load_kv(k0, 0);
  while (k0 < a.kv_len) {
    cp_async_wait<0>();
    __syncthreads();  // this tile has landed for everyone, and the other buffer is free
    const std::int64_t next = tiles.next(k0 + kBc);
    if (next < a.kv_len) load_kv(next, buf ^ 1);
    const int bk = static_cast<int>(min(static_cast<std::int64_t>(kBc), a.kv_len - k0));
    const bool whole = tiles.whole(k0);
    const std::uint32_t k_base = smem_address(sK + buf * Smem::kv_elems);
    const std::uint32_t v_base = smem_address(sV + buf * Smem::kv_elems);
    const int* ko = sKo + buf * kBc;
    const int* kd = sKd + buf * kBc;

    // S = Q K^T
    float s[kMt][kBc / 8][4];
#pragma unroll
    for (int mt = 0; mt < kMt; ++mt)
#pragma unroll
      for (int nt = 0; nt < kBc / 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[mt][nt][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      std::uint32_t qa[kMt][4];
#pragma unroll
      for (int mt = 0; mt < kMt; ++mt)
        ldmatrix_x4(qa[mt],
                    at<D>(q_base, warp * kRows + mt * 16 + a_row(lane), kk * 16 + a_col(lane)));
#pragma unroll
      for (int np = 0; np < kBc / 16; ++np) {
        std::uint32_t kb[4];
        ldmatrix_x4(kb, at<D>(k_base, np * 16 + b_pair_row(lane), kk * 16 + b_pair_col(lane)));
#pragma unroll
        for (int mt = 0; mt < kMt; ++mt) {
          mma_bf16(s[mt][2 * np], qa[mt], kb[0], kb[1]);
          mma_bf16(s[mt][2 * np + 1], qa[mt], kb[2], kb[3]);
        }
      }
    }

    // Mask, online softmax, rescale O.
#pragma unroll
    for (int mt = 0; mt < kMt; ++mt) {
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const int r = warp * kRows + mt * 16 + g + 8 * hh;
        float mx = -CUDART_INF_F;
#pragma unroll
        for (int nt = 0; nt < kBc / 8; ++nt) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float x = s[mt][nt][2 * hh + e] * scale_log2;
            if (!whole) {
              const int c = nt * 8 + 2 * t + e;
              if (c >= bk || !kern::visible(a.causal, sQo[r], sQd[r], ko[c], kd[c])) {
                x = -CUDART_INF_F;
              }
            }
            s[mt][nt][2 * hh + e] = x;
            mx = fmaxf(mx, x);
          }
        }
        mx = quad_max(mx);
        const float m_new = fmaxf(row_max[mt][hh], mx);
        const float m_use = m_new == -CUDART_INF_F ? 0.f : m_new;  // nothing visible yet
        const float alpha = exp2f(row_max[mt][hh] - m_use);
        row_max[mt][hh] = m_new;
        float sum = 0.f;
#pragma unroll
        for (int nt = 0; nt < kBc / 8; ++nt) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float p = exp2f(s[mt][nt][2 * hh + e] - m_use);
            s[mt][nt][2 * hh + e] = p;
            sum += p;
          }
        }
        row_sum[mt][hh] = row_sum[mt][hh] * alpha + sum;
#pragma unroll
        for (int dt = 0; dt < kDt; ++dt) {
          o[mt][dt][2 * hh] *= alpha;
          o[mt][dt][2 * hh + 1] *= alpha;
        }
      }
    }

    // O += P V (P from the score registers, rounded to bf16).
#pragma unroll
    for (int kk = 0; kk < kBc / 16; ++kk) {
      std::uint32_t pa[kMt][4];
#pragma unroll
      for (int mt = 0; mt < kMt; ++mt) c_to_a(pa[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        std::uint32_t vb[4];
        ldmatrix_x4_trans(vb,
                          at<D>(v_base, kk * 16 + bt_pair_row(lane), dp * 16 + bt_pair_col(lane)));
#pragma unroll
        for (int mt = 0; mt < kMt; ++mt) {
          mma_bf16(o[mt][2 * dp], pa[mt], vb[0], vb[1]);
          mma_bf16(o[mt][2 * dp + 1], pa[mt], vb[2], vb[3]);
        }
      }
    }
    k0 = next;
    buf ^= 1;
  }
  cp_async_wait<0>();  // Q's copy is still in flight when no key tile was visible

  // O / l and the row LSE (natural log).
#pragma unroll
  for (int mt = 0; mt < kMt; ++mt) {
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      const float l = quad_sum(row_sum[mt][hh]);
      const int r = warp * kRows + mt * 16 + g + 8 * hh;
      if (r >= bq) continue;
      const float inv = l > 0.f ? 1.f / l : 0.f;
      O* row = out + (b * a.q_len + q0 + r) * ldo + h * D;
#pragma unroll
      for (int dt = 0; dt < kDt; ++dt) {
        store_pair(row + dt * 8 + 2 * t, o[mt][dt][2 * hh] * inv, o[mt][dt][2 * hh + 1] * inv);
      }
      if (t == 0) {
        lse[(b * a.heads + h) * a.q_len + q0 + r] =
            l > 0.f ? (row_max[mt][hh] + log2f(l)) * kLn2 : -CUDART_INF_F;
      }
    }
  }
}

}  // namespace lt::cuda::flash
