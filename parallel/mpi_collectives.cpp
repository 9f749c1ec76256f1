// The step sources of the MPI communicator's operations: ring reduce-scatter and all-gather,
// binomial broadcast, dissemination barrier. Every reduction happens here, in a fixed order
// that depends only on the group size and the tensor size, never on message timing.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "core/tensor.h"
#include "parallel/mpi_internal.h"

namespace lt::mpi_detail {

namespace {

int wrap(int i, int n) {
  return ((i % n) + n) % n;
}

// ---------------------------------------------------------------------------------------------
// Element-wise reduction of a received partial result with the local contribution.

template <class W>
W add(W a, W b) {
  if constexpr (std::is_same_v<W, std::int32_t>) {
    // Two's-complement wrap-around instead of signed-overflow UB.
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(a) + static_cast<std::uint32_t>(b));
  } else {
    return a + b;
  }
}

// NaN wins, so a NaN anywhere reaches every member.
template <class W>
W maximum(W a, W b) {
  if constexpr (std::is_floating_point_v<W>) {
    if (std::isnan(a)) return a;
    if (std::isnan(b)) return b;
  }
  return a < b ? b : a;
}

template <class T, class W>
void reduce_into(W* acc, const T* local, std::int64_t n, ReduceOp op) {
  if (op == ReduceOp::sum) {
    for (std::int64_t i = 0; i < n; ++i) acc[i] = add(acc[i], static_cast<W>(local[i]));
  } else {
    for (std::int64_t i = 0; i < n; ++i) acc[i] = maximum(acc[i], static_cast<W>(local[i]));
  }
}

// ---------------------------------------------------------------------------------------------
// Ring reduce-scatter.
//
// At ring step s (0 <= s < n-1) member r sends its partial result for chunk (r-s-1) to member
// r+1 and receives member r-1's partial result for chunk (r-s-2), adding its own contribution.
// After n-1 steps member r holds chunk r reduced in the order
//   ((x[r+1] + x[r+2]) + ... + x[r-1]) + x[r]     (indices mod n)
// on every run. Partial results travel in the accumulation type W (fp32 for bf16), so bf16 is
// rounded once, by the owner, at the end. Each chunk is processed in slices of at most
// max_message_bytes of W so the two scratch buffers stay bounded; slicing does not change the
// order in which an element is reduced.

template <class T>
class RingReduceScatter final : public StepSource {
  using W = compute_t<T>;

 public:
  RingReduceScatter(int rank, int size, const T* in, ChunkLayout layout, T* own_out, ReduceOp op,
                    std::size_t max_message_bytes)
      : rank_(rank), size_(size), in_(in), layout_(std::move(layout)), out_(own_out), op_(op) {
    const std::int64_t longest = *std::max_element(layout_.length.begin(), layout_.length.end());
    const auto per_message = static_cast<std::int64_t>(max_message_bytes / sizeof(W));
    slice_ = std::max<std::int64_t>(1, std::min(longest, per_message));
    slices_ = (longest + slice_ - 1) / slice_;
    scratch_ = Tensor::empty(Shape{2 * slice_}, dtype_of<W>(), MemCategory::communication);
    send_buf_ = scratch_.data<W>();
    recv_buf_ = send_buf_ + slice_;
  }

  std::optional<Step> next() override {
    if (size_ < 2 || slice_index_ >= slices_) return std::nullopt;
    const int send_chunk = wrap(rank_ - step_ - 1, size_);
    const int recv_chunk = wrap(rank_ - step_ - 2, size_);
    const std::int64_t begin = slice_index_ * slice_;
    const bool first = step_ == 0;
    const bool last = step_ == size_ - 2;
    Step step;
    step.sends.push_back({send_source(send_chunk, begin, first), bytes_of(count(send_chunk, begin)),
                          wrap(rank_ + 1, size_)});
    step.recvs.push_back({recv_buf_, bytes_of(count(recv_chunk, begin)), wrap(rank_ - 1, size_)});
    step.then = [this, recv_chunk, begin, last] { accumulate(recv_chunk, begin, last); };
    if (++step_ == size_ - 1) {
      step_ = 0;
      ++slice_index_;
    }
    return step;
  }

