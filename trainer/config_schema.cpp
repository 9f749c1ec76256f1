#include "trainer/config_schema.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>
#include <type_traits>

namespace lt::schema {

bool Range::contains(double v) const {
  const bool lo_ok = lo_open ? v > lo : v >= lo;
  const bool hi_ok = hi_open ? v < hi : v <= hi;
  return lo_ok && hi_ok;
}

bool Range::bounded() const {
  return std::isfinite(lo) || std::isfinite(hi);
}

Range at_least(double lo) {
  return {.lo = lo};
}
Range above(double lo) {
  return {.lo = lo, .lo_open = true};
}
Range closed(double lo, double hi) {
  return {.lo = lo, .hi = hi};
}
Range half_open(double lo, double hi) {
  return {.lo = lo, .hi = hi, .hi_open = true};
}
Range open_interval(double lo, double hi) {
  return {.lo = lo, .lo_open = true, .hi = hi, .hi_open = true};
}

namespace {

// Short aliases keep the table below readable: one line per key.
template <auto M>
constexpr auto model_f = &config_field<&Config::model, M>;
template <auto M>
constexpr auto rope_f = &config_field<&Config::model, &ModelConfig::rope_scaling, M>;
template <auto M>
constexpr auto data_f = &config_field<&Config::data, M>;
template <auto M>
constexpr auto train_f = &config_field<&Config::train, M>;
template <auto M>
constexpr auto optim_f = &config_field<&Config::optim, M>;
template <auto M>
constexpr auto parallel_f = &config_field<&Config::parallel, M>;
template <auto M>
constexpr auto checkpoint_f = &config_field<&Config::checkpoint, M>;
template <auto M>
constexpr auto logging_f = &config_field<&Config::logging, M>;

std::vector<KeySpec> model_keys() {
  using M = ModelConfig;
  using R = RopeScaling;
  return {
      {"model.hf_config", &config_field<&Config::model_hf_config>,
       "HuggingFace config.json to take the shape from (relative to the config file, also "
       "with --set); the other model keys given override it"},
      {"model.init_from", &config_field<&Config::model_init_from>,
       "Weights that start the run instead of the random init, e.g. to continue at a longer "
       "context: a HuggingFace model directory (model.safetensors or an index with shards) or a "
       "longtrain checkpoint (a step_N directory, or a checkpoint root: its newest intact one; "
       "the fp32 master weights, not the optimizer state or the step). Relative to the working "
       "directory; checkpoint.resume takes precedence; empty: random init"},
      {"model.family",
       model_f<&M::family>,
       "Architecture family",
       {},
       {"llama", "mistral", "qwen2"}},
      {"model.dim", model_f<&M::dim>, "Hidden size", at_least(1)},
      {"model.layers", model_f<&M::layers>, "Number of transformer blocks", at_least(1)},
      {"model.heads", model_f<&M::heads>, "Query heads", at_least(1)},
      {"model.kv_heads", model_f<&M::kv_heads>, "Key/value heads (GQA); divides heads",
       at_least(1)},
      {"model.head_dim", model_f<&M::head_dim>, "Per-head size; 0 means dim / heads", at_least(0)},
      {"model.ffn", model_f<&M::ffn>, "SwiGLU hidden size", at_least(1)},
      {"model.vocab", model_f<&M::vocab>, "Vocabulary size", at_least(1)},
      {"model.rope_theta", model_f<&M::rope_theta>, "RoPE base frequency", above(0)},
      {"model.rope_scaling.type",
       rope_f<&R::type>,
       "RoPE scaling for context extension",
       {},
       {"none", "linear", "ntk", "yarn", "llama3"}},
      {"model.rope_scaling.factor", rope_f<&R::factor>, "Context extension factor", above(0)},
      {"model.rope_scaling.low_freq_factor", rope_f<&R::low_freq_factor>,
       "llama3: wavelengths above original_max_position / this are scaled fully", above(0)},
      {"model.rope_scaling.high_freq_factor", rope_f<&R::high_freq_factor>,
       "llama3: wavelengths below original_max_position / this are kept", above(0)},
      {"model.rope_scaling.original_max_position", rope_f<&R::original_max_position>,
       "llama3, yarn: context length the model was pretrained with", at_least(1)},
      {"model.rope_scaling.beta_fast", rope_f<&R::beta_fast>,
       "yarn: dimensions turning more often than this over original_max_position keep their "
       "frequency",
       above(0)},
      {"model.rope_scaling.beta_slow", rope_f<&R::beta_slow>,
       "yarn: dimensions turning less often than this are interpolated by factor; a linear ramp "
       "between",
       above(0)},
      {"model.rope_scaling.attention_factor", rope_f<&R::attention_factor>,
       "yarn: multiplier of cos/sin (attention temperature); 0: 0.1 ln(factor) + 1", at_least(0)},
      {"model.norm_eps", model_f<&M::norm_eps>, "RMSNorm epsilon", above(0)},
      {"model.tie_embeddings", model_f<&M::tie_embeddings>,
       "Share the embedding matrix with the output head"},
      {"model.qkv_bias", model_f<&M::qkv_bias>, "Biases on the q, k, v projections (Qwen2)"},
      {"model.init_std", model_f<&M::init_std>, "Std-dev of the normal weight init", above(0)},
  };
}

std::vector<KeySpec> data_keys() {
  using D = DataConfig;
  return {
      {"data.source",
       data_f<&D::source>,
       "Where samples come from",
       {},
       {"synthetic", "text", "tokens"}},
      {"data.task",
       data_f<&D::task>,
       "synthetic: the task to generate",
       {},
       {"associative_recall", "passkey"}},
      {"data.seq_len", data_f<&D::seq_len>, "Tokens per sample", at_least(2)},
      {"data.path", data_f<&D::path>, "text / tokens: the data file (relative to the config file)"},
      {"data.token_dtype",
       data_f<&D::token_dtype>,
       "tokens: integer width of the file",
       {},
       {"uint16", "uint32"}},
      {"data.eod_token", data_f<&D::eod_token>, "tokens: end-of-document id; -1: no documents",
       at_least(-1)},
      {"data.eval_fraction", data_f<&D::eval_fraction>,
       "text / tokens: tail of the file held out for eval", open_interval(0, 1)},
      {"data.reset_positions", data_f<&D::reset_positions>,
       "Restart RoPE positions at each document"},
      {"data.length_warmup_steps", data_f<&D::length_warmup_steps>,
       "Sequence-length warmup: steps during which training sequences are packed with shorter "
       "documents (0: off)",
       at_least(0)},
      {"data.length_warmup_start", data_f<&D::length_warmup_start>,
       "Sequence-length warmup: first document length; doubles in equal step intervals up to "
       "seq_len (seq_len / a power of two)",
       at_least(1)},
      {"data.num_pairs", data_f<&D::num_pairs>, "associative_recall: key-value pairs per sample",
       at_least(1)},
      {"data.num_queries", data_f<&D::num_queries>, "associative_recall: queries per sample",
       at_least(1)},
      {"data.passkey_digits", data_f<&D::passkey_digits>, "passkey: digits in the key",
       at_least(1)},
      {"data.passkey_depth", data_f<&D::passkey_depth>,
       "passkey: where the key sits, 0 (start) .. 1 (end)", closed(0, 1)},
  };
}

std::vector<KeySpec> train_keys() {
  using T = TrainConfig;
  return {
      {"train.steps", train_f<&T::steps>, "Optimizer steps", at_least(1)},
      {"train.global_batch", train_f<&T::global_batch>, "Samples per optimizer step, all ranks",
       at_least(1)},
      {"train.micro_batch", train_f<&T::micro_batch>, "Samples per forward/backward on a rank",
       at_least(1)},
      {"train.recompute",
       train_f<&T::recompute>,
       "Activation recomputation: one policy for every block, or a list with one per block "
       "(e.g. [full, full, none, none])",
       {},
       {"none", "selective", "full"}},
      {"train.seed", train_f<&T::seed>, "Seed for init and data", at_least(0)},
      {"train.eval_every", train_f<&T::eval_every>, "Steps between evals; 0: never", at_least(0)},
      {"train.eval_samples", train_f<&T::eval_samples>, "Samples per eval", at_least(1)},
      {"train.device", train_f<&T::device>, "Where to compute", {}, {"cpu", "cuda", "auto"}},
      {"train.deterministic", train_f<&T::deterministic>,
       "On cuda, the flash-attention backward without atomics: every run gives the same bits "
       "(false: FA2's atomic dQ accumulation, one pass over K/V, faster; dQ's last bits vary "
       "between runs). The CPU backend is always deterministic"},
      {"train.threads", train_f<&T::threads>, "CPU threads per rank; 0: the cores available",
       at_least(0)},
  };
}

std::vector<KeySpec> optim_keys() {
  using O = OptimConfig;
  return {
      {"optim.lr", optim_f<&O::lr>, "Peak learning rate", above(0)},
      {"optim.min_lr", optim_f<&O::min_lr>, "Learning rate at the end of the schedule",
       at_least(0)},
      {"optim.warmup", optim_f<&O::warmup>, "Linear warmup steps", at_least(0)},
      {"optim.weight_decay", optim_f<&O::weight_decay>, "AdamW decoupled weight decay",
       at_least(0)},
      {"optim.clip", optim_f<&O::clip>, "Global gradient-norm clip; 0: none", at_least(0)},
      {"optim.betas", optim_f<&O::betas>, "AdamW beta1, beta2", half_open(0, 1)},
      {"optim.eps", optim_f<&O::eps>, "AdamW epsilon", above(0)},
      {"optim.schedule",
       optim_f<&O::schedule>,
       "Decay after warmup",
       {},
       {"cosine", "constant", "linear"}},
      {"optim.decay_norms", optim_f<&O::decay_norms>, "Apply weight decay to norm weights"},
      {"optim.decay_embeddings", optim_f<&O::decay_embeddings>,
       "Apply weight decay to the embedding"},
  };
}

std::vector<KeySpec> parallel_keys() {
  using P = ParallelConfig;
  return {
      {"parallel.mode",
       parallel_f<&P::mode>,
       "manual: use tp/cp/dp, zero_stage, train.micro_batch and train.recompute as given; auto: "
       "`longtrain train` runs the planner for the job's ranks and uses its choice",
       {},
       {"manual", "auto"}},
      {"parallel.tp", parallel_f<&P::tp>, "Tensor-parallel ranks", at_least(1)},
      {"parallel.cp", parallel_f<&P::cp>, "Context-parallel (ring attention) ranks", at_least(1)},
      {"parallel.dp", parallel_f<&P::dp>, "Data-parallel ranks", at_least(1)},
      {"parallel.zero_stage", parallel_f<&P::zero_stage>,
       "ZeRO sharding: 1 optimizer, 2 +grads, 3 +params", closed(0, 3)},
      {"parallel.sequence_parallel", parallel_f<&P::sequence_parallel>,
       "With tp > 1: shard norms and the residual stream over the tp group by tokens"},
      {"parallel.timeout_s", parallel_f<&P::timeout_s>, "Collective timeout in seconds", above(0)},
      {"parallel.memory_per_rank_gib", parallel_f<&P::memory_per_rank_gib>,
       "auto mode: memory the planner may plan for on each rank, in GiB, before its 10% margin; "
       "0: the node's available memory (MemAvailable) divided by its ranks",
       at_least(0)},
  };
}

std::vector<KeySpec> output_keys() {
  using C = CheckpointConfig;
  using L = LoggingConfig;
  return {
      {"checkpoint.dir", checkpoint_f<&C::dir>,
       "Checkpoint directory (relative to the working directory); empty: no checkpoints"},
      {"checkpoint.every", checkpoint_f<&C::every>,
       "Steps between checkpoints; 0: only at the end (and on SIGTERM/SIGUSR1)", at_least(0)},
      {"checkpoint.keep", checkpoint_f<&C::keep>, "Newest complete checkpoints kept", at_least(1)},
      {"checkpoint.resume", checkpoint_f<&C::resume>,
       "Resume from: empty (start fresh), auto (the newest intact checkpoint under "
       "checkpoint.dir, or a fresh start when there is none), or a checkpoint directory"},
      {"logging.dir", logging_f<&L::dir>,
       "Directory for metrics.jsonl and the rank logs (relative to the working directory)"},
      {"logging.every", logging_f<&L::every>,
       "Steps between progress lines on the console and in the rank logs (metrics.jsonl gets every "
       "step)",
       at_least(1)},
      {"logging.level",
       logging_f<&L::level>,
       "Log verbosity",
       {},
       {"trace", "debug", "info", "warn", "error"}},
      {"logging.memory_report", logging_f<&L::memory_report>,
       "Print a table of current and peak bytes per memory category after the first step "
       "(also: longtrain train --memory-report)"},
      {"logging.tensorboard", logging_f<&L::tensorboard>,
       "Directory for TensorBoard event files (relative to the working directory; rank 0 writes "
       "a new events.out.tfevents.* file per run, a resumed run too): train/ and eval/ scalars and "
       "memory/ peaks per step; empty: none"},
      {"logging.comm_timing", logging_f<&L::comm_timing>,
       "Time every communication call: per step, how long this rank was blocked in communication "
       "(exposed) and how much of its non-blocking communication finished under compute "
       "(hidden), in metrics.jsonl and the console; a table per group and operation at the end"},
      {"logging.peak_tflops", logging_f<&L::peak_tflops>,
       "Peak TFLOP/s of one rank's device, what MFU divides by (model FLOPs per second / (ranks x "
       "peak)), logged as train/mfu in TensorBoard; 0: the GPU's dense peak for the precision "
       "on train.device cuda (sm_80, sm_90), no MFU on CPU",
       at_least(0)},
  };
}

std::vector<KeySpec> build_schema() {
  std::vector<KeySpec> all;
  for (auto part : {model_keys(), data_keys(), train_keys(), optim_keys(), parallel_keys()}) {
    all.insert(all.end(), part.begin(), part.end());
  }
  all.push_back({"precision",
                 &config_field<&Config::precision>,
                 "Compute dtype (master weights and optimizer state are always fp32)",
                 {},
                 {"bf16", "fp32"}});
  const auto out = output_keys();
  all.insert(all.end(), out.begin(), out.end());
  return all;
}

// ---- rules between keys ----

std::string num(std::int64_t v) {
  return std::to_string(v);
}

std::optional<Violation> kv_heads_divide_heads(const Config& c) {
  const ModelConfig& m = c.model;
  if (m.heads % m.kv_heads == 0) return std::nullopt;
  return Violation{"model.kv_heads", "a divisor of model.heads (" + num(m.heads) + ")",
                   "model.heads"};
}

std::optional<Violation> heads_divide_dim(const Config& c) {
  const ModelConfig& m = c.model;
  if (m.head_dim != 0 || m.dim % m.heads == 0) return std::nullopt;
  return Violation{
      "model.dim",
      "a multiple of model.heads (" + num(m.heads) + ") since model.head_dim is 0 (dim / heads)",
      "model.heads"};
}

// RoPE rotates pairs of channels, so a head needs an even number of them.
std::optional<Violation> head_dim_even(const Config& c) {
  const ModelConfig& m = c.model;
  if (m.head_dim % 2 != 0) {
    return Violation{"model.head_dim", "an even number (RoPE rotates pairs of channels)"};
  }
  if (m.resolved_head_dim() % 2 == 0) return std::nullopt;
  return Violation{"model.dim",
                   "dim / heads (" + num(m.resolved_head_dim()) +
                       ") to be even, since RoPE rotates pairs of channels; or set "
                       "model.head_dim",
                   "model.heads"};
}

// The llama3 ramp divides by (high - low); equal factors would divide by zero.
std::optional<Violation> llama3_factors_ordered(const Config& c) {
  const RopeScaling& r = c.model.rope_scaling;
  if (r.type != "llama3" || r.high_freq_factor > r.low_freq_factor) return std::nullopt;
  return Violation{"model.rope_scaling.high_freq_factor",
                   "more than model.rope_scaling.low_freq_factor (" +
                       format_number(r.low_freq_factor) + ") for llama3 scaling",
                   "model.rope_scaling.type"};
}

// YaRN's ramp runs from the beta_fast dimension down to the beta_slow one.
std::optional<Violation> yarn_betas_ordered(const Config& c) {
  const RopeScaling& r = c.model.rope_scaling;
  if (r.type != "yarn" || r.beta_fast > r.beta_slow) return std::nullopt;
  return Violation{"model.rope_scaling.beta_fast",
                   "more than model.rope_scaling.beta_slow (" + format_number(r.beta_slow) +
                       ") for yarn scaling",
                   "model.rope_scaling.type"};
}

// NTK-aware scaling raises the factor to d / (d - 2), undefined for a head of 2 channels.
std::optional<Violation> ntk_head_dim(const Config& c) {
  if (c.model.rope_scaling.type != "ntk" || c.model.resolved_head_dim() > 2) return std::nullopt;
  return Violation{"model.rope_scaling.type",
                   "a head dimension above 2 for ntk scaling (theta * factor^(d / (d - 2)))",
                   "model.head_dim"};
}

std::optional<Violation> file_source_has_path(const Config& c) {
  const DataConfig& d = c.data;
  if (d.source == "synthetic" || !d.path.empty()) return std::nullopt;
  return Violation{"data.path", "a file path since data.source is " + d.source, "data.source"};
}

// Each dp rank runs global_batch / dp samples as whole micro-batches. In auto mode the planner
// picks dp and keeps this itself.
std::optional<Violation> batch_divides(const Config& c) {
  const TrainConfig& t = c.train;
  if (t.global_batch % t.micro_batch != 0) {
    return Violation{"train.global_batch",
                     "a multiple of train.micro_batch (" + num(t.micro_batch) + ")",
                     "train.micro_batch"};
  }
  const ParallelConfig& p = c.parallel;
  if (p.mode != "manual" || t.global_batch % (t.micro_batch * p.dp) == 0) return std::nullopt;
  return Violation{"train.global_batch",
                   "a multiple of train.micro_batch x parallel.dp (" + num(t.micro_batch) + " x " +
                       num(p.dp) + ")",
                   "parallel.dp"};
}

// Column-parallel layers split q heads and the SwiGLU width over tp; KV heads are split too,
// or replicated when there are fewer of them than tp ranks.
std::optional<Violation> tp_divides_model(const Config& c) {
  const ParallelConfig& p = c.parallel;
  const ModelConfig& m = c.model;
  if (p.mode != "manual") return std::nullopt;
  if (m.heads % p.tp != 0) {
    return Violation{"parallel.tp", "a divisor of model.heads (" + num(m.heads) + ")"};
  }
  if (m.kv_heads % p.tp != 0 && p.tp % m.kv_heads != 0) {
    return Violation{"parallel.tp",
                     "a divisor or a multiple of model.kv_heads (" + num(m.kv_heads) + ")"};
  }
  if (m.ffn % p.tp != 0) {
    return Violation{"parallel.tp", "a divisor of model.ffn (" + num(m.ffn) + ")"};
  }
  return std::nullopt;
}

// Sequence parallelism splits the tokens a rank holds of a micro-batch over the tp group.
std::optional<Violation> tp_divides_sequence_shard(const Config& c) {
  const ParallelConfig& p = c.parallel;
  if (p.mode != "manual" || p.tp == 1 || !p.sequence_parallel) return std::nullopt;
  const std::int64_t tokens = c.train.micro_batch * c.data.seq_len / p.cp;
  if (tokens % p.tp == 0) return std::nullopt;
  return Violation{"parallel.tp",
                   "a divisor of the " + num(tokens) +
                       " tokens of a micro-batch per cp rank (train.micro_batch x data.seq_len / "
                       "parallel.cp) with sequence parallelism, or set "
                       "parallel.sequence_parallel: false",
                   "train.micro_batch"};
}

// Zigzag context parallelism cuts the sequence into 2 * cp equal chunks.
std::optional<Violation> cp_divides_sequence(const Config& c) {
  const std::int64_t cp = c.parallel.cp;
  if (c.parallel.mode != "manual" || cp == 1 || c.data.seq_len % (2 * cp) == 0) {
    return std::nullopt;
  }
  return Violation{
      "data.seq_len",
      "a multiple of 2 x parallel.cp (" + num(2 * cp) + ") for zigzag context parallelism",
      "parallel.cp"};
}

// A per-layer list names every block's policy, in order; a shorter or longer list is a mistake
// (e.g. a config copied from a model of another depth), not something to pad or cut.
std::optional<Violation> recompute_list_covers_layers(const Config& c) {
  const PerLayerChoice& r = c.train.recompute;
  const auto entries = static_cast<std::int64_t>(r.values.size());
  if (!r.list || entries == c.model.layers) return std::nullopt;
  return Violation{"train.recompute",
                   "one entry per layer: a list of " + num(c.model.layers) +
                       " entries (model.layers), not " + num(entries),
                   "model.layers"};
}

std::optional<Violation> min_lr_below_lr(const Config& c) {
  if (c.optim.min_lr <= c.optim.lr) return std::nullopt;
  return Violation{"optim.min_lr", "at most optim.lr (" + format_number(c.optim.lr) + ")",
                   "optim.lr"};
}

}  // namespace

const std::vector<CrossRule>& rules() {
  static const std::vector<CrossRule> rules = {
      {"`model.kv_heads` divides `model.heads`", kv_heads_divide_heads},
      {"`model.heads` divides `model.dim` when `model.head_dim` is 0", heads_divide_dim},
      {"the head dimension (`head_dim`, or `dim / heads`) is even, for RoPE", head_dim_even},
      {"llama3 rope scaling: `high_freq_factor` > `low_freq_factor`", llama3_factors_ordered},
      {"yarn rope scaling: `beta_fast` > `beta_slow`", yarn_betas_ordered},
      {"ntk rope scaling: a head dimension above 2", ntk_head_dim},
      {"`data.path` is set when `data.source` is text or tokens", file_source_has_path},
      {"`train.micro_batch` divides `train.global_batch`; in manual mode so does "
       "`micro_batch x parallel.dp`",
       batch_divides},
      {"manual mode: `parallel.tp` divides `model.heads` and `model.ffn`, and divides or is a "
       "multiple of `model.kv_heads`",
       tp_divides_model},
      {"manual mode with `parallel.cp` > 1: `2 x cp` divides `data.seq_len` (zigzag chunks)",
       cp_divides_sequence},
      {"manual mode with `parallel.tp` > 1 and `parallel.sequence_parallel`: `tp` divides "
       "`train.micro_batch x data.seq_len / parallel.cp`",
       tp_divides_sequence_shard},
      {"a `train.recompute` list has one entry per layer (`model.layers` entries)",
       recompute_list_covers_layers},
      {"`optim.min_lr` <= `optim.lr`", min_lr_below_lr},
  };
  return rules;
}

const std::vector<KeySpec>& keys() {
  static const std::vector<KeySpec> schema = build_schema();
  return schema;
}

const std::vector<SectionSpec>& sections() {
  static const std::vector<SectionSpec> sections = {
      {"model", "The transformer's shape, given directly or read from a HuggingFace config"},
      {"data", "Training and eval samples"},
      {"train", "Steps, batch sizes, recomputation and the device"},
      {"optim", "AdamW and the learning-rate schedule"},
      {"precision", "A scalar at the top level, not a map"},
      {"parallel", "The dp x cp x tp process mesh and ZeRO sharding"},
      {"checkpoint", "Checkpoint frequency and retention"},
      {"logging", "Metrics and logs"},
  };
  return sections;
}

const KeySpec* find_key(std::string_view path) {
  for (const KeySpec& spec : keys()) {
    if (spec.path == path) return &spec;
  }
  return nullptr;
}

bool is_group(std::string_view path) {
  if (path.empty()) return true;
  const std::string prefix = std::string(path) + ".";
  return std::any_of(keys().begin(), keys().end(),
                     [&](const KeySpec& s) { return s.path.starts_with(prefix); });
}

std::vector<std::string> group_children(std::string_view group) {
  const std::string prefix = group.empty() ? "" : std::string(group) + ".";
  std::vector<std::string> names;
  for (const KeySpec& spec : keys()) {
    if (!spec.path.starts_with(prefix)) continue;
    const std::string rest = spec.path.substr(prefix.size());
    std::string name = rest.substr(0, rest.find('.'));
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return names;
}

// ---- scalar parsing ----

std::optional<std::int64_t> parse_int(std::string_view text) {
  if (text.starts_with('+')) text.remove_prefix(1);
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<std::uint64_t> parse_uint(std::string_view text) {
  if (text.starts_with('+')) text.remove_prefix(1);
  std::uint64_t v = 0;
  // from_chars on an unsigned type rejects a leading '-', so "-1" cannot wrap around.
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return v;
}

std::optional<double> parse_float(std::string_view text) {
  if (text.starts_with('+')) text.remove_prefix(1);
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "true" || lower == "yes" || lower == "on") return true;
  if (lower == "false" || lower == "no" || lower == "off") return false;
  return std::nullopt;
}

std::string format_number(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc()) return std::to_string(v);
  std::string text(buf, end);
  // to_chars pads exponents like printf ("1e-04", "1e+06"); people write 1e-4 and 1e6.
  const auto e = text.find('e');
  if (e == std::string::npos) return text;
  std::string exponent = text.substr(e + 1);
  const bool negative = exponent[0] == '-';
  exponent.erase(0, exponent.find_first_not_of("+-0"));
  if (exponent.empty()) exponent = "0";
  return text.substr(0, e + 1) + (negative ? "-" : "") + exponent;
}

std::string node_text(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "";
  if (node.IsScalar()) return node.Scalar();
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), std::size_t{0});
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      diagonal = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, substitute});
    }
  }
  return row[b.size()];
}

