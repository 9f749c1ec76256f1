// ZeRO sharding of the flat parameter groups over the replica group (every rank that holds the
// same parameters: dp x cp). Each group's flat buffer is padded to a multiple of the replica
// count, so replica rank r owns the equal slice [r * S, (r + 1) * S) of it, S = padded / R.
// This file is the one place that maps a parameter element to its owner; the optimizer,
// gradient clipping and checkpoints all go through it.
#pragma once

#include <cstdint>
#include <string>

#include "layers/model.h"

namespace lt {

// Slice [begin, begin + size) of a group's padded flat buffer.
struct FlatRange {
  std::int64_t begin = 0;
  std::int64_t size = 0;
  std::int64_t end() const { return begin + size; }
};

// Where one element of one parameter lives under ZeRO: the replica rank that owns it and its
// offset inside that rank's shard of the group.
struct ShardLocation {
  int replica_rank = 0;
  std::int64_t offset = 0;
};

// The shard of `group` that replica rank `rank` of `ranks` owns. The group must be padded to a
// multiple of `ranks` (Model's pad_to).
FlatRange shard_of(const ParameterGroup& group, int ranks, int rank);

// Owner of element `global_index` (row-major in the whole, un-tensor-parallel parameter) of
// parameter `name`, among the `ranks` replicas of this tensor-parallel rank's slice. Throws
// lt::Error for an unknown name, an index outside the parameter, or an element that another
// tensor-parallel rank holds.
ShardLocation locate(const Model& model, const std::string& name, std::int64_t global_index,
                     int ranks);

// The part of parameter `p` (flat range [p.offset, p.offset + numel)) inside `shard`: empty
// (size 0) when they do not overlap.
FlatRange overlap(const Parameter& p, const FlatRange& shard);

}  // namespace lt
