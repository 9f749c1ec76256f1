// The YAML config system: defaults, a full config, --set overrides, HuggingFace config.json
// reading, the generated reference, and the error message of every kind of bad input.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "layers/model_config.h"
#include "trainer/config.h"

namespace lt {
namespace {

namespace fs = std::filesystem;

const std::string kHfDir = LT_SOURCE_DIR "/../shared/hf_configs/";

// The message of the ConfigError that parsing `yaml` must raise.
std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "exp.yaml", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for:\n" << yaml;
  return "";
}

void expect_contains(const std::string& message, std::initializer_list<std::string> parts) {
  for (const std::string& part : parts) {
    EXPECT_NE(message.find(part), std::string::npos)
        << "message lacks \"" << part << "\":\n  " << message;
  }
}

// A fresh directory per test (and per process, since ctest may run tests in parallel).
fs::path temp_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::temp_directory_path() /
                 ("lt_test_config_" + std::to_string(::getpid()) + "_" + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

// ---- defaults and a full config ----

TEST(Config, EmptyDocumentAndEmptySectionsGiveDefaults) {
  for (const std::string yaml : {"", "model:\ndata:\ntrain:\noptim:\nparallel:\ncheckpoint:\n"}) {
    const Config c = parse_config(yaml, "exp.yaml");
    const Config d;
    EXPECT_EQ(c.source_file, "exp.yaml");
    EXPECT_EQ(c.model_hf_config, "");
    EXPECT_EQ(c.model.dim, d.model.dim);
    EXPECT_EQ(c.model.kv_heads, d.model.kv_heads);
    EXPECT_EQ(c.model.rope_scaling.type, "none");
    EXPECT_EQ(c.data.source, d.data.source);
    EXPECT_EQ(c.data.seq_len, d.data.seq_len);
    EXPECT_EQ(c.train.steps, d.train.steps);
    EXPECT_EQ(c.train.seed, d.train.seed);
    EXPECT_DOUBLE_EQ(c.optim.lr, d.optim.lr);
    EXPECT_EQ(c.optim.betas, d.optim.betas);
    EXPECT_EQ(c.precision, "bf16");
    EXPECT_EQ(c.parallel.tp, 1);
    EXPECT_EQ(c.checkpoint.keep, 3);
    EXPECT_EQ(c.logging.level, "info");
  }
}

const char* kFullConfig = R"(
model:
  family: mistral
  dim: 512
  layers: 6
  heads: 8
  kv_heads: 2
  head_dim: 128
  ffn: 1376
  vocab: 32000
  rope_theta: 500000
  rope_scaling: {type: llama3, factor: 8, low_freq_factor: 1, high_freq_factor: 4,
                 original_max_position: 8192}
  norm_eps: 1.0e-6
  tie_embeddings: true
  qkv_bias: true
  init_std: 0.01
data:
  source: tokens
  task: passkey
  seq_len: 4096
  path: data/train.bin
  token_dtype: uint32
  eod_token: 2
  eval_fraction: 0.1
  reset_positions: yes
  num_pairs: 4
  num_queries: 2
  passkey_digits: 7
  passkey_depth: 0.25
train: {steps: 1000, global_batch: 32, micro_batch: 2, recompute: selective, seed: 7,
        eval_every: 100, eval_samples: 8, device: cuda, threads: 4}
optim:
  lr: 1    # an integer where a float is expected is fine
  min_lr: 0.1
  warmup: 50
  weight_decay: 0
  clip: 0.5
  betas: [0.9, 0.98]
  eps: 1e-6
  schedule: linear
  decay_norms: true
  decay_embeddings: true
precision: fp32
parallel: {mode: manual, tp: 2, cp: 2, dp: 4, zero_stage: 3, sequence_parallel: false,
           timeout_s: 60.5}
checkpoint: {dir: ckpt, every: 200, keep: 5}
logging: {dir: out, every: 10, level: debug}
)";

TEST(Config, FullConfigParsesToExpectedValues) {
  const Config c = parse_config(kFullConfig, "exp.yaml");
  const ModelConfig& m = c.model;
  EXPECT_EQ(m.family, "mistral");
  EXPECT_EQ(m.dim, 512);
  EXPECT_EQ(m.layers, 6);
  EXPECT_EQ(m.heads, 8);
  EXPECT_EQ(m.kv_heads, 2);
  EXPECT_EQ(m.head_dim, 128);
  EXPECT_EQ(m.ffn, 1376);
  EXPECT_EQ(m.vocab, 32000);
  EXPECT_DOUBLE_EQ(m.rope_theta, 500000.0);
  EXPECT_EQ(m.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(m.rope_scaling.factor, 8.0);
  EXPECT_DOUBLE_EQ(m.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(m.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(m.rope_scaling.original_max_position, 8192);
  EXPECT_DOUBLE_EQ(m.norm_eps, 1e-6);
  EXPECT_TRUE(m.tie_embeddings);
  EXPECT_TRUE(m.qkv_bias);
  EXPECT_DOUBLE_EQ(m.init_std, 0.01);

  const DataConfig& d = c.data;
  EXPECT_EQ(d.source, "tokens");
  EXPECT_EQ(d.task, "passkey");
  EXPECT_EQ(d.seq_len, 4096);
  EXPECT_EQ(d.path, "data/train.bin");  // kept as written; the data source resolves it
  EXPECT_EQ(d.token_dtype, "uint32");
  EXPECT_EQ(d.eod_token, 2);
  EXPECT_DOUBLE_EQ(d.eval_fraction, 0.1);
  EXPECT_TRUE(d.reset_positions);
  EXPECT_EQ(d.num_pairs, 4);
  EXPECT_EQ(d.num_queries, 2);
  EXPECT_EQ(d.passkey_digits, 7);
  EXPECT_DOUBLE_EQ(d.passkey_depth, 0.25);

  const TrainConfig& t = c.train;
  EXPECT_EQ(t.steps, 1000);
  EXPECT_EQ(t.global_batch, 32);
  EXPECT_EQ(t.micro_batch, 2);
  EXPECT_EQ(t.recompute, PerLayerChoice("selective"));
  EXPECT_EQ(t.seed, 7u);
  EXPECT_EQ(t.eval_every, 100);
  EXPECT_EQ(t.eval_samples, 8);
  EXPECT_EQ(t.device, "cuda");
  EXPECT_EQ(t.threads, 4);

  const OptimConfig& o = c.optim;
  EXPECT_DOUBLE_EQ(o.lr, 1.0);
  EXPECT_DOUBLE_EQ(o.min_lr, 0.1);
  EXPECT_EQ(o.warmup, 50);
  EXPECT_DOUBLE_EQ(o.weight_decay, 0.0);
  EXPECT_DOUBLE_EQ(o.clip, 0.5);
  EXPECT_DOUBLE_EQ(o.betas[0], 0.9);
  EXPECT_DOUBLE_EQ(o.betas[1], 0.98);
  EXPECT_DOUBLE_EQ(o.eps, 1e-6);
  EXPECT_EQ(o.schedule, "linear");
  EXPECT_TRUE(o.decay_norms);
  EXPECT_TRUE(o.decay_embeddings);

  EXPECT_EQ(c.precision, "fp32");
  EXPECT_EQ(c.parallel.mode, "manual");
  EXPECT_EQ(c.parallel.tp, 2);
  EXPECT_EQ(c.parallel.cp, 2);
  EXPECT_EQ(c.parallel.dp, 4);
  EXPECT_EQ(c.parallel.zero_stage, 3);
  EXPECT_FALSE(c.parallel.sequence_parallel);
  EXPECT_DOUBLE_EQ(c.parallel.timeout_s, 60.5);
  EXPECT_EQ(c.checkpoint.dir, "ckpt");
  EXPECT_EQ(c.checkpoint.every, 200);
  EXPECT_EQ(c.checkpoint.keep, 5);
  EXPECT_EQ(c.logging.dir, "out");
  EXPECT_EQ(c.logging.every, 10);
  EXPECT_EQ(c.logging.level, "debug");
}

TEST(Config, ToYamlReadsBackToTheSameConfig) {
  const Config original = parse_config(
      "model: {dim: 96, layers: 3, heads: 4, kv_heads: 2, ffn: 160, vocab: 300, qkv_bias: true,\n"
      "        rope_scaling: {type: llama3, factor: 8}}\n"
      "data: {source: text, path: 'weird: name #1.txt', seq_len: 128}\n"
      "train: {recompute: [full, selective, none], seed: 18446744073709551615}\n"
      "optim: {betas: [0.8, 0.99], lr: 3.0e-4}\nprecision: fp32\n",
      "original.yaml");
  const Config again = parse_config(config_to_yaml(original), "again.yaml");
  EXPECT_EQ(config_to_yaml(again), config_to_yaml(original));
  EXPECT_EQ(again.data.path, "weird: name #1.txt");
  EXPECT_EQ(again.train.recompute, original.train.recompute);
  EXPECT_EQ(again.train.seed, original.train.seed);
  EXPECT_EQ(again.model.rope_scaling.factor, 8.0);
  EXPECT_EQ(again.optim.betas, original.optim.betas);
}

TEST(Config, LargeSeedsKeepAllSixtyFourBits) {
  const Config c = parse_config("train: {seed: 18446744073709551615}", "exp.yaml");
  EXPECT_EQ(c.train.seed, 18446744073709551615ull);
}

// ---- --set overrides ----

TEST(Config, OverridesReplaceFileValuesOfEveryType) {
  const Config c =
      parse_config("train: {steps: 10}\noptim: {lr: 0.001}\n", "exp.yaml",
                   {"train.steps=5", "optim.lr=2e-4", "optim.decay_norms=true",
                    "optim.betas=[0.9,0.99]", "model.rope_scaling.factor=8",
                    "model.rope_scaling.type=linear", "precision=fp32", "data.task = passkey"});
  EXPECT_EQ(c.train.steps, 5);
  EXPECT_DOUBLE_EQ(c.optim.lr, 2e-4);
  EXPECT_TRUE(c.optim.decay_norms);
  EXPECT_DOUBLE_EQ(c.optim.betas[0], 0.9);
  EXPECT_DOUBLE_EQ(c.optim.betas[1], 0.99);
  EXPECT_DOUBLE_EQ(c.model.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.model.rope_scaling.type, "linear");
  EXPECT_EQ(c.precision, "fp32");
  EXPECT_EQ(c.data.task, "passkey");
}

TEST(Config, OverrideAppliesBeforeValidation) {
  // The file alone is invalid (steps: 0); the override fixes it before validation runs.
  const Config c = parse_config("train: {steps: 0}", "exp.yaml", {"train.steps=3"});
  EXPECT_EQ(c.train.steps, 3);
  // And the other way round: a bad override of a good file is reported against the --set.
  expect_contains(error_of("train: {steps: 10}", {"train.steps=0"}),
                  {"exp.yaml", "--set train.steps=0", "invalid value '0' for train.steps",
                   "expected an integer >= 1"});
}

TEST(Config, LaterOverrideWins) {
  const Config c = parse_config("", "exp.yaml", {"train.steps=5", "train.steps=6"});
  EXPECT_EQ(c.train.steps, 6);
}

// ---- train.recompute: one policy for every layer, or a list with one per layer ----

TEST(Config, RecomputeTakesOnePolicyOrOnePerLayer) {
  const Config one = parse_config("model: {layers: 3}\ntrain: {recompute: full}\n", "exp.yaml");
  EXPECT_FALSE(one.train.recompute.list);
  EXPECT_EQ(one.train.recompute.values, std::vector<std::string>{"full"});
  EXPECT_EQ(one.train.recompute.at(2), "full");

  const Config list = parse_config(
      "model: {layers: 4}\ntrain:\n  recompute: [full, full, selective, none]\n", "exp.yaml");
  EXPECT_TRUE(list.train.recompute.list);
  EXPECT_EQ(list.train.recompute.values,
            (std::vector<std::string>{"full", "full", "selective", "none"}));
  EXPECT_EQ(list.train.recompute.at(1), "full");
  EXPECT_EQ(list.train.recompute.at(2), "selective");

  // A block-style YAML list, and a list of one for a one-layer model.
  const Config block = parse_config(
      "model: {layers: 2}\ntrain:\n  recompute:\n    - none\n    - full\n", "exp.yaml");
  EXPECT_EQ(block.train.recompute.values, (std::vector<std::string>{"none", "full"}));
  const Config single = parse_config("model: {layers: 1}\ntrain: {recompute: [full]}", "exp.yaml");
  EXPECT_TRUE(single.train.recompute.list);
  EXPECT_EQ(single.train.recompute.at(0), "full");

  // --set takes either form and replaces the other.
  const Config set = parse_config("model: {layers: 2}\ntrain: {recompute: full}\n", "exp.yaml",
                                  {"train.recompute=[selective,none]"});
  EXPECT_EQ(set.train.recompute.values, (std::vector<std::string>{"selective", "none"}));
  const Config back = parse_config("model: {layers: 2}\ntrain: {recompute: [full, none]}\n",
                                   "exp.yaml", {"train.recompute=selective"});
  EXPECT_EQ(back.train.recompute, PerLayerChoice("selective"));

  EXPECT_EQ(Config().train.recompute, PerLayerChoice("none"));
  expect_contains(config_reference_markdown(),
                  {"| `recompute` | enum or per-layer list: none, selective, full | `none` |",
                   "a `train.recompute` list has one entry per layer (`model.layers` entries)"});
}

TEST(ConfigErrors, RecomputeErrorsNameTheKeyTheValueAndWhatWasExpected) {
  const std::string expected =
      "expected one of none, selective, full, or a list of them with one entry per layer "
      "(model.layers entries), e.g. [full, none]";
  expect_contains(error_of("train: {recompute: some}"),
                  {"exp.yaml:1:20", "invalid value 'some' for train.recompute", expected});
  expect_contains(
      error_of("model: {layers: 2}\ntrain: {recompute: [full, sometimes]}"),
      {"exp.yaml:2:", "invalid value '[full, sometimes]' for train.recompute", expected});
  expect_contains(error_of("train: {recompute: []}"),
                  {"invalid value '[]' for train.recompute", expected});
  expect_contains(error_of("train: {recompute: [[full], none]}"),
                  {"invalid value '[[full], none]' for train.recompute", expected});
  expect_contains(error_of("train: {recompute: {policy: full}}"),
                  {"invalid value '{policy: full}' for train.recompute", expected});
  expect_contains(error_of("train: {recompute: }"),
                  {"missing value for train.recompute", expected});

  // The list's length must be model.layers.
  expect_contains(error_of("model: {layers: 4}\ntrain: {recompute: [full, full, none]}\n"),
                  {"exp.yaml:2:20", "invalid value '[full, full, none]' for train.recompute",
                   "expected one entry per layer: a list of 4 entries (model.layers), not 3"});
  expect_contains(error_of("model: {layers: 2}\ntrain: {recompute: [full, full, none]}\n"),
                  {"a list of 2 entries (model.layers), not 3"});
  expect_contains(error_of("train: {recompute: [full, none]}", {"model.layers=3"}),
                  {"exp.yaml:1:20", "invalid value '[full, none]' for train.recompute",
                   "a list of 3 entries (model.layers), not 2"});
  expect_contains(error_of("model: {layers: 2}", {"train.recompute=[full]"}),
                  {"--set train.recompute=[full]", "invalid value '[full]' for train.recompute",
                   "a list of 2 entries (model.layers), not 1"});
}

// ---- HuggingFace config.json ----

TEST(HfConfig, ParameterCountsMatchThePublishedModels) {
  EXPECT_EQ(count_parameters(load_hf_model_config(kHfDir + "llama-2-7b.json")), 6738415616);
  EXPECT_EQ(count_parameters(load_hf_model_config(kHfDir + "qwen2-7b.json")), 7615616512);
  EXPECT_EQ(count_parameters(load_hf_model_config(kHfDir + "tinyllama-1.1b.json")), 1100048384);
}

TEST(HfConfig, FieldsAreRead) {
  const ModelConfig q = load_hf_model_config(kHfDir + "qwen2-7b.json");
  EXPECT_EQ(q.family, "qwen2");
  EXPECT_TRUE(q.qkv_bias);
  EXPECT_EQ(q.dim, 3584);
  EXPECT_EQ(q.layers, 28);
  EXPECT_EQ(q.heads, 28);
  EXPECT_EQ(q.kv_heads, 4);
  EXPECT_EQ(q.ffn, 18944);
  EXPECT_EQ(q.vocab, 152064);
  EXPECT_DOUBLE_EQ(q.rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(q.norm_eps, 1e-6);
  EXPECT_FALSE(q.tie_embeddings);
  EXPECT_EQ(q.rope_scaling.type, "none");
  const ModelConfig t = load_hf_model_config(kHfDir + "tinyllama-1.1b.json");
  EXPECT_EQ(t.family, "llama");
  EXPECT_FALSE(t.qkv_bias);
  EXPECT_EQ(t.kv_heads, 4);
  EXPECT_DOUBLE_EQ(t.norm_eps, 1e-5);
}

TEST(HfConfig, DefaultsAndLlama3RopeScaling) {
  const fs::path dir = temp_dir();
  write_file(dir / "config.json", R"({
    "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100,
    "head_dim": null, "tie_word_embeddings": true,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}})");
  const ModelConfig m = load_hf_model_config((dir / "config.json").string());
  EXPECT_EQ(m.kv_heads, 4);  // defaults to the number of heads
  EXPECT_EQ(m.head_dim, 0);
  EXPECT_DOUBLE_EQ(m.rope_theta, 10000.0);
  EXPECT_TRUE(m.tie_embeddings);
  EXPECT_EQ(m.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(m.rope_scaling.factor, 8.0);
  EXPECT_EQ(m.rope_scaling.original_max_position, 8192);
}

TEST(HfConfig, YarnRopeScaling) {
  const fs::path dir = temp_dir();
  write_file(dir / "config.json", R"({
    "model_type": "qwen2", "hidden_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100,
    "max_position_embeddings": 32768,
    "rope_scaling": {"type": "yarn", "factor": 4.0, "beta_fast": 16}})");
  const ModelConfig m = load_hf_model_config((dir / "config.json").string());
  EXPECT_EQ(m.rope_scaling.type, "yarn");
  EXPECT_DOUBLE_EQ(m.rope_scaling.factor, 4.0);
  EXPECT_EQ(m.rope_scaling.original_max_position, 32768);  // HF's fallback
  EXPECT_DOUBLE_EQ(m.rope_scaling.beta_fast, 16.0);
  EXPECT_DOUBLE_EQ(m.rope_scaling.beta_slow, 1.0);
  EXPECT_DOUBLE_EQ(m.rope_scaling.attention_factor, 0.0);
}

TEST(HfConfig, ErrorsNameTheFileAndField) {
  const fs::path dir = temp_dir();
  const std::string base = R"("hidden_size": 64, "num_hidden_layers": 2,
      "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100)";
  const auto error = [&](const std::string& name, const std::string& json) {
    write_file(dir / name, json);
    try {
      load_hf_model_config((dir / name).string());
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    ADD_FAILURE() << "no error for " << json;
    return std::string();
  };
  expect_contains(
      error("gemma.json", R"({"model_type": "gemma", )" + base + "}"),
      {"gemma.json", "model_type 'gemma' is not supported", "supported: llama, mistral, qwen2"});
  expect_contains(error("missing.json", R"({"model_type": "llama", "hidden_size": 64})"),
                  {"missing.json", "missing required field 'num_hidden_layers'"});
  expect_contains(
      error("longrope.json", R"({"model_type": "qwen2", "rope_scaling": {"type":
            "longrope", "factor": 4}, )" +
                                 base + "}"),
      {"longrope.json", "rope_scaling type 'longrope' is not supported", "linear, yarn, llama3"});
  expect_contains(error("dynamic.json", R"({"model_type": "llama", "rope_scaling": {"rope_type":
            "dynamic", "factor": 4}, )" + base +
                                            "}"),
                  {"dynamic.json", "'dynamic'", "inference", "model.rope_scaling.type: ntk"});
  expect_contains(error("float.json", R"({"model_type": "llama", "hidden_size": 64.5,
      "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
      "vocab_size": 100})"),
                  {"float.json:1:", "invalid value '64.5' for field 'hidden_size'",
                   "expected a positive integer"});
  expect_contains(error("notype.json", R"({"model_type": "llama", "rope_scaling": {"factor": 2},
      )" + base + "}"),
                  {"notype.json", "missing required field 'rope_scaling.rope_type'"});
  expect_contains(error("broken.json", R"({"model_type": "llama",)"),
                  {"broken.json", "JSON syntax error"});
  expect_contains(
      error("bias.json", R"({"model_type": "llama", "attention_bias": true, )" + base + "}"),
      {"bias.json", "attention_bias"});
}

