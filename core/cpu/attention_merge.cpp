// Log-sum-exp merge of partial attention results (ring attention combines one per K/V block).
#include <limits>

#include "core/cpu/common.h"
#include "core/cpu/kernels.h"

namespace lt::cpu {
namespace {

template <class O, class P, class L, class PL>
void merge_rows(const Tensor& out, const Tensor& lse, const Tensor& part_out,
                const Tensor& part_lse, std::int64_t heads, std::int64_t hd) {
  using C = compute_t<O>;
  const std::int64_t rows = out.dim(0), batch = lse.dim(0), q_len = rows / batch;
  O* o = out.data<O>();
  const P* p = part_out.data<P>();
  L* l = lse.data<L>();
  const PL* pl = part_lse.data<PL>();
  const double neg_inf = -std::numeric_limits<double>::infinity();
  parallel_ranges(rows, 16, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const std::int64_t b = r / q_len, i = r % q_len;
      for (std::int64_t h = 0; h < heads; ++h) {
        const std::int64_t li = (b * heads + h) * q_len + i;
        const double l1 = static_cast<double>(l[li]), l2 = static_cast<double>(pl[li]);
        const double m = std::max(l1, l2);
        if (m == neg_inf || l2 == neg_inf) continue;  // nothing new for this row
        const double w1 = l1 == neg_inf ? 0.0 : std::exp(l1 - m), w2 = std::exp(l2 - m);
        const double total = w1 + w2;
        const C a = static_cast<C>(w1 / total), c = static_cast<C>(w2 / total);
        O* orow = o + r * out.row_stride() + h * hd;
        const P* prow = p + r * part_out.row_stride() + h * hd;
        for (std::int64_t d = 0; d < hd; ++d)
          store(orow, d, a * load(orow, d) + c * static_cast<C>(load(prow, d)));
        l[li] = static_cast<L>(m + std::log(total));
      }
    }
  });
}

}  // namespace

void attention_merge(const Tensor& out, const Tensor& lse, const Tensor& part_out,
                     const Tensor& part_lse, std::int64_t heads, std::int64_t head_dim) {
  LT_CHECK(out.shape() == part_out.shape() && lse.shape() == part_lse.shape() && lse.rank() == 3 &&
               out.dim(1) == heads * head_dim && lse.dim(1) == heads &&
               lse.dim(0) * lse.dim(2) == out.dim(0),
           "attention_merge " << out.describe() << " " << lse.describe() << " with "
                              << part_out.describe() << " " << part_lse.describe());
  dispatch_float(out.dtype(), [&]<class O>() {
    dispatch_float(part_out.dtype(), [&]<class P>() {
      if (lse.dtype() == DType::f64) {
        LT_CHECK(part_lse.dtype() == DType::f64, "attention_merge: lse dtypes differ");
        merge_rows<O, P, double, double>(out, lse, part_out, part_lse, heads, head_dim);
      } else {
        LT_CHECK(lse.dtype() == DType::f32 && part_lse.dtype() == DType::f32,
                 "attention_merge: lse must be f32 or f64");
        merge_rows<O, P, float, float>(out, lse, part_out, part_lse, heads, head_dim);
      }
    });
  });
}

}  // namespace lt::cpu
