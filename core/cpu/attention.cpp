// Blockwise attention with online softmax (FlashAttention-2 style) on the CPU. Scores exist one
// kBlockQ x kBlockK tile at a time; forward keeps the row log-sum-exp, backward recomputes the
// scores from it. Work is split over (sequence, head) in forward and (sequence, KV head) in
// backward, so each output element is written by one task in a fixed order.
#include <cblas.h>

#include <limits>
#include <vector>

#include "core/cpu/common.h"
#include "core/cpu/kernels.h"

namespace lt::cpu {
namespace {

constexpr std::int64_t kBlockQ = 64;
constexpr std::int64_t kBlockK = 64;

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
          const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c,
          std::int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
          const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta,
          double* c, std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

// Rows of one head as a compute-type matrix: the tensor itself when the types agree, else a
// converted copy in a workspace tensor.
template <class C>
struct HeadRows {
  const C* p = nullptr;
  std::int64_t ld = 0;
  Tensor scratch;
};

template <class T, class C>
HeadRows<C> head_rows(const Tensor& t, std::int64_t row0, std::int64_t rows, std::int64_t col0,
                      std::int64_t width) {
  HeadRows<C> h;
  const T* base = t.data<T>() + row0 * t.row_stride() + col0;
  if constexpr (std::is_same_v<T, C>) {
    h.p = base;
    h.ld = t.row_stride();
  } else {
    h.scratch =
        Tensor::empty(Shape{rows, width}, dtype_of<C>(), MemCategory::workspace, Device::cpu);
    C* dst = h.scratch.template data<C>();
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < width; ++c)
        dst[r * width + c] = load(base, r * t.row_stride() + c);
    h.p = dst;
    h.ld = width;
  }
  return h;
}

// Causal order and document of one sequence's tokens, with per-tile ranges for skipping.
struct TokenInfo {
  std::span<const std::int32_t> order;
  std::span<const std::int32_t> doc;

  std::int32_t order_at(std::int64_t i) const {
    return order.empty() ? static_cast<std::int32_t>(i) : order[static_cast<std::size_t>(i)];
  }
  std::int32_t doc_at(std::int64_t i) const {
    return doc.empty() ? 0 : doc[static_cast<std::size_t>(i)];
  }
};

struct TileRange {
  std::int32_t order_min, order_max, doc_min, doc_max;
};

TileRange tile_range(const TokenInfo& info, std::int64_t begin, std::int64_t end) {
  TileRange r{std::numeric_limits<std::int32_t>::max(), std::numeric_limits<std::int32_t>::min(),
              std::numeric_limits<std::int32_t>::max(), std::numeric_limits<std::int32_t>::min()};
  for (std::int64_t i = begin; i < end; ++i) {
    r.order_min = std::min(r.order_min, info.order_at(i));
    r.order_max = std::max(r.order_max, info.order_at(i));
    r.doc_min = std::min(r.doc_min, info.doc_at(i));
    r.doc_max = std::max(r.doc_max, info.doc_at(i));
  }
  return r;
}

enum class Visibility { none, partial, full };

Visibility classify(const TileRange& q, const TileRange& k, bool causal) {
  if (causal && k.order_min > q.order_max) return Visibility::none;
  if (k.doc_max < q.doc_min || k.doc_min > q.doc_max) return Visibility::none;
  const bool causal_full = !causal || k.order_max <= q.order_min;
  const bool one_doc = q.doc_min == q.doc_max && k.doc_min == k.doc_max && q.doc_min == k.doc_min;
  return causal_full && one_doc ? Visibility::full : Visibility::partial;
}

// Everything a task needs about one sequence b.
struct SequenceView {
  TokenInfo q, k;
  std::vector<TileRange> q_tiles, k_tiles;
  bool causal;

