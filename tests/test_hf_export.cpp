// HuggingFace interchange: `export` of checkpoints saved under a tp x dp ZeRO layout (single file
// and sharded, fp32 and bf16), config.json read back, HfWeights reading what was exported, the
// errors of both, the `longtrain export` command, and a trained model's export with its logits
// for the PyTorch check (tests/python/check_hf_logits.py).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "checkpoint/json_reader.h"
#include "core/dtype.h"
#include "core/ops.h"
#include "core/rng.h"
#include "tests/checkpoint_test_util.h"
#include "tests/cli_runner.h"
#include "tests/model_logits.h"
#include "trainer/checkpoint_tensors.h"
#include "trainer/config.h"
#include "trainer/format.h"
#include "trainer/hf_error.h"
#include "trainer/hf_export.h"
#include "trainer/hf_weights.h"
#include "trainer/trainer.h"

namespace lt {
namespace {

namespace fs = std::filesystem;
using ckpt::test::read_file;
using ckpt::test::ScratchDir;
using ckpt::test::write_file;

// ---------------------------------------------------------------------------------------------
// Synthetic checkpoints: every element of every tensor has a known value, and the tensors are cut
// the way a tp 2 x dp 2 run with ZeRO saves them.

ModelConfig small_model() {
  ModelConfig m;
  m.dim = 8;
  m.layers = 2;
  m.heads = 4;
  m.kv_heads = 2;
  m.ffn = 12;
  m.vocab = 11;  // tp 2 pads it to 12; checkpoints hold the 11 real rows
  return m;
}

ModelConfig small_qwen2_tied() {
  ModelConfig m = small_model();
  m.family = "qwen2";
  m.qkv_bias = true;
  m.tie_embeddings = true;
  return m;
}

// The first embedding values are bf16 rounding cases: ties to even, down and up, and a value that
// rounds across a binade.
constexpr std::array<float, 4> kRoundingCases = {1.00390625f, 1.01171875f, -2.0000002f, 1.9960938f};
constexpr std::array<std::uint16_t, 4> kRoundedBits = {0x3F80, 0x3F82, 0xC000, 0x4000};

float value_of(const std::string& tensor, std::int64_t index, std::uint64_t salt) {
  if (tensor == "model.embed_tokens.weight" &&
      index < static_cast<std::int64_t>(kRoundingCases.size()))
    return kRoundingCases[static_cast<std::size_t>(index)];
  return static_cast<float>(normal_at(rng_key(salt, tensor), static_cast<std::uint64_t>(index)));
}

std::vector<float> expected_values(const std::string& tensor, std::int64_t count,
                                   std::uint64_t salt) {
  std::vector<float> out(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i)
    out[static_cast<std::size_t>(i)] = value_of(tensor, i, salt);
  return out;
}

std::int64_t element_count(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (const std::int64_t d : shape) n *= d;
  return n;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

enum class TpSplit { rows, cols, replicated };

TpSplit tp_split(const std::string& name) {
  if (ends_with(name, "o_proj.weight") || ends_with(name, "down_proj.weight")) return TpSplit::cols;
  if (ends_with(name, "norm.weight")) return TpSplit::replicated;
  return TpSplit::rows;
}

// One rank's saved piece of a tensor, with its values.
struct SavedPiece {
  int rank = 0;
  ckpt::ShardRecord shard;
  std::vector<float> values;
};

constexpr int kTp = 2, kDp = 2;

// Tensor-parallel slice `t` of `shape` (offsets and local shape), as the model shards it; the
// vocabulary rows split as ceil(vocab / tp) per rank.
std::pair<std::vector<std::uint64_t>, std::vector<std::uint64_t>> tp_slice(
    TpSplit split, const std::vector<std::int64_t>& shape, int t) {
  std::vector<std::uint64_t> offsets(shape.size(), 0), local(shape.begin(), shape.end());
  if (split == TpSplit::rows) {
    const std::int64_t per = (shape[0] + kTp - 1) / kTp, first = t * per;
    offsets[0] = static_cast<std::uint64_t>(first);
    local[0] = static_cast<std::uint64_t>(std::min(shape[0], first + per) - first);
  } else if (split == TpSplit::cols) {
    offsets[1] = static_cast<std::uint64_t>(t * shape[1] / kTp);
    local[1] = static_cast<std::uint64_t>(shape[1] / kTp);
  }
  return {offsets, local};
}

// The pieces of one tensor: tp slices (a replicated tensor saved once, by tp rank 0), each cut
// into two ZeRO ranges, the first third owned by dp replica 0. Empty ranges are not saved.
std::vector<SavedPiece> saved_pieces(const std::string& tensor,
                                     const std::vector<std::int64_t>& shape, std::uint64_t salt) {
  const TpSplit split = tp_split(tensor);
  const std::int64_t global_cols = shape.size() > 1 ? shape[1] : 1;
  std::vector<SavedPiece> out;
  for (int t = 0; t < (split == TpSplit::replicated ? 1 : kTp); ++t) {
    const auto [offsets, local] = tp_slice(split, shape, t);
    const std::uint64_t cols = local.size() > 1 ? local[1] : 1, n = local[0] * cols;
    const std::array<std::uint64_t, 3> cuts = {0, n / 3, n};
    for (int d = 0; d < kDp; ++d) {
      if (cuts[d] == cuts[d + 1]) continue;
      SavedPiece p{d * kTp + t,
                   {ckpt::rank_file_name(d * kTp + t), tensor, offsets, local,
                    ckpt::ElementRange{cuts[d], cuts[d + 1]}},
                   {}};
      for (std::uint64_t k = cuts[d]; k < cuts[d + 1]; ++k) {
        const std::uint64_t row = offsets[0] + k / cols,
                            col = (offsets.size() > 1 ? offsets[1] : 0) + k % cols;
        p.values.push_back(value_of(
            tensor, static_cast<std::int64_t>(row) * global_cols + static_cast<std::int64_t>(col),
            salt));
      }
      out.push_back(std::move(p));
    }
  }
  return out;
}

std::string config_yaml(const ModelConfig& m) {
  Config c;
  c.model = m;
  c.data.seq_len = 32;
  c.parallel.tp = kTp;
  c.parallel.dp = kDp;
  c.parallel.zero_stage = 1;
  return config_to_yaml(c);
}

struct CheckpointSpec {
  ModelConfig model = small_model();
  std::int64_t step = 100;
  std::uint64_t salt = 1;
  std::function<void(ckpt::Manifest&)> edit;  // applied to the manifest before it is committed
};

// Writes a checkpoint of the model's weights and Adam moments under `root` with the checkpoint
// module, as a 2 x 2 run would. Returns its step directory.
fs::path write_checkpoint(const fs::path& root, const CheckpointSpec& spec) {
  ckpt::Manifest manifest;
  manifest.step = spec.step;
  manifest.layout = {kTp, 1, kDp, 1, kTp * kDp};
  manifest.config_yaml = config_yaml(spec.model);
  std::vector<SavedPiece> pieces;
  for (const HfTensorSpec& t : hf_tensor_specs(spec.model)) {
    for (const std::string& prefix :
         {std::string(), std::string(kFirstMomentPrefix), std::string(kSecondMomentPrefix)}) {
      ckpt::TensorRecord record{
          prefix + t.name, ckpt::TensorDtype::f32, {t.shape.begin(), t.shape.end()}, {}};
      for (SavedPiece& p : saved_pieces(record.name, t.shape, spec.salt)) {
        record.shards.push_back(p.shard);
        pieces.push_back(std::move(p));
      }
      manifest.tensors.push_back(std::move(record));
    }
  }
  ckpt::begin_save(root, spec.step);
  for (int rank = 0; rank < kTp * kDp; ++rank) {
    ckpt::SafetensorsWriter writer;
    for (const SavedPiece& p : pieces) {
      if (p.rank == rank)
        writer.add(p.shard.key, ckpt::TensorDtype::f32, {p.values.size()},
                   std::as_bytes(std::span(p.values)));
    }
    const std::string file = ckpt::rank_file_name(rank);
    const ckpt::WrittenFile written = writer.write(ckpt::file_path(root, spec.step, file));
    manifest.files.push_back({file, written.bytes, written.crc32c});
  }
  if (spec.edit) spec.edit(manifest);
  ckpt::commit_save(root, spec.step, manifest);
  return ckpt::step_dir(root, spec.step);
}

// Every exported weight equals the checkpoint's values (widened from bf16: the rounded ones).
void expect_weights(HfWeights& weights, const ModelConfig& m, std::uint64_t salt, bool bf16) {
  std::vector<std::string> names;
  for (const HfTensorSpec& t : hf_tensor_specs(m)) {
    names.push_back(t.name);
    ASSERT_EQ(weights.global_shape(t.name), t.shape) << t.name;
    std::vector<float> got(static_cast<std::size_t>(element_count(t.shape)));
    weights.read(t.name, whole_tensor(t.shape), got);
    std::vector<float> want = expected_values(t.name, element_count(t.shape), salt);
    if (bf16) {
      for (float& v : want) v = static_cast<float>(lt::bf16(v));
    }
    ASSERT_EQ(got, want) << t.name;
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(weights.names(), names);
}

template <class E>
void expect_throws(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "nothing thrown; expected an error mentioning '" << parts.front() << "'";
  } catch (const E& e) {
    const std::string message = e.what();
    for (const std::string& part : parts)
      EXPECT_NE(message.find(part), std::string::npos)
          << "message lacks '" << part << "': " << message;
  }
}

ckpt::JsonValue read_json(const fs::path& path) {
  return ckpt::JsonValue::parse(read_file(path), path.string());
}

// ---------------------------------------------------------------------------------------------
// Export

TEST(HfExport, SingleFileHoldsEveryWeightExactly) {
  ScratchDir dir("hf_single");
  const fs::path step = write_checkpoint(dir / "ckpt", {});
  const ExportSummary s = export_hf(step, dir / "hf", {});
  EXPECT_EQ(s.step, 100);
  EXPECT_EQ(s.files, (std::vector<std::string>{"config.json", "model.safetensors"}));
  EXPECT_FALSE(fs::exists(dir / "hf.tmp"));
  EXPECT_FALSE(fs::exists(dir / "hf" / kHfIndexFile));
  const ckpt::SafetensorsReader file(dir / "hf" / "model.safetensors");
  EXPECT_EQ(file.header().metadata, (std::map<std::string, std::string>{{"format", "pt"}}));
  std::uint64_t bytes = 0;
  for (const ckpt::TensorEntry& e : file.header().tensors) {
    EXPECT_EQ(e.dtype, ckpt::TensorDtype::f32);
    bytes += e.bytes();
  }
  EXPECT_EQ(s.tensor_bytes, bytes);
  EXPECT_EQ(bytes, static_cast<std::uint64_t>(count_parameters(small_model())) * 4);
  HfWeights weights(dir / "hf");
  expect_weights(weights, small_model(), 1, false);
}

TEST(HfExport, ReadsAnySliceBackAsATensorParallelRankWould) {
  ScratchDir dir("hf_slice");
  export_hf(write_checkpoint(dir / "ckpt", {}), dir / "hf", {});
  HfWeights weights(dir / "hf");
  const std::string name = "model.layers.1.self_attn.o_proj.weight";  // [8, 8], by columns
  TensorSlice slice;
  slice.global_shape = {8, 8};
  slice.col_offset = 4;
  slice.local_shape = {8, 4};
  slice.flat_begin = 3;
  slice.flat_end = 30;
  std::vector<float> got(27);
  weights.read(name, slice, got);
  for (std::int64_t k = 3; k < 30; ++k)
    EXPECT_EQ(got[static_cast<std::size_t>(k - 3)], value_of(name, (k / 4) * 8 + 4 + k % 4, 1))
        << k;
}

TEST(HfExport, Qwen2ModelWithBiasesAndTiedEmbeddings) {
  ScratchDir dir("hf_qwen2");
  const ModelConfig m = small_qwen2_tied();
  export_hf(write_checkpoint(dir / "ckpt", {m, 100, 1, {}}), dir / "hf", {});
  HfWeights weights(dir / "hf");
  expect_weights(weights, m, 1, false);
  EXPECT_TRUE(weights.contains("model.layers.0.self_attn.k_proj.bias"));
  EXPECT_FALSE(weights.contains("lm_head.weight"));
  const ckpt::JsonValue config = read_json(dir / "hf" / "config.json");
  EXPECT_EQ(config.at("model_type").string(64), "qwen2");
  EXPECT_EQ(config.at("architectures").items(4).at(0).string(64), "Qwen2ForCausalLM");
  EXPECT_NE(read_file(dir / "hf" / "config.json").find("\"tie_word_embeddings\": true"),
            std::string::npos);
}

TEST(HfExport, ShardedExportListsEveryTensorInTheIndex) {
  ScratchDir dir("hf_sharded");
  ExportOptions options;
  options.max_shard_bytes = 700;  // a layer's weights are 1,344 bytes: several shards
  const ExportSummary s = export_hf(write_checkpoint(dir / "ckpt", {}), dir / "hf", options);
  const std::size_t shards = s.files.size() - 2;
  ASSERT_GT(shards, 2u);
  EXPECT_EQ(s.files.front(), "config.json");
  EXPECT_EQ(s.files.back(), kHfIndexFile);
  EXPECT_EQ(s.files[1], fmt::format("model-00001-of-{:05d}.safetensors", shards));
  EXPECT_FALSE(fs::exists(dir / "hf" / kHfWeightsFile));

  const ckpt::JsonValue index = read_json(dir / "hf" / kHfIndexFile);
  EXPECT_EQ(index.at("metadata").at("total_size").uint64(), s.tensor_bytes);
  std::map<std::string, std::string> mapped;
  for (const auto& [name, file] : index.at("weight_map").members()) mapped[name] = file.string(256);
  for (std::size_t k = 1; k <= shards; ++k) {
    const ckpt::SafetensorsReader file(dir / "hf" / s.files[k]);
    std::uint64_t bytes = 0;
    for (const ckpt::TensorEntry& e : file.header().tensors) {
      EXPECT_EQ(mapped.at(e.name), s.files[k]) << e.name;
      bytes += e.bytes();
    }
    EXPECT_TRUE(bytes <= options.max_shard_bytes || file.header().tensors.size() == 1)
        << s.files[k];
  }
  EXPECT_EQ(mapped.size(), hf_tensor_specs(small_model()).size());
  HfWeights weights(dir / "hf");
  expect_weights(weights, small_model(), 1, false);
}

TEST(HfExport, Bf16RoundsToNearestEven) {
  ScratchDir dir("hf_bf16");
  ExportOptions options;
  options.dtype = ckpt::TensorDtype::bf16;
  const ExportSummary s = export_hf(write_checkpoint(dir / "ckpt", {}), dir / "hf", options);
  EXPECT_EQ(s.tensor_bytes, static_cast<std::uint64_t>(count_parameters(small_model())) * 2);
  const ckpt::SafetensorsReader file(dir / "hf" / "model.safetensors");
  const ckpt::TensorEntry& embed = file.entry("model.embed_tokens.weight");
  EXPECT_EQ(embed.dtype, ckpt::TensorDtype::bf16);
  std::vector<std::uint16_t> bits(embed.elements());
  file.read(embed.name, std::as_writable_bytes(std::span(bits)));
  for (std::size_t i = 0; i < kRoundedBits.size(); ++i) EXPECT_EQ(bits[i], kRoundedBits[i]) << i;
  for (std::size_t i = 0; i < bits.size(); ++i)
    EXPECT_EQ(bits[i],
              bf16::round_from_float(value_of(embed.name, static_cast<std::int64_t>(i), 1)));
  EXPECT_EQ(read_json(dir / "hf" / "config.json").at("torch_dtype").string(64), "bfloat16");
  HfWeights weights(dir / "hf");
  expect_weights(weights, small_model(), 1, true);
}

TEST(HfExport, RootExportsTheNewestIntactCheckpoint) {
  ScratchDir dir("hf_root");
  write_checkpoint(dir / "ckpt", {small_model(), 100, 1, {}});
  const fs::path newest = write_checkpoint(dir / "ckpt", {small_model(), 200, 2, {}});
  std::string bytes = read_file(newest / ckpt::rank_file_name(3));
  bytes[bytes.size() - 5] ^= 0x10;
  write_file(newest / ckpt::rank_file_name(3), bytes);
  std::vector<std::string> warnings;
  const ExportSummary s =
      export_hf(dir / "ckpt", dir / "hf", {}, [&](const std::string& w) { warnings.push_back(w); });
  EXPECT_EQ(s.step, 100);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("step_00000200"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[0].find("CRC32C"), std::string::npos) << warnings[0];
  HfWeights weights(dir / "hf");
  expect_weights(weights, small_model(), 1, false);
}

// ---------------------------------------------------------------------------------------------
// config.json

void expect_same_model(const ModelConfig& got, const ModelConfig& want) {
  EXPECT_EQ(got.family, want.qkv_bias ? "qwen2" : "llama");
  EXPECT_EQ(got.dim, want.dim);
  EXPECT_EQ(got.layers, want.layers);
  EXPECT_EQ(got.heads, want.heads);
  EXPECT_EQ(got.kv_heads, want.kv_heads);
  EXPECT_EQ(got.resolved_head_dim(), want.resolved_head_dim());
  EXPECT_EQ(got.ffn, want.ffn);
  EXPECT_EQ(got.vocab, want.vocab);
  EXPECT_EQ(got.rope_theta, want.rope_theta);
  EXPECT_EQ(got.rope_scaling.type, want.rope_scaling.type);
  if (want.rope_scaling.type != "none") {
    EXPECT_EQ(got.rope_scaling.factor, want.rope_scaling.factor);
  }
  if (want.rope_scaling.type == "llama3") {
    EXPECT_EQ(got.rope_scaling.low_freq_factor, want.rope_scaling.low_freq_factor);
    EXPECT_EQ(got.rope_scaling.high_freq_factor, want.rope_scaling.high_freq_factor);
    EXPECT_EQ(got.rope_scaling.original_max_position, want.rope_scaling.original_max_position);
  }
  EXPECT_EQ(got.norm_eps, want.norm_eps);
  EXPECT_EQ(got.tie_embeddings, want.tie_embeddings);
  EXPECT_EQ(got.qkv_bias, want.qkv_bias);
  EXPECT_EQ(got.init_std, want.init_std);
  EXPECT_EQ(count_parameters(got), count_parameters(want));
}

std::vector<ModelConfig> config_cases() {
  ModelConfig llama3;  // Llama 3.1 8B's shapes
  llama3.dim = 4096;
  llama3.layers = 32;
  llama3.heads = 32;
  llama3.kv_heads = 8;
  llama3.ffn = 14336;
  llama3.vocab = 128256;
  llama3.rope_theta = 500000;
  llama3.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 8192};
  llama3.norm_eps = 1e-5;
  ModelConfig linear = small_model();
  linear.rope_scaling.type = "linear";
  linear.rope_scaling.factor = 2.5;
  linear.head_dim = 6;  // not dim / heads
  linear.norm_eps = 1.2345e-6;
  linear.init_std = 0.013;
  return {llama3, linear, small_qwen2_tied()};
}

TEST(HfConfigJson, ReadsBackAsTheSameModel) {
  ScratchDir dir("hf_config");
  for (const ModelConfig& m : config_cases()) {
    const fs::path path = dir / "config.json";
    ckpt::write_file_durably(path, hf_config_json(m, 4096, ckpt::TensorDtype::f32));
    SCOPED_TRACE(read_file(path));
    expect_same_model(load_hf_model_config(path.string()), m);
  }
}

TEST(HfConfigJson, FieldsTransformersReads) {
  const auto configs = config_cases();
  const ckpt::JsonValue llama3 =
      ckpt::JsonValue::parse(hf_config_json(configs[0], 4096, ckpt::TensorDtype::bf16), "llama3");
  EXPECT_EQ(llama3.at("architectures").items(4).at(0).string(64), "LlamaForCausalLM");
  EXPECT_EQ(llama3.at("model_type").string(64), "llama");
  EXPECT_EQ(llama3.at("max_position_embeddings").uint64(), 65536u);  // 8192 x 8
  EXPECT_EQ(llama3.at("rope_scaling").at("rope_type").string(64), "llama3");
  EXPECT_EQ(llama3.at("rope_theta").number(), 500000.0);
  EXPECT_EQ(llama3.at("torch_dtype").string(64), "bfloat16");
  EXPECT_EQ(llama3.at("hidden_act").string(64), "silu");
  const std::string text = hf_config_json(configs[1], 32, ckpt::TensorDtype::f32);
  EXPECT_NE(text.find("\"factor\": 2.5"), std::string::npos) << text;
  EXPECT_NE(text.find("\"rope_theta\": 10000.0"), std::string::npos) << text;  // a float
  EXPECT_NE(text.find("\"max_position_embeddings\": 32"), std::string::npos) << text;
  EXPECT_NE(text.find("\"rope_scaling\": {"), std::string::npos) << text;
  EXPECT_NE(
      hf_config_json(small_model(), 32, ckpt::TensorDtype::f32).find("\"rope_scaling\": null"),
      std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Export errors

TEST(HfExportErrors, MissingCheckpoint) {
  ScratchDir dir("hf_err_missing");
  expect_throws<HfError>([&] { export_hf(dir / "nope", dir / "hf", {}); },
                         {(dir / "nope").string(), "no such directory"});
  fs::create_directories(dir / "empty");
  expect_throws<HfError>([&] { export_hf(dir / "empty", dir / "hf", {}); },
                         {(dir / "empty").string(), "no checkpoint"});
  EXPECT_FALSE(fs::exists(dir / "hf"));
}

TEST(HfExportErrors, DamagedStepDirectoryIsRefusedWithTheReason) {
  ScratchDir dir("hf_err_damaged");
  const fs::path step = write_checkpoint(dir / "ckpt", {});
  fs::resize_file(step / ckpt::rank_file_name(1), 100);
  expect_throws<HfError>([&] { export_hf(step, dir / "hf", {}); },
                         {"rank_00001.safetensors", "truncated"});
  expect_throws<HfError>([&] { export_hf(dir / "ckpt", dir / "hf", {}); },
                         {"none of its checkpoints is intact"});
  EXPECT_FALSE(fs::exists(dir / "hf"));
}

TEST(HfExportErrors, MissingTensorOrShapeNamesTheTensor) {
  ScratchDir dir("hf_err_tensor");
  const std::string name = "model.layers.1.mlp.down_proj.weight";
  auto drop = [&](ckpt::Manifest& m) {
    std::erase_if(m.tensors, [&](const ckpt::TensorRecord& t) { return t.name == name; });
  };
  const fs::path a = write_checkpoint(dir / "a", {small_model(), 100, 1, drop});
  expect_throws<HfError>([&] { export_hf(a, dir / "hf", {}); }, {name, "no tensor"});
  auto reshape = [&](ckpt::Manifest& m) {
    for (ckpt::TensorRecord& t : m.tensors) {
      if (t.name == name) t.global_shape = {8, 13};
      for (ckpt::ShardRecord& s : t.shards) {
        if (t.name == name) s.shape[1] = 6;
      }
    }
  };
  const fs::path b = write_checkpoint(dir / "b", {small_model(), 100, 1, reshape});
  expect_throws<HfError>([&] { export_hf(b, dir / "hf", {}); }, {name, "[8, 13]", "[8, 12]"});
  EXPECT_FALSE(fs::exists(dir / "hf"));
}

TEST(HfExportErrors, UncoveredElementLeavesNoOutput) {
  ScratchDir dir("hf_err_cover");
  const std::string name = "model.layers.0.self_attn.q_proj.weight";
  auto drop_shard = [&](ckpt::Manifest& m) {
    for (ckpt::TensorRecord& t : m.tensors) {
      if (t.name == name) t.shards.pop_back();
    }
  };
  const fs::path step = write_checkpoint(dir / "ckpt", {small_model(), 100, 1, drop_shard});
  expect_throws<HfError>([&] { export_hf(step, dir / "hf", {}); },
                         {name, "no saved piece holds element"});
  EXPECT_FALSE(fs::exists(dir / "hf"));
  EXPECT_FALSE(fs::exists(dir / "hf.tmp"));
}

TEST(HfExportErrors, ExistingOutputNeedsForce) {
  ScratchDir dir("hf_err_out");
  const fs::path step = write_checkpoint(dir / "ckpt", {});
  fs::create_directories(dir / "hf");
  write_file(dir / "hf" / "old.txt", "old");
  expect_throws<HfError>([&] { export_hf(step, dir / "hf", {}); },
                         {(dir / "hf").string(), "not empty", "--force"});
  EXPECT_TRUE(fs::exists(dir / "hf" / "old.txt"));
  ExportOptions force;
  force.force = true;
  export_hf(step, dir / "hf/", force);
  EXPECT_FALSE(fs::exists(dir / "hf" / "old.txt"));
  EXPECT_TRUE(fs::exists(dir / "hf" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "hf.old.tmp"));
  expect_throws<HfError>([&] { export_hf(step, dir / "ckpt", force); }, {"holds the checkpoint"});
  EXPECT_TRUE(fs::exists(step / ckpt::kManifestFileName));
  write_file(dir / "file", "x");
  expect_throws<HfError>([&] { export_hf(step, dir / "file", force); }, {"not a directory"});
}

// ---------------------------------------------------------------------------------------------
// HfWeights errors

TEST(HfWeightsErrors, DirectoryWithoutWeights) {
  ScratchDir dir("hfw_none");
  expect_throws<HfError>([&] { HfWeights w(dir / "nope"); }, {"nope", "no such directory"});
  expect_throws<HfError>([&] { HfWeights w(dir.path()); },
                         {"no model.safetensors", "not a HuggingFace safetensors model directory"});
  write_file(dir / "pytorch_model.bin", "x");
  expect_throws<HfError>([&] { HfWeights w(dir.path()); }, {"convert them to safetensors"});
}

TEST(HfWeightsErrors, DamagedFilesAndReads) {
  ScratchDir dir("hfw_read");
  export_hf(write_checkpoint(dir / "ckpt", {}), dir / "hf", {});
  {
    HfWeights w(dir / "hf");
    std::vector<float> out(8);
    expect_throws<HfError>([&] { w.read("model.nope", whole_tensor({8}), out); }, {"model.nope"});
    expect_throws<HfError>([&] { w.read("model.norm.weight", whole_tensor({9}), out); },
                           {"model.norm.weight", "has shape [8]", "expects [9]"});
  }
  const fs::path file = dir / "hf" / "model.safetensors";
  fs::resize_file(file, fs::file_size(file) - 4);
  expect_throws<HfError>([&] { HfWeights w(dir / "hf"); }, {file.string()});

  const std::vector<std::int32_t> ints{1, 2};
  ckpt::SafetensorsWriter writer;
  writer.add("model.ids", ckpt::TensorDtype::i32, {2}, std::as_bytes(std::span(ints)));
  writer.write(file);
  HfWeights w(dir / "hf");
  std::vector<float> out(2);
  expect_throws<HfError>([&] { w.read("model.ids", whole_tensor({2}), out); },
                         {"model.ids", "I32"});
}

// A sharded export whose index is then rewritten by `edit_index`.
void expect_index_error(const std::string& stem,
                        const std::function<std::string(std::string)>& edit_index,
                        const std::vector<std::string>& parts) {
  ScratchDir dir(stem);
  ExportOptions options;
  options.max_shard_bytes = 700;
  export_hf(write_checkpoint(dir / "ckpt", {}), dir / "hf", options);
  const fs::path index = dir / "hf" / kHfIndexFile;
  write_file(index, edit_index(read_file(index)));
  expect_throws<HfError>([&] { HfWeights w(dir / "hf"); }, parts);
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const std::size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

TEST(HfWeightsErrors, IndexInconsistentWithTheShards) {
  const std::string entry = "\"model.norm.weight\": \"model-";
  expect_index_error("hfw_missing_file",
                     [&](std::string t) { return replaced(t, entry, entry + "9"); },
                     {"model-9", "No such file"});
  expect_index_error(
      "hfw_moved",
      [](std::string t) {
        return replaced(t, "\"model.embed_tokens.weight\": \"model-00001-",
                        "\"model.embed_tokens.weight\": \"model-00002-");
      },
      {"model-00001-of-", "holds tensor 'model.embed_tokens.weight'", "maps to model-00002-of-"});
  expect_index_error("hfw_unmapped",
                     [](std::string t) {
                       return replaced(t, "\"model.embed_tokens.weight\"",
                                       "\"model.embed_tokens.weight.x\"");
                     },
                     {"holds tensor 'model.embed_tokens.weight'", "not at all"});
  expect_index_error(
      "hfw_escape",
      [&](std::string t) { return replaced(t, entry, "\"model.norm.weight\": \"../model-"); },
      {"not a plain file name"});
  expect_index_error("hfw_json", [](std::string t) { return t + ","; },
                     {kHfIndexFile.data(), "JSON"});
  expect_index_error("hfw_no_map", [](std::string) { return std::string("{\"metadata\": {}}"); },
                     {"weight_map"});
}

// ---------------------------------------------------------------------------------------------
// The command line

using lt::test::CliResult;

CliResult longtrain(const std::string& args) {
  return lt::test::run_longtrain(args);
}

void expect_cli(const std::string& args, int code, const std::vector<std::string>& parts) {
  const CliResult r = longtrain(args);
  EXPECT_EQ(r.code, code) << args << "\n" << r.output;
  for (const std::string& part : parts)
    EXPECT_NE(r.output.find(part), std::string::npos) << args << ": lacks '" << part << "'\n"
                                                      << r.output;
}

TEST(HfExportCli, ExportsAndParamsCountsTheResult) {
  ScratchDir dir("hf_cli");
  write_checkpoint(dir / "ckpt", {});
  const std::string out = (dir / "hf").string();
  expect_cli("export --checkpoint " + (dir / "ckpt").string() + " --out " + out, 0,
             {"step 100", "model.safetensors", "F32"});
  expect_cli("params --hf-config " + out + "/config.json", 0,
             {group_thousands(count_parameters(small_model()))});
  expect_cli("export --checkpoint " + (dir / "ckpt").string() + " --out " + out +
                 " --dtype bf16 --max-shard-size 1KB --force",
             0, {"BF16", kHfIndexFile.data()});
  HfWeights weights(dir / "hf");
  expect_weights(weights, small_model(), 1, true);
}

TEST(HfExportCli, BadInputExitsTwoWithTheReason) {
  ScratchDir dir("hf_cli_bad");
  const fs::path step = write_checkpoint(dir / "ckpt", {});
  const std::string ckpt = " --checkpoint " + step.string(),
                    out = " --out " + (dir / "hf").string();
  expect_cli("export" + out, 2, {"export needs --checkpoint DIR and --out HF_DIR", "usage"});
  expect_cli("export" + ckpt, 2, {"export needs"});
  expect_cli("export" + ckpt + out + " --dtype fp16", 2, {"'fp16'", "--dtype", "fp32 or bf16"});
  expect_cli("export" + ckpt + out + " --max-shard-size lots", 2, {"'lots'", "--max-shard-size"});
  expect_cli("export" + ckpt + out + " --bogus", 2, {"unknown option '--bogus'"});
  expect_cli("export --checkpoint " + (dir / "nope").string() + out, 2,
             {"nope", "no such directory"});
  fs::create_directories(dir / "hf");
  write_file(dir / "hf" / "x", "x");
  expect_cli("export" + ckpt + out, 2, {"not empty", "--force"});
  fs::resize_file(step / ckpt::rank_file_name(2), 64);
  expect_cli("export" + ckpt + out + " --force", 2, {"rank_00002.safetensors", "truncated"});
  EXPECT_TRUE(fs::exists(dir / "hf" / "x"));
}

// ---------------------------------------------------------------------------------------------
// A trained model, exported, with its logits on a fixed input: the files
// tests/python/check_hf_logits.py rebuilds the model from in PyTorch (ctest: hf_logits_python).

// The training run both models share; init_std 0.1 gives attention patterns sharp enough that a
// wrong RoPE frequency moves the logits far beyond the tolerance.
const char* kRun = R"(
data: {source: synthetic, task: associative_recall, seq_len: 64, num_pairs: 4, num_queries: 8}
train: {steps: 6, global_batch: 8, micro_batch: 4, seed: 7, eval_every: 0, threads: 2}
optim: {lr: 3.0e-3, min_lr: 3.0e-4, warmup: 1}
precision: fp32
logging: {dir: "", every: 100, level: warn}
)";

// GQA, llama3 RoPE scaling with a non-default theta, an untied head.
const char* kLlamaModel = R"(
model: {dim: 32, layers: 2, heads: 4, kv_heads: 2, ffn: 64, vocab: 192, init_std: 0.1,
        rope_theta: 50000, rope_scaling: {type: llama3, factor: 4, original_max_position: 16}}
)";

// q/k/v biases, tied embeddings, linear RoPE scaling and a head_dim other than dim / heads.
const char* kQwen2Model = R"(
model: {family: qwen2, qkv_bias: true, tie_embeddings: true, dim: 32, layers: 2, heads: 4,
        kv_heads: 1, head_dim: 16, ffn: 48, vocab: 192, init_std: 0.1,
        rope_scaling: {type: linear, factor: 2}}
)";

// The fixed input: every position of the context, tokens spread over the vocabulary.
std::vector<std::int32_t> fixed_tokens(std::int64_t count, std::int64_t vocab) {
  std::vector<std::int32_t> out(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i)
    out[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 37 + 11) % vocab);
  return out;
}

// logits.bin: "LTLOGIT1", int64 tokens and vocab, int32 tokens[], float32 logits[tokens][vocab].
void write_logits(const fs::path& path, const std::vector<std::int32_t>& tokens,
                  const Tensor& logits) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const std::array<std::int64_t, 2> dims = {logits.shape()[0], logits.shape()[1]};
  out.write("LTLOGIT1", 8);
  out.write(reinterpret_cast<const char*>(dims.data()), sizeof(dims));
  out.write(reinterpret_cast<const char*>(tokens.data()),
            static_cast<std::streamsize>(tokens.size() * sizeof(std::int32_t)));
  out.write(reinterpret_cast<const char*>(logits.data<float>()),
            static_cast<std::streamsize>(logits.numel() * sizeof(float)));
  ASSERT_TRUE(out.good()) << path;
}

