// Launchers of the flash-attention backward kernels (flash_backward_kernel.cuh, where the design is
// described).
#include "core/cuda/flash_attention.h"
#include "core/cuda/flash_backward_kernel.cuh"

namespace lt::cuda::flash {
namespace {

template <int D>
void launch_deterministic(const launch::AttentionArgs& a, const Pointers& p, void* dq,
                          std::int64_t ld_dq, void* dk, std::int64_t ld_dk, void* dv,
                          std::int64_t ld_dv) {
  constexpr std::size_t smem = BackwardSmem<D>::bytes;
  if (a.q_len > 0) {
    const auto kernel = flash_dq_kernel<D>;
    kern::set_smem(kernel, smem);
    const dim3 grid(kern::ceil_div(a.q_len, kTile), static_cast<unsigned>(a.heads),
                    static_cast<unsigned>(a.batch));
    LT_LAUNCH(grid, kThreads, smem, kernel)(a, p, static_cast<bf16_t*>(dq), ld_dq);
    kern::check_launch("flash attention backward (dq)");
  }
  if (a.kv_len > 0) {
    const auto kernel = flash_dkv_kernel<D, false>;
    kern::set_smem(kernel, smem);
    const dim3 grid(kern::ceil_div(a.kv_len, kTile), static_cast<unsigned>(a.kv_heads),
                    static_cast<unsigned>(a.batch));
    LT_LAUNCH(grid, kThreads, smem, kernel)
    (a, p, static_cast<bf16_t*>(dk), ld_dk, static_cast<bf16_t*>(dv), ld_dv, nullptr, 0);
    kern::check_launch("flash attention backward (dk, dv)");
  }
}

// One pass over K/V: dK/dV per block as above, dQ added atomically into dq_accum (fp32), then
// rounded into dq.
template <int D>
void launch_atomic(const launch::AttentionArgs& a, const Pointers& p, void* dq, std::int64_t ld_dq,
                   void* dk, std::int64_t ld_dk, void* dv, std::int64_t ld_dv, float* dq_accum) {
  const std::int64_t rows = a.batch * a.q_len, width = a.heads * D;
  if (rows == 0) return;
  launch::zero_device(dq_accum, static_cast<std::size_t>(rows * width) * sizeof(float));
  if (a.kv_len > 0) {
    constexpr std::size_t smem = BackwardSmem<D>::bytes_atomic;
    const auto kernel = flash_dkv_kernel<D, true>;
    kern::set_smem(kernel, smem);
    const dim3 grid(kern::ceil_div(a.kv_len, kTile), static_cast<unsigned>(a.kv_heads),
                    static_cast<unsigned>(a.batch));
    LT_LAUNCH(grid, kThreads, smem, kernel)
    (a, p, static_cast<bf16_t*>(dk), ld_dk, static_cast<bf16_t*>(dv), ld_dv, dq_accum, width);
    kern::check_launch("flash attention backward (dk, dv, atomic dq)");
  }
  LT_LAUNCH(kern::ceil_div(rows * width, 4 * kThreads), kThreads, 0,
            flash_dq_convert_kernel<bf16_t>)
  (dq_accum, width, static_cast<bf16_t*>(dq), ld_dq, rows, width);
  kern::check_launch("flash attention backward (dq rounding)");
}

}  // namespace

std::size_t backward_smem_bytes(std::int64_t head_dim) {
  // The atomic variant's, the larger: a call that fits may take either.
  return head_dim == 64 ? BackwardSmem<64>::bytes_atomic : BackwardSmem<128>::bytes_atomic;
}

std::size_t dq_accum_bytes(const launch::AttentionArgs& a) {
  return static_cast<std::size_t>(a.batch * a.q_len * a.heads * a.head_dim) * sizeof(float);
}

void backward(const launch::AttentionArgs& a, const void* lse, const void* delta, const void* dout,
              std::int64_t ld_dout, void* dq, std::int64_t ld_dq, void* dk, std::int64_t ld_dk,
              void* dv, std::int64_t ld_dv, void* dq_accum) {
  if (a.batch == 0 || a.heads == 0) return;
  count_call();
  const Pointers p{static_cast<const bf16_t*>(a.q),
                   static_cast<const bf16_t*>(a.k),
                   static_cast<const bf16_t*>(a.v),
                   static_cast<const bf16_t*>(dout),
                   ld_dout,
                   static_cast<const float*>(lse),
                   static_cast<const float*>(delta)};
  auto* acc = static_cast<float*>(dq_accum);
  if (a.head_dim == 64) {
    acc ? launch_atomic<64>(a, p, dq, ld_dq, dk, ld_dk, dv, ld_dv, acc)
        : launch_deterministic<64>(a, p, dq, ld_dq, dk, ld_dk, dv, ld_dv);
  } else {
    acc ? launch_atomic<128>(a, p, dq, ld_dq, dk, ld_dk, dv, ld_dv, acc)
        : launch_deterministic<128>(a, p, dq, ld_dq, dk, ld_dk, dv, ld_dv);
  }
}

}  // namespace lt::cuda::flash
