// Embedding lookup and its deterministic backward (no atomics: one thread per (vocabulary row,
// column) adds that row's occurrences in token order).
#include "core/cuda/model_common.cuh"

namespace lt::cuda::kern {
namespace {

// Rows are copied as words of type W; threadIdx.y picks the token within the block.
template <class W>
__global__ void embedding_forward_kernel(const char* __restrict__ table, std::int64_t rows,
                                         std::int64_t table_ld_bytes,
                                         const std::int32_t* __restrict__ tokens,
                                         std::int64_t n_tokens, std::int64_t vocab_offset,
                                         char* __restrict__ out, std::int64_t out_ld_bytes,
                                         std::int64_t row_words) {
  const std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  if (t >= n_tokens) return;
  const std::int64_t local = static_cast<std::int64_t>(tokens[t]) - vocab_offset;
  W* o = reinterpret_cast<W*>(out + t * out_ld_bytes);
  if (local >= 0 && local < rows) {
    const W* s = reinterpret_cast<const W*>(table + local * table_ld_bytes);
    for (std::int64_t i = threadIdx.x; i < row_words; i += blockDim.x) o[i] = s[i];
  } else {
    const W zero{};
    for (std::int64_t i = threadIdx.x; i < row_words; i += blockDim.x) o[i] = zero;
  }
}

template <class W>
void launch_forward(const void* table, std::int64_t rows, std::int64_t table_ld_bytes,
                    const std::int32_t* tokens, std::int64_t n_tokens, std::int64_t vocab_offset,
                    void* out, std::int64_t out_ld_bytes, std::int64_t row_bytes) {
  const std::int64_t words = row_bytes / static_cast<std::int64_t>(sizeof(W));
  const int tx = row_threads(words, 256);
  const int ty = 256 / tx;
  const dim3 block(static_cast<unsigned>(tx), static_cast<unsigned>(ty));
  LT_LAUNCH(ceil_div(n_tokens, ty), block, 0, embedding_forward_kernel<W>)
  (static_cast<const char*>(table), rows, table_ld_bytes, tokens, n_tokens, vocab_offset,
   static_cast<char*>(out), out_ld_bytes, words);
  check_launch("embedding_forward");
}

// grid.x: segments (one vocabulary row each), grid.y * blockDim.x: columns.
template <class T, class G>
__global__ void embedding_backward_kernel(const T* __restrict__ dout, std::int64_t dout_ld,
                                          G* __restrict__ dtable, std::int64_t dtable_ld,
                                          std::int64_t dim,
                                          const std::int32_t* __restrict__ positions,
                                          const std::int32_t* __restrict__ seg_start,
                                          const std::int32_t* __restrict__ seg_row) {
  const std::int64_t s = blockIdx.x;
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (c >= dim) return;
  G* row = dtable + static_cast<std::int64_t>(seg_row[s]) * dtable_ld;
  using CG = comp_t<G>;
  CG acc = to_c(row[c]);
  const std::int32_t k1 = seg_start[s + 1];
  for (std::int32_t k = seg_start[s]; k < k1; ++k) {
    const std::int64_t t = positions[k];
    // The CPU stores after every add: round to G each time.
    acc = round_to<G>(acc + static_cast<CG>(to_c(dout[t * dout_ld + c])));
  }
  row[c] = from_c<G>(acc);
}

}  // namespace
}  // namespace lt::cuda::kern

namespace lt::cuda::launch {

void embedding_forward(std::size_t elem_size, const void* table, std::int64_t table_rows,
                       std::int64_t table_ld, std::int64_t dim, const std::int32_t* tokens,
                       std::int64_t n_tokens, std::int64_t vocab_offset, void* out,
                       std::int64_t out_ld) {
  using namespace kern;
  if (n_tokens == 0 || dim == 0) return;
  const auto es = static_cast<std::int64_t>(elem_size);
  const std::int64_t row_bytes = dim * es, tld = table_ld * es, old = out_ld * es;
  auto fits = [&](std::size_t w) {
    return rows_aligned(table, table_ld, dim, elem_size, w) &&
           rows_aligned(out, out_ld, dim, elem_size, w);
  };
  if (elem_size <= 16 && fits(16)) {
    launch_forward<uint4>(table, table_rows, tld, tokens, n_tokens, vocab_offset, out, old,
                          row_bytes);
  } else if (elem_size <= 8 && fits(8)) {
    launch_forward<uint2>(table, table_rows, tld, tokens, n_tokens, vocab_offset, out, old,
                          row_bytes);
  } else if (elem_size <= 4 && fits(4)) {
    launch_forward<unsigned>(table, table_rows, tld, tokens, n_tokens, vocab_offset, out, old,
                             row_bytes);
  } else {
    LT_CHECK(elem_size == 2 && fits(2), "embedding_forward: element size " << elem_size);
    launch_forward<unsigned short>(table, table_rows, tld, tokens, n_tokens, vocab_offset, out, old,
                                   row_bytes);
  }
}

void embedding_backward(Dt dout_dt, const void* dout, std::int64_t dout_ld, Dt dtable_dt,
                        void* dtable, std::int64_t dtable_ld, std::int64_t dim,
                        const std::int32_t* positions, const std::int32_t* seg_start,
                        const std::int32_t* seg_row, std::int64_t n_segments) {
  using namespace kern;
  if (n_segments == 0 || dim == 0) return;
  const int threads = row_threads(dim, 256);
  const dim3 grid(static_cast<unsigned>(n_segments), ceil_div(dim, threads));
  LT_CHECK(n_segments < (std::int64_t{1} << 31) && grid.y <= 65535,
           "embedding_backward: " << n_segments << " rows x " << dim << " columns");
  dispatch(dout_dt, [&](auto tt) {
    using T = LT_TAG_TYPE(tt);
    dispatch(dtable_dt, [&](auto tg) {
      using G = LT_TAG_TYPE(tg);
      LT_LAUNCH(grid, threads, 0, embedding_backward_kernel<T, G>)
      (static_cast<const T*>(dout), dout_ld, static_cast<G*>(dtable), dtable_ld, dim, positions,
       seg_start, seg_row);
    });
  });
  check_launch("embedding_backward");
}

}  // namespace lt::cuda::launch
