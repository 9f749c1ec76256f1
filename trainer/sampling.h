// Choosing the next token from a row of logits: greedy (argmax), or a draw from the distribution
// left after temperature, top-k and top-p, applied in that order. Every function is pure; a draw
// takes its uniform number from the counter-based RNG keyed by (seed, step), so a generation is
// reproducible from its seed alone.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace lt {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy
  std::int64_t top_k = 0;    // 0: off
  double top_p = 1.0;        // 1: off
  std::uint64_t seed = 0;
};

// Throws std::invalid_argument naming the option, its value and the accepted range.
void validate_sampling(const SamplingOptions& options);

// The token with the largest logit; the lowest id among equal ones.
std::int32_t greedy_token(std::span<const float> logits);

// The distribution a draw comes from (needs temperature > 0): softmax(logits / T) restricted to
// the top_k most likely tokens, then to the smallest prefix of them (most likely first, ties by
// lower id) whose probability, renormalized over the top-k set, sums to at least top_p;
// renormalized over what is kept. Tokens filtered out get probability 0.
std::vector<double> filtered_probabilities(std::span<const float> logits,
                                           const SamplingOptions& options);

// The token at which the cumulative sum of `probabilities`, taken in token-id order, first
// exceeds `u` in [0, 1); the last token with non-zero probability when rounding leaves u beyond
// the total.
std::int32_t draw_token(std::span<const double> probabilities, double u);

// The uniform number of draw `step` of a generation seeded with `seed`.
double sampling_uniform(std::uint64_t seed, std::uint64_t step);

// Greedy when temperature is 0, else a draw from filtered_probabilities with
// sampling_uniform(options.seed, step).
std::int32_t sample_token(std::span<const float> logits, const SamplingOptions& options,
                          std::uint64_t step);

}  // namespace lt
