// The MPI implementation of Communicator (CPU tensors).
//
// Creation. make_mpi_communicator is collective over the group's members only: every member
// calls it with the same name, world ranks (in the same order: group rank i is world_ranks[i]),
// timeout and message size; non-members do not call it. Members of several groups create them
// in the same order (as the mesh does: tp, cp, dp, ... on every rank). Creation starts with a
// handshake under the deadline, so a member that never arrives is named instead of hanging,
// and members that pass different arguments are detected and the job ends with a message.
// Communicators must be destroyed before the DistributedRuntime.
//
// Algorithms. All data moves as point-to-point messages (MPI_Isend / MPI_Irecv) between the
// members; no MPI collective is used, so every wait knows which peer it waits for.
//   all_reduce      ring reduce-scatter, then ring all-gather (2(n-1) steps)
//   reduce_scatter  ring reduce-scatter; member r receives chunk r
//   all_gather      ring all-gather
//   broadcast       binomial tree from the root
//   barrier         dissemination (ceil(log2 n) rounds)
// Large messages are split into segments of at most max_message_bytes; reductions run in
// slices of that many bytes of accumulator, which bounds the scratch memory (two slices,
// MemCategory::communication) whatever the tensor size.
//
// Determinism. Reductions never use MPI's: the ring fixes the order. With the tensor cut into
// n balanced chunks (lengths differ by at most one, the longer ones first), element i of chunk
// c is reduced as ((x[c+1] + x[c+2]) + ... + x[c-1]) + x[c] (member indices mod n) by member
// c alone, then copied to the others. The result depends only on the inputs, n and the
// tensor size: bit-identical on every member and on every run, whatever the message timing.
// bf16 travels the ring as fp32 partial sums and is rounded once, by the chunk's owner. i32
// sums wrap around on overflow. max propagates NaN.
//
// Progress and threads. One progress thread per process advances every operation in flight
// (posting messages, testing them, reducing received chunks), so non-blocking operations make
// real progress while the caller computes; test() only reads a flag. Blocking calls are a
// non-blocking call followed by wait(). The progress thread spins for a few microseconds after
// the last progress, then sleeps with a backoff (10 us doubling to 200 us) so ranks sharing a
// core are not starved; it sleeps on a condition variable when nothing is in flight. Waiters
// sleep on a condition variable. Because that thread calls MPI while the caller may be
// creating a communicator, DistributedRuntime requests MPI_THREAD_MULTIPLE; creation fails
// with an lt::Error if the library does not provide it.
//
// Deadlines. Every wait (blocking calls, CommHandle::wait, the handle's destructor, creation)
// has the communicator's timeout_s. On expiry the rank prints one line, e.g.
//   longtrain rank 0: timeout after 2.0 s in all_reduce on group 'dp' (ranks [0, 1]) waiting
//   for rank 1 (receive of 2048 bytes)
// (a single line) and calls MPI_Abort(MPI_COMM_WORLD, 3). MPI errors end the job the same way.
//
// Usage rules (as for MPI): every member issues the same collectives in the same order, with
// tensors of the same dtype and size; the tensors of an operation stay alive and untouched
// until it completes. Non-blocking collectives may overlap each other and point-to-point
// messages. One thread at a time calls a given communicator.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace lt {

// Large enough that the per-message overhead is negligible, small enough that the reduction
// scratch (two slices) stays a few MiB.
inline constexpr std::size_t kDefaultMaxMessageBytes = std::size_t{4} << 20;

// A communicator over `world_ranks` (group rank i is world_ranks[i]); see above for who calls
// it. Throws lt::Error on invalid arguments (a rank outside the world, duplicates, the caller
// not a member, timeout_s <= 0, max_message_bytes outside [1, 2^31 - 1]).
std::unique_ptr<Communicator> make_mpi_communicator(
    std::string name, std::vector<int> world_ranks, double timeout_s,
    std::size_t max_message_bytes = kDefaultMaxMessageBytes);

// The group of every process, named "world". Collective over the world.
std::unique_ptr<Communicator> make_world_communicator(double timeout_s);

}  // namespace lt
