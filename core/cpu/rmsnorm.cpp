#include <vector>

#include "core/cpu/common.h"
#include "core/cpu/kernels.h"

namespace lt::cpu {
namespace {

// Rows per partial sum of the weight gradient; fixed so the reduction order is too.
constexpr std::int64_t kRowChunk = 32;

template <class T, class W>
void forward_rows(const Tensor& x, const Tensor& weight, double eps, const Tensor& y,
                  const Tensor& rstd) {
  using C = compute_t<T>;
  const std::int64_t rows = x.dim(0), dim = x.dim(1);
  const T* xp = x.data<T>();
  const W* wp = weight.data<W>();
  T* yp = y.data<T>();
  stat_t<T>* rp = rstd.data<stat_t<T>>();
  const std::int64_t lx = x.row_stride(), ly = y.row_stride();
  parallel_ranges(rows, 16, [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      C ss = 0;
#pragma omp simd reduction(+ : ss)
      for (std::int64_t c = 0; c < dim; ++c) {
        const C v = load(xp, r * lx + c);
        ss += v * v;
      }
      const C inv = C(1) / std::sqrt(ss / static_cast<C>(dim) + static_cast<C>(eps));
      rp[r] = static_cast<stat_t<T>>(inv);
#pragma omp simd
      for (std::int64_t c = 0; c < dim; ++c)
        store(yp, r * ly + c, load(xp, r * lx + c) * inv * static_cast<C>(load(wp, c)));
    }
  });
}

template <class T, class W, class G>
void backward_rows(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                   const Tensor& dx, const Tensor& dweight, bool accumulate_dx) {
  using C = compute_t<T>;
  const std::int64_t rows = x.dim(0), dim = x.dim(1);
  const T* gp = dy.data<T>();
  const T* xp = x.data<T>();
  const W* wp = weight.data<W>();
  const stat_t<T>* rp = rstd.data<stat_t<T>>();
  T* dxp = dx.data<T>();
  G* dwp = dweight.data<G>();
  const std::int64_t lg = dy.row_stride(), lx = x.row_stride(), ld = dx.row_stride();
  const std::int64_t chunks = (rows + kRowChunk - 1) / kRowChunk;
  std::vector<C> partial(static_cast<std::size_t>(chunks * dim), C(0));
  parallel_ranges(chunks, 1, [&](std::int64_t k0, std::int64_t k1) {
    for (std::int64_t k = k0; k < k1; ++k) {
      C* pw = partial.data() + k * dim;
      for (std::int64_t r = k * kRowChunk; r < std::min(rows, (k + 1) * kRowChunk); ++r) {
        const C inv = static_cast<C>(rp[r]);
        C dot = 0;
#pragma omp simd reduction(+ : dot)
        for (std::int64_t c = 0; c < dim; ++c) {
          const C xhat = load(xp, r * lx + c) * inv;
          const C g = load(gp, r * lg + c);
          pw[c] += g * xhat;
          dot += g * static_cast<C>(load(wp, c)) * xhat;
        }
        const C mean_dot = dot / static_cast<C>(dim);
#pragma omp simd
        for (std::int64_t c = 0; c < dim; ++c) {
          const C xhat = load(xp, r * lx + c) * inv;
          const C g = load(gp, r * lg + c) * static_cast<C>(load(wp, c));
          C v = inv * (g - xhat * mean_dot);
          if (accumulate_dx) v += load(dxp, r * ld + c);
          store(dxp, r * ld + c, v);
        }
      }
    }
  });
  for (std::int64_t k = 0; k < chunks; ++k) {
    const C* pw = partial.data() + k * dim;
    for (std::int64_t c = 0; c < dim; ++c)
      store(dwp, c, load(dwp, c) + static_cast<compute_t<G>>(pw[c]));
  }
}

}  // namespace

void rmsnorm_forward(const Tensor& x, const Tensor& weight, double eps, const Tensor& y,
                     const Tensor& rstd) {
  LT_CHECK(
      x.rank() == 2 && y.shape() == x.shape() && weight.numel() == x.dim(1) &&
          rstd.numel() == x.dim(0) && x.dtype() == y.dtype(),
      "rmsnorm_forward " << x.describe() << " w " << weight.describe() << " -> " << y.describe());
  LT_CHECK(weight.dtype() == x.dtype(),
           "rmsnorm weight " << weight.describe() << " for " << x.describe());
  dispatch_float(x.dtype(), [&]<class T>() { forward_rows<T, T>(x, weight, eps, y, rstd); });
}

void rmsnorm_backward(const Tensor& dy, const Tensor& x, const Tensor& weight, const Tensor& rstd,
                      const Tensor& dx, const Tensor& dweight, bool accumulate_dx) {
  LT_CHECK(dy.shape() == x.shape() && dx.shape() == x.shape() && dweight.numel() == x.dim(1),
           "rmsnorm_backward " << dy.describe() << " " << x.describe() << " " << dx.describe());
  LT_CHECK(weight.dtype() == x.dtype(),
           "rmsnorm weight " << weight.describe() << " for " << x.describe());
  dispatch_float(x.dtype(), [&]<class T>() {
    dispatch_float(dweight.dtype(), [&]<class G>() {
      backward_rows<T, T, G>(dy, x, weight, rstd, dx, dweight, accumulate_dx);
    });
  });
}

}  // namespace lt::cpu
