// The NCCL implementation of Communicator (tensors on Device::cuda). Built when the CUDA backend
// is on and NCCL is found (LT_HAVE_NCCL); otherwise make_nccl_communicator throws. Free of NCCL
// and CUDA headers: only parallel/nccl_*.cpp include nccl.h.
//
// Device. A communicator binds to the CUDA device current when it is created, and every call
// must be made with that device current (DistributedRuntime::select_local_gpu picks one per
// rank). NCCL refuses two members of one communicator on the same GPU, so a group needs as
// many GPUs as members.
//
// Creation. make_nccl_communicator is collective over the group's members only, exactly like
// make_mpi_communicator (same arguments, same order of creation on every member; it needs the
// DistributedRuntime). It creates an MPI communicator over the members, whose handshake under
// the deadline names a member that never arrives and detects members that disagree; the
// group's first member makes the NCCL unique id and broadcasts it over it; then every member
// joins the NCCL communicator (ncclCommInitRankConfig, non-blocking, so initialization is also
// under the deadline). The MPI communicator is released afterwards.
//
// Streams. The communicator owns one non-blocking CUDA stream; every NCCL operation runs on it.
// Compute runs on the default stream (every op of the CUDA backend does). Before an operation
// the communication stream waits for an event recorded on the default stream when the call was
// made, so it sees everything the caller issued before it; its completion is an event on the
// communication stream. wait() (and a blocking call, which is the non-blocking call followed by
// wait()) polls that event from the host (sleeping between polls, as the MPI communicator's
// waits do), then makes the default stream wait for it too. Between the call and wait() the
// default stream runs on: that is the overlap. test() never waits for the transfers: it
// queries the event (issuing a point-to-point batch first, see below).
//
// Reductions. sum and max of f32, f64, bf16 and i32. bf16 sums run in fp32: the tensor is
// upcast into a scratch buffer (lt::copy on the default stream, MemCategory::communication),
// reduced by NCCL in fp32, and cast back into the tensor (on the default stream, once the
// reduction has completed); so bf16 is rounded once, as on the MPI communicator. bf16 max is
// exact in bf16 and runs in place. The reduction order is NCCL's (ring or tree, chosen by NCCL
// from the sizes and the topology), not the MPI communicator's documented ring: results agree
// with the MPI communicator's within rounding, not bit for bit; NCCL gives every member the same
// result. reduce_scatter and all_gather may run in place (the output being this member's own
// chunk of the input, or the input this member's chunk of the output).
//
// Point-to-point. isend / irecv are collected and issued together (one ncclGroupStart /
// ncclGroupEnd) at the next wait() or test() of any of the communicator's handles, or at its
// next collective. Issued one by one, a send would block the stream until the peer's matching
// receive runs, and two members sending to each other first would deadlock; issued together
// they progress together. Each transfer still waits only for the default-stream work issued
// before its isend / irecv call (its event is recorded then), not for what comes after: kernels
// the caller issued between isend and wait() and that are still running when the host reaches
// wait() overlap the transfer. (Issuing a batch, and NCCL connecting to a peer on first use,
// happen inside wait() or test(), under the deadline.) NCCL matches messages between two members in
// the order they were issued: tags are checked for range but do not reorder messages, and a receive
// must have the same size as its send (a mismatch is not detected; it hangs until the deadline or
// corrupts data).
//
// Deadlines. Every wait (initialization, the enqueueing of an operation, wait(), the
// destructor of an unfinished handle) has the communicator's timeout_s. While waiting it also
// polls ncclCommGetAsyncError. On expiry or an NCCL / CUDA error the rank prints one line, e.g.
//   longtrain rank 0: timeout after 2.0 s in all_reduce on group 'dp' (ranks [0, 1]) waiting for
//   every member to complete the NCCL all_reduce of 4096 bytes; NCCL does not say which member
//   is late
// (one line; a point-to-point batch names its transfers: "waiting for rank 1 (receive of 4096
// bytes), rank 1 (send of 4096 bytes)"),
// then aborts the NCCL communicator (ncclCommAbort) and ends the job with MPI_Abort(3), like the
// MPI communicator.
//
// Usage rules (as for NCCL): every member issues the same operations on a group in the same
// order, collectives and point-to-point alike (a member that receives before the collective its
// peer issued first deadlocks both); operations on different groups are issued in the same
// relative order on every rank that shares them; tensors stay alive and untouched until the
// operation completes. One thread at a time calls a given communicator. Communicators must be
// destroyed before the DistributedRuntime.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace lt {

// Whether this build has the NCCL communicator.
bool have_nccl();

// A communicator over `world_ranks` (group rank i is world_ranks[i]) on the current CUDA device;
// see above for who calls it. Throws lt::Error on invalid arguments (a rank outside the world,
// duplicates, the caller not a member, timeout_s <= 0), without a current CUDA device, or in a
// build without NCCL.
std::unique_ptr<Communicator> make_nccl_communicator(std::string name, std::vector<int> world_ranks,
                                                     double timeout_s);

}  // namespace lt
