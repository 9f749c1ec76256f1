#include "layers/step_context.h"

#include "core/error.h"
#include "parallel/communicator.h"

namespace lt {

bool StepContext::sp_active() const {
  return sequence_parallel && tp != nullptr && tp->size() > 1;
}

std::int64_t StepContext::residual_tokens() const {
  if (!sp_active()) return tokens();
  LT_CHECK(tokens() % tp->size() == 0,
           "sequence parallel: " << tokens() << " tokens do not divide over " << tp->size()
                                 << " tensor-parallel ranks");
  return tokens() / tp->size();
}

}  // namespace lt
