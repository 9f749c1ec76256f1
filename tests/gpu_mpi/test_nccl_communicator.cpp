// The NCCL communicator under mpirun (1, 2 and 4 ranks, one GPU each), checked against the MPI
// communicator on the same data: every rank runs each operation on a host tensor through MPI
// and on a copy on its GPU through NCCL, and compares (exactly where the order of reduction
// cannot matter, within rounding where it can).
//
// Without a GPU per rank every test reports SKIPPED, on every rank alike, so ctest lists the
// run as skipped. When the tests do run, none of them skips (a test that needs two members does
// nothing in a group of one): one SKIPPED would make ctest call the whole run skipped.
//
// Every rank runs every test in the same order; EXPECT (not ASSERT) keeps the ranks in step
// after a failure; a rank left waiting hits the deadline, which ends the job non-zero.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "parallel/mpi_communicator.h"
#include "parallel/nccl_communicator.h"
#include "parallel/runtime.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/gpu_mpi/nccl_test_util.h"
#include "tests/mpi/mpi_test_main.h"

namespace lt {
namespace {

constexpr double kTimeout = 60.0;  // generous: first use of NCCL connects the peers

DistributedRuntime* g_runtime = nullptr;
std::unique_ptr<Communicator> g_mpi;   // the world over MPI: the reference
std::unique_ptr<Communicator> g_nccl;  // the world over NCCL: under test
std::string g_skip;                    // why the tests skip (empty: they run)

// Creates the communicators after MPI started and releases them before it stops.
class Communicators : public ::testing::Environment {
 public:
  void SetUp() override {
    g_mpi = make_world_communicator(kTimeout);
    g_skip = test::nccl_skip_reason(*g_runtime, *g_mpi);
    if (!g_skip.empty()) return;
    g_runtime->select_local_gpu();
    g_nccl = make_nccl_communicator("world", g_mpi->world_ranks(), kTimeout);
  }
  void TearDown() override {
    g_nccl.reset();
    g_mpi.reset();
  }
};

#define LT_REQUIRE_NCCL()                \
  do {                                   \
    if (!g_nccl) GTEST_SKIP() << g_skip; \
  } while (0)

Communicator& nccl() {
  return *g_nccl;
}
Communicator& mpi() {
  return *g_mpi;
}

// --- inputs ----------------------------------------------------------------------------------

// Member `r`'s N(0, 1) input for case `seed`: full mantissas, so sums depend on the order.
Tensor noise(const Shape& shape, DType dtype, int r, std::uint64_t seed) {
  return test::random_tensor(shape, dtype, seed * 1000 + static_cast<std::uint64_t>(r), "nccl", 1.0,
                             MemCategory::activations);
}

// Member `r`'s small integers: exact in every dtype, whatever the order of addition.
double small(int r, std::int64_t i) {
  return static_cast<double>((r * 7 + i * 3) % 17 - 8);
}

Tensor small_input(std::int64_t n, DType dtype, int r,
                   const std::function<double(int, std::int64_t)>& value = small) {
  if (dtype == DType::i32) {
    Tensor t = Tensor::empty(Shape{n}, DType::i32, MemCategory::activations);
    for (std::int64_t i = 0; i < n; ++i)
      t.data<std::int32_t>()[i] = static_cast<std::int32_t>(value(r, i));
    return t;
  }
  Tensor staging = Tensor::empty(Shape{n}, DType::f64, MemCategory::activations);
  for (std::int64_t i = 0; i < n; ++i) staging.data<double>()[i] = value(r, i);
  Tensor t = Tensor::empty(Shape{n}, dtype, MemCategory::activations);
  copy(staging, t);
  return t;
}

Tensor gpu(const Tensor& host) {
  return to_device(host, Device::cuda);
}

std::vector<std::int32_t> host_i32(const Tensor& t) {
  return to_host_vector<std::int32_t>(t);
}

// NCCL's result (any device) against MPI's (host): bit-exact, or for sums of noise within
// `tolerance` relative to the result's scale.
void expect_matches(const Tensor& nccl_result, const Tensor& mpi_result, double tolerance,
                    const std::string& what) {
  ASSERT_EQ(nccl_result.dtype(), mpi_result.dtype()) << what;
  if (nccl_result.dtype() == DType::i32) {
    EXPECT_EQ(host_i32(nccl_result), host_i32(mpi_result)) << what;
    return;
  }
  EXPECT_LE(test::max_rel_error(nccl_result, mpi_result), tolerance) << what;
}

// NCCL reduces in its own order (ring or tree), MPI in its documented ring order: sums of
// noise agree within a few roundings of the accumulator relative to the result's scale. bf16
// is rounded once from fp32 on both sides, so two fp32 sums a few units apart may round one
// bf16 unit (2^-7 relative at most) apart.
double sum_tolerance(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return 1e-5;
    case DType::f64:
      return 1e-13;
    case DType::bf16:
      return 1e-2;
    case DType::i32:
      return 0.0;
  }
  return 0.0;
}

std::string label(const char* op, DType dtype, std::int64_t n, const char* detail = "") {
  return std::string(op) + " of " + std::to_string(n) + " " + std::string(dtype_name(dtype)) +
         detail + " (" + std::to_string(nccl().size()) + " ranks)";
}

const char* op_name(ReduceOp op) {
  return op == ReduceOp::sum ? " sum" : " max";
}

constexpr DType kFloating[] = {DType::f32, DType::f64, DType::bf16};

// --- basics ----------------------------------------------------------------------------------

TEST(NcclCommunicator, DescribesItself) {
  LT_REQUIRE_NCCL();
  EXPECT_TRUE(have_nccl());
  EXPECT_EQ(nccl().size(), g_runtime->world_size());
  EXPECT_EQ(nccl().rank(), g_runtime->rank());
  EXPECT_EQ(nccl().name(), "world");
  EXPECT_EQ(nccl().world_ranks(), mpi().world_ranks());
}

TEST(NcclCommunicator, CreationRejectsBadMemberLists) {
  LT_REQUIRE_NCCL();
  const int me = g_runtime->rank();
  const int n = g_runtime->world_size();
  // All checked locally, before any message: no rank is left waiting.
  if (n > 1) {
    EXPECT_THROW(make_nccl_communicator("x", {(me + 1) % n}, kTimeout), Error);
  }
  EXPECT_THROW(make_nccl_communicator("x", {me, me}, kTimeout), Error);
  EXPECT_THROW(make_nccl_communicator("x", {me, n}, kTimeout), Error);
  EXPECT_THROW(make_nccl_communicator("x", {}, kTimeout), Error);
  EXPECT_THROW(make_nccl_communicator("x", {me}, 0.0), Error);
}

// --- all_reduce ------------------------------------------------------------------------------

TEST(NcclCommunicator, AllReduceMatchesMpi) {
  LT_REQUIRE_NCCL();
  const int me = nccl().rank();
  std::uint64_t seed = 1;
  for (DType dtype : kFloating) {
    for (std::int64_t n : {1, 2, 5, 1003, 65537}) {
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) {
        Tensor reference = noise(Shape{n}, dtype, me, seed++);
        Tensor t = gpu(reference);
        mpi().all_reduce(reference, op);
        nccl().all_reduce(t, op);
        expect_matches(t, reference, op == ReduceOp::max ? 0.0 : sum_tolerance(dtype),
                       label("all_reduce", dtype, n, op_name(op)));
      }
    }
  }
}

