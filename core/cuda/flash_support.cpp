// Which attention calls the flash kernels take (see flash_attention.h).
#include <atomic>
#include <cstdint>

#include "core/cuda/flash_attention.h"

namespace lt::cuda::flash {
namespace {

std::atomic<std::int64_t> g_calls{0};

bool aligned(const void* p, std::size_t bytes) {
  return reinterpret_cast<std::uintptr_t>(p) % bytes == 0;
}

// Every row starts 16-byte aligned: the tiles load with 16-byte cp.async.
bool rows_16b(const void* p, std::int64_t ld) {
  return aligned(p, 16) && ld % 8 == 0;
}

// Fragment pairs store as one 8-byte (f32) or 4-byte (bf16) word.
bool pairs_aligned(const void* p, std::int64_t ld, std::size_t elem) {
  return aligned(p, 2 * elem) && ld % 2 == 0;
}

bool supports_inputs(const launch::AttentionArgs& a) {
  return a.allow_flash && a.dt == launch::Dt::bf16 && (a.head_dim == 64 || a.head_dim == 128) &&
         a.heads % a.kv_heads == 0 && rows_16b(a.q, a.ldq) && rows_16b(a.k, a.ldk) &&
         rows_16b(a.v, a.ldv);
}

}  // namespace

std::int64_t calls() {
  return g_calls.load();
}

void count_call() {
  g_calls.fetch_add(1);
}

bool supports_forward(const launch::AttentionArgs& a, const void* out, std::int64_t ldo) {
  if (!supports_inputs(a)) return false;
  const bool f32_out = a.out_dt == launch::Dt::f32;
  if (!f32_out && a.out_dt != launch::Dt::bf16) return false;
  return pairs_aligned(out, ldo, f32_out ? 4 : 2) &&
         forward_smem_bytes(a.head_dim) <= launch::max_shared_memory_per_block();
}

bool supports_backward(const launch::AttentionArgs& a, const void* dout, std::int64_t ld_dout,
                       const void* dq, std::int64_t ld_dq, const void* dk, std::int64_t ld_dk,
                       const void* dv, std::int64_t ld_dv) {
  return supports_inputs(a) && rows_16b(dout, ld_dout) && pairs_aligned(dq, ld_dq, 2) &&
         pairs_aligned(dk, ld_dk, 2) && pairs_aligned(dv, ld_dv, 2) &&
         backward_smem_bytes(a.head_dim) <= launch::max_shared_memory_per_block();
}

}  // namespace lt::cuda::flash