// ---- typed access through the variant ----

namespace {

template <class T>
constexpr bool is_integer_v = std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::uint64_t>;

std::optional<std::array<double, 2>> parse_pair(const YAML::Node& node) {
  if (!node.IsSequence() || node.size() != 2) return std::nullopt;
  std::array<double, 2> out{};
  for (std::size_t i = 0; i < 2; ++i) {
    if (!node[i].IsScalar()) return std::nullopt;
    const auto v = parse_float(node[i].Scalar());
    if (!v) return std::nullopt;
    out[i] = *v;
  }
  return out;
}

// A scalar (every layer) or a non-empty list of scalars (one per layer); the entries are checked
// against the choices later, and the list's length against model.layers by a cross rule.
std::optional<PerLayerChoice> parse_per_layer(const YAML::Node& node) {
  if (node.IsScalar()) return PerLayerChoice(node.Scalar());
  if (!node.IsSequence() || node.size() == 0) return std::nullopt;
  PerLayerChoice out;
  out.list = true;
  for (const YAML::Node& item : node) {
    if (!item.IsScalar()) return std::nullopt;
    out.values.push_back(item.Scalar());
  }
  return out;
}

template <class T>
std::optional<T> parse_as(const YAML::Node& node) {
  if constexpr (std::is_same_v<T, std::array<double, 2>>) {
    return parse_pair(node);
  } else if constexpr (std::is_same_v<T, PerLayerChoice>) {
    return parse_per_layer(node);
  } else {
    if (!node.IsScalar()) return std::nullopt;
    const std::string& text = node.Scalar();
    if constexpr (std::is_same_v<T, std::int64_t>) {
      return parse_int(text);
    } else if constexpr (std::is_same_v<T, std::uint64_t>) {
      return parse_uint(text);
    } else if constexpr (std::is_same_v<T, double>) {
      return parse_float(text);
    } else if constexpr (std::is_same_v<T, bool>) {
      return parse_bool(text);
    } else {
      static_assert(std::is_same_v<T, std::string>);
      return text;
    }
  }
}

template <class T>
std::string value_text(const T& v) {
  if constexpr (std::is_same_v<T, std::array<double, 2>>) {
    return "[" + format_number(v[0]) + ", " + format_number(v[1]) + "]";
  } else if constexpr (std::is_same_v<T, PerLayerChoice>) {
    if (!v.list) return v.values.front();
    std::string text;
    for (const std::string& item : v.values) text += (text.empty() ? "[" : ", ") + item;
    return text + "]";
  } else if constexpr (is_integer_v<T>) {
    return std::to_string(v);
  } else if constexpr (std::is_same_v<T, double>) {
    return format_number(v);
  } else if constexpr (std::is_same_v<T, bool>) {
    return v ? "true" : "false";
  } else {
    return v;
  }
}

// The value type a field stores, from its accessor type.
template <class Ref>
using field_value_t = std::remove_reference_t<std::invoke_result_t<Ref, Config&>>;

std::string range_text(const Range& r, bool integer) {
  if (!r.bounded()) return "";
  if (!std::isfinite(r.hi)) return (r.lo_open ? " > " : " >= ") + format_number(r.lo);
  if (!std::isfinite(r.lo)) return (r.hi_open ? " < " : " <= ") + format_number(r.hi);
  if (integer) return " from " + format_number(r.lo) + " to " + format_number(r.hi);
  return std::string(" in ") + (r.lo_open ? "(" : "[") + format_number(r.lo) + ", " +
         format_number(r.hi) + (r.hi_open ? ")" : "]");
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : sep) + item;
  return out;
}

}  // namespace

