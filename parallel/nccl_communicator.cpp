#include "parallel/nccl_communicator.h"

#include <mpi.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <exception>
#include <utility>

#include "core/error.h"
#include "core/ops.h"
#include "parallel/mpi_communicator.h"
#include "parallel/nccl_internal.h"

namespace lt {

using nccl_detail::Group;
using nccl_detail::Op;

namespace {

class NcclHandle final : public CommHandle {
 public:
  explicit NcclHandle(std::shared_ptr<Op> op) : op_(std::move(op)) {}
  // A destructor cannot throw: a failure here (casting a bf16 result back) ends the job.
  ~NcclHandle() override {
    try {
      wait();
    } catch (const std::exception& e) {
      comm_detail::fatal(std::string("waiting for an NCCL operation in a handle's destructor: ") +
                         e.what());
    }
  }
  NcclHandle(const NcclHandle&) = delete;
  NcclHandle& operator=(const NcclHandle&) = delete;

  void wait() override {
    if (op_) op_->wait();
    op_.reset();
  }
  // Issues a point-to-point batch still collecting, then only queries the completion event.
  bool test() override { return !op_ || op_->poll(); }

 private:
  std::shared_ptr<Op> op_;  // null: nothing to wait for
};

ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return ncclFloat32;
    case DType::f64:
      return ncclFloat64;
    case DType::bf16:
      return ncclBfloat16;
    case DType::i32:
      return ncclInt32;
  }
  throw Error("the NCCL communicator has no type for dtype " + std::string(dtype_name(dtype)));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  return op == ReduceOp::sum ? ncclSum : ncclMax;
}

// bf16 sums accumulate in fp32 (the interface's promise): NCCL would round to bf16 between
// its steps. A bf16 max is exact in bf16.
bool widened(DType dtype, ReduceOp op) {
  return dtype == DType::bf16 && op == ReduceOp::sum;
}

std::size_t count(const Tensor& t) {
  return static_cast<std::size_t>(t.numel());
}

std::string bytes_text(std::size_t bytes) {
  return std::to_string(bytes) + " bytes";
}

class NcclCommunicator final : public comm_detail::GroupCommunicator {
 public:
  explicit NcclCommunicator(std::shared_ptr<Group> group)
      : GroupCommunicator(*group), group_(std::move(group)) {}

 private:
  // Each start_* validates on the caller's thread (throwing lt::Error before anything is
  // issued) and launches the operation; null means there is nothing to do. The shortcuts
  // depend only on arguments every member passes alike, so all members take them together.

  Started start_all_reduce(const Tensor& t, ReduceOp op, const char* what) override {
    check_tensor(t, what, "tensor");
    if (t.numel() == 0) return nullptr;
    auto o = collective(what);
    const std::string transfer = std::string(what) + " of " + bytes_text(t.nbytes());
    if (widened(t.dtype(), op)) {
      Tensor wide = Tensor::empty(t.shape(), DType::f32, MemCategory::communication, Device::cuda);
      copy(t, wide);
      o->add(in_place_all_reduce(wide.raw(), count(t), ncclFloat32, op), what, transfer);
      o->then([wide, t] { copy(wide, t); });
    } else {
      o->add(in_place_all_reduce(t.raw(), count(t), nccl_type(t.dtype()), op), what, transfer);
    }
    return launch(std::move(o));
  }

