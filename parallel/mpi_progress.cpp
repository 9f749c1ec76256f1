// Operations and the progress thread that advances them (see mpi_internal.h).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <sstream>

#include "core/error.h"
#include "parallel/mpi_internal.h"

namespace lt::mpi_detail {

namespace {

bool mpi_finalized() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized != 0;
}

}  // namespace

void check_mpi(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(rc, text, &length);
  fatal(std::string(call) + " failed: " + text);
}

// ---------------------------------------------------------------------------------------------
// Group

Group::Group(std::string name_, std::vector<int> world_ranks_, int rank_,
             std::size_t max_message_bytes_)
    : GroupInfo{std::move(name_), std::move(world_ranks_), rank_},
      max_message_bytes(max_message_bytes_) {}

Group::~Group() {
  // After MPI_Finalize the communicators are gone already (a Communicator outlived the runtime).
  if (mpi_finalized()) return;
  if (coll != MPI_COMM_NULL) MPI_Comm_free(&coll);
  if (p2p != MPI_COMM_NULL) MPI_Comm_free(&p2p);
}

// ---------------------------------------------------------------------------------------------
// Operation

Operation::Operation(OpContext context, Sources sources)
    : context_(std::move(context)), sources_(std::move(sources)) {}

Operation::~Operation() = default;

bool Operation::advance() {
  std::lock_guard lock(mutex_);
  bool moved = false;
  while (!done()) {
    if (!step_) {
      if (!start_next_step()) {
        finish();
        return true;
      }
      moved = true;  // new messages posted: keep polling closely for their completion
    }
    if (!step_complete()) return moved;
    moved = true;
    if (step_->then) step_->then();
    step_.reset();
  }
  return moved;
}

bool Operation::start_next_step() {
  for (; source_index_ < sources_.size(); ++source_index_) {
    step_ = sources_[source_index_]->next();
    if (!step_) continue;
    requests_.clear();
    infos_.clear();
    // Receives first: a posted receive lets the peer's matching send complete without a copy
    // into MPI's unexpected-message buffers.
    for (const Recv& r : step_->recvs) post_recv(r);
    for (const Send& s : step_->sends) post_send(s);
    return true;
  }
  return false;
}

int Operation::comm_rank(int peer) const {
  return context_.peers_are_world_ranks
             ? context_.group->world_ranks[static_cast<std::size_t>(peer)]
             : peer;
}

// Transfers larger than max_message_bytes go as several messages with the same tag; MPI keeps
// messages between two ranks on one (communicator, tag) in order, so the segments match up.
void Operation::post_recv(const Recv& r) {
  const std::size_t limit = context_.group->max_message_bytes;
  std::size_t offset = 0;
  do {
    const std::size_t n = std::min(limit, r.bytes - offset);
    MPI_Request request = MPI_REQUEST_NULL;
    check_mpi(MPI_Irecv(static_cast<char*>(r.data) + offset, static_cast<int>(n), MPI_BYTE,
                        comm_rank(r.peer), context_.tag, context_.comm, &request),
              "MPI_Irecv");
    requests_.push_back(request);
    infos_.push_back({r.peer, r.bytes, n, true});
    offset += n;
  } while (offset < r.bytes);
}

void Operation::post_send(const Send& s) {
  const std::size_t limit = context_.group->max_message_bytes;
  std::size_t offset = 0;
  do {
    const std::size_t n = std::min(limit, s.bytes - offset);
    MPI_Request request = MPI_REQUEST_NULL;
    check_mpi(MPI_Isend(static_cast<const char*>(s.data) + offset, static_cast<int>(n), MPI_BYTE,
                        comm_rank(s.peer), context_.tag, context_.comm, &request),
              "MPI_Isend");
    requests_.push_back(request);
    infos_.push_back({s.peer, s.bytes, n, false});
    offset += n;
  } while (offset < s.bytes);
}

// MPI_Testsome (not Testall) so completed requests become MPI_REQUEST_NULL and the ones still
// pending name the peer in a timeout message.
bool Operation::step_complete() {
  const int n = static_cast<int>(requests_.size());
  completed_.resize(requests_.size());
  statuses_.resize(requests_.size());
  int count = 0;
  check_mpi(MPI_Testsome(n, requests_.data(), &count, completed_.data(), statuses_.data()),
            "MPI_Testsome");
  if (count == MPI_UNDEFINED) return true;  // no active request left
  for (int i = 0; i < count; ++i) {
    const auto index = static_cast<std::size_t>(completed_[static_cast<std::size_t>(i)]);
    if (infos_[index].receiving) check_received(index, statuses_[static_cast<std::size_t>(i)]);
  }
  return std::all_of(requests_.begin(), requests_.end(),
                     [](MPI_Request r) { return r == MPI_REQUEST_NULL; });
}

// A shorter message than posted means the members passed tensors of different sizes (a longer
// one is reported by MPI as a truncation error).
void Operation::check_received(std::size_t index, const MPI_Status& status) const {
  int received = 0;
  MPI_Get_count(&status, MPI_BYTE, &received);
  const RequestInfo& info = infos_[index];
  if (static_cast<std::size_t>(received) == info.segment_bytes) return;
  std::ostringstream s;
  s << context_.what << " on " << context_.group->describe() << ": rank "
    << context_.group->world_ranks[static_cast<std::size_t>(info.peer)] << " sent " << received
    << " bytes where " << info.segment_bytes
    << " were expected (do the members pass tensors of the same size?)";
  fatal(s.str());
}

