#include "trainer/generate.h"

#include <fmt/format.h>

#include <stdexcept>

#include "layers/decode.h"
#include "trainer/checkpoint_locate.h"
#include "trainer/checkpoint_tensors.h"
#include "trainer/hf_error.h"
#include "trainer/hf_weights.h"

namespace lt {
namespace fs = std::filesystem;
namespace {

// Reads the whole tensor `name` of `shape` into `out` (fp32).
using ReadTensor = std::function<void(
    const std::string& name, const std::vector<std::int64_t>& shape, std::span<float> out)>;

// An fp32 model of `config` holding the weights `read` supplies. Inference has no use for
// bf16 compute on CPU (no native bf16 GEMM) and fp32 is what the checkpoint stores.
std::unique_ptr<Model> build_model(const ModelConfig& config, std::int64_t max_positions,
                                   const ReadTensor& read) {
  auto model = std::make_unique<Model>(config, DType::f32, /*seed=*/0, max_positions);
  for (ParameterGroup& group : model->groups()) {
    for (Parameter& p : group.params()) {
      std::vector<std::int64_t> shape;
      for (int d = 0; d < p.spec.shape.rank(); ++d) shape.push_back(p.spec.shape[d]);
      read(p.spec.name, shape, p.value.span<float>());
    }
  }
  return model;
}

}  // namespace

InferenceModel load_checkpoint_model(const fs::path& path,
                                     const std::function<void(const std::string&)>& warn) {
  const ckpt::FoundCheckpoint found = find_checkpoint(path, warn);
  const Config config =
      parse_config(found.manifest.config_yaml, (found.dir / ckpt::kManifestFileName).string());
  CheckpointTensorReader reader(found.dir);
  auto read = [&](const std::string& name, const std::vector<std::int64_t>& shape,
                  std::span<float> out) {
    const ckpt::TensorRecord* record = found.manifest.find_tensor(name);
    if (!record)
      throw HfError(
          fmt::format("checkpoint {}: the manifest has no tensor '{}' (its model needs it)",
                      found.dir.string(), name));
    try {
      reader.read(*record, whole_tensor(shape), out);
    } catch (const ckpt::CheckpointError& e) {
      throw HfError(e.what());
    } catch (const Error& e) {  // a shape that differs, or elements no saved piece covers
      throw HfError(
          fmt::format("checkpoint {}: tensor '{}': {}", found.dir.string(), name, e.what()));
    }
  };
  return {build_model(config.model, config.data.seq_len, read),
          fmt::format("{} (step {})", found.dir.string(), found.manifest.step), config};
}

InferenceModel load_hf_model(const fs::path& dir) {
  const ModelConfig config = load_hf_model_config((dir / "config.json").string());
  HfWeights weights(dir);
  auto read = [&](const std::string& name, const std::vector<std::int64_t>& shape,
                  std::span<float> out) {
    if (!weights.contains(name))
      throw HfError(fmt::format("{}: no tensor '{}' (the model of its config.json needs it)",
                                dir.string(), name));
    weights.read(name, whole_tensor(shape), out);
  };
  constexpr std::int64_t kRopeTable = 2048;  // the Model's own table; the Decoder has its own
  return {build_model(config, kRopeTable, read), dir.string(), std::nullopt};
}

void validate_generate(const GenerateOptions& o, std::int64_t vocab) {
  validate_sampling(o.sampling);
  if (o.max_new_tokens < 1)
    throw std::invalid_argument(fmt::format(
        "invalid value '{}' for --max-new-tokens: expected an integer >= 1", o.max_new_tokens));
  if (o.sampling.top_k > vocab)
    throw std::invalid_argument(
        fmt::format("invalid value '{}' for --top-k: expected at most the vocabulary ({})",
                    o.sampling.top_k, vocab));
  if (o.stop_token && (*o.stop_token < 0 || *o.stop_token >= vocab))
    throw std::invalid_argument(
        fmt::format("invalid value '{}' for --stop-token: expected a token id in [0, {})",
                    *o.stop_token, vocab));
}

Generation generate(const Model& model, std::span<const std::int32_t> prompt,
                    const GenerateOptions& o) {
  const std::int64_t vocab = model.config().vocab;
  LT_CHECK(!prompt.empty(), "generate with an empty prompt");
  for (std::int32_t t : prompt) LT_CHECK(t >= 0 && t < vocab, "prompt token " << t);
  Decoder decoder(model, static_cast<std::int64_t>(prompt.size()) + o.max_new_tokens);
  Tensor logits = decoder.append(prompt);
  Generation out;
  for (std::int64_t step = 0; step < o.max_new_tokens; ++step) {
    const std::int32_t next =
        sample_token(logits.span<float>(), o.sampling, static_cast<std::uint64_t>(step));
    out.tokens.push_back(next);
    if (o.stop_token && next == *o.stop_token) {
      out.stopped = true;
      break;
    }
    if (step + 1 < o.max_new_tokens) logits = decoder.append(std::span(&next, 1));
  }
  return out;
}

std::vector<std::int32_t> encode_bytes(std::string_view text, std::int64_t vocab) {
  if (vocab < 256)
    throw std::invalid_argument(fmt::format(
        "--prompt needs a byte-level model (vocabulary >= 256), this one has {}; give ids with "
        "--prompt-tokens",
        vocab));
  std::vector<std::int32_t> tokens;
  for (char c : text) tokens.push_back(static_cast<unsigned char>(c));
  return tokens;
}

std::string decode_bytes(std::span<const std::int32_t> tokens) {
  std::string out;
  for (std::int32_t t : tokens) {
    if (t == '\n')
      out += "\\n";
    else if (t == '\t')
      out += "\\t";
    else if (t == '\\' || t == '"')
      out += fmt::format("\\{}", static_cast<char>(t));
    else if (t >= 0x20 && t < 0x7f)
      out += static_cast<char>(t);
    else if (t >= 0 && t < 256)
      out += fmt::format("\\x{:02x}", t);
    else
      out += fmt::format("<{}>", t);
  }
  return out;
}

}  // namespace lt
