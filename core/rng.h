// Counter-based random numbers (Philox4x32-10). A value depends only on (key, counter), so any
// rank can produce any element of a global tensor or any sample of the data stream without
// generating the ones before it: init and data are independent of the parallel layout.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace lt {

using Philox4 = std::array<std::uint32_t, 4>;

Philox4 philox4x32(std::uint64_t key, std::uint64_t counter_hi, std::uint64_t counter_lo);

// Key for a named stream: mixes the run seed with a hash of the name (e.g. a parameter name).
std::uint64_t rng_key(std::uint64_t seed, std::string_view name);

// Uniform in [0, 1) from 24 random bits (exact in fp32).
float uniform_float(std::uint32_t bits);
// Standard normal for element `index` of stream `key` (Box-Muller on one Philox block).
double normal_at(std::uint64_t key, std::uint64_t index);
// Uniform in [0, 1) for element `index` of stream `key`.
double uniform_at(std::uint64_t key, std::uint64_t index);

// A sequential generator over one (key, stream) pair: draw i uses counter (stream, i / 4).
class CounterRng {
 public:
  CounterRng(std::uint64_t key, std::uint64_t stream) : key_(key), stream_(stream) {}
  std::uint32_t next_u32();
  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias below 2^-32 per draw).
  std::uint32_t below(std::uint32_t n);
  double next_double();

 private:
  std::uint64_t key_;
  std::uint64_t stream_;
  std::uint64_t block_ = 0;
  Philox4 buffer_{};
  int used_ = 4;
};

}  // namespace lt
