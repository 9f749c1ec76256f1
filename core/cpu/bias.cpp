#include <vector>

#include "core/cpu/common.h"
#include "core/cpu/kernels.h"

namespace lt::cpu {

void add_bias(const Tensor& y, const Tensor& bias) {
  LT_CHECK(y.rank() == 2 && bias.numel() == y.dim(1) && bias.dtype() == y.dtype(),
           "add_bias " << bias.describe() << " to " << y.describe());
  dispatch_float(y.dtype(), [&]<class T>() {
    T* p = y.data<T>();
    const T* b = bias.data<T>();
    const std::int64_t cols = y.dim(1), ld = y.row_stride();
    parallel_ranges(y.dim(0), 16, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r)
        for (std::int64_t c = 0; c < cols; ++c)
          store(p, r * ld + c, load(p, r * ld + c) + load(b, c));
    });
  });
}

void bias_backward(const Tensor& dy, const Tensor& dbias) {
  LT_CHECK(dy.rank() == 2 && dbias.numel() == dy.dim(1),
           "bias_backward " << dy.describe() << " into " << dbias.describe());
  const std::int64_t cols = dy.dim(1), ld = dy.row_stride();
  // Threads own column ranges and sum rows in order.
  dispatch_float(dy.dtype(), [&]<class T>() {
    dispatch_float(dbias.dtype(), [&]<class G>() {
      const T* g = dy.template data<T>();
      G* d = dbias.template data<G>();
      parallel_ranges(cols, 16, [&](std::int64_t c0, std::int64_t c1) {
        for (std::int64_t c = c0; c < c1; ++c) {
          compute_t<G> sum = load(d, c);
          for (std::int64_t r = 0; r < dy.dim(0); ++r)
            sum += static_cast<compute_t<G>>(load(g, r * ld + c));
          store(d, c, sum);
        }
      });
    });
  });
}

}  // namespace lt::cpu
