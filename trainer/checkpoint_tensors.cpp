#include "trainer/checkpoint_tensors.h"

#include <bit>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace lt {
namespace {

std::vector<std::int64_t> signed_dims(const std::vector<std::uint64_t>& dims) {
  return {dims.begin(), dims.end()};
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  if (exponent == 0) {  // zero or subnormal: mantissa x 2^-24
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  const std::uint32_t bits = exponent == 31 ? sign | 0x7f800000u | (mantissa << 13)
                                            : sign | ((exponent + 112) << 23) | (mantissa << 13);
  return std::bit_cast<float>(bits);
}

// `count` elements of `dtype` in `bytes`, widened to fp32 into `out`.
void widen(ckpt::TensorDtype dtype, std::span<const std::byte> bytes, std::span<float> out) {
  const std::byte* p = bytes.data();
  for (std::size_t i = 0; i < out.size(); ++i) {
    switch (dtype) {
      case ckpt::TensorDtype::bf16: {
        std::uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        out[i] = std::bit_cast<float>(static_cast<std::uint32_t>(v) << 16);
        break;
      }
      case ckpt::TensorDtype::f16: {
        std::uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        out[i] = half_to_float(v);
        break;
      }
      case ckpt::TensorDtype::f64: {
        double v;
        std::memcpy(&v, p + 8 * i, 8);
        out[i] = static_cast<float>(v);
        break;
      }
      default:
        LT_CHECK(false, "no conversion to fp32 from " << ckpt::dtype_name(dtype));
    }
  }
}

}  // namespace

TensorSlice slice_of(const ckpt::TensorRecord& tensor, const ckpt::ShardRecord& shard) {
  TensorSlice s;
  s.global_shape = signed_dims(tensor.global_shape);
  s.local_shape = signed_dims(shard.shape);
  s.row_offset = shard.offsets.empty() ? 0 : static_cast<std::int64_t>(shard.offsets[0]);
  s.col_offset = shard.offsets.size() > 1 ? static_cast<std::int64_t>(shard.offsets[1]) : 0;
  std::int64_t elements = 1;
  for (std::int64_t d : s.local_shape) elements *= d;
  s.flat_begin = shard.elements ? static_cast<std::int64_t>(shard.elements->begin) : 0;
  s.flat_end = shard.elements ? static_cast<std::int64_t>(shard.elements->end) : elements;
  return s;
}

const ckpt::SafetensorsReader& CheckpointTensorReader::file(const std::string& name) {
  auto it = files_.find(name);
  if (it == files_.end()) {
    it = files_.emplace(name, std::make_unique<ckpt::SafetensorsReader>(dir_ / name)).first;
  }
  return *it->second;
}

void CheckpointTensorReader::read(const ckpt::TensorRecord& tensor, const TensorSlice& target,
                                  std::span<float> out) {
  std::vector<TensorSlice> pieces;
  for (const ckpt::ShardRecord& shard : tensor.shards) pieces.push_back(slice_of(tensor, shard));
  const std::size_t element = ckpt::dtype_size(tensor.dtype);
  LT_CHECK(tensor.dtype == ckpt::TensorDtype::f32 || tensor.dtype == ckpt::TensorDtype::bf16 ||
               tensor.dtype == ckpt::TensorDtype::f16 || tensor.dtype == ckpt::TensorDtype::f64,
           "tensor " << tensor.name << " is " << ckpt::dtype_name(tensor.dtype)
                     << ", not a floating-point type this build can load");
  std::vector<std::byte> staging;
  const ReadPiece read_piece = [&](std::size_t p, std::int64_t offset, std::span<float> dst) {
    const ckpt::ShardRecord& shard = tensor.shards[p];
    const ckpt::SafetensorsReader& reader = file(shard.file);
    const auto byte_offset = static_cast<std::uint64_t>(offset) * element;
    if (tensor.dtype == ckpt::TensorDtype::f32) {
      reader.read(shard.key, byte_offset, std::as_writable_bytes(dst));
      return;
    }
    staging.resize(dst.size() * element);
    reader.read(shard.key, byte_offset, staging);
    widen(tensor.dtype, staging, dst);
  };
  try {
    assemble_slice(target, pieces, read_piece, out);
  } catch (const Error& e) {
    throw Error("checkpoint tensor " + tensor.name + ": " + e.what());
  }
}

}  // namespace lt
