// The experiment configuration: every YAML section as a struct with its defaults. load_config
// reads a YAML file, applies --set overrides and validates everything; any problem is a
// ConfigError whose message names the file, the key, the value and what was expected.
#pragma once

#include <array>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "layers/model_config.h"

namespace lt {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DataConfig {
  std::string source = "synthetic";         // synthetic | text | tokens
  std::string task = "associative_recall";  // synthetic only: associative_recall | passkey
  std::int64_t seq_len = 256;
  std::string path;                    // text / tokens: the file (relative to the config file)
  std::string token_dtype = "uint16";  // tokens: uint16 | uint32
  std::int64_t eod_token = -1;         // tokens: end-of-document id (-1: no documents)
  double eval_fraction = 0.05;         // text / tokens: the tail of the file held out for eval
  bool reset_positions = false;        // restart RoPE positions at each document
  // Sequence-length warmup: training sequences packed with shorter documents, doubling from
  // length_warmup_start tokens to seq_len over the first length_warmup_steps steps (0: off).
  std::int64_t length_warmup_steps = 0;
  std::int64_t length_warmup_start = 64;
  // associative_recall
  std::int64_t num_pairs = 8;
  std::int64_t num_queries = 16;
  // passkey
  std::int64_t passkey_digits = 5;
  double passkey_depth = 0.5;  // where the key sits in the filler, 0 (start) .. 1 (end)
};

// A choice made once for every layer (a YAML scalar: `full`) or per layer (a YAML list with
// one entry per layer: `[full, full, none, none]`).
struct PerLayerChoice {
  std::vector<std::string> values;  // one entry unless `list`
  bool list = false;                // written as a list: values[i] is layer i's

  PerLayerChoice() = default;
  explicit PerLayerChoice(std::string all) : values{std::move(all)} {}
  // Layer `layer`'s entry (the one value when not a list).
  const std::string& at(std::int64_t layer) const {
    return list ? values.at(static_cast<std::size_t>(layer)) : values.front();
  }
  bool operator==(const PerLayerChoice&) const = default;
};

struct TrainConfig {
  std::int64_t steps = 300;
  std::int64_t global_batch = 16;
  std::int64_t micro_batch = 4;
  PerLayerChoice recompute{"none"};  // none | selective | full, for all layers or per layer
  std::uint64_t seed = 1234;
  std::int64_t eval_every = 50;
  std::int64_t eval_samples = 64;
  std::string device = "cpu";  // cpu | cuda | auto
  bool deterministic = true;   // bit-reproducible GPU attention backward (core/ops.h)
  std::int64_t threads = 0;    // 0: the cores available to this rank
};

struct OptimConfig {
  double lr = 3.0e-4;
  double min_lr = 3.0e-5;
  std::int64_t warmup = 20;
  double weight_decay = 0.1;
  double clip = 1.0;  // 0: no clipping
  std::array<double, 2> betas{0.9, 0.95};
  double eps = 1.0e-8;
  std::string schedule = "cosine";  // cosine | constant | linear
  bool decay_norms = false;
  bool decay_embeddings = false;
};

struct ParallelConfig {
  std::string mode = "manual";  // manual | auto
  std::int64_t tp = 1;
  std::int64_t cp = 1;
  std::int64_t dp = 1;
  std::int64_t zero_stage = 0;
  bool sequence_parallel = true;
  double timeout_s = 300.0;
  double memory_per_rank_gib = 0.0;  // auto mode: 0 = MemAvailable / ranks on the node
};

struct CheckpointConfig {
  std::string dir;         // empty: no checkpoints
  std::int64_t every = 0;  // 0: only at the end (and when a stop signal arrives)
  std::int64_t keep = 3;
  std::string resume;  // "" | "auto" | a checkpoint directory (step_N or a root)
};

struct LoggingConfig {
  std::string dir = "runs";
  std::int64_t every = 1;
  std::string level = "info";  // trace | debug | info | warn | error
  bool memory_report = false;  // a per-category memory table after the first step
  std::string tensorboard;     // directory for TensorBoard event files ("" = none)
  double peak_tflops = 0.0;    // per rank, what MFU divides by (0 = no MFU)
  bool comm_timing = false;    // exposed and overlapped communication per step (comm_timing.h)
};

struct Config {
  std::string source_file;      // the YAML file this came from ("" when built in code)
  std::string model_hf_config;  // resolved path when the model came from a config.json
  // A HuggingFace model directory (safetensors) whose weights replace the initial ones.
  std::string model_init_from;
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  OptimConfig optim;
  std::string precision = "bf16";  // bf16 | fp32
  ParallelConfig parallel;
  CheckpointConfig checkpoint;
  LoggingConfig logging;
};

// Reads `path`, applies overrides of the form "section.key=value" (YAML scalars or flow
// sequences) and validates. Throws ConfigError. A relative model.hf_config is resolved against
// the directory of `path` (also when it comes from --set); model_hf_config holds the absolute
// result. data.path is kept as written (make_data_source resolves it).
// Only key ranges and rules between keys are checked here; data sources check their files.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Same, from YAML text; `origin` names it in messages, becomes source_file, and its directory
// resolves a relative model.hf_config.
Config parse_config(const std::string& yaml_text, const std::string& origin,
                    const std::vector<std::string>& overrides = {});

// Reads a HuggingFace config.json (Llama, Mistral, Qwen2). Throws ConfigError.
ModelConfig load_hf_model_config(const std::string& path);

// The config as a YAML document that parse_config reads back to the same Config: every key,
// the model's shape included (model.hf_config is resolved, not referenced). Checkpoints keep it.
std::string config_to_yaml(const Config& config);

// The YAML reference: every key, its type, default and meaning, as Markdown.
std::string config_reference_markdown();

}  // namespace lt
