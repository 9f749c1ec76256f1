#include "parallel/comm_common.h"

#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>

#include "core/error.h"

namespace lt::comm_detail {

std::string GroupInfo::describe() const {
  std::ostringstream s;
  s << "group '" << name << "' (ranks [";
  for (std::size_t i = 0; i < world_ranks.size(); ++i) s << (i ? ", " : "") << world_ranks[i];
  s << "])";
  return s.str();
}

std::string GroupInfo::context(const char* what) const {
  return std::string(what) + " on " + describe();
}

namespace {

class DoneHandle final : public CommHandle {
 public:
  void wait() override {}
  bool test() override { return true; }
};

}  // namespace

std::unique_ptr<CommHandle> GroupCommunicator::handle(Started started) {
  if (started) return started;
  return std::make_unique<DoneHandle>();
}

void report(const std::string& message) {
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  std::fprintf(stderr, "longtrain rank %d: %s\n", rank, message.c_str());
  std::fflush(stderr);
}

void abort_job() {
  MPI_Abort(MPI_COMM_WORLD, kAbortCode);
  std::_Exit(kAbortCode);  // MPI_Abort does not return, but is not declared [[noreturn]]
}

void fatal(const std::string& message) {
  report(message);
  abort_job();
}

std::string timeout_message(double timeout_s, const std::string& what, const GroupInfo& group,
                            const std::string& waiting_for) {
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.1f", timeout_s);
  return std::string("timeout after ") + seconds + " s in " + group.context(what.c_str()) + " " +
         waiting_for;
}

std::chrono::steady_clock::time_point deadline_after(double timeout_s) {
  const std::chrono::duration<double> limit(std::min(timeout_s, 1e9));
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(limit);
}

void check_timeout(const char* factory, const std::string& name, double timeout_s) {
  LT_CHECK(timeout_s > 0 && !std::isnan(timeout_s),
           factory << "('" << name << "'): timeout_s must be positive, got " << timeout_s);
}

int check_members(const char* factory, const std::string& name, const std::vector<int>& ranks,
                  int me, int world) {
  LT_CHECK(!ranks.empty(), factory << "('" << name << "'): no members");
  std::set<int> seen;
  for (int r : ranks) {
    LT_CHECK(r >= 0 && r < world,
             factory << "('" << name << "'): rank " << r << " outside the world of " << world);
    LT_CHECK(seen.insert(r).second, factory << "('" << name << "'): rank " << r << " listed twice");
  }
  const auto it = std::find(ranks.begin(), ranks.end(), me);
  LT_CHECK(it != ranks.end(), factory << "('" << name << "'): world rank " << me
                                      << " is not a member; only members call it");
  return static_cast<int>(it - ranks.begin());
}

void check_tensor(const GroupInfo& group, const Tensor& t, Device device, const char* kind,
                  const char* what, const char* role) {
  LT_CHECK(t.defined(), group.context(what) << ": the " << role << " is undefined");
  LT_CHECK(t.device() == device, group.context(what) << ": the " << role << " " << t.describe()
                                                     << " is on " << device_name(t.device())
                                                     << "; the " << kind << " communicator moves "
                                                     << device_name(device) << " tensors only");
  LT_CHECK(t.is_contiguous(), group.context(what)
                                  << ": the " << role << " " << t.describe()
                                  << " is a strided view; pass a contiguous tensor");
}

namespace {

bool overlaps(const void* a, std::size_t a_bytes, const void* b, std::size_t b_bytes) {
  const auto x = reinterpret_cast<std::uintptr_t>(a);
  const auto y = reinterpret_cast<std::uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && x < y + b_bytes && y < x + a_bytes;
}

}  // namespace

void check_chunks(const GroupInfo& group, const Tensor& whole, const Tensor& part,
                  const char* whole_role, const char* part_role, const char* what) {
  LT_CHECK(whole.dtype() == part.dtype(),
           group.context(what) << ": the " << whole_role << " is " << whole.describe()
                               << " but the " << part_role << " is " << part.describe());
  LT_CHECK(whole.numel() == group.size() * part.numel(),
           group.context(what) << ": the " << whole_role << " " << whole.describe() << " must hold "
                               << group.size() << " chunks (one per member) of the " << part_role
                               << " " << part.describe() << ", i.e. " << group.size() * part.numel()
                               << " elements");
  const char* own = static_cast<const char*>(whole.raw()) + group.rank * part.nbytes();
  LT_CHECK(part.raw() == own || !overlaps(part.raw(), part.nbytes(), whole.raw(), whole.nbytes()),
           group.context(what) << ": the " << part_role << " overlaps the " << whole_role
                               << " other than as this member's own chunk " << group.rank);
}

void check_group_rank(const GroupInfo& group, int r, const char* role, const char* what) {
  LT_CHECK(r >= 0 && r < group.size(), group.context(what)
                                           << ": " << role << " " << r
                                           << " is not a group rank (size " << group.size() << ")");
}

void check_tag(const GroupInfo& group, int tag, int tag_ub, const char* what) {
  LT_CHECK(tag >= 0 && tag <= tag_ub, group.context(what)
                                          << ": tag " << tag << " outside [0, " << tag_ub << "]");
}

}  // namespace lt::comm_detail
