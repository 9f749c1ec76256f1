// A communicator bound to one process group (world, or a tp / cp / dp group of the mesh). Only
// parallel/ implements it; layers and the trainer see this interface. Every wait has a deadline:
// a rank stuck waiting logs which operation, which group and which peer it waited for, and aborts
// the whole job (never a silent hang).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace lt {

enum class ReduceOp { sum, max };

// A non-blocking operation in flight. wait() completes it (under the deadline); the tensors it
// uses must stay alive and untouched until then. Destroying an unfinished handle waits.
class CommHandle {
 public:
  virtual ~CommHandle() = default;
  virtual void wait() = 0;
  // True once the operation has completed (progresses it, never blocks).
  virtual bool test() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // The group's name in messages, e.g. "tp", "cp", "dp", "world".
  virtual const std::string& name() const = 0;
  // World ranks of the members, by group rank.
  virtual const std::vector<int>& world_ranks() const = 0;

  // In place over every member. Floating tensors (f32, f64, bf16: bf16 accumulates in fp32).
  // Results are identical on every member and do not depend on timing.
  virtual void all_reduce(const Tensor& t, ReduceOp op = ReduceOp::sum) = 0;
  // input holds size() equal chunks; member r receives the reduction of chunk r in output.
  virtual void reduce_scatter(const Tensor& input, const Tensor& output,
                              ReduceOp op = ReduceOp::sum) = 0;
  // output holds size() chunks: chunk r is member r's input.
  virtual void all_gather(const Tensor& input, const Tensor& output) = 0;
  virtual void broadcast(const Tensor& t, int root) = 0;
  virtual void send(const Tensor& t, int peer, int tag = 0) = 0;
  virtual void recv(const Tensor& t, int peer, int tag = 0) = 0;
  virtual void barrier() = 0;

  virtual std::unique_ptr<CommHandle> isend(const Tensor& t, int peer, int tag = 0) = 0;
  virtual std::unique_ptr<CommHandle> irecv(const Tensor& t, int peer, int tag = 0) = 0;
  virtual std::unique_ptr<CommHandle> iall_reduce(const Tensor& t, ReduceOp op = ReduceOp::sum) = 0;
  virtual std::unique_ptr<CommHandle> ireduce_scatter(const Tensor& input, const Tensor& output,
                                                      ReduceOp op = ReduceOp::sum) = 0;
  virtual std::unique_ptr<CommHandle> iall_gather(const Tensor& input, const Tensor& output) = 0;
};

}  // namespace lt
