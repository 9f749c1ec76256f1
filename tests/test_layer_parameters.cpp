// Parameters are generated element by element from their global index: a shard of a parameter
// holds exactly the values of the same slice of the unsharded parameter.
#include <gtest/gtest.h>

#include "layers/parameter.h"

namespace lt {
namespace {

TEST(Parameters, ShardsHoldTheSlicesOfTheGlobalTensor) {
  ParamSpec whole{"model.layers.0.mlp.up_proj.weight", Shape{12, 8}, Init::normal, 0.02};
  ParameterGroup full("full", {whole}, DType::f32, DType::f32);
  full.initialize(42);
  const float* w = full.values().data<float>();
  // Rows 4..7 (a column-parallel shard) and columns 2..5 (a row-parallel shard).
  ParamSpec rows = whole, cols = whole;
  rows.shape = Shape{4, 8};
  rows.global_shape = Shape{12, 8};
  rows.row_offset = 4;
  cols.shape = Shape{12, 4};
  cols.global_shape = Shape{12, 8};
  cols.col_offset = 2;
  ParameterGroup row_shard("rows", {rows}, DType::f32, DType::f32);
  ParameterGroup col_shard("cols", {cols}, DType::f32, DType::f32);
  row_shard.initialize(42);
  col_shard.initialize(42);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 8; ++j)
      EXPECT_EQ(row_shard.values().data<float>()[i * 8 + j], w[(4 + i) * 8 + j]);
  for (int i = 0; i < 12; ++i)
    for (int j = 0; j < 4; ++j)
      EXPECT_EQ(col_shard.values().data<float>()[i * 4 + j], w[i * 8 + 2 + j]);
}

TEST(Parameters, InitDependsOnSeedAndName) {
  ParameterGroup a("a", {{"x", Shape{16}, Init::normal, 1.0}}, DType::f32, DType::f32);
  ParameterGroup b("b", {{"y", Shape{16}, Init::normal, 1.0}}, DType::f32, DType::f32);
  ParameterGroup c("c", {{"x", Shape{16}, Init::normal, 1.0}}, DType::f32, DType::f32);
  a.initialize(1);
  b.initialize(1);
  c.initialize(2);
  EXPECT_NE(a.values().data<float>()[3], b.values().data<float>()[3]);
  EXPECT_NE(a.values().data<float>()[3], c.values().data<float>()[3]);
  ParameterGroup again("again", {{"x", Shape{16}, Init::normal, 1.0}}, DType::bf16, DType::f32);
  again.initialize(1);
  EXPECT_EQ(again.values().data<bf16>()[3].bits, bf16(a.values().data<float>()[3]).bits)
      << "bf16 weights round the same values";
}

}  // namespace
}  // namespace lt
