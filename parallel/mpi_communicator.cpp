#include "parallel/mpi_communicator.h"

#include <climits>
#include <cstdint>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "parallel/mpi_internal.h"

namespace lt {

using mpi_detail::ChunkLayout;
using mpi_detail::Group;
using mpi_detail::Operation;
using mpi_detail::Sources;

namespace {

class MpiHandle final : public CommHandle {
 public:
  MpiHandle(std::shared_ptr<Operation> op, double timeout_s)
      : op_(std::move(op)), timeout_s_(timeout_s) {}
  ~MpiHandle() override { wait(); }
  MpiHandle(const MpiHandle&) = delete;
  MpiHandle& operator=(const MpiHandle&) = delete;

  void wait() override {
    if (op_) op_->wait(timeout_s_);
    op_.reset();
  }
  // The progress thread moves the operation along; testing only reads its flag.
  bool test() override { return !op_ || op_->done(); }

 private:
  std::shared_ptr<Operation> op_;  // null: nothing to wait for
  double timeout_s_;
};

std::vector<std::size_t> scaled(const std::vector<std::int64_t>& elements, std::size_t element) {
  std::vector<std::size_t> bytes;
  for (std::int64_t n : elements) bytes.push_back(static_cast<std::size_t>(n) * element);
  return bytes;
}

class MpiCommunicator final : public comm_detail::GroupCommunicator {
 public:
  MpiCommunicator(std::shared_ptr<Group> group, double timeout_s)
      : GroupCommunicator(*group), group_(std::move(group)), timeout_s_(timeout_s) {}

 private:
  // Each start_* validates on the caller's thread (throwing lt::Error), does what is local,
  // and submits the rest; null means there is nothing to wait for. The shortcuts depend only
  // on arguments every member passes alike, so all members take them together.

  Started start_all_reduce(const Tensor& t, ReduceOp op, const char* what) override {
    check_tensor(t, what, "tensor");
    if (size() == 1 || t.numel() == 0) return nullptr;
    const std::size_t element = dtype_size(t.dtype());
    ChunkLayout layout = ChunkLayout::balanced(t.numel(), size());
    std::vector<std::size_t> offsets = scaled(layout.offset, element);
    std::vector<std::size_t> lengths = scaled(layout.length, element);
    char* base = static_cast<char*>(t.raw());
    void* own = base + offsets[static_cast<std::size_t>(rank())];
    Sources sources;
    sources.push_back(mpi_detail::ring_reduce_scatter(
        rank(), size(), t.dtype(), base, std::move(layout), own, op, group_->max_message_bytes));
    sources.push_back(
        mpi_detail::ring_all_gather(rank(), size(), base, std::move(offsets), std::move(lengths)));
    return start_collective(what, std::move(sources));
  }

  Started start_reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op,
                               const char* what) override {
    check_tensor(input, what, "input");
    check_tensor(output, what, "output");
    comm_detail::check_chunks(*group_, input, output, "input", "output", what);
    if (size() == 1) {
      std::memmove(output.raw(), input.raw(), output.nbytes());
      return nullptr;
    }
    if (output.numel() == 0) return nullptr;
    Sources sources;
    sources.push_back(mpi_detail::ring_reduce_scatter(rank(), size(), input.dtype(), input.raw(),
                                                      ChunkLayout::equal(output.numel(), size()),
                                                      output.raw(), op, group_->max_message_bytes));
    return start_collective(what, std::move(sources));
  }

  Started start_all_gather(const Tensor& input, const Tensor& output, const char* what) override {
    check_tensor(input, what, "input");
    check_tensor(output, what, "output");
    comm_detail::check_chunks(*group_, output, input, "output", "input", what);
    char* base = static_cast<char*>(output.raw());
    char* own = base + rank() * input.nbytes();
    std::memmove(own, input.raw(), input.nbytes());
    if (size() == 1 || input.numel() == 0) return nullptr;
    const ChunkLayout layout = ChunkLayout::equal(input.numel(), size());
    const std::size_t element = dtype_size(input.dtype());
    Sources sources;
    sources.push_back(mpi_detail::ring_all_gather(
        rank(), size(), base, scaled(layout.offset, element), scaled(layout.length, element)));
    return start_collective(what, std::move(sources));
  }

  Started start_broadcast(const Tensor& t, int root) override {
    check_tensor(t, "broadcast", "tensor");
    comm_detail::check_group_rank(*group_, root, "root", "broadcast");
    if (size() == 1 || t.numel() == 0) return nullptr;
    Sources sources;
    sources.push_back(mpi_detail::binomial_broadcast(rank(), size(), root, t.raw(), t.nbytes()));
    return start_collective("broadcast", std::move(sources));
  }

  Started start_barrier() override {
    if (size() == 1) return nullptr;
    Sources sources;
    sources.push_back(mpi_detail::dissemination(rank(), size(), 0, [](int) {}));
    return start_collective("barrier", std::move(sources));
  }

  Started start_p2p(const Tensor& t, int peer, int tag, bool sending, const char* what) override {
    check_tensor(t, what, "tensor");
    comm_detail::check_group_rank(*group_, peer, "peer", what);
    comm_detail::check_tag(*group_, tag, group_->tag_ub, what);
    mpi_detail::Step step;
    if (sending) {
      step.sends.push_back({t.raw(), t.nbytes(), peer});
    } else {
      step.recvs.push_back({t.raw(), t.nbytes(), peer});
    }
    Sources sources;
    sources.push_back(mpi_detail::single_step(std::move(step)));
    return start({group_, group_->p2p, false, tag, what}, std::move(sources));
  }