TEST(Config, HfConfigIsRelativeToTheYamlFileAndYamlKeysOverrideIt) {
  // The origin names a (virtual) YAML file beside the HF configs; its directory resolves
  // hf_config, and the rope_scaling given here extends the context of the HF model.
  const std::string yaml = R"(
model:
  hf_config: llama-2-7b.json
  rope_scaling: {type: linear, factor: 4}
  layers: 2
)";
  const Config c = parse_config(yaml, kHfDir + "long.yaml");
  EXPECT_EQ(c.model_hf_config, fs::absolute(kHfDir + "llama-2-7b.json").lexically_normal());
  EXPECT_EQ(c.model.dim, 4096);
  EXPECT_EQ(c.model.heads, 32);
  EXPECT_EQ(c.model.layers, 2);
  EXPECT_EQ(c.model.rope_scaling.type, "linear");
  EXPECT_DOUBLE_EQ(c.model.rope_scaling.factor, 4.0);
  // An override of a model key also beats the HF file, whatever order keys appear in.
  const Config o = parse_config(yaml, kHfDir + "long.yaml", {"model.rope_scaling.factor=8"});
  EXPECT_DOUBLE_EQ(o.model.rope_scaling.factor, 8.0);
  EXPECT_EQ(o.model.vocab, 32000);
}

