#include "optim/zero_shard.h"

#include <algorithm>

#include "core/error.h"

namespace lt {

FlatRange shard_of(const ParameterGroup& group, int ranks, int rank) {
  const std::int64_t padded = group.padded_numel();
  LT_CHECK(ranks >= 1 && rank >= 0 && rank < ranks && padded % ranks == 0,
           "group " << group.name() << " of " << padded << " elements cannot be cut into " << ranks
                    << " equal shards (rank " << rank << ")");
  const std::int64_t size = padded / ranks;
  return {rank * size, size};
}

namespace {

// The inverse of ParamSpec::global_index: the element's index in this rank's slice, or -1.
std::int64_t local_index_of(const ParamSpec& spec, std::int64_t global_index) {
  if (spec.global_shape.rank() == 0) return global_index;
  if (spec.shape.rank() == 1) {
    const std::int64_t local = global_index - spec.row_offset;
    return local >= 0 && local < spec.shape[0] ? local : -1;
  }
  const std::int64_t row = global_index / spec.global_shape[1] - spec.row_offset;
  const std::int64_t col = global_index % spec.global_shape[1] - spec.col_offset;
  if (row < 0 || row >= spec.shape[0] || col < 0 || col >= spec.shape[1]) return -1;
  return row * spec.shape[1] + col;
}

}  // namespace

ShardLocation locate(const Model& model, const std::string& name, std::int64_t global_index,
                     int ranks) {
  for (const ParameterGroup& g : model.groups()) {
    for (const Parameter& p : g.params()) {
      if (p.spec.name != name) continue;
      const Shape& whole = p.spec.global_shape.rank() > 0 ? p.spec.global_shape : p.spec.shape;
      LT_CHECK(global_index >= 0 && global_index < whole.numel(),
               "element " << global_index << " outside " << name << " " << whole.str());
      const std::int64_t local_index = local_index_of(p.spec, global_index);
      LT_CHECK(local_index >= 0, "element " << global_index << " of " << name
                                            << " is held by another tensor-parallel rank");
      const std::int64_t shard = shard_of(g, ranks, 0).size;
      const std::int64_t flat = p.offset + local_index;
      return {static_cast<int>(flat / shard), flat % shard};
    }
  }
  throw Error("no parameter '" + name + "' in the model");
}

FlatRange overlap(const Parameter& p, const FlatRange& shard) {
  const std::int64_t begin = std::max(p.offset, shard.begin);
  const std::int64_t end = std::min(p.offset + p.spec.shape.numel(), shard.end());
  return {begin, std::max<std::int64_t>(0, end - begin)};
}

}  // namespace lt