  bool visible(std::int64_t i, std::int64_t j) const {
    if (causal && k.order_at(j) > q.order_at(i)) return false;
    return k.doc_at(j) == q.doc_at(i);
  }
};

std::span<const std::int32_t> sub(std::span<const std::int32_t> s, std::int64_t off,
                                  std::int64_t n) {
  return s.empty() ? s : s.subspan(static_cast<std::size_t>(off), static_cast<std::size_t>(n));
}

SequenceView sequence_view(const AttentionShape& a, std::int64_t b) {
  SequenceView v;
  v.causal = a.causal;
  v.q = {sub(a.q_order, b * a.q_len, a.q_len), sub(a.q_doc, b * a.q_len, a.q_len)};
  v.k = {sub(a.k_order, b * a.kv_len, a.kv_len), sub(a.k_doc, b * a.kv_len, a.kv_len)};
  for (std::int64_t i = 0; i < a.q_len; i += kBlockQ)
    v.q_tiles.push_back(tile_range(v.q, i, std::min(a.q_len, i + kBlockQ)));
  for (std::int64_t j = 0; j < a.kv_len; j += kBlockK)
    v.k_tiles.push_back(tile_range(v.k, j, std::min(a.kv_len, j + kBlockK)));
  return v;
}

template <class C>
void mask_tile(const SequenceView& sv, std::int64_t q0, std::int64_t bq, std::int64_t k0,
               std::int64_t bk, C* s) {
  for (std::int64_t i = 0; i < bq; ++i)
    for (std::int64_t j = 0; j < bk; ++j)
      if (!sv.visible(q0 + i, k0 + j)) s[i * kBlockK + j] = -std::numeric_limits<C>::infinity();
}

double resolved_scale(const AttentionShape& a) {
  return a.scale != 0.0 ? a.scale : 1.0 / std::sqrt(static_cast<double>(a.head_dim));
}

template <class T, class O>
void forward_head(const AttentionShape& a, std::int64_t b, std::int64_t h, const SequenceView& sv,
                  const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                  const Tensor& lse) {
  using C = compute_t<T>;
  const std::int64_t hd = a.head_dim, g = h / (a.heads / a.kv_heads);
  const C scale = static_cast<C>(resolved_scale(a));
  auto Q = head_rows<T, C>(q, b * a.q_len, a.q_len, h * hd, hd);
  auto K = head_rows<T, C>(k, b * a.kv_len, a.kv_len, g * hd, hd);
  auto V = head_rows<T, C>(v, b * a.kv_len, a.kv_len, g * hd, hd);
  Tensor work = Tensor::empty(Shape{kBlockQ * (kBlockK + hd + 2)}, dtype_of<C>(),
                              MemCategory::workspace, Device::cpu);
  C* s = work.data<C>();
  C* acc = s + kBlockQ * kBlockK;
  C* m = acc + kBlockQ * hd;
  C* l = m + kBlockQ;
  O* o = out.data<O>();
  stat_t<T>* lse_p = lse.data<stat_t<T>>() + (b * a.heads + h) * a.q_len;
  const C neg_inf = -std::numeric_limits<C>::infinity();

  for (std::int64_t qt = 0, q0 = 0; q0 < a.q_len; ++qt, q0 += kBlockQ) {
    const std::int64_t bq = std::min(kBlockQ, a.q_len - q0);
    std::fill_n(m, bq, neg_inf);
    std::fill_n(l, bq, C(0));
    std::fill_n(acc, bq * hd, C(0));
    for (std::int64_t kt = 0, k0 = 0; k0 < a.kv_len; ++kt, k0 += kBlockK) {
      const Visibility vis = classify(sv.q_tiles[static_cast<std::size_t>(qt)],
                                      sv.k_tiles[static_cast<std::size_t>(kt)], a.causal);
      if (vis == Visibility::none) continue;
      const std::int64_t bk = std::min(kBlockK, a.kv_len - k0);
      gemm(false, true, bq, bk, hd, scale, Q.p + q0 * Q.ld, Q.ld, K.p + k0 * K.ld, K.ld, C(0), s,
           kBlockK);
      if (vis == Visibility::partial) mask_tile(sv, q0, bq, k0, bk, s);
      for (std::int64_t i = 0; i < bq; ++i) {
        C* row = s + i * kBlockK;
        C mx = m[i];
        for (std::int64_t j = 0; j < bk; ++j) mx = std::max(mx, row[j]);
        if (mx == neg_inf) {  // nothing visible yet in this row
          std::fill_n(row, bk, C(0));
          continue;
        }
        const C alpha = exp_approx(m[i] - mx);
        C sum = 0;
#pragma omp simd reduction(+ : sum)
        for (std::int64_t j = 0; j < bk; ++j) {
          row[j] = exp_approx(row[j] - mx);
          sum += row[j];
        }
        l[i] = l[i] * alpha + sum;
        m[i] = mx;
        C* ai = acc + i * hd;
#pragma omp simd
        for (std::int64_t d = 0; d < hd; ++d) ai[d] *= alpha;
      }
      gemm(false, false, bq, hd, bk, C(1), s, kBlockK, V.p + k0 * V.ld, V.ld, C(1), acc, hd);
    }
    for (std::int64_t i = 0; i < bq; ++i) {
      const std::int64_t row = b * a.q_len + q0 + i;
      O* orow = o + row * out.row_stride() + h * hd;
      const C inv = l[i] > 0 ? C(1) / l[i] : C(0);
      for (std::int64_t d = 0; d < hd; ++d) {
        store(orow, d, static_cast<compute_t<O>>(acc[i * hd + d] * inv));
      }
      lse_p[q0 + i] = static_cast<stat_t<T>>(l[i] > 0 ? m[i] + std::log(l[i]) : neg_inf);
    }
  }
}

template <class T>
void backward_group(const AttentionShape& a, std::int64_t b, std::int64_t g, const SequenceView& sv,
                    const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                    const Tensor& lse, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                    const Tensor& dv) {
  using C = compute_t<T>;
  const std::int64_t hd = a.head_dim, group = a.heads / a.kv_heads;
  const C scale = static_cast<C>(resolved_scale(a));
  auto K = head_rows<T, C>(k, b * a.kv_len, a.kv_len, g * hd, hd);
  auto V = head_rows<T, C>(v, b * a.kv_len, a.kv_len, g * hd, hd);
  Tensor kv_grads =
      Tensor::zeros(Shape{2 * a.kv_len * hd}, dtype_of<C>(), MemCategory::workspace, Device::cpu);
  C* dK = kv_grads.data<C>();
  C* dV = dK + a.kv_len * hd;
  Tensor work = Tensor::empty(Shape{2 * kBlockQ * kBlockK + kBlockQ * hd + a.q_len}, dtype_of<C>(),
                              MemCategory::workspace, Device::cpu);
  C* p = work.data<C>();
  C* dp = p + kBlockQ * kBlockK;
  C* dq_acc = dp + kBlockQ * kBlockK;
  C* delta = dq_acc + kBlockQ * hd;

  for (std::int64_t h = g * group; h < (g + 1) * group; ++h) {
    auto Q = head_rows<T, C>(q, b * a.q_len, a.q_len, h * hd, hd);
    auto O = head_rows<T, C>(out, b * a.q_len, a.q_len, h * hd, hd);
    auto dO = head_rows<T, C>(dout, b * a.q_len, a.q_len, h * hd, hd);
    const stat_t<T>* L = lse.data<stat_t<T>>() + (b * a.heads + h) * a.q_len;
    for (std::int64_t i = 0; i < a.q_len; ++i) {
      C sum = 0;
      for (std::int64_t d = 0; d < hd; ++d) sum += dO.p[i * dO.ld + d] * O.p[i * O.ld + d];
      delta[i] = sum;
    }
    for (std::int64_t qt = 0, q0 = 0; q0 < a.q_len; ++qt, q0 += kBlockQ) {
      const std::int64_t bq = std::min(kBlockQ, a.q_len - q0);
      std::fill_n(dq_acc, bq * hd, C(0));
      for (std::int64_t kt = 0, k0 = 0; k0 < a.kv_len; ++kt, k0 += kBlockK) {
        const Visibility vis = classify(sv.q_tiles[static_cast<std::size_t>(qt)],
                                        sv.k_tiles[static_cast<std::size_t>(kt)], a.causal);
        if (vis == Visibility::none) continue;
        const std::int64_t bk = std::min(kBlockK, a.kv_len - k0);
        gemm(false, true, bq, bk, hd, scale, Q.p + q0 * Q.ld, Q.ld, K.p + k0 * K.ld, K.ld, C(0), p,
             kBlockK);
        if (vis == Visibility::partial) mask_tile(sv, q0, bq, k0, bk, p);
        for (std::int64_t i = 0; i < bq; ++i) {
          const C li = static_cast<C>(L[q0 + i]);
          C* row = p + i * kBlockK;
          if (li == -std::numeric_limits<C>::infinity()) {
            std::fill_n(row, bk, C(0));
            continue;
          }
#pragma omp simd
          for (std::int64_t j = 0; j < bk; ++j) row[j] = exp_approx(row[j] - li);
        }
        // dV += P^T dO ; dP = dO V^T
        gemm(true, false, bk, hd, bq, C(1), p, kBlockK, dO.p + q0 * dO.ld, dO.ld, C(1),
             dV + k0 * hd, hd);
        gemm(false, true, bq, bk, hd, C(1), dO.p + q0 * dO.ld, dO.ld, V.p + k0 * V.ld, V.ld, C(0),
             dp, kBlockK);
        for (std::int64_t i = 0; i < bq; ++i) {
          const C di = delta[q0 + i];
#pragma omp simd
          for (std::int64_t j = 0; j < bk; ++j)
            dp[i * kBlockK + j] = p[i * kBlockK + j] * (dp[i * kBlockK + j] - di) * scale;
        }
        // dQ += dS K ; dK += dS^T Q
        gemm(false, false, bq, hd, bk, C(1), dp, kBlockK, K.p + k0 * K.ld, K.ld, C(1), dq_acc, hd);
        gemm(true, false, bk, hd, bq, C(1), dp, kBlockK, Q.p + q0 * Q.ld, Q.ld, C(1), dK + k0 * hd,
             hd);
      }
      T* dqp = dq.data<T>();
      for (std::int64_t i = 0; i < bq; ++i) {
        T* row = dqp + (b * a.q_len + q0 + i) * dq.row_stride() + h * hd;
        for (std::int64_t d = 0; d < hd; ++d) store(row, d, dq_acc[i * hd + d]);
      }
    }
  }
  T* dkp = dk.data<T>();
  T* dvp = dv.data<T>();
  for (std::int64_t j = 0; j < a.kv_len; ++j) {
    T* krow = dkp + (b * a.kv_len + j) * dk.row_stride() + g * hd;
    T* vrow = dvp + (b * a.kv_len + j) * dv.row_stride() + g * hd;
    for (std::int64_t d = 0; d < hd; ++d) {
      store(krow, d, dK[j * hd + d]);
      store(vrow, d, dV[j * hd + d]);
    }
  }
}

void check_shapes(const AttentionShape& a, const Tensor& q, const Tensor& k, const Tensor& v,
                  const Tensor& out, const Tensor& lse) {
  LT_CHECK(a.heads > 0 && a.kv_heads > 0 && a.heads % a.kv_heads == 0 && a.head_dim > 0,
           "attention heads " << a.heads << " / kv heads " << a.kv_heads);
  LT_CHECK(q.dim(0) == a.batch * a.q_len && q.dim(1) == a.heads * a.head_dim,
           "attention q " << q.describe() << " for batch " << a.batch << " x " << a.q_len);
  LT_CHECK(k.dim(0) == a.batch * a.kv_len && k.dim(1) == a.kv_heads * a.head_dim &&
               v.shape() == k.shape(),
           "attention k/v " << k.describe() << " " << v.describe());
  LT_CHECK(out.shape() == q.shape() && lse.numel() == a.batch * a.heads * a.q_len,
           "attention out " << out.describe() << " lse " << lse.describe());
  LT_CHECK(q.dtype() == k.dtype() && k.dtype() == v.dtype(), "attention q/k/v dtypes differ");
  const auto n_q = static_cast<std::size_t>(a.batch * a.q_len);
  const auto n_k = static_cast<std::size_t>(a.batch * a.kv_len);
  LT_CHECK((a.q_order.empty() || a.q_order.size() == n_q) &&
               (a.k_order.empty() || a.k_order.size() == n_k) &&
               (a.q_doc.empty() || a.q_doc.size() == n_q) &&
               (a.k_doc.empty() || a.k_doc.size() == n_k),
           "attention order/doc spans do not match the token counts");
}

}  // namespace

