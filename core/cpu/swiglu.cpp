#include "core/cpu/common.h"
#include "core/cpu/kernels.h"

namespace lt::cpu {
namespace {

template <class C>
inline C sigmoid(C x) {
  return C(1) / (C(1) + exp_approx(-x));
}

}  // namespace

void swiglu_forward(const Tensor& gate_up, const Tensor& out) {
  const std::int64_t rows = out.dim(0), f = out.dim(1);
  LT_CHECK(gate_up.dim(0) == rows && gate_up.dim(1) == 2 * f && gate_up.dtype() == out.dtype(),
           "swiglu_forward " << gate_up.describe() << " -> " << out.describe());
  dispatch_float(out.dtype(), [&]<class T>() {
    using C = compute_t<T>;
    const T* gu = gate_up.data<T>();
    T* o = out.data<T>();
    const std::int64_t lg = gate_up.row_stride(), lo = out.row_stride();
    parallel_ranges(rows, 8, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const T* g = gu + r * lg;
        const T* u = g + f;
#pragma omp simd
        for (std::int64_t i = 0; i < f; ++i) {
          const C gv = load(g, i);
          store(o + r * lo, i, gv * sigmoid(gv) * load(u, i));
        }
      }
    });
  });
}

void swiglu_backward(const Tensor& dout, const Tensor& gate_up, const Tensor& dgate_up) {
  const std::int64_t rows = dout.dim(0), f = dout.dim(1);
  LT_CHECK(gate_up.dim(0) == rows && gate_up.dim(1) == 2 * f && dgate_up.shape() == gate_up.shape(),
           "swiglu_backward " << dout.describe() << " " << gate_up.describe());
  dispatch_float(dout.dtype(), [&]<class T>() {
    using C = compute_t<T>;
    const T* d = dout.data<T>();
    const T* gu = gate_up.data<T>();
    T* dgu = dgate_up.data<T>();
    const std::int64_t ld = dout.row_stride(), lg = gate_up.row_stride(),
                       lr = dgate_up.row_stride();
    parallel_ranges(rows, 8, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const T* g = gu + r * lg;
        const T* u = g + f;
        T* dg = dgu + r * lr;
        T* du = dg + f;
#pragma omp simd
        for (std::int64_t i = 0; i < f; ++i) {
          const C gv = load(g, i), uv = load(u, i), dv = load(d + r * ld, i);
          const C sg = sigmoid(gv);
          const C silu = gv * sg;
          store(du, i, dv * silu);
          store(dg, i, dv * uv * sg * (C(1) + gv * (C(1) - sg)));
        }
      }
    });
  });
}

}  // namespace lt::cpu
