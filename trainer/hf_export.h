// Exporting a checkpoint as a HuggingFace model directory: config.json for transformers'
// LlamaForCausalLM (Qwen2ForCausalLM when the model has q/k/v biases) and the weights under the
// HF parameter names in model.safetensors, or in model-0000K-of-0000N.safetensors shards listed
// by model.safetensors.index.json when they exceed the shard size. Only the model's weights are
// exported (the fp32 master copy, optionally rounded to bf16), never the optimizer state.
//
// Each tensor is reassembled from whatever layout saved it (tp slices, ZeRO ranges) piece by
// piece while its file is written, so memory stays bounded by one write piece, whatever the
// model's size. The directory is written as OUT.tmp and renamed into place when complete: an
// interrupted export leaves no half-written OUT.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "layers/model_config.h"

namespace lt {

struct ExportOptions {
  // F32 (lossless: the checkpoint's master weights) or BF16 (half the size, rounded to nearest
  // even). F32 by default so that an export loses nothing unless asked to.
  ckpt::TensorDtype dtype = ckpt::TensorDtype::f32;
  // Larger totals are split into shards of at most this many bytes (a tensor larger than this
  // gets a shard of its own). transformers' default, "5GB".
  std::uint64_t max_shard_bytes = 5'000'000'000;
  // Replace an existing non-empty output directory (otherwise an HfError).
  bool force = false;
};

struct ExportSummary {
  std::filesystem::path checkpoint;  // the step directory exported
  std::int64_t step = 0;
  std::vector<std::string> files;  // written into the output directory, config.json first
  std::size_t tensors = 0;
  std::uint64_t tensor_bytes = 0;  // the weights' bytes (the index's total_size)
};

// One weight of the HF checkpoint: its name and shape.
struct HfTensorSpec {
  std::string name;
  std::vector<std::int64_t> shape;
};

// The model's weights under their HF names, in the order they are exported (embedding, each
// layer, final norm, LM head unless tied).
std::vector<HfTensorSpec> hf_tensor_specs(const ModelConfig& model);

// The config.json text for `model` trained at `seq_len` tokens, with weights stored as `dtype`.
std::string hf_config_json(const ModelConfig& model, std::int64_t seq_len, ckpt::TensorDtype dtype);

// Exports `checkpoint` (a step_N directory, or a checkpoint root: its newest intact checkpoint,
// each one skipped reported through `warn`) into the directory `out`. The checkpoint is verified
// first. Throws HfError for a missing, damaged or incomplete checkpoint and for an existing
// non-empty `out` without options.force; ConfigError when the checkpoint's config is invalid.
ExportSummary export_hf(const std::filesystem::path& checkpoint, const std::filesystem::path& out,
                        const ExportOptions& options,
                        const std::function<void(const std::string&)>& warn = {});

}  // namespace lt