TEST(NcclCommunicator, AllReduceOfSmallIntegersIsExactForEveryDtype) {
  LT_REQUIRE_NCCL();
  const int me = nccl().rank();
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::i32}) {
    for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) {
      Tensor reference = small_input(1001, dtype, me);
      Tensor t = gpu(reference);
      mpi().all_reduce(reference, op);
      nccl().all_reduce(t, op);
      expect_matches(t, reference, 0.0, label("all_reduce", dtype, 1001, op_name(op)));
    }
  }
}

// 256 + 1 + 1 + ... rounds to 256 at every step of a bf16 accumulation (one bf16 unit is 2 at
// 256); accumulated in fp32 and rounded once it is the nearest bf16 of 256 + (n - 1), as on
// the MPI communicator.
TEST(NcclCommunicator, Bf16SumsAccumulateInFp32) {
  LT_REQUIRE_NCCL();
  const auto value = [](int r, std::int64_t) { return r == 0 ? 256.0 : 1.0; };
  Tensor reference = small_input(9, DType::bf16, nccl().rank(), value);
  Tensor t = gpu(reference);
  mpi().all_reduce(reference);
  nccl().all_reduce(t);
  expect_matches(t, reference, 0.0, "bf16 sum of 256 and ones");
  const double expected = static_cast<float>(bf16(static_cast<float>(256 + nccl().size() - 1)));
  EXPECT_EQ(test::to_host_f64(t)[0], expected);
}

