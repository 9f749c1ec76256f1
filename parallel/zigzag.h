// Zigzag sharding of sequences for context parallelism: a sequence of S tokens is cut into 2·cp
// chunks; cp rank r holds chunks r and 2·cp − 1 − r, so every rank gets the same amount of
// causal attention work. Local tokens of one sequence are [chunk r | chunk 2·cp − 1 − r].
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace lt {

struct Zigzag {
  std::int64_t cp = 1;
  std::int64_t seq_len = 0;  // global tokens per sequence; divisible by 2·cp

  std::int64_t chunk() const { return seq_len / (2 * cp); }
  std::int64_t local_len() const { return 2 * chunk(); }
  // Position in the global sequence of local token i (0 <= i < local_len) of rank r.
  std::int64_t global_index(std::int64_t rank, std::int64_t i) const;
  // Global positions of rank r's local tokens for `batch` sequences ([batch * local_len]).
  std::vector<std::int32_t> global_order(std::int64_t rank, std::int64_t batch) const;
  // Rank r's slice of a [batch, seq_len] per-token array.
  template <class T>
  std::vector<T> slice(std::span<const T> full, std::int64_t rank, std::int64_t batch) const {
    std::vector<T> out;
    out.reserve(static_cast<std::size_t>(batch * local_len()));
    for (std::int64_t b = 0; b < batch; ++b)
      for (std::int64_t i = 0; i < local_len(); ++i)
        out.push_back(full[static_cast<std::size_t>(b * seq_len + global_index(rank, i))]);
    return out;
  }
};

}  // namespace lt
