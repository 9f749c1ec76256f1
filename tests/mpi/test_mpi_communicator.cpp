// The MPI communicator under mpirun (2, 3 and 4 ranks). Every rank runs every test in the same
// order; each rank can compute every member's input from a formula, so results are checked
// against values computed locally. EXPECT (not ASSERT) keeps the ranks in step after a failure;
// a rank left waiting hits the deadline, which ends the job non-zero.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "core/tensor.h"
#include "parallel/mpi_communicator.h"
#include "parallel/runtime.h"

namespace lt {
namespace {

constexpr double kTimeout = 60.0;  // generous: several ranks share two cores with other work
// Small enough that the test tensors are cut into many segments and reduction slices.
constexpr std::size_t kTinyMessages = 24;

DistributedRuntime* g_runtime = nullptr;
Communicator* g_world = nullptr;
Communicator* g_sliced = nullptr;  // the world again, with kTinyMessages

Communicator& world() {
  return *g_world;
}

// Both flavours of the world: the default message size and tiny segments/slices.
std::vector<Communicator*> worlds() {
  return {g_world, g_sliced};
}

// --- inputs every rank can compute for every member ---------------------------------------

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Full-mantissa values of varied magnitude: sums of these depend on the order of addition.
double noise(int rank, std::int64_t i) {
  const std::uint64_t h =
      mix(static_cast<std::uint64_t>(rank) * 1000003u + static_cast<std::uint64_t>(i));
  const double unit =
      static_cast<double>(static_cast<std::int64_t>(h >> 40) - (1 << 23)) / (1 << 23);
  return std::ldexp(unit, static_cast<int>(h % 7) - 3);
}

// Small integers: exact in every dtype whatever the order of addition.
double small(int rank, std::int64_t i) {
  return static_cast<double>((rank * 7 + i * 3) % 17 - 8);
}

template <class T>
T from_double(double v) {
  if constexpr (std::is_same_v<T, bf16>) {
    return bf16(static_cast<float>(v));
  } else {
    return static_cast<T>(v);
  }
}

template <class T>
double to_double(T v) {
  if constexpr (std::is_same_v<T, bf16>) {
    return static_cast<double>(static_cast<float>(v));
  } else {
    return static_cast<double>(v);
  }
}

template <class T>
Tensor make(std::int64_t n, const std::function<double(std::int64_t)>& value) {
  Tensor t = Tensor::empty(Shape{n}, dtype_of<T>(), MemCategory::activations);
  T* p = static_cast<T*>(t.raw());
  for (std::int64_t i = 0; i < n; ++i) p[i] = from_double<T>(value(i));
  return t;
}

template <class T>
double at(const Tensor& t, std::int64_t i) {
  return to_double(static_cast<const T*>(t.raw())[i]);
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Compares element by element and reports the first mismatch only (no flood of failures).
template <class T>
void expect_values(const Tensor& t, const std::function<double(std::int64_t)>& expected,
                   const std::string& what) {
  std::int64_t wrong = 0;
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    const double want = expected(i);
    const double got = at<T>(t, i);
    if (got == want || (std::isnan(got) && std::isnan(want))) continue;
    if (wrong++ == 0)
      ADD_FAILURE() << what << ": element " << i << " is " << got << ", want " << want;
  }
  EXPECT_EQ(wrong, 0) << what << " (" << dtype_name(dtype_of<T>()) << ")";
}

double reduce_over(const std::vector<int>& members, ReduceOp op,
                   const std::function<double(int)>& value) {
  double acc = op == ReduceOp::sum ? 0.0 : -std::numeric_limits<double>::infinity();
  for (int m : members) acc = op == ReduceOp::sum ? acc + value(m) : std::max(acc, value(m));
  return acc;
}

std::vector<int> group_ranks(const Communicator& comm) {
  std::vector<int> r(static_cast<std::size_t>(comm.size()));
  std::iota(r.begin(), r.end(), 0);
  return r;
}

std::string label(const Communicator& comm, std::int64_t n, const char* op) {
  return std::string(op) + " of " + std::to_string(n) + " on '" + comm.name() + "' (size " +
         std::to_string(comm.size()) + ")";
}

// Runs f<T> for every dtype.
template <template <class> class F, class... Args>
void for_each_dtype(Args&&... args) {
  F<float>::run(args...);
  F<double>::run(args...);
  F<bf16>::run(args...);
  F<std::int32_t>::run(args...);
}

// --- basics --------------------------------------------------------------------------------

TEST(MpiCommunicator, WorldDescribesItself) {
  EXPECT_EQ(world().size(), g_runtime->world_size());
  EXPECT_EQ(world().rank(), g_runtime->rank());
  EXPECT_EQ(world().name(), "world");
  EXPECT_EQ(world().world_ranks(), group_ranks(world()));
}

TEST(MpiCommunicator, CreationRejectsBadMemberLists) {
  const int me = g_runtime->rank();
  const int n = g_runtime->world_size();
  // All checked locally, before any message: no rank is left waiting.
  if (n > 1) {
    EXPECT_THROW(make_mpi_communicator("x", {(me + 1) % n}, kTimeout), Error);
  }
  EXPECT_THROW(make_mpi_communicator("x", {me, me}, kTimeout), Error);
  EXPECT_THROW(make_mpi_communicator("x", {me, n}, kTimeout), Error);
  EXPECT_THROW(make_mpi_communicator("x", {}, kTimeout), Error);
  EXPECT_THROW(make_mpi_communicator("x", {me}, 0.0), Error);
  EXPECT_THROW(make_mpi_communicator("x", {me}, kTimeout, 0), Error);
}

TEST(MpiCommunicator, GroupOfOneIsLocal) {
  auto self = make_mpi_communicator("self", {g_runtime->rank()}, kTimeout);
  EXPECT_EQ(self->size(), 1);
  Tensor t = make<float>(5, [](std::int64_t i) { return static_cast<double>(i); });
  self->all_reduce(t);
  expect_values<float>(
      t, [](std::int64_t i) { return static_cast<double>(i); }, "self");
  Tensor out = Tensor::empty(Shape{5}, DType::f32, MemCategory::activations);
  self->reduce_scatter(t, out);
  EXPECT_TRUE(same_bytes(t, out));
  self->barrier();
}

// --- all_reduce ----------------------------------------------------------------------------

template <class T>
struct AllReduceSmall {
  static void run(Communicator& comm, std::int64_t n, ReduceOp op) {
    const int me = comm.rank();
    Tensor t = make<T>(n, [&](std::int64_t i) { return small(me, i); });
    comm.all_reduce(t, op);
    expect_values<T>(
        t,
        [&](std::int64_t i) {
          return reduce_over(group_ranks(comm), op, [&](int r) { return small(r, i); });
        },
        label(comm, n, op == ReduceOp::sum ? "all_reduce sum" : "all_reduce max"));
  }
};

TEST(MpiCommunicator, AllReduceSumIsExactForEveryDtype) {
  for (Communicator* comm : worlds()) {
    for (std::int64_t n : {1, 2, 5, 1003}) for_each_dtype<AllReduceSmall>(*comm, n, ReduceOp::sum);
  }
}

TEST(MpiCommunicator, AllReduceMaxForEveryDtype) {
  for (Communicator* comm : worlds()) {
    for (std::int64_t n : {1, 5, 1003}) for_each_dtype<AllReduceSmall>(*comm, n, ReduceOp::max);
  }
}

TEST(MpiCommunicator, AllReduceMaxPropagatesNaN) {
  const int last = world().size() - 1;
  Tensor t = make<float>(4, [&](std::int64_t i) {
    return world().rank() == last && i == 2 ? std::nan("") : small(world().rank(), i);
  });
  world().all_reduce(t, ReduceOp::max);
  EXPECT_TRUE(std::isnan(at<float>(t, 2)));
  EXPECT_FALSE(std::isnan(at<float>(t, 1)));
}

TEST(MpiCommunicator, AllReduceSumWrapsI32) {
  Tensor t = make<std::int32_t>(1, [](std::int64_t) { return 0; });
  static_cast<std::int32_t*>(t.raw())[0] = std::numeric_limits<std::int32_t>::max();
  world().all_reduce(t);
  const auto expected = static_cast<std::int32_t>(
      static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max()) *
      static_cast<std::uint32_t>(world().size()));
  EXPECT_EQ(static_cast<std::int32_t*>(t.raw())[0], expected);
}

// Element i of chunk c (balanced chunks, longer ones first) is ((x[c+1] + x[c+2]) + ...) + x[c]
// accumulated in compute_t<T> and rounded once: the order documented in mpi_communicator.h.
template <class T>
struct RingOrder {
  static void run(Communicator& comm, std::int64_t n) {
    using W = compute_t<T>;
    const int size = comm.size();
    const auto x = [](int r, std::int64_t i) { return from_double<T>(noise(r, i)); };
    Tensor t = make<T>(n, [&](std::int64_t i) { return to_double(x(comm.rank(), i)); });
    comm.all_reduce(t);
    const std::int64_t base = n / size;
    const std::int64_t extra = n % size;
    const auto chunk_of = [&](std::int64_t i) {
      const std::int64_t boundary = extra * (base + 1);
      return static_cast<int>(i < boundary ? i / (base + 1) : extra + (i - boundary) / base);
    };
    Tensor expected = make<T>(n, [&](std::int64_t i) {
      const int c = chunk_of(i);
      W acc = static_cast<W>(x((c + 1) % size, i));
      for (int k = 2; k <= size; ++k) acc = acc + static_cast<W>(x((c + k) % size, i));
      return to_double(from_compute<T>(acc));
    });
    EXPECT_TRUE(same_bytes(t, expected))
        << label(comm, n, "ring-ordered all_reduce") << " " << dtype_name(dtype_of<T>());
  }
};

TEST(MpiCommunicator, AllReduceFollowsTheDocumentedRingOrder) {
  for (Communicator* comm : worlds()) {
    for (std::int64_t n : {1, 7, 1001}) {
      RingOrder<float>::run(*comm, n);
      RingOrder<double>::run(*comm, n);
      RingOrder<bf16>::run(*comm, n);
    }
  }
}

template <class T>
struct BitIdentical {
  static void run(Communicator& comm) {
    constexpr std::int64_t n = 777;
    const int size = comm.size();
    Tensor first;
    for (int repeat = 0; repeat < 3; ++repeat) {
      Tensor t = make<T>(n, [&](std::int64_t i) { return noise(comm.rank() + 11, i) * 1e3; });
      comm.all_reduce(t);
      if (repeat == 0) first = t;
      EXPECT_TRUE(same_bytes(t, first)) << "repeat " << repeat << " differs from the first";
      Tensor everyone = Tensor::empty(Shape{size * n}, dtype_of<T>(), MemCategory::activations);
      comm.all_gather(t, everyone);
      for (int r = 0; r < size; ++r) {
        EXPECT_TRUE(same_bytes(everyone.flat_view(r * n, Shape{n}), t))
            << "rank " << r << "'s result differs from rank " << comm.rank() << "'s";
      }
    }
  }
};

TEST(MpiCommunicator, AllReduceIsBitIdenticalAcrossMembersAndRepeats) {
  for (Communicator* comm : worlds()) {
    BitIdentical<float>::run(*comm);
    BitIdentical<double>::run(*comm);
    BitIdentical<bf16>::run(*comm);
  }
}

TEST(MpiCommunicator, ReductionScratchIsCountedAsCommunication) {
  if (world().size() < 2) GTEST_SKIP() << "needs two ranks";
  MemoryTracker& tracker = MemoryTracker::for_device(Device::cpu);
  Tensor t = make<bf16>(4096, [&](std::int64_t i) { return small(world().rank(), i); });
  const std::int64_t before = tracker.snapshot().current_of(MemCategory::communication);
  tracker.reset_peaks();
  world().all_reduce(t);
  const MemorySnapshot after = tracker.snapshot();
  EXPECT_EQ(after.current_of(MemCategory::communication), before) << "scratch not released";
  EXPECT_GT(after.peak_of(MemCategory::communication), before) << "scratch not tagged";
}

// --- reduce_scatter ------------------------------------------------------------------------

template <class T>
struct ReduceScatter {
  static void run(Communicator& comm, std::int64_t chunk, ReduceOp op, bool in_place) {
    const int me = comm.rank();
    const int size = comm.size();
    Tensor input = make<T>(size * chunk, [&](std::int64_t i) { return small(me, i); });
    Tensor output = in_place ? input.flat_view(me * chunk, Shape{chunk})
                             : Tensor::empty(Shape{chunk}, dtype_of<T>(), MemCategory::activations);
    comm.reduce_scatter(input, output, op);
    expect_values<T>(
        output,
        [&](std::int64_t i) {
          return reduce_over(group_ranks(comm), op,
                             [&](int r) { return small(r, me * chunk + i); });
        },
        label(comm, chunk, in_place ? "in-place reduce_scatter" : "reduce_scatter"));
  }
};

TEST(MpiCommunicator, ReduceScatterGivesEachMemberItsChunk) {
  for (Communicator* comm : worlds()) {
    for (std::int64_t chunk : {1, 5, 33}) {
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) {
        for_each_dtype<ReduceScatter>(*comm, chunk, op, false);
        for_each_dtype<ReduceScatter>(*comm, chunk, op, true);
      }
    }
  }
}

