// Tensor: a typed, shaped view into a tagged Storage. Row-major; views may have a row stride
// larger than their width (column blocks of a wider matrix), which the kernels accept.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/device_scope.h"
#include "core/dtype.h"
#include "core/storage.h"

namespace lt {

class Shape {
 public:
  static constexpr int kMaxRank = 4;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims);

  int rank() const { return rank_; }
  std::int64_t operator[](int i) const { return dims_[static_cast<std::size_t>(i)]; }
  std::int64_t numel() const;
  bool operator==(const Shape& other) const;
  Shape with_dim(int i, std::int64_t value) const;
  std::string str() const;

 private:
  std::array<std::int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

class Tensor {
 public:
  Tensor() = default;

  // On `device`, by default this thread's default device (core/device_scope.h).
  static Tensor empty(const Shape& shape, DType dtype, MemCategory category,
                      Device device = default_device());
  static Tensor zeros(const Shape& shape, DType dtype, MemCategory category,
                      Device device = default_device());

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  std::int64_t dim(int i) const { return shape_[i]; }
  std::int64_t numel() const { return shape_.numel(); }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_->device(); }
  MemCategory category() const { return storage_->category(); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }

  // Elements between consecutive rows (first index) of a 2D tensor.
  std::int64_t row_stride() const { return row_stride_; }
  // Rows of a 2D view are (dim(0)), columns dim(1); for other ranks the tensor is contiguous.
  bool is_contiguous() const;

  template <class T>
  T* data() const {
    check_type(dtype_of<T>());
    return static_cast<T*>(raw());
  }
  void* raw() const;

  template <class T>
  std::span<T> span() const {
    require_contiguous("span");
    return {data<T>(), static_cast<std::size_t>(numel())};
  }

  // Same elements, new shape (contiguous tensors only).
  Tensor reshape(const Shape& shape) const;
  // Rows [start, start + count) of the first dimension (contiguous tensors only).
  Tensor rows(std::int64_t start, std::int64_t count) const;
  // Columns [start, start + count) of a 2D tensor: a row-strided view.
  Tensor columns(std::int64_t start, std::int64_t count) const;
  // A contiguous flat range of elements as a tensor of the given shape.
  Tensor flat_view(std::int64_t offset, const Shape& shape) const;

  std::string describe() const;

 private:
  void check_type(DType expected) const;
  void require_contiguous(const char* what) const;

  std::shared_ptr<Storage> storage_;
  std::int64_t offset_ = 0;  // in elements
  Shape shape_;
  std::int64_t row_stride_ = 0;
  DType dtype_ = DType::f32;
};

// Moves the bytes of a contiguous tensor on any device to or from host memory of exactly
// t.nbytes() bytes (see copy_bytes for the ordering). lt::copy converts dtypes and layouts, across
// devices too.
void copy_to_host(const Tensor& src, void* dst, std::size_t bytes);
void copy_from_host(const void* src, std::size_t bytes, const Tensor& dst);

// The elements of a contiguous tensor on any device, read into a host vector of its C++ type.
template <class T>
std::vector<T> to_host_vector(const Tensor& t) {
  std::vector<T> out(static_cast<std::size_t>(t.numel()));
  (void)t.data<T>();  // checks the dtype
  copy_to_host(t, out.data(), out.size() * sizeof(T));
  return out;
}

}  // namespace lt