std::string type_name(const KeySpec& spec) {
  if (spec.is_enum()) return spec.is_per_layer() ? "enum or per-layer list" : "enum";
  return std::visit(
      [](auto ref) -> std::string {
        using T = field_value_t<decltype(ref)>;
        if constexpr (is_integer_v<T>) {
          return "int";
        } else if constexpr (std::is_same_v<T, double>) {
          return "float";
        } else if constexpr (std::is_same_v<T, bool>) {
          return "bool";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return "string";
        } else if constexpr (std::is_same_v<T, PerLayerChoice>) {
          return "string or per-layer list";
        } else {
          return "[float, float]";
        }
      },
      spec.field);
}

std::string expected_text(const KeySpec& spec) {
  if (spec.is_enum() && spec.is_per_layer()) {
    return "one of " + join(spec.choices, ", ") +
           ", or a list of them with one entry per layer (model.layers entries), e.g. [" +
           spec.choices.back() + ", " + spec.choices.front() + "]";
  }
  if (spec.is_enum()) return "one of " + join(spec.choices, ", ");
  return std::visit(
      [&](auto ref) -> std::string {
        using T = field_value_t<decltype(ref)>;
        if constexpr (is_integer_v<T>) {
          return "an integer" + range_text(spec.range, true);
        } else if constexpr (std::is_same_v<T, double>) {
          return "a number" + range_text(spec.range, false);
        } else if constexpr (std::is_same_v<T, bool>) {
          return "true or false";
        } else if constexpr (std::is_same_v<T, std::string>) {
          return "a string";
        } else if constexpr (std::is_same_v<T, PerLayerChoice>) {
          return "a string, or a list of them with one entry per layer (model.layers entries)";
        } else {
          return "a list of two numbers" + range_text(spec.range, false) + ", e.g. [0.9, 0.95]";
        }
      },
      spec.field);
}