TEST(MpiCommunicator, ReduceScatterRejectsSizesThatAreNotSizeTimesChunk) {
  const std::int64_t n = world().size();
  const auto f32 = [](std::int64_t count) {
    return Tensor::zeros(Shape{count}, DType::f32, MemCategory::activations);
  };
  // The contract: input.numel() == size() * output.numel(), same dtype, contiguous.
  EXPECT_THROW(world().reduce_scatter(f32(n * 3 + 1), f32(3)), Error);
  EXPECT_THROW(world().reduce_scatter(f32(n * 3), f32(4)), Error);
  EXPECT_THROW(world().reduce_scatter(
                   f32(n * 3), Tensor::zeros(Shape{3}, DType::f64, MemCategory::activations)),
               Error);
  Tensor wide = Tensor::zeros(Shape{n * 3, 2}, DType::f32, MemCategory::activations);
  EXPECT_THROW(world().reduce_scatter(wide.columns(0, 1), f32(3)), Error);
  EXPECT_THROW(world().ireduce_scatter(f32(n * 3 + 1), f32(3)), Error);
  try {
    world().reduce_scatter(f32(n * 3 + 1), f32(3));
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("reduce_scatter on group 'world'"), std::string::npos) << message;
    EXPECT_NE(message.find("chunks"), std::string::npos) << message;
  }
}

