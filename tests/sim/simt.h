// A host emulation of the CUDA execution model for running the CUDA backend's kernels on a
// machine without a GPU (tests only). Every thread of a block is a std::thread; __syncthreads is a
// barrier over the block; warp-collective operations (shuffles, __syncwarp, and the ldmatrix and
// mma of tests/sim/flash_sim.h) exchange values through per-warp slots between two barriers;
// dynamic and static shared memory are per-block buffers. Blocks of a grid run one after another.
// Slow (thread switches at every barrier): for small shapes only.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
inline thread_local dim3 threadIdx{0, 0, 0};
inline dim3 blockIdx{0, 0, 0};
inline dim3 blockDim{1, 1, 1};
inline dim3 gridDim{1, 1, 1};

struct float2 {
  float x, y;
};
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
inline float2 make_float2(float x, float y) {
  return {x, y};
}

namespace cudasim {

struct Block {
  int threads = 0;
  std::vector<unsigned char> smem;  // dynamic shared memory
  std::unique_ptr<std::barrier<>> all;
  std::vector<std::unique_ptr<std::barrier<>>> warp;
  std::vector<std::array<std::array<std::uint64_t, 8>, 32>> slots;  // per warp, per lane
  std::mutex statics_mutex;
  std::map<const void*, std::vector<unsigned char>> statics;  // static __shared__ arrays
};
inline Block* g_block = nullptr;

inline int linear_thread() {
  return static_cast<int>(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}
inline int lane_id() {
  return linear_thread() & 31;
}
inline int warp_id() {
  return linear_thread() >> 5;
}
inline unsigned char* block_smem() {
  return g_block->smem.data();
}

// The block's copy of the static shared array tagged `tag` (n elements of T).
template <class T>
T* block_static(const void* tag, std::size_t n) {
  std::lock_guard lock(g_block->statics_mutex);
  auto& buf = g_block->statics[tag];
  if (buf.empty()) buf.assign(n * sizeof(T) + alignof(std::max_align_t), 0xCD);
  auto addr = reinterpret_cast<std::uintptr_t>(buf.data());
  addr = (addr + alignof(std::max_align_t) - 1) / alignof(std::max_align_t) *
         alignof(std::max_align_t);
  return reinterpret_cast<T*>(addr);
}

// Every lane of the warp deposits N words; returns all 32 lanes' words.
template <std::size_t N>
std::array<std::array<std::uint64_t, N>, 32> warp_exchange(const std::array<std::uint64_t, N>& v) {
  auto& slots = g_block->slots[static_cast<std::size_t>(warp_id())];
  for (std::size_t i = 0; i < N; ++i) slots[static_cast<std::size_t>(lane_id())][i] = v[i];
  g_block->warp[static_cast<std::size_t>(warp_id())]->arrive_and_wait();
  std::array<std::array<std::uint64_t, N>, 32> all{};
  for (std::size_t l = 0; l < 32; ++l)
    for (std::size_t i = 0; i < N; ++i) all[l][i] = slots[l][i];
  g_block->warp[static_cast<std::size_t>(warp_id())]->arrive_and_wait();
  return all;
}

template <class T>
std::uint64_t to_word(T v) {
  static_assert(sizeof(T) <= 8);
  std::uint64_t w = 0;
  std::memcpy(&w, &v, sizeof(T));
  return w;
}
template <class T>
T from_word(std::uint64_t w) {
  T v;
  std::memcpy(&v, &w, sizeof(T));
  return v;
}

// Runs kernel() on every thread of every block of the grid. Threads per block must be a
// multiple of 32.
inline void launch(dim3 grid, dim3 block, std::size_t smem_bytes,
                   const std::function<void()>& kernel) {
  gridDim = grid;
  blockDim = block;
  const int threads = static_cast<int>(block.x * block.y * block.z);
  const int warps = (threads + 31) / 32;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        Block b;
        b.threads = threads;
        b.smem.assign(smem_bytes + 16, 0xCD);  // garbage, as on a GPU
        b.all = std::make_unique<std::barrier<>>(threads);
        for (int w = 0; w < warps; ++w) {
          const int members = std::min(32, threads - 32 * w);
          b.warp.push_back(std::make_unique<std::barrier<>>(members));
        }
        b.slots.resize(static_cast<std::size_t>(warps));
        g_block = &b;
        blockIdx = dim3{x, y, z};
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) {
          pool.emplace_back([t, block, &kernel] {
            threadIdx = dim3{static_cast<unsigned>(t) % block.x,
                             static_cast<unsigned>(t) / block.x % block.y,
                             static_cast<unsigned>(t) / (block.x * block.y)};
            kernel();
          });
        }
        for (auto& th : pool) th.join();
        g_block = nullptr;
      }
}

// kernel<<<grid, block, smem>>>(args...) as launcher(kernel, grid, block, smem)(args...).
template <class Kernel>
struct Launcher {
  Kernel kernel;
  dim3 grid, block;
  std::size_t smem;
  template <class... Args>
  void operator()(Args&&... args) const {
    launch(grid, block, smem, [&] { kernel(args...); });
  }
};
template <class Kernel>
Launcher<Kernel> launcher(Kernel kernel, dim3 grid, dim3 block, std::size_t smem) {
  return {kernel, grid, block, smem};
}

}  // namespace cudasim

inline void __syncthreads() {
  cudasim::g_block->all->arrive_and_wait();
}
inline void __syncwarp(unsigned = 0xffffffffu) {
  cudasim::warp_exchange<1>({0});
}
template <class T>
T __shfl_xor_sync(unsigned, T v, int mask) {
  const auto all = cudasim::warp_exchange<1>({cudasim::to_word(v)});
  return cudasim::from_word<T>(all[static_cast<std::size_t>(cudasim::lane_id() ^ mask)][0]);
}
inline float atomicAdd(float* p, float v) {
  return std::atomic_ref<float>(*p).fetch_add(v);
}
inline float __uint_as_float(unsigned u) {
  return cudasim::from_word<float>(u);
}
inline unsigned __float_as_uint(float f) {
  return static_cast<unsigned>(cudasim::to_word(f));
}
