// Mesh coordinates and groups: tp fastest, then cp, then dp.
#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "parallel/mesh.h"
#include "parallel/self_communicator.h"

namespace lt {
namespace {

TEST(Mesh, CoordinatesRoundTripWithTpFastest) {
  const MeshShape s{2, 3, 2};  // dp, cp, tp
  for (int r = 0; r < s.world(); ++r) EXPECT_EQ(mesh_rank(s, mesh_coords(s, r)), r);
  const MeshCoords c = mesh_coords(s, 7);  // 7 = (1 * 3 + 0) * 2 + 1
  EXPECT_EQ(c.dp, 1);
  EXPECT_EQ(c.cp, 0);
  EXPECT_EQ(c.tp, 1);
}

TEST(Mesh, GroupsPartitionTheWorld) {
  const MeshShape s{2, 2, 2};
  EXPECT_EQ(mesh_group(s, 5, MeshAxis::tp), (std::vector<int>{4, 5}));
  EXPECT_EQ(mesh_group(s, 5, MeshAxis::cp), (std::vector<int>{5, 7}));
  EXPECT_EQ(mesh_group(s, 5, MeshAxis::dp), (std::vector<int>{1, 5}));
  EXPECT_EQ(mesh_group(s, 5, MeshAxis::replica), (std::vector<int>{1, 3, 5, 7}));
  for (MeshAxis axis : {MeshAxis::tp, MeshAxis::cp, MeshAxis::dp, MeshAxis::replica}) {
    std::set<std::vector<int>> groups;
    int members = 0;
    for (int r = 0; r < s.world(); ++r) {
      const auto g = mesh_group(s, r, axis);
      EXPECT_NE(std::find(g.begin(), g.end(), r), g.end());
      if (groups.insert(g).second) members += static_cast<int>(g.size());
    }
    EXPECT_EQ(members, s.world()) << axis_name(axis) << " groups must not overlap";
  }
}

TEST(Mesh, RejectsAShapeThatDoesNotMatchTheWorld) {
  auto factory = [](const std::string& name, const std::vector<int>& ranks) {
    return make_self_communicator(name, ranks.front());
  };
  try {
    Mesh mesh(MeshShape{1, 2, 2}, 0, 2, factory);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1 x 2 x 2 = 4 but the job has 2 ranks"),
              std::string::npos)
        << e.what();
  }
  Mesh single(MeshShape{}, 0, 1, factory);
  EXPECT_EQ(single.group(MeshAxis::dp).size(), 1);
}

}  // namespace
}  // namespace lt
