// Sizes as people write them on a command line: "80GiB", "80GB", "512 MiB", "85899345920".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lt {

// A non-negative number with an optional unit: B, KB/MB/GB/TB (powers of 1000) or
// KiB/MiB/GiB/TiB (powers of 1024), case-insensitive, with or without a space. Without a unit
// it is a whole number of bytes. nullopt for anything else (or above 2^63 bytes).
std::optional<std::int64_t> parse_byte_size(std::string_view text);

// What parse_byte_size accepts, for error messages.
inline constexpr const char* kByteSizeHelp =
    "a size such as 80GiB, 80GB, 512MiB or a number of bytes (units: B, KB, MB, GB, TB, KiB, "
    "MiB, GiB, TiB)";

// In the largest binary unit that keeps it above 1: 85899345920 -> "80.00 GiB",
// 30000000 -> "28.6 MiB", 512 -> "512 bytes".
std::string format_size(std::int64_t bytes);

}  // namespace lt