TEST(NcclCommunicator, ReductionScratchIsCountedAsCommunication) {
  LT_REQUIRE_NCCL();
  MemoryTracker& tracker = MemoryTracker::for_device(Device::cuda);
  Tensor t = gpu(small_input(4096, DType::bf16, nccl().rank()));
  const std::int64_t before = tracker.snapshot().current_of(MemCategory::communication);
  tracker.reset_peaks();
  nccl().all_reduce(t);
  const MemorySnapshot after = tracker.snapshot();
  EXPECT_EQ(after.current_of(MemCategory::communication), before) << "scratch not released";
  EXPECT_GE(after.peak_of(MemCategory::communication), before + 4096 * 4) << "scratch not tagged";
}

// --- reduce_scatter and all_gather -----------------------------------------------------------

TEST(NcclCommunicator, ReduceScatterMatchesMpi) {
  LT_REQUIRE_NCCL();
  const int me = nccl().rank();
  const int size = nccl().size();
  std::uint64_t seed = 100;
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::i32}) {
    for (std::int64_t chunk : {1, 5, 33, 4097}) {
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) {
        for (bool in_place : {false, true}) {
          const Tensor input = dtype == DType::i32 ? small_input(size * chunk, dtype, me)
                                                   : noise(Shape{size * chunk}, dtype, me, seed++);
          Tensor d_input = gpu(input);
          const auto output_of = [&](const Tensor& in) {
            return in_place
                       ? in.flat_view(me * chunk, Shape{chunk})
                       : Tensor::empty(Shape{chunk}, dtype, MemCategory::activations, in.device());
          };
          Tensor reference = output_of(input);
          Tensor out = output_of(d_input);
          mpi().reduce_scatter(input, reference, op);
          nccl().reduce_scatter(d_input, out, op);
          expect_matches(out, reference, op == ReduceOp::max ? 0.0 : sum_tolerance(dtype),
                         label("reduce_scatter", dtype, chunk, in_place ? " in place" : ""));
        }
      }
    }
  }
}

TEST(NcclCommunicator, AllGatherMatchesMpi) {
  LT_REQUIRE_NCCL();
  const int me = nccl().rank();
  const int size = nccl().size();
  std::uint64_t seed = 200;
  for (DType dtype : {DType::f32, DType::f64, DType::bf16, DType::i32}) {
    for (std::int64_t chunk : {0, 1, 5, 1001}) {
      for (bool in_place : {false, true}) {
        const Tensor mine = dtype == DType::i32 ? small_input(chunk, dtype, me)
                                                : noise(Shape{chunk}, dtype, me, seed++);
        Tensor reference = Tensor::zeros(Shape{size * chunk}, dtype, MemCategory::activations);
        Tensor out = gpu(reference);
        Tensor input = mine;
        Tensor d_input = gpu(mine);
        if (in_place) {
          copy(mine, reference.flat_view(me * chunk, Shape{chunk}));
          copy(d_input, out.flat_view(me * chunk, Shape{chunk}));
          input = reference.flat_view(me * chunk, Shape{chunk});
          d_input = out.flat_view(me * chunk, Shape{chunk});
        }
        mpi().all_gather(input, reference);
        nccl().all_gather(d_input, out);
        expect_matches(out, reference, 0.0,
                       label("all_gather", dtype, chunk, in_place ? " in place" : ""));
      }
    }
  }
}

