#include "core/cpu/common.h"
#include "core/cpu/kernels.h"

namespace lt::cpu {

// Rotate-half convention (HuggingFace Llama): element i pairs with i + head_dim / 2.
void rope_apply(const Tensor& x, std::int64_t head_dim, std::span<const std::int32_t> positions,
                const Tensor& cos_table, const Tensor& sin_table, bool inverse) {
  const std::int64_t rows = x.dim(0), width = x.dim(1), half = head_dim / 2;
  LT_CHECK(x.rank() == 2 && head_dim % 2 == 0 && width % head_dim == 0 &&
               static_cast<std::int64_t>(positions.size()) == rows && cos_table.dim(1) == half,
           "rope_apply " << x.describe() << " head_dim " << head_dim << " tables "
                         << cos_table.describe());
  const std::int64_t max_pos = cos_table.dim(0);
  const float* ct = cos_table.data<float>();
  const float* st = sin_table.data<float>();
  const float sign = inverse ? -1.0f : 1.0f;
  for (std::int32_t pos : positions) {
    LT_CHECK(pos >= 0 && pos < max_pos, "position " << pos << " outside RoPE table of " << max_pos);
  }
  dispatch_float(x.dtype(), [&]<class T>() {
    using C = compute_t<T>;
    T* p = x.data<T>();
    const std::int64_t ld = x.row_stride();
    parallel_ranges(rows, 16, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const std::int64_t pos = positions[static_cast<std::size_t>(r)];
        const float* c = ct + pos * half;
        const float* s = st + pos * half;
        for (std::int64_t h = 0; h < width; h += head_dim) {
          T* v = p + r * ld + h;
#pragma omp simd
          for (std::int64_t i = 0; i < half; ++i) {
            const C x1 = load(v, i), x2 = load(v, i + half);
            const C ci = static_cast<C>(c[i]), si = static_cast<C>(sign * s[i]);
            store(v, i, x1 * ci - x2 * si);
            store(v, i + half, x2 * ci + x1 * si);
          }
        }
      }
    });
  });
}

}  // namespace lt::cpu
