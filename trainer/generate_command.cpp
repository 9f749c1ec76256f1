#include "trainer/generate_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <optional>
#include <stdexcept>

#include "trainer/config_schema.h"
#include "trainer/data.h"
#include "trainer/generate.h"

namespace lt {
namespace {

constexpr std::int64_t kDefaultQueries = 8;

constexpr std::array<std::string_view, 12> kFlags = {
    "--checkpoint",  "--hf",      "--prompt",         "--prompt-tokens",
    "--task-sample", "--queries", "--max-new-tokens", "--temperature",
    "--top-k",       "--top-p",   "--seed",           "--stop-token"};

struct Request {
  std::optional<std::string> checkpoint, hf;
  std::optional<std::string> prompt, prompt_tokens;
  std::optional<std::int64_t> task_sample;
  std::optional<std::int64_t> queries;
  GenerateOptions options;
};

[[noreturn]] void bad(std::string_view flag, std::string_view value, std::string_view expected) {
  throw std::invalid_argument(
      fmt::format("invalid value '{}' for {}: expected {}", value, flag, expected));
}

std::int64_t integer_at_least(std::string_view flag, std::string_view value, std::int64_t min) {
  const std::optional<std::int64_t> v = schema::parse_int(value);
  if (!v || *v < min) bad(flag, value, fmt::format("a whole number >= {}", min));
  return *v;
}

double number(std::string_view flag, std::string_view value) {
  const std::optional<double> v = schema::parse_float(value);
  if (!v) bad(flag, value, "a number");
  return *v;
}

void apply_flag(Request& r, std::string_view flag, const std::string& value) {
  if (flag == "--checkpoint") r.checkpoint = value;
  if (flag == "--hf") r.hf = value;
  if (flag == "--prompt") r.prompt = value;
  if (flag == "--prompt-tokens") r.prompt_tokens = value;
  if (flag == "--task-sample") r.task_sample = integer_at_least(flag, value, 0);
  if (flag == "--queries") r.queries = integer_at_least(flag, value, 1);
  if (flag == "--max-new-tokens") r.options.max_new_tokens = integer_at_least(flag, value, 1);
  if (flag == "--temperature") r.options.sampling.temperature = number(flag, value);
  if (flag == "--top-k") r.options.sampling.top_k = integer_at_least(flag, value, 0);
  if (flag == "--top-p") r.options.sampling.top_p = number(flag, value);
  if (flag == "--seed")
    r.options.sampling.seed = static_cast<std::uint64_t>(integer_at_least(flag, value, 0));
  if (flag == "--stop-token")
    r.options.stop_token = static_cast<std::int32_t>(integer_at_least(flag, value, 0));
}

Request parse(const std::vector<std::pair<std::string, std::string>>& flags) {
  Request r;
  for (const auto& [flag, value] : flags) apply_flag(r, flag, value);
  if (r.checkpoint.has_value() == r.hf.has_value())
    throw std::invalid_argument("generate needs exactly one of --checkpoint DIR and --hf HF_DIR");
  const int prompts =
      int{r.prompt.has_value()} + int{r.prompt_tokens.has_value()} + int{r.task_sample.has_value()};
  if (prompts != 1)
    throw std::invalid_argument(
        "generate needs exactly one of --prompt TEXT, --prompt-tokens IDS and --task-sample N");
  if (r.queries && !r.task_sample)
    throw std::invalid_argument("--queries applies to --task-sample only");
  if (r.task_sample && r.hf)
    throw std::invalid_argument(
        "--task-sample needs --checkpoint: a HuggingFace directory has no training data config");
  validate_sampling(r.options.sampling);
  return r;
}

// "1,2,3" or "1 2 3" as token ids below `vocab`.
std::vector<std::int32_t> token_list(const std::string& text, std::int64_t vocab) {
  std::vector<std::int32_t> tokens;
  std::string item;
  auto flush = [&] {
    if (item.empty()) return;
    const std::optional<std::int64_t> id = schema::parse_int(item);
    if (!id || *id < 0 || *id >= vocab)
      bad("--prompt-tokens", item, fmt::format("token ids in [0, {})", vocab));
    tokens.push_back(static_cast<std::int32_t>(*id));
    item.clear();
  };
  for (char c : text) {
    if (c == ',' || c == ' ')
      flush();
    else
      item += c;
  }
  flush();
  if (tokens.empty()) bad("--prompt-tokens", text, "comma-separated token ids");
  return tokens;
}

InferenceModel load(const Request& r) {
  if (r.hf) return load_hf_model(*r.hf);
  return load_checkpoint_model(*r.checkpoint, [](const std::string& warning) {
    fmt::print(stderr, "warning: {}\n", warning);
  });
}

std::string join_ids(std::span<const std::int32_t> tokens) {
  return fmt::format("{}", fmt::join(tokens, " "));
}

int run_prompt(const InferenceModel& loaded, const Request& r) {
  const std::int64_t vocab = loaded.model->config().vocab;
  const bool text = r.prompt.has_value();
  const std::vector<std::int32_t> prompt =
      text ? encode_bytes(*r.prompt, vocab) : token_list(*r.prompt_tokens, vocab);
  if (prompt.empty()) throw std::invalid_argument("--prompt is empty: give at least one byte");
  const auto start = std::chrono::steady_clock::now();
  const Generation g = generate(*loaded.model, prompt, r.options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (text) {
    fmt::print("{}{}\n", decode_bytes(prompt), decode_bytes(g.tokens));
  } else {
    fmt::print("prompt:       {}\ncontinuation: {}\n", join_ids(prompt), join_ids(g.tokens));
  }
  fmt::print(stderr, "{} tokens in {:.2f} s ({:.0f} tokens/s){}\n", g.tokens.size(), seconds,
             static_cast<double>(g.tokens.size()) / std::max(seconds, 1e-9),
             g.stopped ? ", ended by the stop token" : "");
  return 0;
}

// A run of consecutive scored tokens of a sample: the model is prompted with the tokens up to
// and including `start` and should produce targets[start, start + length).
struct ScoredSpan {
  std::size_t start = 0;
  std::size_t length = 0;
};

std::vector<ScoredSpan> scored_spans(const Sample& s, std::size_t limit) {
  std::vector<ScoredSpan> spans;
  for (std::size_t i = 0; i < s.loss_mask.size() && spans.size() < limit; ++i) {
    if (s.loss_mask[i] == 0.0f) continue;
    ScoredSpan span{i, 0};
    while (i < s.loss_mask.size() && s.loss_mask[i] != 0.0f) ++span.length, ++i;
    spans.push_back(span);
  }
  return spans;
}

int run_task_sample(const InferenceModel& loaded, const Request& r) {
  const Config& config = *loaded.config;
  const std::unique_ptr<DataSource> source = make_data_source(config.data, config.train.seed, ".");
  const Sample sample = source->sample(Split::eval, static_cast<std::uint64_t>(*r.task_sample));
  const std::vector<ScoredSpan> spans =
      scored_spans(sample, static_cast<std::size_t>(r.queries.value_or(kDefaultQueries)));
  if (spans.empty())
    throw std::invalid_argument(fmt::format("eval sample {} of {} has no scored tokens",
                                            *r.task_sample, source->describe()));
  // Byte-level data reads better as text; other token ids as numbers.
  const bool bytes = config.data.source == "text" || config.data.task == "passkey";
  auto show = [&](std::span<const std::int32_t> t) {
    return bytes ? fmt::format("\"{}\"", decode_bytes(t)) : join_ids(t);
  };
  fmt::print("eval sample {} of {}: {} answers asked\n", *r.task_sample, source->describe(),
             spans.size());
  std::size_t correct = 0;
  for (std::size_t q = 0; q < spans.size(); ++q) {
    const ScoredSpan& span = spans[q];
    const std::span<const std::int32_t> prompt(sample.tokens.data(), span.start + 1);
    const std::span<const std::int32_t> expected(sample.targets.data() + span.start, span.length);
    GenerateOptions options = r.options;
    options.max_new_tokens = static_cast<std::int64_t>(span.length);
    options.sampling.seed += q;  // independent draws per answer
    const Generation g = generate(*loaded.model, prompt, options);
    const bool ok = std::equal(expected.begin(), expected.end(), g.tokens.begin(), g.tokens.end());
    correct += ok ? 1 : 0;
    const std::size_t context = std::min<std::size_t>(prompt.size(), bytes ? 16 : 3);
    fmt::print("  after token {:>5} (... {}): generated {}, expected {}  {}\n", span.start,
               show(prompt.last(context)), show(g.tokens), show(expected),
               ok ? "correct" : "wrong");
  }
  fmt::print("{} of {} answers correct ({})\n", correct, spans.size(),
             r.options.sampling.temperature == 0.0
                 ? std::string("greedy")
                 : fmt::format("sampled at temperature {:g}", r.options.sampling.temperature));
  return 0;
}

}  // namespace

std::string generate_usage() {
  const GenerateOptions d;
  return fmt::format(
      "  generate (--checkpoint DIR | --hf HF_DIR) (--prompt TEXT | --prompt-tokens IDS |\n"
      "           --task-sample N [--queries Q]) [sampling options]\n"
      "        continue a prompt with the trained model (KV-cached, one process);\n"
      "        --prompt TEXT: its UTF-8 bytes as tokens (byte-level models);\n"
      "        --prompt-tokens 1,2,3: token ids;\n"
      "        --task-sample N: eval sample N of the checkpoint's own data, cut before each of\n"
      "        its first Q ({}) scored answers: what the model answers and what the data expects;\n"
      "        --max-new-tokens N ({})  --temperature T ({:g}; 0: greedy)  --top-k K ({}: off)\n"
      "        --top-p P ({:g}: off)  --seed S ({})  --stop-token ID: ends the continuation;\n"
      "        temperature, then top-k, then top-p over what top-k kept\n",
      kDefaultQueries, d.max_new_tokens, d.sampling.temperature, d.sampling.top_k, d.sampling.top_p,
      d.sampling.seed);
}

bool is_generate_flag(std::string_view flag) {
  return std::find(kFlags.begin(), kFlags.end(), flag) != kFlags.end();
}

int run_generate(const std::vector<std::pair<std::string, std::string>>& flags) {
  const Request r = parse(flags);
  const InferenceModel loaded = load(r);
  validate_generate(r.options, loaded.model->config().vocab);
  fmt::print(stderr, "model: {}\n", loaded.source);
  return r.task_sample ? run_task_sample(loaded, r) : run_prompt(loaded, r);
}

}  // namespace lt