// --- all_gather ----------------------------------------------------------------------------

template <class T>
struct AllGather {
  static void run(Communicator& comm, std::int64_t chunk, bool in_place) {
    const int me = comm.rank();
    const int size = comm.size();
    Tensor output = Tensor::zeros(Shape{size * chunk}, dtype_of<T>(), MemCategory::activations);
    Tensor input = in_place ? output.flat_view(me * chunk, Shape{chunk})
                            : Tensor::empty(Shape{chunk}, dtype_of<T>(), MemCategory::activations);
    T* p = static_cast<T*>(input.raw());
    for (std::int64_t i = 0; i < chunk; ++i) p[i] = from_double<T>(small(me, i) + me);
    comm.all_gather(input, output);
    expect_values<T>(
        output,
        [&](std::int64_t i) {
          const int r = static_cast<int>(i / chunk);
          return small(r, i % chunk) + r;
        },
        label(comm, chunk, in_place ? "in-place all_gather" : "all_gather"));
  }
};

TEST(MpiCommunicator, AllGatherCollectsEveryMembersChunk) {
  for (Communicator* comm : worlds()) {
    for (std::int64_t chunk : {0, 1, 5, 33}) {
      for_each_dtype<AllGather>(*comm, chunk, false);
      for_each_dtype<AllGather>(*comm, chunk, true);
    }
  }
}