// The trained model's weights are exactly what the export holds.
void expect_export_matches(Model& model, const fs::path& hf) {
  HfWeights weights(hf);
  for (const HfTensorSpec& t : hf_tensor_specs(model.config())) {
    std::vector<float> got(static_cast<std::size_t>(element_count(t.shape)));
    weights.read(t.name, whole_tensor(t.shape), got);
    const std::span<const float> want = model.find(t.name)->value.span<float>();
    ASSERT_TRUE(std::equal(got.begin(), got.end(), want.begin(), want.end())) << t.name;
  }
}

// Trains the model of `model_yaml` for kRun's steps (saving the checkpoint at the end), exports it
// as fp32 to DIR/hf and as sharded bf16 to DIR/hf_bf16, and writes the logits to DIR/logits.bin.
// DIR is $LT_HF_LOGITS_DIR/<name> when set (ctest's hf_logits_export, for the Python check), else a
// scratch directory, so that the test run on its own never races the Python check for the files.
void export_trained_model(const char* model_yaml, const std::string& name) {
  const char* keep = std::getenv("LT_HF_LOGITS_DIR");
  std::optional<ScratchDir> scratch;
  if (!keep) scratch.emplace("hf_logits_" + name);
  const fs::path out = keep ? fs::path(keep) / name : scratch->path();
  fs::remove_all(out);
  const Config config = parse_config(std::string(model_yaml) + kRun, name + ".yaml",
                                     {"checkpoint.dir=" + (out / "ckpt").string()});
  Trainer trainer(config, ProcessInfo{});
  trainer.run();
  const ExportSummary s = export_hf(out / "ckpt", out / "hf", {});
  EXPECT_EQ(s.step, config.train.steps);
  ExportOptions bf16;
  bf16.dtype = ckpt::TensorDtype::bf16;
  bf16.max_shard_bytes = 16 << 10;
  EXPECT_GT(export_hf(out / "ckpt", out / "hf_bf16", bf16).files.size(), 3u);
  expect_export_matches(trainer.model(), out / "hf");
  const std::vector<std::int32_t> tokens = fixed_tokens(config.data.seq_len, config.model.vocab);
  write_logits(out / "logits.bin", tokens, test::full_forward_logits(trainer.model(), tokens));
}

