// RoPE context-extension scalings against the published closed forms, computed here
// independently of layers/rope.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "layers/rope.h"

namespace lt {
namespace {

ModelConfig model(const std::string& type, double factor) {
  ModelConfig m;
  m.dim = 512;
  m.heads = 8;  // head_dim 64
  m.rope_theta = 10000.0;
  m.rope_scaling.type = type;
  m.rope_scaling.factor = factor;
  m.rope_scaling.original_max_position = 2048;
  return m;
}

double plain(double theta, int i, int d) {
  return std::pow(theta, -2.0 * i / d);
}

TEST(RopeScaling, NtkStretchesTheBase) {
  const ModelConfig m = model("ntk", 4.0);
  const auto inv = rope_inverse_frequencies(m);
  const double base = 10000.0 * std::pow(4.0, 64.0 / 62.0);
  for (int i = 0; i < 32; ++i) EXPECT_NEAR(inv[i] / plain(base, i, 64), 1.0, 1e-12) << i;
  EXPECT_DOUBLE_EQ(inv[0], 1.0);                               // the highest frequency is kept
  EXPECT_NEAR(inv[31] / plain(10000.0, 31, 64), 0.25, 1e-12);  // the lowest slowed by factor
  EXPECT_DOUBLE_EQ(rope_attention_factor(m), 1.0);
}

TEST(RopeScaling, YarnMatchesTheClosedForm) {
  const ModelConfig m = model("yarn", 4.0);
  const auto inv = rope_inverse_frequencies(m);
  // Correction range: d ln(L / (2 pi beta)) / (2 ln theta), floored / ceiled.
  auto dim_of = [](double beta) {
    return 64.0 * std::log(2048.0 / (2.0 * std::numbers::pi * beta)) / (2.0 * std::log(1e4));
  };
  const double low = std::floor(dim_of(32.0)), high = std::ceil(dim_of(1.0));
  EXPECT_EQ(low, 8.0);
  EXPECT_EQ(high, 21.0);
  for (int i = 0; i < 32; ++i) {
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    const double f = plain(1e4, i, 64);
    EXPECT_NEAR(inv[i] / (ramp * f / 4.0 + (1.0 - ramp) * f), 1.0, 1e-12) << i;
  }
  EXPECT_DOUBLE_EQ(inv[0], 1.0);
  EXPECT_NEAR(inv[31], plain(1e4, 31, 64) / 4.0, 1e-15);
  EXPECT_NEAR(rope_attention_factor(m), 0.1 * std::log(4.0) + 1.0, 1e-15);
}

TEST(RopeScaling, YarnAttentionFactorScalesTheTables) {
  ModelConfig m = model("yarn", 4.0);
  m.rope_scaling.attention_factor = 1.5;
  EXPECT_DOUBLE_EQ(rope_attention_factor(m), 1.5);
  EXPECT_DOUBLE_EQ(rope_attention_factor(model("linear", 4.0)), 1.0);
}

}  // namespace
}  // namespace lt