TEST(MpiCommunicator, AllGatherRejectsSizesThatAreNotSizeTimesChunk) {
  const std::int64_t n = world().size();
  const auto i32 = [](std::int64_t count) {
    return Tensor::zeros(Shape{count}, DType::i32, MemCategory::activations);
  };
  EXPECT_THROW(world().all_gather(i32(3), i32(n * 3 + 1)), Error);
  EXPECT_THROW(world().iall_gather(i32(3), i32(n * 2)), Error);
  Tensor out = i32(n * 3);
  // Overlapping the output other than as this member's own chunk.
  if (n > 1) {
    EXPECT_THROW(world().all_gather(out.flat_view(world().rank() == 0 ? 1 : 0, Shape{3}), out),
                 Error);
  }
}

// --- broadcast -----------------------------------------------------------------------------

template <class T>
struct Broadcast {
  static void run(Communicator& comm, int root, std::int64_t n) {
    const int me = comm.rank();
    Tensor t =
        make<T>(n, [&](std::int64_t i) { return me == root ? small(root, i) + root : -1.0; });
    comm.broadcast(t, root);
    expect_values<T>(
        t, [&](std::int64_t i) { return small(root, i) + root; },
        label(comm, n, "broadcast") + " from " + std::to_string(root));
  }
};

