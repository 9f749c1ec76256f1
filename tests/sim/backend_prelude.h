// Included first by every tests/sim/sim_*.cpp, each of which compiles one source of the CUDA
// backend (core/cuda) for the host emulation: the standard headers the backend uses, then the
// namespace `lt` renamed to `lt_sim` (so the emulated backend's symbols never clash with the real
// lt_core linked beside it: tests reach it through tests/sim/sim_backend.h), then the stand-in
// CUDA runtime of tests/sim/include.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#define lt lt_sim

#include <cuda_runtime.h>