TEST(Config, LoadConfigReadsAFileAndResolvesHfConfigBesideIt) {
  const fs::path dir = temp_dir();
  fs::copy_file(kHfDir + "qwen2-7b.json", dir / "config.json");
  write_file(dir / "exp.yaml", "model: {hf_config: config.json}\ntrain: {steps: 7}\n");
  const Config c = load_config((dir / "exp.yaml").string(), {"train.micro_batch=2"});
  EXPECT_EQ(c.source_file, (dir / "exp.yaml").string());
  EXPECT_EQ(c.model_hf_config, (dir / "config.json").string());
  EXPECT_TRUE(c.model.qkv_bias);
  EXPECT_EQ(count_parameters(c.model), 7615616512);
  EXPECT_EQ(c.train.steps, 7);
  EXPECT_EQ(c.train.micro_batch, 2);
}

TEST(Config, RopeScalingNullSwitchesOffTheHfScaling) {
  const Config c =
      parse_config("model: {rope_scaling: null}", "exp.yaml", {"model.rope_scaling.type=linear"});
  EXPECT_EQ(c.model.rope_scaling.type, "linear");  // an override may still fill it in
  const Config d = parse_config("model: {rope_scaling: ~}", "exp.yaml");
  EXPECT_EQ(d.model.rope_scaling.type, "none");
}