 private:
  std::int64_t count(int chunk, std::int64_t begin) const {
    return std::clamp<std::int64_t>(layout_.length[static_cast<std::size_t>(chunk)] - begin, 0,
                                    slice_);
  }
  static std::size_t bytes_of(std::int64_t n) { return static_cast<std::size_t>(n) * sizeof(W); }
  const T* local(int chunk, std::int64_t begin) const {
    return in_ + layout_.offset[static_cast<std::size_t>(chunk)] + begin;
  }

  // The first step of a slice sends the member's own data (converted to W); later steps send
  // the partial result accumulated by the previous step.
  const void* send_source(int chunk, std::int64_t begin, bool first) {
    if (!first) return send_buf_;
    const T* own = local(chunk, begin);
    if constexpr (std::is_same_v<T, W>) {
      return own;
    } else {
      const std::int64_t n = count(chunk, begin);
      for (std::int64_t i = 0; i < n; ++i) send_buf_[i] = static_cast<W>(own[i]);
      return send_buf_;
    }
  }

  void accumulate(int chunk, std::int64_t begin, bool last) {
    const std::int64_t n = count(chunk, begin);
    reduce_into(recv_buf_, local(chunk, begin), n, op_);
    if (last) {
      for (std::int64_t i = 0; i < n; ++i) out_[begin + i] = from_compute<T>(recv_buf_[i]);
    } else {
      std::swap(send_buf_, recv_buf_);  // this step's send has completed: its buffer is free
    }
  }

  int rank_;
  int size_;
  const T* in_;
  ChunkLayout layout_;
  T* out_;
  ReduceOp op_;
  std::int64_t slice_ = 1;
  std::int64_t slices_ = 0;
  std::int64_t slice_index_ = 0;
  int step_ = 0;
  Tensor scratch_;
  W* send_buf_ = nullptr;
  W* recv_buf_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// Ring all-gather: at step s member r forwards chunk (r-s) to r+1 and receives chunk (r-s-1).

class RingAllGather final : public StepSource {
 public:
  RingAllGather(int rank, int size, void* base, std::vector<std::size_t> offset,
                std::vector<std::size_t> bytes)
      : rank_(rank),
        size_(size),
        base_(static_cast<char*>(base)),
        offset_(std::move(offset)),
        bytes_(std::move(bytes)) {}

  std::optional<Step> next() override {
    if (step_ >= size_ - 1) return std::nullopt;
    const auto send_chunk = static_cast<std::size_t>(wrap(rank_ - step_, size_));
    const auto recv_chunk = static_cast<std::size_t>(wrap(rank_ - step_ - 1, size_));
    ++step_;
    Step step;
    step.sends.push_back({base_ + offset_[send_chunk], bytes_[send_chunk], wrap(rank_ + 1, size_)});
    step.recvs.push_back({base_ + offset_[recv_chunk], bytes_[recv_chunk], wrap(rank_ - 1, size_)});
    return step;
  }

 private:
  int rank_;
  int size_;
  char* base_;
  std::vector<std::size_t> offset_;
  std::vector<std::size_t> bytes_;
  int step_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Binomial-tree broadcast over ranks relative to the root: relative rank v receives from v
// with its lowest set bit cleared, then sends to v + 2^k for each 2^k below that bit.

class BinomialBroadcast final : public StepSource {
 public:
  BinomialBroadcast(int rank, int size, int root, void* data, std::size_t bytes)
      : data_(data), bytes_(bytes) {
    const int v = wrap(rank - root, size);
    int mask = 1;
    while (mask < size && (v & mask) == 0) mask <<= 1;
    if (v != 0) parent_ = wrap(v - mask + root, size);
    for (int m = mask >> 1; m > 0; m >>= 1) {
      if (v + m < size) children_.push_back(wrap(v + m + root, size));
    }
  }

  std::optional<Step> next() override {
    Step step;
    if (!received_ && parent_ >= 0) {
      step.recvs.push_back({data_, bytes_, parent_});
    } else if (!sent_ && !children_.empty()) {
      for (int child : children_) step.sends.push_back({data_, bytes_, child});
      sent_ = true;
    } else {
      return std::nullopt;
    }
    received_ = true;
    return step;
  }

 private:
  void* data_;
  std::size_t bytes_;
  int parent_ = -1;
  std::vector<int> children_;
  bool received_ = false;
  bool sent_ = false;
};

// ---------------------------------------------------------------------------------------------
// Dissemination: in round k member r sends to r + 2^k and receives from r - 2^k. After
// ceil(log2 n) rounds every member has heard, directly or not, from every other one.

class Dissemination final : public StepSource {
 public:
  Dissemination(int rank, int size, std::uint64_t value, std::function<void(int)> on_mismatch)
      : rank_(rank), size_(size), value_(value), on_mismatch_(std::move(on_mismatch)) {}