std::string allowed_text(const KeySpec& spec) {
  if (spec.is_enum()) return join(spec.choices, ", ");
  const bool integer = type_name(spec) == "int";
  const std::string text = range_text(spec.range, integer);
  return text.empty() ? text : text.substr(1);  // drop the leading space
}

std::string current_text(const KeySpec& spec, Config& config) {
  return std::visit([&](auto ref) { return value_text(ref(config)); }, spec.field);
}

std::string default_text(const KeySpec& spec) {
  Config defaults;
  const std::string text = current_text(spec, defaults);
  return text.empty() ? "\"\"" : text;
}

bool assign(const KeySpec& spec, Config& config, const YAML::Node& node) {
  return std::visit(
      [&](auto ref) {
        using T = field_value_t<decltype(ref)>;
        const std::optional<T> value = parse_as<T>(node);
        if (value) ref(config) = *value;
        return value.has_value();
      },
      spec.field);
}

bool satisfies(const KeySpec& spec, Config& config) {
  return std::visit(
      [&](auto ref) {
        using T = field_value_t<decltype(ref)>;
        const T& v = ref(config);
        const auto allowed = [&](const std::string& s) {
          return !spec.is_enum() ||
                 std::find(spec.choices.begin(), spec.choices.end(), s) != spec.choices.end();
        };
        if constexpr (std::is_same_v<T, std::string>) {
          return allowed(v);
        } else if constexpr (std::is_same_v<T, PerLayerChoice>) {
          return std::all_of(v.values.begin(), v.values.end(), allowed);
        } else if constexpr (std::is_same_v<T, std::array<double, 2>>) {
          return spec.range.contains(v[0]) && spec.range.contains(v[1]);
        } else if constexpr (std::is_same_v<T, bool>) {
          return true;
        } else {
          return spec.range.contains(static_cast<double>(v));
        }
      },
      spec.field);
}

}  // namespace lt::schema
