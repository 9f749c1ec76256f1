#include "core/rng.h"

#include <cmath>
#include <numbers>

namespace lt {
namespace {

constexpr std::uint32_t kMul0 = 0xD2511F53u;
constexpr std::uint32_t kMul1 = 0xCD9E8D57u;
constexpr std::uint32_t kWeyl0 = 0x9E3779B9u;
constexpr std::uint32_t kWeyl1 = 0xBB67AE85u;

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

Philox4 philox4x32(std::uint64_t key, std::uint64_t counter_hi, std::uint64_t counter_lo) {
  std::uint32_t c0 = static_cast<std::uint32_t>(counter_lo);
  std::uint32_t c1 = static_cast<std::uint32_t>(counter_lo >> 32);
  std::uint32_t c2 = static_cast<std::uint32_t>(counter_hi);
  std::uint32_t c3 = static_cast<std::uint32_t>(counter_hi >> 32);
  std::uint32_t k0 = static_cast<std::uint32_t>(key);
  std::uint32_t k1 = static_cast<std::uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t{kMul0} * c0;
    const std::uint64_t p1 = std::uint64_t{kMul1} * c2;
    const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<std::uint32_t>(p1);
    c3 = static_cast<std::uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {c0, c1, c2, c3};
}

std::uint64_t rng_key(std::uint64_t seed, std::string_view name) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char ch : name) {
    h ^= ch;
    h *= 0x100000001b3ull;
  }
  return splitmix64(splitmix64(seed) ^ h);
}

float uniform_float(std::uint32_t bits) {
  return static_cast<float>(bits >> 8) * 0x1.0p-24f;
}

double normal_at(std::uint64_t key, std::uint64_t index) {
  const Philox4 r = philox4x32(key, 0, index);
  const std::uint64_t a = (std::uint64_t{r[0]} << 21) ^ r[1];
  const std::uint64_t b = (std::uint64_t{r[2]} << 21) ^ r[3];
  // u1 in (0, 1], u2 in [0, 1): 53 random bits each.
  const double u1 = (static_cast<double>(a & ((1ull << 53) - 1)) + 1.0) * 0x1.0p-53;
  const double u2 = static_cast<double>(b & ((1ull << 53) - 1)) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

double uniform_at(std::uint64_t key, std::uint64_t index) {
  const Philox4 r = philox4x32(key, 1, index);
  const std::uint64_t a = (std::uint64_t{r[0]} << 21) ^ r[1];
  return static_cast<double>(a & ((1ull << 53) - 1)) * 0x1.0p-53;
}

std::uint32_t CounterRng::next_u32() {
  if (used_ == 4) {
    buffer_ = philox4x32(key_, stream_, block_++);
    used_ = 0;
  }
  return buffer_[static_cast<std::size_t>(used_++)];
}

std::uint32_t CounterRng::below(std::uint32_t n) {
  return static_cast<std::uint32_t>((std::uint64_t{next_u32()} * n) >> 32);
}

double CounterRng::next_double() {
  const std::uint64_t a = (std::uint64_t{next_u32()} << 21) ^ next_u32();
  return static_cast<double>(a & ((1ull << 53) - 1)) * 0x1.0p-53;
}

}  // namespace lt