TEST(MpiCommunicator, BroadcastFromEveryRoot) {
  for (Communicator* comm : worlds()) {
    for (int root = 0; root < comm->size(); ++root) {
      for (std::int64_t n : {1, 100}) for_each_dtype<Broadcast>(*comm, root, n);
    }
  }
  Tensor t = Tensor::zeros(Shape{1}, DType::f32, MemCategory::activations);
  EXPECT_THROW(world().broadcast(t, world().size()), Error);
  EXPECT_THROW(world().broadcast(t, -1), Error);
}

// --- point to point ------------------------------------------------------------------------

// Blocking sends in a chain (0 sends first, every other rank receives first), so it cannot
// deadlock even for messages too large to be buffered.
TEST(MpiCommunicator, SendRecvAroundTheRing) {
  const int size = world().size();
  const int me = world().rank();
  if (size < 2) GTEST_SKIP() << "needs two ranks";
  for (Communicator* comm : worlds()) {
    // 400 KB goes in one piece on the default communicator, far past the eager limit; tiny
    // messages cut 4 KB into 167 segments.
    for (const std::int64_t n : {3, comm == g_sliced ? 1000 : 100000}) {
      const int left = (me - 1 + size) % size;
      const int right = (me + 1) % size;
      Tensor out = make<std::int32_t>(n, [&](std::int64_t i) { return me * 1000 + i % 997; });
      Tensor in = Tensor::zeros(Shape{n}, DType::i32, MemCategory::activations);
      if (me == 0) comm->send(out, right, 5);
      comm->recv(in, left, 5);
      if (me != 0) comm->send(out, right, 5);
      expect_values<std::int32_t>(
          in, [&](std::int64_t i) { return left * 1000 + i % 997; }, label(*comm, n, "send/recv"));
    }
  }
  Tensor t = Tensor::zeros(Shape{1}, DType::f32, MemCategory::activations);
  EXPECT_THROW(world().send(t, size), Error);
  EXPECT_THROW(world().irecv(t, -1), Error);
  EXPECT_THROW(world().isend(t, 0, -3), Error);
}

// Messages with the same peer and tag arrive in the order they were issued.
TEST(MpiCommunicator, MessagesWithOneTagKeepTheirOrder) {
  const int size = world().size();
  const int me = world().rank();
  if (size < 2) GTEST_SKIP() << "needs two ranks";
  std::vector<Tensor> out, in;
  std::vector<std::unique_ptr<CommHandle>> handles;
  for (int k = 0; k < 4; ++k) {
    out.push_back(make<float>(50, [&](std::int64_t i) { return k * 100 + i; }));
    in.push_back(Tensor::zeros(Shape{50}, DType::f32, MemCategory::activations));
    handles.push_back(g_sliced->irecv(in.back(), (me - 1 + size) % size, 9));
  }
  for (int k = 0; k < 4; ++k)
    handles.push_back(g_sliced->isend(out[static_cast<std::size_t>(k)], (me + 1) % size, 9));
  for (auto& h : handles) h->wait();
  for (int k = 0; k < 4; ++k) {
    expect_values<float>(
        in[static_cast<std::size_t>(k)], [&](std::int64_t i) { return k * 100 + i; },
        "message " + std::to_string(k));
  }
}

// The progress thread moves messages while the caller computes: the handles report completion
// before wait() is ever called. (test() only reads a flag; it does not drive MPI.)
TEST(MpiCommunicator, IsendIrecvProgressWhileTheCallerComputes) {
  const int size = world().size();
  const int me = world().rank();
  if (size < 2) GTEST_SKIP() << "needs two ranks";
  constexpr std::int64_t n = 1 << 20;  // 4 MiB: far beyond MPI's eager limit
  Tensor out = make<float>(n, [&](std::int64_t i) { return me + i % 1000; });
  Tensor in = Tensor::zeros(Shape{n}, DType::f32, MemCategory::activations);
  auto recv = world().irecv(in, (me - 1 + size) % size, 1);
  auto send = world().isend(out, (me + 1) % size, 1);
  double work = 0;
  const auto start = std::chrono::steady_clock::now();
  while (!(recv->test() && send->test()) &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(30)) {
    for (int i = 0; i < 20000; ++i) work += std::sqrt(static_cast<double>(i) + work * 1e-9);
  }
  EXPECT_TRUE(recv->test() && send->test()) << "no progress while computing (work " << work << ")";
  recv->wait();
  send->wait();
  const int left = (me - 1 + size) % size;
  expect_values<float>(
      in, [&](std::int64_t i) { return left + i % 1000; }, "overlapped irecv");
}

