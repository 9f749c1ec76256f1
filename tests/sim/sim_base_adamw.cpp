// core/cuda/base_adamw.cu under the host emulation (tests/sim/backend_prelude.h).
#include "tests/sim/backend_prelude.h"
// The backend source itself, after the prelude.
#include "core/cuda/base_adamw.cu"