// ---- the reference ----

TEST(Config, ReferenceMarkdownMentionsEveryKey) {
  const std::string md = config_reference_markdown();
  const std::vector<std::string> keys = {"## `model`",
                                         "`hf_config`",
                                         "`family`",
                                         "`dim`",
                                         "`layers`",
                                         "`heads`",
                                         "`kv_heads`",
                                         "`head_dim`",
                                         "`ffn`",
                                         "`vocab`",
                                         "`rope_theta`",
                                         "`rope_scaling.type`",
                                         "`rope_scaling.factor`",
                                         "`rope_scaling.low_freq_factor`",
                                         "`rope_scaling.high_freq_factor`",
                                         "`rope_scaling.original_max_position`",
                                         "`norm_eps`",
                                         "`tie_embeddings`",
                                         "`qkv_bias`",
                                         "`init_std`",
                                         "## `data`",
                                         "`source`",
                                         "`task`",
                                         "`seq_len`",
                                         "`path`",
                                         "`token_dtype`",
                                         "`eod_token`",
                                         "`eval_fraction`",
                                         "`reset_positions`",
                                         "`num_pairs`",
                                         "`num_queries`",
                                         "`passkey_digits`",
                                         "`passkey_depth`",
                                         "## `train`",
                                         "`steps`",
                                         "`global_batch`",
                                         "`micro_batch`",
                                         "`recompute`",
                                         "`seed`",
                                         "`eval_every`",
                                         "`eval_samples`",
                                         "`device`",
                                         "`threads`",
                                         "## `optim`",
                                         "`lr`",
                                         "`min_lr`",
                                         "`warmup`",
                                         "`weight_decay`",
                                         "`clip`",
                                         "`betas`",
                                         "`eps`",
                                         "`schedule`",
                                         "`decay_norms`",
                                         "`decay_embeddings`",
                                         "## `precision`",
                                         "## `parallel`",
                                         "`mode`",
                                         "`tp`",
                                         "`cp`",
                                         "`dp`",
                                         "`zero_stage`",
                                         "`sequence_parallel`",
                                         "`timeout_s`",
                                         "## `checkpoint`",
                                         "`every`",
                                         "`keep`",
                                         "## `logging`",
                                         "`level`"};
  for (const auto& key : keys) EXPECT_NE(md.find(key), std::string::npos) << key;
  EXPECT_NE(md.find("## Rules across keys"), std::string::npos);
  EXPECT_NE(md.find("`optim.min_lr` <= `optim.lr`"), std::string::npos);
  // Rows carry type, default and the allowed values.
  expect_contains(md,
                  {"| `steps` | int >= 1 | `300` |", "| `precision` | enum: bf16, fp32 | `bf16` |",
                   "| `betas` | [float, float] in [0, 1) | `[0.9, 0.95]` |"});
}