// --- broadcast, barrier ----------------------------------------------------------------------

TEST(NcclCommunicator, BroadcastFromEveryRootMatchesMpi) {
  LT_REQUIRE_NCCL();
  std::uint64_t seed = 300;
  for (int root = 0; root < nccl().size(); ++root) {
    for (DType dtype : kFloating) {
      for (std::int64_t n : {1, 100, 100003}) {
        Tensor reference = noise(Shape{n}, dtype, nccl().rank(), seed++);
        Tensor t = gpu(reference);
        mpi().broadcast(reference, root);
        nccl().broadcast(t, root);
        expect_matches(t, reference, 0.0, label("broadcast", dtype, n));
      }
    }
  }
}

// Nobody leaves the barrier before the last member entered it (steady_clock is the node's
// monotonic clock, shared by its ranks).
TEST(NcclCommunicator, BarrierWaitsForTheLastMember) {
  LT_REQUIRE_NCCL();
  using namespace std::chrono;
  const int last = nccl().size() - 1;
  const auto micros = [] {
    return static_cast<double>(
        duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count());
  };
  Tensor entered = Tensor::zeros(Shape{1}, DType::f64, MemCategory::activations);
  if (nccl().rank() == last) {
    std::this_thread::sleep_for(milliseconds(100));
    entered.data<double>()[0] = micros();
  }
  nccl().barrier();
  const double left = micros();
  mpi().broadcast(entered, last);
  EXPECT_GE(left, entered.data<double>()[0]);
}

// --- point to point --------------------------------------------------------------------------

// isend to the next member and irecv from the previous one (in a group of one: to itself), in
// one batch, for sizes up to 16 MiB; the same ring over MPI gives the reference.
TEST(NcclCommunicator, IsendIrecvAroundTheRingMatchesMpi) {
  LT_REQUIRE_NCCL();
  const int me = nccl().rank();
  const int size = nccl().size();
  const int next = (me + 1) % size;
  const int prev = (me - 1 + size) % size;
  std::uint64_t seed = 400;
  for (DType dtype : kFloating) {
    for (std::int64_t n : {std::int64_t{3}, std::int64_t{100000}, std::int64_t{1} << 22}) {
      const Tensor mine = noise(Shape{n}, dtype, me, seed++);
      Tensor reference = Tensor::zeros(Shape{n}, dtype, MemCategory::activations);
      Tensor received = gpu(reference);
      {
        auto r = mpi().irecv(reference, prev, 3);
        auto s = mpi().isend(mine, next, 3);
      }
      Tensor d_mine = gpu(mine);
      auto r = nccl().irecv(received, prev, 3);
      auto s = nccl().isend(d_mine, next, 3);
      s->wait();
      r->wait();
      expect_matches(received, reference, 0.0, label("isend/irecv", dtype, n));
    }
  }
}

