// Text generation from a trained model on one process: loading the weights of a checkpoint (the
// fp32 master copy) or of a HuggingFace directory into an fp32 Model, and sampling a
// continuation of a prompt token by token through the KV-cached Decoder. Tokens are bytes on
// the text path of this project, so prompts and outputs convert between UTF-8 text and ids.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "layers/model.h"
#include "trainer/config.h"
#include "trainer/sampling.h"

namespace lt {

struct InferenceModel {
  std::unique_ptr<Model> model;
  std::string source;            // what was loaded, for messages: the directory and the step
  std::optional<Config> config;  // the training run's config (checkpoints only)
};

// The checkpoint `path` names (a step_N directory, or a root: its newest intact checkpoint, each
// one skipped reported through `warn`), its model rebuilt from the manifest's config. Throws
// HfError for a missing, damaged or incomplete checkpoint, ConfigError for a bad config.
InferenceModel load_checkpoint_model(const std::filesystem::path& path,
                                     const std::function<void(const std::string&)>& warn);

// An exported HuggingFace directory (config.json and safetensors weights). Throws HfError or
// ConfigError naming the file and the problem.
InferenceModel load_hf_model(const std::filesystem::path& dir);

struct GenerateOptions {
  SamplingOptions sampling;
  std::int64_t max_new_tokens = 64;
  std::optional<std::int32_t> stop_token;  // ends the generation once produced (and is kept)
};

struct Generation {
  std::vector<std::int32_t> tokens;  // the continuation, without the prompt
  bool stopped = false;              // ended by the stop token
};

// Throws std::invalid_argument naming the option, its value and what is accepted.
void validate_generate(const GenerateOptions& options, std::int64_t vocab);

// Prefills `prompt` (non-empty, ids below the vocabulary) and samples up to max_new_tokens
// tokens; draw i uses step i of the sampling RNG, so equal seeds give equal continuations.
Generation generate(const Model& model, std::span<const std::int32_t> prompt,
                    const GenerateOptions& options);

// The UTF-8 bytes of `text` as token ids. Throws std::invalid_argument when the vocabulary is
// smaller than 256 or a byte is not below it.
std::vector<std::int32_t> encode_bytes(std::string_view text, std::int64_t vocab);
// Tokens as text: printable ASCII as is, other bytes as \xNN (\n, \t, \\ and \" escaped), ids of
// 256 and above as <id>.
std::string decode_bytes(std::span<const std::int32_t> tokens);

}  // namespace lt
