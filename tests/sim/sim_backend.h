// The emulated CUDA backend's raw launchers (core/cuda/model_launch.h, base_launch.h,
// flash_attention.h) as the
// tests see them: in namespace lt_sim (tests/sim/backend_prelude.h renames lt in the emulated
// sources), operating on host memory. Include after every header of the real framework.
#pragma once

#include <cstddef>
#include <cstdint>

#define lt lt_sim
#include "core/cuda/base_launch.h"
#include "core/cuda/flash_attention.h"
#include "core/cuda/model_launch.h"
#undef lt