  Started start_reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op,
                               const char* what) override {
    check_tensor(input, what, "input");
    check_tensor(output, what, "output");
    comm_detail::check_chunks(*group_, input, output, "input", "output", what);
    if (output.numel() == 0) return nullptr;
    auto o = collective(what);
    const std::string transfer = std::string(what) + " of " + bytes_text(input.nbytes());
    const Tensor* in = &input;
    const Tensor* out = &output;
    Tensor wide_in, wide_out;
    if (widened(input.dtype(), op)) {
      // In place in one fp32 scratch: NCCL reduces into this member's chunk of it.
      wide_in = Tensor::empty(input.shape(), DType::f32, MemCategory::communication, Device::cuda);
      wide_out = wide_in.flat_view(rank() * output.numel(), output.shape());
      copy(input, wide_in);
      o->then([wide_in, wide_out, output] { copy(wide_out, output); });
      in = &wide_in;
      out = &wide_out;
    }
    const void* send = in->raw();
    void* recv = out->raw();
    const std::size_t n = count(output);
    const ncclDataType_t type = nccl_type(in->dtype());
    const ncclRedOp_t red = nccl_op(op);
    o->add(
        [send, recv, n, type, red](ncclComm_t comm, cudaStream_t stream) {
          return ncclReduceScatter(send, recv, n, type, red, comm, stream);
        },
        what, transfer);
    return launch(std::move(o));
  }

  Started start_all_gather(const Tensor& input, const Tensor& output, const char* what) override {
    check_tensor(input, what, "input");
    check_tensor(output, what, "output");
    comm_detail::check_chunks(*group_, output, input, "output", "input", what);
    if (input.numel() == 0) return nullptr;
    auto o = collective(what);
    const void* send = input.raw();
    void* recv = output.raw();
    const std::size_t n = count(input);
    const ncclDataType_t type = nccl_type(input.dtype());
    o->add(
        [send, recv, n, type](ncclComm_t comm, cudaStream_t stream) {
          return ncclAllGather(send, recv, n, type, comm, stream);
        },
        what, std::string(what) + " of " + bytes_text(output.nbytes()));
    return launch(std::move(o));
  }

  Started start_broadcast(const Tensor& t, int root) override {
    check_tensor(t, "broadcast", "tensor");
    comm_detail::check_group_rank(*group_, root, "root", "broadcast");
    if (t.numel() == 0) return nullptr;
    auto o = collective("broadcast");
    void* data = t.raw();
    const std::size_t n = count(t);
    const ncclDataType_t type = nccl_type(t.dtype());
    o->add(
        [data, n, type, root](ncclComm_t comm, cudaStream_t stream) {
          return ncclBroadcast(data, data, n, type, root, comm, stream);
        },
        "broadcast",
        "broadcast of " + bytes_text(t.nbytes()) + " from rank " +
            std::to_string(group_->world_rank_of(root)));
    return launch(std::move(o));
  }

  // An all-reduce of one element: it completes on a member only once every member issued it.
  Started start_barrier() override {
    check_device("barrier");
    auto o = collective("barrier");
    Tensor token = Tensor::zeros(Shape{1}, DType::f32, MemCategory::communication, Device::cuda);
    o->add(in_place_all_reduce(token.raw(), 1, ncclFloat32, ReduceOp::sum), "barrier", "barrier");
    o->keep(std::move(token));
    return launch(std::move(o));
  }

  // Added to the open batch (opening one if needed); it is issued at the next wait, test or
  // collective (see nccl_communicator.h for why).
  Started start_p2p(const Tensor& t, int peer, int tag, bool sending, const char* what) override {
    check_tensor(t, what, "tensor");
    comm_detail::check_group_rank(*group_, peer, "peer", what);
    comm_detail::check_tag(*group_, tag, INT_MAX, what);  // NCCL has no tags: order matches
    if (t.numel() == 0) return nullptr;
    std::shared_ptr<Op> batch = group_->open_batch();
    if (!batch) {
      batch = std::make_shared<Op>(group_, what, true);
      group_->set_open_batch(batch);
    }
    batch->mark_ready();
    void* data = t.raw();
    const std::size_t n = count(t);
    const ncclDataType_t type = nccl_type(t.dtype());
    const std::string transfer = "rank " + std::to_string(group_->world_rank_of(peer)) + " (" +
                                 (sending ? "send" : "receive") + " of " + bytes_text(t.nbytes()) +
                                 ")";
    if (sending) {
      batch->add(
          [data, n, type, peer](ncclComm_t comm, cudaStream_t stream) {
            return ncclSend(data, n, type, peer, comm, stream);
          },
          what, transfer);
    } else {
      batch->add(
          [data, n, type, peer](ncclComm_t comm, cudaStream_t stream) {
            return ncclRecv(data, n, type, peer, comm, stream);
          },
          what, transfer);
    }
    return std::make_unique<NcclHandle>(std::move(batch));
  }

  static Op::Call in_place_all_reduce(void* data, std::size_t n, ncclDataType_t type, ReduceOp op) {
    const ncclRedOp_t red = nccl_op(op);
    return [data, n, type, red](ncclComm_t comm, cudaStream_t stream) {
      return ncclAllReduce(data, data, n, type, red, comm, stream);
    };
  }

  // A collective goes after the point-to-point transfers requested before it, as on every
  // other member (NCCL matches operations in issue order). launch() then records what its
  // transfers wait for: the default stream's work so far, including a bf16 upcast the caller
  // issued in between.
  std::shared_ptr<Op> collective(const char* what) {
    group_->flush();
    return std::make_shared<Op>(group_, what, false);
  }

  static Started launch(std::shared_ptr<Op> o) {
    o->mark_ready();
    o->launch();
    return std::make_unique<NcclHandle>(std::move(o));
  }

  // --- argument checks ------------------------------------------------------------------------

  // The communicator's device must be current: NCCL and the stream belong to it.
  void check_device(const char* what) const {
    int current = -1;
    const cudaError_t rc = cudaGetDevice(&current);
    LT_CHECK(rc == cudaSuccess && current == group_->device(),
             group_->context(what) << ": CUDA device " << current
                                   << " is current but the communicator belongs to device "
                                   << group_->device() << "; make it current before calling");
  }

  void check_tensor(const Tensor& t, const char* what, const char* role) const {
    check_device(what);
    comm_detail::check_tensor(*group_, t, Device::cuda, "NCCL", what, role);
    if (t.numel() == 0) return;
    // A tensor allocated while another device was current would make NCCL fault.
    cudaPointerAttributes attributes{};
    if (cudaPointerGetAttributes(&attributes, t.raw()) != cudaSuccess) {
      (void)cudaGetLastError();
      return;
    }
    LT_CHECK(attributes.type != cudaMemoryTypeDevice || attributes.device == group_->device(),
             group_->context(what)
                 << ": the " << role << " " << t.describe() << " lives on CUDA device "
                 << attributes.device << " but the communicator on device " << group_->device());
  }

  std::shared_ptr<Group> group_;
};

