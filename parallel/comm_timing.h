// How much of a rank's communication it waited for and how much ran under its compute.
// make_timed_communicator wraps any communicator (MPI, NCCL, routed) and books every call on a
// CommClock shared by the rank's groups:
//  - a blocking call: its whole duration is exposed (the rank could do nothing else);
//  - a non-blocking call: the window from issue to wait() is when compute could hide it; the
//    time inside wait() is exposed. A call already complete when wait() begins (checked with
//    test()) is counted as hidden.
// Host clocks only: on a GPU a wait() returns when the transfer's event has completed, so the
// figures are what the host saw. Timing adds a few clock reads per call.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "parallel/communicator.h"

namespace lt {

// One (group, operation) of one rank, summed over calls.
struct CommOpTimes {
  std::int64_t calls = 0;
  std::int64_t async_calls = 0;   // non-blocking ones
  std::int64_t hidden_calls = 0;  // non-blocking ones already complete when waited for
  std::int64_t bytes = 0;
  double exposed_s = 0.0;  // blocked in the call or in its wait()
  double window_s = 0.0;   // non-blocking: from issue to wait()

  CommOpTimes& operator+=(const CommOpTimes& o);
};

// (group name, operation) -> times.
using CommTimes = std::map<std::pair<std::string, std::string>, CommOpTimes>;

// Sum over every group and operation.
CommOpTimes total_of(const CommTimes& times);

class CommClock {
 public:
  void record(const std::string& group, const std::string& op, const CommOpTimes& t);
  // What was recorded since the last take() (or the start); starts over.
  CommTimes take();

 private:
  std::mutex mutex_;
  CommTimes times_;
};

std::unique_ptr<Communicator> make_timed_communicator(std::unique_ptr<Communicator> inner,
                                                      std::shared_ptr<CommClock> clock);

}  // namespace lt