  // Every collective gets its own tag (its sequence number) on the collective communicator,
  // so collectives in flight together never take each other's messages.
  Started start_collective(const char* what, Sources sources) {
    const auto tag =
        static_cast<int>(collectives_++ % (static_cast<std::uint64_t>(group_->tag_ub) + 1));
    return start({group_, group_->coll, false, tag, what}, std::move(sources));
  }

  Started start(mpi_detail::OpContext context, Sources sources) const {
    auto op = std::make_shared<Operation>(std::move(context), std::move(sources));
    mpi_detail::submit(op);
    return std::make_unique<MpiHandle>(std::move(op), timeout_s_);
  }

  void check_tensor(const Tensor& t, const char* what, const char* role) const {
    comm_detail::check_tensor(*group_, t, Device::cpu, "MPI", what, role);
  }

  std::shared_ptr<Group> group_;
  double timeout_s_;
  std::uint64_t collectives_ = 0;
};

// --- creation -------------------------------------------------------------------------------

int checked_world_rank() {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  LT_CHECK(initialized && !finalized,
           "the MPI communicator needs MPI running: construct lt::DistributedRuntime first");
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  LT_CHECK(provided == MPI_THREAD_MULTIPLE,
           "the MPI communicator needs MPI_THREAD_MULTIPLE (its progress thread calls MPI "
           "beside the caller); this MPI library provides thread level "
               << provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int world_size() {
  int size = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

// FNV-1a over everything the members must agree on.
std::uint64_t fingerprint(const std::string& name, const std::vector<int>& ranks, double timeout_s,
                          std::size_t max_message_bytes) {
  std::uint64_t h = 1469598103934665603ull;
  const auto mix = [&h](const void* data, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      h = (h ^ static_cast<const unsigned char*>(data)[i]) * 1099511628211ull;
    }
  };
  mix(name.data(), name.size());
  mix(ranks.data(), ranks.size() * sizeof(int));
  mix(&timeout_s, sizeof timeout_s);
  mix(&max_message_bytes, sizeof max_message_bytes);
  return h;
}

// Every member reaches this point (under the deadline) before anyone enters
// MPI_Comm_create_group, which itself has no deadline; it also compares the arguments.
void handshake(const std::string& name, const std::vector<int>& ranks, int rank, double timeout_s,
               std::size_t max_message_bytes) {
  if (ranks.size() == 1) return;
  auto probe = std::make_shared<const Group>(name, ranks, rank, max_message_bytes);
  const std::uint64_t value = fingerprint(name, ranks, timeout_s, max_message_bytes);
  auto on_mismatch = [probe](int peer) {
    mpi_detail::fatal("make_mpi_communicator: the members of " + probe->describe() +
                      " disagree: rank " +
                      std::to_string(probe->world_ranks[static_cast<std::size_t>(peer)]) +
                      " passed another name, member list, timeout or message size");
  };
  Sources sources;
  sources.push_back(mpi_detail::dissemination(rank, static_cast<int>(ranks.size()), value,
                                              std::move(on_mismatch)));
  auto op = std::make_shared<Operation>(
      mpi_detail::OpContext{probe, MPI_COMM_WORLD, true, mpi_detail::kCreateTag,
                            "make_mpi_communicator"},
      std::move(sources));
  mpi_detail::submit(op);
  op->wait(timeout_s);
}

void create_mpi_comms(Group& group) {
  using mpi_detail::check_mpi;
  MPI_Group world_group = MPI_GROUP_NULL;
  MPI_Group members = MPI_GROUP_NULL;
  check_mpi(MPI_Comm_group(MPI_COMM_WORLD, &world_group), "MPI_Comm_group");
  check_mpi(MPI_Group_incl(world_group, group.size(), group.world_ranks.data(), &members),
            "MPI_Group_incl");
  check_mpi(MPI_Comm_create_group(MPI_COMM_WORLD, members, mpi_detail::kCreateTag, &group.p2p),
            "MPI_Comm_create_group");
  check_mpi(MPI_Comm_dup(group.p2p, &group.coll), "MPI_Comm_dup");
  MPI_Group_free(&members);
  MPI_Group_free(&world_group);
  // Errors come back as codes, which check_mpi turns into a message naming the call.
  MPI_Comm_set_errhandler(group.p2p, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(group.coll, MPI_ERRORS_RETURN);
  int* tag_ub = nullptr;
  int found = 0;
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &found);
  if (found && tag_ub != nullptr) group.tag_ub = *tag_ub;
}

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(std::string name, std::vector<int> world_ranks,
                                                    double timeout_s,
                                                    std::size_t max_message_bytes) {
  const int me = checked_world_rank();
  comm_detail::check_timeout("make_mpi_communicator", name, timeout_s);
  LT_CHECK(max_message_bytes >= 1 && max_message_bytes <= static_cast<std::size_t>(INT_MAX),
           "make_mpi_communicator('" << name << "'): max_message_bytes " << max_message_bytes
                                     << " outside [1, " << INT_MAX << "]");
  const int rank =
      comm_detail::check_members("make_mpi_communicator", name, world_ranks, me, world_size());
  handshake(name, world_ranks, rank, timeout_s, max_message_bytes);
  auto group =
      std::make_shared<Group>(std::move(name), std::move(world_ranks), rank, max_message_bytes);
  create_mpi_comms(*group);
  return std::make_unique<MpiCommunicator>(std::move(group), timeout_s);
}

std::unique_ptr<Communicator> make_world_communicator(double timeout_s) {
  checked_world_rank();
  std::vector<int> ranks(static_cast<std::size_t>(world_size()));
  std::iota(ranks.begin(), ranks.end(), 0);
  return make_mpi_communicator("world", std::move(ranks), timeout_s);
}

}  // namespace lt