// ---- errors: unknown keys ----

TEST(ConfigErrors, UnknownKeySuggestsTheNearestKey) {
  expect_contains(error_of("train:\n  stesp: 10\n"),
                  {"exp.yaml:2:3", "unknown key 'train.stesp'", "did you mean 'train.steps'?"});
  expect_contains(
      error_of("model:\n  rope_scaling: {factr: 2}\n"),
      {"unknown key 'model.rope_scaling.factr'", "did you mean 'model.rope_scaling.factor'?"});
}

TEST(ConfigErrors, UnknownSectionSuggestsTheNearestSection) {
  expect_contains(error_of("optimizer:\n  lr: 0.1\n"),
                  {"exp.yaml:1:1", "unknown section 'optimizer'", "did you mean 'optim'?"});
}

TEST(ConfigErrors, FarOffKeyListsTheValidKeys) {
  expect_contains(
      error_of("checkpoint: {zzzzzzzzzz: 1}"),
      {"unknown key 'checkpoint.zzzzzzzzzz'", "valid keys in checkpoint: dir, every, keep"});
}

TEST(ConfigErrors, UnknownOverrideKeyIsReportedAgainstTheOverride) {
  expect_contains(error_of("", {"train.stpes=5"}),
                  {"exp.yaml: --set train.stpes=5", "unknown key 'train.stpes'",
                   "did you mean 'train.steps'?"});
}