// --- creation -------------------------------------------------------------------------------

constexpr const char* kFactory = "make_nccl_communicator";

// The world rank and size; throws unless MPI runs (the id travels over it).
std::pair<int, int> world_position() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  LT_CHECK(initialized && !finalized,
           kFactory << " needs MPI running: construct lt::DistributedRuntime first");
  int rank = 0;
  int size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return {rank, size};
}

// The group's first member makes the id; the others receive it over an MPI communicator of
// the same members, whose creation handshake (under the deadline) names a member that never
// arrives and detects members that passed other arguments.
ncclUniqueId share_unique_id(const std::string& name, const std::vector<int>& ranks, int rank,
                             double timeout_s) {
  static_assert(sizeof(ncclUniqueId) % sizeof(std::int32_t) == 0);
  ncclUniqueId id{};
  auto bootstrap = make_mpi_communicator(name, ranks, timeout_s);
  Tensor bytes = Tensor::zeros(Shape{sizeof id / sizeof(std::int32_t)}, DType::i32,
                               MemCategory::communication);
  if (rank == 0) {
    const ncclResult_t rc = ncclGetUniqueId(&id);
    // The other members are already waiting in the broadcast: end the job rather than throw.
    if (rc != ncclSuccess) {
      comm_detail::fatal(std::string(kFactory) + "('" + name +
                         "'): ncclGetUniqueId failed: " + ncclGetErrorString(rc));
    }
    std::memcpy(bytes.raw(), &id, sizeof id);
  }
  bootstrap->broadcast(bytes, 0);
  std::memcpy(&id, bytes.raw(), sizeof id);
  return id;
}

}  // namespace

bool have_nccl() {
  return true;
}

std::unique_ptr<Communicator> make_nccl_communicator(std::string name, std::vector<int> world_ranks,
                                                     double timeout_s) {
  const auto [me, world] = world_position();
  comm_detail::check_timeout(kFactory, name, timeout_s);
  const int rank = comm_detail::check_members(kFactory, name, world_ranks, me, world);
  LT_CHECK(cuda::device_count() > 0,
           kFactory << "('" << name << "'): no CUDA device visible to world rank " << me);
  const int device = cuda::current_device();
  const ncclUniqueId id = share_unique_id(name, world_ranks, rank, timeout_s);
  auto group = std::make_shared<Group>(
      comm_detail::GroupInfo{std::move(name), std::move(world_ranks), rank}, timeout_s, device);
  group->init(id);
  return std::make_unique<NcclCommunicator>(std::move(group));
}

}  // namespace lt