TEST(MpiCommunicator, DroppedHandlesWaitForTheirOperation) {
  const int size = world().size();
  const int me = world().rank();
  if (size < 2) GTEST_SKIP() << "needs two ranks";
  Tensor out = make<double>(300, [&](std::int64_t i) { return me * 0.5 + i; });
  Tensor in = Tensor::zeros(Shape{300}, DType::f64, MemCategory::activations);
  {
    auto recv = world().irecv(in, (me - 1 + size) % size, 2);
    auto send = world().isend(out, (me + 1) % size, 2);
  }  // destroyed unfinished: they wait
  const int left = (me - 1 + size) % size;
  expect_values<double>(
      in, [&](std::int64_t i) { return left * 0.5 + i; }, "dropped handle");
}

// --- non-blocking collectives --------------------------------------------------------------

TEST(MpiCommunicator, NonBlockingCollectivesOverlapEachOtherAndLocalWork) {
  for (Communicator* comm : worlds()) {
    const int me = comm->rank();
    const int size = comm->size();
    const std::vector<int> all = group_ranks(*comm);
    constexpr std::int64_t chunk = 37;
    Tensor reduced = make<float>(1000, [&](std::int64_t i) { return small(me, i); });
    Tensor scatter_in = make<bf16>(size * chunk, [&](std::int64_t i) { return small(me, i); });
    Tensor scatter_out = Tensor::empty(Shape{chunk}, DType::bf16, MemCategory::activations);
    Tensor gather_in = make<std::int32_t>(chunk, [&](std::int64_t i) { return me * 100 + i; });
    Tensor gather_out = Tensor::empty(Shape{size * chunk}, DType::i32, MemCategory::activations);
    auto h1 = comm->iall_reduce(reduced);
    auto h2 = comm->ireduce_scatter(scatter_in, scatter_out, ReduceOp::max);
    auto h3 = comm->iall_gather(gather_in, gather_out);
    double work = 0;
    for (int i = 0; i < 200000; ++i) work += std::sqrt(static_cast<double>(i));
    EXPECT_GT(work, 0);
    h3->wait();
    h2->wait();
    while (!h1->test()) std::this_thread::yield();
    h1->wait();
    expect_values<float>(
        reduced,
        [&](std::int64_t i) {
          return reduce_over(all, ReduceOp::sum, [&](int r) { return small(r, i); });
        },
        "iall_reduce");
    expect_values<bf16>(
        scatter_out,
        [&](std::int64_t i) {
          return reduce_over(all, ReduceOp::max, [&](int r) { return small(r, me * chunk + i); });
        },
        "ireduce_scatter");
    expect_values<std::int32_t>(
        gather_out, [&](std::int64_t i) { return (i / chunk) * 100 + i % chunk; }, "iall_gather");
  }
}

// --- sub-communicators ---------------------------------------------------------------------

std::vector<int> members_where(const std::function<bool(int)>& member) {
  std::vector<int> ranks;
  for (int r = 0; r < g_runtime->world_size(); ++r) {
    if (member(r)) ranks.push_back(r);
  }
  return ranks;
}

