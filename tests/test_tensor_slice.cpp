// Resharding: pieces of a global tensor saved under one layout (tp slices by rows or columns,
// cut into flat ZeRO-style ranges) reassemble any slice of another layout exactly.
#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"
#include "trainer/tensor_slice.h"

namespace lt {
namespace {

enum class Split { rows, cols, none };

// The pieces of a rows x cols tensor split `tp` ways along `split`, each slice cut at random
// flat positions into `cuts + 1` ranges.
std::vector<TensorSlice> layout(std::int64_t rows, std::int64_t cols, Split split, int tp, int cuts,
                                std::mt19937& rng) {
  std::vector<TensorSlice> pieces;
  const std::vector<std::int64_t> global =
      cols == 1 ? std::vector<std::int64_t>{rows} : std::vector<std::int64_t>{rows, cols};
  for (int r = 0; r < (split == Split::none ? 1 : tp); ++r) {
    TensorSlice slice;
    slice.global_shape = global;
    std::int64_t local_rows = rows, local_cols = cols;
    if (split == Split::rows) {
      local_rows = rows / tp;
      slice.row_offset = r * local_rows;
    } else if (split == Split::cols) {
      local_cols = cols / tp;
      slice.col_offset = r * local_cols;
    }
    slice.local_shape = cols == 1 ? std::vector<std::int64_t>{local_rows}
                                  : std::vector<std::int64_t>{local_rows, local_cols};
    const std::int64_t n = local_rows * local_cols;
    std::vector<std::int64_t> bounds{0, n};
    std::uniform_int_distribution<std::int64_t> at(0, n);
    for (int c = 0; c < cuts; ++c) bounds.push_back(at(rng));
    std::sort(bounds.begin(), bounds.end());
    for (std::size_t i = 0; i + 1 < bounds.size(); ++i) {
      TensorSlice piece = slice;
      piece.flat_begin = bounds[i];
      piece.flat_end = bounds[i + 1];
      pieces.push_back(piece);
    }
  }
  return pieces;
}

// The global element a piece's i-th stored element is.
float value_of(const TensorSlice& s, std::int64_t i) {
  const std::int64_t local = s.flat_begin + i;
  const std::int64_t row = s.row_offset + local / s.cols(), col = s.col_offset + local % s.cols();
  return static_cast<float>(row * s.global_cols() + col);
}

void expect_reassembles(const std::vector<TensorSlice>& saved,
                        const std::vector<TensorSlice>& wanted) {
  std::int64_t reads = 0;
  const ReadPiece read = [&](std::size_t p, std::int64_t offset, std::span<float> out) {
    ASSERT_GE(offset, 0);
    ASSERT_LE(offset + static_cast<std::int64_t>(out.size()), saved[p].size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      out[i] = value_of(saved[p], offset + static_cast<std::int64_t>(i));
    }
    ++reads;
  };
  for (const TensorSlice& target : wanted) {
    std::vector<float> out(static_cast<std::size_t>(target.size()), -1.0f);
    assemble_slice(target, saved, read, out);
    for (std::size_t i = 0; i < out.size(); ++i) {
      ASSERT_EQ(out[i], value_of(target, static_cast<std::int64_t>(i)))
          << "element " << i << " of the slice at row " << target.row_offset << ", column "
          << target.col_offset;
    }
  }
  EXPECT_GT(reads, 0);
}

TEST(TensorSlice, EveryLayoutReassemblesEveryOtherLayout) {
  std::mt19937 rng(7);
  const std::vector<std::tuple<Split, int, int>> layouts = {
      {Split::none, 1, 0}, {Split::none, 1, 3}, {Split::rows, 2, 0}, {Split::rows, 4, 2},
      {Split::cols, 2, 0}, {Split::cols, 4, 3}, {Split::rows, 2, 5},
  };
  for (auto [rows, cols] : {std::pair<std::int64_t, std::int64_t>{8, 12}, {16, 1}, {4, 20}}) {
    for (const auto& [split_a, tp_a, cuts_a] : layouts) {
      for (const auto& [split_b, tp_b, cuts_b] : layouts) {
        if (cols == 1 && (split_a == Split::cols || split_b == Split::cols)) continue;
        SCOPED_TRACE(testing::Message()
                     << rows << "x" << cols << " saved split " << static_cast<int>(split_a) << "/"
                     << tp_a << " cuts " << cuts_a << ", loaded split " << static_cast<int>(split_b)
                     << "/" << tp_b << " cuts " << cuts_b);
        expect_reassembles(layout(rows, cols, split_a, tp_a, cuts_a, rng),
                           layout(rows, cols, split_b, tp_b, cuts_b, rng));
      }
    }
  }
}

TEST(TensorSlice, SameLayoutReadsEachPieceInOneCall) {
  std::mt19937 rng(3);
  const auto pieces = layout(64, 32, Split::rows, 2, 3, rng);
  int reads = 0;
  for (const TensorSlice& target : pieces) {
    std::vector<float> out(static_cast<std::size_t>(target.size()));
    assemble_slice(
        target, pieces, [&](std::size_t, std::int64_t, std::span<float>) { ++reads; }, out);
  }
  EXPECT_EQ(reads, static_cast<int>(pieces.size()));
}

TEST(TensorSlice, AMissingPieceIsAnErrorNamingTheElement) {
  std::mt19937 rng(5);
  auto saved = layout(8, 12, Split::rows, 2, 2, rng);
  saved.erase(saved.begin() + 1);
  const auto wanted = layout(8, 12, Split::none, 1, 0, rng);
  std::vector<float> out(96);
  try {
    assemble_slice(
        wanted[0], saved, [](std::size_t, std::int64_t, std::span<float>) {}, out);
    FAIL() << "a hole in the saved pieces went unnoticed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no saved piece holds element"), std::string::npos)
        << e.what();
  }
}

TEST(TensorSlice, AnotherGlobalShapeIsAnError) {
  std::mt19937 rng(5);
  const auto saved = layout(8, 12, Split::none, 1, 0, rng);
  auto wanted = layout(12, 8, Split::none, 1, 0, rng);
  std::vector<float> out(96);
  EXPECT_THROW(assemble_slice(
                   wanted[0], saved, [](std::size_t, std::int64_t, std::span<float>) {}, out),
               Error);
}

}  // namespace
}  // namespace lt