  std::optional<Step> next() override {
    if (distance_ >= size_) return std::nullopt;
    const int from = wrap(rank_ - distance_, size_);
    Step step;
    step.sends.push_back({&value_, sizeof value_, wrap(rank_ + distance_, size_)});
    step.recvs.push_back({&received_, sizeof received_, from});
    step.then = [this, from] {
      if (received_ != value_) on_mismatch_(from);
    };
    distance_ *= 2;
    return step;
  }

 private:
  int rank_;
  int size_;
  std::uint64_t value_;
  std::uint64_t received_ = 0;
  std::function<void(int)> on_mismatch_;
  int distance_ = 1;
};

class SingleStep final : public StepSource {
 public:
  explicit SingleStep(Step step) : step_(std::move(step)) {}
  std::optional<Step> next() override {
    std::optional<Step> out = std::move(step_);
    step_.reset();
    return out;
  }

 private:
  std::optional<Step> step_;
};

template <class T>
std::unique_ptr<StepSource> make_ring_reduce_scatter(int rank, int size, const void* in,
                                                     ChunkLayout layout, void* own_out, ReduceOp op,
                                                     std::size_t max_message_bytes) {
  return std::make_unique<RingReduceScatter<T>>(rank, size, static_cast<const T*>(in),
                                                std::move(layout), static_cast<T*>(own_out), op,
                                                max_message_bytes);
}

}  // namespace

ChunkLayout ChunkLayout::balanced(std::int64_t numel, int parts) {
  ChunkLayout layout;
  const std::int64_t base = numel / parts;
  const std::int64_t extra = numel % parts;
  std::int64_t offset = 0;
  for (int c = 0; c < parts; ++c) {
    const std::int64_t length = base + (c < extra ? 1 : 0);
    layout.offset.push_back(offset);
    layout.length.push_back(length);
    offset += length;
  }
  return layout;
}

ChunkLayout ChunkLayout::equal(std::int64_t chunk, int parts) {
  ChunkLayout layout;
  for (int c = 0; c < parts; ++c) {
    layout.offset.push_back(c * chunk);
    layout.length.push_back(chunk);
  }
  return layout;
}

std::unique_ptr<StepSource> ring_reduce_scatter(int rank, int size, DType dtype, const void* in,
                                                ChunkLayout layout, void* own_out, ReduceOp op,
                                                std::size_t max_message_bytes) {
  switch (dtype) {
    case DType::f32:
      return make_ring_reduce_scatter<float>(rank, size, in, std::move(layout), own_out, op,
                                             max_message_bytes);
    case DType::f64:
      return make_ring_reduce_scatter<double>(rank, size, in, std::move(layout), own_out, op,
                                              max_message_bytes);
    case DType::bf16:
      return make_ring_reduce_scatter<bf16>(rank, size, in, std::move(layout), own_out, op,
                                            max_message_bytes);
    case DType::i32:
      return make_ring_reduce_scatter<std::int32_t>(rank, size, in, std::move(layout), own_out, op,
                                                    max_message_bytes);
  }
  throw Error("reduction of unsupported dtype " + std::string(dtype_name(dtype)));
}

std::unique_ptr<StepSource> ring_all_gather(int rank, int size, void* base,
                                            std::vector<std::size_t> offset,
                                            std::vector<std::size_t> bytes) {
  return std::make_unique<RingAllGather>(rank, size, base, std::move(offset), std::move(bytes));
}

std::unique_ptr<StepSource> binomial_broadcast(int rank, int size, int root, void* data,
                                               std::size_t bytes) {
  return std::make_unique<BinomialBroadcast>(rank, size, root, data, bytes);
}

std::unique_ptr<StepSource> dissemination(int rank, int size, std::uint64_t value,
                                          std::function<void(int)> on_mismatch) {
  return std::make_unique<Dissemination>(rank, size, value, std::move(on_mismatch));
}

std::unique_ptr<StepSource> single_step(Step step) {
  return std::make_unique<SingleStep>(std::move(step));
}

}  // namespace lt::mpi_detail
