#include "core/cpu/common.h"
#include "core/cpu/kernels.h"

namespace lt::cpu {

namespace {

void check_tokens(std::span<const std::int32_t> tokens, std::int64_t vocab) {
  for (std::int32_t id : tokens) {
    LT_CHECK(id >= 0 && id < vocab, "token " << id << " outside vocabulary of " << vocab);
  }
}

}  // namespace

// The unsharded table is the shard that starts at token 0 and holds every token.
void embedding_forward(const Tensor& table, std::span<const std::int32_t> tokens,
                       const Tensor& out) {
  check_tokens(tokens, table.dim(0));
  cpu::embedding_shard_forward(table, 0, tokens, out);
}

void embedding_backward(const Tensor& dout, std::span<const std::int32_t> tokens,
                        const Tensor& dtable) {
  check_tokens(tokens, dtable.dim(0));
  cpu::embedding_shard_backward(dout, 0, tokens, dtable);
}

void embedding_shard_forward(const Tensor& table, std::int64_t vocab_offset,
                             std::span<const std::int32_t> tokens, const Tensor& out) {
  const std::int64_t rows = table.dim(0), dim = table.dim(1);
  LT_CHECK(out.dim(0) == static_cast<std::int64_t>(tokens.size()) && out.dim(1) == dim &&
               out.dtype() == table.dtype() && out.is_contiguous(),
           "embedding_shard_forward " << table.describe() << " -> " << out.describe());
  dispatch_float(table.dtype(), [&]<class T>() {
    const T* w = table.data<T>();
    T* o = out.data<T>();
    parallel_ranges(
        static_cast<std::int64_t>(tokens.size()), 64, [&](std::int64_t t0, std::int64_t t1) {
          for (std::int64_t t = t0; t < t1; ++t) {
            const std::int64_t local = tokens[static_cast<std::size_t>(t)] - vocab_offset;
            if (local >= 0 && local < rows) {
              std::copy_n(w + local * dim, dim, o + t * dim);
            } else {
              std::fill_n(o + t * dim, dim, T{});
            }
          }
        });
  });
}

void embedding_shard_backward(const Tensor& dout, std::int64_t vocab_offset,
                              std::span<const std::int32_t> tokens, const Tensor& dtable) {
  const std::int64_t rows = dtable.dim(0), dim = dtable.dim(1);
  LT_CHECK(dout.dim(1) == dim && dout.is_contiguous(),
           "embedding_shard_backward " << dout.describe());
  dispatch_float(dout.dtype(), [&]<class T>() {
    dispatch_float(dtable.dtype(), [&]<class G>() {
      const T* g = dout.template data<T>();
      G* d = dtable.template data<G>();
      parallel_ranges(dim, 16, [&](std::int64_t c0, std::int64_t c1) {
        for (std::size_t t = 0; t < tokens.size(); ++t) {
          const std::int64_t local = tokens[t] - vocab_offset;
          if (local < 0 || local >= rows) continue;
          G* row = d + local * dim;
          const T* src = g + static_cast<std::int64_t>(t) * dim;
          for (std::int64_t c = c0; c < c1; ++c)
            store(row, c, load(row, c) + static_cast<compute_t<G>>(load(src, c)));
        }
      });
    });
  });
}

}  // namespace lt::cpu
