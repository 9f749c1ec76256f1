// The weights of a HuggingFace model directory in safetensors format: `model.safetensors`, or
// the shards listed by `model.safetensors.index.json` ({"weight_map": {tensor: file}}). Every
// file's header is validated when the directory is opened, and the index is checked against the
// files (each mapped tensor present in its file, each tensor of a listed file mapped to it), so
// that a damaged or mismatched directory is refused before anything is loaded. Any slice of a
// tensor can then be read as fp32 (F32, BF16, F16, F64 sources): each tensor is one whole-tensor
// shard of the checkpoint vocabulary, so a tensor-parallel rank reads just its slice.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "trainer/checkpoint_tensors.h"
#include "trainer/tensor_slice.h"

namespace lt {

inline constexpr std::string_view kHfWeightsFile = "model.safetensors";
inline constexpr std::string_view kHfIndexFile = "model.safetensors.index.json";

class HfWeights {
 public:
  // Opens and checks `dir`. Throws HfError naming the directory or file and the problem.
  explicit HfWeights(std::filesystem::path dir);

  const std::filesystem::path& dir() const { return dir_; }
  // Every tensor's name, sorted.
  std::vector<std::string> names() const;
  bool contains(std::string_view name) const { return tensors_.contains(name); }
  // The tensor's shape and dtype as stored; an unknown name is an HfError.
  std::vector<std::int64_t> global_shape(std::string_view name) const;
  ckpt::TensorDtype dtype(std::string_view name) const;
  // The file holding the tensor (a plain name inside dir()).
  const std::string& file(std::string_view name) const;

  // Fills `out` (target.size() elements) with `target`'s elements of tensor `name`, as fp32.
  // target.global_shape must be the stored shape. Throws HfError naming the tensor, the file and
  // the problem (unknown tensor, another shape, a dtype that is not floating point).
  void read(std::string_view name, const TensorSlice& target, std::span<float> out);

 private:
  const ckpt::TensorRecord& record(std::string_view name) const;

  std::filesystem::path dir_;
  std::map<std::string, ckpt::TensorRecord, std::less<>> tensors_;
  CheckpointTensorReader reader_;
};

// A slice covering all of a tensor of `shape` (1 or 2 dims): what a single process reads.
TensorSlice whole_tensor(const std::vector<std::int64_t>& shape);

}  // namespace lt
