#include "trainer/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "core/error.h"
#include "core/rng.h"

namespace lt {
namespace {

// Softmax rounding can leave the cumulative sum of a set whose exact total is top_p a few ulps
// short of it; without this slack a hand-checked boundary would keep one token too many.
constexpr double kTopPSlack = 1e-12;

std::string number(double value) {
  std::string s = std::to_string(value);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// Token ids, most likely first; equal logits keep the lower id first.
std::vector<std::int32_t> ranked_tokens(std::span<const float> logits) {
  std::vector<std::int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::int32_t a, std::int32_t b) {
    return logits[static_cast<std::size_t>(a)] > logits[static_cast<std::size_t>(b)];
  });
  return order;
}

// softmax(logits / temperature) over `kept` (the first entries of a ranking), in that order.
std::vector<double> softmax_over(std::span<const float> logits, std::span<const std::int32_t> kept,
                                 double temperature) {
  const double top = logits[static_cast<std::size_t>(kept.front())];
  std::vector<double> p(kept.size());
  double total = 0.0;
  for (std::size_t i = 0; i < kept.size(); ++i) {
    p[i] = std::exp((logits[static_cast<std::size_t>(kept[i])] - top) / temperature);
    total += p[i];
  }
  for (double& x : p) x /= total;
  return p;
}

// How many of the ranked probabilities the smallest set with cumulative probability >= top_p
// takes.
std::size_t nucleus_size(std::span<const double> ranked, double top_p) {
  double cumulative = 0.0;
  for (std::size_t i = 0; i < ranked.size(); ++i) {
    cumulative += ranked[i];
    if (cumulative + kTopPSlack >= top_p) return i + 1;
  }
  return ranked.size();
}

}  // namespace

void validate_sampling(const SamplingOptions& o) {
  if (!(o.temperature >= 0.0) || !std::isfinite(o.temperature))
    throw std::invalid_argument("invalid value '" + number(o.temperature) +
                                "' for --temperature: expected a finite number >= 0 (0: greedy)");
  if (o.top_k < 0)
    throw std::invalid_argument("invalid value '" + std::to_string(o.top_k) +
                                "' for --top-k: expected an integer >= 0 (0: off)");
  if (!(o.top_p > 0.0 && o.top_p <= 1.0))
    throw std::invalid_argument("invalid value '" + number(o.top_p) +
                                "' for --top-p: expected a number in (0, 1] (1: off)");
}

std::int32_t greedy_token(std::span<const float> logits) {
  LT_CHECK(!logits.empty(), "greedy_token over no logits");
  return static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

std::vector<double> filtered_probabilities(std::span<const float> logits,
                                           const SamplingOptions& o) {
  LT_CHECK(!logits.empty() && o.temperature > 0.0,
           "filtered_probabilities needs logits and a temperature > 0, got "
               << logits.size() << " logits at temperature " << o.temperature);
  std::vector<std::int32_t> kept = ranked_tokens(logits);
  if (o.top_k > 0 && static_cast<std::size_t>(o.top_k) < kept.size())
    kept.resize(static_cast<std::size_t>(o.top_k));
  std::vector<double> p = softmax_over(logits, kept, o.temperature);
  if (o.top_p < 1.0) {
    kept.resize(nucleus_size(p, o.top_p));
    p = softmax_over(logits, kept, o.temperature);
  }
  std::vector<double> out(logits.size(), 0.0);
  for (std::size_t i = 0; i < kept.size(); ++i) out[static_cast<std::size_t>(kept[i])] = p[i];
  return out;
}

std::int32_t draw_token(std::span<const double> probabilities, double u) {
  double cumulative = 0.0;
  std::int32_t last = -1;
  for (std::size_t t = 0; t < probabilities.size(); ++t) {
    if (probabilities[t] <= 0.0) continue;
    last = static_cast<std::int32_t>(t);
    cumulative += probabilities[t];
    if (u < cumulative) return last;
  }
  LT_CHECK(last >= 0, "draw_token over a distribution with no mass");
  return last;
}

double sampling_uniform(std::uint64_t seed, std::uint64_t step) {
  return uniform_at(rng_key(seed, "generate/sample"), step);
}

std::int32_t sample_token(std::span<const float> logits, const SamplingOptions& o,
                          std::uint64_t step) {
  for (float x : logits) LT_CHECK(std::isfinite(x), "non-finite logit " << x << " in sampling");
  if (o.temperature == 0.0) return greedy_token(logits);
  return draw_token(filtered_probabilities(logits, o), sampling_uniform(o.seed, step));
}

}  // namespace lt
