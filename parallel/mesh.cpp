#include "parallel/mesh.h"

#include "core/error.h"

namespace lt {

MeshCoords mesh_coords(const MeshShape& s, int rank) {
  return MeshCoords{rank / (s.tp * s.cp), (rank / s.tp) % s.cp, rank % s.tp};
}

int mesh_rank(const MeshShape& s, const MeshCoords& c) {
  return (c.dp * s.cp + c.cp) * s.tp + c.tp;
}

std::vector<int> mesh_group(const MeshShape& s, int rank, MeshAxis axis) {
  const MeshCoords me = mesh_coords(s, rank);
  std::vector<int> ranks;
  switch (axis) {
    case MeshAxis::tp:
      for (int t = 0; t < s.tp; ++t) ranks.push_back(mesh_rank(s, {me.dp, me.cp, t}));
      break;
    case MeshAxis::cp:
      for (int c = 0; c < s.cp; ++c) ranks.push_back(mesh_rank(s, {me.dp, c, me.tp}));
      break;
    case MeshAxis::dp:
      for (int d = 0; d < s.dp; ++d) ranks.push_back(mesh_rank(s, {d, me.cp, me.tp}));
      break;
    case MeshAxis::replica:
      for (int d = 0; d < s.dp; ++d)
        for (int c = 0; c < s.cp; ++c) ranks.push_back(mesh_rank(s, {d, c, me.tp}));
      break;
  }
  return ranks;
}

std::string axis_name(MeshAxis axis) {
  switch (axis) {
    case MeshAxis::tp:
      return "tp";
    case MeshAxis::cp:
      return "cp";
    case MeshAxis::dp:
      return "dp";
    case MeshAxis::replica:
      return "replica";
  }
  return "?";
}

Mesh::Mesh(const MeshShape& shape, int world_rank, int world_size,
           const CommunicatorFactory& factory)
    : shape_(shape), world_rank_(world_rank) {
  LT_CHECK(shape.dp >= 1 && shape.cp >= 1 && shape.tp >= 1, "mesh dimensions must be >= 1 (dp "
                                                                << shape.dp << ", cp " << shape.cp
                                                                << ", tp " << shape.tp << ")");
  LT_CHECK(shape.world() == world_size, "parallel.dp x parallel.cp x parallel.tp = "
                                            << shape.dp << " x " << shape.cp << " x " << shape.tp
                                            << " = " << shape.world() << " but the job has "
                                            << world_size << " ranks");
  coords_ = mesh_coords(shape, world_rank);
  // Every rank creates its groups in the same order, so collective creation calls match up.
  for (MeshAxis axis : {MeshAxis::tp, MeshAxis::cp, MeshAxis::dp, MeshAxis::replica}) {
    groups_.push_back(factory(axis_name(axis), mesh_group(shape, world_rank, axis)));
  }
}

Communicator& Mesh::group(MeshAxis axis) const {
  return *groups_[static_cast<std::size_t>(axis)];
}

}  // namespace lt
