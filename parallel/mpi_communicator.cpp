#include "parallel/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <set>

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

bool overlaps(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  const auto x = reinterpret_cast<std::uintptr_t>(a);
  const auto y = reinterpret_cast<std::uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && x < y + b_bytes && y < x + a_bytes;
}

std::vector<std::size_t> scaled(const std::vector<std::int64_t>& elements, std::size_t element) {
  std::vector<std::size_t> bytes;
  for (std::int64_t n : elements) bytes.push_back(static_cast<std::size_t>(n) * element);
  return bytes;
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(std::shared_ptr<Group> group, double timeout_s)
      : group_(std::move(group)), timeout_s_(timeout_s) {}

  int rank() const override { return group_->rank; }
  int size() const override { return group_->size(); }
  const std::string& name() const override { return group_->name; }
  const std::vector<int>& world_ranks() const override { return group_->world_ranks; }

  void all_reduce(const Tensor& t, ReduceOp op) override {
    complete(start_all_reduce(t, op, "all_reduce"));
  }
  void reduce_scatter(const Tensor& input, const Tensor& output, ReduceOp op) override {
    complete(start_reduce_scatter(input, output, op, "reduce_scatter"));
  }
  void all_gather(const Tensor& input, const Tensor& output) override {
    complete(start_all_gather(input, output, "all_gather"));
  }
  void broadcast(const Tensor& t, int root) override { complete(start_broadcast(t, root)); }
  void send(const Tensor& t, int peer, int tag) override {
    complete(start_p2p(t, peer, tag, true, "send"));
  }
  void recv(const Tensor& t, int peer, int tag) override {
    complete(start_p2p(t, peer, tag, false, "recv"));
  }
  void barrier() override { complete(start_barrier()); }

  std::unique_ptr<CommHandle> isend(const Tensor& t, int peer, int tag) override {
    return handle(start_p2p(t, peer, tag, true, "isend"));
  }
  std::unique_ptr<CommHandle> irecv(const Tensor& t, int peer, int tag) override {
    return handle(start_p2p(t, peer, tag, false, "irecv"));
  }
  std::unique_ptr<CommHandle> iall_reduce(const Tensor& t, ReduceOp op) override {
    return handle(start_all_reduce(t, op, "iall_reduce"));
  }
  std::unique_ptr<CommHandle> ireduce_scatter(const Tensor& input, const Tensor& output,
                                              ReduceOp op) override {
    return handle(start_reduce_scatter(input, output, op, "ireduce_scatter"));
  }
  std::unique_ptr<CommHandle> iall_gather(const Tensor& input, const Tensor& output) override {
    return handle(start_all_gather(input, output, "iall_gather"));
  }

 private:
  // Each start_* validates on the caller's thread (throwing lt::Error), does what is local,
  // and submits the rest; null means there is nothing to wait for. The shortcuts depend only
  // on arguments every member passes alike, so all members take them together.

  std::shared_ptr<Operation> start_all_reduce(const Tensor& t, ReduceOp op, const char* what) {
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

  std::shared_ptr<Operation> start_reduce_scatter(const Tensor& input, const Tensor& output,
                                                  ReduceOp op, const char* what) {
    check_tensor(input, what, "input");
    check_tensor(output, what, "output");
    check_chunks(input, output, "input", "output", what);
    const char* own = static_cast<const char*>(input.raw()) + rank() * output.nbytes();
    check_aliasing(own, input, output, "output", "input", what);
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

  std::shared_ptr<Operation> start_all_gather(const Tensor& input, const Tensor& output,
                                              const char* what) {
    check_tensor(input, what, "input");
    check_tensor(output, what, "output");
    check_chunks(output, input, "output", "input", what);
    char* base = static_cast<char*>(output.raw());
    char* own = base + rank() * input.nbytes();
    check_aliasing(own, output, input, "input", "output", what);
    std::memmove(own, input.raw(), input.nbytes());
    if (size() == 1 || input.numel() == 0) return nullptr;
    const ChunkLayout layout = ChunkLayout::equal(input.numel(), size());
    const std::size_t element = dtype_size(input.dtype());
    Sources sources;
    sources.push_back(mpi_detail::ring_all_gather(
        rank(), size(), base, scaled(layout.offset, element), scaled(layout.length, element)));
    return start_collective(what, std::move(sources));
  }

  std::shared_ptr<Operation> start_broadcast(const Tensor& t, int root) {
    check_tensor(t, "broadcast", "tensor");
    LT_CHECK(root >= 0 && root < size(), context("broadcast")
                                             << ": root " << root << " is not a group rank (size "
                                             << size() << ")");
    if (size() == 1 || t.numel() == 0) return nullptr;
    Sources sources;
    sources.push_back(mpi_detail::binomial_broadcast(rank(), size(), root, t.raw(), t.nbytes()));
    return start_collective("broadcast", std::move(sources));
  }

  std::shared_ptr<Operation> start_barrier() {
    if (size() == 1) return nullptr;
    Sources sources;
    sources.push_back(mpi_detail::dissemination(rank(), size(), 0, [](int) {}));
    return start_collective("barrier", std::move(sources));
  }

  std::shared_ptr<Operation> start_p2p(const Tensor& t, int peer, int tag, bool sending,
                                       const char* what) {
    check_tensor(t, what, "tensor");
    LT_CHECK(peer >= 0 && peer < size(),
             context(what) << ": peer " << peer << " is not a group rank (size " << size() << ")");
    LT_CHECK(tag >= 0 && tag <= group_->tag_ub,
             context(what) << ": tag " << tag << " outside [0, " << group_->tag_ub << "]");
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
  std::shared_ptr<Operation> start_collective(const char* what, Sources sources) {
    const auto tag =
        static_cast<int>(collectives_++ % (static_cast<std::uint64_t>(group_->tag_ub) + 1));
    return start({group_, group_->coll, false, tag, what}, std::move(sources));
  }

  static std::shared_ptr<Operation> start(mpi_detail::OpContext context, Sources sources) {
    auto op = std::make_shared<Operation>(std::move(context), std::move(sources));
    mpi_detail::submit(op);
    return op;
  }

  void complete(const std::shared_ptr<Operation>& op) const {
    if (op) op->wait(timeout_s_);
  }

  std::unique_ptr<CommHandle> handle(std::shared_ptr<Operation> op) const {
    return std::make_unique<MpiHandle>(std::move(op), timeout_s_);
  }

  // --- argument checks ------------------------------------------------------------------------

  std::string context(const char* what) const {
    return std::string(what) + " on " + group_->describe();
  }

  void check_tensor(const Tensor& t, const char* what, const char* role) const {
    LT_CHECK(t.defined(), context(what) << ": the " << role << " is undefined");
    LT_CHECK(t.device() == Device::cpu,
             context(what) << ": the " << role << " is on " << device_name(t.device())
                           << "; the MPI communicator moves host memory only");
    LT_CHECK(t.is_contiguous(), context(what) << ": the " << role << " " << t.describe()
                                              << " is a strided view; pass a contiguous tensor");
  }

  // `whole` must hold size() chunks, each the size of `part`, of the same dtype.
  void check_chunks(const Tensor& whole, const Tensor& part, const char* whole_role,
                    const char* part_role, const char* what) const {
    LT_CHECK(whole.dtype() == part.dtype(),
             context(what) << ": the " << whole_role << " is " << whole.describe() << " but the "
                           << part_role << " is " << part.describe());
    LT_CHECK(whole.numel() == size() * part.numel(),
             context(what) << ": the " << whole_role << " " << whole.describe() << " must hold "
                           << size() << " chunks (one per member) of the " << part_role << " "
                           << part.describe() << ", i.e. " << size() * part.numel() << " elements");
  }

  // `part` is either exactly this member's chunk `own` of `whole` (in place) or disjoint from
  // `whole`; partial overlaps would be read after being overwritten.
  void check_aliasing(const void* own, const Tensor& whole, const Tensor& part,
                      const char* part_role, const char* whole_role, const char* what) const {
    LT_CHECK(part.raw() == own || !overlaps(part.raw(), part.nbytes(), whole.raw(), whole.nbytes()),
             context(what) << ": the " << part_role << " overlaps the " << whole_role
                           << " other than as this member's own chunk " << rank());
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

// This process's group rank; throws on a malformed member list.
int check_members(const std::string& name, const std::vector<int>& ranks, int me) {
  const int world = world_size();
  LT_CHECK(!ranks.empty(), "make_mpi_communicator('" << name << "'): no members");
  std::set<int> seen;
  for (int r : ranks) {
    LT_CHECK(r >= 0 && r < world, "make_mpi_communicator('" << name << "'): rank " << r
                                                            << " outside the world of " << world);
    LT_CHECK(seen.insert(r).second,
             "make_mpi_communicator('" << name << "'): rank " << r << " listed twice");
  }
  const auto it = std::find(ranks.begin(), ranks.end(), me);
  LT_CHECK(it != ranks.end(), "make_mpi_communicator('"
                                  << name << "'): world rank " << me
                                  << " is not a member; only members call it");
  return static_cast<int>(it - ranks.begin());
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
  LT_CHECK(
      timeout_s > 0 && !std::isnan(timeout_s),
      "make_mpi_communicator('" << name << "'): timeout_s must be positive, got " << timeout_s);
  LT_CHECK(max_message_bytes >= 1 && max_message_bytes <= static_cast<std::size_t>(INT_MAX),
           "make_mpi_communicator('" << name << "'): max_message_bytes " << max_message_bytes
                                     << " outside [1, " << INT_MAX << "]");
  const int rank = check_members(name, world_ranks, me);
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
