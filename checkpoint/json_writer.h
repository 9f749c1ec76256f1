// Pieces of JSON text for the safetensors header and the manifest writers (internal to the
// checkpoint module). The writers assemble their documents from these by hand, in a fixed key
// order, so that the same input always gives the same bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace lt::ckpt {

// `s` as a quoted JSON string: '"' and '\' escaped, newline and tab as \n and \t, other control
// characters as \u00XX, every other byte (UTF-8 included) as it is.
std::string json_string(std::string_view s);

// [1,2,3]
std::string json_uint_array(std::span<const std::uint64_t> values);

// The shortest text that reads back as the same double. JSON has no NaN or infinity: those throw
// CheckpointError naming `what`.
std::string json_double(double value, std::string_view what);

}  // namespace lt::ckpt
