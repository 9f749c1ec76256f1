// The fragment arithmetic of the flash-attention kernels (core/cuda/flash_layout.h) against an
// emulation of one warp's ldmatrix.x4 (plain and .trans) and mma.m16n8k16, written here from the
// PTX ISA's descriptions. The kernels' tile products are replayed with the kernels' own
// lane-address formulas and operand orders: S = Q K^T from [rows][dims] tiles, O = P V with P
// converted from score fragments, dV = P^T dO and dK = dS^T Q as the backward forms them. Runs on
// the CPU, so the index arithmetic is checked even where no GPU is present; so are the rules
// that skip invisible tiles and drop the mask on wholly visible ones (attention_visibility.h).
// Values are small integers: every product and sum is exact, so the comparisons are exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "core/cuda/attention_visibility.h"
#include "core/cuda/flash_layout.h"

namespace lt::cuda::flash {
namespace {

constexpr int kLanes = 32;

// A row-major tile of `rows` x `cols` values with a padded row stride, as in shared memory.
struct Tile {
  int rows, cols, stride;
  std::vector<float> v;
  Tile(int r, int c, int s) : rows(r), cols(c), stride(s), v(static_cast<std::size_t>(r * s), 0) {}
  float& at(int r, int c) { return v[static_cast<std::size_t>(r * stride + c)]; }
  float at(int r, int c) const { return v[static_cast<std::size_t>(r * stride + c)]; }
};

Tile make_tile(int rows, int cols, int stride, int seed) {
  Tile t(rows, cols, stride);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) t.at(r, c) = static_cast<float>((r * 7 + c * 3 + seed) % 9 - 4);
  return t;
}

// One 32-bit register of a lane: two 16-bit elements, [0] in the low half.
using Reg = std::array<float, 2>;
using Frag4 = std::array<std::array<Reg, 4>, kLanes>;  // four registers per lane
using Acc = std::array<std::array<float, 4>, kLanes>;  // a C fragment per lane

// ldmatrix.sync.aligned.m8n8.x4(.trans).b16: lanes 8i..8i+7 give the addresses of rows 0-7 of
// matrix i (here: a tile row and column where the 8 elements of the row start). Without .trans
// lane l receives elements (l / 4, 2 (l % 4)) and (l / 4, 2 (l % 4) + 1) of each matrix; with
// .trans, (2 (l % 4), l / 4) and (2 (l % 4) + 1, l / 4).
Frag4 ldmatrix_x4(const Tile& t, const std::array<std::array<int, 2>, kLanes>& addr, bool trans) {
  Frag4 out{};
  for (int m = 0; m < 4; ++m) {
    auto element = [&](int row, int col) {
      const auto& a = addr[static_cast<std::size_t>(8 * m + row)];
      return t.at(a[0], a[1] + col);
    };
    for (int l = 0; l < kLanes; ++l) {
      const int g = l / 4, q = l % 4;
      Reg& r = out[static_cast<std::size_t>(l)][static_cast<std::size_t>(m)];
      r = trans ? Reg{element(2 * q, g), element(2 * q + 1, g)}
                : Reg{element(g, 2 * q), element(g, 2 * q + 1)};
    }
  }
  return out;
}

// mma.sync.aligned.m16n8k16.row.col: d += A (16 x 16) B (16 x 8), from the ISA's fragment
// tables (lane l: g = l / 4, t = l % 4).
void mma(Acc& d, const Frag4& a, const std::array<std::array<Reg, 2>, kLanes>& b) {
  float A[16][16], B[16][8];
  for (int l = 0; l < kLanes; ++l) {
    const int g = l / 4, t = l % 4;
    const auto& ar = a[static_cast<std::size_t>(l)];
    const auto& br = b[static_cast<std::size_t>(l)];
    for (int e = 0; e < 2; ++e) {
      A[g][2 * t + e] = ar[0][static_cast<std::size_t>(e)];
      A[g + 8][2 * t + e] = ar[1][static_cast<std::size_t>(e)];
      A[g][2 * t + 8 + e] = ar[2][static_cast<std::size_t>(e)];
      A[g + 8][2 * t + 8 + e] = ar[3][static_cast<std::size_t>(e)];
      B[2 * t + e][g] = br[0][static_cast<std::size_t>(e)];
      B[2 * t + 8 + e][g] = br[1][static_cast<std::size_t>(e)];
    }
  }
  for (int l = 0; l < kLanes; ++l) {
    const int g = l / 4, t = l % 4;
    for (int e = 0; e < 4; ++e) {
      const int row = g + 8 * (e / 2), col = 2 * t + e % 2;
      float sum = 0;
      for (int k = 0; k < 16; ++k) sum += A[row][k] * B[k][col];
      d[static_cast<std::size_t>(l)][static_cast<std::size_t>(e)] += sum;
    }
  }
}

using Addr = std::array<std::array<int, 2>, kLanes>;

// The lane addresses of a 16 x 16 block at (row0, col0) by one of the kernels' formula pairs.
template <class Row, class Col>
Addr addresses(int row0, int col0, Row row, Col col) {
  Addr a{};
  for (int l = 0; l < kLanes; ++l) a[static_cast<std::size_t>(l)] = {row0 + row(l), col0 + col(l)};
  return a;
}

// The two n-tiles' B operands out of one x4 load (registers 0-1 and 2-3).
std::array<std::array<std::array<Reg, 2>, kLanes>, 2> split_pair(const Frag4& f) {
  std::array<std::array<std::array<Reg, 2>, kLanes>, 2> out{};
  for (int l = 0; l < kLanes; ++l)
    for (int n = 0; n < 2; ++n)
      out[static_cast<std::size_t>(n)][static_cast<std::size_t>(l)] = {
          f[static_cast<std::size_t>(l)][static_cast<std::size_t>(2 * n)],
          f[static_cast<std::size_t>(l)][static_cast<std::size_t>(2 * n + 1)]};
  return out;
}

// acc[nt] (16 rows x 8 * NT columns) += A B^T over `depth` (a multiple of 16): A rows [a_row0,
// a_row0 + 16) of `a`, B the first 8 * NT rows of `b`, both stored [row][depth] — the kernels'
// S = Q K^T, dP = dO V^T, S^T = K Q^T and dP^T = V dO^T.
template <int NT>
void product_abt(std::array<Acc, NT>& acc, const Tile& a, int a_row0, const Tile& b, int depth) {
  for (int kk = 0; kk < depth / 16; ++kk) {
    const Frag4 fa = ldmatrix_x4(a, addresses(a_row0, kk * 16, a_row, a_col), false);
    for (int np = 0; np < NT / 2; ++np) {
      const auto fb =
          split_pair(ldmatrix_x4(b, addresses(np * 16, kk * 16, b_pair_row, b_pair_col), false));
      mma(acc[static_cast<std::size_t>(2 * np)], fa, fb[0]);
      mma(acc[static_cast<std::size_t>(2 * np + 1)], fa, fb[1]);
    }
  }
}

// acc[dt] (16 x 8 * DT) += C B where C (16 x 8 * KT) comes as score fragments c[0..KT) and B is
// stored [inner][columns] — the kernels' O = P V, dQ = dS K, dV = P^T dO and dK = dS^T Q.
template <int KT, int DT>
void product_cb(std::array<Acc, DT>& acc, const std::array<Acc, KT>& c, const Tile& b) {
  for (int kk = 0; kk < KT / 2; ++kk) {
    Frag4 fa{};
    for (int l = 0; l < kLanes; ++l)
      for (int r = 0; r < 4; ++r) {
        const Acc& frag = c[static_cast<std::size_t>(2 * kk + c_to_a_fragment(r))];
        const auto& lane = frag[static_cast<std::size_t>(l)];
        const auto e = static_cast<std::size_t>(c_to_a_element(r));
        fa[static_cast<std::size_t>(l)][static_cast<std::size_t>(r)] = {lane[e], lane[e + 1]};
      }
    for (int dp = 0; dp < DT / 2; ++dp) {
      const auto fb =
          split_pair(ldmatrix_x4(b, addresses(kk * 16, dp * 16, bt_pair_row, bt_pair_col), true));
      mma(acc[static_cast<std::size_t>(2 * dp)], fa, fb[0]);
      mma(acc[static_cast<std::size_t>(2 * dp + 1)], fa, fb[1]);
    }
  }
}

// Element (row, col) of the 16 x 8 N block held as fragments.
template <std::size_t N>
float element(const std::array<Acc, N>& acc, int row, int col) {
  const int tile = col / 8, c = col % 8;
  const int g = row % 8, t = c / 2;
  const int e = (row / 8) * 2 + c % 2;
  return acc[static_cast<std::size_t>(tile)][static_cast<std::size_t>(4 * g + t)]
            [static_cast<std::size_t>(e)];
}

constexpr int kD = 64;  // head dim of the replay (the kernels take 64 and 128)
constexpr int kStride = row_stride<kD>();

TEST(FlashLayout, ScoresAreQTimesKTransposed) {
  const Tile q = make_tile(32, kD, kStride, 1), k = make_tile(64, kD, kStride, 2);
  for (int warp_row0 : {0, 16}) {
    std::array<Acc, 8> s{};
    product_abt<8>(s, q, warp_row0, k, kD);
    for (int r = 0; r < 16; ++r)
      for (int c = 0; c < 64; ++c) {
        float want = 0;
        for (int d = 0; d < kD; ++d) want += q.at(warp_row0 + r, d) * k.at(c, d);
        ASSERT_EQ(element(s, r, c), want) << "row " << r << " key " << c;
      }
  }
}

TEST(FlashLayout, ScoreFragmentsTimesVIsPV) {
  const Tile q = make_tile(16, kD, kStride, 3), k = make_tile(64, kD, kStride, 4);
  const Tile v = make_tile(64, kD, kStride, 5);  // [key][dim]
  std::array<Acc, 8> p{};
  product_abt<8>(p, q, 0, k, kD);
  std::array<Acc, kD / 8> o{};
  product_cb<8, kD / 8>(o, p, v);
  for (int r = 0; r < 16; ++r)
    for (int d = 0; d < kD; ++d) {
      float want = 0;
      for (int key = 0; key < 64; ++key) want += element(p, r, key) * v.at(key, d);
      ASSERT_EQ(element(o, r, d), want) << "row " << r << " dim " << d;
    }
}

// The dK/dV kernel: rows are keys, columns queries; dV = P^T dO takes dO stored [query][dim].
TEST(FlashLayout, BackwardProductsOfTransposedScores) {
  const Tile k = make_tile(64, kD, kStride, 6), q = make_tile(64, kD, kStride, 7);
  const Tile dout = make_tile(64, kD, kStride, 8);
  const int warp_keys0 = 48;
  std::array<Acc, 8> st{};
  product_abt<8>(st, k, warp_keys0, q, kD);  // S^T = K Q^T
  std::array<Acc, kD / 8> dv{};
  product_cb<8, kD / 8>(dv, st, dout);  // "dV" = S^T dO
  for (int key = 0; key < 16; ++key)
    for (int d = 0; d < kD; ++d) {
      float want = 0;
      for (int qi = 0; qi < 64; ++qi) {
        float s = 0;
        for (int e = 0; e < kD; ++e) s += k.at(warp_keys0 + key, e) * q.at(qi, e);
        want += s * dout.at(qi, d);
      }
      ASSERT_EQ(element(dv, key, d), want) << "key " << key << " dim " << d;
    }
}

// Rows padded to D + 8 bf16: the 8 rows one ldmatrix matrix reads start in 8 different 16-byte
// bank groups (of the 128 bytes the 32 banks span), for every row offset.
TEST(FlashLayout, PaddedRowsSpreadLdmatrixRowsOverTheBanks) {
  for (int stride_bytes : {row_stride<64>() * 2, row_stride<128>() * 2}) {
    EXPECT_EQ(stride_bytes % 16, 0) << "cp.async and ldmatrix need 16-byte aligned rows";
    for (int first = 0; first < 16; ++first) {
      std::set<int> groups;
      for (int r = first; r < first + 8; ++r) groups.insert((r * stride_bytes) % 128 / 16);
      EXPECT_EQ(groups.size(), 8u) << "stride " << stride_bytes << " bytes, rows from " << first;
    }
  }
}

// The tile rules against every query/key pair of random tiles (orders from a zigzag-like mix of
// positions, a few documents): a tile pair skipped as invisible has no visible pair, and one
// taken as wholly visible has no masked pair; and they fire where they should (a causal diagonal
// tile is neither, a tile strictly in the past of one document is whole).
TEST(TileVisibility, SkippedTilesHideEveryPairAndWholeTilesShowEveryPair) {
  struct Token {
    int order, doc;
  };
  auto range_of = [](const std::vector<Token>& tokens) {
    kern::Range r{tokens[0].order, tokens[0].order, tokens[0].doc, tokens[0].doc};
    for (const Token& t : tokens) {
      r.omin = std::min(r.omin, t.order);
      r.omax = std::max(r.omax, t.order);
      r.dmin = std::min(r.dmin, t.doc);
      r.dmax = std::max(r.dmax, t.doc);
    }
    return r;
  };
  std::mt19937 gen(7);
  int skipped = 0, whole = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    const bool causal = trial % 3 != 0;
    const int docs = 1 + trial % 3, base = static_cast<int>(gen() % 64);
    auto tile = [&](int offset) {
      std::vector<Token> t(static_cast<std::size_t>(1 + gen() % 8));
      for (Token& x : t) {
        x.order = offset + static_cast<int>(gen() % 16);
        x.doc = static_cast<int>(gen() % static_cast<unsigned>(docs)) + (offset >= 32 ? 1 : 0);
      }
      return t;
    };
    const std::vector<Token> q = tile(base), k = tile(static_cast<int>(gen() % 64));
    bool any = false, all = true;
    for (const Token& a : q)
      for (const Token& b : k) {
        const bool v = kern::visible(causal, a.order, a.doc, b.order, b.doc);
        any = any || v;
        all = all && v;
      }
    const kern::Range qr = range_of(q), kr = range_of(k);
    if (kern::none_visible(qr, kr, causal)) {
      ++skipped;
      ASSERT_FALSE(any) << "trial " << trial << ": a skipped tile pair has a visible pair";
    }
    if (kern::all_visible(qr, kr, causal)) {
      ++whole;
      ASSERT_TRUE(all) << "trial " << trial << ": a whole tile pair has a masked pair";
    }
  }
  EXPECT_GT(skipped, 1000);
  EXPECT_GT(whole, 1000);
  // The causal diagonal: queries 0-7 and keys 0-7 of one document, neither skipped nor whole.
  const kern::Range diag{0, 7, 0, 0};
  EXPECT_FALSE(kern::none_visible(diag, diag, true));
  EXPECT_FALSE(kern::all_visible(diag, diag, true));
  EXPECT_TRUE(kern::all_visible(diag, diag, false));
  // Keys 0-7 for queries 8-15 of the same document: whole; of another document: skipped.
  EXPECT_TRUE(kern::all_visible({8, 15, 0, 0}, diag, true));
  EXPECT_TRUE(kern::none_visible({8, 15, 1, 1}, diag, true));
  EXPECT_TRUE(kern::none_visible(diag, {8, 15, 0, 0}, true)) << "keys in the future";
}

}  // namespace
}  // namespace lt::cuda::flash