TEST(ConfigErrors, DuplicateKey) {
  expect_contains(error_of("train:\n  steps: 1\n  steps: 2\n"),
                  {"exp.yaml:3:3", "duplicate key 'train.steps'", "line 2"});
}

// ---- errors: wrong types ----

TEST(ConfigErrors, WrongScalarType) {
  expect_contains(
      error_of("train:\n  steps: many\n"),
      {"exp.yaml:2:10", "invalid value 'many' for train.steps", "expected an integer >= 1"});
  expect_contains(error_of("train: {steps: 2.5}"),
                  {"invalid value '2.5' for train.steps", "expected an integer"});
  expect_contains(error_of("optim: {lr: [1, 2]}"),
                  {"invalid value '[1, 2]' for optim.lr", "expected a number > 0"});
  expect_contains(error_of("model: {tie_embeddings: 1}"),
                  {"invalid value '1' for model.tie_embeddings", "expected true or false"});
  expect_contains(error_of("optim: {betas: 0.9}"),
                  {"invalid value '0.9' for optim.betas", "expected a list of two numbers"});
  expect_contains(error_of("optim: {betas: [0.9, 0.95, 0.99]}"),
                  {"invalid value '[0.9, 0.95, 0.99]' for optim.betas"});
  expect_contains(error_of("train: {seed: -1}"),
                  {"invalid value '-1' for train.seed", "expected an integer >= 0"});
  expect_contains(error_of("train: {steps: }"),
                  {"missing value for train.steps", "expected an integer >= 1"});
}

TEST(ConfigErrors, SectionThatIsNotAMap) {
  expect_contains(error_of("train: 5\n"), {"exp.yaml:1:8", "invalid value '5' for train",
                                           "expected a map of train keys", "train: {steps: 300}"});
  expect_contains(error_of("- a\n- b\n"), {"exp.yaml", "expected a map of sections"});
  expect_contains(error_of("precision: {a: 1}"),
                  {"invalid value '{a: 1}' for precision", "expected one of bf16, fp32"});
}

