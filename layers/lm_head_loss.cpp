#include "layers/lm_head_loss.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "core/ops.h"
#include "parallel/communicator.h"

namespace lt {

LmHeadLoss::LmHeadLoss(Parameter& weight, std::int64_t chunk_rows, std::int64_t vocab_offset,
                       std::int64_t valid_rows)
    : weight_(weight),
      chunk_rows_(chunk_rows),
      vocab_offset_(vocab_offset),
      valid_rows_(valid_rows < 0 ? weight.value.dim(0) : valid_rows) {}

double LmHeadLoss::vocab_parallel_chunk(const Tensor& logits, std::span<const std::int32_t> targets,
                                        std::span<const float> weights, double grad_scale,
                                        std::span<std::int32_t> pred, Communicator& tp) const {
  const std::int64_t n = logits.dim(0);
  const auto len = static_cast<std::size_t>(n);
  // Host memory: the statistics are the kernels' host spans and the MPI reductions' buffers.
  Tensor stats = Tensor::empty(Shape{3 * n}, DType::f64, MemCategory::communication, Device::cpu);
  const std::span<double> all(stats.data<double>(), 3 * len);
  const std::span<double> row_max = all.subspan(0, len), sum_exp = all.subspan(len, len),
                          target = all.subspan(2 * len, len);
  std::vector<std::int32_t> local_arg(len);
  cross_entropy_shard_max(logits, valid_rows_, vocab_offset_, row_max, local_arg);
  std::vector<double> local_max(row_max.begin(), row_max.end());
  tp.all_reduce(stats.flat_view(0, Shape{n}), ReduceOp::max);
  // The global argmax is the smallest token id among the shards holding the maximum: the
  // largest -id, reduced with max.
  Tensor arg = Tensor::empty(Shape{n}, DType::f64, MemCategory::communication, Device::cpu);
  for (std::size_t i = 0; i < len; ++i) {
    arg.data<double>()[i] = local_max[i] == row_max[i] ? -static_cast<double>(local_arg[i])
                                                       : -std::numeric_limits<double>::infinity();
  }
  tp.all_reduce(arg, ReduceOp::max);
  for (std::size_t i = 0; i < len; ++i) pred[i] = static_cast<std::int32_t>(-arg.data<double>()[i]);
  cross_entropy_shard_sums(logits, valid_rows_, vocab_offset_, row_max, targets, sum_exp, target);
  tp.all_reduce(stats.flat_view(n, Shape{2 * n}), ReduceOp::sum);
  return cross_entropy_shard_finish(logits, valid_rows_, vocab_offset_, row_max, sum_exp, target,
                                    targets, weights, grad_scale);
}

std::int64_t LmHeadLoss::chunk_rows(std::int64_t rows) const {
  if (chunk_rows_ > 0) return std::min(rows, chunk_rows_);
  return default_logit_chunk_rows(rows, weight_.value.dim(0));
}

std::int64_t default_logit_chunk_rows(std::int64_t rows, std::int64_t vocab) {
  const std::int64_t by_size = std::max<std::int64_t>(16, (std::int64_t{1} << 20) / vocab);
  return std::max<std::int64_t>(1, std::min(by_size, (rows + 3) / 4));
}

LossSums LmHeadLoss::run(const Tensor& h, std::span<const std::int32_t> targets,
                         std::span<const float> weights, double grad_scale, const Tensor& dh,
                         std::span<std::int32_t> predictions, Communicator* tp) const {
  const std::int64_t rows = h.dim(0), vocab = weight_.value.dim(0);
  const std::int64_t chunk = chunk_rows(rows);
  const DType logit_dtype = h.dtype() == DType::f64 ? DType::f64 : DType::f32;
  const bool backward = dh.defined();
  const bool tp_active = tp != nullptr && tp->size() > 1;
  std::vector<std::int32_t> local_pred(static_cast<std::size_t>(chunk));
  LossSums sums;
  for (std::int64_t r0 = 0; r0 < rows; r0 += chunk) {
    const std::int64_t n = std::min(chunk, rows - r0);
    const auto off = static_cast<std::size_t>(r0), len = static_cast<std::size_t>(n);
    const Tensor h_c = h.rows(r0, n);
    Tensor logits = Tensor::empty(Shape{n, vocab}, logit_dtype, MemCategory::workspace);
    matmul(h_c, false, weight_.value, true, logits);
    std::span<std::int32_t> pred(local_pred.data(), len);
    const double scale = backward ? grad_scale : 0.0;
    if (tp_active) {
      sums.loss += vocab_parallel_chunk(logits, targets.subspan(off, len),
                                        weights.subspan(off, len), scale, pred, *tp);
    } else {
      sums.loss += softmax_cross_entropy(logits, targets.subspan(off, len),
                                         weights.subspan(off, len), scale, pred, valid_rows_);
    }
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
    if (tp_active) {
      // Each rank's product covers its vocabulary shard only: sum the partial dh over tp.
      Tensor partial = Tensor::empty(Shape{n, h.dim(1)}, logit_dtype, MemCategory::workspace);
      matmul(dlogits, false, weight_.value, false, partial);
      tp->all_reduce(partial);
      copy(partial, dh.rows(r0, n));
    } else {
      matmul(dlogits, false, weight_.value, false, dh.rows(r0, n));
    }
    matmul(dlogits, true, h_c, false, weight_.grad, 1.0, 1.0);
  }
  return sums;
}

}  // namespace lt
