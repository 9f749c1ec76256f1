// Launchers of the flash-attention forward kernels (flash_forward_kernel.cuh, where the design is
// described).
#include "core/cuda/flash_attention.h"
#include "core/cuda/flash_forward_kernel.cuh"

namespace lt::cuda::flash {
namespace {

template <int D, class O>
void launch_forward(const launch::AttentionArgs& a, void* out, std::int64_t ldo, float* lse) {
  const auto kernel = flash_forward_kernel<D, O>;
  constexpr std::size_t smem = ForwardSmem<D>::bytes;
  kern::set_smem(kernel, smem);
  const dim3 grid(kern::ceil_div(a.q_len, kBr), static_cast<unsigned>(a.heads),
                  static_cast<unsigned>(a.batch));
  LT_LAUNCH(grid, ForwardWarps<D>::threads, smem, kernel)(a, static_cast<O*>(out), ldo, lse);
  kern::check_launch("flash attention forward");
}

}  // namespace

std::size_t forward_smem_bytes(std::int64_t head_dim) {
  return head_dim == 64 ? ForwardSmem<64>::bytes : ForwardSmem<128>::bytes;
}

void forward(const launch::AttentionArgs& a, void* out, std::int64_t ldo, void* lse) {
  if (a.batch == 0 || a.q_len == 0 || a.heads == 0) return;
  count_call();
  auto* l = static_cast<float*>(lse);
  const bool f32_out = a.out_dt == launch::Dt::f32;
  if (a.head_dim == 64) {
    f32_out ? launch_forward<64, float>(a, out, ldo, l)
            : launch_forward<64, bf16_t>(a, out, ldo, l);
  } else {
    f32_out ? launch_forward<128, float>(a, out, ldo, l)
            : launch_forward<128, bf16_t>(a, out, ldo, l);
  }
}

}  // namespace lt::cuda::flash
