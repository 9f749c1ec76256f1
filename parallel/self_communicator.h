// The communicator of a group with one member: collectives are copies or no-ops. Lets
// single-process runs and unit tests use the same code paths as distributed ones.
#pragma once

#include <memory>
#include <string>

#include "parallel/communicator.h"

namespace lt {

std::unique_ptr<Communicator> make_self_communicator(std::string name, int world_rank = 0);

}  // namespace lt