// ---- errors: out of range ----

TEST(ConfigErrors, OutOfRange) {
  struct Case {
    std::string yaml, key, value, expected;
  };
  const std::vector<Case> cases = {
      {"train: {steps: 0}", "train.steps", "0", "an integer >= 1"},
      {"optim: {lr: 0}", "optim.lr", "0", "a number > 0"},
      {"optim: {lr: -1e-3}", "optim.lr", "-1e-3", "a number > 0"},
      {"optim: {weight_decay: -0.1}", "optim.weight_decay", "-0.1", "a number >= 0"},
      {"optim: {betas: [0.9, 1.0]}", "optim.betas", "[0.9, 1.0]",
       "a list of two numbers in [0, 1)"},
      {"optim: {betas: [-0.1, 0.9]}", "optim.betas", "[-0.1, 0.9]",
       "a list of two numbers in [0, 1)"},
      {"optim: {clip: -1}", "optim.clip", "-1", "a number >= 0"},
      {"data: {seq_len: 1}", "data.seq_len", "1", "an integer >= 2"},
      {"train: {micro_batch: 0}", "train.micro_batch", "0", "an integer >= 1"},
      {"train: {threads: -2}", "train.threads", "-2", "an integer >= 0"},
      {"parallel: {zero_stage: 4}", "parallel.zero_stage", "4", "an integer from 0 to 3"},
      {"parallel: {tp: 0}", "parallel.tp", "0", "an integer >= 1"},
      {"parallel: {cp: 0}", "parallel.cp", "0", "an integer >= 1"},
      {"parallel: {dp: -1}", "parallel.dp", "-1", "an integer >= 1"},
      {"parallel: {timeout_s: 0}", "parallel.timeout_s", "0", "a number > 0"},
      {"checkpoint: {keep: 0}", "checkpoint.keep", "0", "an integer >= 1"},
      {"data: {eval_fraction: 1}", "data.eval_fraction", "1", "a number in (0, 1)"},
      {"data: {eval_fraction: 0}", "data.eval_fraction", "0", "a number in (0, 1)"},
  };
  for (const Case& c : cases) {
    expect_contains(error_of(c.yaml), {"exp.yaml:1:", "invalid value '" + c.value + "' for " +
                                                          c.key + ": expected " + c.expected});
  }
}

// ---- errors: enums ----

TEST(ConfigErrors, BadEnumValuesListTheAllowedOnes) {
  expect_contains(
      error_of("precision: fp16\n"),
      {"exp.yaml:1:12", "invalid value 'fp16' for precision", "expected one of bf16, fp32"});
  expect_contains(error_of("train: {recompute: some}"),
                  {"for train.recompute", "one of none, selective, full"});
  expect_contains(error_of("data: {source: web}"),
                  {"for data.source", "one of synthetic, text, tokens"});
  expect_contains(error_of("data: {task: copy}"),
                  {"for data.task", "one of associative_recall, passkey"});
  expect_contains(error_of("model: {rope_scaling: {type: dynamic}}"),
                  {"for model.rope_scaling.type", "one of none, linear, ntk, yarn, llama3"});
  expect_contains(error_of("optim: {schedule: step}"),
                  {"for optim.schedule", "one of cosine, constant, linear"});
  expect_contains(error_of("logging: {level: verbose}"),
                  {"for logging.level", "one of trace, debug, info, warn, error"});
}

// ---- errors: cross-field rules ----

TEST(ConfigErrors, CrossFieldRules) {
  expect_contains(error_of("train:\n  global_batch: 10\n  micro_batch: 4\n"),
                  {"exp.yaml:2:17", "invalid value '10' for train.global_batch",
                   "a multiple of train.micro_batch (4)"});
  expect_contains(error_of("train: {global_batch: 8, micro_batch: 4}\nparallel: {dp: 4}"),
                  {"train.global_batch", "train.micro_batch x parallel.dp (4 x 4)"});
  expect_contains(error_of("model: {heads: 8, kv_heads: 3}"),
                  {"invalid value '3' for model.kv_heads", "a divisor of model.heads (8)"});
  expect_contains(error_of("model: {dim: 100, heads: 8, kv_heads: 4}"),
                  {"invalid value '100' for model.dim", "a multiple of model.heads (8)"});
  expect_contains(error_of("model: {head_dim: 33}"),
                  {"invalid value '33' for model.head_dim", "an even number"});
  expect_contains(error_of("model: {dim: 24, heads: 8, kv_heads: 4}"),
                  {"model.dim", "dim / heads (3) to be even"});
  expect_contains(error_of("optim: {lr: 1e-4, min_lr: 1e-3}"),
                  {"invalid value '1e-3' for optim.min_lr", "at most optim.lr (1e-4)"});
  expect_contains(error_of("data:\n  source: text\n"),
                  {"exp.yaml:2:11", "missing value for data.path", "data.source is text"});
  expect_contains(error_of("data: {source: tokens, path: ''}"),
                  {"missing value for data.path", "data.source is tokens"});
  expect_contains(error_of("parallel: {tp: 3}"), {"parallel.tp", "a divisor of model.heads"});
  expect_contains(error_of("data: {seq_len: 100}\nparallel: {cp: 8}"),
                  {"data.seq_len", "a multiple of 2 x parallel.cp (16)"});
  expect_contains(error_of("data: {seq_len: 6}\ntrain: {global_batch: 1, micro_batch: 1}\n"
                           "parallel: {tp: 4}"),
                  {"invalid value '4' for parallel.tp",
                   "a divisor of the 6 tokens of a micro-batch per cp rank"});
  EXPECT_NO_THROW(
      parse_config("data: {seq_len: 6}\ntrain: {global_batch: 1, micro_batch: 1}\n"
                   "parallel: {tp: 4, sequence_parallel: false}",
                   "exp.yaml"));
  expect_contains(
      error_of("model: {rope_scaling: {type: llama3, low_freq_factor: 4, high_freq_factor: 4}}"),
      {"model.rope_scaling.high_freq_factor", "more than model.rope_scaling.low_freq_factor"});
}

