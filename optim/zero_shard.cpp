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

ShardLocation locate(const Model& model, const std::string& name, std::int64_t local_index,
                     int ranks) {
  for (const ParameterGroup& g : model.groups()) {
    for (const Parameter& p : g.params()) {
      if (p.spec.name != name) continue;
      LT_CHECK(local_index >= 0 && local_index < p.spec.shape.numel(),
               "element " << local_index << " outside " << name << " " << p.spec.shape.str());
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
