// Launchers of the flash-attention backward kernels (flash_backward_kernel.cuh, where the design is
// described).
#include "core/cuda/flash_attention.h"
#include "core/cuda/flash_backward_kernel.cuh"

namespace lt::cuda::flash {
namespace {

template <int D>
void launch_backward(const launch::AttentionArgs& a, const Pointers& p, void* dq,
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
    const auto kernel = flash_dkv_kernel<D>;
    kern::set_smem(kernel, smem);
    const dim3 grid(kern::ceil_div(a.kv_len, kTile), static_cast<unsigned>(a.kv_heads),
                    static_cast<unsigned>(a.batch));
    LT_LAUNCH(grid, kThreads, smem, kernel)
    (a, p, static_cast<bf16_t*>(dk), ld_dk, static_cast<bf16_t*>(dv), ld_dv);
    kern::check_launch("flash attention backward (dk, dv)");
  }
}

}  // namespace

std::size_t backward_smem_bytes(std::int64_t head_dim) {
  return head_dim == 64 ? BackwardSmem<64>::bytes : BackwardSmem<128>::bytes;
}

void backward(const launch::AttentionArgs& a, const void* lse, const void* delta, const void* dout,
              std::int64_t ld_dout, void* dq, std::int64_t ld_dq, void* dk, std::int64_t ld_dk,
              void* dv, std::int64_t ld_dv) {
  if (a.batch == 0 || a.heads == 0) return;
  count_call();
  const Pointers p{static_cast<const bf16_t*>(a.q),
                   static_cast<const bf16_t*>(a.k),
                   static_cast<const bf16_t*>(a.v),
                   static_cast<const bf16_t*>(dout),
                   ld_dout,
                   static_cast<const float*>(lse),
                   static_cast<const float*>(delta)};
  if (a.head_dim == 64) {
    launch_backward<64>(a, p, dq, ld_dq, dk, ld_dk, dv, ld_dv);
  } else {
    launch_backward<128>(a, p, dq, ld_dq, dk, ld_dk, dv, ld_dv);
  }
}

}  // namespace lt::cuda::flash