// Blocking sends in a chain (0 sends first, every other member receives first): each blocking
// call is issued alone, so this checks a lone send and a lone receive pair up.
TEST(NcclCommunicator, BlockingSendRecvChain) {
  LT_REQUIRE_NCCL();
  const int me = nccl().rank();
  const int size = nccl().size();
  if (size < 2) return;  // no peer (see the top: no GTEST_SKIP once the tests run)
  const int left = (me - 1 + size) % size;
  const int right = (me + 1) % size;
  for (std::int64_t n : {7, 1000003}) {
    Tensor out = gpu(small_input(n, DType::i32, me));
    Tensor in = Tensor::zeros(Shape{n}, DType::i32, MemCategory::activations, Device::cuda);
    if (me == 0) nccl().send(out, right, 5);
    nccl().recv(in, left, 5);
    if (me != 0) nccl().send(out, right, 5);
    EXPECT_EQ(host_i32(in), host_i32(small_input(n, DType::i32, left))) << "chain of " << n;
  }
}

// NCCL matches the messages between two members in the order they were issued.
TEST(NcclCommunicator, MessagesKeepTheirOrder) {
  LT_REQUIRE_NCCL();
  const int me = nccl().rank();
  const int size = nccl().size();
  const auto value = [](int k) { return [k](int, std::int64_t i) { return k * 100.0 + i; }; };
  std::vector<Tensor> out, in;
  std::vector<std::unique_ptr<CommHandle>> handles;
  for (int k = 0; k < 4; ++k) {
    out.push_back(gpu(small_input(50, DType::f32, me, value(k))));
    in.push_back(Tensor::zeros(Shape{50}, DType::f32, MemCategory::activations, Device::cuda));
    handles.push_back(nccl().irecv(in.back(), (me - 1 + size) % size, 9));
  }
  for (int k = 0; k < 4; ++k)
    handles.push_back(nccl().isend(out[static_cast<std::size_t>(k)], (me + 1) % size, 9));
  for (auto& h : handles) h->wait();
  for (int k = 0; k < 4; ++k) {
    expect_matches(in[static_cast<std::size_t>(k)], small_input(50, DType::f32, me, value(k)), 0.0,
                   "message " + std::to_string(k));
  }
}

TEST(NcclCommunicator, DroppedHandlesWaitForTheirOperation) {
  LT_REQUIRE_NCCL();
  const int me = nccl().rank();
  const int size = nccl().size();
  const int prev = (me - 1 + size) % size;
  Tensor out = gpu(small_input(300, DType::f64, me));
  Tensor in = Tensor::zeros(Shape{300}, DType::f64, MemCategory::activations, Device::cuda);
  {
    auto recv = nccl().irecv(in, prev, 2);
    auto send = nccl().isend(out, (me + 1) % size, 2);
  }  // destroyed unfinished (never even issued): they issue and wait
  expect_matches(in, small_input(300, DType::f64, prev), 0.0, "dropped handles");
}

// --- non-blocking collectives and stream ordering --------------------------------------------

