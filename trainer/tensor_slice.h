// Where a piece of a global tensor lives, in the one vocabulary checkpoints use for every
// layout: a tensor-parallel slice (a block of rows or columns of the global tensor, given by its
// offsets and local shape) and, inside that slice, a flat range of its row-major elements (the
// ZeRO shard a rank owns; the whole slice without ZeRO). assemble_slice fills any such piece of a
// tensor from pieces saved under another layout, which is all that resharding needs.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

namespace lt {

struct TensorSlice {
  std::vector<std::int64_t> global_shape;  // 1 or 2 dims
  std::int64_t row_offset = 0;             // of the tp slice in the global tensor
  std::int64_t col_offset = 0;
  std::vector<std::int64_t> local_shape;  // the tp slice's shape (the global shape without tp)
  std::int64_t flat_begin = 0;            // elements [flat_begin, flat_end) of the tp slice
  std::int64_t flat_end = 0;

  std::int64_t rows() const { return local_shape.empty() ? 0 : local_shape[0]; }
  std::int64_t cols() const { return local_shape.size() > 1 ? local_shape[1] : 1; }
  std::int64_t global_cols() const { return global_shape.size() > 1 ? global_shape[1] : 1; }
  std::int64_t size() const { return flat_end - flat_begin; }
};

// Reads `out.size()` elements of saved piece `piece`, starting at element `offset` of it.
using ReadPiece = std::function<void(std::size_t piece, std::int64_t offset, std::span<float> out)>;

// Fills `out` (target.size() elements) with the target's elements, read from the saved pieces
// of the same global tensor. Throws lt::Error naming the first element no piece covers, or when
// the shapes disagree.
void assemble_slice(const TensorSlice& target, std::span<const TensorSlice> pieces,
                    const ReadPiece& read, std::span<float> out);

}  // namespace lt
