#include "trainer/hf_weights.h"

#include <fmt/format.h>

#include <memory>
#include <set>

#include "checkpoint/json_reader.h"
#include "core/error.h"
#include "trainer/hf_error.h"

namespace lt {
namespace fs = std::filesystem;
namespace {

// An index is small (one line per tensor); anything near this is not an index.
constexpr std::uint64_t kMaxIndexBytes = std::uint64_t{64} << 20;
constexpr std::size_t kMaxNameBytes = 4096;

std::string shape_text(const std::vector<std::uint64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

bool is_float(ckpt::TensorDtype dtype) {
  using ckpt::TensorDtype;
  return dtype == TensorDtype::f32 || dtype == TensorDtype::bf16 || dtype == TensorDtype::f16 ||
         dtype == TensorDtype::f64;
}

// The weight_map of an index: tensor name -> file name.
std::map<std::string, std::string> read_weight_map(const fs::path& index_path) {
  try {
    const std::string text = ckpt::read_text_file(index_path, kMaxIndexBytes);
    const ckpt::JsonValue root = ckpt::JsonValue::parse(text, index_path.string());
    if (!root.is_object()) root.fail("expected an object");
    const ckpt::JsonValue map = root.at("weight_map");
    if (!map.is_object()) map.fail("expected an object mapping tensor names to files");
    std::map<std::string, std::string> out;
    for (const auto& [name, file] : map.members()) {
      std::string file_name = file.string(kMaxNameBytes);
      if (!ckpt::is_valid_file_name(file_name))
        file.fail(fmt::format("'{}' is not a plain file name in the model directory", file_name));
      out.emplace(name, std::move(file_name));
    }
    if (out.empty()) map.fail("lists no tensor");
    return out;
  } catch (const ckpt::CheckpointError& e) {
    throw HfError(e.what());
  }
}

// The files of `dir` and the tensor each one must hold: the index's map, or every tensor of the
// single model.safetensors.
struct Layout {
  std::map<std::string, std::string> weight_map;  // empty: one file holding everything
  std::string single_file;
};

Layout find_layout(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw HfError(fmt::format("{}: {}", dir.string(),
                              fs::exists(dir, ec) ? "not a directory" : "no such directory"));
  if (fs::exists(dir / kHfIndexFile, ec)) return {read_weight_map(dir / kHfIndexFile), ""};
  if (fs::exists(dir / kHfWeightsFile, ec)) return {{}, std::string(kHfWeightsFile)};
  const bool torch_bin = fs::exists(dir / "pytorch_model.bin", ec) ||
                         fs::exists(dir / "pytorch_model.bin.index.json", ec);
  throw HfError(fmt::format("{}: no {} or {}{}", dir.string(), kHfWeightsFile, kHfIndexFile,
                            torch_bin ? " (PyTorch .bin weights are not supported: convert them "
                                        "to safetensors)"
                                      : " (not a HuggingFace safetensors model directory)"));
}

std::unique_ptr<ckpt::SafetensorsReader> open_file(const fs::path& path) {
  try {
    return std::make_unique<ckpt::SafetensorsReader>(path);
  } catch (const ckpt::CheckpointError& e) {
    throw HfError(e.what());
  }
}

// One whole-tensor shard: the checkpoint vocabulary for "all of it is in this file".
ckpt::TensorRecord record_of(const ckpt::TensorEntry& entry, const std::string& file) {
  ckpt::TensorRecord r{entry.name, entry.dtype, entry.shape, {}};
  r.shards.push_back({file, entry.name, std::vector<std::uint64_t>(entry.shape.size(), 0),
                      entry.shape, std::nullopt});
  return r;
}

// A tensor found in shard `file` must be mapped to it by the index.
void check_mapped(const std::map<std::string, std::string>& weight_map, const std::string& name,
                  const ckpt::SafetensorsReader& reader, const std::string& file) {
  const auto mapped = weight_map.find(name);
  if (mapped != weight_map.end() && mapped->second == file) return;
  throw HfError(fmt::format("{}: holds tensor '{}', which {} maps {}", reader.path().string(), name,
                            kHfIndexFile,
                            mapped == weight_map.end() ? "not at all" : "to " + mapped->second));
}

}  // namespace

TensorSlice whole_tensor(const std::vector<std::int64_t>& shape) {
  TensorSlice s;
  s.global_shape = shape;
  s.local_shape = shape;
  s.flat_end = 1;
  for (const std::int64_t d : shape) s.flat_end *= d;
  return s;
}

HfWeights::HfWeights(fs::path dir) : dir_(std::move(dir)), reader_(dir_) {
  const Layout layout = find_layout(dir_);
  std::set<std::string> files;
  for (const auto& entry : layout.weight_map) files.insert(entry.second);
  if (!layout.single_file.empty()) files.insert(layout.single_file);
  // Every file opens (a missing shard is the first thing to report) before they are compared.
  std::vector<std::unique_ptr<ckpt::SafetensorsReader>> readers;
  for (const std::string& file : files) readers.push_back(open_file(dir_ / file));
  auto file = files.begin();
  for (const auto& reader : readers) {
    for (const ckpt::TensorEntry& entry : reader->header().tensors) {
      if (!layout.weight_map.empty()) check_mapped(layout.weight_map, entry.name, *reader, *file);
      tensors_.emplace(entry.name, record_of(entry, *file));
    }
    ++file;
  }
  for (const auto& [name, mapped] : layout.weight_map) {
    if (!tensors_.contains(name))
      throw HfError(fmt::format("{}: maps tensor '{}' to {}, which does not hold it",
                                (dir_ / kHfIndexFile).string(), name, (dir_ / mapped).string()));
  }
}

std::vector<std::string> HfWeights::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& entry : tensors_) out.push_back(entry.first);
  return out;
}

const ckpt::TensorRecord& HfWeights::record(std::string_view name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end())
    throw HfError(fmt::format("{}: no tensor '{}' in the model's weights", dir_.string(), name));
  return it->second;
}

std::vector<std::int64_t> HfWeights::global_shape(std::string_view name) const {
  const std::vector<std::uint64_t>& shape = record(name).global_shape;
  return {shape.begin(), shape.end()};
}

ckpt::TensorDtype HfWeights::dtype(std::string_view name) const {
  return record(name).dtype;
}

const std::string& HfWeights::file(std::string_view name) const {
  return record(name).shards.front().file;
}

void HfWeights::read(std::string_view name, const TensorSlice& target, std::span<float> out) {
  const ckpt::TensorRecord& r = record(name);
  const fs::path path = dir_ / r.shards.front().file;
  if (!is_float(r.dtype))
    throw HfError(fmt::format("{}: tensor '{}' is {}; only F32, BF16, F16 and F64 load as weights",
                              path.string(), name, ckpt::dtype_name(r.dtype)));
  if (target.global_shape != global_shape(name))
    throw HfError(fmt::format("{}: tensor '{}' has shape {}, the model expects [{}]", path.string(),
                              name, shape_text(r.global_shape),
                              fmt::join(target.global_shape, ", ")));
  try {
    reader_.read(r, target, out);
  } catch (const ckpt::CheckpointError& e) {
    throw HfError(e.what());
  } catch (const Error& e) {
    throw HfError(fmt::format("{}: {}", path.string(), e.what()));
  }
}

}  // namespace lt