TEST(ConfigErrors, CrossFieldRuleOnAnHfModelNamesTheHfFile) {
  const fs::path dir = temp_dir();
  write_file(dir / "odd.json", R"({"model_type": "llama", "hidden_size": 64,
      "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 3,
      "intermediate_size": 128, "vocab_size": 100})");
  write_file(dir / "exp.yaml", "model:\n  hf_config: odd.json\n");
  try {
    load_config((dir / "exp.yaml").string());
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    expect_contains(
        e.what(), {"exp.yaml:2:14", "odd.json", "model.kv_heads", "a divisor of model.heads (8)"});
  }
}

// ---- errors: files and syntax ----

TEST(ConfigErrors, MissingConfigFile) {
  try {
    load_config("/nonexistent/dir/exp.yaml");
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    expect_contains(e.what(), {"cannot read config file '/nonexistent/dir/exp.yaml'",
                               "No such file or directory"});
  }
}

TEST(ConfigErrors, MissingHfConfigFileNamesTheKeyAndResolvedPath) {
  const std::string message = [] {
    try {
      parse_config("model:\n  hf_config: nope/config.json\n", "/cfgs/exp.yaml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  expect_contains(message, {"/cfgs/exp.yaml:2:14", "model.hf_config 'nope/config.json'",
                            "resolved to '/cfgs/nope/config.json'", "No such file or directory"});
}

TEST(ConfigErrors, YamlSyntaxErrorGivesLineAndColumn) {
  expect_contains(error_of("train:\n  steps: [1, 2\nmodel: {}\n"),
                  {"exp.yaml:", "YAML syntax error"});
  expect_contains(error_of("train: {steps: 3\n"), {"exp.yaml:2:1", "YAML syntax error"});
  // Tabs are not valid YAML indentation.
  expect_contains(error_of("train:\n\tsteps: 3\n"), {"exp.yaml:2:", "YAML syntax error"});
}

TEST(ConfigErrors, MoreThanOneDocument) {
  expect_contains(error_of("train: {steps: 3}\n---\ntrain: {steps: 4}\n"),
                  {"exp.yaml:2:1", "expected a single YAML document"});
  expect_contains(error_of("train: {steps: 3}\n...\ntrain: {steps: 4}\n"),
                  {"exp.yaml:3:1", "expected a single YAML document"});
  // A leading "---" (with directives before it) is a single document.
  EXPECT_EQ(parse_config("%YAML 1.2\n---\ntrain: {steps: 3}\n...\n", "exp.yaml").train.steps, 3);
}

TEST(ConfigErrors, HfConfigMustBeAPath) {
  expect_contains(error_of("model: {hf_config: [a, b]}"),
                  {"exp.yaml:1:20", "invalid value '[a, b]' for model.hf_config",
                   "expected the path of a HuggingFace config.json"});
}

TEST(ConfigErrors, MalformedOverride) {
  expect_contains(error_of("", {"train.steps"}),
                  {"exp.yaml", "malformed override 'train.steps'", "expected section.key=value"});
  expect_contains(error_of("", {"=5"}), {"malformed override '=5'"});
  expect_contains(error_of("", {"train..steps=5"}), {"malformed override 'train..steps=5'"});
  expect_contains(error_of("", {"optim.betas=[0.9,"}),
                  {"--set optim.betas=[0.9,", "YAML syntax error"});
  expect_contains(error_of("", {"optim.betas=[0.9,2]"}),
                  {"--set optim.betas=[0.9,2]", "invalid value '[0.9, 2]' for optim.betas"});
  expect_contains(error_of("train: 5", {"train.steps=3"}),
                  {"--set train.steps=3", "cannot set a key inside 'train'"});
}

}  // namespace
}  // namespace lt
