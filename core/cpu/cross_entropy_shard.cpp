// Vocab-parallel cross-entropy in three passes over one shard of the vocabulary; the caller
// reduces the row statistics across shards in between.
#include <limits>
#include <vector>

#include "core/cpu/common.h"
#include "core/cpu/kernels.h"

namespace lt::cpu {
namespace {

void check(const Tensor& logits, std::int64_t valid, std::size_t rows_given) {
  LT_CHECK(logits.rank() == 2 && valid >= 0 && valid <= logits.dim(1) &&
               static_cast<std::int64_t>(rows_given) == logits.dim(0),
           "vocab-parallel cross-entropy on " << logits.describe() << " with " << valid
                                              << " valid columns and " << rows_given << " rows");
  LT_CHECK(logits.dtype() == DType::f32 || logits.dtype() == DType::f64,
           "cross-entropy logits must be f32 or f64, got " << logits.describe());
}

template <class Fn>
void for_rows(const Tensor& logits, Fn&& fn) {
  auto run = [&](auto* base) {
    parallel_ranges(logits.dim(0), 4, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) fn(r, base + r * logits.row_stride());
    });
  };
  if (logits.dtype() == DType::f32) {
    run(logits.data<float>());
  } else {
    run(logits.data<double>());
  }
}

}  // namespace

void cross_entropy_shard_max(const Tensor& logits, std::int64_t valid, std::int64_t vocab_offset,
                             std::span<double> row_max, std::span<std::int32_t> row_argmax) {
  check(logits, valid, row_max.size());
  for_rows(logits, [&](std::int64_t r, auto* row) {
    double mx = -std::numeric_limits<double>::infinity();
    std::int64_t arg = 0;
    for (std::int64_t j = 0; j < valid; ++j) {
      if (static_cast<double>(row[j]) > mx) {
        mx = static_cast<double>(row[j]);
        arg = j;
      }
    }
    row_max[static_cast<std::size_t>(r)] = mx;
    if (!row_argmax.empty())
      row_argmax[static_cast<std::size_t>(r)] = static_cast<std::int32_t>(vocab_offset + arg);
  });
}

void cross_entropy_shard_sums(const Tensor& logits, std::int64_t valid, std::int64_t vocab_offset,
                              std::span<const double> row_max,
                              std::span<const std::int32_t> targets, std::span<double> sum_exp,
                              std::span<double> target_logit) {
  check(logits, valid, row_max.size());
  for_rows(logits, [&](std::int64_t r, auto* row) {
    using C = std::remove_cvref_t<decltype(row[0])>;
    const auto u = static_cast<std::size_t>(r);
    const C mx = static_cast<C>(row_max[u]);
    C sum = 0;
    for (std::int64_t j = 0; j < valid; ++j) sum += exp_approx(row[j] - mx);
    sum_exp[u] = static_cast<double>(sum);
    const std::int64_t local = targets[u] - vocab_offset;
    target_logit[u] = local >= 0 && local < valid ? static_cast<double>(row[local]) : 0.0;
  });
}

double cross_entropy_shard_finish(const Tensor& logits, std::int64_t valid,
                                  std::int64_t vocab_offset, std::span<const double> row_max,
                                  std::span<const double> sum_exp,
                                  std::span<const double> target_logit,
                                  std::span<const std::int32_t> targets,
                                  std::span<const float> weights, double grad_scale) {
  check(logits, valid, row_max.size());
  std::vector<double> losses(row_max.size(), 0.0);
  for_rows(logits, [&](std::int64_t r, auto* row) {
    using C = std::remove_cvref_t<decltype(row[0])>;
    const auto u = static_cast<std::size_t>(r);
    const double w = weights[u];
    losses[u] = w * (row_max[u] + std::log(sum_exp[u]) - target_logit[u]);
    if (grad_scale == 0.0) return;
    const C g = static_cast<C>(w * grad_scale), inv = static_cast<C>(1.0 / sum_exp[u]);
    const C mx = static_cast<C>(row_max[u]);
    for (std::int64_t j = 0; j < valid; ++j) row[j] = g * exp_approx(row[j] - mx) * inv;
    for (std::int64_t j = valid; j < logits.dim(1); ++j) row[j] = 0;
    const std::int64_t local = targets[u] - vocab_offset;
    if (local >= 0 && local < valid) row[local] -= g;
  });
  double total = 0.0;
  for (double l : losses) total += l;
  return total;
}

}  // namespace lt::cpu