// Three collectives in flight together while the default stream multiplies matrices; test()
// polls; the results match MPI's.
TEST(NcclCommunicator, NonBlockingCollectivesOverlapLocalWork) {
  LT_REQUIRE_NCCL();
  const int me = nccl().rank();
  const int size = nccl().size();
  constexpr std::int64_t chunk = 37;
  Tensor reduced = noise(Shape{1 << 20}, DType::f32, me, 500);
  Tensor scatter_in = noise(Shape{size * chunk}, DType::bf16, me, 501);
  Tensor scatter_ref = Tensor::empty(Shape{chunk}, DType::bf16, MemCategory::activations);
  Tensor gather_in = small_input(chunk, DType::i32, me);
  Tensor gather_ref = Tensor::empty(Shape{size * chunk}, DType::i32, MemCategory::activations);

  Tensor d_reduced = gpu(reduced);
  Tensor d_scatter_in = gpu(scatter_in);
  Tensor d_scatter_out =
      Tensor::empty(Shape{chunk}, DType::bf16, MemCategory::activations, Device::cuda);
  Tensor d_gather_in = gpu(gather_in);
  Tensor d_gather_out = gpu(gather_ref);
  auto h1 = nccl().iall_reduce(d_reduced);
  auto h2 = nccl().ireduce_scatter(d_scatter_in, d_scatter_out, ReduceOp::max);
  auto h3 = nccl().iall_gather(d_gather_in, d_gather_out);
  Tensor a = noise(Shape{1024, 1024}, DType::f32, me, 502);
  Tensor d_a = gpu(a);
  Tensor d_c = Tensor::zeros(Shape{1024, 1024}, DType::f32, MemCategory::activations, Device::cuda);
  for (int i = 0; i < 8; ++i) matmul(d_a, false, d_a, true, d_c, 1.0, 1.0);
  while (!h1->test()) std::this_thread::yield();
  h3->wait();
  h2->wait();
  h1->wait();

  mpi().all_reduce(reduced);
  mpi().reduce_scatter(scatter_in, scatter_ref, ReduceOp::max);
  mpi().all_gather(gather_in, gather_ref);
  expect_matches(d_reduced, reduced, sum_tolerance(DType::f32), "iall_reduce");
  expect_matches(d_scatter_out, scatter_ref, 0.0, "ireduce_scatter");
  expect_matches(d_gather_out, gather_ref, 0.0, "iall_gather");
  EXPECT_TRUE(std::isfinite(test::to_host_f64(d_c)[0]));
}

// The default stream's work issued before a call is what the call sends (fill is asynchronous),
// and work issued after wait() sees the result (scale is asynchronous too): the events between
// the streams, including the bf16 cast back from the fp32 scratch.
TEST(NcclCommunicator, CallsAreOrderedWithTheDefaultStream) {
  LT_REQUIRE_NCCL();
  const int me = nccl().rank();
  const int size = nccl().size();
  for (DType dtype : {DType::f32, DType::bf16}) {
    Tensor t = Tensor::empty(Shape{1 << 20}, dtype, MemCategory::activations, Device::cuda);
    for (int k = 0; k < 6; ++k) {
      fill(t, k + me);
      if (k % 2 == 0) {
        nccl().all_reduce(t);
      } else {
        nccl().iall_reduce(t)->wait();
      }
      scale(t, 2.0);
      // 2 * sum over members of (k + r): small integers, exact in bf16 too.
      const double expected = 2.0 * (k * size + size * (size - 1) / 2.0);
      const std::vector<double> values = test::to_host_f64(t);
      std::int64_t wrong = 0;
      for (double v : values) wrong += v != expected;
      EXPECT_EQ(wrong, 0) << dtype_name(dtype) << " round " << k << ": want " << expected
                          << ", first element " << values[0];
    }
  }
}

// --- sub-communicators -----------------------------------------------------------------------

std::vector<int> members_where(const std::function<bool(int)>& member) {
  std::vector<int> ranks;
  for (int r = 0; r < g_runtime->world_size(); ++r) {
    if (member(r)) ranks.push_back(r);
  }
  return ranks;
}

// With 4 ranks: {0,2},{1,3} by parity and {0,1},{2,3} in blocks, in flight at once together
// with a world all_reduce; the same on MPI gives the reference.
TEST(NcclCommunicator, SubCommunicatorsRunConcurrently) {
  LT_REQUIRE_NCCL();
  const int me = g_runtime->rank();
  const auto parity_ranks = members_where([&](int r) { return r % 2 == me % 2; });
  const auto block_ranks = members_where([&](int r) { return r / 2 == me / 2; });
  auto parity = make_nccl_communicator("parity", parity_ranks, kTimeout);
  auto block = make_nccl_communicator("block", block_ranks, kTimeout);
  auto mpi_parity = make_mpi_communicator("parity", parity_ranks, kTimeout);
  auto mpi_block = make_mpi_communicator("block", block_ranks, kTimeout);
  EXPECT_EQ(parity->world_ranks(), parity_ranks);
  EXPECT_EQ(block->world_ranks(), block_ranks);
  EXPECT_EQ(parity->world_ranks()[static_cast<std::size_t>(parity->rank())], me);

  Tensor a = noise(Shape{501}, DType::f64, me, 600);
  Tensor b = noise(Shape{77}, DType::f32, me, 601);
  Tensor c = small_input(33, DType::i32, me);
  Tensor da = gpu(a), db = gpu(b), dc = gpu(c);
  auto ha = parity->iall_reduce(da);
  auto hb = block->iall_reduce(db, ReduceOp::max);
  auto hc = nccl().iall_reduce(dc);
  block->barrier();
  parity->barrier();
  hc->wait();
  hb->wait();
  ha->wait();
  mpi_parity->all_reduce(a);
  mpi_block->all_reduce(b, ReduceOp::max);
  mpi().all_reduce(c);
  expect_matches(da, a, sum_tolerance(DType::f64), "parity iall_reduce");
  expect_matches(db, b, 0.0, "block iall_reduce");
  expect_matches(dc, c, 0.0, "world iall_reduce");
}

