#include "parallel/zigzag.h"

#include "core/error.h"

namespace lt {

std::int64_t Zigzag::global_index(std::int64_t rank, std::int64_t i) const {
  LT_CHECK(cp >= 1 && seq_len % (2 * cp) == 0, "zigzag sharding needs seq_len ("
                                                   << seq_len << ") divisible by 2 x cp (" << 2 * cp
                                                   << ")");
  const std::int64_t c = chunk();
  return i < c ? rank * c + i : (2 * cp - 1 - rank) * c + (i - c);
}

std::vector<std::int32_t> Zigzag::global_order(std::int64_t rank, std::int64_t batch) const {
  std::vector<std::int32_t> order;
  order.reserve(static_cast<std::size_t>(batch * local_len()));
  for (std::int64_t b = 0; b < batch; ++b)
    for (std::int64_t i = 0; i < local_len(); ++i)
      order.push_back(static_cast<std::int32_t>(global_index(rank, i)));
  return order;
}

}  // namespace lt