void attention_forward(const AttentionShape& a, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& out, const Tensor& lse) {
  check_shapes(a, q, k, v, out, lse);
  // A bf16 forward may write fp32 partial outputs (ring attention merges them before rounding).
  LT_CHECK(out.dtype() == q.dtype() || (q.dtype() == DType::bf16 && out.dtype() == DType::f32),
           "attention output " << out.describe() << " for " << q.describe() << " inputs");
  std::vector<SequenceView> views;
  for (std::int64_t b = 0; b < a.batch; ++b) views.push_back(sequence_view(a, b));
  dispatch_float(q.dtype(), [&]<class T>() {
    parallel_tasks(a.batch * a.heads, [&](std::int64_t task) {
      const std::int64_t b = task / a.heads, h = task % a.heads;
      if (out.dtype() == q.dtype()) {
        forward_head<T, T>(a, b, h, views[static_cast<std::size_t>(b)], q, k, v, out, lse);
      } else {
        forward_head<T, float>(a, b, h, views[static_cast<std::size_t>(b)], q, k, v, out, lse);
      }
    });
  });
}

void attention_backward(const AttentionShape& a, const Tensor& q, const Tensor& k, const Tensor& v,
                        const Tensor& out, const Tensor& lse, const Tensor& dout, const Tensor& dq,
                        const Tensor& dk, const Tensor& dv) {
  check_shapes(a, q, k, v, out, lse);
  LT_CHECK(dout.shape() == q.shape() && dq.shape() == q.shape() && dk.shape() == k.shape() &&
               dv.shape() == v.shape(),
           "attention gradients do not match their inputs");
  std::vector<SequenceView> views;
  for (std::int64_t b = 0; b < a.batch; ++b) views.push_back(sequence_view(a, b));
  dispatch_float(q.dtype(), [&]<class T>() {
    parallel_tasks(a.batch * a.kv_heads, [&](std::int64_t task) {
      const std::int64_t b = task / a.kv_heads, g = task % a.kv_heads;
      backward_group<T>(a, b, g, views[static_cast<std::size_t>(b)], q, k, v, out, lse, dout, dq,
                        dk, dv);
    });
  });
}

}  // namespace lt::cpu