// --- arguments -------------------------------------------------------------------------------

TEST(NcclCommunicator, RejectsBadArgumentsBeforeCommunicating) {
  LT_REQUIRE_NCCL();
  const std::int64_t n = nccl().size();
  const auto cuda_f32 = [](std::int64_t count) {
    return Tensor::zeros(Shape{count}, DType::f32, MemCategory::activations, Device::cuda);
  };
  Tensor host = Tensor::zeros(Shape{4}, DType::f32, MemCategory::activations);
  try {
    nccl().all_reduce(host);
    ADD_FAILURE() << "a host tensor was accepted";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("all_reduce on group 'world'"), std::string::npos) << message;
    EXPECT_NE(message.find("on cpu"), std::string::npos) << message;
  }
  Tensor wide = Tensor::zeros(Shape{8, 2}, DType::f32, MemCategory::activations, Device::cuda);
  EXPECT_THROW(nccl().all_reduce(wide.columns(0, 1)), Error);
  EXPECT_THROW(nccl().reduce_scatter(cuda_f32(n * 3 + 1), cuda_f32(3)), Error);
  EXPECT_THROW(nccl().ireduce_scatter(cuda_f32(n * 3), cuda_f32(4)), Error);
  EXPECT_THROW(nccl().all_gather(cuda_f32(3), cuda_f32(n * 3 + 1)), Error);
  Tensor out = cuda_f32(n * 3);
  if (n > 1) {
    EXPECT_THROW(nccl().all_gather(out.flat_view(nccl().rank() == 0 ? 1 : 0, Shape{3}), out),
                 Error);
  }
  EXPECT_THROW(nccl().broadcast(cuda_f32(1), static_cast<int>(n)), Error);
  EXPECT_THROW(nccl().send(cuda_f32(1), static_cast<int>(n)), Error);
  EXPECT_THROW(nccl().irecv(cuda_f32(1), -1), Error);
  EXPECT_THROW(nccl().isend(cuda_f32(1), 0, -3), Error);
}

TEST(NcclCommunicator, EmptyTensorsAreNoOps) {
  LT_REQUIRE_NCCL();
  Tensor empty = Tensor::empty(Shape{0}, DType::f32, MemCategory::activations, Device::cuda);
  nccl().all_reduce(empty);
  nccl().broadcast(empty, 0);
  nccl().all_gather(empty, empty);
  const int me = nccl().rank();
  const int size = nccl().size();
  auto r = nccl().irecv(empty, (me - 1 + size) % size, 4);
  nccl().send(empty, (me + 1) % size, 4);
  r->wait();
  EXPECT_TRUE(r->test());
}

}  // namespace
}  // namespace lt

int main(int argc, char** argv) {
  return lt::run_mpi_tests(argc, argv, lt::g_runtime, [](int, char**) {
    ::testing::AddGlobalTestEnvironment(new lt::Communicators);
  });
}
