#include "parallel/ring_attention.h"

#include <array>
#include <limits>
#include <memory>

#include "core/error.h"

namespace lt {
namespace {

constexpr int kKvTag = 7100;
constexpr int kGradTag = 7200;

DType accumulate_dtype(DType t) {
  return t == DType::f64 ? DType::f64 : DType::f32;
}

AttentionShape block_shape(AttentionShape s, const RingLayout& layout, int me, int src) {
  s.q_order = layout.order[static_cast<std::size_t>(me)];
  s.k_order = layout.order[static_cast<std::size_t>(src)];
  if (!layout.doc.empty()) {
    s.q_doc = layout.doc[static_cast<std::size_t>(me)];
    s.k_doc = layout.doc[static_cast<std::size_t>(src)];
  } else {
    s.q_doc = {};
    s.k_doc = {};
  }
  return s;
}

// A K/V block (or its gradients) packed as [2, tokens, width]: one message per ring hop.
struct KvBlock {
  Tensor packed;
  Tensor k() const { return packed.flat_view(0, Shape{rows(), width()}); }
  Tensor v() const { return packed.flat_view(rows() * width(), Shape{rows(), width()}); }
  std::int64_t rows() const { return packed.dim(1); }
  std::int64_t width() const { return packed.dim(2); }

  static KvBlock make(const Tensor& like, DType dtype, bool zero) {
    const Shape s{2, like.dim(0), like.dim(1)};
    return {zero ? Tensor::zeros(s, dtype, MemCategory::communication)
                 : Tensor::empty(s, dtype, MemCategory::communication)};
  }
};

void check_layout(const Communicator& cp, const RingLayout& layout) {
  LT_CHECK(static_cast<int>(layout.order.size()) == cp.size() &&
               (layout.doc.empty() || static_cast<int>(layout.doc.size()) == cp.size()),
           "ring layout for " << layout.order.size() << " ranks in a cp group of " << cp.size());
}

}  // namespace

void ring_attention_forward(Communicator& cp, const AttentionShape& shape, const RingLayout& layout,
                            const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
                            const Tensor& lse) {
  check_layout(cp, layout);
  const int n = cp.size(), me = cp.rank();
  if (n == 1) {
    attention_forward(block_shape(shape, layout, me, me), q, k, v, out, lse);
    return;
  }
  std::array<KvBlock, 2> buf = {KvBlock::make(k, k.dtype(), false),
                                KvBlock::make(k, k.dtype(), false)};
  copy(k, buf[0].k());
  copy(v, buf[0].v());
  const DType acc = accumulate_dtype(q.dtype());
  Tensor acc_out = Tensor::zeros(out.shape(), acc, MemCategory::workspace);
  Tensor acc_lse = Tensor::empty(lse.shape(), lse.dtype(), MemCategory::workspace);
  fill(acc_lse, -std::numeric_limits<double>::infinity());
  // Partial outputs stay in the accumulation dtype: bf16 is rounded once, after the merge.
  Tensor part_out = Tensor::empty(out.shape(), acc, MemCategory::workspace);
  Tensor part_lse = Tensor::empty(lse.shape(), lse.dtype(), MemCategory::workspace);
  const int next = (me + 1) % n, prev = (me + n - 1) % n;
  int cur = 0;
  for (int step = 0; step < n; ++step) {
    const int src = (me - step + n) % n;
    std::unique_ptr<CommHandle> send, recv;
    if (step + 1 < n) {  // the next block travels while this one computes
      send = cp.isend(buf[static_cast<std::size_t>(cur)].packed, next, kKvTag + step);
      recv = cp.irecv(buf[static_cast<std::size_t>(1 - cur)].packed, prev, kKvTag + step);
    }
    const KvBlock& block = buf[static_cast<std::size_t>(cur)];
    attention_forward(block_shape(shape, layout, me, src), q, block.k(), block.v(), part_out,
                      part_lse);
    attention_merge(acc_out, acc_lse, part_out, part_lse, shape.heads, shape.head_dim);
    if (send) {
      send->wait();
      recv->wait();
    }
    cur = 1 - cur;
  }
  copy(acc_out, out);
  copy(acc_lse, lse);
}

void ring_attention_backward(Communicator& cp, const AttentionShape& shape,
                             const RingLayout& layout, const Tensor& q, const Tensor& k,
                             const Tensor& v, const Tensor& out, const Tensor& lse,
                             const Tensor& dout, const Tensor& dq, const Tensor& dk,
                             const Tensor& dv) {
  check_layout(cp, layout);
  const int n = cp.size(), me = cp.rank();
  if (n == 1) {
    attention_backward(block_shape(shape, layout, me, me), q, k, v, out, lse, dout, dq, dk, dv);
    return;
  }
  const DType acc = accumulate_dtype(q.dtype());
  std::array<KvBlock, 2> kv = {KvBlock::make(k, k.dtype(), false),
                               KvBlock::make(k, k.dtype(), false)};
  std::array<KvBlock, 2> grads = {KvBlock::make(k, acc, true), KvBlock::make(k, acc, false)};
  copy(k, kv[0].k());
  copy(v, kv[0].v());
  Tensor dq_acc = Tensor::zeros(dq.shape(), acc, MemCategory::workspace);
  Tensor dq_part = Tensor::empty(dq.shape(), q.dtype(), MemCategory::workspace);
  KvBlock part = KvBlock::make(k, k.dtype(), false);
  const int next = (me + 1) % n, prev = (me + n - 1) % n;
  int cur = 0;
  // The gradient hop of step s travels under step s + 1's backward: its receive is waited for
  // only before those gradients are added to, its send before the buffer receives again.
  std::unique_ptr<CommHandle> gsend, grecv;
  for (int step = 0; step < n; ++step) {
    const int src = (me - step + n) % n;
    std::unique_ptr<CommHandle> send, recv;
    if (step + 1 < n) {
      send = cp.isend(kv[static_cast<std::size_t>(cur)].packed, next, kKvTag + step);
      recv = cp.irecv(kv[static_cast<std::size_t>(1 - cur)].packed, prev, kKvTag + step);
    }
    const KvBlock& block = kv[static_cast<std::size_t>(cur)];
    attention_backward(block_shape(shape, layout, me, src), q, block.k(), block.v(), out, lse, dout,
                       dq_part, part.k(), part.v());
    add(dq_acc, dq_part);
    if (grecv) grecv->wait();  // this block's gradients so far have arrived
    const KvBlock& g = grads[static_cast<std::size_t>(cur)];
    add(g.packed, part.packed);
    if (gsend) gsend->wait();  // the other buffer has left: it may receive again
    // This block's gradients move on with it; the ones arriving belong to the next block held
    // here (after the last hop: this rank's own block, complete).
    gsend = cp.isend(g.packed, next, kGradTag + step);
    grecv = cp.irecv(grads[static_cast<std::size_t>(1 - cur)].packed, prev, kGradTag + step);
    if (send) {
      send->wait();
      recv->wait();
    }
    cur = 1 - cur;
  }
  gsend->wait();
  grecv->wait();
  copy(dq_acc, dq);
  const KvBlock& mine = grads[static_cast<std::size_t>(cur)];
  copy(mine.k(), dk);
  copy(mine.v(), dv);
}

}  // namespace lt
