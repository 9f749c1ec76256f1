// Sampling semantics on distributions whose filtered forms are known by hand: temperature, then
// top-k, then top-p (over the top-k set, renormalized), ties to the lower id; draws follow the
// filtered distribution and are reproducible from the seed.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "trainer/sampling.h"

namespace lt {
namespace {

// Logits whose softmax at temperature 1 is exactly `probabilities`.
std::vector<float> logits_of(const std::vector<double>& probabilities) {
  std::vector<float> logits;
  for (double p : probabilities) logits.push_back(static_cast<float>(std::log(p)));
  return logits;
}

// ids 0..3 with probabilities 0.1, 0.4, 0.2, 0.3: ranked 1, 3, 2, 0.
const std::vector<float> kFour = logits_of({0.1, 0.4, 0.2, 0.3});

SamplingOptions options(double temperature, std::int64_t top_k, double top_p) {
  SamplingOptions o;
  o.temperature = temperature;
  o.top_k = top_k;
  o.top_p = top_p;
  return o;
}

void expect_probabilities(const std::vector<double>& actual, const std::vector<double>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(actual[i], expected[i], 1e-6) << "token " << i;
}

TEST(Sampling, NoFilterIsTheSoftmax) {
  expect_probabilities(filtered_probabilities(kFour, options(1.0, 0, 1.0)), {0.1, 0.4, 0.2, 0.3});
}

TEST(Sampling, TemperatureDividesTheLogits) {
  // softmax(log p / 2) is proportional to sqrt(p).
  const std::vector<double> root = {std::sqrt(0.1), std::sqrt(0.4), std::sqrt(0.2), std::sqrt(0.3)};
  const double total = root[0] + root[1] + root[2] + root[3];
  expect_probabilities(filtered_probabilities(kFour, options(2.0, 0, 1.0)),
                       {root[0] / total, root[1] / total, root[2] / total, root[3] / total});
}

TEST(Sampling, TopKKeepsTheMostLikelyAndRenormalizes) {
  expect_probabilities(filtered_probabilities(kFour, options(1.0, 2, 1.0)),
                       {0.0, 4.0 / 7, 0.0, 3.0 / 7});
  expect_probabilities(filtered_probabilities(kFour, options(1.0, 1, 1.0)), {0, 1, 0, 0});
  // k at or above the vocabulary keeps everything.
  expect_probabilities(filtered_probabilities(kFour, options(1.0, 4, 1.0)), {0.1, 0.4, 0.2, 0.3});
  expect_probabilities(filtered_probabilities(kFour, options(1.0, 99, 1.0)), {0.1, 0.4, 0.2, 0.3});
}

TEST(Sampling, TopPKeepsTheSmallestSetReachingP) {
  // Cumulative in rank order: 0.4, 0.7, 0.9, 1.0 (up to the rounding of float logits, so the
  // cut points are checked just beside those sums).
  expect_probabilities(filtered_probabilities(kFour, options(1.0, 0, 0.39)), {0, 1, 0, 0});
  expect_probabilities(filtered_probabilities(kFour, options(1.0, 0, 0.41)),
                       {0.0, 4.0 / 7, 0.0, 3.0 / 7});
  expect_probabilities(filtered_probabilities(kFour, options(1.0, 0, 0.69)),
                       {0.0, 4.0 / 7, 0.0, 3.0 / 7});
  expect_probabilities(filtered_probabilities(kFour, options(1.0, 0, 0.71)),
                       {0.0, 4.0 / 9, 2.0 / 9, 3.0 / 9});
  expect_probabilities(filtered_probabilities(kFour, options(1.0, 0, 0.95)), {0.1, 0.4, 0.2, 0.3});
}

TEST(Sampling, TopPAppliesToTheTopKSetAfterRenormalizing) {
  // Top-2 renormalized is {4/7, 3/7}; 4/7 >= 0.5 alone, so only token 1 is left. Applied to the
  // unfiltered distribution instead, p = 0.5 would have kept tokens 1 and 3.
  expect_probabilities(filtered_probabilities(kFour, options(1.0, 2, 0.5)), {0, 1, 0, 0});
  // Top-3 renormalized is {4/9, 3/9, 2/9}: 7/9 < 0.8, so all three stay.
  expect_probabilities(filtered_probabilities(kFour, options(1.0, 3, 0.8)),
                       {0.0, 4.0 / 9, 2.0 / 9, 3.0 / 9});
}

TEST(Sampling, TemperatureComesBeforeTopP) {
  // At T = 2 the ranked probabilities are proportional to sqrt(0.4), sqrt(0.3), ...: the first
  // is 0.6325 / 1.9436 = 0.325 < 0.4, so top-p 0.4 keeps two tokens (it kept one at T = 1).
  const std::vector<double> p = filtered_probabilities(kFour, options(2.0, 0, 0.4));
  EXPECT_EQ(p[0], 0.0);
  EXPECT_EQ(p[2], 0.0);
  EXPECT_NEAR(p[1], std::sqrt(0.4) / (std::sqrt(0.4) + std::sqrt(0.3)), 1e-6);
  EXPECT_NEAR(p[3], std::sqrt(0.3) / (std::sqrt(0.4) + std::sqrt(0.3)), 1e-6);
}

TEST(Sampling, TiesGoToTheLowerId) {
  const std::vector<float> tied = {0.0f, 2.0f, 2.0f, 1.0f, 2.0f};
  EXPECT_EQ(greedy_token(tied), 1);
  expect_probabilities(filtered_probabilities(tied, options(1.0, 1, 1.0)), {0, 1, 0, 0, 0});
  expect_probabilities(filtered_probabilities(tied, options(1.0, 2, 1.0)), {0, 0.5, 0.5, 0, 0});
  // Three equal tokens hold most of the mass; the smallest prefix reaching 0.5 takes the first
  // two of them in id order.
  const std::vector<double> p = filtered_probabilities(tied, options(1.0, 0, 0.5));
  expect_probabilities(p, {0, 0.5, 0.5, 0, 0});
}

TEST(Sampling, GreedyAtZeroTemperatureAndLowTemperatureConverges) {
  SamplingOptions o = options(0.0, 0, 1.0);
  for (std::uint64_t step = 0; step < 50; ++step) EXPECT_EQ(sample_token(kFour, o, step), 1);
  // As T -> 0 the filtered distribution tends to the argmax.
  const std::vector<double> cold = filtered_probabilities(kFour, options(0.01, 0, 1.0));
  EXPECT_GT(cold[1], 1.0 - 1e-9);
}

TEST(Sampling, DrawTokenWalksTheCumulativeSumInIdOrder) {
  const std::vector<double> p = {0.0, 0.25, 0.0, 0.75};
  EXPECT_EQ(draw_token(p, 0.0), 1);
  EXPECT_EQ(draw_token(p, 0.2499), 1);
  EXPECT_EQ(draw_token(p, 0.25), 3);
  EXPECT_EQ(draw_token(p, 0.9999999), 3);
  // Rounding that leaves u beyond the total gives the last token with mass, never a zero one.
  EXPECT_EQ(draw_token(std::vector<double>{0.3, 0.3, 0.0}, 0.99), 1);
}

TEST(Sampling, DrawsFollowTheFilteredDistribution) {
  const SamplingOptions o = [] {
    SamplingOptions s = options(1.0, 3, 1.0);
    s.seed = 42;
    return s;
  }();
  const std::vector<double> expected = filtered_probabilities(kFour, o);  // 0, 4/9, 2/9, 3/9
  constexpr int kDraws = 90000;
  std::vector<int> counts(kFour.size(), 0);
  for (std::uint64_t step = 0; step < kDraws; ++step) ++counts[sample_token(kFour, o, step)];
  EXPECT_EQ(counts[0], 0);
  for (std::size_t t = 1; t < kFour.size(); ++t) {
    const double p = expected[t];
    const double sigma = std::sqrt(p * (1 - p) / kDraws);
    EXPECT_NEAR(static_cast<double>(counts[t]) / kDraws, p, 5 * sigma) << "token " << t;
  }
}

TEST(Sampling, TheSeedDeterminesTheDraws) {
  SamplingOptions a = options(1.0, 0, 1.0), b = a, c = a;
  a.seed = b.seed = 7;
  c.seed = 8;
  std::vector<std::int32_t> da, db, dc;
  for (std::uint64_t step = 0; step < 64; ++step) {
    da.push_back(sample_token(kFour, a, step));
    db.push_back(sample_token(kFour, b, step));
    dc.push_back(sample_token(kFour, c, step));
  }
  EXPECT_EQ(da, db);
  EXPECT_NE(da, dc);
  for (std::uint64_t step = 0; step < 1000; ++step) {
    const double u = sampling_uniform(7, step);
    EXPECT_GE(u, 0.0);
    EXPECT_LT(u, 1.0);
  }
}

TEST(Sampling, BadOptionsAreRefusedWithTheirName) {
  auto message = [](const SamplingOptions& o) {
    try {
      validate_sampling(o);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message(options(-1.0, 0, 1.0)).find("--temperature"), std::string::npos);
  EXPECT_NE(message(options(NAN, 0, 1.0)).find("--temperature"), std::string::npos);
  EXPECT_NE(message(options(1.0, -3, 1.0)).find("--top-k"), std::string::npos);
  EXPECT_NE(message(options(1.0, 0, 0.0)).find("--top-p"), std::string::npos);
  EXPECT_NE(message(options(1.0, 0, 1.5)).find("--top-p"), std::string::npos);
  EXPECT_EQ(message(options(0.0, 5, 0.9)), "accepted");
  const std::vector<float> bad = {0.0f, INFINITY};
  EXPECT_ANY_THROW(sample_token(bad, options(1.0, 0, 1.0), 0));
}

}  // namespace
}  // namespace lt
