#include "layers/lm_head_loss.h"

#include <algorithm>
#include <vector>

#include "core/ops.h"

namespace lt {

LmHeadLoss::LmHeadLoss(Parameter& weight, std::int64_t chunk_rows)
    : weight_(weight), chunk_rows_(chunk_rows) {}

std::int64_t LmHeadLoss::chunk_rows(std::int64_t rows) const {
  if (chunk_rows_ > 0) return std::min(rows, chunk_rows_);
  // About 4 MiB of fp32 logits per chunk (at least 16 rows), and never more than a quarter of
  // the rows: the logits of all tokens never exist at once.
  const std::int64_t vocab = weight_.value.dim(0);
  const std::int64_t by_size = std::max<std::int64_t>(16, (std::int64_t{1} << 20) / vocab);
  return std::max<std::int64_t>(1, std::min(by_size, (rows + 3) / 4));
}

LossSums LmHeadLoss::run(const Tensor& h, std::span<const std::int32_t> targets,
                         std::span<const float> weights, double grad_scale, const Tensor& dh,
                         std::span<std::int32_t> predictions) const {
  const std::int64_t rows = h.dim(0), vocab = weight_.value.dim(0);
  const std::int64_t chunk = chunk_rows(rows);
  const DType logit_dtype = h.dtype() == DType::f64 ? DType::f64 : DType::f32;
  const bool backward = dh.defined();
  std::vector<std::int32_t> local_pred(static_cast<std::size_t>(chunk));
  LossSums sums;
  for (std::int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const std::int64_t n = std::min(chunk, rows - r0);
    const auto off = static_cast<std::size_t>(r0), len = static_cast<std::size_t>(n);
    const Tensor h_c = h.rows(r0, n);
    Tensor logits = Tensor::empty(Shape{n, vocab}, logit_dtype, MemCategory::workspace);
    matmul(h_c, false, weight_.value, true, logits);
    std::span<std::int32_t> pred(local_pred.data(), len);
    sums.loss += softmax_cross_entropy(logits, targets.subspan(off, len), weights.subspan(off, len),
                                       backward ? grad_scale : 0.0, pred, vocab);
    for (std::size_t i = 0; i < len; ++i) {
      if (weights[off + i] != 0.0f && pred[i] == targets[off + i]) ++sums.correct;
      if (!predictions.empty()) predictions[off + i] = pred[i];
    }
    if (!backward) continue;
    // logits now hold dlogits; GEMMs take them in the compute dtype.
    Tensor dlogits = logits;
    if (h.dtype() != logit_dtype) {
      dlogits = Tensor::empty(Shape{n, vocab}, h.dtype(), MemCategory::workspace);
      copy(logits, dlogits);
      logits = Tensor();
    }
    matmul(dlogits, false, weight_.value, false, dh.rows(r0, n));
    matmul(dlogits, true, h_c, false, weight_.grad, 1.0, 1.0);
  }
  return sums;
}

}  // namespace lt