TEST(HfLogits, TrainedLlamaWritesExportAndLogits) {
  export_trained_model(kLlamaModel, "llama");
}

TEST(HfLogits, TrainedQwen2WritesExportAndLogits) {
  export_trained_model(kQwen2Model, "qwen2");
}

// model.init_from: a run started from an export holds exactly the exported weights, in fp32 and
// (rounded like the trainer's compute copy) in bf16, and its logits are the trained model's.
TEST(HfInitFrom, StartsFromTheExportedWeightsExactly) {
  const ScratchDir dir("hf_init_from");
  const Config trained_config = parse_config(std::string(kLlamaModel) + kRun, "trained.yaml",
                                             {"checkpoint.dir=" + (dir.path() / "ckpt").string()});
  Trainer trained(trained_config, ProcessInfo{});
  trained.run();
  export_hf(dir.path() / "ckpt", dir.path() / "hf", {});
  for (const std::string precision : {"fp32", "bf16"}) {
    SCOPED_TRACE(precision);
    const Config config = parse_config(std::string(kLlamaModel) + kRun, "init.yaml",
                                       {"model.init_from=" + (dir.path() / "hf").string(),
                                        "precision=" + precision, "train.seed=99"});
    Trainer started(config, ProcessInfo{});
    for (const auto& g : started.model().groups()) {
      for (const auto& p : g.params()) {
        const Tensor& want = trained.model().find(p.spec.name)->value;
        Tensor expected = Tensor::empty(want.shape(), p.value.dtype(), MemCategory::workspace);
        copy(want, expected);  // fp32 master rounded to the compute dtype
        Tensor got = Tensor::empty(want.shape(), DType::f32, MemCategory::workspace),
               exp = Tensor::empty(want.shape(), DType::f32, MemCategory::workspace);
        copy(p.value, got);
        copy(expected, exp);
        const auto a = got.span<float>(), b = exp.span<float>();
        ASSERT_TRUE(std::equal(a.begin(), a.end(), b.begin(), b.end())) << p.spec.name;
      }
    }
  }
  const Config missing = parse_config(std::string(kLlamaModel) + kRun, "init.yaml",
                                      {"model.init_from=" + (dir.path() / "nothing").string()});
  EXPECT_THROW(Trainer(missing, ProcessInfo{}), HfError);
}

}  // namespace
}  // namespace lt
