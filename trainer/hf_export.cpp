#include "trainer/hf_export.h"

#include <fmt/format.h>

#include <cstring>
#include <map>

#include "checkpoint/json_writer.h"
#include "core/dtype.h"
#include "core/error.h"
#include "layers/decoder_block.h"
#include "trainer/checkpoint_locate.h"
#include "trainer/checkpoint_tensors.h"
#include "trainer/config.h"
#include "trainer/hf_error.h"
#include "trainer/hf_weights.h"

namespace lt {
namespace fs = std::filesystem;
namespace {

using Warn = std::function<void(const std::string&)>;

// A weight to export: its spec, the manifest's record and its bytes in the output dtype.
struct ExportTensor {
  HfTensorSpec spec;
  const ckpt::TensorRecord* record = nullptr;
  std::uint64_t bytes = 0;
};

std::vector<ExportTensor> export_tensors(const ckpt::Manifest& manifest, const ModelConfig& model,
                                         ckpt::TensorDtype dtype, const fs::path& dir) {
  std::vector<ExportTensor> out;
  for (HfTensorSpec& spec : hf_tensor_specs(model)) {
    const ckpt::TensorRecord* record = manifest.find_tensor(spec.name);
    const std::vector<std::uint64_t> shape(spec.shape.begin(), spec.shape.end());
    if (!record)
      throw HfError(
          fmt::format("checkpoint {}: the manifest has no tensor '{}' (its model needs it)",
                      dir.string(), spec.name));
    if (record->global_shape != shape)
      throw HfError(fmt::format("checkpoint {}: tensor '{}' has shape [{}], its model's is [{}]",
                                dir.string(), spec.name, fmt::join(record->global_shape, ", "),
                                fmt::join(shape, ", ")));
    const std::uint64_t bytes = ckpt::byte_count(shape, dtype).value();
    out.push_back({std::move(spec), record, bytes});
  }
  return out;
}

// transformers' split: tensors in order, a new shard whenever the next would overflow this one.
std::vector<std::vector<const ExportTensor*>> plan_shards(const std::vector<ExportTensor>& tensors,
                                                          std::uint64_t max_bytes) {
  std::vector<std::vector<const ExportTensor*>> shards(1);
  std::uint64_t used = 0;
  for (const ExportTensor& t : tensors) {
    if (!shards.back().empty() && used + t.bytes > max_bytes) {
      shards.emplace_back();
      used = 0;
    }
    shards.back().push_back(&t);
    used += t.bytes;
  }
  return shards;
}

std::string shard_name(std::size_t index, std::size_t count) {
  if (count == 1) return std::string(kHfWeightsFile);
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", index + 1, count);
}

// Fills `out` with bytes [byte_offset, +out.size()) of `t` in `dtype`: the matching flat range of
// the whole tensor, reassembled from the checkpoint's pieces and converted.
void produce_piece(CheckpointTensorReader& reader, const fs::path& dir, const ExportTensor& t,
                   ckpt::TensorDtype dtype, std::uint64_t byte_offset, std::span<std::byte> out,
                   std::vector<float>& staging) {
  const std::size_t size = ckpt::dtype_size(dtype);
  LT_CHECK(byte_offset % size == 0 && out.size() % size == 0,
           "write piece not aligned to " << size << "-byte elements");
  TensorSlice target = whole_tensor(t.spec.shape);
  target.flat_begin = static_cast<std::int64_t>(byte_offset / size);
  target.flat_end = target.flat_begin + static_cast<std::int64_t>(out.size() / size);
  staging.resize(out.size() / size);
  try {
    reader.read(*t.record, target, staging);
  } catch (const ckpt::CheckpointError& e) {
    throw HfError(e.what());
  } catch (const Error& e) {  // a piece no saved shard covers
    throw HfError(fmt::format("checkpoint {}: {}", dir.string(), e.what()));
  }
  if (dtype == ckpt::TensorDtype::f32) {
    std::memcpy(out.data(), staging.data(), out.size());
    return;
  }
  for (std::size_t i = 0; i < staging.size(); ++i) {
    const std::uint16_t bits = bf16::round_from_float(staging[i]);
    std::memcpy(out.data() + 2 * i, &bits, 2);
  }
}

void write_shard(const fs::path& path, const std::vector<const ExportTensor*>& tensors,
                 CheckpointTensorReader& reader, const fs::path& dir, ckpt::TensorDtype dtype) {
  ckpt::SafetensorsWriter writer;
  writer.set_metadata("format", "pt");
  std::vector<float> staging;  // one write piece, shared by the tensors written one by one
  for (const ExportTensor* t : tensors) {
    writer.add(t->spec.name, dtype, {t->spec.shape.begin(), t->spec.shape.end()},
               [&reader, &dir, &staging, t, dtype](std::uint64_t offset, std::span<std::byte> out) {
                 produce_piece(reader, dir, *t, dtype, offset, out, staging);
               });
  }
  writer.write(path);
}

std::string index_json(const std::vector<std::vector<const ExportTensor*>>& shards,
                       std::uint64_t total_bytes) {
  std::map<std::string, std::string> weight_map;  // sorted, as transformers writes it
  for (std::size_t k = 0; k < shards.size(); ++k) {
    for (const ExportTensor* t : shards[k]) weight_map[t->spec.name] = shard_name(k, shards.size());
  }
  std::string out =
      fmt::format("{{\n  \"metadata\": {{\n    \"total_size\": {}\n  }},\n", total_bytes);
  out += "  \"weight_map\": {\n";
  for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
    out += fmt::format("    {}: {}{}\n", ckpt::json_string(it->first),
                       ckpt::json_string(it->second), std::next(it) == weight_map.end() ? "" : ",");
  }
  return out + "  }\n}\n";
}

// OUT.tmp while the export is written; removed unless committed into OUT.
class StagingDir {
 public:
  explicit StagingDir(fs::path out) : out_(std::move(out)), path_(out_.string() + ".tmp") {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~StagingDir() {
    std::error_code ignored;
    if (!committed_) fs::remove_all(path_, ignored);
  }
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const fs::path& path() const { return path_; }

  // Makes the staged directory OUT. An existing OUT is moved aside first (to OUT.old.tmp: like
  // OUT.tmp, a name the export owns, so no directory of the user's is touched) and removed after.
  void commit() {
    ckpt::fsync_dir(path_);
    std::error_code ec;
    const fs::path old = out_.string() + ".old.tmp";
    const bool replace = fs::exists(out_, ec);
    if (replace) {
      fs::remove_all(old);
      fs::rename(out_, old);
    }
    fs::rename(path_, out_);
    committed_ = true;
    ckpt::fsync_dir(out_.parent_path());
    if (replace) fs::remove_all(old);
  }

 private:
  fs::path out_;
  fs::path path_;
  bool committed_ = false;
};

fs::path normalized(const fs::path& p) {
  fs::path out = fs::absolute(p).lexically_normal();
  return out.has_filename() ? out : out.parent_path();
}

void check_output(const fs::path& out, const fs::path& checkpoint, bool force) {
  const fs::path inside =
      fs::weakly_canonical(checkpoint).lexically_relative(fs::weakly_canonical(out));
  if (!inside.empty() && *inside.begin() != "..")
    throw HfError(fmt::format("output {}: holds the checkpoint {}; choose another directory",
                              out.string(), checkpoint.string()));
  std::error_code ec;
  if (!fs::exists(out, ec)) return;
  if (!fs::is_directory(out, ec))
    throw HfError(fmt::format("output {}: exists and is not a directory", out.string()));
  if (!force && !fs::is_empty(out, ec))
    throw HfError(fmt::format("output {}: exists and is not empty (pass --force to replace it)",
                              out.string()));
}

ExportSummary write_export(const ckpt::FoundCheckpoint& found, const fs::path& out,
                           const ExportOptions& options) {
  const Config config =
      parse_config(found.manifest.config_yaml, (found.dir / ckpt::kManifestFileName).string());
  const std::vector<ExportTensor> tensors =
      export_tensors(found.manifest, config.model, options.dtype, found.dir);
  const auto shards = plan_shards(tensors, options.max_shard_bytes);
  ExportSummary summary{found.dir, found.manifest.step, {"config.json"}, tensors.size(), 0};
  for (const ExportTensor& t : tensors) summary.tensor_bytes += t.bytes;

  StagingDir staging(out);
  ckpt::write_file_durably(staging.path() / "config.json",
                           hf_config_json(config.model, config.data.seq_len, options.dtype));
  CheckpointTensorReader reader(found.dir);
  for (std::size_t k = 0; k < shards.size(); ++k) {
    summary.files.push_back(shard_name(k, shards.size()));
    write_shard(staging.path() / summary.files.back(), shards[k], reader, found.dir, options.dtype);
  }
  if (shards.size() > 1) {
    summary.files.emplace_back(kHfIndexFile);
    ckpt::write_file_durably(staging.path() / kHfIndexFile,
                             index_json(shards, summary.tensor_bytes));
  }
  staging.commit();
  return summary;
}

}  // namespace

std::vector<HfTensorSpec> hf_tensor_specs(const ModelConfig& model) {
  std::vector<HfTensorSpec> out{{"model.embed_tokens.weight", {model.vocab, model.dim}}};
  for (std::int64_t layer = 0; layer < model.layers; ++layer) {
    for (const ParamSpec& p : DecoderBlock::param_specs(model, layer)) {
      std::vector<std::int64_t> shape;
      for (int d = 0; d < p.shape.rank(); ++d) shape.push_back(p.shape[d]);
      out.push_back({p.name, std::move(shape)});
    }
  }
  out.push_back({"model.norm.weight", {model.dim}});
  if (!model.tie_embeddings) out.push_back({"lm_head.weight", {model.vocab, model.dim}});
  return out;
}

ExportSummary export_hf(const fs::path& checkpoint, const fs::path& out,
                        const ExportOptions& options, const Warn& warn) {
  LT_CHECK(options.dtype == ckpt::TensorDtype::f32 || options.dtype == ckpt::TensorDtype::bf16,
           "export dtype " << ckpt::dtype_name(options.dtype) << " (F32 or BF16)");
  const fs::path target = normalized(out);
  const ckpt::FoundCheckpoint found = find_checkpoint(checkpoint, warn);
  check_output(target, found.dir, options.force);
  return write_export(found, target, options);
}

}  // namespace lt
