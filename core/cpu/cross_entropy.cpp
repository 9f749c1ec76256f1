#include <vector>

#include "core/cpu/common.h"
#include "core/cpu/kernels.h"

namespace lt::cpu {
namespace {

template <class C>
C row_loss(C* row, std::int64_t valid, std::int32_t target, double weight, double grad_scale,
           std::int64_t width, std::int32_t* prediction) {
  C mx = row[0];
  std::int64_t arg = 0;
  for (std::int64_t j = 1; j < valid; ++j) {
    if (row[j] > mx) {
      mx = row[j];
      arg = j;
    }
  }
  if (prediction) *prediction = static_cast<std::int32_t>(arg);
  C sum = 0;
  for (std::int64_t j = 0; j < valid; ++j) sum += exp_approx(row[j] - mx);
  const C lse = mx + std::log(sum);
  const C loss = lse - row[target];
  if (grad_scale != 0.0) {
    const C g = static_cast<C>(weight * grad_scale);
    const C inv_sum = C(1) / sum;
#pragma omp simd
    for (std::int64_t j = 0; j < valid; ++j) row[j] = g * exp_approx(row[j] - mx) * inv_sum;
    for (std::int64_t j = valid; j < width; ++j) row[j] = 0;
    row[target] -= g;
  }
  return loss;
}

}  // namespace

double softmax_cross_entropy(const Tensor& logits, std::span<const std::int32_t> targets,
                             std::span<const float> weights, double grad_scale,
                             std::span<std::int32_t> predictions, std::int64_t valid_vocab) {
  const std::int64_t rows = logits.dim(0), width = logits.dim(1);
  LT_CHECK(logits.rank() == 2 && static_cast<std::int64_t>(targets.size()) == rows &&
               static_cast<std::int64_t>(weights.size()) == rows && valid_vocab > 0 &&
               valid_vocab <= width &&
               (predictions.empty() || static_cast<std::int64_t>(predictions.size()) == rows),
           "softmax_cross_entropy " << logits.describe() << " rows " << targets.size());
  for (std::int32_t target : targets) {
    LT_CHECK(target >= 0 && target < valid_vocab,
             "target " << target << " outside vocabulary " << valid_vocab);
  }
  std::vector<double> losses(static_cast<std::size_t>(rows), 0.0);
  auto run = [&](auto* base) {
    const std::int64_t ld = logits.row_stride();
    parallel_ranges(rows, 4, [&](std::int64_t r0, std::int64_t r1) {
      for (std::int64_t r = r0; r < r1; ++r) {
        const std::int32_t target = targets[static_cast<std::size_t>(r)];
        const double w = weights[static_cast<std::size_t>(r)];
        std::int32_t* pred =
            predictions.empty() ? nullptr : &predictions[static_cast<std::size_t>(r)];
        const double loss = static_cast<double>(
            row_loss(base + r * ld, valid_vocab, target, w, grad_scale, width, pred));
        losses[static_cast<std::size_t>(r)] = w * loss;
      }
    });
  };
  if (logits.dtype() == DType::f32) {
    run(logits.data<float>());
  } else {
    LT_CHECK(logits.dtype() == DType::f64,
             "cross-entropy logits must be f32 or f64, got " << logits.describe());
    run(logits.data<double>());
  }
  double total = 0.0;
  for (double l : losses) total += l;
  return total;
}

}  // namespace lt::cpu
