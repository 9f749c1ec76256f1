#include "core/tensor.h"

#include <stdexcept>

#include "core/error.h"

namespace lt {

Shape::Shape(std::initializer_list<std::int64_t> dims) {
  LT_CHECK(dims.size() <= kMaxRank, "rank " << dims.size() << " exceeds " << kMaxRank);
  for (std::int64_t d : dims) {
    LT_CHECK(d >= 0, "negative dimension " << d);
    dims_[static_cast<std::size_t>(rank_++)] = d;
  }
}

std::int64_t Shape::numel() const {
  std::int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
  return n;
}

bool Shape::operator==(const Shape& other) const {
  if (rank_ != other.rank_) return false;
  for (int i = 0; i < rank_; ++i) {
    if ((*this)[i] != other[i]) return false;
  }
  return true;
}

Shape Shape::with_dim(int i, std::int64_t value) const {
  LT_CHECK(i >= 0 && i < rank_ && value >= 0,
           "with_dim(" << i << ", " << value << ") of " << str());
  Shape s = *this;
  s.dims_[static_cast<std::size_t>(i)] = value;
  return s;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string((*this)[i]);
  }
  return s + "]";
}

namespace {
std::int64_t natural_row_stride(const Shape& shape) {
  if (shape.rank() < 2) return shape.rank() == 1 ? 1 : 0;
  std::int64_t inner = 1;
  for (int i = 1; i < shape.rank(); ++i) inner *= shape[i];
  return inner;
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, MemCategory category, Device device) {
  Tensor t;
  t.storage_ = std::make_shared<Storage>(
      static_cast<std::size_t>(shape.numel()) * dtype_size(dtype), category, device);
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.row_stride_ = natural_row_stride(shape);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, MemCategory category, Device device) {
  Tensor t = empty(shape, dtype, category, device);
  zero_bytes(t.raw(), device, t.nbytes());
  return t;
}

bool Tensor::is_contiguous() const {
  return row_stride_ == natural_row_stride(shape_);
}

void* Tensor::raw() const {
  LT_CHECK(storage_ != nullptr, "access to an undefined tensor");
  return static_cast<char*>(storage_->data()) +
         offset_ * static_cast<std::int64_t>(dtype_size(dtype_));
}

Tensor Tensor::reshape(const Shape& shape) const {
  require_contiguous("reshape");
  LT_CHECK(shape.numel() == numel(), "reshape " << shape_.str() << " -> " << shape.str());
  Tensor t = *this;
  t.shape_ = shape;
  t.row_stride_ = natural_row_stride(shape);
  return t;
}

Tensor Tensor::rows(std::int64_t start, std::int64_t count) const {
  LT_CHECK(rank() >= 1 && start >= 0 && count >= 0 && start + count <= dim(0),
           "rows(" << start << ", " << count << ") of " << shape_.str());
  Tensor t = *this;
  t.offset_ += start * (rank() == 1 ? 1 : row_stride_);
  t.shape_ = shape_.with_dim(0, count);
  return t;
}

Tensor Tensor::columns(std::int64_t start, std::int64_t count) const {
  LT_CHECK(rank() == 2 && start >= 0 && count >= 0 && start + count <= dim(1),
           "columns(" << start << ", " << count << ") of " << shape_.str());
  Tensor t = *this;
  t.offset_ += start;
  t.shape_ = Shape{dim(0), count};
  return t;
}

Tensor Tensor::flat_view(std::int64_t offset, const Shape& shape) const {
  require_contiguous("flat_view");
  LT_CHECK(offset >= 0 && offset + shape.numel() <= numel(),
           "flat_view(" << offset << ", " << shape.str() << ") of " << shape_.str());
  Tensor t = *this;
  t.offset_ += offset;
  t.shape_ = shape;
  t.row_stride_ = natural_row_stride(shape);
  return t;
}

std::string Tensor::describe() const {
  return std::string(dtype_name(dtype_)) + shape_.str();
}

void Tensor::check_type(DType expected) const {
  LT_CHECK(dtype_ == expected,
           "tensor is " << dtype_name(dtype_) << ", accessed as " << dtype_name(expected));
}

void Tensor::require_contiguous(const char* what) const {
  LT_CHECK(is_contiguous(), what << " needs a contiguous tensor, got a strided " << shape_.str());
}

void copy_to_host(const Tensor& src, void* dst, std::size_t bytes) {
  LT_CHECK(src.is_contiguous() && bytes == src.nbytes(),
           "copy_to_host of " << src.describe() << " into " << bytes << " bytes");
  copy_bytes(dst, Device::cpu, src.raw(), src.device(), bytes);
}

void copy_from_host(const void* src, std::size_t bytes, const Tensor& dst) {
  LT_CHECK(dst.is_contiguous() && bytes == dst.nbytes(),
           "copy_from_host of " << bytes << " bytes into " << dst.describe());
  copy_bytes(dst.raw(), dst.device(), src, Device::cpu, bytes);
}

}  // namespace lt
