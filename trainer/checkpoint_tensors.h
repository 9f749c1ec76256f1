// The trainer's vocabulary on top of the checkpoint module (checkpoint/): what a checkpoint's
// tensors are called, how a manifest's shard records map to TensorSlices, and reading any slice
// of a saved tensor as fp32, reassembled from whatever layout wrote it.
//
// A checkpoint holds, per parameter (HuggingFace names), its fp32 master weights under the
// parameter's own name and Adam's moments under "optimizer.exp_avg.<name>" and
// "optimizer.exp_avg_sq.<name>". Every rank file stores each of its pieces under the tensor's
// name (a rank holds at most one piece of a tensor).
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "checkpoint/checkpoint.h"
#include "trainer/tensor_slice.h"

namespace lt {

inline constexpr std::string_view kFirstMomentPrefix = "optimizer.exp_avg.";
inline constexpr std::string_view kSecondMomentPrefix = "optimizer.exp_avg_sq.";

// The piece a shard record describes.
TensorSlice slice_of(const ckpt::TensorRecord& tensor, const ckpt::ShardRecord& shard);

// Reads slices of saved tensors from the rank files of one checkpoint directory (or of any
// directory of safetensors files), opening each file once.
class CheckpointTensorReader {
 public:
  explicit CheckpointTensorReader(std::filesystem::path dir) : dir_(std::move(dir)) {}

  // Fills `out` with `target`'s elements of `tensor`, converted to fp32 (F32, BF16, F16 and F64
  // sources). Throws ckpt::CheckpointError or lt::Error naming the tensor and the problem.
  void read(const ckpt::TensorRecord& tensor, const TensorSlice& target, std::span<float> out);

 private:
  const ckpt::SafetensorsReader& file(const std::string& name);

  std::filesystem::path dir_;
  std::map<std::string, std::unique_ptr<ckpt::SafetensorsReader>> files_;
};

}  // namespace lt
