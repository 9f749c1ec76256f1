// The granule summaries the attention kernels skip tiles by (model_launch.h: kAttnGranule tokens
// each), computed on the host from per-token orders and documents: used by model_ops.cpp to stage
// them and by the tests that call the raw launchers. No CUDA or project headers (the tests include
// it beside the emulated backend's model_launch.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <vector>

namespace lt::cuda {

// {order min, max, doc min, max} of every `g` tokens of every sequence ([batch][ceil(len / g)]).
// Empty orders mean the index within the sequence, empty documents one document.
inline std::vector<std::int32_t> attention_granules(std::span<const std::int32_t> order,
                                                    std::span<const std::int32_t> doc,
                                                    std::int64_t batch, std::int64_t len,
                                                    std::int64_t g) {
  const std::int64_t n = (len + g - 1) / g;
  std::vector<std::int32_t> out(static_cast<std::size_t>(4 * batch * n));
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t k = 0; k < n; ++k) {
      std::int32_t omin = std::numeric_limits<std::int32_t>::max();
      std::int32_t omax = std::numeric_limits<std::int32_t>::min();
      std::int32_t dmin = omin, dmax = omax;
      for (std::int64_t i = k * g; i < std::min(len, (k + 1) * g); ++i) {
        const auto t = static_cast<std::size_t>(b * len + i);
        const std::int32_t o = order.empty() ? static_cast<std::int32_t>(i) : order[t];
        const std::int32_t d = doc.empty() ? 0 : doc[t];
        omin = std::min(omin, o);
        omax = std::max(omax, o);
        dmin = std::min(dmin, d);
        dmax = std::max(dmax, d);
      }
      std::int32_t* q = out.data() + 4 * (b * n + k);
      q[0] = omin;
      q[1] = omax;
      q[2] = dmin;
      q[3] = dmax;
    }
  }
  return out;
}

}  // namespace lt::cuda
