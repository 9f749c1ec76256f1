#include "trainer/tensor_slice.h"

#include <algorithm>
#include <sstream>
#include <utility>

#include "core/error.h"

namespace lt {
namespace {

using Index = std::int64_t;

// A contiguous run of the global tensor's row-major elements: [begin, end), and where its
// first element goes (for the target) or comes from (for a piece) in the local flat order.
struct Run {
  Index begin = 0;
  Index end = 0;
  Index local = 0;
};

bool full_width(const TensorSlice& s) {
  return s.col_offset == 0 && s.cols() == s.global_cols();
}

// The global runs of slice `s` that lie in global rows [row_lo, row_hi): one run when its rows
// are whole (consecutive rows are then consecutive in the global order), else one per row.
template <class Visit>
void for_each_run(const TensorSlice& s, Index row_lo, Index row_hi, Visit&& visit) {
  const Index gc = s.global_cols(), cols = s.cols();
  if (full_width(s)) {
    const Index base = s.row_offset * gc;
    const Index begin = std::max(base + s.flat_begin, row_lo * gc);
    const Index end = std::min(base + s.flat_end, row_hi * gc);
    if (begin < end) visit(Run{begin, end, begin - base});
    return;
  }
  const Index first = std::max(s.flat_begin / cols, row_lo - s.row_offset);
  const Index last = std::min((s.flat_end + cols - 1) / cols, row_hi - s.row_offset);
  for (Index r = std::max<Index>(first, 0); r < last; ++r) {
    const Index lo = std::max(r * cols, s.flat_begin), hi = std::min((r + 1) * cols, s.flat_end);
    if (lo >= hi) continue;
    const Index global_row_start = (s.row_offset + r) * gc + s.col_offset;
    visit(Run{global_row_start + lo - r * cols, global_row_start + hi - r * cols, lo});
  }
}

void check_same_tensor(const TensorSlice& target, const TensorSlice& piece) {
  if (piece.global_shape != target.global_shape) {
    throw Error("the saved tensor's global shape differs from the model's (another model?)");
  }
  LT_CHECK(piece.flat_begin >= 0 && piece.flat_begin <= piece.flat_end &&
               piece.flat_end <= piece.rows() * piece.cols(),
           "a saved piece's flat range [" << piece.flat_begin << ", " << piece.flat_end
                                          << ") lies outside its slice of " << piece.rows() << " x "
                                          << piece.cols());
}

// Fails unless the covered local ranges add up to [0, size).
void check_covered(std::vector<std::pair<Index, Index>> covered, const TensorSlice& target) {
  std::sort(covered.begin(), covered.end());
  Index reached = 0;
  for (const auto& [lo, hi] : covered) {
    if (lo > reached) break;
    reached = std::max(reached, hi);
  }
  LT_CHECK(reached >= target.size(), "no saved piece holds element "
                                         << target.flat_begin + reached << " of the slice at row "
                                         << target.row_offset << ", column " << target.col_offset);
}

}  // namespace

void assemble_slice(const TensorSlice& target, std::span<const TensorSlice> pieces,
                    const ReadPiece& read, std::span<float> out) {
  LT_CHECK(static_cast<Index>(out.size()) == target.size(),
           "output of " << out.size() << " elements for a slice of " << target.size());
  const Index row_lo = target.row_offset, row_hi = target.row_offset + target.rows();
  std::vector<std::pair<Index, Index>> covered;
  for (std::size_t p = 0; p < pieces.size(); ++p) {
    const TensorSlice& piece = pieces[p];
    check_same_tensor(target, piece);
    for_each_run(target, row_lo, row_hi, [&](const Run& want) {
      const Index want_row_lo = want.begin / target.global_cols();
      const Index want_row_hi = (want.end - 1) / target.global_cols() + 1;
      for_each_run(piece, want_row_lo, want_row_hi, [&](const Run& have) {
        const Index lo = std::max(want.begin, have.begin), hi = std::min(want.end, have.end);
        if (lo >= hi) return;
        const Index at = want.local - target.flat_begin + (lo - want.begin);
        read(p, have.local - piece.flat_begin + (lo - have.begin),
             out.subspan(static_cast<std::size_t>(at), static_cast<std::size_t>(hi - lo)));
        covered.emplace_back(at, at + hi - lo);
      });
    });
  }
  check_covered(std::move(covered), target);
}

}  // namespace lt