// With 4 ranks: {0,2},{1,3} by parity and {0,1},{2,3} in blocks (3 ranks: {0,2},{1} and
// {0,1},{2}), all in flight at once together with a world all_reduce.
TEST(MpiCommunicator, SubCommunicatorsRunConcurrently) {
  const int me = g_runtime->rank();
  const auto parity_ranks = members_where([&](int r) { return r % 2 == me % 2; });
  const auto block_ranks = members_where([&](int r) { return r / 2 == me / 2; });
  auto parity = make_mpi_communicator("parity", parity_ranks, kTimeout);
  auto block = make_mpi_communicator("block", block_ranks, kTimeout, kTinyMessages);
  EXPECT_EQ(parity->world_ranks(), parity_ranks);
  EXPECT_EQ(block->world_ranks(), block_ranks);
  EXPECT_EQ(parity->name(), "parity");
  EXPECT_EQ(parity->world_ranks()[static_cast<std::size_t>(parity->rank())], me);
  EXPECT_EQ(block->world_ranks()[static_cast<std::size_t>(block->rank())], me);

  const auto value = [](int world_rank, std::int64_t i) {
    return small(world_rank, i) * (world_rank + 1);
  };
  Tensor a = make<double>(501, [&](std::int64_t i) { return value(me, i); });
  Tensor b = make<float>(77, [&](std::int64_t i) { return value(me, i); });
  Tensor c = make<std::int32_t>(33, [&](std::int64_t i) { return value(me, i); });
  auto ha = parity->iall_reduce(a);
  auto hb = block->iall_reduce(b, ReduceOp::max);
  auto hc = world().iall_reduce(c);
  block->barrier();
  parity->barrier();
  hc->wait();
  hb->wait();
  ha->wait();
  const auto expect = [&](const std::vector<int>& ranks, ReduceOp op) {
    return [&, op](std::int64_t i) {
      return reduce_over(ranks, op, [&](int r) { return value(r, i); });
    };
  };
  expect_values<double>(a, expect(parity_ranks, ReduceOp::sum), "parity iall_reduce");
  expect_values<float>(b, expect(block_ranks, ReduceOp::max), "block iall_reduce");
  expect_values<std::int32_t>(c, expect(world().world_ranks(), ReduceOp::sum), "world iall_reduce");

  // Blocking collectives on the sub-groups, by group rank.
  Tensor d = make<float>(9, [&](std::int64_t i) { return parity->rank() == 0 ? i : -1.0; });
  parity->broadcast(d, 0);
  expect_values<float>(
      d, [](std::int64_t i) { return static_cast<double>(i); }, "parity broadcast");
}

// --- barrier -------------------------------------------------------------------------------

// Nobody leaves the barrier before the last member entered it (steady_clock is the machine's
// monotonic clock, shared by the ranks of one node).
TEST(MpiCommunicator, BarrierWaitsForTheLastMember) {
  using namespace std::chrono;
  const int last = world().size() - 1;
  const auto micros = [] {
    return static_cast<double>(
        duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count());
  };
  Tensor entered = Tensor::zeros(Shape{1}, DType::f64, MemCategory::activations);
  if (world().rank() == last) {
    std::this_thread::sleep_for(milliseconds(100));
    static_cast<double*>(entered.raw())[0] = micros();
  }
  world().barrier();
  const double left = micros();
  world().broadcast(entered, last);
  EXPECT_GE(left, static_cast<double*>(entered.raw())[0]);
  for (int i = 0; i < 3; ++i) g_sliced->barrier();
}

TEST(MpiCommunicator, EmptyTensorsAreNoOps) {
  Tensor empty = Tensor::empty(Shape{0}, DType::f32, MemCategory::activations);
  world().all_reduce(empty);
  world().broadcast(empty, 0);
  if (world().size() > 1) {
    const int me = world().rank();
    const int size = world().size();
    auto r = world().irecv(empty, (me - 1 + size) % size, 4);
    world().send(empty, (me + 1) % size, 4);
    r->wait();
  }
}

// Prints failures of ranks other than 0 (whose full gtest output is shown).
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.summary());
  }

 private:
  int rank_;
};

}  // namespace
}  // namespace lt

int main(int argc, char** argv) {
  lt::DistributedRuntime runtime(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (runtime.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new lt::FailurePrinter(runtime.rank()));
  }
  int any_failed = 0;
  {
    auto world = lt::make_world_communicator(lt::kTimeout);
    auto sliced =
        lt::make_mpi_communicator("world", world->world_ranks(), lt::kTimeout, lt::kTinyMessages);
    lt::g_runtime = &runtime;
    lt::g_world = world.get();
    lt::g_sliced = sliced.get();
    const int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
    // The job fails if any rank failed, whichever rank mpirun reports.
    lt::Tensor flag = lt::Tensor::zeros(lt::Shape{1}, lt::DType::i32, lt::MemCategory::workspace);
    static_cast<std::int32_t*>(flag.raw())[0] = failed;
    world->all_reduce(flag, lt::ReduceOp::max);
    any_failed = static_cast<std::int32_t*>(flag.raw())[0];
    lt::g_world = nullptr;
    lt::g_sliced = nullptr;
  }
  if (any_failed && runtime.rank() == 0) std::fprintf(stderr, "some rank failed a test\n");
  return any_failed;
}
