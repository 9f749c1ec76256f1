// Fragment index arithmetic of the flash-attention kernels, free of CUDA headers so that the
// host tests (tests/test_flash_layout.cpp) check it against an emulation of ldmatrix and mma
// written from the PTX ISA. Fragments of mma.m16n8k16 (lane = 4 g + t):
//   A (16 x 16, row-major) a[0]: (g, 2t..2t+1)  a[1]: (g+8, 2t..)  a[2]: (g, 2t+8..)
//                          a[3]: (g+8, 2t+8..)                           [two bf16 per register]
//   B (16 x 8, k x n)      b[0]: (k 2t..2t+1, n g)  b[1]: (k 2t+8.., n g)
//   C (16 x 8, fp32)       c[0], c[1]: (g, 2t), (g, 2t+1)  c[2], c[3]: (g+8, 2t), (g+8, 2t+1)
// ldmatrix.x4 loads four 8x8 bf16 matrices; lanes 8i..8i+7 give the row addresses of matrix i,
// and each lane receives (row g, columns 2t, 2t+1) of every matrix (.trans: the transpose).
#pragma once

#ifdef __CUDACC__
#define LT_FLASH_HD __host__ __device__ __forceinline__
#else
#define LT_FLASH_HD inline
#endif

namespace lt::cuda::flash {

// Every tile row is padded by 8 bf16 (16 bytes): the 8 row addresses of one ldmatrix matrix then
// fall into 8 different 16-byte bank groups, so shared loads are free of bank conflicts.
constexpr int kPad = 8;

template <int D>
LT_FLASH_HD constexpr int row_stride() {
  return D + kPad;
}

// Lane-address offsets (row, column) inside a 16 x 16 bf16 block for ldmatrix.x4, such that the
// four registers come out in the order mma wants:
//  - a_*:       A operand, rows = M, columns = K                        (r = a[0..3])
//  - b_pair_*:  B operands of two n-tiles from a matrix stored [n][k] (plain load):
//               r[0], r[1] = b[0], b[1] of n-tile 0 (rows 0-7); r[2], r[3] of n-tile 1 (rows 8-15)
//  - bt_pair_*: B operands of two n-tiles from a matrix stored [k][n] (.trans load):
//               r[0], r[1] = b[0], b[1] of n-tile 0 (columns 0-7); r[2], r[3] of n-tile 1
LT_FLASH_HD int a_row(int lane) {
  return lane & 15;
}
LT_FLASH_HD int a_col(int lane) {
  return (lane >> 4) << 3;
}
LT_FLASH_HD int b_pair_row(int lane) {
  return ((lane >> 4) << 3) + (lane & 7);
}
LT_FLASH_HD int b_pair_col(int lane) {
  return ((lane >> 3) & 1) << 3;
}
//  - at_*:      A operand from a matrix stored [k][m] (.trans load): the same addresses as
//               b_pair_*, since both cut a 16 x 16 block into the same four 8 x 8 matrices
LT_FLASH_HD int at_row(int lane) {
  return b_pair_row(lane);
}
LT_FLASH_HD int at_col(int lane) {
  return b_pair_col(lane);
}
LT_FLASH_HD int bt_pair_row(int lane) {
  return (((lane >> 3) & 1) << 3) + (lane & 7);
}
LT_FLASH_HD int bt_pair_col(int lane) {
  return (lane >> 4) << 3;
}

// The A operand of a 16 x 16 block from two adjacent 16 x 8 C fragments c0 (columns 0-7) and c1
// (columns 8-15), FA2's register reuse: register r of A packs elements c_to_a_element(r) and
// c_to_a_element(r) + 1 of fragment c_to_a_fragment(r).
LT_FLASH_HD constexpr int c_to_a_fragment(int r) {
  return r >> 1;
}
LT_FLASH_HD constexpr int c_to_a_element(int r) {
  return (r & 1) * 2;
}

}  // namespace lt::cuda::flash