// Scratch buffers live in the step sources: dropping them here, before waiters wake, returns
// the communication bytes to the allocator by the time wait() returns.
void Operation::finish() {
  step_.reset();
  sources_.clear();
  done_.store(true, std::memory_order_release);
  finished_.notify_all();
}

namespace {
void begin_wait();
void end_wait();

// While a caller waits, the progress thread polls at its shortest interval.
struct WaitScope {
  WaitScope() { begin_wait(); }
  ~WaitScope() { end_wait(); }
  WaitScope(const WaitScope&) = delete;
  WaitScope& operator=(const WaitScope&) = delete;
};
}  // namespace

void Operation::wait(double timeout_s) {
  if (done()) return;
  const auto deadline = comm_detail::deadline_after(timeout_s);
  const WaitScope waiting;
  std::unique_lock lock(mutex_);
  // The progress thread notifies under mutex_; sleeping here leaves the core to the peers.
  if (finished_.wait_until(lock, deadline, [this] { return done(); })) return;
  report_timeout(timeout_s);
}

std::string Operation::waiting_for() const {
  // Data the operation needs is the likelier culprit than a send the peer has not taken yet.
  for (bool receiving : {true, false}) {
    for (std::size_t i = 0; i < requests_.size(); ++i) {
      const RequestInfo& info = infos_[i];
      if (requests_[i] == MPI_REQUEST_NULL || info.receiving != receiving) continue;
      std::ostringstream s;
      s << "waiting for rank " << context_.group->world_ranks[static_cast<std::size_t>(info.peer)]
        << " (" << (receiving ? "receive" : "send") << " of " << info.bytes << " bytes)";
      return s.str();
    }
  }
  return "waiting for the progress thread to start it";
}

void Operation::report_timeout(double timeout_s) const {
  fatal(comm_detail::timeout_message(timeout_s, context_.what, *context_.group, waiting_for()));
}

// ---------------------------------------------------------------------------------------------
// The progress thread

namespace {

// Polling backoff: spin (yielding) for a few microseconds after the last progress, then sleep
// with growing intervals so that a rank waiting for a peer on the same core leaves it the CPU.
// While the caller waits for an operation the sleeps stay at the shortest: a long sleep there
// delays every round of a rendezvous transfer (seen with logging.comm_timing: sends of 1 MiB
// ring blocks finished about 0.4 ms after their data had arrived).
constexpr auto kSpinFor = std::chrono::microseconds(30);
constexpr auto kFirstSleep = std::chrono::microseconds(10);
constexpr auto kMaxSleep = std::chrono::microseconds(200);

class ProgressEngine {
 public:
  ~ProgressEngine() { stop(); }

  void submit(std::shared_ptr<Operation> op) {
    std::lock_guard lock(mutex_);
    LT_CHECK(!stopped_, "MPI operation submitted after the runtime shut MPI down");
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    incoming_.push_back(std::move(op));
    wake_.notify_one();
  }

  // A caller starts or stops waiting for an operation; starting cuts the current sleep short.
  void begin_wait() {
    waiters_.fetch_add(1, std::memory_order_acq_rel);
    std::lock_guard lock(mutex_);
    waking_ = true;
    wake_.notify_one();
  }
  void end_wait() { waiters_.fetch_sub(1, std::memory_order_acq_rel); }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
      wake_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    std::deque<std::shared_ptr<Operation>> active;
    auto last_progress = std::chrono::steady_clock::now();
    auto sleep = std::chrono::microseconds(0);
    while (take_incoming(active, sleep)) {
      if (advance_all(active)) {
        last_progress = std::chrono::steady_clock::now();
        sleep = std::chrono::microseconds(0);
      } else if (std::chrono::steady_clock::now() - last_progress < kSpinFor) {
        std::this_thread::yield();
      } else {
        const auto cap = waiters_.load(std::memory_order_acquire) > 0 ? kFirstSleep : kMaxSleep;
        sleep = sleep.count() == 0 ? kFirstSleep : std::min(2 * sleep, cap);
      }
    }
  }

  // Appends new operations in submission order (so messages with the same peer and tag are
  // posted in the order the caller issued them). Sleeps while idle, or `sleep` while polling;
  // a submission ends either early. False once stopped.
  bool take_incoming(std::deque<std::shared_ptr<Operation>>& active,
                     std::chrono::microseconds sleep) {
    std::unique_lock lock(mutex_);
    const auto ready = [this] { return stopped_ || !incoming_.empty(); };
    if (active.empty()) {
      wake_.wait(lock, ready);
    } else if (sleep.count() > 0) {
      wake_.wait_for(lock, sleep, [&] { return ready() || waking_; });
    }
    waking_ = false;
    if (stopped_) return false;
    for (auto& op : incoming_) active.push_back(std::move(op));
    incoming_.clear();
    return true;
  }

  static bool advance_all(std::deque<std::shared_ptr<Operation>>& active) {
    bool moved = false;
    for (auto& op : active) moved = op->advance() || moved;
    std::erase_if(active, [](const std::shared_ptr<Operation>& op) { return op->done(); });
    return moved;
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<std::shared_ptr<Operation>> incoming_;
  bool stopped_ = false;
  bool waking_ = false;          // a caller began to wait: poll now
  std::atomic<int> waiters_{0};  // callers inside Operation::wait
  std::thread thread_;
};

ProgressEngine& engine() {
  static ProgressEngine instance;
  return instance;
}

void begin_wait() {
  engine().begin_wait();
}

void end_wait() {
  engine().end_wait();
}

}  // namespace

void submit(std::shared_ptr<Operation> op) {
  engine().submit(std::move(op));
}

void stop_progress_engine() {
  engine().stop();
}

}  // namespace lt::mpi_detail
