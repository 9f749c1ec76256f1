// The process mesh: world = dp x cp x tp with tp fastest-varying, then cp, then dp. A rank's
// coordinates and the members of its groups are pure functions of (shape, rank), so every rank
// agrees on them without communicating.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace lt {

struct MeshShape {
  int dp = 1;
  int cp = 1;
  int tp = 1;
  int world() const { return dp * cp * tp; }
};

struct MeshCoords {
  int dp = 0;
  int cp = 0;
  int tp = 0;
};

enum class MeshAxis {
  tp,       // ranks that share (dp, cp): tensor-parallel shards of one replica
  cp,       // ranks that share (dp, tp): the context-parallel ring
  dp,       // ranks that share (cp, tp): data-parallel replicas
  replica,  // ranks that share tp: every rank holding the same parameter shard (dp x cp)
};

MeshCoords mesh_coords(const MeshShape& shape, int rank);
int mesh_rank(const MeshShape& shape, const MeshCoords& coords);
// World ranks of the group along `axis` that contains `rank`, in group-rank order.
std::vector<int> mesh_group(const MeshShape& shape, int rank, MeshAxis axis);
std::string axis_name(MeshAxis axis);

// Makes a communicator over the given world ranks (called by every member, for each group).
using CommunicatorFactory = std::function<std::unique_ptr<Communicator>(
    const std::string& name, const std::vector<int>& ranks)>;

class Mesh {
 public:
  // Throws lt::Error naming the mismatch when shape.world() != world_size.
  Mesh(const MeshShape& shape, int world_rank, int world_size, const CommunicatorFactory& factory);

  const MeshShape& shape() const { return shape_; }
  const MeshCoords& coords() const { return coords_; }
  int world_rank() const { return world_rank_; }
  Communicator& group(MeshAxis axis) const;

 private:
  MeshShape shape_;
  MeshCoords coords_;
  int world_rank_;
  std::vector<std::unique_ptr<Communicator>> groups_;  // indexed by MeshAxis
};

}  // namespace lt
